from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdlab.methods.ofa import OFA, build_branches, default_stages, ofa_loss, ofa_weights, sep_conv
from kdlab.models import create
from kdlab.models.features import stage_features
from kdlab.models.registry import count_parameters, list_models

GAMMAS_T = [(1.0, 1.0), (1.5, 1.0), (2.0, 2.0), (1.2, 4.0)]


def reference_ofa(zs, zt, labels, gamma, t, form="code"):
    """Per-sample loops over classes, in float64, straight from the spec's formulas."""
    p, q = F.softmax(zs.double() / t, 1), F.softmax(zt.double() / t, 1)
    total = 0.0
    for b in range(zs.shape[0]):
        for c in range(zs.shape[1]):
            if c == labels[b]:
                w = (1 + q[b, c]) ** gamma - (1 if form == "code" else 0)
            else:
                w = q[b, c] ** gamma if form == "code" else q[b, c]
            total = total - w * torch.log(p[b, c])
    return total / zs.shape[0]


def logits(b=6, k=5, scale=3.0):
    return torch.randn(b, k) * scale, torch.randn(b, k) * scale


@pytest.mark.parametrize("form", ["code", "paper"])
@pytest.mark.parametrize("gamma,t", GAMMAS_T)
def test_ofa_loss_matches_the_formula_for_hard_and_soft_targets(form, gamma, t):
    zs, zt = logits()
    y = torch.randint(0, 5, (6,))
    expected = reference_ofa(zs, zt, y, gamma, t, form).float()
    assert torch.allclose(ofa_loss(zs, zt, y, gamma, t, form), expected, atol=1e-5)
    soft = 0.9 * F.one_hot(y, 5) + 0.1 * torch.rand(6, 5) / 5  # mixup-like soft labels, argmax = y
    assert torch.allclose(ofa_loss(zs, zt, soft, gamma, t, form), expected, atol=1e-5)


@pytest.mark.parametrize("t", [1.0, 2.0, 4.0])
def test_official_form_at_gamma_1_is_soft_target_cross_entropy_without_t_squared(t):
    zs, zt = logits()
    y = torch.randint(0, 5, (6,))
    log_p, q = F.log_softmax(zs / t, 1), F.softmax(zt / t, 1)
    soft_ce = -(q * log_p).sum(1).mean()
    kl_plus_entropy = (q * (q.log() - log_p)).sum(1).mean() - (q * q.log()).sum(1).mean()
    loss = ofa_loss(zs, zt, y, gamma=1.0, temperature=t)
    assert torch.allclose(loss, soft_ce, atol=1e-6)
    assert torch.allclose(loss, kl_plus_entropy, atol=1e-5)


@pytest.mark.parametrize("t", [1.0, 3.0])
def test_paper_form_is_official_plus_hard_ce_at_gamma_1_and_gains_the_adaptive_term_at_gamma_2(t):
    zs, zt = logits()
    y = torch.randint(0, 5, (6,))
    hard_ce = F.cross_entropy(zs / t, y)
    assert torch.allclose(ofa_loss(zs, zt, y, 1.0, t) + hard_ce, ofa_loss(zs, zt, y, 1.0, t, "paper"), atol=1e-5)
    q_y = F.softmax(zt / t, 1).gather(1, y[:, None]).squeeze(1)
    log_p_y = F.log_softmax(zs / t, 1).gather(1, y[:, None]).squeeze(1)
    gain = ofa_loss(zs, zt, y, 2.0, t, "paper") - ofa_loss(zs, zt, y, 1.0, t, "paper")
    assert torch.allclose(gain, (-(q_y + q_y**2) * log_p_y).mean(), atol=1e-5)


