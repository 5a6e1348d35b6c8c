import pytest
import torch

from kdlab.models import (SEG_NUM_CLASSES, TASKS, SegCNN, count_parameters, create, family_of, list_models,
                          map_to_tokens, pre_logits, stage_features, stage_shapes, tokens_to_map)


@pytest.mark.parametrize("name", list_models())
def test_every_model_classifies_32px_batches(name):
    model = create(name, num_classes=7)
    out = model(torch.rand(3, 3, 32, 32))
    assert out.shape == (3, 7)
    assert model.kdlab_name == name and family_of(model) == model.kdlab_family


IMAGE_MODELS = [name for name in list_models() if family_of(create(name)) != "mlp"]
"""The classifiers with stage maps (an MLP reads a flat vector)."""


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_stage_features_are_maps_shallow_to_deep(name):
    model = create(name)
    feats = stage_features(model, torch.rand(2, 3, 32, 32))
    assert len(feats) >= 3 and all(f.ndim == 4 and f.shape[0] == 2 for f in feats)
    sides = [f.shape[-1] for f in feats]
    assert sides == sorted(sides, reverse=True), "resolution never grows with depth"
    assert stage_shapes(model) == [tuple(f.shape[1:]) for f in feats]


def test_vit_stages_are_patch_grids_without_prefix_tokens():
    model = create("vit", patch_size=4)
    assert stage_shapes(model) == [(96, 8, 8)] * 4


def test_families_and_sizes():
    assert family_of(create("cnn")) == "cnn" and family_of(create("swin")) == "swin"
    assert 0.3e6 <= count_parameters(create("cnn_small")) <= 1.3e6
    assert 0.3e6 <= count_parameters(create("cnn")) <= 1.3e6
    assert pre_logits(create("mixer"), torch.rand(2, 3, 32, 32)).shape == (2, 128)


def test_overrides_reach_timm():
    assert create("vit", depth=2).blocks.__len__() == 2
    assert stage_shapes(create("cnn", widths=(8, 16, 32, 64)))[-1] == (64, 4, 4)


