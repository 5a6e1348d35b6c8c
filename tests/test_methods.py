"""The methods layer's shared contract: the METHODS registry, recipe blocks as constructor keywords, common.py."""
import pytest
import torch

from kdlab.methods import METHODS, Distiller, Supervised
from kdlab.methods.common import epoch_at, epoch_progress, logits_and_stage_maps, stage_maps, teacher_pass
from kdlab.models import create, stage_features
from kdlab.recipes import RECIPES
from kdlab.teachers import TEACHERS


def teacher_model(key):
    """An untrained model of the shipped teacher ``key``'s architecture (the blocks only need its shapes)."""
    recipe = TEACHERS[key]
    return create(recipe.model, **recipe.model_kwargs)


def recipe_blocks(profile):
    """(notebook, method name, student, teacher, block) for every method block of the methods-A recipes."""
    primer, ofa, cskd = (RECIPES[name](profile) for name in ("00_primer", "01_ofa", "02_cskd"))
    vit = dict(cskd["student"]["model"])
    yield "00_primer", "kd", ("cnn_small", {}), primer["kd_teacher"], primer["kd"]
    for pair in ofa["pairs"].values():
        student = (pair["student"], pair["model"])
        yield "01_ofa", "kd", student, pair["teacher"], ofa["kd"]
        yield "01_ofa", "fitnet", student, pair["teacher"], ofa["fitnet"]
        yield "01_ofa", "ofa", student, pair["teacher"], pair["ofa"]
    yield "02_cskd", "deit_hard", ("vit_distilled", vit), cskd["teacher"], cskd["deit_hard"]
    yield "02_cskd", "cskd", ("vit_distilled", vit), cskd["teacher"], cskd["cskd"]


def test_every_registered_method_is_a_distiller():
    assert {"supervised", "kd", "fitnet", "ofa", "deit_hard", "cskd"} <= set(METHODS)
    assert METHODS["supervised"] is Supervised
    for name, cls in METHODS.items():
        assert isinstance(cls, type) and issubclass(cls, Distiller), name


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_every_recipe_method_block_is_the_constructor_keywords(profile):
    x, y = torch.rand(2, 3, 32, 32), torch.randint(0, 10, (2,))
    for notebook, name, (student_name, student_kwargs), teacher_key, block in recipe_blocks(profile):
        distiller = METHODS[name](create(student_name, **student_kwargs), teacher_model(teacher_key), **block)
        assert isinstance(distiller, Distiller), (notebook, name)
        if profile == "smoke":  # one step: the block trains
            _, terms = distiller.train()(x, y, progress=0.5)
            assert terms and all(torch.isfinite(t) for t in terms.values()), (notebook, name)


def test_teacher_pass_runs_without_autograd():
    layer = torch.nn.Linear(3, 2)
    run = teacher_pass(lambda x: layer(x))
    assert not run(torch.rand(1, 3)).requires_grad and layer(torch.rand(1, 3)).requires_grad


def test_stage_taps_are_keyed_by_one_based_stage():
    model = create("cnn_small").eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        logits, maps = logits_and_stage_maps(model, x, (1, 3))
        assert list(maps) == [1, 3] and torch.allclose(logits, model(x), atol=1e-6)
        assert all(torch.equal(maps[s], f) for s, f in zip((1, 3), stage_features(model, x, [0, 2])))
        assert torch.equal(stage_maps(model, x, (3,))[3], maps[3])


def test_progress_helpers():
    assert [epoch_at(p, 4) for p in (0.0, 0.24, 0.25, 0.99, 1.0)] == [0, 0, 1, 3, 3]
    assert epoch_at(15 / 22, 22) == 15, "the first step of an epoch is in that epoch despite rounding"
    assert epoch_progress(2.0, 8) == 0.25 and epoch_progress(0, 3) == 0.0
    with pytest.raises(ValueError, match="progress must be"):
        epoch_at(1.5, 4)
    with pytest.raises(ValueError, match="epochs_done must be"):
        epoch_progress(9.0, 8)
