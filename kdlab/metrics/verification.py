r"""Face verification metrics: cosine pair scores, LFW-protocol accuracy, ROC, TAR@FAR and AUC.

A verification set is a list of $P$ image pairs with a flag ``same`` (both images show one identity).
A model embeds every image; a pair's score is the cosine similarity of the two L2-normalised embeddings,

$$s_p=\Big\langle \frac{e_a}{\lVert e_a\rVert},\frac{e_b}{\lVert e_b\rVert}\Big\rangle\in[-1,1],$$

and a threshold $t$ turns scores into decisions. Conventions used throughout:

* **ROC** (:func:`roc_curve`): a pair is *accepted* when $s\ge t$. For every distinct score $t$ (descending)
  $\mathrm{TAR}(t)=\#\{\text{same}: s\ge t\}/\#\text{same}$ and
  $\mathrm{FAR}(t)=\#\{\text{different}: s\ge t\}/\#\text{different}$; the curve starts at $(0, 0)$
  with $t=+\infty$ and ends at $(1, 1)$.
* **TAR@FAR** (:func:`tar_at_far`): no interpolation. The reported TAR is the one at the lowest ROC
  threshold whose FAR does not exceed the target, i.e. $\max\{\mathrm{TAR}_k:\mathrm{FAR}_k\le\text{target}\}$
  (a conservative step read-out). With $n$ different pairs the smallest non-zero FAR is $1/n$; a target
  below it cannot be measured, so the result is ``nan`` with a warning.
* **TAR@FAR per fold** (:func:`fold_tar_at_far`): insightface's read-out beside the accuracy, a threshold per fold
  chosen on the other folds at the target FAR, the held-out fold's TAR and FAR, mean and std over folds.
* **AUC**: the trapezoidal area under the ROC, which equals the probability that a random same pair
  scores above a random different pair (ties count one half).
* **Accuracy** (:func:`verification_accuracy`), the LFW protocol: the pairs are cut into ``n_folds``
  *contiguous* folds in their given order (like ``sklearn.model_selection.KFold(shuffle=False)``: the first
  ``P mod n_folds`` folds get one extra pair; LFW's ``pairs.txt`` lists its ten folds one after another).
  For each fold the threshold is chosen on the *other* folds: a pair is predicted *same* when $s>t$, and the
  candidates are every midpoint between consecutive distinct training scores plus one candidate half a
  gap below the lowest and above the highest score (predict all *same* / all *different*). The candidate
  with the highest training accuracy wins (ties: the lowest threshold, as ``argmax`` does). The held-out
  fold is scored with that threshold; the result is the mean and the (population, ``ddof=0``) standard
  deviation of the fold accuracies, and the mean threshold.
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_int, check_number, check_tensor


class FoldAccuracy(NamedTuple):
    """The result of :func:`verification_accuracy`.

    Attributes:
        acc: mean held-out accuracy over the folds, in ``[0, 1]``.
        acc_std: standard deviation of the fold accuracies (``ddof=0``, as LFW results are usually quoted).
        threshold: mean of the per-fold thresholds.
        fold_acc: (n_folds,) float64 held-out accuracy of each fold.
        fold_threshold: (n_folds,) float64 threshold chosen for each fold (on the other folds).
    """

    acc: float
    acc_std: float
    threshold: float
    fold_acc: Tensor
    fold_threshold: Tensor


def pair_similarity(embeddings: Tensor, pairs: Tensor) -> Tensor:
    """Cosine similarity of the L2-normalised embeddings of each pair, (P,) in ``[-1, 1]``.

    Two call forms:

    * ``pair_similarity(embeddings (N, D), pairs (P, 2) int)``: pair ``p`` compares rows ``pairs[p, 0]``
      and ``pairs[p, 1]``;
    * ``pair_similarity(a (P, D), b (P, D))``: row ``p`` of ``a`` against row ``p`` of ``b``.

    Embeddings with more than two dimensions are flattened per sample. A zero embedding has no direction:
    its similarity is 0. The result has the embeddings' floating dtype.
    """
    check_tensor("embeddings", embeddings, floating=True)
    if embeddings.ndim < 2:
        raise ValueError(f"embeddings must be (N, D) (or (N, ...), flattened per sample), got shape "
                         f"{tuple(embeddings.shape)}")
    if not isinstance(pairs, Tensor):
        raise ValueError("pairs must be a (P, 2) int tensor or a second (P, D) embedding tensor, "
                         f"got {type(pairs).__name__}")
    emb = embeddings.flatten(1)
    if pairs.is_floating_point():
        other = pairs.flatten(1) if pairs.ndim >= 2 else pairs
        if other.shape != emb.shape:
            raise ValueError(f"two embedding tensors must have the same shape, got {tuple(embeddings.shape)} "
                             f"and {tuple(pairs.shape)}")
        a, b = emb, other.to(emb.dtype)
    else:
        if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.dtype == torch.bool or pairs.is_complex():
            raise ValueError("pairs must be an integer (P, 2) tensor of row indices, "
                             f"got {tuple(pairs.shape)} {pairs.dtype}")
        if len(pairs):
            lo, hi = int(pairs.min()), int(pairs.max())
            if lo < 0 or hi >= len(emb):
                raise ValueError(f"pair indices must be in [0, {len(emb)}) for {len(emb)} embeddings, got [{lo}, {hi}]")
        pairs = pairs.to(emb.device).long()
        a, b = emb[pairs[:, 0]], emb[pairs[:, 1]]
    return (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(dim=1)


def roc_curve(scores: Tensor, same: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The ROC of verification scores: ``(far, tar, thresholds)``, float64 tensors of length ``U + 1`` for
    ``U`` distinct scores.

    ``thresholds`` runs from ``+inf`` down through every distinct score; at threshold ``t`` the pairs with
    ``score >= t`` are accepted and ``far`` / ``tar`` are the accepted fractions of the different / same
    pairs. So the curve starts at ``(0, 0)``, ends at ``(1, 1)`` and both rates never decrease. Computed with
    one sort and two cumulative sums.
    """
    s, y = _check_scores(scores, same)
    order = torch.argsort(s, descending=True, stable=True)
    s, y = s[order], y[order]
    tp = torch.cumsum(y, 0, dtype=torch.float64)
    fp = torch.cumsum(~y, 0, dtype=torch.float64)
    last = torch.ones_like(y)
    last[:-1] = s[1:] != s[:-1]  # the last pair of each run of equal scores
    zero = torch.zeros(1, dtype=torch.float64, device=s.device)
    far = torch.cat([zero, fp[last] / fp[-1]])
    tar = torch.cat([zero, tp[last] / tp[-1]])
    thresholds = torch.cat([torch.full((1,), math.inf, dtype=torch.float64, device=s.device), s[last]])
    return far, tar, thresholds