def test_models_are_not_pretrained_and_seeded():
    torch.manual_seed(0)
    a = create("vit").state_dict()
    torch.manual_seed(0)
    b = create("vit").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "resnet50"}, "unknown model"),
    ({"name": "vit", "num_classes": 0}, "num_classes"),
    ({"name": "vit", "img_size": 4}, "img_size"),
    ({"name": "vit", "not_a_kwarg": 1}, "bad keyword"),
    ({"name": "cnn", "widths": (8, 16), "depths": (1,)}, "same length"),
])
def test_bad_arguments_fail_clearly(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create(**kwargs)


def test_family_of_rejects_foreign_modules():
    with pytest.raises(ValueError, match="family"):
        family_of(torch.nn.Linear(2, 2))


def test_tokens_and_maps_round_trip():
    tokens = torch.randn(2, 1 + 12, 5)
    fmap = tokens_to_map(tokens, grid=(3, 4), num_prefix_tokens=1)
    assert fmap.shape == (2, 5, 3, 4)
    assert torch.equal(fmap[:, :, 1, 2], tokens[:, 1 + 1 * 4 + 2]), "row-major token order"
    assert torch.equal(map_to_tokens(fmap), tokens[:, 1:])
    with pytest.raises(ValueError, match="square"):
        tokens_to_map(torch.randn(1, 12, 5))
    with pytest.raises(ValueError, match="grid"):
        tokens_to_map(torch.randn(1, 12, 5), grid=(3, 3))
    with pytest.raises(ValueError):
        map_to_tokens(torch.randn(2, 3, 4))
    with pytest.raises(ValueError):
        stage_features(create("vit"), torch.rand(3, 32, 32))


@pytest.mark.parametrize("name", ["cnn_small", "vit", "swin", "mixer"])
def test_logits_and_stage_features_is_one_forward_equal_to_two(name):
    from kdlab.models.features import logits_and_stage_features

    model, x = create(name).eval(), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        logits, feats = logits_and_stage_features(model, x, [0, 2])
        assert torch.allclose(logits, model(x), atol=1e-5)
        for got, want in zip(feats, stage_features(model, x, [0, 2]), strict=True):
            assert torch.allclose(got, want, atol=1e-5)
        assert logits_and_stage_features(model, x, [])[1] == []
    with pytest.raises(ValueError, match="batch"):
        logits_and_stage_features(model, torch.rand(3, 32, 32), [0])


def test_vit_distilled_is_the_vit_plus_a_distillation_token_and_head():
    vit, deit = create("vit"), create("vit_distilled")
    assert family_of(deit) == "vit" and deit.num_prefix_tokens == 2
    assert stage_shapes(deit) == stage_shapes(vit), "prefix tokens are dropped from the stage maps"
    assert count_parameters(deit) - count_parameters(vit) == 96 + 96 + (96 * 10 + 10)  # token, position, head_dist
    deit.train()
    assert deit(torch.rand(2, 3, 32, 32)).shape == (2, 10), "the mean of both heads, in training too"


# segmentation models ------------------------------------------------------------------------------

SEG_MODELS = ["seg_cnn", "seg_cnn_small"]


def test_registry_lists_models_per_task():
    assert list_models("segmentation") == SEG_MODELS and TASKS == ("classification", "segmentation", "depth", "face")
    assert not set(SEG_MODELS) & set(list_models()), "the default listing stays classification-only"
    assert list_models("depth") == ["depth_student", "depth_teacher_swin"]
    assert list_models("face") == ["face_cnn", "face_swin"]
    assert list_models(None) == sorted(list_models() + SEG_MODELS + list_models("depth") + list_models("face"))
    assert all(create(name).kdlab_task == "classification" for name in ("cnn_small", "mixer"))
    with pytest.raises(ValueError, match="unknown task"):
        list_models("detection")


@pytest.mark.parametrize("name, dim", [("seg_cnn", 64), ("seg_cnn_small", 32)])
def test_seg_models_follow_the_segmentation_interface(name, dim):
    model = create(name).eval()
    assert isinstance(model, SegCNN) and model.kdlab_name == name and model.kdlab_task == "segmentation"
    assert family_of(model) == "cnn" and model.num_classes == SEG_NUM_CLASSES == 11, "background + 10 shapes"
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        feat = model.forward_features(x)
        assert feat.shape == (2, dim, 16, 16), "the stride-4 decoder map is the one to distil"
        logits = model.forward_head(feat)
        assert logits.shape == (2, 11, 64, 64) and torch.equal(model(x), logits)
        assert pre_logits(model, x).shape == (2, dim, 16, 16)
        assert model(torch.rand(1, 3, 36, 44)).shape == (1, 11, 36, 44), "any multiple of 4, not only of 16"
    assert create(name, num_classes=3)(x).shape == (2, 3, 64, 64)
    assert family_of(SegCNN(decoder_dim=8)) == "cnn", "also when built directly"


def test_seg_model_sizes():
    teacher, student = count_parameters(create("seg_cnn")), count_parameters(create("seg_cnn_small"))
    assert 0.8e6 <= teacher <= 1.2e6 and 0.2e6 <= student <= 0.3e6
    assert teacher > 3 * student


@pytest.mark.parametrize("name", SEG_MODELS)
def test_seg_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model = create(name).train()
    x, y = torch.rand(2, 3, 32, 32), torch.randint(0, 11, (2, 32, 32))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), "every parameter is connected"
    # timm zero-initialises each residual branch's last BN, so only those branches start with zero gradients
    zero = {n for n, g in grads.items() if not g.abs().sum() > 0}
    assert zero and all(n.startswith("encoder.stages.") and "_kxk" in n for n in zero)
    assert all(grads[n].abs().sum() > 0 for n in grads if n.split(".")[0] in ("lateral", "fuse", "classifier"))


def test_seg_stage_features_are_encoder_stages_then_the_decoder_map():
    model = create("seg_cnn_small").eval()
    assert stage_shapes(model, img_size=64) == [(16, 32, 32), (32, 16, 16), (64, 8, 8), (96, 4, 4), (32, 16, 16)]
    from kdlab.models.features import logits_and_stage_features

    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        logits, feats = logits_and_stage_features(model, x, [1, 4])
        assert torch.allclose(logits, model(x), atol=1e-5)
        assert torch.allclose(feats[1], model.forward_features(x), atol=1e-5)
        assert [f.shape[1:] for f in stage_features(model, x, 2)] == [(96, 4, 4), (32, 16, 16)]


