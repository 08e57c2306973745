"""diffusers layouts of LTX-Video 0.9.x: a folder with transformer/ and vae/ (config.json and
diffusion_pytorch_model*.safetensors, sharded or not; scheduler/scheduler_config.json optional).

The diffusers configs are converted to the official metadata dicts, and our keys are renamed forward to the
diffusers names and looked up there, so that every expected key is checked exactly once. The rename tables are
those of diffusers' LTX-Video conversion script (facts, rewritten as tables).
"""

from __future__ import annotations

import json
import os

import torch

from ..ltxv.dit import BLOCK_NORM_EPS, LTXVideoTransformer, TransformerConfig
from ..ltxv.vae import CausalVideoVAE
from .files import PICKLE_SUFFIXES, CheckpointError, SafetensorsFile, TensorInfo, read_json
from .fill import MAX_LISTED, build_on_meta, fill_module, merged_index
from .ltxv import LoadedCheckpoint, checkpoint_of
from .ltxv_config import default_scheduler_config, model_configs

DIFFUSERS_DIT_RENAMES = (
    ("patchify_proj", "proj_in"),
    ("adaln_single", "time_embed"),
    ("q_norm", "norm_q"),
    ("k_norm", "norm_k"),
)

_VAE_COMMON = {
    "up_blocks.0": "mid_block",
    "up_blocks.1": "up_blocks.0",
    "up_blocks.2": "up_blocks.1.upsamplers.0",
    "up_blocks.3": "up_blocks.1",
    "up_blocks.4": "up_blocks.2.conv_in",
    "up_blocks.5": "up_blocks.2.upsamplers.0",
    "up_blocks.6": "up_blocks.2",
    "up_blocks.7": "up_blocks.3.conv_in",
    "up_blocks.8": "up_blocks.3.upsamplers.0",
    "up_blocks.9": "up_blocks.3",
    "down_blocks.0": "down_blocks.0",
    "down_blocks.1": "down_blocks.0.downsamplers.0",
    "down_blocks.2": "down_blocks.0.conv_out",
    "down_blocks.3": "down_blocks.1",
    "down_blocks.4": "down_blocks.1.downsamplers.0",
    "down_blocks.5": "down_blocks.1.conv_out",
    "down_blocks.6": "down_blocks.2",
    "down_blocks.7": "down_blocks.2.downsamplers.0",
    "down_blocks.8": "down_blocks.3",
    "down_blocks.9": "mid_block",
    "conv_shortcut": "conv_shortcut.conv",
    "res_blocks": "resnets",
    "norm3.norm": "norm3",
    "per_channel_statistics.mean-of-means": "latents_mean",
    "per_channel_statistics.std-of-means": "latents_std",
}
_VAE_091_DECODER = {
    "up_blocks.0": "mid_block",
    "up_blocks.1": "up_blocks.0.upsamplers.0",
    "up_blocks.2": "up_blocks.0",
    "up_blocks.3": "up_blocks.1.upsamplers.0",
    "up_blocks.4": "up_blocks.1",
    "up_blocks.5": "up_blocks.2.upsamplers.0",
    "up_blocks.6": "up_blocks.2",
    "up_blocks.7": "up_blocks.3.upsamplers.0",
    "up_blocks.8": "up_blocks.3",
    "last_time_embedder": "time_embedder",
    "last_scale_shift_table": "scale_shift_table",
}
_VAE_095_ENCODER = {
    "down_blocks.0": "down_blocks.0",
    "down_blocks.1": "down_blocks.0.downsamplers.0",
    "down_blocks.2": "down_blocks.1",
    "down_blocks.3": "down_blocks.1.downsamplers.0",
    "down_blocks.4": "down_blocks.2",
    "down_blocks.5": "down_blocks.2.downsamplers.0",
    "down_blocks.6": "down_blocks.3",
    "down_blocks.7": "down_blocks.3.downsamplers.0",
    "down_blocks.8": "mid_block",
}
# per-channel statistics the diffusers converters drop (unused by inference); filled when our VAE has them
DROPPED_STATISTICS = (
    "per_channel_statistics.channel",
    "per_channel_statistics.mean-of-stds",
    "per_channel_statistics.mean-of-stds_over_std-of-means",
)


