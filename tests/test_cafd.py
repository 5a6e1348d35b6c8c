import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdlab.methods import (CAFD, URFM, ArcFace, CosFace, FaceKD, MarginSupervised, PromptedSwin, SharedMSA,
                           SoftmaxHead, arcface_logits, cafd_losses, cosface_logits, facial_distance_parts,
                           facial_structure_distance, grid_centres, margin_head, num_buckets, pif_params,
                           piecewise_index, prompted_block, template_landmarks)
from kdlab.methods.prompted_swin import pad_attention_mask, pad_relative_position_bias
from kdlab.methods.urfm import ARCFACE_TEMPLATE
from kdlab.models import create
from kdlab.models import MobileFaceNet, face_swin


def tiny_student(img_size=32, embed_dim=16):
    return MobileFaceNet(embed_dim=embed_dim, img_size=img_size, stem_width=8, widths=(16, 32), depths=(1, 1),
                         num_features=32)


def tiny_teacher(img_size=32, seed=0):
    torch.manual_seed(seed)
    return create("swin", num_classes=24, img_size=img_size).eval()  # patch 2, window 4: grids 16 -> 8 -> 4


def tiny_cafd(**kwargs):
    torch.manual_seed(0)
    options = dict(num_classes=5, grid=2, dim=16, num_heads=2, num_prompts=2, acclimation=0.0)
    return CAFD(tiny_student(), tiny_teacher(), **{**options, **kwargs})


def batch(n=4, size=32, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, classes, (n,), generator=g)


# --------------------------------------------------------------------------------------- margin heads


def test_cosface_subtracts_the_margin_from_the_target_cosine_only():
    cos = torch.tensor([[0.5, -0.2, 0.9], [0.1, 0.3, -0.4]])
    y = torch.tensor([2, 0])
    z = cosface_logits(cos, y, s=10.0, m=0.25)
    expected = 10.0 * cos.clone()
    expected[0, 2], expected[1, 0] = 10.0 * (0.9 - 0.25), 10.0 * (0.1 - 0.25)
    assert torch.allclose(z, expected)


def reference_arcface(c, m, easy):
    """insightface's arcface_torch rule, written with math on one target cosine."""
    theta = math.acos(c)
    if easy:
        return math.cos(theta + m) if c > 0 else c
    return math.cos(theta + m) if c > math.cos(math.pi - m) else c - math.sin(math.pi - m) * m


@pytest.mark.parametrize("easy", [False, True])
def test_arcface_target_logit_follows_insightface_including_the_fallback_past_pi(easy):
    m, s = 0.5, 8.0
    targets = [0.99, 0.7, 0.3, 0.0, -0.2, -0.8, -0.87, -0.9, -0.99]
    cos = torch.tensor([[c, 0.123] for c in targets], dtype=torch.float64)
    z = arcface_logits(cos, torch.zeros(len(targets), dtype=torch.long), s, m, easy_margin=easy)
    for row, c in enumerate(targets):
        assert z[row, 0].item() == pytest.approx(s * reference_arcface(c, m, easy), abs=1e-6)
        assert z[row, 1].item() == pytest.approx(s * 0.123)
    if not easy:  # at theta = pi - m the rule switches from cos(pi) = -1 to cos(theta) - m sin(m): monotonic
        edge = math.cos(math.pi - m)
        near = torch.tensor([[edge + 1e-9], [edge - 1e-9]], dtype=torch.float64)
        pair = arcface_logits(near, torch.zeros(2, dtype=torch.long), 1.0, m)[:, 0].tolist()
        assert pair == pytest.approx([-1.0, -math.cos(m) - m * math.sin(m)], abs=1e-6)
        grid = torch.linspace(-0.999, 0.999, 401, dtype=torch.float64)[:, None]
        values = arcface_logits(grid, torch.zeros(401, dtype=torch.long), 1.0, m)[:, 0]
        assert (values.diff() > 0).all()


def test_margin_heads_normalise_and_apply_the_margin_only_with_labels_in_training():
    torch.manual_seed(0)
    emb, y = torch.randn(6, 8), torch.tensor([0, 1, 2, 3, 0, 1])
    for head in (CosFace(8, 4, s=16.0, m=0.2), ArcFace(8, 4, s=16.0, m=0.3)):
        plain = head(emb)
        cos = F.normalize(emb, dim=1) @ F.normalize(head.weight, dim=1).t()
        assert torch.allclose(plain, 16.0 * cos, atol=1e-6)
        assert torch.allclose(head(3.7 * emb), plain, atol=1e-5), "scale-free in the embedding"
        margined = head(emb, y)
        target = F.one_hot(y, 4).bool()
        assert torch.allclose(margined[~target], plain[~target])
        assert (margined[target] < plain[target]).all()
        head.eval()
        assert torch.allclose(head(emb, y), plain), "eval mode: scaled cosine"
    assert margin_head("softmax", 8, 4)(emb, y).shape == (6, 4)
    assert isinstance(margin_head("softmax", 8, 4), SoftmaxHead)
    assert margin_head("arcface", 8, 4, s=30.0).s == 30.0 and margin_head("cosface", 8, 4).m == 0.2


def test_margin_heads_reject_bad_inputs():
    with pytest.raises(ValueError, match="margin m < pi/2"):
        ArcFace(8, 4, m=2.0)
    with pytest.raises(ValueError, match="s must be"):
        CosFace(8, 4, s=0.0)
    with pytest.raises(ValueError, match="labels must lie"):
        cosface_logits(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="integer class labels"):
        arcface_logits(torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match=r"\(B, 8\) embeddings"):
        CosFace(8, 4)(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="margin must be one of"):
        margin_head("sphereface", 8, 4)


# ---------------------------------------------------------------------------------- piecewise index