def test_weights_follow_the_code_form_and_move_with_gamma():
    zt, y = torch.randn(4, 6) * 2, torch.tensor([0, 3, 5, 2])
    q, m = F.softmax(zt, 1), F.one_hot(y, 6).bool()
    w = {g: ofa_weights(zt, y, gamma=g) for g in (1.0, 1.5, 2.0)}
    assert torch.allclose(w[1.5][m], (1 + q[m]) ** 1.5 - 1)
    assert torch.allclose(w[1.5][~m], q[~m] ** 1.5)
    assert (w[2.0][m] > w[1.5][m]).all() and (w[1.5][m] > w[1.0][m]).all()
    assert (w[2.0][~m] < w[1.5][~m]).all() and (w[1.5][~m] < w[1.0][~m]).all()


@pytest.mark.parametrize("gamma,t", GAMMAS_T)
def test_gradient_is_sum_w_times_p_minus_w_over_t(gamma, t):
    zs, zt = logits()
    zs.requires_grad_(True)
    y = torch.randint(0, 5, (6,))
    ofa_loss(zs, zt, y, gamma, t).backward()
    w, p = ofa_weights(zt, y, gamma, t), F.softmax(zs.detach() / t, 1)
    expected = (w.sum(1, keepdim=True) * p - w) / t / zs.shape[0]
    assert torch.allclose(zs.grad, expected, atol=1e-6)


@pytest.mark.parametrize("form", ["code", "paper"])
def test_extreme_logits_give_finite_loss_and_gradients(form):
    zs, zt = logits(scale=1e4)
    zs.requires_grad_(True)
    loss = ofa_loss(zs, zt, torch.randint(0, 5, (6,)), gamma=1.5, form=form)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(zs.grad).all()


def test_ofa_loss_rejects_bad_input():
    zs, zt, y = torch.randn(4, 10), torch.randn(4, 10), torch.randint(0, 10, (4,))
    with pytest.raises(ValueError, match="same"):
        ofa_loss(zs, torch.randn(4, 9), y)
    with pytest.raises(ValueError, match="same"):
        ofa_loss(torch.randn(10), torch.randn(10), y)
    for bad_target in (torch.randint(0, 10, (5,)), torch.rand(4, 9), torch.rand(4)):
        with pytest.raises(ValueError, match="target must be class indices"):
            ofa_loss(zs, zt, bad_target)
    for gamma in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="gamma must be"):
            ofa_loss(zs, zt, y, gamma=gamma)
    with pytest.raises(ValueError, match="temperature must be"):
        ofa_loss(zs, zt, y, temperature=0)
    with pytest.raises(ValueError, match="form must be one of 'code', 'paper', got 'official'"):
        ofa_loss(zs, zt, y, form="official")


# ----------------------------------------------------------------------------------------- branches


@pytest.mark.parametrize("name,img_size", [(n, 32) for n in list_models() if n != "mlp"] + [("cnn_small", 64), ("vit", 64)])
def test_branches_turn_every_stage_of_every_student_into_logits(name, img_size):
    student = create(name, num_classes=7, img_size=img_size)
    x = torch.rand(2, 3, img_size, img_size)
    feats = stage_features(student, x)
    stages = tuple(range(1, len(feats) + 1))
    branches = build_branches(student, stages, num_classes=7, teacher_dim=64, img_size=img_size)
    assert list(branches) == [str(s) for s in stages] and count_parameters(branches) > 0
    for s, f in zip(stages, feats):
        assert branches[str(s)](f).shape == (2, 7), f"{name} stage {s}"


def test_cnn_branches_halve_down_to_the_last_stage_at_width_max_ds_dt():
    branches = build_branches(create("cnn_small"), None, 10, teacher_dim=256)  # grids 32/16/8/4, D_s 128
    n_sep = [sum(isinstance(m, nn.Sequential) for m in b) for b in branches.values()]
    assert n_sep == [3, 2, 1, 0]
    assert isinstance(branches["4"][0], nn.Conv2d) and branches["4"][0].bias is not None
    assert all(b[-1].in_features == 256 for b in branches.values())
    first = branches["1"][0]
    assert [first[5].out_channels, branches["1"][1][5].out_channels] == [32, 64]  # C -> 2C -> 4C -> D
    assert sep_conv(8, 16)(torch.rand(1, 8, 8, 8)).shape == (1, 16, 4, 4)