def roc_auc(scores: Tensor, same: Tensor) -> float:
    """Area under the ROC (trapezoidal rule): P(score of a same pair > score of a different pair), ties 1/2."""
    far, tar, _ = roc_curve(scores, same)
    return torch.trapezoid(tar, far).item()


def tar_at_far(scores: Tensor, same: Tensor, far: float = 1e-2) -> float:
    """The true accept rate at false accept rate ``far``, read off the ROC without interpolation.

    Returns ``max{TAR_k : FAR_k <= far}`` over the points of :func:`roc_curve` (the TAR at the lowest
    threshold that keeps the FAR within the target). The comparison is done on counts: at most
    ``floor(far * n_different)`` different pairs may be accepted.

    If ``far * n_different < 1`` the only admissible point is FAR = 0 and the requested rate cannot be
    measured on this many different pairs: the result is ``nan`` and a ``RuntimeWarning`` says how many
    different pairs would be needed.
    """
    check_number("far", far, low=0.0, strict=True, high=1.0)
    fars, tars, _ = roc_curve(scores, same)
    n_diff = int((~_check_scores(scores, same)[1]).sum())
    allowed = math.floor(far * n_diff * (1 + 1e-12))
    if allowed < 1:
        warnings.warn(f"TAR@FAR={far:g} needs at least {math.ceil(1 / far)} different pairs (the smallest "
                      f"non-zero FAR is 1/n_different), got {n_diff}; returning nan", RuntimeWarning, stacklevel=2)
        return float("nan")
    accepted = torch.round(fars * n_diff)  # different pairs accepted at each ROC point
    k = int(torch.searchsorted(accepted, torch.tensor([float(allowed)], dtype=torch.float64), right=True)) - 1
    return tars[k].item()


class FoldTAR(NamedTuple):
    """The result of :func:`fold_tar_at_far`: ``tar`` / ``tar_std`` (mean and ``ddof=0`` std of the held-out folds'
    TARs) and ``far`` (the mean held-out FAR the thresholds actually gave, to compare with the target)."""

    tar: float
    tar_std: float
    far: float


