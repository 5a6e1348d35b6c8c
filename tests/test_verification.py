"""Face verification metrics (kdlab.metrics.verification) against hand computations and brute force."""
import math

import pytest
import torch

from kdlab.metrics.verification import (FoldAccuracy, best_threshold, fold_slices, pair_similarity, roc_auc,
                                        roc_curve, tar_at_far, verification_accuracy, verification_metrics)

# The hand example: 8 pairs, 4 same (T) and 4 different (F), scores already sorted high to low.
#
#   pair    0    1    2    3    4    5    6    7
#   score  .9   .8   .7   .6   .5   .4   .3   .2
#   same    T    T    F    T    F    T    F    F
#
# ROC (accept score >= t), t = inf, .9, .8, ..., .2:
#   TAR = 0, 1/4, 2/4, 2/4, 3/4, 3/4, 1, 1, 1      FAR = 0, 0, 0, 1/4, 1/4, 2/4, 2/4, 3/4, 1
# AUC (trapezoids) = 1/4 * (2/4 + 3/4 + 1 + 1) = 13/16; pairwise: same .9 and .8 beat all 4 different,
#   .6 beats 3 (.5 .3 .2), .4 beats 2 (.3 .2): 13 of 16 pairs.
# TAR@FAR=1/4: at most 1 different pair accepted -> lowest such threshold .6 -> TAR 3/4.
#   TAR@FAR=1/2 -> threshold .4 -> TAR 1.  TAR@FAR=0.2: 0.2 * 4 < 1 different pair -> not measurable (nan).
#
# 2-fold accuracy (folds = pairs 0-3 and 4-7, predict same iff score > t):
#   fold 1 held out, train on .5F .4T .3F .2F. Candidates .15 .25 .35 .45 .55 are right on 1, 2, 3, 2, 3 pairs:
#     best .35 (first of the tie .35/.55). Held out .9T .8T .7F .6T all > .35 -> 3/4 right.
#   fold 2 held out, train on .9T .8T .7F .6T. Candidates .55 .65 .75 .85 .95 are right on 3, 2, 3, 2, 1:
#     best .55. Held out .5F .4T .3F .2F all <= .55 -> predicted different -> 3/4 right.
#   acc = 0.75, std = 0, threshold = (.35 + .55) / 2 = .45.
SCORES = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
SAME = torch.tensor([True, True, False, True, False, True, False, False])


def test_roc_curve_by_hand():
    far, tar, thresholds = roc_curve(SCORES, SAME)
    assert far.tolist() == [0, 0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 1]
    assert tar.tolist() == [0, 0.25, 0.5, 0.5, 0.75, 0.75, 1, 1, 1]
    assert thresholds[0] == math.inf
    assert thresholds[1:].tolist() == pytest.approx(SCORES.tolist())
    assert far.dtype == tar.dtype == torch.float64


def test_auc_and_tar_by_hand():
    assert roc_auc(SCORES, SAME) == pytest.approx(13 / 16)
    assert tar_at_far(SCORES, SAME, 0.25) == 0.75
    assert tar_at_far(SCORES, SAME, 0.3) == 0.75
    assert tar_at_far(SCORES, SAME, 0.5) == 1.0
    with pytest.warns(RuntimeWarning, match="needs at least 5 different pairs"):
        assert math.isnan(tar_at_far(SCORES, SAME, 0.2))


def test_accuracy_by_hand():
    result = verification_accuracy(SCORES, SAME, n_folds=2)
    assert isinstance(result, FoldAccuracy)
    assert result.fold_acc.tolist() == [0.75, 0.75]
    assert result.fold_threshold.tolist() == pytest.approx([0.35, 0.55])
    assert result.acc == 0.75 and result.acc_std == 0.0
    assert result.threshold == pytest.approx(0.45)
    threshold, acc = best_threshold(SCORES[4:], SAME[4:])
    assert threshold == pytest.approx(0.35) and acc == 0.75


def test_ties_in_scores():
    # two pairs share the score .5 (one same, one different): a threshold can only take both or neither
    scores = torch.tensor([0.9, 0.5, 0.5, 0.1])
    same = torch.tensor([True, True, False, False])
    far, tar, thresholds = roc_curve(scores, same)
    assert far.tolist() == [0, 0, 0.5, 1] and tar.tolist() == [0, 0.5, 1, 1]
    assert roc_auc(scores, same) == pytest.approx(0.875)  # 3 wins + 1 tie (1/2) of 4
    threshold, acc = best_threshold(scores, same)  # candidates .3 (4 - 1 wrong) and .7 (1 wrong): tie -> .3
    assert threshold == pytest.approx(0.3) and acc == 0.75


