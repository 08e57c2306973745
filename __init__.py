"""ComfyUI-VideoDiT: ComfyUI entry point. ComfyUI imports this folder under its own module name,
so everything inside the pack uses relative imports."""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
