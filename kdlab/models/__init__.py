"""Models: the registry of tiny timm models (classification, segmentation, depth and face embeddings), uniform
stage features, hooks and the teacher zoo."""
from .features import (logits_and_stage_features, map_to_tokens, pre_logits, stage_features, stage_shapes,
                       tokens_to_map)
from .registry import (FAMILIES, MODELS, SEG_NUM_CLASSES, TASKS, SegCNN, count_parameters, create, family_of,
                       list_models)
from .depth import DepthNet, depth_student, depth_teacher  # noqa: E402  (after the registry it builds on)
from .face import FACE_SWIN_DEFAULTS, MobileFaceNet, face_swin  # noqa: E402

__all__ = [
    "DepthNet", "FACE_SWIN_DEFAULTS", "FAMILIES", "MODELS", "MobileFaceNet", "SEG_NUM_CLASSES", "SegCNN", "TASKS",
    "count_parameters", "create", "depth_student", "face_swin", "depth_teacher", "family_of", "list_models",
    "logits_and_stage_features", "map_to_tokens", "pre_logits", "stage_features", "stage_shapes", "tokens_to_map",
]
