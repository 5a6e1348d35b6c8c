r"""Figures of the DisDepth notebook (05): depth predictions next to the ground truth with their error maps,
feature maps as pictures (first principal component), effective receptive fields
(:func:`plot_receptive_fields`), and :func:`render_depth_pick` (what :class:`kdlab.widgets.DepthExplorer` redraws)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

from ..checks import check_int
from ..probes import mass_within
from .common import (LABEL_SIZE, TICK_SIZE, TITLE_SIZE, draw_image, hide_axes, image_batch, label_axes, new_figure,
                     overlay_map, per_image, to_numpy)

DEPTH_CMAP = "magma_r"
"""Depth colour map: near is bright, far is dark."""
ERROR_CMAP = "Reds"
"""Colour map of absolute depth errors |pred - target| (white = exact)."""


def _depth_maps(name: str, values: Any, count: int, size: tuple[int, int] | None) -> np.ndarray:
    """(N, H, W) or (N, 1, H, W) depth maps as a finite (N, H, W) array, N = ``count``, sides ``size``."""
    array = to_numpy(values)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3 or len(array) != count or (size is not None and array.shape[1:] != size):
        want = f"({count}, {size[0]}, {size[1]})" if size else f"({count}, H, W)"
        raise ValueError(f"{name} must be depth maps of shape {want} (or with a channel of 1), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds non-finite values")
    return array


def show_depth_maps(images: Any, target: Any, predictions: Mapping[str, Any], *, title: str,
                    n: int | None = None, depth_range: tuple[float, float] | None = None, mask: Any = None,
                    overlays: Mapping[str, Any] | None = None) -> Figure:
    r"""Depth predictions next to the ground truth, with their error maps.

    Two rows per image (N, 3, H, W in [0, 1]): the **depth row** shows the image, the ground truth ``target``
    (N, H, W) and one column per named prediction (N, H, W) or (N, 1, H, W), all on one shared colour scale
    (``depth_range`` in metres, default the range of the shown maps) with the colour bar "depth (m)"; the
    **error row** under it shows $|\hat y - y|$ of every prediction on one shared scale from 0 (colour bar
    "absolute error (m)"). Pixels where ``mask`` (bool, N x H x W) is False, or where the target is <= 0, are
    blank in the error maps. ``overlays`` (at most two, name -> (N, h, w)) fill the free cells of the error row
    under the image and the ground truth: each map is drawn over the image (e.g. LAM attention), with its own
    colour bar labelled with its name. ``n`` limits the images shown.
    """
    batch, truth, preds, valid, extra = _depth_inputs(images, target, predictions, n, mask, overlays)
    depth_norm = _depth_norm(truth, preds, depth_range)
    errors = {name: np.where(valid, np.abs(p - truth), np.nan) for name, p in preds.items()}
    top = max(float(np.nanmax(e)) if np.any(np.isfinite(e)) else 0.0 for e in errors.values())
    error_norm = Normalize(0.0, max(top, 1e-6))
    ncols = 2 + len(preds)
    fig, axes = new_figure(2 * len(truth), ncols, figsize=(2.2 * ncols + 2.4, 2.2 * 2 * len(truth) + 0.8))
    for i in range(len(truth)):
        depth_axes, error_axes = axes[2 * i], axes[2 * i + 1]
        draw_image(depth_axes[0], batch[i])
        depth_axes[1].imshow(truth[i], cmap=DEPTH_CMAP, norm=depth_norm)
        for ax, (name, p) in zip(depth_axes[2:], preds.items()):
            ax.imshow(p[i], cmap=DEPTH_CMAP, norm=depth_norm)
        for ax, name in zip(error_axes[2:], preds):
            ax.imshow(errors[name][i], cmap=ERROR_CMAP, norm=error_norm)
            ax.set_title(f"error: {errors[name][i][valid[i]].mean():.2f} m mean", fontsize=TICK_SIZE)
        _draw_overlay_cells(error_axes, batch[i], extra, i)
        for ax in [*depth_axes, *error_axes]:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, name in zip(axes[0], ["image", "ground truth", *preds]):
        ax.set_title(name, fontsize=LABEL_SIZE)
    _depth_colour_bars(fig, axes, len(preds), extra, depth_norm, error_norm)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


def _depth_inputs(images: Any, target: Any, predictions: Mapping[str, Any], n: int | None, mask: Any,
                  overlays: Mapping[str, Any] | None) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray],
                                                               np.ndarray, dict[str, np.ndarray]]:
    """The checked inputs of :func:`show_depth_maps`, cut to the first ``n`` images: the (N, C, H, W) batch (all
    of it), the target, each prediction, where the error counts (target > 0 and ``mask``), and each overlay."""
    batch = image_batch(images)
    count = min(len(batch) if n is None else check_int("n (the number of images)", n, low=1), len(batch))
    if not predictions:
        raise ValueError("show_depth_maps needs at least one prediction")
    size = batch.shape[2:]
    truth = _depth_maps("target", target, len(batch), size)[:count]
    preds = {name: _depth_maps(f"prediction {name!r}", p, len(batch), size)[:count] for name, p in predictions.items()}
    valid = truth > 0
    if mask is not None:
        valid &= _depth_maps("mask", mask, len(batch), size)[:count] > 0
    overlays = dict(overlays or {})
    if len(overlays) > 2:
        raise ValueError(f"at most two overlays fit under the image and the ground truth, got {len(overlays)}")
    extra = {name: per_image(f"overlay {name!r}", values, len(batch), ("N", "h", "w"))[:count]
             for name, values in overlays.items()}
    return batch, truth, preds, valid, extra


def _depth_norm(truth: np.ndarray, preds: Mapping[str, np.ndarray],
                depth_range: tuple[float, float] | None) -> Normalize:
    """The one depth colour scale: ``depth_range`` (metres), default the range of the shown maps."""
    if depth_range is None:
        lo = min(truth.min(), *(p.min() for p in preds.values()))
        hi = max(truth.max(), *(p.max() for p in preds.values()))
    else:
        lo, hi = (float(v) for v in depth_range)
    if not lo < hi:
        raise ValueError(f"the depth range must have min < max, got ({lo}, {hi})")
    return Normalize(lo, hi)


def _draw_overlay_cells(error_axes: np.ndarray, image: np.ndarray, extra: Mapping[str, np.ndarray], row: int) -> None:
    """The two free cells of image ``row``'s error row (under the image and the ground truth): each overlay's map of
    that image over it, on the overlay's colour scale over all shown images; the rest left empty."""
    for ax, (name, values) in zip(error_axes[:2], extra.items()):
        norm = Normalize(values.min(), max(values.max(), values.min() + 1e-6))
        overlay_map(ax, image, values[row], cmap="viridis", norm=norm)
        ax.set_title(name, fontsize=TICK_SIZE)
    for ax in error_axes[len(extra):2]:
        hide_axes(ax)


