import pytest
import torch

from kdlab.models import create
from kdlab.models.hooks import attention_paths, capture_attention, capture_outputs, cls_attention


def test_vit_attention_rows_are_distributions_and_match_fused_output():
    model = create("vit").eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        fused = model(x)
    maps = capture_attention(model, x)
    assert list(maps) == [f"blocks.{i}.attn" for i in range(4)]
    att = maps["blocks.0.attn"]
    assert att.shape == (2, 3, 65, 65)  # 64 patches + class token
    assert torch.allclose(att.sum(-1), torch.ones(2, 3, 65), atol=1e-5)
    assert all(m.fused_attn == model.blocks[0].attn.fused_attn for m in [model.blocks[0].attn])
    with torch.no_grad():
        assert torch.allclose(model(x), fused, atol=1e-5)


def test_swin_window_attention_shapes():
    maps = capture_attention(create("swin"), torch.rand(2, 3, 32, 32), ["layers.0.blocks.1.attn"])
    assert maps["layers.0.blocks.1.attn"].shape == (2 * 16, 2, 16, 16)  # 4x4 windows of 4x4 tokens


def test_mode_is_restored_and_bad_paths_fail():
    model = create("vit").train()
    capture_attention(model, torch.rand(1, 3, 32, 32), ["blocks.3.attn"])
    assert model.training
    with pytest.raises(KeyError, match="no module"):
        capture_attention(model, torch.rand(1, 3, 32, 32), ["blocks.9.attn"])
    with pytest.raises(ValueError, match="not attention"):
        capture_attention(model, torch.rand(1, 3, 32, 32), ["blocks.0.mlp"])
    with pytest.raises(ValueError, match="no timm attention"):
        capture_attention(create("cnn_small"), torch.rand(1, 3, 32, 32))
    assert attention_paths(create("mixer")) == []


def test_capture_outputs_records_and_removes_hooks():
    model = create("cnn_small")
    with capture_outputs(model, ["stages.2"]) as store:
        model(torch.rand(2, 3, 32, 32))
    assert store["stages.2"].shape == (2, 64, 8, 8)
    assert not model.stages[2]._forward_hooks


# ------------------------------------------------------------------------------------------- cls attention
SMALL_VIT = dict(patch_size=8, embed_dim=128, num_heads=4)


@pytest.mark.parametrize("name,prefix", [("vit", 1), ("vit_distilled", 2)])
def test_cls_attention_is_the_head_mean_class_row_on_the_patch_grid(name, prefix):
    torch.manual_seed(0)
    model = create(name, **SMALL_VIT)
    x = torch.rand(3, 3, 32, 32)
    maps = cls_attention(model, x)
    assert model.num_prefix_tokens == prefix
    assert maps.shape == (3, 4, 4)  # 32 / 8 patches a side
    torch.testing.assert_close(maps.sum(dim=(1, 2)), torch.ones(3))
    assert (maps >= 0).all()
    att = capture_attention(model, x, ["blocks.3.attn"])["blocks.3.attn"]  # the last of 4 blocks
    row = att[:, :, 0, prefix:].mean(dim=1)
    torch.testing.assert_close(maps, (row / row.sum(dim=1, keepdim=True)).reshape(3, 4, 4))  # row-major grid
    first = capture_attention(model, x, ["blocks.0.attn"])["blocks.0.attn"][:, :, 0, prefix:].mean(dim=1)
    torch.testing.assert_close(cls_attention(model, x, block=0).flatten(1), first / first.sum(1, keepdim=True))
    torch.testing.assert_close(cls_attention(model, x, block=-4), cls_attention(model, x, block=0))


def test_cls_attention_rejects_models_without_a_class_token_and_bad_blocks():
    x = torch.rand(1, 3, 32, 32)
    for name in ("mixer", "swin", "cnn_small"):
        with pytest.raises(ValueError, match="needs a ViT with a class token"):
            cls_attention(create(name), x)
    with pytest.raises(ValueError, match="needs a ViT with a class token"):
        cls_attention(create("vit", class_token=False, global_pool="avg"), x)
    model = create("vit", **SMALL_VIT)
    for block in (4, -5, 1.0, True):
        with pytest.raises(ValueError, match=r"block \(of a 4-block ViT\) must be an int >= -4 and <= 3, got"):
            cls_attention(model, x, block=block)


def test_cls_attention_picks_one_head_and_their_mean_is_the_default():
    model = create("vit", patch_size=8).eval()
    x = torch.rand(2, 3, 32, 32)
    heads = torch.stack([cls_attention(model, x, 1, head) for head in range(model.blocks[1].attn.num_heads)])
    assert heads.shape[1:] == (2, 4, 4) and torch.allclose(heads.sum(dim=(2, 3)), torch.ones(len(heads), 2))
    with pytest.raises(ValueError, match="head"):
        cls_attention(model, x, 1, head=len(heads))


def test_class_activation_map_averages_to_the_logit():
    from kdlab.models import class_activation_map

    model = create("cnn_small").eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        logits = model(x)
        maps = class_activation_map(model, x)
        chosen = class_activation_map(model, x, torch.tensor([1, 2, 3]))
    top = logits.argmax(1)
    assert maps.shape == (3, 4, 4)
    assert torch.allclose(maps.mean(dim=(1, 2)) + model.head.fc.bias[top], logits[torch.arange(3), top], atol=1e-5)
    assert torch.allclose(chosen.mean(dim=(1, 2)) + model.head.fc.bias[[1, 2, 3]], logits[torch.arange(3), [1, 2, 3]],
                          atol=1e-5)
    with pytest.raises(ValueError, match="average-pooled linear head"):
        class_activation_map(create("vit", patch_size=8), x)
