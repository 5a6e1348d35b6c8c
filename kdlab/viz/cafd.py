r"""Figures of the CAFD face notebook (04): maps over the centre grid of an aligned face, verification ROC curves,
URFM's centre attention, faces with landmarks, attention matrices, facial distances between landmarks, the facial
distance of URFM's positional encoding (:func:`render_facial_distance`, what
:class:`kdlab.widgets.FacialDistanceExplorer` redraws) and one local centre's attention
(:func:`render_urfm_attention`, what :class:`kdlab.widgets.URFMExplorer` redraws)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import seaborn as sns
import torch
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..checks import check_choice, check_int, check_pair
from ..methods import (LANDMARK_NAMES, facial_distance_parts, grid_centres, num_buckets, pif_params, piecewise_index,
                       template_landmarks)
from .common import (OVERLAY_ALPHA, TICK_SIZE, TITLE_SIZE, draw_image, hide_axes, image_batch, label_axes, new_figure,
                     one_image, to_numpy)

LANDMARK_STYLE = dict(marker="x", color="cyan", s=45, linewidths=2, zorder=4)
"""How the five face landmarks are drawn over grid maps and faces."""
ANCHOR_STYLE = dict(marker="*", color="white", edgecolors="black", s=180, linewidths=1, zorder=5)
"""How the anchor of a facial distance (URFM's positional encoding) is drawn."""
FACE_AXES = ("x (fraction of the image width)", "y (fraction of the image height)")
ATTENTION_LABEL = "attention weight (share of the centre's attention)"


def _points(name: str, values: Any, count: int | None) -> np.ndarray:
    """(count, 2) (or any (P, 2) when ``count`` is None) normalised (x, y) points as a finite array."""
    array = to_numpy(values)
    if array.ndim != 2 or array.shape[1] != 2 or (count is not None and len(array) != count):
        want = f"({count}, 2)" if count is not None else "(P, 2)"
        raise ValueError(f"{name} must be {want} normalised (x, y) points, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds non-finite values")
    return array


def _face_panel(ax: Axes, values: np.ndarray, *, image: np.ndarray | None, norm: Normalize, cmap: Any,
                landmarks: np.ndarray | None, anchor: np.ndarray | None, centre: np.ndarray | None = None) -> None:
    """One (rows, cols) map over the unit square of the face (x right, y down), over ``image`` when given,
    with the landmarks (x), the anchor (star) and one marked centre (a cyan ring)."""
    if image is not None:
        pixels = np.clip(image.transpose(1, 2, 0), 0.0, 1.0)
        ax.imshow(pixels[..., 0] if pixels.shape[-1] == 1 else pixels, cmap="gray", vmin=0, vmax=1,
                  extent=(0, 1, 1, 0))
    ax.imshow(values, extent=(0, 1, 1, 0), interpolation="nearest", cmap=cmap, norm=norm,
              alpha=OVERLAY_ALPHA if image is not None else 1.0)
    if landmarks is not None:
        ax.scatter(landmarks[:, 0], landmarks[:, 1], **LANDMARK_STYLE)
    if anchor is not None:
        ax.scatter([anchor[0]], [anchor[1]], **ANCHOR_STYLE)
    if centre is not None:
        ax.scatter([centre[0]], [centre[1]], s=90, facecolors="none", edgecolors="cyan", linewidths=2, zorder=5)
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)


def _marker_legend(fig: Figure, *, landmarks: bool, anchor: bool = False, centre: bool = False) -> None:
    """A legend under the figure naming the markers drawn: landmarks (crosses), anchor (star), centre (ring)."""
    handles = []
    if landmarks:
        handles.append(Line2D([], [], linestyle="none", marker="x", color="cyan",
                              label="landmarks (eyes, nose, mouth corners)"))
    if anchor:
        handles.append(Line2D([], [], linestyle="none", marker="*", markerfacecolor="white", markeredgecolor="black",
                              markersize=12, label="anchor"))
    if centre:
        handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="none", markeredgecolor="cyan",
                              markeredgewidth=2, markersize=10, label="the local centre's grid position"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=TICK_SIZE)


