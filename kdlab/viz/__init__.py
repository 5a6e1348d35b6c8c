"""Plots for the notebooks (layer 5): every figure function returns a matplotlib ``Figure``.

``common`` holds what all figures share (sizes, palette, labelling, history curves, bars, lines, images, maps over
images); then one module per notebook holds that notebook's static figures and the render functions its widgets
call: ``primer`` (00), ``ofa`` (01), ``cskd`` (02), ``swtat`` (03), ``cafd`` (04, faces), ``disdepth`` (05, depth).
This package face re-exports the figure functions, so a notebook writes ``viz.plot_bars(...)``; the render functions
and the views behind them are called through their module (``viz.ofa.render_ofa(...)``). Result tables are text,
not figures: they live in :mod:`kdlab.tables`.
"""
from . import cafd, common, cskd, disdepth, ofa, primer, swtat
from .cafd import (plot_attention_matrices, plot_face_grid_maps, plot_landmark_distances, plot_roc_curves,
                   show_centre_attention, show_faces)
from .common import (plot_bars, plot_histories, plot_history, plot_lines, plot_paired_gains, plot_seed_points,
                     show_heatmaps, show_images, show_label_maps, softmax)
from .cskd import plot_dense_share_schedules, plot_training_diagnosis
from .disdepth import feature_pca_maps, plot_receptive_fields, show_depth_maps
from .ofa import plot_gamma_toy, plot_ofa_weights
from .primer import cka_heatmap, cka_heatmaps, plot_label_budgets, plot_softmax_temperature
from .swtat import plot_displacement_probe, plot_scaling, plot_window_masks, plot_window_partition

__all__ = [
    "cafd", "common", "cskd", "disdepth", "ofa", "primer", "swtat",
    "cka_heatmap", "cka_heatmaps", "feature_pca_maps", "plot_attention_matrices", "plot_bars",
    "plot_dense_share_schedules", "plot_training_diagnosis", "plot_face_grid_maps", "plot_histories", "plot_history", "plot_label_budgets",
    "plot_landmark_distances",
    "plot_lines", "plot_paired_gains", "plot_receptive_fields", "plot_seed_points",
    "plot_displacement_probe", "plot_gamma_toy", "plot_ofa_weights", "plot_roc_curves", "plot_scaling", "plot_softmax_temperature", "plot_window_masks",
    "plot_window_partition", "show_centre_attention", "show_depth_maps", "show_faces", "show_heatmaps",
    "show_images", "show_label_maps", "softmax",
]