def test_seg_models_plug_into_the_segmentation_distillers():
    from kdlab.methods.swtat import SWTaTSeg, feature_shape

    student, teacher = create("seg_cnn_small"), create("seg_cnn")
    assert feature_shape(student) == (32, 16, 16) and feature_shape(teacher) == (64, 16, 16)
    distiller = SWTaTSeg(student, teacher)
    logits, terms = distiller(torch.rand(2, 3, 64, 64), torch.randint(0, 11, (2, 64, 64)))
    assert logits.shape == (2, 11, 64, 64) and set(terms) == {"ce", "sw_tat", "pm_tat"}
    sum(terms.values()).backward()


@pytest.mark.parametrize("call, match", [
    (lambda: create("seg_cnn", img_size=62), "multiple of 4"),
    (lambda: create("seg_cnn_small")(torch.rand(1, 3, 62, 64)), "multiples of 4"),
    (lambda: create("seg_cnn_small").forward_features(torch.rand(3, 64, 64)), "multiples of 4"),
    (lambda: create("seg_cnn", widths=(8, 16, 32)), "4 stages"),
    (lambda: create("seg_cnn", decoder_dim=0), "decoder_dim"),
    (lambda: create("seg_cnn", num_classes=0), "num_classes"),
    (lambda: create("seg_cnn", stem_stride=2), "bad keyword"),
])
def test_seg_models_reject_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# the registry and the family files ------------------------------------------------------------------

FAMILY_FILES = ("cnn", "vit", "swin", "mixer", "mlp", "dense", "face")


def family_file(spec):
    """The file a registered model lives in: a classifier in its family's file, a dense-prediction model in
    ``dense.py``, a face embedder in ``face.py``."""
    return {"classification": spec.family, "segmentation": "dense", "depth": "dense", "face": "face"}[spec.task]


def test_the_registry_imports_no_model_file():
    import ast
    from pathlib import Path

    from kdlab.models import registry

    siblings = []
    for node in ast.walk(ast.parse(Path(registry.__file__).read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            siblings.append(f"from .{node.module or ''} import {', '.join(a.name for a in node.names)}")
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        siblings += [name for name in names if name.startswith("kdlab.models")]
    assert siblings == [], "registry.py holds the machinery only: the family files import it, not the reverse"


def test_every_model_is_registered_by_its_family_file():
    from kdlab.models import MODELS

    wrong = {name: spec.build.__module__ for name, spec in MODELS.items()
             if spec.build.__module__ != f"kdlab.models.{family_file(spec)}"}
    assert not wrong, f"registered outside their family file: {wrong}"
    assert {family_file(spec) for spec in MODELS.values()} == set(FAMILY_FILES), "every family file registers"


def test_family_of_reads_the_classes_the_family_files_registered():
    from timm.models.swin_transformer import SwinTransformer

    from kdlab.models import FAMILIES, FAMILY_CLASSES

    assert set(FAMILY_CLASSES.values()) == set(FAMILIES)
    plain = SwinTransformer(img_size=32, patch_size=2, window_size=4, embed_dim=8, depths=(1,), num_heads=(1,))
    assert family_of(plain) == "swin" and family_of(create("swin")) == "swin"


def test_register_rejects_a_second_name_and_unknown_families():
    from kdlab.models import register

    with pytest.raises(ValueError, match="registered once, got 'cnn'"):
        register("cnn", family="cnn")
    with pytest.raises(ValueError, match="family must be one of"):
        register("rnn", family="rnn")
    with pytest.raises(ValueError, match="task must be one of"):
        register("rnn", family="cnn", task="speech")


def test_the_mlp_reads_a_flat_vector_with_dropout_where_asked():
    from kdlab.models import MLP

    model = create("mlp", img_size=8, in_chans=1, hidden=(16, 8), dropout=0.5)
    assert isinstance(model, MLP) and family_of(model) == "mlp" and model(torch.rand(5, 1, 8, 8)).shape == (5, 10)
    assert [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)] == [16, 8, 10]
    model.eval()
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(model(x), model(x)), "dropout is off in eval mode"
    with pytest.raises(ValueError, match="dropout"):
        create("mlp", dropout=1.5)
