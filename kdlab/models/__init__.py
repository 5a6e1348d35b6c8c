"""Models: the registry of tiny timm models (classification, segmentation and depth), uniform stage features,
hooks and the teacher zoo."""
from .features import (logits_and_stage_features, map_to_tokens, pre_logits, stage_features, stage_shapes,
                       tokens_to_map)
from .registry import (FAMILIES, MODELS, SEG_NUM_CLASSES, TASKS, SegCNN, count_parameters, create, family_of,
                       list_models)
from .depth import DepthNet, depth_student, depth_teacher  # noqa: E402  (after the registry it builds on)

__all__ = [
    "DepthNet", "FAMILIES", "MODELS", "SEG_NUM_CLASSES", "SegCNN", "TASKS", "count_parameters", "create",
    "depth_student", "depth_teacher", "family_of", "list_models",
    "logits_and_stage_features", "map_to_tokens", "pre_logits", "stage_features", "stage_shapes", "tokens_to_map",
]