def fold_tar_at_far(scores: Tensor, same: Tensor, far: float = 1e-2, n_folds: int = 10) -> FoldTAR:
    r"""TAR@FAR the way insightface's verification reports it next to the accuracy: per fold, with the threshold
    chosen on the *other* folds (the lowest ROC threshold, :func:`roc_curve`, whose FAR there stays within
    ``far``, as in :func:`tar_at_far`) and the held-out fold's same pairs accepted at $s\ge t$. Folds as in
    :func:`verification_accuracy`. The training folds need ``far * n_different >= 1`` different pairs (else
    ``ValueError``); each held-out fold needs both kinds of pair.
    """
    check_number("far", far, low=0.0, strict=True, high=1.0)
    s, y = _check_scores(scores, same)
    tars, fars = [], []
    for fold in fold_slices(len(s), n_folds):
        train = torch.ones(len(s), dtype=torch.bool, device=s.device)
        train[fold] = False
        held_s, held_y = s[fold], y[fold]
        if held_y.all() or not held_y.any():
            raise ValueError("every fold needs same and different pairs; shuffle the pairs or use fewer folds")
        fars_k, _, thresholds = roc_curve(s[train], y[train])
        n_diff = int((~y[train]).sum())
        allowed = math.floor(far * n_diff * (1 + 1e-12))
        if allowed < 1:
            raise ValueError(f"TAR@FAR={far:g} per fold needs at least {math.ceil(1 / far)} different pairs outside "
                             f"each fold, got {n_diff}")
        accepted = torch.round(fars_k * n_diff)
        k = int(torch.searchsorted(accepted, torch.tensor([float(allowed)], dtype=torch.float64), right=True)) - 1
        tars.append((held_s[held_y] >= thresholds[k]).double().mean().item())
        fars.append((held_s[~held_y] >= thresholds[k]).double().mean().item())
    tar = torch.tensor(tars, dtype=torch.float64)
    return FoldTAR(tar.mean().item(), tar.std(correction=0).item(), sum(fars) / len(fars))


def best_threshold(scores: Tensor, same: Tensor) -> tuple[float, float]:
    """The threshold that maximises the accuracy of ``score > threshold`` <=> *same* on these pairs, and that
    accuracy: ``(threshold, accuracy)``.

    Candidates are the midpoints between consecutive distinct scores, plus half a gap below the lowest and
    above the highest score (a gap of 1 when all scores are equal); ties go to the lowest threshold.
    Vectorised: one ``unique``, two ``bincount`` and a cumulative sum give every candidate's accuracy.
    """
    s, y = _check_scores(scores, same, need_both=False, min_pairs=1)
    values, inverse = torch.unique(s, sorted=True, return_inverse=True)
    m = len(values)
    pos = torch.bincount(inverse[y], minlength=m).double()
    neg = torch.bincount(inverse[~y], minlength=m).double()
    zero = torch.zeros(1, dtype=torch.float64, device=s.device)
    neg_below = torch.cat([zero, torch.cumsum(neg, 0)])  # candidate j: values[:j] predicted different
    pos_below = torch.cat([zero, torch.cumsum(pos, 0)])
    correct = neg_below + (pos_below[-1] - pos_below)
    low_gap = values[1] - values[0] if m > 1 else torch.ones((), dtype=torch.float64, device=s.device)
    high_gap = values[-1] - values[-2] if m > 1 else low_gap
    candidates = torch.cat([(values[:1] - low_gap / 2), (values[1:] + values[:-1]) / 2, values[-1:] + high_gap / 2])
    j = int(torch.argmax(correct))
    return candidates[j].item(), (correct[j] / len(s)).item()


