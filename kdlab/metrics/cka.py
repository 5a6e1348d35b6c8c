r"""Linear CKA (Kornblith et al. 2019; the OFA paper's Fig. 2) compares two sets of features computed on the
same $n$ inputs, $X\in\mathbb{R}^{n\times d_1}$ and $Y\in\mathbb{R}^{n\times d_2}$. With Gram matrices
$K=XX^\top$, $L=YY^\top$ and centring matrix $H=I_n-\tfrac1n\mathbf{1}\mathbf{1}^\top$:

$$\mathrm{HSIC}(K,L)=\frac{\mathrm{tr}(KHLH)}{(n-1)^2},\qquad
  \mathrm{CKA}(K,L)=\frac{\mathrm{HSIC}(K,L)}{\sqrt{\mathrm{HSIC}(K,K)\,\mathrm{HSIC}(L,L)}}\in[0,1].$$

For linear kernels the same number is $\|\tilde Y^\top\tilde X\|_F^2 / (\|\tilde X^\top\tilde X\|_F\,\|\tilde Y^\top\tilde Y\|_F)$
with column-centred $\tilde X,\tilde Y$: cheaper when $d \ll n$. CKA is invariant to orthogonal transforms
and isotropic scaling of either side, but not to arbitrary invertible linear maps.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..checks import check_tensor


def _as_matrix(name: str, features: Tensor) -> Tensor:
    """(n, ...) features -> (n, d) float64, each sample flattened."""
    check_tensor(name, features)
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
    x, y = _as_matrix("x", x), _as_matrix("y", y)
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
    x, y = _as_matrix("x", x), _as_matrix("y", y)
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
        x, y = _as_matrix("x", x), _as_matrix("y", y)
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