def reference_pif(x, exact_range, max_index, clip_distance):
    """iRPE's piecewise index, from the formula, in plain Python (round() is half to even on floats)."""
    if abs(x) <= exact_range:
        return int(round(x))
    value = round(exact_range + math.log(abs(x) / exact_range) / math.log(clip_distance / exact_range)
                  * (max_index - exact_range))
    return int(math.copysign(1.0, x) * min(max_index, value))  # int() truncates toward zero, like the tensor cast


@pytest.mark.parametrize("params", [pif_params(1.9), pif_params(2.0), pif_params(3.0), (1.5, 4.5, 10.0),
                                    (2.0, 2.5, 40.0)])
def test_piecewise_index_matches_an_independent_reference_with_halves_and_negatives(params):
    values = [k / 4 for k in range(-100, 101)] + [0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, -3.5, 1e-9, -1e-9,
                                                  123.4, -1e4]
    out = piecewise_index(torch.tensor(values, dtype=torch.float64), *params)
    assert out.dtype == torch.long
    assert out.tolist() == [reference_pif(v, *params) for v in values]


def test_piecewise_index_reproduces_the_spec_table_and_its_properties():
    x = torch.arange(15.0)
    table = {1.9: [0, 1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3],
             2.0: [0, 1, 2, 2, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4],
             3.0: [0, 1, 2, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5]}
    for ratio, row in table.items():
        assert piecewise_index(x, *pif_params(ratio)).tolist() == row
    assert piecewise_index(torch.tensor([16.0, 17.0]), *pif_params(3.0)).tolist() == [5, 6]
    assert piecewise_index(x).tolist() == table[1.9], "defaults are iRPE's ratio 1.9"
    assert pif_params() == (1.9, 3.8, 15.2)
    assert piecewise_index(torch.tensor([2.5, 0.5, 1.5, -2.5]), *pif_params(3.0)).tolist() == [2, 0, 2, -2]
    wide = torch.linspace(-50, 50, 2001)
    for ratio in (1.9, 2.0, 3.0):
        exact_range, max_index, clip_distance = pif_params(ratio)
        out = piecewise_index(wide, exact_range, max_index, clip_distance)
        assert torch.equal(piecewise_index(-wide, exact_range=exact_range, max_index=max_index,
                                           clip_distance=clip_distance), -out), "odd symmetric"
        assert out.abs().max().item() == math.floor(max_index)
        assert (len(out[wide >= 0].unique()) == num_buckets(max_index)
                and len(out.unique()) == num_buckets(max_index, True))
    assert num_buckets(3.8) == 4 and num_buckets(6.0) == 7 and num_buckets(3.8, signed=True) == 7
    assert piecewise_index(torch.tensor([3, -7]), dtype=torch.int32).dtype == torch.int32
    assert piecewise_index(torch.tensor([3, -7])).tolist() == [2, -3]
    with pytest.raises(ValueError, match="exact_range < max_index"):
        piecewise_index(x, 3.0, 2.0, 10.0)
    with pytest.raises(ValueError, match="ratio"):
        pif_params(0)


# -------------------------------------------------------------------------------- facial distances


def test_template_scales_with_the_image_size():
    assert torch.allclose(template_landmarks(112), torch.tensor(ARCFACE_TEMPLATE))
    px = template_landmarks(64)
    assert px[2].tolist() == pytest.approx([32.01, 40.99], abs=0.01)
    assert (px[1] - px[0]).norm().item() == pytest.approx(20.14, abs=0.01)
    assert (template_landmarks(112)[1] - template_landmarks(112)[0]).norm().item() == pytest.approx(35.24, abs=0.01)
    expected = [[1 / 6, 0.25], [0.5, 0.25], [5 / 6, 0.25], [1 / 6, 0.75], [0.5, 0.75], [5 / 6, 0.75]]
    assert torch.allclose(grid_centres((2, 3)), torch.tensor(expected))


def test_euclidean_part_on_the_7x7_grid_with_the_nose_anchor():
    parts = facial_distance_parts(grid_centres(7), template_landmarks(), "nose", 1.0, grid=7)
    euclid = parts["euclid"].view(7, 7)
    assert euclid.min().item() == pytest.approx(0.02, abs=0.005) and divmod(euclid.argmin().item(), 7) == (4, 3)
    assert euclid.max().item() == pytest.approx(4.99, abs=0.005)
    assert euclid[0, 0].item() == pytest.approx(4.99, abs=0.005)
    assert euclid[0, 6].item() == pytest.approx(4.99, abs=0.005)
    assert parts["total"].max().item() == pytest.approx(10.0, abs=0.2), "spec §2.5's worked example"
    assert torch.allclose(parts["face"], parts["saliency"] + parts["relative"])
    assert torch.allclose(parts["total"], parts["euclid"] + parts["face"])


def test_facial_distance_is_zero_at_the_anchor_nonnegative_symmetric_and_euclidean_without_the_face_term():
    torch.manual_seed(0)
    lm = template_landmarks()
    points = torch.rand(30, 2)
    for anchor in ("nose", 0, "mouth_right"):
        d = facial_structure_distance(lm, lm, anchor, facial_scale=1.5, grid=5)
        index = anchor if isinstance(anchor, int) else ("left_eye", "right_eye", "nose", "mouth_left",
                                                        "mouth_right").index(anchor)
        assert d[index].abs().item() < 1e-6 and (d >= 0).all()
    q = torch.tensor([0.3, 0.7])
    assert facial_structure_distance(q[None], lm, q, 2.0, grid=7).abs().item() < 1e-6
    forward = facial_structure_distance(points, lm, q, 2.0, grid=(5, 7))
    backward = torch.stack([facial_structure_distance(q[None], lm, p, 2.0, grid=(5, 7))[0] for p in points])
    assert torch.allclose(forward, backward, atol=1e-5), "D(p, q) = D(q, p)"
    plain = facial_structure_distance(points, lm, q, facial_scale=0.0, grid=(5, 7))
    scaled = (points - q) * torch.tensor([7.0, 5.0])
    assert torch.allclose(plain, scaled.norm(dim=1), atol=1e-6)
    assert torch.allclose(facial_structure_distance(points, lm, "nose", 0.0), (points - lm[2]).norm(dim=1), atol=1e-6)


