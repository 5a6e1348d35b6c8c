r"""Metrics: accuracy, centred kernel alignment (CKA) and segmentation scores (confusion matrix, mIoU);
face verification and depth metrics live in the sibling modules ``verification`` and ``depth``.

Linear CKA (Kornblith et al. 2019; the OFA paper's Fig. 2) compares two sets of features computed on the
same $n$ inputs, $X\in\mathbb{R}^{n\times d_1}$ and $Y\in\mathbb{R}^{n\times d_2}$. With Gram matrices
$K=XX^\top$, $L=YY^\top$ and centring matrix $H=I_n-\tfrac1n\mathbf{1}\mathbf{1}^\top$:

$$\mathrm{HSIC}(K,L)=\frac{\mathrm{tr}(KHLH)}{(n-1)^2},\qquad
  \mathrm{CKA}(K,L)=\frac{\mathrm{HSIC}(K,L)}{\sqrt{\mathrm{HSIC}(K,K)\,\mathrm{HSIC}(L,L)}}\in[0,1].$$

For linear kernels the same number is $\|\tilde Y^\top\tilde X\|_F^2 / (\|\tilde X^\top\tilde X\|_F\,\|\tilde Y^\top\tilde Y\|_F)$
with column-centred $\tilde X,\tilde Y$: cheaper when $d \ll n$. CKA is invariant to orthogonal transforms
and isotropic scaling of either side, but not to arbitrary invertible linear maps.

Segmentation is scored from one confusion matrix $M\in\mathbb{N}^{K\times K}$ over every pixel of the set
($M_{ij}$ = pixels of true class $i$ predicted as $j$), as in the VOC / mmseg protocol:

$$\mathrm{IoU}_k=\frac{M_{kk}}{\sum_j M_{kj}+\sum_i M_{ik}-M_{kk}},\qquad
  \mathrm{mIoU}=\frac{1}{|P|}\sum_{k\in P}\mathrm{IoU}_k,\qquad
  \text{pixel acc}=\frac{\mathrm{tr}\,M}{\sum_{ij}M_{ij}},$$

where $P$ holds the classes present in the target or in the prediction (a class absent from both has a
0/0 IoU and is left out; a class only predicted scores 0 and counts). Pixels labelled ``ignore_index``
are not counted anywhere.
"""
from __future__ import annotations

import torch
from torch import Tensor

SEG_IGNORE_INDEX = -100
"""The target value :func:`segmentation_metrics` skips (``F.cross_entropy``'s default ``ignore_index``)."""


def accuracy(logits: Tensor, targets: Tensor, topk: int = 1) -> float:
    """Fraction of samples whose true class is among the ``topk`` highest logits."""
    if logits.ndim != 2 or targets.ndim != 1 or len(logits) != len(targets):
        raise ValueError(f"expected (N, K) logits and (N,) targets, got {tuple(logits.shape)} and {tuple(targets.shape)}")
    if not 1 <= topk <= logits.shape[1]:
        raise ValueError(f"topk must be in [1, {logits.shape[1]}], got {topk}")
    top = logits.topk(topk, dim=1).indices
    return (top == targets[:, None]).any(dim=1).float().mean().item()


