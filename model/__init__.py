"""Pure-PyTorch LTX-Video 0.9.x and LTX-2: transformers, VAEs, text encoders, schedules, sampling, checkpoint
loading. Nothing in this package imports ComfyUI.

Public API (imported lazily on first use, so a missing or broken submodule only fails the names it provides):
    load_pipeline, VideoPipeline, ImageKeyframe, check_video_size, latent_shape   (pipeline.py)
    sample, Guidance, TextCondition, Keyframe                                      (sampling.py)
    timesteps, SchedulerConfig                                                     (schedules.py)
    load_checkpoint, LoadedCheckpoint, CheckpointError, load_latent_upsampler      (checkpoint/)
    load_text_encoder, TextEncoder                                                 (text_encoder.py)
    LTXVideoTransformer, TransformerConfig, SkipLayers                             (ltxv/dit.py)
    CausalVideoVAE, VAEConfig                                                      (ltxv/vae.py, vae_config.py)
    LTX2Pipeline, LTX2Result, load_ltx2_checkpoint                                 (ltx2/pipeline.py, checkpoint/)
    generate_multi_scale, MultiScaleRecipe                                         (multi_scale.py, _recipes.py)
"""

import importlib

_EXPORTS = {
    "load_pipeline": "pipeline",
    "VideoPipeline": "pipeline",
    "ImageKeyframe": "pipeline",
    "check_video_size": "pipeline",
    "latent_shape": "pipeline",
    "sample": "sampling",
    "Guidance": "sampling",
    "TextCondition": "sampling",
    "Keyframe": "sampling",
    "timesteps": "schedules",
    "SchedulerConfig": "schedules",
    "load_checkpoint": "checkpoint",
    "LoadedCheckpoint": "checkpoint",
    "CheckpointError": "checkpoint",
    "load_latent_upsampler": "checkpoint",
    "load_text_encoder": "text_encoder",
    "TextEncoder": "text_encoder",
    "LTXVideoTransformer": "ltxv.dit",
    "TransformerConfig": "ltxv.dit",
    "SkipLayers": "ltxv.dit",
    "CausalVideoVAE": "ltxv.vae",
    "VAEConfig": "ltxv.vae_config",
    "LTX2Pipeline": "ltx2.pipeline",
    "LTX2Result": "ltx2.pipeline",
    "load_ltx2_checkpoint": "checkpoint",
    "generate_multi_scale": "multi_scale",
    "MultiScaleRecipe": "multi_scale_recipes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