def test_facial_distance_respects_the_mirror_symmetry_of_a_symmetric_face_and_batches():
    lm = torch.tensor([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]])
    mirrored_lm = lm[[1, 0, 2, 4, 3]] * torch.tensor([-1.0, 1.0]) + torch.tensor([1.0, 0.0])
    assert torch.allclose(mirrored_lm, lm)
    points = grid_centres(6)
    mirror = points * torch.tensor([-1.0, 1.0]) + torch.tensor([1.0, 0.0])
    for anchor in ("nose", torch.tensor([0.2, 0.3])):
        a_mirror = "nose" if isinstance(anchor, str) else anchor * torch.tensor([-1.0, 1.0]) + torch.tensor([1.0, 0.0])
        assert torch.allclose(facial_structure_distance(points, lm, anchor, 1.0, grid=6),
                              facial_structure_distance(mirror, lm, a_mirror, 1.0, grid=6), atol=1e-5)
    both = torch.stack([template_landmarks(), lm])
    batched = facial_structure_distance(points, both, "nose", 1.0, grid=6)
    assert batched.shape == (2, 36)
    for i in range(2):
        assert torch.allclose(batched[i], facial_structure_distance(points, both[i], "nose", 1.0, grid=6))


def test_facial_distance_rejects_bad_inputs():
    lm = template_landmarks()
    with pytest.raises(ValueError, match="positions must be"):
        facial_structure_distance(torch.zeros(4, 3), lm)
    with pytest.raises(ValueError, match="landmarks must be"):
        facial_structure_distance(torch.zeros(4, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="anchor must be one of"):
        facial_structure_distance(torch.zeros(4, 2), lm, "chin")
    with pytest.raises(ValueError, match="anchor index"):
        facial_structure_distance(torch.zeros(4, 2), lm, 7)
    with pytest.raises(ValueError, match="facial_scale"):
        facial_structure_distance(torch.zeros(4, 2), lm, facial_scale=-1.0)
    with pytest.raises(ValueError, match="batch sizes"):
        facial_structure_distance(torch.zeros(3, 4, 2), torch.zeros(2, 5, 2) + lm)


# ------------------------------------------------------------------------------------- URFM and MSA


def test_urfm_maps_any_token_count_to_l_local_features_with_rows_summing_to_one():
    torch.manual_seed(0)
    urfm = URFM({"teacher": 12, "student": 20}, dim=16, grid=(3, 3), num_heads=4)
    h_t, a_t = urfm(torch.randn(2, 25, 12), "teacher", extra_tokens=torch.randn(2, 3, 12))
    h_s, a_s = urfm(torch.randn(2, 20, 4, 4), "student")
    assert h_t.shape == h_s.shape == (2, 9, 16)
    assert a_t.shape == (2, 4, 9, 28) and a_s.shape == (2, 4, 9, 16)
    for a in (a_t, a_s):
        assert torch.allclose(a.sum(-1), torch.ones(()), atol=1e-6) and (a >= 0).all()
    with pytest.raises(ValueError, match="unknown network"):
        urfm(torch.randn(2, 5, 12), "other")
    with pytest.raises(ValueError, match=r"\(B, N, 20\)"):
        urfm(torch.randn(2, 5, 12), "student")
    with pytest.raises(ValueError, match="extra tokens"):
        urfm(torch.randn(2, 5, 12), "teacher", extra_tokens=torch.randn(2, 3, 7))
    with pytest.raises(ValueError, match="divisible"):
        URFM({"a": 4}, dim=10, num_heads=4)


def test_urfm_query_pe_is_the_bucket_table_at_the_pif_of_the_facial_distance():
    urfm = URFM({"teacher": 8}, dim=8, grid=4, num_heads=2, facial_scale=1.0, pif_ratio=3.0)
    lm = template_landmarks()
    d = facial_structure_distance(grid_centres(4), lm, "nose", 1.0, grid=4)
    assert torch.allclose(urfm.distance, d)
    assert torch.equal(urfm.bucket, piecewise_index(d, 3.0, 6.0, 24.0))
    assert urfm.table.shape == (7, 8)
    assert torch.allclose(urfm.queries(), urfm.query(urfm.centres) + urfm.table[urfm.bucket])
    per_sample = urfm.queries(torch.stack([lm, lm * 0.9 + 0.05]))
    assert per_sample.shape == (2, 16, 8) and torch.allclose(per_sample[0], urfm.queries())
    plain = URFM({"teacher": 8}, dim=8, grid=4, num_heads=2, facial_scale=0.0)
    euclid = (grid_centres(4) - lm[2]).mul(4).norm(dim=1)
    assert torch.equal(plain.bucket, piecewise_index(euclid, 3.0, 6.0, 24.0))
    eye = URFM({"teacher": 8}, dim=8, grid=4, num_heads=2, anchor="left_eye")
    assert not torch.equal(eye.distance, urfm.distance)


def test_urfm_shares_centres_query_and_table_but_not_the_projections():
    torch.manual_seed(0)
    urfm = URFM({"teacher": 12, "student": 20}, dim=16, grid=2, num_heads=2)
    h_t, _ = urfm(torch.randn(2, 10, 12), "teacher")
    h_t.square().sum().backward()
    grads = {n: p.grad is not None for n, p in urfm.named_parameters()}
    assert grads["centres"] and grads["query.weight"] and grads["table"] and grads["keys.teacher.weight"]
    assert not grads["keys.student.weight"] and not grads["values.student.weight"]


def test_shared_msa_and_the_cafd_losses():
    torch.manual_seed(0)
    msa = SharedMSA(16, 4)
    h = torch.randn(3, 9, 16)
    out, attn = msa(h)
    assert out.shape == (3, 9, 16) and attn.shape == (3, 4, 9, 9)
    assert torch.allclose(attn.sum(-1), torch.ones(()), atol=1e-6)
    zero = cafd_losses(msa(h), msa(h.clone()))
    assert zero["attn"].item() == 0 and zero["feat"].item() == 0
    other = torch.randn(3, 9, 16)
    (o_t, a_t), (o_s, a_s) = msa(h), msa(other)
    losses = cafd_losses((o_t, a_t), (o_s, a_s))
    assert torch.allclose(losses["attn"], ((a_t - a_s) ** 2).mean())
    assert torch.allclose(losses["feat"], ((o_t - o_s) ** 2).mean())
    assert losses["attn"] > 0 and losses["feat"] > 0
    with pytest.raises(ValueError, match="MSA output"):
        cafd_losses((o_t, a_t), msa(torch.randn(3, 8, 16)))
    with pytest.raises(ValueError, match="attention"):
        cafd_losses((o_t, a_t), (o_s, a_s[:, :2]))


# ----------------------------------------------------------------------------------------------- APT


def test_bias_and_mask_are_zero_padded_for_prompts():
    bias, mask = torch.randn(1, 2, 16, 16), torch.randn(4, 16, 16)
    pb, pm = pad_relative_position_bias(bias, 3), pad_attention_mask(mask, 3)
    assert pb.shape == (1, 2, 19, 19) and pm.shape == (4, 19, 19)
    assert torch.equal(pb[..., 3:, 3:], bias) and torch.equal(pm[:, 3:, 3:], mask)
    assert not pb[..., :3, :].any() and not pb[..., :, :3].any()
    assert not pm[:, :3, :].any() and not pm[:, :, :3].any()


def test_apt_without_prompts_is_exactly_the_plain_teacher_and_prompts_change_the_output():
    teacher = tiny_teacher()
    x, _ = batch(2)
    with torch.no_grad():
        plain_out, plain_feat = teacher(x), teacher.forward_features(x)
        bare = PromptedSwin(teacher, num_prompts=0)
        tokens, prompts = bare.forward_features(x)
        assert torch.equal(bare(x), plain_out) and torch.equal(tokens, plain_feat) and prompts.shape == (2, 0, 128)
        assert torch.equal(bare.pixel_features(x), plain_feat.flatten(1, 2))
        apt = PromptedSwin(teacher, num_prompts=3)
        out = apt(x)
        tokens, prompts = apt.forward_features(x)
        assert tokens.shape == (2, 4, 4, 128) and prompts.shape == (2, 3, 128), "merging drops the prompts"
        assert apt.pixel_features(x).shape == (2, 16 + 3, 128)
        assert not torch.allclose(out, plain_out, atol=1e-3)
        apt.hide_prompts = True  # the prompted path with the patch -> prompt attention masked out
        tokens, prompts = apt.forward_features(x)
        assert torch.allclose(tokens, plain_feat, atol=1e-6) and torch.allclose(apt(x), plain_out, atol=1e-6)
        assert prompts.abs().sum() > 0
    assert [p.shape for p in apt.prompts] == [(1, 3, 32), (1, 3, 64), (1, 3, 128)]
    v = math.sqrt(6 / (3 * 4 + 32))
    assert all(p.abs().max() <= v for p in apt.prompts)
    deep = PromptedSwin(teacher, num_prompts=2, deep=True)
    assert [p.shape for p in deep.prompts] == [(2, 2, 32), (2, 2, 64), (2, 2, 128)]
    with torch.no_grad():
        assert deep(x).shape == (2, 24)
        mass = apt.prompt_attention_mass(x)
    assert mass.shape == (3,) and ((mass >= 0) & (mass <= 1)).all()
    with pytest.raises(ValueError, match="SwinTransformer"):
        PromptedSwin(create("cnn_small"))


def test_only_the_prompts_receive_gradients_and_the_backbone_stays_in_eval_mode():
    teacher = tiny_teacher()
    apt = PromptedSwin(teacher, num_prompts=2)
    apt.train()
    assert not teacher.training and all(not m.training for m in teacher.modules())
    x, _ = batch(2)
    apt.pixel_features(x).square().mean().backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in apt.prompts)
    assert {n for n, p in apt.named_parameters() if p.requires_grad} == {"prompts.0", "prompts.1", "prompts.2"}


