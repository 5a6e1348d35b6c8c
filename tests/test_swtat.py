import inspect
import itertools

import pytest
import torch
import torch.nn.functional as F
from timm.models.swin_transformer import SwinTransformerBlock
from timm.models.swin_transformer import window_partition as timm_window_partition
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from kdlab.methods.swtat import (PatchMergingTaTLoss, SWTaT, SWTaTLoss, SWTaTSeg, TaT, TaTEmbedding, TaTPatchGroup,
                                 additive_mask, anchor_tat_loss, attention_weights, effective_window, embed_maps,
                                 feature_shape, from_windows, global_attention, patch_group_tat_loss,
                                 shifted_window_mask, swtat_loss, tat_cost, tat_loss, to_windows, window_attention,
                                 position_attention, swtat_rebuild, union_window_attention, window_layout,
                                 window_partition, window_reverse, window_tat_loss)
from kdlab.methods import METHODS
from kdlab.models import create, stage_features

ID = nn.Identity()
IDS = (ID, ID, ID)


def maps(b=2, c=6, h=7, w=9, c_s=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c_s or c, h, w, generator=g), torch.randn(b, c, h, w, generator=g)


# ------------------------------------------------------------------------------ reference constructions


def reference_labels(h, w, m, s):
    """Swin's reference img_mask on the padded canvas, by slicing (as the official code writes it)."""
    hp, wp = -(-h // m) * m, -(-w // m) * m
    labels = torch.zeros(hp, wp, dtype=torch.long)
    slices = (slice(0, -m), slice(-m, -s), slice(-s, None)) if s else (slice(0, None),)
    for cnt, (hs, ws) in enumerate(itertools.product(slices, slices)):
        labels[hs, ws] = cnt
    return labels


def slot_positions(h, w, m, s):
    """(n_W, M^2) original flat index of every window slot after pad -> roll (-1 for padding), by loops."""
    hp, wp = -(-h // m) * m, -(-w // m) * m
    slots = []
    for r in range(hp // m):
        for c in range(wp // m):
            window = []
            for y in range(m):
                for x in range(m):
                    oy, ox = (r * m + y + s) % hp, (c * m + x + s) % wp  # rolled[y] = padded[(y + s) mod H_p]
                    window.append(oy * w + ox if oy < h and ox < w else -1)
            slots.append(window)
    return torch.tensor(slots)


def allowed_pairs(mask, slots, n):
    """The (n, n) set of real (query, key) pairs the windowed mask allows, in original flat indices."""
    allowed = torch.zeros(n, n, dtype=torch.bool)
    for wdx in range(slots.shape[0]):
        for i, j in itertools.product(range(slots.shape[1]), repeat=2):
            if slots[wdx, i] >= 0 and slots[wdx, j] >= 0 and mask[wdx, i, j]:
                allowed[slots[wdx, i], slots[wdx, j]] = True
    return allowed


def oracle_pairs(h, w, m, s):
    """Spec §2.5's semantic oracle: real tokens attend iff cell(y) and cell(x) match, cell(p) = 0 if p < s else
    floor((p - s) / M) + 1."""
    def cell(p):
        return 0 if p < s else (p - s) // m + 1
    cells = [(cell(y), cell(x)) for y in range(h) for x in range(w)]
    return torch.tensor([[a == b for b in cells] for a in cells])


def reference_window_tat(q, k, v, target, m, s):
    """Per-position loops over keys: windows (s = 0) or the oracle's cells (s > 0), real positions only."""
    b, _, h, w = target.shape
    def cell(p):
        return p // m if s == 0 else (0 if p < s else (p - s) // m + 1)
    out = torch.zeros_like(target, dtype=torch.float64)
    for n, y, x in itertools.product(range(b), range(h), range(w)):
        keys = [(yy, xx) for yy in range(h) for xx in range(w) if cell(yy) == cell(y) and cell(xx) == cell(x)]
        logits = torch.stack([q[n, :, y, x].double() @ k[n, :, yy, xx].double() for yy, xx in keys])
        weights = logits.softmax(0)
        out[n, :, y, x] = sum(wt * v[n, :, yy, xx].double() for wt, (yy, xx) in zip(weights, keys))
    return ((out - target.double()) ** 2).mean()


# ------------------------------------------------------------------------------ partition and mask


@pytest.mark.parametrize("window", [4, (2, 3)])
def test_partition_and_reverse_are_exact_inverses_in_row_major_order(window):
    x = torch.randn(2, 8, 12, 5)
    wh, ww = (window, window) if isinstance(window, int) else window
    windows = window_partition(x, window)
    n_w = (8 // wh) * (12 // ww)
    assert windows.shape == (2 * n_w, wh * ww, 5)
    assert torch.equal(window_reverse(windows, window, 8, 12), x)
    for b, r, c, y, xx in [(0, 0, 0, 0, 0), (1, 1, 2, 1, 1), (1, 8 // wh - 1, 12 // ww - 1, wh - 1, ww - 1)]:
        w_index, t_index = b * n_w + r * (12 // ww) + c, y * ww + xx
        assert torch.equal(windows[w_index, t_index], x[b, r * wh + y, c * ww + xx])


def test_partition_matches_timm_and_to_windows_inverts_for_any_size():
    x = torch.randn(2, 8, 8, 3)
    assert torch.equal(window_partition(x, 4), timm_window_partition(x, (4, 4)).flatten(1, 2))
    fmap = torch.randn(2, 3, 7, 9)
    for window, shift in [(4, 0), (4, 2), (3, 1), ((2, 4), (1, 3))]:
        windows = to_windows(fmap, window, shift)
        assert torch.equal(from_windows(windows, window, shift, 7, 9), fmap)


@pytest.mark.parametrize("h, w, m, s", [(8, 8, 4, 2), (12, 8, 4, 1), (7, 9, 4, 2), (9, 9, 7, 3), (10, 10, 4, 2),
                                        (5, 11, 3, 1), (8, 8, 4, 0), (7, 9, 4, 0)])
def test_mask_is_the_canonical_band_construction_with_padding_kept_apart(h, w, m, s):
    mask = shifted_window_mask(h, w, m, s)
    hp, wp = -(-h // m) * m, -(-w // m) * m
    assert mask.shape == ((hp // m) * (wp // m), m * m, m * m) and mask.dtype == torch.bool
    ids = timm_window_partition(reference_labels(h, w, m, s)[None, :, :, None], (m, m)).flatten(1)
    canonical = ids[:, :, None] == ids[:, None, :]
    real = slot_positions(h, w, m, s) >= 0
    both_real = real[:, :, None] & real[:, None, :]
    assert torch.equal(mask[both_real], canonical[both_real])
    assert not mask[real[:, :, None] & ~real[:, None, :]].any(), "real queries never see padded keys"
    assert mask[~real[:, :, None] & ~real[:, None, :]].all()


def test_mask_invariants_and_no_mask_without_shift_on_divisible_maps():
    for h, w, m, s in [(7, 9, 4, 2), (9, 9, 7, 3), (12, 12, 4, 2), (5, 6, 2, 1)]:
        mask = shifted_window_mask(h, w, m, s)
        assert torch.equal(mask, mask.transpose(1, 2))
        assert mask.diagonal(dim1=1, dim2=2).all(), "every query may attend to itself: no fully masked row"
    assert shifted_window_mask(12, 8, 4, 0).all()


def test_classic_swin_3x3_regions_on_an_8x8_map():
    mask = shifted_window_mask(8, 8, 4, 2)
    regions = [len(torch.unique(mask[w], dim=0)) for w in range(4)]
    assert regions == [1, 2, 2, 4]  # top-left whole; right and bottom split in two; bottom-right in four
    corner = mask[3].view(4, 4, 4, 4)  # (query y, x, key y, x) in the rolled window
    assert corner[0, 0, 1, 1] and not corner[0, 0, 0, 2] and not corner[0, 0, 2, 0] and not corner[0, 0, 3, 3]
    for size, window, shift in [(8, 4, 2), (12, 4, 2), (14, 7, 3), (8, 4, 1)]:
        block = SwinTransformerBlock(8, (size, size), num_heads=2, window_size=window, shift_size=shift)
        assert torch.equal(block.attn_mask == 0, shifted_window_mask(size, size, window, shift))


@pytest.mark.parametrize("m", [2, 3, 4])
def test_pad_then_roll_matches_the_semantic_oracle_for_every_shift_and_size(m):
    for s, h in itertools.product(range(1, m), range(m + 1, 3 * m + 1)):
        for w in (h, h + 1):
            mask = shifted_window_mask(h, w, m, s)
            assert torch.equal(allowed_pairs(mask, slot_positions(h, w, m, s), h * w), oracle_pairs(h, w, m, s)), \
                (h, w, m, s)


@pytest.mark.parametrize("size, m, s, wrong_allowed, wrong_blocked", [(7, 4, 2, 80, 80), (9, 7, 3, 1128, 344),
                                                                       (10, 4, 2, 0, 0)])
def test_timm_roll_then_pad_order_breaks_the_oracle_as_the_spec_counts(size, m, s, wrong_allowed, wrong_blocked):
    """Why kdlab pads first: timm rolls the unpadded map, pads, and masks as if the padded canvas had rolled."""
    hp = -(-size // m) * m
    slots = []
    for r, c in itertools.product(range(hp // m), repeat=2):
        window = []
        for y, x in itertools.product(range(m), repeat=2):
            py, px = r * m + y, c * m + x
            real = py < size and px < size
            window.append(((py + s) % size) * size + (px + s) % size if real else -1)
        slots.append(window)
    ids = timm_window_partition(reference_labels(size, size, m, s)[None, :, :, None], (m, m)).flatten(1)
    timm = allowed_pairs(ids[:, :, None] == ids[:, None, :], torch.tensor(slots), size * size)
    oracle = oracle_pairs(size, size, m, s)
    assert ((timm & ~oracle).sum().item(), (oracle & ~timm).sum().item()) == (wrong_allowed, wrong_blocked)


def test_effective_window_disables_the_shift_on_short_axes():
    assert effective_window(7, 9, 8, 4) == ((7, 8), (0, 4))
    assert effective_window(16, 16, 4, 2) == ((4, 4), (2, 2))
    assert effective_window(4, 4, 4, 2) == ((4, 4), (0, 0))


def test_masked_keys_get_exactly_zero_weight_even_past_a_gap_of_100():
    allowed = torch.tensor([[True, False], [False, True]])
    q = torch.tensor([[1.0], [1.0]])
    k = torch.tensor([[0.0], [1000.0]])  # query 0's masked key beats its allowed one by 1000
    weights = attention_weights(q, k, allowed)
    assert torch.equal(weights, torch.eye(2))
    additive = additive_mask(shifted_window_mask(7, 9, 4, 2))
    assert set(additive.unique().tolist()) == {0.0, torch.finfo(torch.float32).min}
    assert additive_mask(allowed, torch.float16).min() == torch.finfo(torch.float16).min
    fs, ft = maps(c=64)
    assert torch.isfinite(window_tat_loss(fs * 30, ft, *IDS, window=4, shift=2))


# ------------------------------------------------------------------------------------------ TaT


def test_global_attention_rows_sum_to_one_and_both_query_sides_follow_their_formulas():
    s, t = maps(b=2, c=5, h=3, w=4)
    s_tok, t_tok = s.flatten(2).transpose(1, 2), t.flatten(2).transpose(1, 2)
    attn = attention_weights(s_tok, t_tok)
    assert torch.allclose(attn.sum(-1), torch.ones(2, 12))
    student_query = torch.softmax(s_tok @ t_tok.transpose(1, 2), -1)  # softmax over teacher keys
    teacher_query = torch.softmax(t_tok @ s_tok.transpose(1, 2), -1)  # softmax over student keys
    assert torch.allclose(attn, student_query)
    for side, a in (("student", student_query), ("teacher", teacher_query)):
        out = (a @ s_tok).transpose(1, 2).reshape(2, 5, 3, 4)  # values: the student map
        assert torch.allclose(tat_loss(s, t, *IDS, query_side=side), F.mse_loss(out, t), atol=1e-6)
    assert not torch.allclose(tat_loss(s, t, *IDS, query_side="student"), tat_loss(s, t, *IDS, query_side="teacher"))


def test_scale_divides_the_logits_by_sqrt_d():
    s, t = maps(c=16)
    scaled_query = nn.Identity()
    scaled_query.forward = lambda x: x / 4.0
    assert torch.allclose(tat_loss(s, t, *IDS, scale=True), tat_loss(s, t, scaled_query, ID, ID), atol=1e-6)


@pytest.mark.parametrize("h, w, window", [(7, 9, 9), (7, 9, 16), (8, 8, 8), (6, 10, (6, 12))])
def test_window_covering_the_map_without_shift_is_global_tat(h, w, window):
    s, t = maps(c=6, c_s=4, h=h, w=w)
    embedding = TaTEmbedding((4, h, w), (6, h, w)).eval()
    torch.testing.assert_close(window_tat_loss(s, t, *embedding.qkv, window=window),
                               tat_loss(s, t, *embedding.qkv), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(window_tat_loss(s, t, *embedding.qkv, window=window, shift=2),
                               tat_loss(s, t, *embedding.qkv), rtol=1e-6, atol=1e-7)  # shift disabled on short axes


@pytest.mark.parametrize("h, w, m, s", [(7, 9, 4, 2), (7, 9, 4, 0), (6, 5, 3, 1), (8, 8, 4, 2)])
def test_window_tat_equals_a_loop_reference_over_real_positions_only(h, w, m, s):
    fs, ft = maps(b=1, c=3, h=h, w=w)
    expected = reference_window_tat(fs, ft, fs, ft, m, s)
    assert torch.allclose(window_tat_loss(fs, ft, *IDS, window=m, shift=s).double(), expected, atol=1e-6)


def test_windows_are_local_and_the_shifted_pass_differs():
    q, k, v = torch.randn(3, 1, 4, 8, 8).unbind(0)
    out = window_attention(q, k, v, 4)
    v2 = v.clone()
    v2[..., :4, :4] += 10  # top-left window only
    changed = (window_attention(q, k, v2, 4) != out).any(1)[0]
    assert changed[:4, :4].all() and not changed[4:, :].any() and not changed[:, 4:].any()
    fs, ft = maps(h=8, w=8)
    assert not torch.allclose(window_tat_loss(fs, ft, *IDS, window=4), window_tat_loss(fs, ft, *IDS, window=4, shift=2))


def test_mse_is_unchanged_when_output_and_target_roll_together():
    a, b = maps()
    rolled = [torch.roll(x, (-2, -3), (2, 3)) for x in (a, b)]
    assert torch.allclose(F.mse_loss(*rolled), F.mse_loss(a, b))


@pytest.mark.parametrize("window", [None, 4, 3])
def test_logit_and_mac_counts_match_the_cost_formulas(window):
    h, w, c = 7, 9, 8
    q, k, v = torch.randn(3, 1, c, h, w).unbind(0)
    with FlopCounterMode(display=False) as counter:
        global_attention(q, k, v) if window is None else window_attention(q, k, v, window)
    cost = tat_cost(h, w, c, window)
    assert counter.get_total_flops() == 2 * cost["macs"] == 4 * c * cost["logits"]
    expected_logits = (h * w) ** 2 if window is None else (-(-h // window) * window) * (-(-w // window) * window) * window**2
    assert cost["logits"] == expected_logits


# ------------------------------------------------------------------------------- SW-TaT stacking


def test_sequential_stacking_runs_the_shifted_pass_on_the_regular_output():
    fs, ft = maps(h=8, w=8, c_s=4)
    first, second = TaTEmbedding((4, 8, 8), (6, 8, 8)).eval(), TaTEmbedding((6, 8, 8), (6, 8, 8)).eval()
    loss = swtat_loss(fs, ft, *first.qkv, window=4, second=second.qkv)
    regular = window_attention(*first(fs, ft), 4, 0)
    expected = F.mse_loss(window_attention(*second(regular, ft), 4, 2), ft)
    assert torch.allclose(loss, expected)
    parallel = swtat_loss(fs, ft, *first.qkv, window=4, stacking="parallel")
    halves = [window_tat_loss(fs, ft, *first.qkv, window=4, shift=s) for s in (0, 2)]
    assert torch.allclose(parallel, sum(halves) / 2)
    assert not torch.allclose(swtat_loss(fs, ft, *first.qkv, window=4, shift=1, second=second.qkv), loss)


def test_gradients_reach_the_embeddings_and_the_student_never_the_teacher():
    fs, ft = maps(h=8, w=8, c_s=4)
    fs.requires_grad_(True)
    module = SWTaTLoss((4, 8, 8), (6, 8, 8), window=4, teacher_embedding=True)
    module(fs, ft).backward()
    assert fs.grad is not None and fs.grad.abs().sum() > 0 and ft.grad is None
    assert all(p.grad is not None for p in module.parameters())
    assert isinstance(SWTaTLoss((4, 8, 8), (6, 8, 8)).embedding.key, nn.Identity)
    assert SWTaTLoss((4, 8, 8), (6, 8, 8), stacking="parallel").shifted_embedding is None


def test_teacher_query_embedding_swaps_the_roles():
    student_query, teacher_query = TaTEmbedding((4, 5, 5), (6, 5, 5)), TaTEmbedding((4, 5, 5), (6, 5, 5), "teacher")
    assert isinstance(student_query.key, nn.Identity) and isinstance(teacher_query.query, nn.Identity)
    fs, ft = maps(h=5, w=5, c_s=4)
    q, k, v = teacher_query(fs, ft)
    assert torch.equal(q, ft) and k.shape == v.shape == ft.shape


def test_embeddings_resize_the_student_map_to_the_teacher_map():
    fs, ft = maps(h=8, w=8, c_s=4)
    small_teacher = ft[:, :, :4, :4]
    embedding = TaTEmbedding((4, 8, 8), (6, 4, 4))
    assert all(m.shape == (2, 6, 4, 4) for m in embedding(fs, small_teacher))


# ------------------------------------------------------------------------------ TaT's patch groups


def test_patch_groups_sum_the_per_patch_logits_over_each_group():
    fs, ft = maps(b=1, c=3, h=9, w=8)  # 9 rows: one leftover row is dropped with 2x2 patches of 4x4
    loss = patch_group_tat_loss(fs, ft, *IDS, patches=2, group_size=2)
    patch = lambda x, i, j: x[0, :, 4 * i:4 * i + 4, 4 * j:4 * j + 4].flatten(1).T  # (16, C)
    total = 0.0
    for group in ([(0, 0), (0, 1)], [(1, 0), (1, 1)]):
        logits = sum(patch(fs, *p) @ patch(ft, *p).T for p in group)
        weights = logits.softmax(-1)
        total = total + sum(((weights @ patch(fs, *p) - patch(ft, *p)) ** 2).sum() for p in group)
    assert torch.allclose(loss, total / (3 * 8 * 8), atol=1e-6)
    single = patch_group_tat_loss(fs[..., :8, :], ft[..., :8, :], *IDS, patches=2, group_size=1)
    assert torch.allclose(single, window_tat_loss(fs[..., :8, :], ft[..., :8, :], *IDS, window=4), atol=1e-6)


def test_anchor_points_run_global_tat_on_pooled_maps():
    fs, ft = maps(h=8, w=12, c_s=4)
    embedding = TaTEmbedding((4, 8, 12), (6, 8, 12)).eval()
    pooled = [F.avg_pool2d(m, (2, 4)) for m in embedding(fs, ft)]
    expected = F.mse_loss(global_attention(*pooled), F.avg_pool2d(ft, (2, 4)))
    assert torch.allclose(anchor_tat_loss(fs, ft, *embedding.qkv, anchors=(4, 3)), expected)


# ---------------------------------------------------------------------------------- patch merging


def test_patch_merging_is_tat_on_space_to_depth_maps_level_by_level():
    fs, ft = maps(h=8, w=8, c_s=4)
    pm = PatchMergingTaTLoss((4, 8, 8), (6, 8, 8), levels=2).eval()
    assert [tuple(e.value.proj[0].weight.shape[:2]) for e in pm.embeddings] == [(24, 16), (96, 64)]
    levels, s, t = [], fs, ft
    for embedding in pm.embeddings:
        s, t = F.pixel_unshuffle(s, 2), F.pixel_unshuffle(t, 2)
        levels.append(tat_loss(s, t, *embedding.qkv))
    assert torch.allclose(pm(fs, ft), sum(levels) / 2)
    windowed = PatchMergingTaTLoss((4, 8, 8), (6, 8, 8), window=2, max_global_tokens=8).eval()
    s1, t1 = F.pixel_unshuffle(fs, 2), F.pixel_unshuffle(ft, 2)
    assert torch.allclose(windowed(fs, ft), window_tat_loss(s1, t1, *windowed.embeddings[0].qkv, window=2))


def test_swin_merger_is_learnable_on_the_student_side_only():
    fs, ft = maps(h=8, w=8, c_s=4)
    pm = PatchMergingTaTLoss((4, 8, 8), (6, 8, 8), levels=2, student_merge="swin")
    pm(fs, ft).backward()
    merger = pm.mergers[0][1]
    assert merger.norm.normalized_shape == (16,) and merger.reduction.weight.shape == (24, 16)
    assert all(p.grad is not None for p in pm.parameters())
    with pytest.raises(ValueError, match="even map sides"):
        PatchMergingTaTLoss((4, 6, 6), (6, 6, 6), levels=2)


# ------------------------------------------------------------------------------------- distillers


def batch(n=2, size=32):
    torch.manual_seed(0)
    return torch.rand(n, 3, size, size), torch.randint(0, 10, (n,))


@pytest.mark.parametrize("make, term", [(lambda s, t: TaT(s, t, stages=(2, 3)), "tat"),
                                        (lambda s, t: SWTaT(s, t, stages=(2, 2), sw_tat_weight=0.2), "sw_tat")])
def test_classification_distillers(make, term):
    student, teacher = create("cnn_small"), create("cnn")
    distiller = make(student, teacher).train()
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    x, y = batch()
    logits, terms = distiller(x, y)
    assert logits.shape == (2, 10) and set(terms) == {"ce", "kd", term} and terms[term] > 0
    assert torch.allclose(terms["ce"], 0.5 * F.cross_entropy(logits, y))
    sum(terms.values()).backward()
    extra = [p for n, p in distiller.named_parameters() if not n.startswith(("student.", "teacher."))]
    assert extra and all(p.grad is not None for p in extra)
    first_stage = [p for n, p in student.named_parameters() if n.startswith("stem")]
    assert first_stage and all(p.grad is not None for p in first_stage)
    assert all(p.grad is None for p in teacher.parameters())
    assert not {id(p) for p in distiller.trainable_parameters()} & {id(p) for p in teacher.parameters()}
    distiller.eval()
    assert torch.equal(distiller.predict(x), student(x))


def test_sw_tat_term_is_the_weighted_loss_of_the_chosen_stages():
    student, teacher = create("cnn_small"), create("cnn")
    distiller = SWTaT(student, teacher, stages=(1, 2), window=4, sw_tat_weight=0.3).eval()
    assert distiller.student_shape == (16, 32, 32) and distiller.teacher_shape == (64, 16, 16)
    x, y = batch()
    _, terms = distiller(x, y)
    with torch.no_grad():
        fs, ft = stage_features(student, x, [0])[0], stage_features(teacher, x, [1])[0]
        expected = distiller.sw(fs, ft)
    assert torch.allclose(terms["sw_tat"], 0.3 * expected)


class TinySeg(nn.Module):
    """A stand-in segmentation model with kdlab's interface: forward_features -> map, forward_head -> logits."""

    def __init__(self, width, stride=2, num_classes=3):
        super().__init__()
        self.stride = stride
        self.encoder = nn.Sequential(nn.Conv2d(3, width, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(width))
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward_features(self, x):
        return self.encoder(x)

    def forward_head(self, feat):
        return F.interpolate(self.classifier(F.relu(feat)), scale_factor=self.stride, mode="bilinear")

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


@pytest.mark.parametrize("make, terms", [
    (lambda s, t: SWTaTSeg(s, t, img_size=16), {"ce", "sw_tat", "pm_tat"}),
    (lambda s, t: SWTaTSeg(s, t, pm_levels=0, stacking="parallel", img_size=16), {"ce", "sw_tat"}),
    (lambda s, t: SWTaTSeg(s, t, pm_levels=2, student_merge="swin", query_side="teacher", img_size=16),
     {"ce", "sw_tat", "pm_tat"}),
    (lambda s, t: TaTPatchGroup(s, t, patches=2, group_size=2, anchors=2, img_size=16),
     {"ce", "patch_tat", "anchor_tat"}),
])
def test_segmentation_distillers_with_a_stand_in_encoder_decoder(make, terms):
    student, teacher = TinySeg(4), TinySeg(8)
    distiller = make(student, teacher).train()
    assert distiller.student_shape == (4, 8, 8) and distiller.teacher_shape == (8, 8, 8)
    x, y = torch.rand(2, 3, 16, 16), torch.randint(0, 3, (2, 16, 16))
    y[0, 0, 0] = -100
    logits, out = distiller(x, y)
    assert logits.shape == (2, 3, 16, 16) and set(out) == terms and all(torch.isfinite(v) for v in out.values())
    assert torch.allclose(out["ce"], F.cross_entropy(logits, y))
    sum(out.values()).backward()
    assert all(p.grad is not None for p in distiller.trainable_parameters())
    assert all(p.grad is None for p in teacher.parameters()) and not teacher.training


def test_segmentation_distiller_resizes_a_finer_student_map():
    student, teacher = TinySeg(4, stride=2), TinySeg(8, stride=4)
    distiller = SWTaTSeg(student, teacher, window=2, img_size=16)
    assert feature_shape(teacher, 16) == (8, 4, 4)
    _, terms = distiller(torch.rand(2, 3, 16, 16), torch.randint(0, 3, (2, 16, 16)))
    assert set(terms) == {"ce", "sw_tat", "pm_tat"}


# ------------------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_clear_errors():
    fs, ft = maps(h=8, w=8)
    with pytest.raises(ValueError, match="B, C, H, W"):
        tat_loss(fs[0], ft, *IDS)
    with pytest.raises(ValueError, match="same batch"):
        tat_loss(fs[:1], ft, *IDS)
    with pytest.raises(ValueError, match="embeddings must give"):
        tat_loss(fs, ft[:, :3], *IDS)
    with pytest.raises(ValueError, match="query_side"):
        tat_loss(fs, ft, *IDS, query_side="both")
    for window, shift in [(0, 0), (True, 0), (4, 4), (4, -1), ((4,), 0), (2.5, 0)]:
        with pytest.raises(ValueError, match="window|shift"):
            window_tat_loss(fs, ft, *IDS, window=window, shift=shift)
    with pytest.raises(ValueError, match="stacking"):
        swtat_loss(fs, ft, *IDS, window=4, stacking="stacked")
    with pytest.raises(ValueError, match="second"):
        swtat_loss(fs, ft, *IDS, window=4)
    with pytest.raises(ValueError, match="second"):
        swtat_loss(fs, ft, *IDS, window=4, second=IDS, stacking="parallel")
    with pytest.raises(ValueError, match="multiples of the window"):
        window_partition(torch.randn(1, 7, 8, 2), 4)
    with pytest.raises(ValueError, match="windows of a"):
        window_reverse(torch.randn(3, 16, 2), 4, 8, 8)
    with pytest.raises(ValueError, match="height must be an int >= 1"):
        shifted_window_mask(0, 8, 4, 2)
    with pytest.raises(ValueError, match="patches"):
        patch_group_tat_loss(fs, ft, *IDS, patches=9)
    with pytest.raises(ValueError, match="group_size"):
        patch_group_tat_loss(fs, ft, *IDS, patches=3, group_size=2)
    with pytest.raises(ValueError, match="anchors"):
        anchor_tat_loss(fs, ft, *IDS, anchors=9)
    with pytest.raises(ValueError, match="student_merge"):
        PatchMergingTaTLoss((6, 8, 8), (6, 8, 8), student_merge="conv")
    with pytest.raises(ValueError, match="levels"):
        PatchMergingTaTLoss((6, 8, 8), (6, 8, 8), levels=0)
    with pytest.raises(ValueError, match="B, C, H, W"):
        embed_maps(fs, ft.flatten(2), *IDS)


def test_bad_distiller_arguments_raise():
    student, teacher = create("cnn_small"), create("cnn")
    for stages in [(5, 1), (1, 0), (1,), 3, (True, 1)]:
        with pytest.raises(ValueError, match="one 1-based"):
            TaT(student, teacher, stages=stages)
    with pytest.raises(ValueError, match="sw_tat_weight"):
        SWTaT(student, teacher, sw_tat_weight=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        TaT(student, teacher, temperature=0.0)
    with pytest.raises(ValueError, match="shift"):
        SWTaT(student, teacher, window=4, shift=4)
    with pytest.raises(ValueError, match="forward_features"):
        SWTaTSeg(nn.Conv2d(3, 4, 3), TinySeg(4), img_size=16)
    with pytest.raises(ValueError, match="pm_levels"):
        SWTaTSeg(TinySeg(4), TinySeg(8), pm_levels=-1, img_size=16)
    with pytest.raises(ValueError, match="anchor_tat_weight"):
        TaTPatchGroup(TinySeg(4), TinySeg(8), anchor_tat_weight=float("nan"), img_size=16)


@pytest.mark.parametrize("height, width, window, shift", [(8, 8, 4, 2), (7, 10, 4, 1), (5, 5, 4, 3), (9, 6, 3, 1)])
def test_window_layout_agrees_with_the_mask(height, width, window, shift):
    """Two real positions share a window and a region label exactly where the mask lets them attend."""
    window_id, region = window_layout(height, width, window, shift)
    mask = shifted_window_mask(height, width, window, shift)
    tokens = to_windows(torch.arange(1.0, height * width + 1).view(1, 1, height, width), window, shift)[0, ..., 0]
    for w, positions in enumerate(tokens):
        real = positions > 0  # 0 is padding
        index = (positions[real] - 1).long()
        assert (window_id.flatten()[index] == w).all()
        ids, labels = window_id.flatten()[index], region.flatten()[index]
        same = (ids[:, None] == ids[None, :]) & (labels[:, None] == labels[None, :])
        assert torch.equal(same, mask[w][real][:, real])


def test_position_attention_is_one_row_of_the_global_or_windowed_attention():
    torch.manual_seed(0)
    q, k = torch.randn(2, 8, 8, 8), torch.randn(2, 8, 8, 8)
    full = attention_weights(q.flatten(2).transpose(1, 2), k.flatten(2).transpose(1, 2))  # (B, N, N)
    assert torch.allclose(position_attention(q, k, (3, 5)).flatten(1), full[:, 3 * 8 + 5], atol=1e-6)
    assert torch.allclose(position_attention(q, k, (3, 5), window=8), position_attention(q, k, (3, 5)), atol=1e-6)
    shifted = position_attention(q, k, (0, 0), window=4, shift=2)
    window_id, region = window_layout(8, 8, 4, 2)
    outside = (window_id != window_id[0, 0]) | (region != region[0, 0])
    assert shifted[:, outside].abs().max() == 0 and torch.allclose(shifted.sum((1, 2)), torch.ones(2))
    assert (shifted[:, ~outside] > 0).all() and (~outside).sum() == 4  # the 2x2 corner piece of its window
    with pytest.raises(ValueError, match="outside"):
        position_attention(q, k, (8, 0))


def test_swtat_recipe_rows_are_constructor_keywords_and_every_row_trains_one_step():
    from kdlab.recipes import RECIPES, swtat_recipe, weighted_rows

    recipe = swtat_recipe("cpu", cls_weights=[0.2, 2], seg_weights=[0.03])
    assert RECIPES["03_swtat"](**recipe["knobs"]) == recipe
    cls, seg = recipe["classification"], recipe["segmentation"]
    assert cls["weights"] == [0.2, 2.0] and seg["weights"] == [0.03]
    rows = weighted_rows(seg["feature_rows"], 0.03)
    assert rows["SW-TaT + PM @ 0.03"][1]["sw_tat_weight"] == 0.03 and rows["SW-TaT + PM @ 0.03"][1]["pm_tat_weight"] == 0.015
    assert rows["TaT patch groups + anchors @ 0.03"][1]["anchor_tat_weight"] == 0.015
    assert rows["TaT (global) @ 0.03"][1]["anchor_tat_weight"] == 0.0
    assert rows["windows, no shift @ 0.03"][1]["shift"] == 0 and rows["SW-TaT union @ 0.03"][1]["stacking"] == "union"
    assert set(seg["shift_ablation"]) - {"no KD"} <= set(seg["feature_rows"])
    with pytest.raises(ValueError, match="weight"):
        weighted_rows(seg["feature_rows"], -1)
    x, y = torch.rand(2, 3, 32, 32), torch.randint(0, 10, (2,))
    for label, (name, keywords) in {**cls["baselines"], **weighted_rows(cls["feature_rows"], 0.2)}.items():
        assert set(keywords) <= set(inspect.signature(METHODS[name]).parameters), label
        if name == "supervised":
            continue
        distiller = METHODS[name](create(cls["student"]), create("swin"), **keywords).train()
        assert all(torch.isfinite(t) for t in distiller(x, y)[1].values()), label
    x, y = torch.rand(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    for label, (name, keywords) in weighted_rows(seg["feature_rows"], 0.03, suffix=False).items():
        distiller = METHODS[name](create(seg["student"], img_size=64), create("seg_cnn", img_size=64), **keywords)
        assert all(torch.isfinite(t) for t in distiller.train()(x, y)[1].values()), label


# ------------------------------------------------------------------------ union stacking, rebuild, loss scale


def dense_union_attention(q, k, v, window, shift):
    """The union attention by brute force: a global softmax masked to each position's regular window or its Swin
    region of the shifted partition (window_layout, in the map's own coordinates)."""
    from kdlab.models import map_to_tokens, tokens_to_map

    h, w = v.shape[2:]
    def same(window_, shift_):
        ids, region = window_layout(h, w, *effective_window(h, w, window_, shift_))
        ids, region = ids.flatten(), region.flatten()
        return (ids[:, None] == ids[None]) & (region[:, None] == region[None])
    allowed = same(window, 0) | same(window, shift)
    return tokens_to_map(attention_weights(map_to_tokens(q), map_to_tokens(k), allowed) @ map_to_tokens(v), (h, w))


@pytest.mark.parametrize("h, w, m, s", [(8, 8, 4, 2), (7, 9, 4, 2), (12, 12, 4, 1), (16, 16, 4, 3), (6, 6, 8, 3)])
def test_union_attention_is_one_softmax_over_the_regular_and_the_shifted_window(h, w, m, s):
    g = torch.Generator().manual_seed(h * w + m)
    q, k, v = 3 * torch.randn(2, 5, h, w, generator=g), torch.randn(2, 5, h, w, generator=g), torch.randn(2, 6, h, w, generator=g)
    out = union_window_attention(q, k, v, m, s)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, dense_union_attention(q, k, v, m, s), atol=1e-5)


def test_union_attention_reduces_to_the_regular_windows_without_a_shift_and_to_global_on_one_window():
    q, k, v = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), torch.randn(1, 3, 8, 8)
    assert torch.equal(union_window_attention(q, k, v, 4, 0), window_attention(q, k, v, 4, 0))
    assert torch.allclose(union_window_attention(q, k, v, 8, 3), global_attention(q, k, v), atol=1e-6)
    # a huge logit across a regular border but inside the shifted window gets the weight: the union reaches it
    q, k, v = torch.zeros(1, 1, 4, 8), torch.zeros(1, 1, 4, 8), torch.zeros(1, 1, 4, 8)
    q[0, 0, 1, 4], k[0, 0, 1, 3], v[0, 0, 1, 3] = 50.0, 1.0, 7.0  # (1, 4) and (1, 3) sit in different 4x4 windows
    assert window_attention(q, k, v, 4, 0)[0, 0, 1, 4] < 1.0
    assert torch.isclose(union_window_attention(q, k, v, 4, 2)[0, 0, 1, 4], torch.tensor(7.0), atol=1e-4)


def test_swtat_rebuild_gives_the_maps_whose_mse_is_the_loss():
    fs, ft = maps(h=8, w=8, c_s=4)
    first, second = TaTEmbedding((4, 8, 8), (6, 8, 8)).eval(), TaTEmbedding((6, 8, 8), (6, 8, 8)).eval()
    for stacking, extra, count in (("sequential", {"second": second.qkv}, 1), ("parallel", {}, 2), ("union", {}, 1)):
        rebuilt = swtat_rebuild(fs, ft, *first.qkv, 4, stacking=stacking, **extra)
        assert len(rebuilt) == count and all(out.shape == ft.shape for out in rebuilt)
        expected = sum(F.mse_loss(out, ft) for out in rebuilt) / count
        assert torch.allclose(swtat_loss(fs, ft, *first.qkv, 4, stacking=stacking, **extra), expected)
    union = swtat_rebuild(fs, ft, *first.qkv, 4, stacking="union")[0]
    assert torch.allclose(union, union_window_attention(*first(fs, ft), 4, 2))
    module = SWTaTLoss((4, 8, 8), (6, 8, 8), stacking="union")
    assert module.shifted_embedding is None and torch.isfinite(module(fs, ft))
    assert len(module.rebuild(fs, ft)) == 1
    with pytest.raises(ValueError, match="second"):
        swtat_loss(fs, ft, *IDS, window=4, second=IDS, stacking="union")


def test_no_shift_ablation_keeps_both_passes_and_uses_one_partition():
    fs, ft = maps(h=8, w=8, c_s=4)
    module = SWTaTLoss((4, 8, 8), (6, 8, 8), window=4, shift=0).eval()
    regular = window_attention(*module.embedding(fs, ft), 4, 0)
    expected = F.mse_loss(window_attention(*module.shifted_embedding(regular, ft), 4, 0), ft)
    assert torch.allclose(module(fs, ft), expected)


def test_tat_seg_loss_scale_multiplies_the_feature_terms_by_the_batch():
    student, teacher = TinySeg(4), TinySeg(8)
    x, y = torch.rand(3, 3, 16, 16), torch.randint(0, 3, (3, 16, 16))
    for make in (lambda r: SWTaTSeg(student, teacher, img_size=16, reduction=r),
                 lambda r: TaTPatchGroup(student, teacher, patches=2, group_size=2, anchors=2, img_size=16, reduction=r)):
        torch.manual_seed(0)
        mean_terms = make("mean").eval()(x, y)[1]
        torch.manual_seed(0)
        sum_terms = make("sum").eval()(x, y)[1]
        assert torch.allclose(sum_terms["ce"], mean_terms["ce"])
        for name in set(mean_terms) - {"ce"}:
            assert torch.allclose(sum_terms[name], 3 * mean_terms[name]), name
    with pytest.raises(ValueError, match="reduction"):
        SWTaTSeg(student, teacher, img_size=16, reduction="per_image")
