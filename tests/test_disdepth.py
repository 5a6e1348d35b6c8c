import copy
import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdlab.methods import (DepthSupervised, DisDepth, FeatureAcclimation, LocalGlobalConv, LossAttention,
                           attentive_kd_loss, convert_to_lgconv, depth_target, disdepth_ablation, epoch_progress,
                           ghost_head, lgconv_layers, lgconv_problem, silog_loss)
from kdlab.methods.disdepth import ABLATIONS, feature_shapes
from kdlab.models import BinsHead, DepthDecoder, bin_centers, depth_student, depth_teacher
from kdlab.models import count_parameters

SIZE = 32


def tiny_student(head="bins"):
    return depth_student(SIZE, widths=(8, 8, 16, 16), depths=(1, 1, 1, 1), decoder_dim=8, head=head, n_bins=8)


def tiny_teacher(arch="swin"):
    kw = (dict(embed_dim=8, depths=(1, 1, 1), num_heads=(1, 2, 2)) if arch == "swin"
          else dict(embed_dim=16, depth=3, num_heads=2, taps=(0, 1, 2)))
    return depth_teacher(arch, SIZE, decoder_dim=8, n_bins=8, **kw)


def batch(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, SIZE, SIZE, generator=g), 0.5 + 9.5 * torch.rand(b, SIZE, SIZE, generator=g)


def distiller(**kw):
    torch.manual_seed(0)
    return DisDepth(tiny_student(), tiny_teacher(), img_size=SIZE, **kw)


def grads_absent(module):
    return all(p.grad is None or not p.grad.any() for p in module.parameters())


def grads_present(module):
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


# ------------------------------------------------------------------------------------------------ SILog


def test_silog_equals_the_bts_formula_by_hand():
    g = torch.Generator().manual_seed(1)
    pred, target = 0.5 + 5 * torch.rand(2, 1, 6, 5, generator=g), 0.5 + 5 * torch.rand(2, 1, 6, 5, generator=g)
    mask = torch.rand(2, 1, 6, 5, generator=g) > 0.3
    d = [math.log(p) - math.log(t) for p, t, m in zip(pred.flatten().tolist(), target.flatten().tolist(),
                                                        mask.flatten().tolist()) if m]
    mean_d2, mean_d = sum(v * v for v in d) / len(d), sum(d) / len(d)
    for lam in (0.85, 0.0, 1.0):
        expected = 10 * math.sqrt(mean_d2 - lam * mean_d ** 2)
        assert silog_loss(pred, target, mask, lam).item() == pytest.approx(expected, rel=1e-6)
    # AdaBins' form 10 sqrt(Var_unbiased(d) + 0.15 mean(d)^2) agrees up to N/(N-1) on the variance
    dt = torch.tensor(d, dtype=torch.float64)
    adabins = 10 * math.sqrt(dt.var(unbiased=True).item() + 0.15 * dt.mean().item() ** 2)
    assert silog_loss(pred, target, mask).item() == pytest.approx(adabins, rel=2 / len(d))


def test_silog_is_not_scale_invariant_only_the_mean_term_moves():
    g = torch.Generator().manual_seed(2)
    pred, target = 1 + torch.rand(3, 1, 4, 4, generator=g), 1 + torch.rand(3, 1, 4, 4, generator=g)
    d = (pred.log() - target.log()).double()
    c = 1.7
    delta = (silog_loss(c * pred, target).double() / 10) ** 2 - (silog_loss(pred, target).double() / 10) ** 2
    expected = 0.15 * ((d.mean() + math.log(c)) ** 2 - d.mean() ** 2)
    assert delta.item() == pytest.approx(expected.item(), rel=1e-4)