def plot_face_grid_maps(maps: Mapping[str, Any], *, title: str, landmarks: Any = None, anchor: Any = None,
                        image: Any = None, discrete: bool = False, cmap: str | None = None,
                        ncols: int | None = None) -> Figure:
    """Maps over the centre grid of an aligned face, one panel per map (name -> (rows, cols) values).

    Every map covers the whole image as rows x cols cells (normalised coordinates, x to the right, y down), drawn
    over ``image`` (C, H, W in [0, 1]) when given, with the five ``landmarks`` ((5, 2) normalised (x, y), crosses)
    and the ``anchor`` ((2,), a star). Each panel gets its own colour bar labelled with the map's name (put the
    unit there, e.g. ``"D_sal (grid cells)"``). ``discrete=True`` draws integer maps (PIF buckets) with one colour
    per integer, shared by all panels. ``ncols`` panels per row (default: all in one row, at most 5).
    """
    if not maps:
        raise ValueError("plot_face_grid_maps needs at least one map")
    arrays = {}
    for name, values in maps.items():
        array = to_numpy(values)
        if array.ndim != 2 or not np.all(np.isfinite(array)):
            raise ValueError(f"map {name!r} must be a finite (rows, cols) array, got shape {array.shape}")
        arrays[name] = array
    lm = None if landmarks is None else _points("landmarks", landmarks, 5)
    anc = None if anchor is None else _points("anchor", np.reshape(to_numpy(anchor), (1, -1)), 1)[0]
    img = None if image is None else one_image(image)
    ncols = ncols or min(len(arrays), 5)
    nrows = math.ceil(len(arrays) / ncols)
    fig, axes = new_figure(nrows, ncols, figsize=(3.3 * ncols + 0.6, 3.2 * nrows + 0.7))
    if discrete:
        top = int(max(a.max() for a in arrays.values()))
        low = int(min(a.min() for a in arrays.values()))
        colours = ListedColormap(_bucket_colours(top - low + 1))
        shared = Normalize(low - 0.5, top + 0.5)
    for ax, (name, values) in zip(axes.ravel(), arrays.items()):
        if discrete:
            norm, colour_map = shared, colours
        else:
            norm, colour_map = Normalize(values.min(), max(values.max(), values.min() + 1e-9)), cmap or "viridis"
        _face_panel(ax, values, image=img, norm=norm, cmap=colour_map, landmarks=lm, anchor=anc)
        label_axes(ax, name, *FACE_AXES)
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=colour_map), ax=ax, label=name, shrink=0.8)
        if discrete:
            bar.set_ticks(range(low, top + 1))
    for ax in axes.ravel()[len(arrays):]:
        hide_axes(ax)
    _marker_legend(fig, landmarks=lm is not None, anchor=anc is not None)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