def _depth_colour_bars(fig: Figure, axes: np.ndarray, num_preds: int, extra: Mapping[str, np.ndarray],
                       depth_norm: Normalize, error_norm: Normalize) -> None:
    """The shared depth bar (right), the shared error bar and one bar per overlay column (bottom)."""
    fig.colorbar(ScalarMappable(norm=depth_norm, cmap=DEPTH_CMAP), ax=list(axes[0::2].ravel()), label="depth (m)",
                 shrink=0.8)
    fig.colorbar(ScalarMappable(norm=error_norm, cmap=ERROR_CMAP), ax=list(axes[:, 2:].ravel()),
                 label="absolute error |ŷ − y| (m)", location="bottom", shrink=0.6 if num_preds > 2 else 0.95,
                 aspect=40 if num_preds > 2 else 15)
    for column, (name, values) in enumerate(extra.items()):
        fig.colorbar(ScalarMappable(norm=Normalize(values.min(), max(values.max(), values.min() + 1e-6)),
                                    cmap="viridis"), ax=list(axes[:, column]), label=name, location="bottom",
                     shrink=0.9, aspect=20)


def feature_pca_maps(features: Any) -> np.ndarray:
    r"""(N, C, h, w) feature maps -> (N, h, w): each pixel's feature projected on the **first principal
    component** of all N·h·w pixel features (centred), for pictures of what a feature map encodes.

    The sign is fixed so that the projection correlates positively with the mean feature norm (PCA signs are
    arbitrary otherwise, so two maps would not be comparable). Units: arbitrary (a.u.).
    """
    array = to_numpy(features)
    if array.ndim != 4:
        raise ValueError(f"expected (N, C, h, w) feature maps, got {array.shape}")
    n, c, h, w = array.shape
    pixels = array.transpose(0, 2, 3, 1).reshape(-1, c)
    centred = pixels - pixels.mean(0, keepdims=True)
    if not np.any(centred):
        return np.zeros((n, h, w))
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    projection = centred @ vt[0]
    norms = np.linalg.norm(pixels, axis=1)
    if np.corrcoef(projection, norms)[0, 1] < 0 if norms.std() > 0 else False:
        projection = -projection
    return projection.reshape(n, h, w)