def _brute_accuracy(scores, same, n_folds):
    """The LFW protocol written with loops: every candidate threshold tried one at a time."""
    n = len(scores)
    bounds = [0]
    for i in range(n_folds):
        bounds.append(bounds[-1] + n // n_folds + (1 if i < n % n_folds else 0))
    accs, thresholds = [], []
    for i in range(n_folds):
        test = list(range(bounds[i], bounds[i + 1]))
        train = [j for j in range(n) if j not in test]
        values = sorted(set(scores[train].tolist()))
        lo = values[0] - ((values[1] - values[0]) / 2 if len(values) > 1 else 0.5)
        hi = values[-1] + ((values[-1] - values[-2]) / 2 if len(values) > 1 else 0.5)
        candidates = [lo] + [(a + b) / 2 for a, b in zip(values, values[1:])] + [hi]
        best, best_t = -1, None
        for t in candidates:
            right = sum((scores[j].item() > t) == bool(same[j]) for j in train)
            if right > best:
                best, best_t = right, t
        accs.append(sum((scores[j].item() > best_t) == bool(same[j]) for j in test) / len(test))
        thresholds.append(best_t)
    return accs, thresholds


@pytest.mark.parametrize("n, n_folds, seed", [(50, 10, 0), (37, 10, 1), (23, 4, 2), (12, 12, 3)])
def test_accuracy_matches_brute_force(n, n_folds, seed):
    g = torch.Generator().manual_seed(seed)
    same = torch.rand(n, generator=g) < 0.5
    same[0], same[1] = True, False
    scores = (torch.randn(n, generator=g) + same.double() * 1.0).round(decimals=1)  # rounding makes ties
    result = verification_accuracy(scores, same, n_folds)
    accs, thresholds = _brute_accuracy(scores.double(), same, n_folds)
    assert result.fold_acc.tolist() == pytest.approx(accs)
    assert result.fold_threshold.tolist() == pytest.approx(thresholds)
    assert result.acc == pytest.approx(sum(accs) / n_folds)
    mean = sum(accs) / n_folds
    assert result.acc_std == pytest.approx(math.sqrt(sum((a - mean) ** 2 for a in accs) / n_folds))


def test_roc_matches_brute_force_and_is_monotone():
    g = torch.Generator().manual_seed(0)
    same = torch.arange(200) % 3 == 0
    scores = (torch.randn(200, generator=g) + same.float()).round(decimals=1)
    far, tar, thresholds = roc_curve(scores, same)
    assert (far[0], tar[0], far[-1], tar[-1]) == (0, 0, 1, 1)
    assert (far.diff() >= 0).all() and (tar.diff() >= 0).all() and (thresholds.diff() < 0).all()
    for k in (1, 7, len(thresholds) // 2, len(thresholds) - 1):
        accepted = scores.double() >= thresholds[k]
        assert tar[k].item() == (accepted & same).sum().item() / same.sum().item()
        assert far[k].item() == (accepted & ~same).sum().item() / (~same).sum().item()
    pos, neg = scores[same], scores[~same]
    wins = (pos[:, None] > neg[None]).double().sum() + 0.5 * (pos[:, None] == neg[None]).double().sum()
    assert roc_auc(scores, same) == pytest.approx((wins / (len(pos) * len(neg))).item())
    # TAR@FAR is the TAR at the last ROC point within the FAR budget
    for target in (0.01, 0.05, 0.3):
        k = max(i for i in range(len(far)) if far[i] * (~same).sum() <= math.floor(target * (~same).sum()))
        assert tar_at_far(scores, same, target) == tar[k].item()


def test_perfect_separation():
    same = torch.arange(400) % 2 == 0
    scores = torch.where(same, 0.6 + 0.3 * torch.rand(400), 0.4 * torch.rand(400) - 0.2)
    result = verification_accuracy(scores, same)
    assert result.acc == 1.0 and result.acc_std == 0.0 and (result.fold_acc == 1).all()
    assert 0.2 <= result.threshold <= 0.6
    assert tar_at_far(scores, same, 1e-2) == 1.0 and roc_auc(scores, same) == 1.0
    # and the opposite: a model that ranks every pair backwards
    flipped = verification_accuracy(-scores, same)
    assert flipped.acc <= 0.55
    assert roc_auc(-scores, same) == 0.0 and tar_at_far(-scores, same, 1e-2) == 0.0


def test_pair_similarity():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(10, 6, generator=g)
    pairs = torch.tensor([[0, 1], [2, 2], [3, 9], [9, 3]])
    sims = pair_similarity(emb, pairs)
    direct = torch.stack([torch.dot(emb[a], emb[b]) / (emb[a].norm() * emb[b].norm()) for a, b in pairs.tolist()])
    assert sims.shape == (4,) and torch.allclose(sims, direct, atol=1e-6)
    assert sims[1] == pytest.approx(1.0) and sims[2] == sims[3]
    assert torch.allclose(pair_similarity(emb[pairs[:, 0]], emb[pairs[:, 1]]), sims)
    assert torch.allclose(pair_similarity(emb * 7.5, pairs), sims, atol=1e-6), "scale-free"
    # orthogonal -> 0, opposite -> -1, a zero vector -> 0
    basis = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [0.0, 0.0]])
    out = pair_similarity(basis, torch.tensor([[0, 1], [0, 2], [0, 3]]))
    assert out.tolist() == pytest.approx([0.0, -1.0, 0.0])
    # feature maps are flattened per sample
    maps = torch.randn(4, 2, 3, 3, generator=g)
    one = torch.tensor([[0, 1]])
    assert torch.allclose(pair_similarity(maps, one), pair_similarity(maps.flatten(1), one))


