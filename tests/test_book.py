"""The book's HTML and slides: every figure gets the caption above it as alt text."""
import base64
import io
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from kdlab.book import figure_captions, plain_text, shorten, with_alt_text  # noqa: E402


def png() -> str:
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def notebook() -> dict:
    image = {"output_type": "display_data", "data": {"image/png": png(), "text/plain": "<Figure>"}, "metadata": {}}
    text = {"output_type": "stream", "name": "stdout", "text": "no figure"}

    def code(*outputs, slide="-"):
        return {"cell_type": "code", "source": "x", "outputs": list(outputs), "execution_count": 1,
                "metadata": {"slideshow": {"slide_type": slide}}}

    def markdown(source, slide="-"):
        return {"cell_type": "markdown", "source": source, "metadata": {"slideshow": {"slide_type": slide}}}

    cells = [code(image), markdown("## 3 · The idea\n\nThe **curve** over $T$: look for the `peak`. [More](x.md)"),
             code(text), code(image, image), markdown("### 7.1 Skipped", slide="skip"), code(image, slide="skip")]
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index}"
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"},
                                         "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}


def test_each_figure_takes_the_prose_above_it():
    cells = notebook()["cells"]
    caption = "3 · The idea The curve over T: look for the peak. More"
    assert plain_text(cells[1]["source"]) == caption
    assert figure_captions(cells) == ["A figure.", caption, caption, "7.1 Skipped"]
    long = "One sentence here. " * 30
    assert shorten(long, 60) == "One sentence here. One sentence here. One sentence here."
    assert shorten("word " * 100, 40).endswith(" …") and len(shorten("word " * 100, 40)) <= 42


def test_the_book_page_and_the_deck_carry_alt_text_on_every_figure(tmp_path):
    from nbconvert import HTMLExporter
    from nbformat import reads

    from kdlab.book import write_deck

    nb = notebook()
    body, _ = HTMLExporter().from_notebook_node(reads(json.dumps(nb), as_version=4))
    page = with_alt_text(body, figure_captions(nb["cells"]))
    assert page.count('<img alt="') == 4 and 'alt="3 · The idea The curve over T: look for the peak. More"' in page
    assert "No description has been provided" not in page and page.count(" alt=") == 4
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    deck = write_deck(path, tmp_path).read_text(encoding="utf-8")
    assert deck.count('<img alt="') == 3, "the skipped slide's figure is not in the deck"
    with pytest.raises(ValueError, match="2 inline images but the notebook 4 figures"):
        with_alt_text(body.replace('src="data:image/png', 'src="x.png', 2), figure_captions(nb["cells"]))
