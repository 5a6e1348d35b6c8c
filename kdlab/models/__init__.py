"""Models (layer 1): tiny timm models for classification, segmentation, depth and face embeddings, built by name
with :func:`create`; uniform stage features (:mod:`.features`) and hooks (:mod:`.hooks`).

One file per model family, each registering its own models with :func:`register` (``registry.py`` holds the
machinery and imports no model file); importing this package imports them all:

============ ==============================================================================================
file          models
============ ==============================================================================================
cnn.py        ``cnn``, ``cnn_small``: ResNet-style CNNs (timm ByobNet), and the :func:`resnet` builder
vit.py        ``vit``, ``vit_distilled``: ViT/DeiT-style transformers
swin.py       ``swin``: Swin transformer
mixer.py      ``mixer``: MLP-Mixer
mlp.py        ``mlp``: a multilayer perceptron on the flattened image (no stage maps; the primer's digits)
dense.py      ``seg_cnn``, ``seg_cnn_small`` (:class:`SegCNN`), ``depth_student``, ``depth_teacher_swin``
              (:class:`DepthNet`: encoder + :class:`DepthDecoder`)
face.py       ``face_cnn`` (:class:`MobileFaceNet`), ``face_swin``: face embedders
============ ==============================================================================================

Every classification model is a plain timm module (``pretrained=False``, nothing downloaded) sized for 32x32
inputs in [0, 1]; the dense and face models are sized for 64x64. Face models output (B, E) **embeddings**, not
logits: identities are scored by a margin head (:class:`kdlab.methods.MarginSupervised`) in training and by cosine
similarity in verification. :func:`list_models` lists the classification models unless asked for another
``task``.
"""
from .registry import (FAMILIES, FAMILY_CLASSES, MODELS, TASKS, ModelSpec, count_parameters, create, family_of,
                       list_models, register, register_family_class)

# the family files: importing one registers its models
from .cnn import resnet
from .vit import vision_transformer, vision_transformer_distilled
from .swin import swin_transformer
from .mixer import mlp_mixer
from .mlp import MLP, mlp
from .dense import (DEPTH_RANGE, SEG_NUM_CLASSES, BinsHead, DepthDecoder, DepthNet, SegCNN, bin_centers,
                    depth_student, depth_teacher)
from .face import FACE_SWIN_DEFAULTS, MobileFaceNet, face_swin
from .features import (class_activation_map, dry_run, logits_and_stage_features, map_to_tokens, pre_logits, require_methods,
                       stage_features, stage_shapes, tokens_to_map)
from .hooks import attention_paths, capture_attention, capture_outputs, cls_attention

__all__ = [
    "BinsHead", "DEPTH_RANGE", "DepthDecoder", "DepthNet", "FACE_SWIN_DEFAULTS", "FAMILIES", "FAMILY_CLASSES",
    "MODELS", "MobileFaceNet", "ModelSpec", "SEG_NUM_CLASSES", "SegCNN", "TASKS", "attention_paths", "bin_centers",
    "capture_attention", "capture_outputs", "class_activation_map", "cls_attention", "count_parameters", "create", "depth_student",
    "depth_teacher", "dry_run", "face_swin", "family_of", "list_models", "logits_and_stage_features",
    "MLP", "map_to_tokens", "mlp", "mlp_mixer", "pre_logits", "register", "register_family_class", "require_methods", "resnet",
    "stage_features", "stage_shapes", "swin_transformer", "tokens_to_map", "vision_transformer",
    "vision_transformer_distilled",
]
