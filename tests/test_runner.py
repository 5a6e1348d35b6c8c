"""The notebook runner never hangs: a cell whose kernel stops using CPU without replying fails the run, named,
within ``stall_s``; a cell that computes is never stopped for being long; the stress test repeats the widget
notebooks under a full CPU load (``pytest -m stress``)."""
import multiprocessing
import os
import time
from pathlib import Path

import nbformat
import pytest

from kdlab.runner import StalledCell, StallWatch, execute_notebook, running_cell

ROOT = Path(__file__).resolve().parents[1]


def notebook(tmp_path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "toy.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_cell_whose_kernel_idles_without_replying_fails_named(tmp_path):
    # time.sleep stands in for a lost reply: the kernel uses no CPU and the cell never finishes
    path = notebook(tmp_path, "x = 1", "import time\ntime.sleep(120)", "y = 2")
    start = time.perf_counter()
    with pytest.raises(StalledCell, match=r"toy.ipynb: code cell 2 \('import time'\) stalled: its kernel sat idle \(under 5 % of a core\) for 3 s"):
        execute_notebook(path, tmp_path / "out" / "toy.ipynb", {}, stall_s=3, poll_s=0.5)
    assert time.perf_counter() - start < 60, "found within seconds, not at the sleep's end"
    assert running_cell(tmp_path / "out" / "toy.ipynb") == (2, "import time")


def test_a_stall_is_found_while_other_children_of_the_runner_are_busy(tmp_path):
    """Only the kernel's process tree counts: a busy process the runner started for another reason (the stress
    test's load) must not hide an idle kernel (it did, and a stress run hung on a widget cell)."""
    load = multiprocessing.get_context("spawn").Process(target=_load, args=(120,), daemon=True)
    load.start()
    try:
        path = notebook(tmp_path, "import time\ntime.sleep(120)", "y = 2")
        start = time.perf_counter()
        with pytest.raises(StalledCell, match=r"code cell 1 \('import time'\) stalled"):
            execute_notebook(path, tmp_path / "out" / "toy.ipynb", {}, stall_s=3, poll_s=0.5)
        assert time.perf_counter() - start < 60
    finally:
        load.terminate()


def test_a_busy_cell_is_never_stopped_for_taking_long(tmp_path):
    busy = "import time\nend = time.perf_counter() + 6\nwhile time.perf_counter() < end:\n    sum(range(1000))"
    path = notebook(tmp_path, busy, "done = True")
    output = execute_notebook(path, tmp_path / "out" / "toy.ipynb", {}, stall_s=2, poll_s=0.5)
    assert output.exists() and running_cell(output) is None


def test_an_error_in_a_cell_is_not_called_a_stall(tmp_path):
    import papermill

    path = notebook(tmp_path, "raise ValueError('boom')")
    with pytest.raises(papermill.PapermillExecutionError, match="boom"):
        execute_notebook(path, tmp_path / "out" / "toy.ipynb", {}, stall_s=30, poll_s=0.5)
    assert running_cell(tmp_path / "out" / "toy.ipynb") == (1, "raise ValueError('boom')")


def test_the_runner_polls_both_kernel_channels_in_slices(tmp_path, monkeypatch):
    """papermill starts its kernel client through nbclient's synchronous twin, bound to nbclient's own coroutine;
    the runner's client must still get its sliced polls (it silently did not, and widget cells stalled)."""
    import kdlab.runner as runner

    sliced = []
    original = runner.sliced_polls
    monkeypatch.setattr(runner, "sliced_polls", lambda channel, **kw: (sliced.append(channel), original(channel, **kw)))
    execute_notebook(notebook(tmp_path, "x = 1"), tmp_path / "out" / "toy.ipynb", {}, stall_s=30, poll_s=0.5)
    assert len(sliced) == 2 and len({type(channel).__name__ for channel in sliced}) == 1


def test_stall_watch_checks_its_arguments():
    with pytest.raises(ValueError, match="stall_s"):
        StallWatch(stall_s=0)
    with pytest.raises(ValueError, match="poll_s"):
        StallWatch(poll_s=-1)


def _load(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(i * i for i in range(10_000))


@pytest.mark.stress
@pytest.mark.parametrize("repeat", range(3))
@pytest.mark.parametrize("name", ["00_primer", "01_ofa", "02_cskd", "03_swtat", "04_cafd_face", "05_disdepth"])
def test_widget_notebooks_smoke_under_full_load(name, repeat, tmp_path, monkeypatch):
    """Every notebook has widgets: its smoke run, repeated, while two processes keep both cores busy, either ends
    or fails naming a stalled cell — it never hangs (the stall watch's default limit applies)."""
    monkeypatch.setenv("KDLAB_RECORD_FILE", str(tmp_path / "records.json"))
    load = [multiprocessing.get_context("spawn").Process(target=_load, args=(900,), daemon=True)
            for _ in range(os.cpu_count() or 2)]
    for process in load:
        process.start()
    try:
        path = ROOT / "notebooks" / f"{name}.ipynb"
        execute_notebook(path, tmp_path / path.name, {"PROFILE": "smoke", "SEED": repeat}, cell_timeout=900)
    finally:
        for process in load:
            process.terminate()


def test_sliced_polls_repoll_until_a_message_or_the_deadline():
    import asyncio
    from queue import Empty

    from kdlab.runner import sliced_polls

    class Channel:
        """A channel whose message shows only on the fourth poll (a wake-up that an unbounded poll would miss)."""

        def __init__(self):
            self.timeouts = []

        async def get_msg(self, timeout=None):
            self.timeouts.append(timeout)
            if timeout is None:
                raise AssertionError("never one unbounded poll")
            if len(self.timeouts) < 4:
                await asyncio.sleep(timeout)  # a poll that finds nothing waits its timeout out
                raise Empty
            return {"msg_type": "execute_reply"}

    channel = Channel()
    sliced_polls(channel, slice_s=0.01)
    assert asyncio.run(channel.get_msg(timeout=None)) == {"msg_type": "execute_reply"}
    assert channel.timeouts == [0.01] * 4
    late = Channel()
    sliced_polls(late, slice_s=0.01)
    with pytest.raises(Empty):
        asyncio.run(late.get_msg(timeout=0.02))
    assert 2 <= len(late.timeouts) < 4 and all(t <= 0.01 for t in late.timeouts)