def plot_roc_curves(curves: Mapping[str, tuple[Any, Any]], *, title: str, far_marks: Sequence[float] = (1e-2,),
                    min_far: float = 1e-4) -> Figure:
    """Verification ROC curves (name -> (FAR, TAR) arrays, e.g. from ``kdlab.metrics.roc_curve``) on a log FAR axis.

    FAR = share of different-identity pairs accepted, TAR = share of same-identity pairs accepted. Points with
    FAR = 0 cannot sit on a log axis: they are drawn at ``min_far``. ``far_marks`` draws dotted verticals (the
    operating points of TAR@FAR).
    """
    if not curves:
        raise ValueError("plot_roc_curves needs at least one curve")
    fig, axes = new_figure(figsize=(7, 4.8))
    ax = axes[0, 0]
    for name, (far, tar) in curves.items():
        far, tar = to_numpy(far).ravel(), to_numpy(tar).ravel()
        if far.shape != tar.shape or far.size < 2:
            raise ValueError(f"curve {name!r} needs FAR and TAR arrays of one length >= 2, got {far.shape}, "
                             f"{tar.shape}")
        if np.any((far < 0) | (far > 1) | (tar < 0) | (tar > 1)):
            raise ValueError(f"curve {name!r}: rates must lie in [0, 1]")
        ax.step(np.maximum(far, min_far), tar, where="post", label=name)
    for mark in far_marks:
        ax.axvline(mark, color="0.4", linestyle=":", linewidth=1)
        ax.text(mark, 0.02, f" FAR = {mark:g}", fontsize=TICK_SIZE, color="0.3")
    ax.set_xscale("log")
    ax.set_xlim(min_far, 1)
    ax.set_ylim(0, 1.01)
    label_axes(ax, title, "false accept rate FAR (share of different-identity pairs accepted, log scale)",
           "true accept rate TAR (share of same-identity pairs)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=TICK_SIZE, loc="lower right")
    return fig


def _centre_maps(caller: str, maps: Mapping[str, Any], count: int) -> dict[str, np.ndarray]:
    """Each network's per-centre maps (name -> (count, h, w)) as finite arrays, or a ValueError naming the bad one."""
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError(f"{caller} needs a non-empty mapping network name -> ({count}, h, w) maps")
    arrays = {}
    for name, values in maps.items():
        array = to_numpy(values)
        if array.ndim != 3 or len(array) != count or not np.all(np.isfinite(array)):
            raise ValueError(f"maps {name!r} must be finite ({count}, h, w) arrays, got shape {array.shape}")
        arrays[name] = array
    return arrays


def show_centre_attention(image: Any, maps: Mapping[str, Any], centres: Any, *, title: str,
                          grid: tuple[int, int], notes: Mapping[str, Sequence[str]] | None = None) -> Figure:
    """URFM's cross-attention: for each network (name -> (L, h, w) maps, each centre's attention over that network's
    pixel grid), a rows x cols block of panels (``grid``, L = rows * cols, row-major like the centres), each the
    centre's attention map stretched over the face ``image`` (C, H, W) with the centre's own position (``centres``,
    (L, 2) normalised (x, y)) ringed. One colour scale per network, its colour bar labelled. ``notes`` (name -> L
    strings) are added to the panel titles (e.g. the share of attention on the prompt tokens).
    """
    rows, cols = grid
    img = one_image(image)
    arrays = _centre_maps("show_centre_attention", maps, rows * cols)
    pts = _points("centres", centres, rows * cols)
    fig, axes = new_figure(rows, cols * len(arrays),
                        figsize=(1.9 * cols * len(arrays) + 1.5 * len(arrays), 1.9 * rows + 1.2))
    for k, (name, array) in enumerate(arrays.items()):
        block = axes[:, k * cols:(k + 1) * cols]
        norm = Normalize(0.0, max(float(array.max()), 1e-9))
        for i in range(rows * cols):
            ax = block[i // cols, i % cols]
            _face_panel(ax, array[i], image=img, norm=norm, cmap="magma", landmarks=None, anchor=None, centre=pts[i])
            note = f", {notes[name][i]}" if notes and name in notes else ""
            ax.set_title(f"{name[:18]} c{i}{note}", fontsize=TICK_SIZE - 1)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(ScalarMappable(norm=norm, cmap="magma"), ax=list(block.ravel()),
                     label=f"{name}: attention weight (share of the centre)", shrink=0.8, location="bottom", aspect=30)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


def show_faces(images: Any, landmarks: Any = None, labels: Sequence[str] | None = None, *, title: str,
               ncols: int = 8) -> Figure:
    """Aligned faces (N, C, H, W in [0, 1]) in a grid, with their five landmarks ((N, 5, 2) normalised (x, y),
    crosses) and a caption per face (``labels``, e.g. the identity). Axes are in pixels."""
    batch = image_batch(images)
    if len(batch) == 0:
        raise ValueError("show_faces needs at least one image")
    lm = None
    if landmarks is not None:
        lm = to_numpy(landmarks)
        if lm.shape != (len(batch), 5, 2):
            raise ValueError(f"landmarks must have shape ({len(batch)}, 5, 2), got {lm.shape}")
    if labels is not None and len(labels) != len(batch):
        raise ValueError(f"need one label per image ({len(batch)}), got {len(labels)}")
    ncols = min(ncols, len(batch))
    nrows = math.ceil(len(batch) / ncols)
    fig, axes = new_figure(nrows, ncols, figsize=(1.9 * ncols, 2.1 * nrows + 0.8))
    size = batch.shape[-1]
    for i, ax in enumerate(axes.ravel()):
        if i >= len(batch):
            hide_axes(ax)
            continue
        draw_image(ax, batch[i])
        if lm is not None:
            ax.scatter(lm[i, :, 0] * size - 0.5, lm[i, :, 1] * size - 0.5, marker="x", color="cyan", s=18,
                       linewidths=1.5)
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=TICK_SIZE)
    if lm is not None:
        fig.legend(handles=[Line2D([], [], linestyle="none", marker="x", color="cyan",
                                   label=f"landmarks ({size}x{size} px image: eyes, nose tip, mouth corners)")],
                   loc="outside lower center", fontsize=TICK_SIZE)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


def plot_attention_matrices(matrices: Mapping[str, Any], *, title: str, label: str = "attention weight",
                            xlabel: str = "key (local feature j)", ylabel: str = "query (local feature i)") -> Figure:
    """Square attention matrices side by side (name -> (L, L), rows summing to 1), one shared colour scale whose bar
    is labelled ``label``."""
    if not matrices:
        raise ValueError("plot_attention_matrices needs at least one matrix")
    arrays = {name: to_numpy(m) for name, m in matrices.items()}
    for name, m in arrays.items():
        if m.ndim != 2 or not np.all(np.isfinite(m)):
            raise ValueError(f"matrix {name!r} must be a finite 2-D array, got shape {m.shape}")
    norm = Normalize(0.0, max(max(float(m.max()) for m in arrays.values()), 1e-9))
    fig, axes = new_figure(1, len(arrays), figsize=(4.2 * len(arrays) + 1.0, 4.2))
    for ax, (name, m) in zip(axes[0], arrays.items()):
        ax.imshow(m, cmap="magma", norm=norm, interpolation="nearest")
        label_axes(ax, name, xlabel, ylabel)
    fig.colorbar(ScalarMappable(norm=norm, cmap="magma"), ax=list(axes[0]), label=label, shrink=0.85)
    fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig


def plot_landmark_distances(matrix: Any, names: Sequence[str], *, title: str,
                            label: str = "facial structure distance (grid cells)") -> Figure:
    """An (n, n) distance matrix between landmarks (row: the anchor, column: the point measured) as a heatmap
    annotated to 2 decimals, ticks the landmark ``names``, colour scale from 0, colour bar labelled ``label``.
    Build it with :func:`kdlab.methods.facial_distance_parts`, one anchor (row) at a time."""
    values = to_numpy(matrix)
    if values.ndim != 2 or values.shape[0] != values.shape[1] or values.size == 0:
        raise ValueError(f"matrix must be a square (n, n) array with n >= 1, got shape {values.shape}")
    if not np.all(np.isfinite(values)) or values.min() < 0:
        raise ValueError("matrix must hold finite distances >= 0")
    if len(names) != len(values):
        raise ValueError(f"need one name per row of the {len(values)}x{len(values)} matrix, got {len(names)}")
    ticks = [str(name).replace("_", " ") for name in names]
    fig, axes = new_figure(figsize=(2.2 + 0.95 * len(ticks), 1.6 + 0.8 * len(ticks)))
    ax = axes[0, 0]
    sns.heatmap(values, ax=ax, vmin=0.0, cmap="viridis", annot=True, fmt=".2f",
                annot_kws={"fontsize": TICK_SIZE - 1}, xticklabels=ticks, yticklabels=ticks, cbar_kws={"label": label})
    label_axes(ax, title, "to landmark", "from landmark (the anchor)")
    ax.tick_params(axis="y", labelrotation=0)
    return fig


FACE_ANCHORS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right", "image_centre")
"""Anchors the facial-distance explorer offers: the five template landmarks, or the centre of the image."""


class FacialDistanceView(NamedTuple):
    """What :func:`render_facial_distance` draws: ``distance`` $D$ and ``buckets`` $I(D)$ as (rows, cols) arrays
    over URFM's centre grid, ``counts`` (n_buckets,) how many centres fall in each bucket, ``anchor`` (2,)
    normalised (x, y), and ``landmarks`` (5, 2) normalised."""

    distance: np.ndarray
    buckets: np.ndarray
    counts: np.ndarray
    anchor: np.ndarray
    landmarks: np.ndarray


def facial_distance_view(anchor: str, facial_scale: float, pif_ratio: float, grid: int,
                         landmarks: Any = None) -> FacialDistanceView:
    """$D = \\tilde D + \\gamma_{face}(D_{sal} + D_{rel})$ from ``anchor`` (a :data:`FACE_ANCHORS` name) on a
    ``grid`` x ``grid`` centre grid, in grid cells (:func:`kdlab.methods.facial_distance_parts`), and its PIF
    buckets at ratio ``pif_ratio`` (:func:`kdlab.methods.piecewise_index`, $\\lfloor 2r\\rfloor + 1$ buckets).
    ``landmarks``: (5, 2) normalised, default the ArcFace template."""
    check_choice("anchor", anchor, FACE_ANCHORS)
    check_int("grid", grid, low=1)
    lm = template_landmarks() if landmarks is None else torch.as_tensor(to_numpy(landmarks), dtype=torch.float32)
    point = (torch.tensor([0.5, 0.5]) if anchor == "image_centre" else lm[LANDMARK_NAMES.index(anchor)])
    parts = facial_distance_parts(grid_centres(grid), lm, point, facial_scale, grid)
    exact_range, max_index, clip_distance = pif_params(pif_ratio)
    buckets = piecewise_index(parts["total"], exact_range, max_index, clip_distance)
    counts = torch.bincount(buckets, minlength=num_buckets(max_index))
    return FacialDistanceView(parts["total"].reshape(grid, grid).numpy().astype(np.float64),
                              buckets.reshape(grid, grid).numpy(), counts.numpy(), point.numpy().astype(np.float64),
                              lm.numpy().astype(np.float64))


def render_facial_distance(anchor: str, facial_scale: float, pif_ratio: float, grid: int, landmarks: Any = None,
                           image: Any = None) -> Figure:
    """Three panels: the facial distance $D$ from the anchor over the face (grid cells), its PIF bucket map, and how
    many centres each bucket holds (:func:`facial_distance_view`); ``image`` (C, H, W) is drawn under the maps."""
    view = facial_distance_view(anchor, facial_scale, pif_ratio, grid, landmarks)
    img = None if image is None else one_image(image)
    n_buckets = len(view.counts)
    fig, axes = new_figure(1, 3, figsize=(14, 4.6))
    colours = ListedColormap(_bucket_colours(n_buckets))
    panels = ((view.distance, Normalize(view.distance.min(), max(view.distance.max(), 1e-9)), "viridis",
               "D (grid cells)", f"D = D~ + {facial_scale:g} (D_sal + D_rel)"),
              (view.buckets, Normalize(-0.5, n_buckets - 0.5), colours, "PIF bucket I(D)",
               f"buckets at ratio {pif_ratio:g}"))
    for ax, (values, norm, cmap, label, name) in zip(axes[0, :2], panels):
        _face_panel(ax, values, image=img, norm=norm, cmap=cmap, landmarks=view.landmarks, anchor=view.anchor)
        label_axes(ax, name, *FACE_AXES)
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=label, shrink=0.85)
        if cmap is colours:
            bar.set_ticks(range(n_buckets))
    ax = axes[0, 2]
    ax.bar(range(n_buckets), view.counts, color=[colours(k) for k in range(n_buckets)])
    ax.set_xticks(range(n_buckets))
    label_axes(ax, f"{int((view.counts > 0).sum())} of {n_buckets} buckets used", "PIF bucket I(D)",
               "centres in the bucket (count)")
    fig.suptitle(f"Facial distance from the {anchor.replace('_', ' ')} on a {grid}x{grid} centre grid",
                 fontsize=TITLE_SIZE)
    return fig