def diffusers_dit_key(key: str) -> str:
    for old, new in DIFFUSERS_DIT_RENAMES:
        key = key.replace(old, new)
    return key


def diffusers_vae_key(key: str, generation: int) -> str:
    """Our (official) VAE key -> the diffusers key, with the rule table of the diffusers converter: substring
    rules in order, each applied once; generation 1/2 tables override the decoder (and 2 the encoder) rules."""
    rules = dict(_VAE_COMMON)
    if generation >= 1:
        rules.update(_VAE_091_DECODER)
    if generation >= 2:
        rules.update(_VAE_095_ENCODER)
    for old, new in rules.items():
        key = key.replace(old, new)
    return key


def transformer_metadata_from_diffusers(cfg: dict, causal_temporal_positioning: bool, where: str) -> dict:
    if cfg.get("patch_size", 1) != 1 or cfg.get("patch_size_t", 1) != 1:
        raise CheckpointError(
            f"{where}: transformer patch size {cfg.get('patch_size')}x{cfg.get('patch_size_t')} "
            "is not supported (LTX-Video 0.9.x uses 1)"
        )
    if cfg.get("qk_norm", "rms_norm_across_heads") != "rms_norm_across_heads":
        raise CheckpointError(f"{where}: transformer qk_norm {cfg['qk_norm']!r} is not supported")
    try:
        config = TransformerConfig(
            num_layers=cfg["num_layers"],
            num_attention_heads=cfg["num_attention_heads"],
            attention_head_dim=cfg["attention_head_dim"],
            cross_attention_dim=cfg["cross_attention_dim"],
            caption_channels=cfg["caption_channels"],
            in_channels=cfg["in_channels"],
            out_channels=cfg["out_channels"],
            norm_eps=cfg.get("norm_eps", BLOCK_NORM_EPS),
            causal_temporal_positioning=causal_temporal_positioning,
        )
    except KeyError as e:
        raise CheckpointError(f"{where}: the diffusers transformer config.json has no {e} entry") from None
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: unusable diffusers transformer config: {e}") from None
    return config.to_metadata()