def test_token_branches_merge_to_4x4_and_use_max_4_minus_s_blocks_at_width_ds():
    from timm.models.swin_transformer import PatchMerging
    from timm.models.vision_transformer import Block

    def count(branch, cls):
        return sum(isinstance(m, cls) for m in branch)

    vit = build_branches(create("vit"), None, 10, teacher_dim=512)  # grid 8, D_s 96: one merger
    assert [count(b, Block) for b in vit.values()] == [3, 2, 1, 1]
    assert [count(b, PatchMerging) for b in vit.values()] == [1, 1, 1, 1]
    assert all(b[-1].in_features == 96 for b in vit.values()), "token branches ignore D_t"
    swin = build_branches(create("swin"), None, 10)  # grids 16/8/4, widths 32/64/128
    assert [count(b, PatchMerging) for b in swin.values()] == [2, 1, 0]
    assert isinstance(swin["1"][2], nn.GELU) and isinstance(swin["1"][4], nn.Identity)
    assert [count(b, Block) for b in swin.values()] == [3, 2, 1]
    for depth, stages in [(6, ["1", "2", "5", "6"]), (12, ["2", "4", "10", "12"])]:
        deep = build_branches(create("vit", depth=depth, embed_dim=32, num_heads=2), None, 10)
        assert list(deep) == stages
        assert [count(b, Block) for b in deep.values()] == [3, 2, 1, 1], "blocks follow the stage's rank of 4"


def test_default_stages_scale_the_official_blocks_with_depth():
    assert default_stages(3) == (1, 2, 3) and default_stages(4) == (1, 2, 3, 4)
    assert default_stages(6) == (1, 2, 5, 6) and default_stages(12) == (2, 4, 10, 12)


# ---------------------------------------------------------------------------------------- distiller


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(0)
    return torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))


@pytest.mark.parametrize("student_name,teacher_name", [("vit", "cnn_small"), ("cnn_small", "vit")])
def test_ofa_forward_terms_gradients_and_frozen_teacher(student_name, teacher_name, batch):
    x, y = batch
    student, teacher = create(student_name), create(teacher_name)
    distiller = OFA(student, teacher, gamma=1.2, gamma_last=1.5, ofa_logits_weight=0.5, ofa_weight=0.1).train()
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    logits, terms = distiller(x, y)
    assert logits.shape == (4, 10) and list(terms) == ["ce", "ofa_logits", "ofa"]
    zt = teacher(x)
    assert torch.allclose(terms["ce"], F.cross_entropy(logits, y))
    assert torch.allclose(terms["ofa_logits"], 0.5 * ofa_loss(logits, zt, y, gamma=1.5))
    with torch.no_grad():
        _, stage_logits = distiller.branch_logits(x)
    expected = 0.1 * sum(ofa_loss(z, zt, y, gamma=1.2) for z in stage_logits.values())
    assert torch.allclose(terms["ofa"], expected, atol=1e-6)
    sum(terms.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in distiller.branches.parameters())
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)


def test_ofa_runs_the_student_once_and_predict_ignores_the_branches(batch):
    x, y = batch
    student = create("cnn_small")
    before = count_parameters(student)
    distiller = OFA(student, create("cnn_small"))
    calls = []
    student.register_forward_pre_hook(lambda *_: calls.append("forward"))
    original = student.forward_intermediates
    student.forward_intermediates = lambda *a, **k: calls.append("intermediates") or original(*a, **k)
    distiller.train()(x, y)
    assert calls == ["intermediates"]
    for branch in distiller.branches.values():
        branch.register_forward_hook(lambda *_: pytest.fail("a branch ran at inference"))
    distiller.eval()
    assert torch.equal(distiller.predict(x), student(x))
    assert count_parameters(student) == before
    assert distiller.branch_parameters() == count_parameters(distiller.branches) > 0


