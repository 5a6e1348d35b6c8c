"""Models: the registry of tiny timm models (classification and segmentation), uniform stage features, hooks
and the teacher zoo."""
from .features import (logits_and_stage_features, map_to_tokens, pre_logits, stage_features, stage_shapes,
                       tokens_to_map)
from .registry import (FAMILIES, MODELS, SEG_NUM_CLASSES, TASKS, SegCNN, count_parameters, create, family_of,
                       list_models)

__all__ = [
    "FAMILIES", "MODELS", "SEG_NUM_CLASSES", "SegCNN", "TASKS", "count_parameters", "create", "family_of",
    "list_models",
    "logits_and_stage_features", "map_to_tokens", "pre_logits", "stage_features", "stage_shapes", "tokens_to_map",
]