def _prompt_shares(shares: Mapping[str, Any] | None, names: Sequence[str], count: int) -> dict[str, np.ndarray]:
    """name (one of ``names``) -> (count,) share of each centre's attention on the prompt tokens, in [0, 1]."""
    checked = {}
    for name, values in (shares or {}).items():
        if name not in names:
            raise ValueError(f"prompt_share {name!r} is not one of the maps ({', '.join(names)})")
        array = to_numpy(values)
        if array.shape != (count,) or not np.all((array >= 0) & (array <= 1)):
            raise ValueError(f"prompt_share {name!r} must be {count} shares in [0, 1], got shape {array.shape}")
        checked[name] = array
    return checked


def render_urfm_attention(image: Any, maps: Mapping[str, Any], centre: int, *, grid: int | tuple[int, int],
                          centres: Any, landmarks: Any = None, prompt_share: Mapping[str, Any] | None = None,
                          title: str | None = None) -> Figure:
    """Where URFM's local centre ``centre`` looks: one panel per map (name -> (L, h, w), each centre's attention over
    one network's h x w tokens; L = rows x cols of ``grid``, row-major), that centre's map stretched over the face
    ``image`` (C, H, W), its grid position (``centres``, (L, 2) normalised (x, y)) ringed, the ``landmarks`` ((5, 2)
    normalised) crossed. One colour scale for all panels: a map over more tokens spreads the same attention thinner
    (each title gives its peak). ``prompt_share`` (name -> (L,)): the share each centre gave the prompt tokens, noted
    in the title (that map then sums to 1 minus it)."""
    rows, cols = check_pair("grid", grid)
    img = one_image(image)
    arrays = _centre_maps("render_urfm_attention", maps, rows * cols)
    pts = _points("centres", centres, rows * cols)
    index = check_int("centre", centre, low=0, high=rows * cols - 1)
    lm = None if landmarks is None else _points("landmarks", landmarks, 5)
    shares = _prompt_shares(prompt_share, list(arrays), rows * cols)
    shown = {name: array[index] for name, array in arrays.items()}
    norm = Normalize(0.0, max(max(float(m.max()) for m in shown.values()), 1e-9))
    fig, axes = new_figure(1, len(shown), figsize=(3.8 * len(shown) + 1.4, 4.6))
    for ax, (name, values) in zip(axes[0], shown.items()):
        _face_panel(ax, values, image=img, norm=norm, cmap="magma", landmarks=lm, anchor=None, centre=pts[index])
        note = f", prompts {shares[name][index]:.0%}" if name in shares else ""
        label_axes(ax, f"{name}\n{values.shape[0]}x{values.shape[1]} tokens, peak {values.max():.2f}{note}",
                   *FACE_AXES)
    fig.colorbar(ScalarMappable(norm=norm, cmap="magma"), ax=list(axes[0]), label=ATTENTION_LABEL, shrink=0.85)
    _marker_legend(fig, landmarks=lm is not None, centre=True)
    fig.suptitle(title or f"URFM attention of local centre c{index} (row {index // cols}, col {index % cols} of the "
                          f"{rows}x{cols} grid)", fontsize=TITLE_SIZE)
    return fig


def _bucket_colours(n: int) -> list[tuple[float, float, float]]:
    """``n`` colours from viridis (one per PIF bucket, or one per integer of a discrete map)."""
    return sns.color_palette("viridis", n)
