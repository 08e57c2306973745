"""LTX-Video 0.9.x checkpoints: the loaded pair of models with their configs, the official single-file layout
(reading and writing).

Official single file: DiT keys under "model.diffusion_model.", VAE keys under "vae.", and a JSON "config" entry in
the safetensors metadata ({"transformer": ..., "vae": ..., "scheduler": ..., "allowed_inference_steps"?}). Without
that metadata the configs are inferred from the tensor shapes (ltxv_config.py).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import torch
from torch import nn

from ..ltxv.dit import LTXVideoTransformer, TransformerConfig
from ..ltxv.vae import CausalVideoVAE, VAEConfig
from .files import CheckpointError, SafetensorsFile, save_safetensors
from .fill import MAX_LISTED, build_index, build_on_meta, fill_module
from .keys import DIT_PREFIX, IGNORED_PREFIXES, VAE_PREFIX, describe_keys
from .ltxv_config import (
    default_scheduler_config,
    infer_transformer_config,
    infer_vae_config,
    model_configs,
    vae_generation,
    version_string,
)

logger = logging.getLogger(__name__)


@dataclass
class LoadedCheckpoint:
    transformer: LTXVideoTransformer
    vae: CausalVideoVAE
    transformer_config: TransformerConfig
    vae_config: VAEConfig
    scheduler_config: dict
    allowed_inference_steps: list[float] | None
    version: str  # "0.9.0", "0.9.1", "0.9.5" (any later 2B) or "0.9.7" (any 13B), from the layout
    path: str
    metadata: dict = field(default_factory=dict)  # the parsed metadata "config" (or the one built for the file)
    family: str = "ltxv"  # the model family (keys.detect_family): LTX-Video 0.9.x


def checkpoint_of(
    where: str, config: dict, transformer: LTXVideoTransformer, vae: CausalVideoVAE, generation: int
) -> LoadedCheckpoint:
    """The LoadedCheckpoint of two filled models and the config they were built from."""
    return LoadedCheckpoint(
        transformer=transformer,
        vae=vae,
        transformer_config=transformer.config,
        vae_config=vae.config,
        scheduler_config=config.get("scheduler") or default_scheduler_config(generation),
        allowed_inference_steps=config.get("allowed_inference_steps"),
        version=version_string(generation, transformer.config.num_layers),
        path=where,
        metadata=config,
    )


def load_official_file(file: SafetensorsFile, dtype: torch.dtype, device) -> LoadedCheckpoint:
    """The official single-file layout (model.diffusion_model.* + vae.*), with or without metadata config."""
    dit_index = build_index(file, DIT_PREFIX)
    vae_index = build_index(file, VAE_PREFIX)
    other = [k for k in file.keys() if not k.startswith((DIT_PREFIX, VAE_PREFIX) + IGNORED_PREFIXES)]
    if other:
        logger.warning(
            "%s: ignoring %d tensors outside model.diffusion_model./vae., e.g. %s",
            file.path,
            len(other),
            ", ".join(other[:MAX_LISTED]),
        )
    config = file.config()
    if config is not None and ("transformer" not in config or "vae" not in config):
        raise CheckpointError(
            f"{file.path}: metadata 'config' has keys {sorted(config)}, expected 'transformer' and 'vae'; "
            + describe_keys(file.keys())
        )
    generation = vae_generation(vae_index)
    if config is None:
        config = _inferred_config(file, dit_index, vae_index, generation)
    config.setdefault("scheduler", default_scheduler_config(generation))
    transformer_config, vae_config = model_configs(config, file.path)
    transformer = build_on_meta(LTXVideoTransformer, transformer_config)
    fill_module(transformer, dit_index, dtype, device, "transformer (model.diffusion_model.*)")
    vae = build_on_meta(CausalVideoVAE, vae_config)
    fill_module(vae, vae_index, dtype, device, "VAE (vae.*)")
    file.close()
    return checkpoint_of(file.path, config, transformer, vae, generation)


def _inferred_config(file: SafetensorsFile, dit_index: dict, vae_index: dict, generation: int) -> dict:
    dit_shapes = {k: v.shape for k, v in dit_index.items()}
    vae_shapes = {k: v.shape for k, v in vae_index.items()}
    try:
        return {
            "transformer": infer_transformer_config(dit_shapes, causal_temporal_positioning=generation >= 2),
            "vae": infer_vae_config(vae_shapes),
        }
    except CheckpointError:
        raise
    except KeyError as e:
        raise CheckpointError(
            f"{file.path}: no metadata config and the layout cannot be inferred (missing or unusual key {e}); "
            + describe_keys(file.keys())
        ) from None
    except ValueError as e:
        raise CheckpointError(
            f"{file.path}: no metadata config, and the layout inferred from the tensor shapes is not usable: {e}"
        ) from None


def save_checkpoint(path, transformer: nn.Module, vae: nn.Module, config: dict) -> None:
    """Write the official single-file layout: DiT under "model.diffusion_model.", VAE under "vae.", `config`
    ({"transformer", "vae", "scheduler", "allowed_inference_steps"?}) as JSON in metadata["config"]. Writes to a
    temporary name first and renames, so a crash never leaves a half-written file under the final name."""
    for part in ("transformer", "vae"):
        if part not in config:
            raise ValueError(f"save_checkpoint({path}): config needs a {part!r} entry, has {sorted(config)}")
    tensors = {DIT_PREFIX + k: v for k, v in transformer.state_dict().items()}
    tensors.update({VAE_PREFIX + k: v for k, v in vae.state_dict().items()})
    save_safetensors(path, tensors, {"config": json.dumps(config)})