def stage_input_means(teacher, x):
    """The mean token entering each stage's blocks of the plain teacher (a hook on its first block)."""
    means = {}
    hooks = [stage.blocks[0].register_forward_pre_hook(
        lambda module, args, i=i: means.__setitem__(i, args[0].mean(dim=(0, 1, 2)))) for i, stage in
        enumerate(teacher.layers)]
    with torch.no_grad():
        teacher(x)
    for hook in hooks:
        hook.remove()
    return [means[i] for i in range(len(teacher.layers))]


def test_token_mean_init_starts_each_prompt_set_at_its_stage_input_mean():
    teacher = tiny_teacher()
    x, _ = batch(4)
    apt = PromptedSwin(teacher, num_prompts=3, init="token_mean", init_jitter=0.0)
    assert not apt.initialised
    apt.initialise(x)
    assert apt.initialised
    # stage 1's input does not depend on any prompt: its set equals the plain model's stage-1 mean exactly
    first = stage_input_means(teacher, x)[0]
    assert torch.allclose(apt.prompts[0][0], first.expand(3, -1), atol=1e-6)
    jittered = PromptedSwin(teacher, num_prompts=3, init="token_mean", init_jitter=0.5)
    draw = jittered.prompts[0].detach().clone()
    jittered.initialise(x)
    assert torch.allclose(jittered.prompts[0], first + 0.5 * draw, atol=1e-6), "mean + jitter x the uniform draw"
    jittered.initialise(x)  # again: from the kept draw, not on top of the last initialisation
    assert torch.allclose(jittered.prompts[0], first + 0.5 * draw, atol=1e-6)
    assert len({tuple(p.tolist()) for p in jittered.prompts[0][0]}) == 3, "the jitter breaks the symmetry"


