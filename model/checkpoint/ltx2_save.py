"""Writing LTX-2 checkpoints in the official single-file layout (ltx2.py reads it): official key names of our
modules, the metadata "config" (transformer section from the modules' own configs, with the connector fields;
vae / audio_vae / vocoder sections given) and "model_version"; written safely (files.save_safetensors).
"""

from __future__ import annotations

import json

import torch
from torch import nn

from .files import save_safetensors
from .keys import DIT_PREFIX
from .ltx2 import CONNECTOR_PREFIXES, LTX2Checkpoint
from .ltx2_config import TEXT_FEATURES_KEY, text_path_metadata


def official_tensors(
    transformer: nn.Module | None = None,
    video_vae: nn.Module | None = None,
    audio_vae: nn.Module | None = None,
    vocoder: nn.Module | None = None,
    text_path: nn.Module | None = None,
    bare_vae: bool = False,
) -> dict[str, torch.Tensor]:
    """The official keys of the given modules (bare_vae: the 2.5 vae/ file's encoder.*/decoder.* without vae.)."""
    tensors = {}
    if transformer is not None:
        tensors.update({DIT_PREFIX + k: v for k, v in transformer.state_dict().items()})
    for prefix, module in (("" if bare_vae else "vae.", video_vae), ("audio_vae.", audio_vae), ("vocoder.", vocoder)):
        if module is not None:
            tensors.update({prefix + k: v for k, v in module.state_dict().items()})
    if text_path is not None:
        video_only = getattr(text_path, "audio_connector", None) is None  # official: embeddings_connector.*
        chosen = CONNECTOR_PREFIXES[1:] if video_only else CONNECTOR_PREFIXES[:2] + CONNECTOR_PREFIXES[3:]
        ours_to_theirs = {ours: theirs for theirs, ours in chosen}
        for key, value in text_path.state_dict().items():
            ours = key.split(".", 1)[0] + "."
            if ours not in ours_to_theirs:
                raise ValueError(
                    f"official_tensors: text path key {key!r} has no official place (the 2.0 caption projections "
                    "are the transformer's)"
                )
            tensors[ours_to_theirs[ours] + key[len(ours) :]] = value
    return tensors


def ltx2_metadata(checkpoint_or_modules, config: dict | None = None, model_version: str | None = None) -> dict:
    """The safetensors metadata of the official layout: "config" (transformer section from the modules' configs,
    with the connector fields; vae/audio_vae/vocoder sections from `config` or the checkpoint) and "model_version"."""
    parts = _modules(checkpoint_or_modules)
    sections = dict(getattr(checkpoint_or_modules, "metadata", None) or {})
    sections.update(config or {})
    sections.pop("model_version", None)
    transformer, text_path = parts.get("transformer"), parts.get("text_path")
    t_config = transformer.config if transformer is not None else None
    if t_config is not None:
        sections["transformer"] = {**(sections.get("transformer") or {}), **t_config.to_metadata()}
    if text_path is not None:
        features = text_path.config.features
        sections["transformer"] = {
            **(sections.get("transformer") or {}),
            **text_path_metadata(text_path.config, t_config),
        }
        sections[TEXT_FEATURES_KEY] = {"gemma_dim": features.gemma_dim, "gemma_states": features.gemma_states}
    if model_version is None:
        model_version = getattr(checkpoint_or_modules, "model_version", None)
        if model_version is None and getattr(checkpoint_or_modules, "version", None):
            model_version = checkpoint_or_modules.version + ".0"
    metadata = {"config": json.dumps(sections)}
    if model_version:
        metadata["model_version"] = str(model_version)
    return metadata


def _modules(checkpoint_or_modules) -> dict[str, nn.Module]:
    if isinstance(checkpoint_or_modules, LTX2Checkpoint):
        c = checkpoint_or_modules
        found = dict(
            transformer=c.transformer,
            video_vae=c.video_vae,
            audio_vae=c.audio_vae,
            vocoder=c.vocoder,
            text_path=c.text_path,
        )
    else:
        found = dict(checkpoint_or_modules)
        unknown = set(found) - {"transformer", "video_vae", "audio_vae", "vocoder", "text_path"}
        if unknown:
            raise ValueError(f"save_ltx2_checkpoint: unknown components {sorted(unknown)}")
    return {k: v for k, v in found.items() if v is not None}


def save_ltx2_checkpoint(
    path, checkpoint_or_modules, config: dict | None = None, model_version: str | None = None, bare_vae: bool = False
) -> None:
    """Write the official single-file layout (every given component in one file; a subset writes one split
    file) with the config in metadata. checkpoint_or_modules: an LTX2Checkpoint or {"transformer", "video_vae",
    "audio_vae", "vocoder", "text_path": module}. config: official sections for components whose module cannot
    describe itself ("vae", "audio_vae", "vocoder"), required when those modules are written. Written to a
    temporary name and renamed (files.save_safetensors): never half-written."""
    parts = _modules(checkpoint_or_modules)
    metadata = ltx2_metadata(checkpoint_or_modules, config, model_version)
    sections = json.loads(metadata["config"])
    for component, section in (("video_vae", "vae"), ("audio_vae", "audio_vae"), ("vocoder", "vocoder")):
        if component in parts and section not in sections:
            raise ValueError(f"save_ltx2_checkpoint({path}): writing {component} needs config[{section!r}]")
    save_safetensors(path, official_tensors(bare_vae=bare_vae, **parts), metadata)