def _as_matrix(features: Tensor, name: str) -> Tensor:
    """(n, ...) features -> (n, d) float64, each sample flattened."""
    if features.ndim < 2:
        raise ValueError(f"{name} must have a sample dimension and at least one feature dimension, got {tuple(features.shape)}")
    if features.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples for CKA, got {features.shape[0]}")
    return features.reshape(features.shape[0], -1).double()


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA between features ``x`` (n, d1, ...) and ``y`` (n, d2, ...) of the same n inputs.

    Each sample is flattened. Uses the feature-space form when both widths are below n, the Gram
    (HSIC) form otherwise; they are equal. Returns 0.0 if either side has no variance.
    """
    x, y = _as_matrix(x, "x"), _as_matrix(y, "y")
    if len(x) != len(y):
        raise ValueError(f"x and y must describe the same samples, got {len(x)} and {len(y)} rows")
    x = x - x.mean(0, keepdim=True)
    y = y - y.mean(0, keepdim=True)
    if max(x.shape[1], y.shape[1]) < len(x):
        cross = (y.T @ x).square().sum()
        norm = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    else:
        gram_x, gram_y = x @ x.T, y @ y.T  # already centred: H K H = X~ X~^T
        cross = (gram_x * gram_y).sum()
        norm = torch.linalg.matrix_norm(gram_x) * torch.linalg.matrix_norm(gram_y)
    return 0.0 if norm == 0 else (cross / norm).item()


def hsic_cka(x: Tensor, y: Tensor) -> float:
    """CKA written literally as in the OFA spec, tr(KHLH)/sqrt(tr(KHKH) tr(LHLH)): the reference form for tests."""
    x, y = _as_matrix(x, "x"), _as_matrix(y, "y")
    n = len(x)
    h = torch.eye(n, dtype=x.dtype) - torch.full((n, n), 1.0 / n, dtype=x.dtype)
    k, l = x @ x.T, y @ y.T
    hsic = lambda a, b: torch.trace(a @ h @ b @ h) / (n - 1) ** 2  # noqa: E731
    denom = torch.sqrt(hsic(k, k) * hsic(l, l))
    return 0.0 if denom == 0 else (hsic(k, l) / denom).item()


class MinibatchCKA:
    r"""Linear CKA accumulated over minibatches (Nguyen, Raghu, Kornblith 2021), for sets too large for one Gram.

    For every pair of minibatches it adds the *unbiased* HSIC estimator
    $\mathrm{HSIC}_1(K,L)=\frac{1}{n(n-3)}\big[\mathrm{tr}(\tilde K\tilde L)+\frac{\mathbf 1^\top\tilde K\mathbf 1\,
    \mathbf 1^\top\tilde L\mathbf 1}{(n-1)(n-2)}-\frac{2}{n-2}\mathbf 1^\top\tilde K\tilde L\mathbf 1\big]$
    ($\tilde K$: $K$ with its diagonal zeroed), then returns
    $\sum\mathrm{HSIC}_1(K,L)/\sqrt{\sum\mathrm{HSIC}_1(K,K)\sum\mathrm{HSIC}_1(L,L)}$.
    Minibatches need at least 4 samples. Use ``update(x_batch, y_batch)`` then ``compute()``.
    """

    def __init__(self) -> None:
        self.sums = torch.zeros(3, dtype=torch.float64)  # HSIC(K,L), HSIC(K,K), HSIC(L,L)

    @staticmethod
    def _unbiased_hsic(k: Tensor, l: Tensor) -> Tensor:
        n = len(k)
        k = k - torch.diag(torch.diag(k))
        l = l - torch.diag(torch.diag(l))
        ones = torch.ones(n, 1, dtype=k.dtype)
        term = (k * l).sum() + (ones.T @ k @ ones) * (ones.T @ l @ ones) / ((n - 1) * (n - 2))
        term = term - 2.0 / (n - 2) * (ones.T @ k @ l @ ones)
        return term.squeeze() / (n * (n - 3))

    def update(self, x: Tensor, y: Tensor) -> "MinibatchCKA":
        x, y = _as_matrix(x, "x"), _as_matrix(y, "y")
        if len(x) != len(y) or len(x) < 4:
            raise ValueError(f"a minibatch needs the same >= 4 samples on both sides, got {len(x)} and {len(y)}")
        k, l = x @ x.T, y @ y.T
        self.sums += torch.stack([self._unbiased_hsic(k, l), self._unbiased_hsic(k, k), self._unbiased_hsic(l, l)])
        return self

    def compute(self) -> float:
        cross, kk, ll = self.sums
        if kk <= 0 or ll <= 0:
            return 0.0
        return (cross / torch.sqrt(kk * ll)).item()


def cka_matrix(features_a: list[Tensor], features_b: list[Tensor], batch_size: int | None = None) -> Tensor:
    """(len(a), len(b)) matrix of linear CKA between every pair of stage features (same inputs, same order).

    With ``batch_size`` the minibatch estimator is used (memory O(batch_size^2) instead of O(n^2) or O(d^2)).
    """
    matrix = torch.zeros(len(features_a), len(features_b))
    for i, fa in enumerate(features_a):
        for j, fb in enumerate(features_b):
            if batch_size is None:
                matrix[i, j] = linear_cka(fa, fb)
            else:
                acc = MinibatchCKA()
                for start in range(0, len(fa) - 3, batch_size):
                    acc.update(fa[start:start + batch_size], fb[start:start + batch_size])
                matrix[i, j] = acc.compute()
    return matrix


# ------------------------------------------------------------------------------------------ segmentation


def confusion_matrix(pred_labels: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """(K, K) int64 counts, ``cm[i, j]`` = number of elements of true class ``i`` predicted as ``j``.

    One ``bincount`` over ``K * target + pred`` (no loop), on the inputs' device.

    Args:
        pred_labels: predicted class indices, an integer tensor of any shape (e.g. (N, H, W)).
        target: true class indices, an integer tensor of the same shape.
        num_classes: ``K``; every counted label must lie in ``[0, K)``.
        ignore_index: target value whose elements are skipped (``None``: none is skipped).
    """
    _check_num_classes(num_classes)
    for name, t in (("pred_labels", pred_labels), ("target", target)):
        if not isinstance(t, Tensor) or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            got = t.dtype if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must be an integer tensor of class indices, got {got}")
    if pred_labels.shape != target.shape:
        raise ValueError(f"pred_labels and target must have the same shape, got {tuple(pred_labels.shape)} "
                         f"and {tuple(target.shape)}")
    if pred_labels.device != target.device:
        raise ValueError(f"pred_labels is on {pred_labels.device} but target is on {target.device}")
    pred, target = pred_labels.reshape(-1).long(), target.reshape(-1).long()
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    for name, t in (("pred_labels", pred), ("target", target)):
        if t.numel():
            lo, hi = (int(v) for v in torch.aminmax(t))
            if not (0 <= lo and hi < num_classes):
                aside = f" (ignore_index {ignore_index} aside)" if name == "target" and ignore_index is not None else ""
                raise ValueError(f"{name} must hold labels in [0, {num_classes}){aside}, got [{lo}, {hi}]")
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def per_class_iou(confusion: Tensor) -> Tensor:
    """(K,) float64 IoU of every class from a (K, K) confusion matrix (rows: target, columns: prediction);
    NaN for a class absent from both target and prediction (its IoU is 0/0)."""
    if not isinstance(confusion, Tensor) or confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        got = tuple(confusion.shape) if isinstance(confusion, Tensor) else type(confusion).__name__
        raise ValueError(f"confusion must be a square (K, K) matrix, got {got}")
    confusion = confusion.double()
    tp = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def mean_iou(logits_or_labels: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = None) -> float:
    r"""Mean intersection over union, $\frac{1}{|P|}\sum_{k\in P}\mathrm{IoU}_k$, over one confusion matrix
    of all elements (dataset-level, not a mean of per-image scores).

    Classes absent from both the target and the prediction are excluded from the mean (their IoU is 0/0);
    a class that is predicted but never true scores 0 and counts.

    Args:
        logits_or_labels: (N, K, *S) floating scores (the argmax over dim 1 is the prediction) or integer
            labels of ``target``'s shape (N, *S).
        target: (N, *S) integer class indices, e.g. (N, H, W) masks.
        num_classes: ``K``.
        ignore_index: target value to skip (``None``: none).

    Raises:
        ValueError: on bad shapes or labels, or when no element is left to score.
    """
    labels = _as_labels(logits_or_labels, target, num_classes)
    return _mean_of_present(per_class_iou(confusion_matrix(labels, target, num_classes, ignore_index)))


def segmentation_metrics(logits: Tensor, targets: Tensor, ignore_index: int = SEG_IGNORE_INDEX) -> dict[str, float]:
    """``{"miou": mean IoU, "pixel_acc": fraction of correct pixels}`` of (N, K, H, W) logits against (N, H, W)
    masks (pixels equal to ``ignore_index`` skipped); both in [0, 1]. Pass it as ``fit(..., metrics=...)``
    or ``evaluate(..., metrics=...)``; ``K`` is read from the logits."""
    if not isinstance(logits, Tensor) or logits.ndim != 4 or not logits.is_floating_point():
        got = f"{tuple(logits.shape)} {logits.dtype}" if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"expected floating (N, K, H, W) logits, got {got}")
    num_classes = logits.shape[1]
    confusion = confusion_matrix(_as_labels(logits, targets, num_classes), targets, num_classes, ignore_index)
    miou = _mean_of_present(per_class_iou(confusion))  # raises when no pixel is left, so the sum below is > 0
    return {"miou": miou, "pixel_acc": (confusion.diagonal().sum() / confusion.sum()).item()}


def _mean_of_present(iou: Tensor) -> float:
    """Mean of the non-NaN IoUs; a ``ValueError`` when every class is absent (nothing was scored)."""
    present = ~iou.isnan()
    if not present.any():
        raise ValueError("nothing to score: the target is empty or every element is ignore_index")
    return iou[present].mean().item()


def _check_num_classes(num_classes: object) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")


def _as_labels(scores: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """Predicted labels of ``target``'s shape: the argmax over dim 1 of (N, K, *S) scores, or integer labels
    as given."""
    _check_num_classes(num_classes)
    if not isinstance(scores, Tensor) or not isinstance(target, Tensor):
        raise ValueError("predictions and target must be tensors")
    if scores.is_floating_point():
        if target.ndim == 0:
            raise ValueError("target must have a sample dimension, got a 0-d tensor")
        expected = (target.shape[0], num_classes, *target.shape[1:])
        if scores.shape != expected:
            raise ValueError(f"scores must have shape (N, K, *S) = {expected} for {num_classes} classes and target "
                             f"{tuple(target.shape)}, got {tuple(scores.shape)}")
        return scores.argmax(1)
    return scores  # integer labels: confusion_matrix checks the dtype, shape and range


from .depth import (DEPTH_METRICS, HIGHER_IS_BETTER, SCENES_RANGE, DepthMetricAccumulator, depth_metrics,  # noqa: E402, F401
                    scenes_depth_metrics)
from .verification import (FoldAccuracy, pair_similarity, roc_auc, roc_curve, tar_at_far,  # noqa: E402, F401
                           verification_accuracy, verification_metrics, verification_summary)