def test_silog_default_mask_skips_invalid_targets_and_is_safe_at_zero_error():
    pred = torch.full((1, 1, 2, 3), 2.0, requires_grad=True)
    target = torch.tensor([[[[2.0, 0.0, float("nan")], [2.0, 2.0, -1.0]]]])
    loss = silog_loss(pred, target)  # perfect on the 3 valid pixels: sqrt at 0
    loss.backward()
    assert torch.isfinite(loss) and loss.item() < 1e-4
    assert torch.isfinite(pred.grad).all()
    explicit = torch.tensor([[[[True, False, False], [True, True, False]]]])
    assert silog_loss(pred * 1.1, target, explicit).item() == pytest.approx(silog_loss(pred * 1.1, target).item())


def test_silog_rejects_bad_inputs():
    pred, target = torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    with pytest.raises(ValueError, match="same shape"):
        silog_loss(pred, target[0])
    with pytest.raises(ValueError, match="no valid pixel"):
        silog_loss(pred, target, torch.zeros_like(target, dtype=torch.bool))
    with pytest.raises(ValueError, match="no valid pixel"):
        silog_loss(pred, torch.zeros_like(target))
    with pytest.raises(ValueError, match="boolean"):
        silog_loss(pred, target, torch.ones_like(target))
    with pytest.raises(ValueError, match="variance_focus"):
        silog_loss(pred, target, variance_focus=1.5)
    with pytest.raises(ValueError, match="<= 0"):
        silog_loss(pred, -target, torch.ones_like(target, dtype=torch.bool))


def test_depth_target_accepts_both_layouts():
    y = torch.tensor([[[0.0, 2.0], [float("inf"), 3.0]]])
    t3, m3 = depth_target(y)
    t4, m4 = depth_target(y.unsqueeze(1))
    assert t3.shape == (1, 1, 2, 2) and torch.equal(m3, m4)
    assert m3.flatten().tolist() == [False, True, False, True]
    with pytest.raises(ValueError, match="depth targets"):
        depth_target(torch.ones(1, 2, 2, 2))


# ------------------------------------------------------------------------------------------------ models


def test_bins_are_adabins_bins():
    raw = torch.randn(3, 16) * 3
    widths, edges, centres = bin_centers(raw, 0.5, 10.0)
    assert (widths > 0).all()
    assert torch.allclose(widths.sum(1), torch.full((3,), 9.5))
    assert torch.allclose(edges[:, 0], torch.full((3,), 0.5)) and torch.allclose(edges[:, -1], torch.full((3,), 10.0))
    assert (centres.diff(dim=1) > 0).all() and (centres > 0.5).all() and (centres < 10).all()
    head = BinsHead(dim=4, bottleneck_channels=6, n_bins=16)
    out = head.bins(torch.randn(2, 4, 5, 5), torch.randn(2, 6, 2, 2))
    assert torch.allclose(out["probs"].sum(1), torch.ones(2, 5, 5))
    assert out["depth"].shape == (2, 1, 5, 5)
    assert (out["depth"] >= 0.5).all() and (out["depth"] <= 10).all()
    with pytest.raises(ValueError, match="n_bins"):
        BinsHead(4, 6, n_bins=1)


@pytest.mark.parametrize("make", [lambda: tiny_student("bins"), lambda: tiny_student("sigmoid"),
                                  lambda: tiny_teacher("swin"), lambda: tiny_teacher("vit")])
def test_depth_models_give_metric_depth_in_range(make):
    torch.manual_seed(0)
    model = make().eval()
    x, _ = batch(2)
    feats = model.forward_features(x)
    assert [tuple(f.shape[2:]) for f in feats] == [(8, 8), (4, 4), (2, 2)]  # strides 4, 8, 16
    depth = model(x)
    assert depth.shape == (2, 1, SIZE, SIZE)
    assert torch.equal(depth, model.forward_head(feats))
    assert (depth > model.min_depth).all() and (depth < model.max_depth).all()
    with pytest.raises(ValueError, match="multiples of 16"):
        model.forward_features(torch.zeros(1, 3, 24, 24))


