"""SAM-Med3D's network in small modules, as segment-anything lays it out."""
from .sam3d import ARCHITECTURES, ModelConfig, Sam3D, build_model

__all__ = ["ARCHITECTURES", "ModelConfig", "Sam3D", "build_model"]
