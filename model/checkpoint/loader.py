"""`load_checkpoint`: one entry point for LTX-Video 0.9.x weights, whatever the layout (official single file,
diffusers folder, or a weight file inside such a folder). Files of another kind are named by keys.detect_family;
LTX-2 files are refused with a pointer to load_ltx2_checkpoint (ltx2.py)."""

from __future__ import annotations

import json
import os

import torch

from .diffusers import diffusers_root, load_diffusers_folder
from .files import CheckpointError, SafetensorsFile, check_dtype
from .keys import detect_family
from .ltxv import LoadedCheckpoint, load_official_file


def load_checkpoint(path, dtype: torch.dtype = torch.bfloat16, device="cpu") -> LoadedCheckpoint:
    """Load DiT + VAE from an official single file or a diffusers folder (transformer/, vae/, scheduler/); a
    diffusers transformer weight file inside such a folder loads the whole folder."""
    check_dtype(dtype, path)
    path = str(path)
    if os.path.isdir(path):
        if _is_ltx2_folder(path):
            raise CheckpointError(
                f"{path}: this is a diffusers LTX-2 folder (LTX2VideoTransformer3DModel); the LTX-Video 0.9.x "
                "checkpoint loader reads LTX-Video 0.9.x folders: load it with "
                "videodit.model.checkpoint.load_ltx2_checkpoint"
            )
        return load_diffusers_folder(path, dtype, device)
    root = diffusers_root(path)
    if root is not None:
        return load_diffusers_folder(root, dtype, device)
    file = SafetensorsFile(path)
    model = detect_family(file)
    if model.family == "ltx2":
        raise CheckpointError(
            f"{path}: {model.description}; the LTX-Video 0.9.x checkpoint loader reads LTX-Video 0.9.x files: load "
            "LTX-2 files with videodit.model.checkpoint.load_ltx2_checkpoint (a list of paths for the split 2.5 files)"
        )
    model.require("ltxv", ("transformer", "vae"), reader="the LTX-Video 0.9.x checkpoint loader")
    return load_official_file(file, dtype, device)


def _is_ltx2_folder(folder: str) -> bool:
    try:
        with open(os.path.join(folder, "transformer", "config.json")) as f:
            return json.load(f).get("_class_name") == "LTX2VideoTransformer3DModel"
    except (OSError, ValueError, AttributeError):
        return False