def test_default_depth_models_have_the_documented_sizes():
    assert 0.3e6 <= count_parameters(depth_student()) <= 1e6
    assert 1e6 <= count_parameters(depth_teacher()) <= 2e6
    assert 1e6 <= count_parameters(depth_teacher("vit")) <= 2e6
    with pytest.raises(ValueError, match="arch"):
        depth_teacher("mixer")
    with pytest.raises(ValueError, match="head"):
        depth_student(head="softmax")
    with pytest.raises(ValueError, match="keyword"):
        depth_teacher(embed_dims=3)
    with pytest.raises(ValueError, match="channels"):
        DepthDecoder((8, 16))([torch.zeros(1, 8, 4, 4), torch.zeros(1, 8, 2, 2)])


# ------------------------------------------------------------------------------------------------ LGConv


def reference_global_branch(m: LocalGlobalConv, x):
    """The spec's equations with explicit loops over images, heads and pixels."""
    b, c, h, w = x.shape
    heads, out = m.heads, []
    for i in range(b):
        xi = x[i:i + 1]
        z = F.relu(m.reduce(xi))
        u = torch.cat([z, z.mean(dim=(2, 3), keepdim=True).expand_as(z)], 1)
        logits, gate, v = m.attend(u)[0], torch.sigmoid(m.gate(u)[0]), m.value(xi)[0]
        vprime = torch.zeros(c, h, w)
        for hh in range(heads):
            a = torch.softmax(logits[hh].flatten(), 0).reshape(h, w)
            chans = slice(hh * c // heads, (hh + 1) * c // heads)
            g = sum(a[py, px] * v[chans, py, px] for py in range(h) for px in range(w))
            for py in range(h):
                for px in range(w):
                    vprime[chans, py, px] = gate[hh, py, px] * g
        out.append(m.proj(xi + vprime))
    return m.norm(torch.cat(out))


@pytest.mark.parametrize("conv", [nn.Conv2d(8, 12, 3, padding=1), nn.Conv2d(8, 16, 3, stride=2, padding=1),
                                  nn.Conv2d(8, 8, 3, padding=1, groups=8)], ids=["stride1", "stride2", "depthwise"])
def test_lgconv_starts_as_the_wrapped_conv(conv):
    torch.manual_seed(0)
    x = torch.randn(3, 8, 9, 7)
    m = LocalGlobalConv(conv, heads=4, reduction=4)
    for mode in (True, False):
        m.train(mode)
        y, base = m(x), conv(x)
        assert y.shape == base.shape
        assert m.global_branch(x).norm() <= 1e-3 * base.norm()
        assert torch.allclose(y, base, atol=1e-3)
    a, beta = m.maps(x)
    assert a.shape == beta.shape == (3, 4, 9, 7)
    assert torch.allclose(a.sum(dim=(2, 3)), torch.ones(3, 4))
    assert (beta > 0).all() and (beta < 1).all()


def test_lgconv_is_the_vectorised_spec_equations():
    torch.manual_seed(0)
    m = LocalGlobalConv(nn.Conv2d(8, 6, 3, stride=2, padding=1), heads=2, reduction=2).eval()
    nn.init.normal_(m.norm.weight)  # a trained-looking branch, so the comparison is not of tiny numbers
    x = torch.randn(2, 8, 5, 4)
    assert torch.allclose(m.global_branch(x), reference_global_branch(m, x), atol=1e-5)
    c, c_out, r, h = 8, 6, 2, 2
    expected = c * (c // r) + c // r + 2 * (2 * (c // r) * h + h) + c * c + c + c * c_out + 2 * c_out
    assert count_parameters(m) - count_parameters(m.conv) == expected  # ~ C^2/r + 4ch + C^2 + C C_out (+ biases, BN)


@pytest.mark.parametrize("conv, match", [
    (nn.Conv2d(8, 8, 5, padding=2), "3x3"), (nn.Conv2d(8, 8, 3), "padding"),
    (nn.Conv2d(8, 8, 3, padding=2, dilation=2), "padding"), (nn.Conv2d(8, 8, 3, padding=1, dilation=2), "dilation"),
    (nn.Conv2d(6, 8, 3, padding=1), "multiple"), (nn.Linear(3, 3), "Conv2d")])
def test_lgconv_rejects_convs_it_cannot_wrap(conv, match):
    assert match in lgconv_problem(conv, heads=4, reduction=4)
    with pytest.raises(ValueError, match=match):
        LocalGlobalConv(conv, heads=4)


def test_convert_wraps_every_eligible_conv_skips_the_stem_and_keeps_the_output():
    torch.manual_seed(0)
    model = tiny_student()
    original = copy.deepcopy(model)
    x, _ = batch(2)
    eligible = {n for n, m in model.encoder.named_modules()
                if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.in_channels != 3}
    convert_to_lgconv(model.encoder, heads=4, reduction=4)
    wrapped = {n.removesuffix(".conv") for n in lgconv_layers(model.encoder)}
    assert wrapped == {n.removesuffix(".conv") for n in eligible} and len(wrapped) == 8
    assert isinstance(model.encoder.body.stem.conv, nn.Conv2d)  # the RGB stem is untouched
    assert any(m.conv.stride == (2, 2) for m in lgconv_layers(model).values())
    n_params = count_parameters(model)
    convert_to_lgconv(model.encoder, heads=4, reduction=4)  # converting twice changes nothing
    assert count_parameters(model) == n_params
    for mode in (False, True):  # identical to 3 decimals (metres), with running or batch BN statistics
        assert torch.allclose(model.train(mode)(x), original.train(mode)(x), atol=1e-3)


# ------------------------------------------------------------------------------------------- FAM and LAM


def test_fam_outputs_the_student_shapes():
    fam = FeatureAcclimation(12, (8, 6, 6))
    assert fam(torch.randn(2, 12, 3, 3)).shape == (2, 8, 6, 6)  # resized when the strides differ
    d = distiller()
    x, _ = batch(2)
    with torch.no_grad():
        acclimated = d.acclimated(d.teacher_forward(x))
        student = d.student.forward_features(x)
    assert [f.shape for f in acclimated] == [f.shape for f in student]
    assert feature_shapes(d.student, SIZE) == d.student_shapes


def test_lam_is_normalised_for_any_weights_and_starts_uniform():
    lam = LossAttention(8, dim=4)
    f = torch.randn(3, 8, 5, 6)
    assert torch.equal(lam(f), torch.ones(3, 1, 5, 6))  # zero query: A = 1 at initialisation
    for scale in (1.0, 100.0):
        nn.init.normal_(lam.query.weight, std=scale)
        a = lam(f)
        assert (a >= 0).all() and torch.allclose(a.mean(dim=(2, 3)), torch.ones(3, 1), atol=1e-5)


def test_attentive_kd_loss_reduces_to_summed_mse_and_zero():
    g = torch.Generator().manual_seed(3)
    s = [torch.randn(2, 4, 6, 6, generator=g), torch.randn(2, 8, 3, 3, generator=g)]
    t = [torch.randn_like(f) for f in s]
    ones = [torch.ones(2, 1, *f.shape[2:]) for f in s]
    plain = F.mse_loss(s[0], t[0]) + F.mse_loss(s[1], t[1])
    assert torch.allclose(attentive_kd_loss(s, t), plain)
    assert torch.allclose(attentive_kd_loss(s, t, ones), plain)
    assert attentive_kd_loss(s, s, [2 * a for a in ones]).item() == 0
    a = [torch.rand(2, 1, *f.shape[2:], generator=g) for f in s]
    by_hand = sum(((ai * (si - ti)) ** 2).sum() / si.numel() for ai, si, ti in zip(a, s, t))
    assert torch.allclose(attentive_kd_loss(s, t, a), by_hand)
    with pytest.raises(ValueError, match="shape"):
        attentive_kd_loss(s, t[::-1])
    with pytest.raises(ValueError, match="attention"):
        attentive_kd_loss(s, t, [torch.ones(2, 2, 6, 6), ones[1]])


def test_kd_loss_cannot_train_lam_or_the_teacher_side():
    """Trained through L_kd, LAM would collapse onto the lowest-error pixel: the loss gives it no gradient."""
    torch.manual_seed(0)
    lam = LossAttention(4, dim=4)
    nn.init.normal_(lam.query.weight)
    student = torch.randn(2, 4, 5, 5, requires_grad=True)
    teacher = torch.randn(2, 4, 5, 5, requires_grad=True)
    attentive_kd_loss([student], [teacher], [lam(teacher)]).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None and grads_absent(lam)


# ------------------------------------------------------------------------------------- ghost and DisDepth


def test_ghost_head_is_the_student_head_with_stop_gradient_weights():
    torch.manual_seed(0)
    student = tiny_student()
    convert_to_lgconv(student, heads=4, reduction=4)  # the decoder too: it now holds BatchNorms
    assert any(n.startswith("decoder") for n in lgconv_layers(student))
    stats = {n: b.clone() for n, b in student.named_buffers()}
    feats = [torch.randn(2, c, s, s, requires_grad=True) for c, s in ((8, 8), (16, 4), (16, 2))]
    student.eval()
    assert torch.equal(ghost_head(student, feats), student.forward_head(feats))  # synced: same weights
    student.train()
    ghost_head(student, feats).sum().backward()
    assert all(f.grad is not None for f in feats)
    assert grads_absent(student)
    assert all(torch.equal(b, stats[n]) for n, b in student.named_buffers())  # running stats untouched


def test_ghost_loss_trains_fam_and_lam_only():
    d = distiller()
    x, y = batch()
    _, terms = d(x, y, progress=0.0)
    assert set(terms) == {"silog", "ghost", "attentive_kd"} and terms["attentive_kd"].item() == 0
    terms["ghost"].backward()
    assert grads_absent(d.student) and grads_absent(d.teacher)
    assert all(grads_present(fam) for fam in d.fam)
    assert all(lam.query.weight.grad.abs().sum() > 0 for lam in d.lam)


def test_kd_loss_trains_the_student_encoder_only():
    d = distiller()
    x, y = batch()
    _, terms = d(x, y, progress=0.5)
    assert terms["attentive_kd"].item() > 0
    terms["attentive_kd"].backward()
    assert grads_present(d.student.encoder)
    assert grads_absent(d.student.decoder) and grads_absent(d.teacher)
    assert grads_absent(d.fam) and grads_absent(d.lam)


def test_warmup_switches_kd_on_at_the_epoch_boundary():
    d = distiller(warmup_fraction=epoch_progress(2, 20), attentive_kd_weight=3.0)
    assert d.warmup_fraction == 0.1
    steps_per_epoch, total = 5, 100  # kdlab.train.fit passes progress = step / total_steps
    weights = [d.attentive_kd_weight_at(step / total) for step in range(total)]
    assert all(w == 0 for w in weights[:2 * steps_per_epoch]) and all(w == 3.0 for w in weights[2 * steps_per_epoch:])
    x, y = batch()
    assert d(x, y, progress=0.05)[1]["attentive_kd"].item() == 0
    assert d(x, y, progress=0.1)[1]["attentive_kd"].item() > 0
    with pytest.raises(ValueError, match="warmup_fraction"):
        distiller(warmup_fraction=2)


def test_frozen_sync_copies_the_decoder_once_after_warmup():
    d = distiller(sync="frozen", warmup_fraction=0.5)
    x, y = batch()
    d(x, y, progress=0.1)
    assert not bool(d.ghost_synced)
    d(x, y, progress=0.5)
    assert bool(d.ghost_synced)
    student_state = d.student.state_dict()
    assert all(torch.equal(v, student_state[k]) for k, v in d.ghost_copy.state_dict().items())
    with torch.no_grad():
        for p in d.student.decoder.parameters():
            p.add_(1.0)
    assert not any(torch.equal(p, q) for p, q in zip(d.student.decoder.parameters(), d.ghost_copy.decoder.parameters()))
    _, terms = d(x, y, progress=0.9)
    terms["ghost"].backward()
    assert grads_absent(d.ghost_copy) and grads_absent(d.student)
    ids = {id(p) for p in d.trainable_parameters()}
    assert not ids & {id(p) for p in d.ghost_copy.parameters()} and not ids & {id(p) for p in d.teacher.parameters()}
    assert {id(p) for p in d.fam.parameters()} <= ids


def test_ablation_rows():
    x, y = batch()
    keys = {"baseline": {"silog"}, "lgconv": {"silog"}, "feature_mse": {"silog", "attentive_kd"},
            "ghost": {"silog", "ghost", "attentive_kd"}, "lam": {"silog", "ghost", "attentive_kd"},
            "disdepth": {"silog", "ghost", "attentive_kd"}}
    for name in ABLATIONS:
        torch.manual_seed(0)
        row = disdepth_ablation(name, tiny_student(), tiny_teacher(), img_size=SIZE, warmup_fraction=0.2)
        assert bool(lgconv_layers(row.student)) == (name in ("lgconv", "disdepth"))  # one component per row
        assert getattr(row, "lam", None) is None or name in ("lam", "disdepth")
        assert isinstance(row, DepthSupervised) == (name in ("baseline", "lgconv"))
        depth, terms = row(x, y, progress=0.5)
        assert set(terms) == keys[name] and depth.shape == (4, 1, SIZE, SIZE)
        assert all(torch.isfinite(t) for t in terms.values())
        if name == "feature_mse":  # no ghost path: FAM learns from the KD loss itself
            terms["attentive_kd"].backward()
            assert all(grads_present(fam) for fam in row.fam)
            assert row(x, y, progress=0.1)[1]["attentive_kd"].item() == 0
    with pytest.raises(ValueError, match="unknown ablation"):
        disdepth_ablation("lam_only", tiny_student())
    with pytest.raises(ValueError, match="teacher"):
        disdepth_ablation("ghost", tiny_student())
    with pytest.raises(ValueError, match="ghost=True"):
        DisDepth(tiny_student(), tiny_teacher(), img_size=SIZE, ghost=False, attention=True)
    with pytest.raises(ValueError, match="sync"):
        DisDepth(tiny_student(), tiny_teacher(), img_size=SIZE, sync="epoch")
    with pytest.raises(ValueError, match="attentive_kd_weight"):
        DisDepth(tiny_student(), tiny_teacher(), img_size=SIZE, attentive_kd_weight=-1.0)


def test_disdepth_trains_with_fit_and_lam_stays_normalised():
    from kdlab.train import fit

    torch.manual_seed(0)
    d = DisDepth(tiny_student(), tiny_teacher("vit"), img_size=SIZE, warmup_fraction=0.5)
    x, y = batch(16, seed=4)
    history = fit(d, (x, y), epochs=2, batch_size=8, lr=3e-3, progress=False, device="cpu")
    assert len(history.rows) == 2 and np.isfinite(history.series("train/loss")).all()
    assert history.series("train/attentive_kd")[0] == 0 and history.series("train/attentive_kd")[1] > 0
    assert any(lam.query.weight.abs().sum() > 0 for lam in d.lam)  # LAM moved away from A = 1 ...
    maps = d.attention_maps(x[:2])
    assert all(torch.allclose(a.mean(dim=(2, 3)), torch.ones(2, 1), atol=1e-5) for a in maps)  # ... but mean A = 1
    assert d.ghost_predict(x[:2]).shape == d.predict(x[:2]).shape == (2, 1, SIZE, SIZE)


def test_registry_builds_the_depth_models():
    from kdlab.models import create, family_of, list_models

    assert list_models("depth") == ["depth_student", "depth_teacher_swin"]
    assert "depth_student" not in list_models()  # classification only by default
    student, teacher = create("depth_student", img_size=64), create("depth_teacher_swin", img_size=64)
    assert (student.kdlab_task, teacher.kdlab_task) == ("depth", "depth")
    assert (family_of(student), family_of(teacher)) == ("cnn", "swin")
    assert count_parameters(student) == count_parameters(depth_student())
    assert count_parameters(teacher) == count_parameters(depth_teacher())
    x = torch.rand(2, 3, 64, 64)
    assert student(x).shape == teacher(x).shape == (2, 1, 64, 64)
    assert create("depth_student", img_size=32, widths=(8, 8, 16, 16)).encoder.channels == (8, 16, 16)


def test_fit_and_evaluate_train_a_depth_model_on_a_depth_set():
    from kdlab.data import load_splits, standard_augment
    from kdlab.metrics import scenes_depth_metrics
    from kdlab.train import evaluate, fit

    train, val, test = load_splits("scenes", n_train=16, n_test=8, n_val=8, img_size=SIZE, seed=1)
    torch.manual_seed(0)
    distiller = DepthSupervised(tiny_student())
    history = fit(distiller, train, val, epochs=2, batch_size=8, lr=2e-3, augment=standard_augment(),
                  metrics=scenes_depth_metrics, progress=False)
    assert set(history.rows[-1]) >= {"train/silog", "val/abs_rel", "val/rmse", "val/d1"}
    scores = evaluate(distiller.student, val, metrics=scenes_depth_metrics)
    assert scores["abs_rel"] == pytest.approx(history.last("val/abs_rel")) and 0 <= scores["d1"] <= 1


def test_student_widths_that_timm_rounds_up_still_fit_the_decoder():
    student = depth_student(64, widths=(8, 12, 24, 48), n_bins=16)  # timm makes the 12-wide stage 16 wide
    assert student.encoder.channels == (16, 24, 48)
    assert student(torch.rand(2, 3, 64, 64)).shape == (2, 1, 64, 64)


def test_disdepth_recipe_rebuilds_from_knobs_and_caps_the_warmup():
    from kdlab.recipes import RECIPES, REFERENCE, disdepth_recipe

    assert RECIPES["05_disdepth"] is disdepth_recipe and REFERENCE["05_disdepth"] == {"profile": "cpu"}
    cpu = disdepth_recipe("cpu")
    assert cpu["seeds"] == [0, 1, 2] and disdepth_recipe("gpu")["seeds"] == [0, 1, 2, 3, 4]
    assert cpu["teacher"] == "scenes_depth_swin" and cpu["data"]["name"] == "scenes"
    custom = disdepth_recipe("cpu", seed=2, attentive_kd_weight=3.0, kd_warmup_epochs=1.0, n_seeds=2)
    assert custom["seeds"] == [2, 3] and disdepth_recipe(**custom["knobs"]) == custom
    epochs = custom["student"]["fit"]["epochs"]
    assert (custom["disdepth"]["attentive_kd_weight"] == 3.0
            and custom["disdepth"]["warmup_fraction"] == pytest.approx(1.0 / epochs))
    smoke = disdepth_recipe("smoke", kd_warmup_epochs=5.0)  # capped at half of the 2 epochs
    assert smoke["disdepth"]["warmup_fraction"] == 0.5
    student = depth_student(64, **smoke["student"]["model"])  # smoke's half-width student builds
    assert student(torch.rand(1, 3, 64, 64)).shape == (1, 1, 64, 64)


def test_disdepth_recipe_block_is_the_constructor_keywords():
    from kdlab.methods import METHODS
    from kdlab.models import create
    from kdlab.recipes import disdepth_recipe

    block = disdepth_recipe("smoke")["disdepth"]
    keywords = set(inspect.signature(METHODS["disdepth"]).parameters)
    assert set(block) <= keywords, set(block) - keywords
    assert METHODS["depth_supervised"] is DepthSupervised and METHODS["disdepth"] is DisDepth
    recipe = disdepth_recipe("smoke")
    torch.manual_seed(0)
    student = depth_student(64, **recipe["student"]["model"])
    distiller = METHODS["disdepth"](student, create("depth_teacher_swin", img_size=64), **block).train()
    _, terms = distiller(torch.rand(2, 3, 64, 64), 0.5 + 9 * torch.rand(2, 64, 64), progress=1.0)
    assert list(terms) == ["silog", "ghost", "attentive_kd"] and all(torch.isfinite(t) for t in terms.values())
