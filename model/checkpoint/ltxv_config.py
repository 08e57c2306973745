"""LTX-Video 0.9.x configs of files without metadata, inferred from tensor shapes, and the version of a layout.

The "transformer" and "vae" dicts built here are the official metadata dicts (what TransformerConfig.from_metadata
and VAEConfig.from_metadata read), so an inferred file and a file with metadata take the same path afterwards.
"""

from __future__ import annotations

import math
import re

from ..ltxv.dit import TransformerConfig
from ..ltxv.vae import VAEConfig
from .files import CheckpointError

# Shapes cannot tell heads from head width; every official LTX-Video model has 32 heads (ComfyUI assumes the same).
OFFICIAL_HEADS = 32


def block_indices(shapes, prefix: str) -> list[int]:
    """Sorted N of the keys "<prefix>N.*"."""
    found = {int(m.group(1)) for k in shapes if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return sorted(found)


def infer_transformer_config(shapes: dict[str, tuple], causal_temporal_positioning: bool) -> dict:
    """The "transformer" metadata dict from DiT key shapes (keys without prefix); OFFICIAL_HEADS heads."""
    to_k = shapes["transformer_blocks.0.attn2.to_k.weight"]
    config = TransformerConfig(
        num_layers=len(block_indices(shapes, "transformer_blocks.")),
        num_attention_heads=OFFICIAL_HEADS,
        attention_head_dim=to_k[0] // OFFICIAL_HEADS,
        cross_attention_dim=to_k[1],
        caption_channels=shapes["caption_projection.linear_1.weight"][1],
        in_channels=shapes["patchify_proj.weight"][1],
        out_channels=shapes["proj_out.weight"][0],
        causal_temporal_positioning=causal_temporal_positioning,
    )
    return config.to_metadata()


def infer_vae_config(shapes: dict[str, tuple]) -> dict:
    """The official "vae" metadata dict from VAE key shapes (keys without "vae."), block by block. Not inferable,
    and set as in every official file: plain strided encoder convs are "compress_all"; decoder upsamplers are
    residual iff the decoder is timestep-conditioned; spatial_padding_mode is left to the VAE's default."""
    in_channels = 3
    patch_area = shapes["encoder.conv_in.conv.weight"][1] // in_channels
    patch_size = math.isqrt(patch_area)
    latent_channels = shapes["decoder.conv_in.conv.weight"][1]
    timestep_conditioning = "decoder.last_time_embedder.timestep_embedder.linear_1.weight" in shapes

    def in_width(prefix: str) -> int:
        for suffix in ("res_blocks.0.conv1.conv.weight", "conv1.conv.weight", "conv.conv.weight", "conv.weight"):
            if prefix + suffix in shapes:
                return shapes[prefix + suffix][1]
        raise CheckpointError(f"cannot infer the VAE layout: no known block under {prefix}")

    def blocks(part: str, tail_key: str) -> list:
        indices = block_indices(shapes, f"{part}.{'down' if part == 'encoder' else 'up'}_blocks.")
        prefixes = [f"{part}.{'down' if part == 'encoder' else 'up'}_blocks.{i}." for i in indices]
        result = []
        for n, p in enumerate(prefixes):
            width = in_width(p)
            next_width = in_width(prefixes[n + 1]) if n + 1 < len(prefixes) else shapes[tail_key][1]
            if p + "res_blocks.0.conv1.conv.weight" in shapes:
                params = {"num_layers": len(block_indices(shapes, p + "res_blocks."))}
                if part == "decoder":
                    params["inject_noise"] = p + "res_blocks.0.per_channel_scale1" in shapes
                result.append(["res_x", params])
            elif p + "conv1.conv.weight" in shapes:
                out = shapes[p + "conv1.conv.weight"][0]
                ratio = out // width if part == "encoder" else width // out
                result.append(["res_x_y", {"multiplier": ratio}])
            elif p + "conv.weight" in shapes:  # encoder: plain strided causal conv
                result.append(["compress_all", 1])
            elif part == "encoder":  # space-to-depth downsample with a residual
                stride = next_width // shapes[p + "conv.conv.weight"][0]
                kind = {2: "compress_time_res", 4: "compress_space_res", 8: "compress_all_res"}[stride]
                result.append([kind, {"multiplier": next_width // width}])
            else:  # decoder: depth-to-space upsample
                stride = shapes[p + "conv.conv.weight"][0] // next_width
                kind = {2: "compress_time", 4: "compress_space", 8: "compress_all"}[stride]
                params = {"residual": timestep_conditioning, "multiplier": width // next_width}
                result.append([kind, params] if kind == "compress_all" else [kind, 1])
        return result

    encoder_blocks = blocks("encoder", "encoder.conv_out.conv.weight")
    decoder_blocks = list(reversed(blocks("decoder", "decoder.conv_out.conv.weight")))
    conv_out = shapes["encoder.conv_out.conv.weight"][0]
    log_var = {latent_channels + 1: "uniform", 2 * latent_channels: "per_channel", latent_channels: "none"}[conv_out]
    norm_layer = "group_norm" if any(k.endswith(".norm1.weight") for k in shapes) else "pixel_norm"
    return {
        "_class_name": "CausalVideoAutoencoder",
        "dims": 3,
        "in_channels": in_channels,
        "out_channels": shapes["decoder.conv_out.conv.weight"][0] // patch_area,
        "latent_channels": latent_channels,
        "encoder_blocks": encoder_blocks,
        "decoder_blocks": decoder_blocks,
        "encoder_base_channels": shapes["encoder.conv_in.conv.weight"][0],
        "decoder_base_channels": shapes["decoder.conv_out.conv.weight"][1],
        "patch_size": patch_size,
        "norm_layer": norm_layer,
        "latent_log_var": log_var,
        "use_quant_conv": "quant_conv.weight" in shapes,
        "causal_decoder": False,
        "timestep_conditioning": timestep_conditioning,
        "scaling_factor": 1.0,
    }


def vae_generation(keys) -> int:
    """0: 0.9.0 VAE, 1: 0.9.1 (timestep-conditioned decoder), 2: 0.9.5+ (also residual space-to-depth encoder),
    from the VAE keys without "vae." (a dict of shapes or any collection of keys). Same decision as ComfyUI's
    (decoder width 512/1024 and encoder.down_blocks.1.conv.conv.bias), stated by structure so that it also holds
    for narrow test models."""
    if "decoder.last_time_embedder.timestep_embedder.linear_1.weight" not in keys:
        return 0
    if any(re.match(r"encoder\.down_blocks\.\d+\.conv\.conv\.bias$", k) for k in keys):
        return 2
    return 1


def version_string(generation: int, num_layers: int) -> str:
    """The release a layout belongs to: "0.9.7" for any 13B (48 layers), else the VAE generation's first release."""
    if num_layers == 48:
        return "0.9.7"
    return ("0.9.0", "0.9.1", "0.9.5")[generation]


def default_scheduler_config(generation: int) -> dict:
    """Scheduler used when a file carries none: SD3-shifted uniform with terminal 0.1 for 0.9.0/0.9.1 (official
    mapping of the diffusers config, ltx_video/utils/diffusers_config_mapping.py); for 0.9.5+ the linear-quadratic
    sampler without shifting, the official inference code's other sampler (an inference: released 0.9.5+ files
    carry their own scheduler config)."""
    if generation < 2:
        return {
            "num_train_timesteps": 1000,
            "sampler": "Uniform",
            "shifting": "SD3",
            "base_resolution": None,
            "target_shift_terminal": 0.1,
        }
    return {"num_train_timesteps": 1000, "sampler": "LinearQuadratic", "shifting": None}


def model_configs(config: dict, where: str) -> tuple[TransformerConfig, VAEConfig]:
    """The two model configs of a checkpoint "config" dict; CheckpointError naming `where` when unusable."""
    try:
        return TransformerConfig.from_metadata(config["transformer"]), VAEConfig.from_metadata(config["vae"])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{where}: unusable model config: {e}") from None