def test_token_mean_init_runs_on_the_first_training_batch_and_not_in_eval():
    teacher = tiny_teacher()
    x, _ = batch(2)
    apt = PromptedSwin(teacher, num_prompts=2, init="token_mean")
    before = [p.detach().clone() for p in apt.prompts]
    with torch.no_grad():
        apt.eval()(x)
    assert not apt.initialised and all(torch.equal(a, b) for a, b in zip(before, apt.prompts))
    apt.train()
    apt.pixel_features(x).square().mean().backward()
    assert apt.initialised and not torch.equal(before[0], apt.prompts[0])
    assert all(p.grad is not None for p in apt.prompts)
    state = apt.state_dict()
    assert bool(state["_initialised"]) and not any(k.startswith("_draw") for k in state)
    deep = PromptedSwin(teacher, num_prompts=2, deep=True, init="token_mean", init_jitter=0.0)
    deep.initialise(x)
    first = stage_input_means(teacher, x)[0]
    assert torch.allclose(deep.prompts[0][0], first.expand(2, -1), atol=1e-6)
    assert not torch.allclose(deep.prompts[0][1], first.expand(2, -1), atol=1e-4), "block 2 sees block 1's output"


def test_prompt_init_options_are_checked():
    teacher = tiny_teacher()
    with pytest.raises(ValueError, match="init"):
        PromptedSwin(teacher, 2, init="zeros")
    with pytest.raises(ValueError, match="init_jitter"):
        PromptedSwin(teacher, 2, init="token_mean", init_jitter=2.0)
    with pytest.raises(ValueError, match="initialise"):
        PromptedSwin(teacher, 2).initialise(batch(2)[0])
    with pytest.raises(ValueError, match="initialise"):
        PromptedSwin(teacher, 0, init="token_mean").initialise(batch(2)[0])
    assert PromptedSwin(teacher, 0, init="token_mean").initialised
    with pytest.raises(ValueError, match="prompt_init"):
        tiny_cafd(prompt_init="zeros")


