"""Metrics, one module per job: ``classification`` (top-k accuracy), ``cka`` (linear / minibatch CKA),
``segmentation`` (confusion matrix, IoU, mIoU), ``verification`` (face pairs: k-fold accuracy, ROC, TAR@FAR) and
``depth`` (AbsRel, RMSE, deltas, SILog). Everything public is importable from ``kdlab.metrics``.
"""
from .cka import MinibatchCKA, cka_matrix, hsic_cka, linear_cka
from .classification import accuracy, agreement, class_accuracy
from .depth import (DEPTH_METRICS, HIGHER_IS_BETTER, SCENES_RANGE, DepthMetricAccumulator, depth_metrics,
                    scenes_depth_metrics)
from .segmentation import SEG_IGNORE_INDEX, confusion_matrix, mean_iou, per_class_iou, segmentation_metrics
from .verification import (FoldAccuracy, FoldTAR, fold_tar_at_far, pair_similarity, roc_auc, roc_curve, tar_at_far, verification_accuracy,
                           verification_metrics, verification_summary)

__all__ = [
    "DEPTH_METRICS", "HIGHER_IS_BETTER", "SCENES_RANGE", "SEG_IGNORE_INDEX", "DepthMetricAccumulator", "FoldAccuracy", "FoldTAR",
    "MinibatchCKA", "accuracy", "agreement", "cka_matrix", "class_accuracy", "confusion_matrix", "depth_metrics", "fold_tar_at_far", "hsic_cka", "linear_cka",
    "mean_iou", "pair_similarity", "per_class_iou", "roc_auc", "roc_curve", "scenes_depth_metrics",
    "segmentation_metrics", "tar_at_far", "verification_accuracy", "verification_metrics", "verification_summary",
]
