import pytest
import torch

from kdlab.models import (count_parameters, create, family_of, list_models, map_to_tokens, pre_logits,
                          stage_features, stage_shapes, tokens_to_map)


@pytest.mark.parametrize("name", list_models())
def test_every_model_classifies_32px_batches(name):
    model = create(name, num_classes=7)
    out = model(torch.rand(3, 3, 32, 32))
    assert out.shape == (3, 7)
    assert model.kdlab_name == name and family_of(model) == model.kdlab_family


@pytest.mark.parametrize("name", list_models())
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