def test_ofa_variants_final_head_only_soft_labels_and_paper_form(batch):
    x, y = batch
    head_only = OFA(create("cnn_small"), create("cnn_small"), stages=())
    _, terms = head_only(x, y)
    assert terms["ofa"] == 0 and head_only.branch_parameters() == 0
    mixed = OFA(create("mixer"), create("cnn_small"), stages=(4,))
    soft = 0.7 * F.one_hot(y, 10) + 0.3 * F.one_hot(y.flip(0), 10)
    _, terms = mixed(x, soft)
    assert all(torch.isfinite(v) for v in terms.values())
    paper = OFA(create("cnn_small"), create("cnn_small"), stages=(3,), form="paper")
    _, terms = paper(x, y)
    assert terms["ce"] == 0, "the paper form holds the hard CE already"


def test_per_stage_gammas_follow_the_official_list(batch):
    """One gamma per branch stage and a last one for the final logits (spec 2.5): each branch's term uses its own."""
    x, y = batch
    teacher = create("cnn_small")
    distiller = OFA(create("cnn_small"), teacher, stages=(2, 4), gamma=[1.0, 2.0, 1.5]).train()
    assert distiller.stage_gammas == {2: 1.0, 4: 2.0} and distiller.gamma_last == 1.5
    logits, terms = distiller(x, y)
    zt = teacher(x)
    with torch.no_grad():
        _, stage_logits = distiller.branch_logits(x)
    expected = ofa_loss(stage_logits[2], zt, y, gamma=1.0) + ofa_loss(stage_logits[4], zt, y, gamma=2.0)
    assert torch.allclose(terms["ofa"], expected, atol=1e-6)
    assert torch.allclose(terms["ofa_logits"], ofa_loss(logits, zt, y, gamma=1.5))
    single = OFA(create("cnn_small"), teacher, stages=(2, 4), gamma=1.3)
    assert single.stage_gammas == {2: 1.3, 4: 1.3} and single.gamma_last == 1.3


def test_ofa_final_logits_only_takes_a_student_without_stage_maps(batch):
    x, y = batch
    flat = lambda: create("mlp", img_size=32, in_chans=3, hidden=(16,))  # noqa: E731
    distiller = OFA(flat(), flat(), stages=())
    _, terms = distiller(x, y)
    assert terms["ofa"] == 0 and torch.isfinite(terms["ofa_logits"])
    with pytest.raises(ValueError, match="MLP has no forward_intermediates"):
        OFA(flat(), flat(), stages=(1,))  # a branch needs stage maps, which an MLP has not


def test_bad_ofa_arguments():
    student, teacher = create("swin"), create("cnn_small")
    for stages in [(0,), (4,), (1, 1), (1.5,)]:
        with pytest.raises(ValueError, match="valid stages are 1, 2, 3$"):
            OFA(student, teacher, stages=stages)
    with pytest.raises(ValueError, match="gamma_last must be"):
        OFA(student, teacher, gamma_last=0.0)
    with pytest.raises(ValueError, match="ofa_weight must be"):
        OFA(student, teacher, ofa_weight=-1.0)
    with pytest.raises(ValueError, match="one per branch stage"):
        OFA(student, teacher, stages=(1, 2), gamma=[1.0, 1.5])
    with pytest.raises(ValueError, match="gamma_last only with one gamma"):
        OFA(student, teacher, stages=(1,), gamma=[1.0, 1.5], gamma_last=2.0)
    with pytest.raises(ValueError, match=r"gamma\[1\] must be"):
        OFA(student, teacher, stages=(1,), gamma=[1.0, 0.0])
    with pytest.raises(ValueError, match="form must be one of"):
        OFA(student, teacher, form="official")