def test_verification_metrics():
    g = torch.Generator().manual_seed(0)
    n_id, per = 40, 5
    centres = torch.nn.functional.normalize(torch.randn(n_id, 16, generator=g), dim=1)
    y = torch.arange(n_id).repeat_interleave(per)
    emb = centres[y] + 0.05 * torch.randn(len(y), 16, generator=g)
    from kdlab.data.faces import make_pairs
    pairs, same = make_pairs(y, 300, seed=0)
    with pytest.warns(RuntimeWarning, match="TAR@FAR=0.001"):
        m = verification_metrics(emb, pairs, same)
    assert set(m) == {"acc", "acc_std", "threshold", "tar@far=1e-2", "tar@far=1e-3", "auc"}
    assert all(isinstance(v, float) for v in m.values())
    assert m["acc"] == 1.0 and m["tar@far=1e-2"] == 1.0 and m["auc"] == 1.0
    assert math.isnan(m["tar@far=1e-3"]), "150 different pairs cannot measure FAR 1e-3"
    scores = pair_similarity(emb, pairs)
    assert m["threshold"] == pytest.approx(verification_accuracy(scores, same).threshold)
    # random embeddings: chance level
    with pytest.warns(RuntimeWarning):
        noise = verification_metrics(torch.randn(len(y), 16, generator=g), pairs, same, n_folds=5)
    assert 0.3 < noise["acc"] < 0.7 and 0.3 < noise["auc"] < 0.7


def test_fold_slices():
    folds = fold_slices(23, 10)
    assert [f.stop - f.start for f in folds] == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    assert folds[0].start == 0 and folds[-1].stop == 23
    assert all(a.stop == b.start for a, b in zip(folds, folds[1:])), "contiguous"