def reference_prompted_block(block, x, p):
    """VPT-for-Swin by loops: every window gets [prompts, window tokens] with zero-padded bias/mask; the patch
    outputs go back to their places, the prompt outputs are averaged over windows."""
    b, h, w, c = x.shape
    m, s, t = block.window_size[0], block.shift_size[0], p.shape[1]
    attn = block.attn
    heads = attn.num_heads
    dh = c // heads
    area = m * m
    bias = torch.zeros(heads, t + area, t + area)
    for i in range(area):
        for j in range(area):
            bias[:, t + i, t + j] = attn.relative_position_bias_table[attn.relative_position_index[i, j]]
    xn, pn = block.norm1(x), block.norm1(p)
    rolled = torch.roll(xn, (-s, -s), (1, 2))
    out = torch.zeros_like(x)
    prompt_out = torch.zeros_like(p)
    cols = w // m
    for n in range(b):
        for r in range(h // m):
            for cc in range(cols):
                window = rolled[n, r * m:(r + 1) * m, cc * m:(cc + 1) * m].reshape(area, c)
                tokens = torch.cat([pn[n], window])
                q, k, v = (tokens @ attn.qkv.weight.t() + attn.qkv.bias).split(c, dim=1)
                mask = torch.zeros(t + area, t + area)
                if block.attn_mask is not None:
                    mask[t:, t:] = block.attn_mask[r * cols + cc]
                heads_out = []
                for hd in range(heads):
                    sl = slice(hd * dh, (hd + 1) * dh)
                    logits = q[:, sl] @ k[:, sl].t() / math.sqrt(dh) + bias[hd] + mask
                    heads_out.append(logits.softmax(-1) @ v[:, sl])
                o = torch.cat(heads_out, 1) @ attn.proj.weight.t() + attn.proj.bias
                out[n, r * m:(r + 1) * m, cc * m:(cc + 1) * m] = o[t:].reshape(m, m, c)
                prompt_out[n] += o[:t] / ((h // m) * cols)
    x = x + torch.roll(out, (s, s), (1, 2))
    p = p + prompt_out
    return x + block.mlp(block.norm2(x)), p + block.mlp(block.norm2(p))


@pytest.mark.parametrize("index", [0, 1])  # regular and shifted window block of stage 1 (16x16, window 4)
def test_prompted_block_matches_a_per_window_reference(index):
    teacher = tiny_teacher()
    block = teacher.layers[0].blocks[index]
    assert block.shift_size == ((0, 0) if index == 0 else (2, 2))
    torch.manual_seed(1)
    x, p = torch.randn(2, 16, 16, 32), torch.randn(2, 3, 32)
    with torch.no_grad():
        got_x, got_p, _ = prompted_block(block, x, p)
        want_x, want_p = reference_prompted_block(block, x, p)
    assert torch.allclose(got_x, want_x, atol=1e-5) and torch.allclose(got_p, want_p, atol=1e-5)


# ------------------------------------------------------------------------------------- face models


def test_face_models_return_embeddings_and_expose_their_last_map():
    torch.manual_seed(0)
    student = MobileFaceNet(embed_dim=32, img_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    fmap = student.forward_features(x)
    assert fmap.shape == (2, 128, 4, 4) and student.feature_size == (4, 4)
    assert torch.equal(student(x), student.forward_head(fmap)) and student(x).shape == (2, 32)
    with pytest.raises(ValueError, match="64, 64"):
        student(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="multiple of 16"):
        MobileFaceNet(img_size=40)
    teacher = face_swin(embedding_dim=32, img_size=64).eval()
    with torch.no_grad():
        assert teacher(x).shape == (2, 32) and teacher.forward_features(x).shape == (2, 4, 4, 192)
        assert PromptedSwin(teacher, 2).pixel_features(x).shape == (2, 18, 192)


# -------------------------------------------------------------------------------------------- CAFD


def test_cafd_terms_and_which_parameters_learn():
    distiller = tiny_cafd().train()
    x, y = batch()
    out, terms = distiller(x, y, progress=0.5)
    assert out.shape == (4, 5) and set(terms) == {"margin", "attn", "feat", "teacher_margin"}
    assert all(torch.isfinite(v) and v > 0 for v in terms.values())
    sum(terms.values()).backward()
    teacher_ids = {id(p) for p in distiller.teacher.parameters()}
    assert all(p.grad is None for p in distiller.teacher.parameters())
    trainable = list(distiller.trainable_parameters())
    assert not any(id(p) in teacher_ids for p in trainable)
    assert all(p.grad is not None for p in trainable), [n for n, p in distiller.named_parameters()
                                                        if p.requires_grad and p.grad is None]
    assert any(p is distiller.apt.prompts[0] for p in trainable)
    assert not distiller.teacher.training and distiller.student.training
    with torch.no_grad():
        assert torch.allclose(distiller.predict(x), distiller.head(distiller.student(x)))
        assert distiller.embed(x).shape == (4, 16)
    seen = distiller.inspect(x)
    assert seen["teacher_urfm_attn"].shape == (4, 2, 4, 16 + 2) and seen["student_urfm_attn"].shape == (4, 2, 4, 16)
    assert seen["teacher_msa_attn"].shape == seen["student_msa_attn"].shape == (4, 2, 4, 4)


def test_cafd_phase_a_trains_only_the_teacher_side_and_leaves_the_student_untouched():
    distiller = tiny_cafd(acclimation=0.25).train()
    x, y = batch()
    stats = [b.clone() for b in distiller.student.buffers()]
    _, terms = distiller(x, y, progress=0.1)
    assert terms["margin"] == 0 and terms["attn"] == 0 and terms["feat"] == 0 and terms["teacher_margin"] > 0
    sum(terms.values()).backward()
    assert all(p.grad is None for p in distiller.student.parameters())
    assert all(p.grad is None for p in distiller.head.parameters())
    assert all(torch.equal(a, b) for a, b in zip(stats, distiller.student.buffers())), "BN statistics untouched"
    assert distiller.student.training
    assert all(p.grad is not None for p in distiller.apt.prompts) and distiller.urfm.centres.grad is not None


@pytest.mark.parametrize("update, prompts_learn, teacher_keys_learn", [("joint", True, True), ("aux", False, True),
                                                                        ("detach", False, False)])
def test_teacher_update_options_route_the_distillation_gradients(update, prompts_learn, teacher_keys_learn):
    distiller = tiny_cafd(teacher_update=update).train()
    x, y = batch()
    _, terms = distiller(x, y, progress=0.5)
    (terms["attn"] + terms["feat"]).backward()
    prompt_grad = distiller.apt.prompts[2].grad
    assert (prompt_grad is not None and prompt_grad.abs().sum() > 0) == prompts_learn
    key_grad = distiller.urfm.keys["teacher"].weight.grad
    assert (key_grad is not None and key_grad.abs().sum() > 0) == teacher_keys_learn
    assert distiller.urfm.keys["student"].weight.grad is not None


def test_cafd_options_no_apt_and_plain_euclidean_pe():
    distiller = tiny_cafd(num_prompts=0, facial_scale=0.0, margin="arcface").train()
    x, y = batch()
    _, terms = distiller(x, y, progress=0.5)
    sum(terms.values()).backward()
    assert len(distiller.apt.prompts) == 0 and all(torch.isfinite(v) for v in terms.values())
    assert distiller.urfm.keys["teacher"].weight.grad is not None
    assert distiller.inspect(x)["teacher_pixels"].shape == (4, 16, 128)
    assert isinstance(distiller.head, ArcFace)
    torch.manual_seed(0)
    registry_student = create("cnn_small", num_classes=16)  # timm ByobNet: forward_features / forward_head
    distiller = CAFD(registry_student, tiny_teacher(), 5, grid=2, dim=16, num_heads=2, num_prompts=1, margin="softmax")
    out, terms = distiller.train()(x, y, progress=0.5)
    assert out.shape == (4, 5) and distiller.urfm.in_dims == {"teacher": 128, "student": 128}
    assert all(torch.isfinite(v) for v in terms.values())


def test_cafd_without_position_encoding_queries_from_the_centres_alone():
    distiller = tiny_cafd(position_encoding=False).train()
    urfm = distiller.urfm
    assert torch.equal(urfm.queries(), urfm.query(urfm.centres))
    with_pe = tiny_cafd()
    assert torch.allclose(with_pe.urfm.queries(), with_pe.urfm.query(with_pe.urfm.centres)
                          + with_pe.urfm.table[with_pe.urfm.bucket])
    x, y = batch()
    _, terms = distiller(x, y, progress=0.5)
    sum(terms.values()).backward()
    assert urfm.table.grad is None and urfm.centres.grad is not None, "no PE: the bucket table takes no part"


def test_cafd_rejects_bad_options():
    with pytest.raises(ValueError, match="SwinTransformer"):
        CAFD(tiny_student(), create("cnn_small"), 5)
    with pytest.raises(ValueError, match="teacher_update must be one of"):
        tiny_cafd(teacher_update="frozen")
    with pytest.raises(ValueError, match="attn_weight"):
        tiny_cafd(attn_weight=-1.0)
    with pytest.raises(ValueError, match="acclimation"):
        tiny_cafd(acclimation=1.5)
    with pytest.raises(ValueError, match="forward_features"):
        CAFD(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()), tiny_teacher(), 5, img_size=32)


def test_margin_supervised_learns_a_tiny_batch():
    torch.manual_seed(0)
    model = MarginSupervised(tiny_student(), num_classes=5)  # img_size read from the student
    x, y = batch(10)
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(15):
        out, terms = model(x, y)
        losses.append(terms["margin"].item())
        opt.zero_grad()
        terms["margin"].backward()
        opt.step()
    assert out.shape == (10, 5) and losses[-1] < 0.5 * losses[0]
    model.eval()
    assert model.predict(x).shape == (10, 5) and model.embed(x).shape == (10, 16)


# ------------------------------------------------------------------------------------- KD baselines


@pytest.mark.parametrize("kind", ["embedding", "feature"])
def test_face_kd_baselines_train_the_student_only_and_vanish_when_the_student_matches(kind):
    torch.manual_seed(0)
    teacher = face_swin(embedding_dim=16, img_size=32, embed_dim=8, depths=(1, 1, 1), num_heads=(1, 2, 2)).eval()
    distiller = FaceKD(tiny_student(), teacher, 5, kind=kind, face_kd_weight=2.0).train()
    assert not distiller.teacher.training and not any(p.requires_grad for p in teacher.parameters())
    x, y = batch()
    out, terms = distiller(x, y)
    assert out.shape == (4, 5) and set(terms) == {"margin", "face_kd"} and terms["face_kd"] > 0
    sum(terms.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert distiller.student.embedding.weight.grad is not None and distiller.head.weight.grad is not None
    assert {id(p) for p in distiller.trainable_parameters()}.isdisjoint({id(p) for p in teacher.parameters()})
    if kind == "embedding":  # equal widths: no projector; the term is 1 - cos, i.e. 0 for parallel embeddings
        assert isinstance(distiller.projector, nn.Identity)
        distiller.eval()
        with torch.no_grad():
            e_t = teacher(x)
        distiller.student.forward = lambda inp: 3 * e_t  # a student whose embedding is parallel to the teacher's
        assert distiller(x, y)[1]["face_kd"].abs().item() < 1e-6
    else:  # a 1x1 conv from the student's 32 channels to the teacher's 32 last-stage channels (8 * 4); the
        # teacher's 2x2 map is resized to the student's 4x4 grid
        assert distiller.projector.in_channels == 32 and distiller.projector.out_channels == 32
        with torch.no_grad():
            target = F.interpolate(teacher.forward_features(x).permute(0, 3, 1, 2), size=(4, 4), mode="bilinear",
                                   align_corners=False)
        assert math.isclose(terms["face_kd"].item() / 2.0, F.mse_loss(
            distiller.projector(distiller.student.forward_features(x)), target).item(), rel_tol=1e-5)


def test_face_kd_reads_a_cnn_teachers_map_as_it_is_for_the_homologous_check():
    torch.manual_seed(0)
    teacher = MobileFaceNet(embed_dim=16, img_size=32, stem_width=8, widths=(24, 48), depths=(1, 1),
                            num_features=40).eval()  # a (B, 40, 4, 4) map, channels first
    distiller = FaceKD(tiny_student(), teacher, 5, kind="feature").train()
    assert distiller.projector.in_channels == 32 and distiller.projector.out_channels == 40
    x, y = batch()
    _, terms = distiller(x, y)
    with torch.no_grad():
        target = teacher.forward_features(x)
    assert math.isclose(terms["face_kd"].item(), F.mse_loss(distiller.projector(distiller.student.forward_features(x)),
                                                       target).item(), rel_tol=1e-5)


def test_face_kd_rejects_bad_options():
    with pytest.raises(ValueError, match="kind must be one of"):
        FaceKD(tiny_student(), face_swin(embedding_dim=16, img_size=32), 5, kind="logits")
    with pytest.raises(ValueError, match="face_kd_weight"):
        FaceKD(tiny_student(), face_swin(embedding_dim=16, img_size=32), 5, face_kd_weight=-1.0)


def test_face_swin_normalises_its_embedding_and_the_registry_builds_both_face_models():
    torch.manual_seed(0)
    teacher = face_swin(embedding_dim=16, img_size=32)
    assert isinstance(teacher.head.fc[1], nn.BatchNorm1d) and teacher.head.fc[0].bias is None
    assert not isinstance(face_swin(embedding_dim=16, img_size=32, embedding_norm=False).head.fc, nn.Sequential)
    student, swin = create("face_cnn", img_size=64), create("face_swin", img_size=64)
    assert student.kdlab_task == swin.kdlab_task == "face" and swin.kdlab_family == "swin"
    x = torch.rand(2, 3, 64, 64)
    assert student.eval()(x).shape == swin.eval()(x).shape == (2, 128)
    assert create("face_cnn", num_classes=32, img_size=32).eval()(torch.rand(2, 3, 32, 32)).shape == (2, 32)


def test_cafd_recipe_rebuilds_from_knobs_and_sizes_the_profiles():
    from kdlab.teachers import TEACHERS
    from kdlab.recipes import RECIPES, REFERENCE, cafd_recipe

    assert RECIPES["04_cafd_face"] is cafd_recipe and REFERENCE["04_cafd_face"] == {"profile": "cpu"}
    recipe = cafd_recipe("cpu", seed=3, facial_scale=0.5, num_prompts=2)
    assert RECIPES["04_cafd_face"](**recipe["knobs"]) == recipe and recipe["seeds"] == [3, 4, 5]
    assert recipe["data"]["seed"] == 3 and recipe["cafd"]["facial_scale"] == 0.5 and recipe["cafd"]["num_prompts"] == 2
    assert recipe["embedding_kd"]["kind"] == "embedding" and recipe["feature_kd"]["kind"] == "feature"
    assert TEACHERS[recipe["teacher"]].model == "face_swin"
    assert TEACHERS[recipe["homologous_teacher"]].model == "face_cnn"
    assert recipe["cafd"]["acclimation"] == pytest.approx(1 / recipe["student"]["fit"]["epochs"], abs=1e-4)
    smoke, gpu = cafd_recipe("smoke"), cafd_recipe("gpu")
    assert smoke["data"]["n_pairs"] < recipe["data"]["n_pairs"] and len(gpu["seeds"]) == 5
    assert smoke["student"]["model_kwargs"]["widths"] == [24, 32, 48]
    with pytest.raises(ValueError):
        cafd_recipe("laptop")


def test_face_regime_applies_one_change_and_keeps_the_rest():
    from kdlab.recipes import FACE_HALF_STUDENT, FACE_HARD_VARIATION, cafd_recipe, face_regime

    recipe = cafd_recipe("cpu")
    study = recipe["regime_study"]
    assert list(study["changes"])[0] == "as in section 6" and study["rows"] == ["no KD", "embedding KD", "CAFD"]
    assert study["live"] == [] and set(cafd_recipe("smoke")["regime_study"]["live"]) <= set(study["changes"])
    assert face_regime(recipe, "as in section 6") == recipe
    longer = face_regime(recipe, "twice the epochs")
    assert longer["student"]["fit"]["epochs"] == 2 * recipe["student"]["fit"]["epochs"]
    assert longer["data"] == recipe["data"] and longer["cafd"] == recipe["cafd"]
    few = face_regime(recipe, "4 faces per identity, same steps")
    steps = lambda r: r["data"]["per_id"] * r["student"]["fit"]["epochs"]  # noqa: E731
    assert few["data"]["per_id"] == 4 and steps(few) == steps(recipe)
    assert face_regime(recipe, "half-width student")["student"]["model_kwargs"] == FACE_HALF_STUDENT
    hard = face_regime(recipe, "harder variation")["data"]
    assert all(hard[key] == value for key, value in FACE_HARD_VARIATION.items())
    louder = face_regime(recipe, "KD weights × 16")
    assert louder["embedding_kd"]["face_kd_weight"] == louder["feature_kd"]["face_kd_weight"] == 16.0
    assert louder["cafd"]["attn_weight"] == 16 * recipe["cafd"]["attn_weight"]
    assert louder["cafd"]["feat_weight"] == 16 * recipe["cafd"]["feat_weight"]
    assert louder["cafd"]["teacher_margin_weight"] == recipe["cafd"]["teacher_margin_weight"]  # teacher side
    assert recipe["embedding_kd"]["face_kd_weight"] == 1.0, "the recipe itself is not modified"
    with pytest.raises(ValueError, match="change"):
        face_regime(recipe, "more data")


def test_face_rows_build_every_row_of_the_notebook():
    from kdlab.experiments import method_runs
    from kdlab.recipes import FACE_ROWS, cafd_recipe, face_rows

    recipe = cafd_recipe("smoke")
    rows = face_rows(recipe, list(FACE_ROWS), 5)
    assert list(rows) == list(FACE_ROWS)
    assert rows["CAFD without APT"][1]["num_prompts"] == 0 and rows["CAFD"][1]["num_prompts"] == 4
    assert rows["CAFD without facial distance"][1]["facial_scale"] == 0.0
    assert rows["CAFD, uniform prompt init (VPT)"][1]["prompt_init"] == "uniform"
    assert all(block["num_classes"] == 5 for _, block in rows.values())
    torch.manual_seed(0)
    make = lambda: create(recipe["student"]["model"], img_size=64, **recipe["student"]["model_kwargs"])  # noqa: E731
    runs = method_runs(rows, make, create("face_swin", img_size=64), {})
    x, y = torch.rand(2, 3, 64, 64), torch.tensor([0, 1])
    for run in runs:
        assert all(torch.isfinite(t) for t in run.make().train()(x, y, progress=1.0)[1].values()), run.label
    with pytest.raises(ValueError, match="row"):
        face_rows(recipe, ["KD"], 5)


def test_cafd_forward_trains_cafd_losses_the_function_the_notebook_shows():
    distiller = tiny_cafd(attn_weight=3.0, feat_weight=0.5).eval()
    x, y = batch()
    _, terms = distiller(x, y, progress=1.0)
    info = distiller.inspect(x)
    losses = cafd_losses((info["teacher_msa"], info["teacher_msa_attn"]), (info["student_msa"], info["student_msa_attn"]))
    assert list(terms) == ["margin", "attn", "feat", "teacher_margin"]
    assert torch.allclose(terms["attn"], 3.0 * losses["attn"]) and torch.allclose(terms["feat"], 0.5 * losses["feat"])


def test_cafd_recipe_method_blocks_are_constructor_keywords():
    from kdlab.methods import METHODS, Distiller
    from kdlab.recipes import cafd_recipe

    recipe = cafd_recipe("smoke")
    for key, name in (("margin_supervised", "margin_supervised"), ("embedding_kd", "face_kd"),
                      ("feature_kd", "face_kd"), ("cafd", "cafd")):
        keywords = set(inspect.signature(METHODS[name]).parameters)
        assert set(recipe[key]) <= keywords, (key, set(recipe[key]) - keywords)
    assert all(issubclass(METHODS[name], Distiller) for name in ("margin_supervised", "face_kd", "cafd"))
    torch.manual_seed(0)
    student = lambda: create(recipe["student"]["model"], img_size=64, **recipe["student"]["model_kwargs"])  # noqa: E731
    teacher = create("face_swin", img_size=64)
    x, y = torch.rand(2, 3, 64, 64), torch.tensor([0, 1])
    rows = [METHODS["margin_supervised"](student(), 5, **recipe["margin_supervised"])]
    rows += [METHODS[name](student(), teacher, 5, **recipe[key])
             for key, name in (("embedding_kd", "face_kd"), ("feature_kd", "face_kd"), ("cafd", "cafd"))]
    for row in rows:  # the recipe's models and blocks build and train one step
        assert all(torch.isfinite(t) for t in row.train()(x, y, progress=1.0)[1].values())