def fold_slices(n: int, n_folds: int) -> list[slice]:
    """Contiguous folds of ``range(n)``: the first ``n % n_folds`` have ``n // n_folds + 1`` items, the rest
    ``n // n_folds`` (sklearn's ``KFold(shuffle=False)``)."""
    check_int("n_folds", n_folds, low=2, high=n)
    sizes = [n // n_folds + (1 if i < n % n_folds else 0) for i in range(n_folds)]
    starts = [sum(sizes[:i]) for i in range(n_folds)]
    return [slice(a, a + k) for a, k in zip(starts, sizes)]


def verification_accuracy(scores: Tensor, same: Tensor, n_folds: int = 10) -> FoldAccuracy:
    """LFW-protocol verification accuracy with a threshold chosen on the other folds (see the module notes).

    Args:
        scores: (P,) floating pair scores (higher = more alike), e.g. from :func:`pair_similarity`.
        same: (P,) bool, ``True`` for same-identity pairs; both kinds must be present.
        n_folds: number of contiguous folds, in ``[2, P]`` (10 as on LFW).

    Returns:
        a :class:`FoldAccuracy` ``(acc, acc_std, threshold, fold_acc, fold_threshold)``.
    """
    s, y = _check_scores(scores, same)
    folds = fold_slices(len(s), n_folds)
    accs, thresholds = [], []
    for fold in folds:
        train = torch.ones(len(s), dtype=torch.bool, device=s.device)
        train[fold] = False
        threshold, _ = best_threshold(s[train], y[train])
        accs.append(((s[fold] > threshold) == y[fold]).double().mean().item())
        thresholds.append(threshold)
    fold_acc = torch.tensor(accs, dtype=torch.float64)
    fold_threshold = torch.tensor(thresholds, dtype=torch.float64)
    return FoldAccuracy(acc=fold_acc.mean().item(), acc_std=fold_acc.std(correction=0).item(),
                        threshold=fold_threshold.mean().item(), fold_acc=fold_acc, fold_threshold=fold_threshold)


def verification_metrics(embeddings: Tensor, pairs: Tensor, same: Tensor, n_folds: int = 10) -> dict[str, float]:
    """Every verification number for embeddings of a pair list, as plain floats::

        {"acc", "acc_std", "threshold", "tar@far=1e-2", "tar@far=1e-3", "auc"}

    ``acc``/``acc_std``/``threshold`` from :func:`verification_accuracy` (``n_folds`` contiguous folds),
    the TARs from :func:`tar_at_far` (``nan``, with a warning, when there are too few different pairs:
    1e-3 needs 1000), ``auc`` from :func:`roc_auc`; scores are :func:`pair_similarity` (cosine).
    """
    scores = pair_similarity(embeddings, pairs)
    if not isinstance(same, Tensor) or same.shape != (len(scores),):
        got = tuple(same.shape) if isinstance(same, Tensor) else type(same).__name__
        raise ValueError(f"same must be a ({len(scores)},) bool tensor, one flag per pair, got {got}")
    result = verification_accuracy(scores, same, n_folds)
    return {
        "acc": result.acc,
        "acc_std": result.acc_std,
        "threshold": result.threshold,
        "tar@far=1e-2": tar_at_far(scores, same, 1e-2),
        "tar@far=1e-3": tar_at_far(scores, same, 1e-3),
        "auc": roc_auc(scores, same),
    }


def verification_summary(embeddings: Tensor, pairs: Tensor, same: Tensor, n_folds: int = 10) -> dict[str, float]:
    """:func:`verification_metrics` under flat names for tables and manifests, only the measurable ones::

        {"verif_acc", "verif_acc_std", "tar_far1e-2", "tar_far1e-3", "auc"}

    A TAR whose FAR cannot be measured on this many different pairs (``far * n_different < 1``: 1e-3 needs
    1000) is left out rather than reported as ``nan``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m = verification_metrics(embeddings, pairs, same, n_folds)
    out = {"verif_acc": m["acc"], "verif_acc_std": m["acc_std"], "tar_far1e-2": m["tar@far=1e-2"],
           "tar_far1e-3": m["tar@far=1e-3"], "auc": m["auc"]}
    return {k: v for k, v in out.items() if math.isfinite(v)}


# ---------------------------------------------------------------------------------------------- checks


def _check_scores(scores: object, same: object, need_both: bool = True, min_pairs: int = 2) -> tuple[Tensor, Tensor]:
    """(P,) float64 finite scores and (P,) bool flags on the same device."""
    check_tensor("scores", scores, ndim=1, floating=True)
    if not isinstance(same, Tensor) or same.shape != scores.shape:
        got = f"{tuple(same.shape)} {same.dtype}" if isinstance(same, Tensor) else type(same).__name__
        raise ValueError(f"same must be a ({len(scores)},) bool tensor matching scores, got {got}")
    if same.dtype != torch.bool:
        if same.is_floating_point() or same.is_complex() or (len(same) and not ((same == 0) | (same == 1)).all()):
            raise ValueError(f"same must be bool (or 0/1 integers), got {same.dtype}")
        same = same == 1
    if len(scores) < min_pairs:
        raise ValueError(f"need at least {min_pairs} pair(s), got {len(scores)}")
    if not torch.isfinite(scores).all():
        raise ValueError("scores must be finite (no nan or inf)")
    if need_both and (bool(same.all()) or not bool(same.any())):
        kind = "same" if bool(same.all()) else "different"
        raise ValueError(f"every pair is a {kind}-identity pair; verification metrics need both kinds")
    return scores.double(), same.to(scores.device)


__all__ = ["FoldAccuracy", "best_threshold", "fold_slices", "pair_similarity", "roc_auc", "roc_curve",
           "tar_at_far", "verification_accuracy", "verification_metrics", "verification_summary"]