def render_depth_pick(index: int, images: Any, target: Any, predictions: dict[str, Any],
                      attentions: dict[str, Any] | None = None, depth_range: tuple[float, float] | None = None,
                      component: str | None = None, always: tuple[str, ...] = ()) -> Figure:
    """One scene of a set: the image, its ground-truth depth, the predictions and their error maps
    (:func:`show_depth_maps`, one shared depth colour bar), and up to two attention maps over the image.

    ``images`` (N, 3, H, W), ``target`` and each prediction (N, H, W) or (N, 1, H, W) metres. With ``component``
    (a name of ``predictions``) the figure shows the ``always`` predictions (e.g. the teacher and the no-KD
    student) and that one; without it, every prediction. ``attentions`` maps a name to (N, h, w) maps shown for
    every pick, or a component to such a dict, shown when that component is picked (e.g. LAM's $A_l$ of a LAM
    row)."""
    count = len(to_numpy(images))
    check_int("index", index, low=0, high=count - 1)
    shown, overlays = _picked(predictions, attentions or {}, component, always)
    pick = slice(index, index + 1)
    what = f"{component}: " if component is not None else ""
    return show_depth_maps(to_numpy(images)[pick], to_numpy(target)[pick],
                           {name: to_numpy(p)[pick] for name, p in shown.items()},
                           overlays={name: to_numpy(a)[pick] for name, a in overlays.items()},
                           depth_range=depth_range,
                           title=f"Scene {index} of {count}, {what}predictions and their errors")


def _picked(predictions: Mapping[str, Any], attentions: Mapping[str, Any], component: str | None,
            always: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The predictions and overlays :func:`render_depth_pick` shows for ``component`` (None: all of them)."""
    unknown = [name for name in (*always, *([component] if component is not None else [])) if name not in predictions]
    if unknown:
        raise ValueError(f"no prediction named {unknown}; the predictions are {list(predictions)}")
    per_component = {name: maps for name, maps in attentions.items() if isinstance(maps, Mapping)}
    flat = {name: maps for name, maps in attentions.items() if not isinstance(maps, Mapping)}
    if component is None:
        return dict(predictions), flat
    shown = {name: predictions[name] for name in always}
    shown[component] = predictions[component]
    return shown, {**flat, **per_component.get(component, {})}


def plot_receptive_fields(fields: Mapping[str, tuple[Any, tuple[float, float]]], *, title: str,
                          radii: Sequence[float] | None = None) -> Figure:
    r"""Effective receptive fields side by side (:func:`kdlab.probes.effective_receptive_field`): one map per
    model (name -> ((H, W) share of the gradient per input pixel, summing to 1; its centre (row, column)), on one
    shared logarithmic colour scale with the centre ringed, then the share of each field within a radius of its
    centre against the radius in pixels (:func:`kdlab.probes.mass_within`): the further right a curve rises, the
    further the model looks."""
    if not fields:
        raise ValueError("plot_receptive_fields needs at least one field")
    maps = {name: to_numpy(field) for name, (field, _) in fields.items()}
    bad = {name: m.shape for name, m in maps.items() if m.ndim != 2}
    if bad:
        raise ValueError(f"every field must be an (H, W) map, got {bad}")
    radii = np.arange(0, max(max(m.shape) for m in maps.values()) + 1) if radii is None else np.asarray(radii)
    floor = min(float(m[m > 0].min()) for m in maps.values() if np.any(m > 0))
    norm = LogNorm(max(floor, 1e-6), max(float(m.max()) for m in maps.values()))
    fig, axes = new_figure(1, len(maps) + 1, figsize=(3.2 * len(maps) + 4.6, 3.8))
    for ax, (name, field) in zip(axes[0], maps.items()):
        ax.imshow(np.clip(field, norm.vmin, None), cmap="magma", norm=norm)
        row, col = fields[name][1]
        ax.scatter([col], [row], s=120, facecolors="none", edgecolors="cyan", linewidths=1.5)
        ax.set_title(name, fontsize=LABEL_SIZE)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(ScalarMappable(norm=norm, cmap="magma"), ax=list(axes[0, :-1]), location="bottom", shrink=0.8,
                 label="share of |∂ output / ∂ input pixel| (log scale)")
    curve_ax = axes[0, -1]
    for name, (_, centre) in fields.items():
        curve_ax.plot(radii, mass_within(torch.as_tensor(maps[name]), centre, radii.tolist()), label=name)
    label_axes(curve_ax, "Share within a radius", "radius from the centre (pixels)", "share of the gradient mass")
    curve_ax.set_ylim(0, 1.02)
    curve_ax.grid(alpha=0.3)
    curve_ax.legend(fontsize=TICK_SIZE)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig
