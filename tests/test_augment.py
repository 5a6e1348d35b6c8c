"""kdlab.data.augment: vectorised crops and flips, masks transformed alike, determinism, bad inputs."""
import pytest
import torch
import torch.nn.functional as F

from kdlab.data.augment import CropFlip, crop_flip, random_crop, random_hflip

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def batch(n=32, c=3, h=12, w=10, seed=0, device="cpu"):
    """Distinct random values in (0, 1], so any two shifted windows differ and zero padding is visible."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, c, h, w, generator=g) * 0.9 + 0.1).to(device)


def gen(seed=0, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


def offsets_of(out, x, padding, mode="zeros"):
    """For each sample the (dy, dx) with out[i] == padded x[i] cropped at (dy, dx), or None."""
    padded = F.pad(x, (padding,) * 4, mode="constant" if mode == "zeros" else mode)
    h, w = x.shape[-2:]
    found = []
    for i in range(len(x)):
        hits = [(dy, dx) for dy in range(2 * padding + 1) for dx in range(2 * padding + 1)
                if torch.equal(out[i], padded[i, :, dy:dy + h, dx:dx + w])]
        found.append(hits[0] if len(hits) == 1 else None)
    return found


@pytest.mark.parametrize("device", DEVICES)
def test_shapes_and_dtype_are_preserved(device):
    x = batch(device=device)
    mask = torch.randint(0, 5, (32, 12, 10), device=device)
    for out in (random_crop(x, 3, gen(device=device)), random_hflip(x, 0.5, gen(device=device)),
                crop_flip()(x, generator=gen(device=device))):
        assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    out, out_mask = crop_flip()(x, mask, generator=gen(device=device))
    assert out.shape == x.shape and out_mask.shape == mask.shape and out_mask.dtype == torch.int64


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_crops_are_per_sample_translations(mode):
    x = batch(n=40)
    out = random_crop(x, padding=3, generator=gen(1), mode=mode)
    found = offsets_of(out, x, 3, mode)
    assert None not in found, "every output must equal its padded input at exactly one offset"
    assert len(set(found)) > 10, "samples must draw their own offsets"


def test_crop_offsets_follow_the_documented_draw():
    x = batch(n=16)
    out = random_crop(x, padding=2, generator=gen(5))
    expected = torch.randint(0, 5, (2, 16), generator=gen(5))
    assert offsets_of(out, x, 2) == list(zip(expected[0].tolist(), expected[1].tolist()))


def test_crop_with_zero_padding_is_identity():
    x = batch()
    assert torch.equal(random_crop(x, padding=0, generator=gen()), x)
    assert torch.equal(crop_flip(padding=0, p_flip=0.0)(x, generator=gen()), x)


def test_zero_padding_fills_with_zeros():
    x = batch(n=200)
    out = random_crop(x, padding=2, generator=gen(3))
    assert (out == 0).any(), "some crops must reach into the zero border"
    assert ((out == 0) | (out >= 0.1)).all()


def test_flip_applies_to_exactly_the_drawn_samples():
    x = batch(n=64)
    out = random_hflip(x, p=0.3, generator=gen(7))
    chosen = torch.rand(64, generator=gen(7)) < 0.3
    flipped = torch.tensor([torch.equal(out[i], x[i].flip(-1)) for i in range(64)])
    kept = torch.tensor([torch.equal(out[i], x[i]) for i in range(64)])
    assert torch.equal(flipped, chosen) and torch.equal(kept, ~chosen)
    assert 0 < int(chosen.sum()) < 64


def test_flip_probability_extremes():
    x = batch()
    assert torch.equal(random_hflip(x, p=0.0, generator=gen()), x)
    assert torch.equal(random_hflip(x, p=1.0, generator=gen()), x.flip(-1))


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
@pytest.mark.parametrize("device", DEVICES)
def test_mask_gets_the_same_transform(mode, device):
    g = torch.Generator().manual_seed(0)
    mask = torch.randint(1, 10, (64, 12, 10), generator=g).to(device)
    x = batch(n=64, device=device)
    x[:, 0] = mask.float()  # channel 0 carries the labels, so image and mask must stay aligned
    out, out_mask = crop_flip(padding=3, p_flip=0.5, mode=mode)(x, mask, generator=gen(2, device))
    assert torch.equal(out[:, 0].long(), out_mask)
    if mode == "zeros":
        assert (out_mask == 0).any(), "the zero border must be background (label 0) in the mask"
    else:
        assert (out_mask > 0).all()
    assert not torch.equal(out_mask, mask)


def test_functions_return_mask_only_when_given():
    x, mask = batch(), torch.zeros(32, 12, 10, dtype=torch.long)
    assert isinstance(random_crop(x, 2), torch.Tensor)
    assert isinstance(random_hflip(x, mask=mask), tuple) and isinstance(random_crop(x, mask=mask), tuple)


def test_same_generator_seed_same_output():
    x, aug = batch(), crop_flip(padding=4)
    assert torch.equal(aug(x, generator=gen(11)), aug(x, generator=gen(11)))
    assert not torch.equal(aug(x, generator=gen(11)), aug(x, generator=gen(12)))


@pytest.mark.parametrize("call, match", [
    (lambda x: random_crop(x[0]), r"x must have 4 dimensions, got shape \(3, 12, 10\)"),
    (lambda x: random_hflip(x.numpy()), "x must be a tensor, got ndarray"),
    (lambda x: random_crop(x, padding=-1), "padding"),
    (lambda x: random_crop(x, padding=1.5), "padding"),
    (lambda x: random_crop(x, padding=12, mode="reflect"), "reflect"),
    (lambda x: random_crop(x, mode="wrap"), "mode"),
    (lambda x: random_hflip(x, p=1.5), "p must be a finite number >= 0 and <= 1, got 1.5"),
    (lambda x: random_hflip(x, p=-0.1), "p must be a finite number >= 0 and <= 1"),
    (lambda x: crop_flip(p_flip=2.0), "p_flip must be a finite number >= 0 and <= 1"),
    (lambda x: CropFlip(padding=-2), "padding"),
    (lambda x: crop_flip()(x, torch.zeros(32, 10, 12, dtype=torch.long)), "mask"),
    (lambda x: random_crop(x, generator=42), "generator"),
])
def test_bad_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call(batch())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_generator_device_rules():
    x = batch(device="cuda")
    with pytest.raises(ValueError, match="generator is on cpu"):
        crop_flip()(x, generator=gen())
    a = crop_flip()(x, generator=gen(3, "cuda"))
    assert torch.equal(a, crop_flip()(x, generator=gen(3, "cuda")))
    assert None not in offsets_of(random_crop(x, 2, gen(4, "cuda")).cpu(), x.cpu(), 2)


def test_standard_augment_keeps_shape_masks_on_their_objects():
    """On 64 px shape scenes (flat-coloured objects) every mask pixel still lies on its object's colour."""
    from kdlab.data import make_shapes, standard_augment

    scenes = make_shapes(16, img_size=64, seed=0, noise=0.0)
    colour = torch.stack([scenes.x[i][:, scenes.mask[i] > 0][:, 0] for i in range(len(scenes))])  # (N, 3)
    x, mask = standard_augment()(scenes.x, scenes.mask, generator=gen(5))
    assert x.shape == scenes.x.shape and mask.shape == scenes.mask.shape and not torch.equal(mask, scenes.mask)
    on_object = mask > 0
    assert torch.equal(x.permute(0, 2, 3, 1)[on_object], colour[:, None, None].expand(-1, 64, 64, 3)[on_object])
    assert set(mask.unique().tolist()) <= set(scenes.mask.unique().tolist())


def test_translate_moves_pixels_and_fills_the_border_with_zeros():
    from kdlab.data import translate

    x = torch.zeros(2, 1, 5, 5)
    x[:, 0, 1, 1] = 1.0
    assert translate(x, 2, 1)[0, 0].nonzero().tolist() == [[3, 2]]
    assert translate(x, -1, -1)[0, 0].nonzero().tolist() == [[0, 0]]
    assert torch.equal(translate(x, 0, 0), x)
    assert translate(torch.ones(1, 3, 4, 4), 1, 0)[0, :, 0].sum() == 0  # the uncovered row is zero
    with pytest.raises(ValueError, match="dy"):
        translate(x, 5, 0)


def test_rotate_turns_counter_clockwise_as_displayed_and_keeps_the_identity():
    from kdlab.data import rotate

    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 4] = 1.0  # the middle of the right edge
    assert rotate(x, 90)[0, 0].round(decimals=3).nonzero().tolist() == [[0, 2]]  # -> the middle of the top edge
    assert torch.allclose(rotate(x, 0), x, atol=1e-6)
    assert torch.allclose(rotate(rotate(x, 90), -90), x, atol=1e-5)
    with pytest.raises(ValueError, match="floating"):
        rotate(torch.zeros(1, 1, 4, 4, dtype=torch.int64), 10)