@pytest.mark.parametrize("call, match", [
    (lambda: roc_curve(SCORES[:, None], SAME), r"scores must have 1 dimensions, got shape \(8, 1\)"),
    (lambda: roc_curve(SCORES.long(), SAME), "scores must be a floating-point tensor, got dtype torch.int64"),
    (lambda: roc_curve(SCORES, SAME[:5]), "same must be"),
    (lambda: roc_curve(SCORES, torch.full((8,), 0.5)), "bool"),
    (lambda: roc_curve(SCORES, torch.full((8,), 2)), "bool"),
    (lambda: roc_curve(SCORES, torch.ones(8, dtype=torch.bool)), "every pair is a same-identity pair"),
    (lambda: roc_curve(SCORES, torch.zeros(8, dtype=torch.bool)), "every pair is a different-identity pair"),
    (lambda: roc_curve(torch.tensor([0.1, float("nan")]), torch.tensor([True, False])), "finite"),
    (lambda: roc_curve(torch.tensor([0.1]), torch.tensor([True])), "at least 2"),
    (lambda: tar_at_far(SCORES, SAME, 0.0), "far must be"),
    (lambda: tar_at_far(SCORES, SAME, 1.5), "far must be"),
    (lambda: verification_accuracy(SCORES, SAME, 1), "n_folds"),
    (lambda: verification_accuracy(SCORES, SAME, 9), "n_folds"),
    (lambda: verification_accuracy(SCORES, SAME, 2.0), "n_folds"),
    (lambda: pair_similarity(torch.randn(5), torch.tensor([[0, 1]])), "embeddings"),
    (lambda: pair_similarity(torch.randn(5, 3), torch.tensor([[0, 5]])), "pair indices"),
    (lambda: pair_similarity(torch.randn(5, 3), torch.tensor([0, 1])), "pairs must be"),
    (lambda: pair_similarity(torch.randn(5, 3), torch.randn(4, 3)), "same shape"),
    (lambda: pair_similarity(torch.randn(5, 3), [[0, 1]]), "pairs must be"),
    (lambda: verification_metrics(torch.randn(5, 3), torch.tensor([[0, 1], [2, 3]]), torch.tensor([True])),
     "same must be"),
])
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_integer_flags_are_accepted():
    assert roc_auc(SCORES, SAME.long()) == roc_auc(SCORES, SAME)
    assert verification_accuracy(SCORES, SAME.int(), 2).acc == 0.75


def test_verification_summary_flat_names_and_only_measurable_rates():
    from kdlab.metrics import verification_summary

    g = torch.Generator().manual_seed(0)
    emb = torch.randn(40, 8, generator=g)
    pairs = torch.randint(0, 40, (60, 2), generator=g)
    same = torch.arange(60) % 2 == 0
    with pytest.warns(RuntimeWarning, match="returning nan"):
        full = verification_metrics(emb, pairs, same)
    summary = verification_summary(emb, pairs, same)  # silent: the unmeasurable rates are simply left out
    # 30 different pairs: FAR 1e-2 and 1e-3 cannot be measured, so both are left out (never nan)
    assert summary == {"verif_acc": full["acc"], "verif_acc_std": full["acc_std"], "auc": full["auc"]}
    many = torch.arange(2400) % 2 == 0  # 1200 different pairs measure both rates
    big = verification_summary(torch.randn(100, 8, generator=g), torch.randint(0, 100, (2400, 2), generator=g), many)
    assert {"tar_far1e-2", "tar_far1e-3"} <= set(big) and all(math.isfinite(v) for v in big.values())


def test_fold_tar_at_far_by_hand():
    from kdlab.metrics import fold_tar_at_far

    # 2 folds, FAR 1: fold 1 held out, train .5F .4T .3F .2F may accept all 3 different pairs -> threshold .2 ->
    # held-out same .9 .8 .6 accepted (TAR 1), different .7 too (FAR 1). Fold 2 held out, train .9T .8T .7F .6T
    # may accept 1 -> lowest such threshold .6 -> held-out .4T rejected (TAR 0), .5 .3 .2 rejected (FAR 0).
    result = fold_tar_at_far(SCORES, SAME, far=1.0, n_folds=2)
    assert result.tar == pytest.approx(0.5) and result.tar_std == pytest.approx(0.5) and result.far == 0.5
    with pytest.raises(ValueError, match="needs at least 2 different pairs outside each fold, got 1"):
        fold_tar_at_far(SCORES, SAME, far=0.5, n_folds=2)  # fold 2's training folds hold one different pair
    with pytest.raises(ValueError, match="same and different"):
        fold_tar_at_far(torch.tensor([0.9, 0.8, 0.2, 0.1]), torch.tensor([True, True, False, False]), 1.0, 2)
    with pytest.raises(ValueError):
        fold_tar_at_far(SCORES, SAME, far=0.0)


def test_fold_tar_at_far_agrees_with_the_pooled_tar_on_many_pairs():
    from kdlab.metrics import fold_tar_at_far

    g = torch.Generator().manual_seed(0)
    same = torch.rand(6000, generator=g) < 0.5
    scores = (torch.randn(6000, generator=g) + 2.0 * same).double()
    result = fold_tar_at_far(scores, same, far=1e-2)
    assert abs(result.tar - tar_at_far(scores, same, 1e-2)) < 0.03 and 0.0 < result.tar_std < 0.1
    assert 0.0 < result.far < 0.02  # the held-out FAR lands near the target the thresholds were chosen for