def vae_metadata_from_diffusers(cfg: dict, where: str) -> dict:
    """diffusers AutoencoderKLLTXVideo config -> official "vae" dict (encoder_blocks/decoder_blocks)."""
    if cfg.get("patch_size_t", 1) != 1:
        raise CheckpointError(f"{where}: VAE patch_size_t {cfg['patch_size_t']} is not supported")
    widths = list(cfg.get("block_out_channels", (128, 256, 512, 512)))
    layers = list(cfg.get("layers_per_block", (4, 3, 3, 3, 4)))
    scaling = list(cfg.get("spatio_temporal_scaling", (True, True, True, False)))
    block_types = list(cfg.get("down_block_types", ["LTXVideoDownBlock3D"] * len(widths)))
    downsample = list(cfg.get("downsample_type", ["conv"] * len(widths)))
    is_095 = block_types[-1] == "LTXVideo095DownBlock3D"
    encoder = []
    stages = len(widths) - 1 if is_095 else len(widths)
    for i in range(stages):
        width = widths[i]
        out = widths[i + 1] if i + 1 < len(widths) else widths[i]
        encoder.append(["res_x", {"num_layers": layers[i]}])
        if is_095:
            if scaling[i]:
                kind = {
                    "conv": "compress_all",
                    "spatial": "compress_space_res",
                    "temporal": "compress_time_res",
                    "spatiotemporal": "compress_all_res",
                }[downsample[i]]
                encoder.append([kind, 1] if kind == "compress_all" else [kind, {"multiplier": out // width}])
        else:
            if scaling[i]:
                encoder.append(["compress_all", 1])
            if out != width:
                encoder.append(["res_x_y", {"multiplier": out // width}])
    encoder.append(["res_x", {"num_layers": layers[-1]}])

    dec_widths = list(reversed(cfg.get("decoder_block_out_channels", widths)))
    dec_layers = list(reversed(cfg.get("decoder_layers_per_block", layers)))
    dec_scaling = list(reversed(cfg.get("decoder_spatio_temporal_scaling", scaling)))
    noise = list(reversed(cfg.get("decoder_inject_noise", [False] * len(dec_layers))))
    residual = list(reversed(cfg.get("upsample_residual", [False] * len(dec_widths))))
    factor = list(reversed(cfg.get("upsample_factor", [1] * len(dec_widths))))
    decoder = [["res_x", {"num_layers": dec_layers[0], "inject_noise": bool(noise[0])}]]
    width = dec_widths[0]
    for i, block_width in enumerate(dec_widths):
        out = block_width // factor[i]
        if factor[i] == 1 and out != width:
            decoder.append(["res_x_y", {"multiplier": width // out}])
        if dec_scaling[i]:
            decoder.append(["compress_all", {"residual": bool(residual[i]), "multiplier": factor[i]}])
        decoder.append(["res_x", {"num_layers": dec_layers[i + 1], "inject_noise": bool(noise[i + 1])}])
        width = out
    return {
        "_class_name": "CausalVideoAutoencoder",
        "dims": 3,
        "in_channels": cfg.get("in_channels", 3),
        "out_channels": cfg.get("out_channels", 3),
        "latent_channels": cfg.get("latent_channels", 128),
        "encoder_blocks": encoder,
        "decoder_blocks": list(reversed(decoder)),
        "encoder_base_channels": widths[0],
        "decoder_base_channels": width,
        "patch_size": cfg.get("patch_size", 4),
        "norm_layer": "pixel_norm",
        "latent_log_var": "uniform",
        "use_quant_conv": False,
        "causal_decoder": bool(cfg.get("decoder_causal", False)),
        "timestep_conditioning": bool(cfg.get("timestep_conditioning", False)),
        "spatial_padding_mode": "zeros",
        "scaling_factor": cfg.get("scaling_factor", 1.0),
    }


def scheduler_metadata_from_diffusers(cfg: dict | None, generation: int) -> dict:
    if cfg and cfg.get("use_dynamic_shifting"):
        return {
            "num_train_timesteps": cfg.get("num_train_timesteps", 1000),
            "sampler": "Uniform",
            "shifting": "SD3",
            "base_resolution": None,
            "target_shift_terminal": cfg.get("shift_terminal"),
        }
    return default_scheduler_config(generation)


def vae_generation_from_diffusers(vae_cfg: dict) -> int:
    if list(vae_cfg.get("down_block_types", [""]))[-1] == "LTXVideo095DownBlock3D":
        return 2
    return 1 if vae_cfg.get("timestep_conditioning") else 0


def folder_files(folder: str) -> list[SafetensorsFile]:
    """The safetensors weight files of one diffusers model folder (sharded via its index, or a single file)."""
    for name in sorted(os.listdir(folder)):
        if name.endswith(".safetensors.index.json"):
            weight_map = read_json(os.path.join(folder, name)).get("weight_map", {})
            return [SafetensorsFile(os.path.join(folder, f)) for f in sorted(set(weight_map.values()))]
    files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    if "diffusion_pytorch_model.safetensors" in files:
        files = ["diffusion_pytorch_model.safetensors"]
    if len(files) != 1:
        pickles = [f for f in os.listdir(folder) if f.endswith(PICKLE_SUFFIXES)]
        hint = f" (pickle weights {pickles} are refused: they can run arbitrary code)" if pickles else ""
        raise CheckpointError(
            f"{folder}: expected one diffusion_pytorch_model*.safetensors file or a sharded "
            f".safetensors.index.json, found {files or 'none'}{hint}"
        )
    return [SafetensorsFile(os.path.join(folder, files[0]))]


def load_diffusers_folder(folder: str, dtype, device) -> LoadedCheckpoint:
    parts = {name: os.path.join(folder, name) for name in ("transformer", "vae")}
    missing = [n for n, p in parts.items() if not os.path.isfile(os.path.join(p, "config.json"))]
    if missing:
        raise CheckpointError(
            f"{folder}: a diffusers LTX-Video folder needs transformer/ and vae/ subfolders with "
            f"config.json; missing: {', '.join(m + '/config.json' for m in missing)}"
        )
    dit_cfg = read_json(os.path.join(parts["transformer"], "config.json"))
    vae_cfg = read_json(os.path.join(parts["vae"], "config.json"))
    sched_path = os.path.join(folder, "scheduler", "scheduler_config.json")
    sched_cfg = read_json(sched_path) if os.path.isfile(sched_path) else None
    dit_index = merged_index(folder_files(parts["transformer"]))
    vae_index = merged_index(folder_files(parts["vae"]))
    return _load_diffusers(folder, dit_cfg, vae_cfg, sched_cfg, dit_index, vae_index, dtype, device)


def _load_diffusers(
    where: str,
    dit_cfg: dict,
    vae_cfg: dict,
    sched_cfg: dict | None,
    dit_index: dict[str, TensorInfo],
    vae_index: dict[str, TensorInfo],
    dtype,
    device,
) -> LoadedCheckpoint:
    generation = vae_generation_from_diffusers(vae_cfg)
    config = {
        "transformer": transformer_metadata_from_diffusers(dit_cfg, generation >= 2, where),
        "vae": vae_metadata_from_diffusers(vae_cfg, where),
        "scheduler": scheduler_metadata_from_diffusers(sched_cfg, generation),
    }
    transformer_config, vae_config = model_configs(config, where)
    transformer = build_on_meta(LTXVideoTransformer, transformer_config)
    names = {k: diffusers_dit_key(k) for k in transformer.state_dict()}
    ours = {k: dit_index[n] for k, n in names.items() if n in dit_index}
    _check_no_leftovers(dit_index, set(names.values()), "transformer", where)
    fill_module(transformer, ours, dtype, device, "diffusers transformer")
    vae = build_on_meta(CausalVideoVAE, vae_config)
    vae_keys = list(vae.state_dict())
    names = {k: diffusers_vae_key(k, generation) for k in vae_keys}
    ours = {k: vae_index[n] for k, n in names.items() if n in vae_index}
    _check_no_leftovers(vae_index, set(names.values()), "VAE", where)
    channels = config["vae"]["latent_channels"]
    defaults = {
        k: (torch.arange(channels, dtype=torch.float32) if k.endswith(".channel") else torch.zeros(channels))
        for k in vae_keys
        if k in DROPPED_STATISTICS
    }
    fill_module(vae, ours, dtype, device, "diffusers VAE", defaults)
    return checkpoint_of(where, config, transformer, vae, generation)


def _check_no_leftovers(index: dict[str, TensorInfo], used: set[str], what: str, where: str) -> None:
    extra = sorted(k for k in index if k not in used)
    if extra:
        raise CheckpointError(
            f"{where}: the diffusers {what} has {len(extra)} keys our model does not expect, "
            f"e.g. {', '.join(extra[:MAX_LISTED])}"
        )


def diffusers_root(path: str) -> str | None:
    """<root> when `path` is a weight file of <root>/transformer/ (an LTX-Video diffusers transformer, by its
    config.json) and <root>/vae/ exists; else None."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        with open(os.path.join(folder, "config.json")) as f:
            class_name = json.load(f).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return None
    root = os.path.dirname(folder)
    if class_name == "LTXVideoTransformer3DModel" and os.path.isdir(os.path.join(root, "vae")):
        return root
    return None
