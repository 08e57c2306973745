"""Loading and saving LTX-Video checkpoints (safetensors only; nothing is ever unpickled).

Layouts read by `load_checkpoint`:
  * the official single file: DiT keys under "model.diffusion_model.", VAE keys under "vae.", and a JSON "config"
    entry in the safetensors metadata ({"transformer": ..., "vae": ..., "scheduler": ..., "allowed_inference_steps"?}).
    Without that metadata the configs are inferred from the tensor shapes.
  * a diffusers folder (transformer/ and vae/ with config.json and diffusion_pytorch_model*.safetensors, sharded or
    not; scheduler/scheduler_config.json optional); keys are renamed to ours.
`load_latent_upsampler` reads the separate 0.9.7+ spatial upsampler file (unprefixed keys, flat metadata config).

Modules are built with their parameters on the meta device and filled tensor by tensor, each converted to the
compute dtype as it is read (fp8 weights are upcast, scaled-fp8 weights multiplied by their `scale_weight`), so a
full-precision copy of the model never exists in host memory. Every key, missing, extra or mis-shaped, is checked
before anything is read, and errors name the file and say what the file looks like instead.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .ltxv.dit import LTXVideoTransformer, TransformerConfig
from .ltxv.upsampler import LatentUpsampler, UpsamplerConfig
from .ltxv.vae import CausalVideoVAE, VAEConfig

logger = logging.getLogger(__name__)

DIT_PREFIX = "model.diffusion_model."
VAE_PREFIX = "vae."
# ComfyUI's checkpoint saver also stores the text encoder; it is not part of our checkpoint and is skipped.
IGNORED_PREFIXES = ("text_encoders.", "cond_stage_model.", "conditioner.")
COMPUTE_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")
MAX_LISTED = 5


class CheckpointError(ValueError):
    """A model file that cannot be loaded: the message names the file and the problem."""


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


# ---------------------------------------------------------------------------------------------------------------
# Reading safetensors files


@dataclass
class TensorInfo:
    file: "SafetensorsFile"
    key: str  # key inside the file
    shape: tuple[int, ...]
    dtype: str  # safetensors dtype name, e.g. "BF16", "F8_E4M3"
    scale_key: str | None = None  # scaled-fp8: the scalar to multiply the weight with


class SafetensorsFile:
    """One safetensors file whose header has been checked against the file size (catches truncated downloads)."""

    def __init__(self, path: str):
        self.path = str(path)
        refuse_pickle(self.path)
        size = os.path.getsize(self.path)
        with open(self.path, "rb") as f:
            head = f.read(8)
            if head[:4] == b"GGUF":
                raise CheckpointError(
                    f"{self.path}: this is a GGUF (llama.cpp-style quantized) file; only "
                    "safetensors files are supported"
                )
            if len(head) < 8:
                raise CheckpointError(
                    f"{self.path}: file is {size} bytes, too short for a safetensors file; "
                    "it is truncated or corrupt, re-download it"
                )
            header_len = int.from_bytes(head, "little")
            if header_len > size - 8:
                raise CheckpointError(
                    f"{self.path}: safetensors header claims {header_len} bytes but the file has "
                    f"{size} bytes; the file is truncated or corrupt, re-download it"
                )
            try:
                header = json.loads(f.read(header_len))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise CheckpointError(
                    f"{self.path}: the safetensors header is not valid JSON ({e}); the file is "
                    "corrupt or not a safetensors file, re-download it"
                ) from None
        self.metadata: dict = header.pop("__metadata__", None) or {}
        data_len = size - 8 - header_len
        end = max((info["data_offsets"][1] for info in header.values()), default=0)
        if end != data_len:
            raise CheckpointError(
                f"{self.path}: the header describes {end} bytes of tensor data but the file holds "
                f"{data_len}; the file is truncated or corrupt, re-download it"
            )
        self.tensors = {k: (tuple(v["shape"]), v["dtype"]) for k, v in header.items()}
        self._handle = None

    def keys(self) -> list[str]:
        return list(self.tensors)

    def get(self, key: str) -> torch.Tensor:
        if self._handle is None:
            self._handle = safe_open(self.path, framework="pt", device="cpu")
        return self._handle.get_tensor(key)

    def config(self) -> dict | None:
        """The parsed JSON of metadata["config"], or None when absent."""
        text = self.metadata.get("config")
        if text is None:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{self.path}: metadata 'config' is not valid JSON ({e})") from None

    def close(self):
        self._handle = None


def refuse_pickle(path: str) -> None:
    """Refuse pickle-based files (.ckpt/.pt/.bin...) without ever unpickling them: they can run arbitrary code."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: file not found")
    with open(path, "rb") as f:
        head = f.read(9)
    looks_like_safetensors = head[8:9] == b"{"  # u64 header length, then the JSON header
    looks_like_pickle = head.startswith(b"PK\x03\x04") or (head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05")
    if path.lower().endswith(PICKLE_SUFFIXES) or (looks_like_pickle and not looks_like_safetensors):
        raise CheckpointError(
            f"{path}: this is a pickle/PyTorch file (.ckpt/.pt/.bin), not safetensors; it is "
            "refused because unpickling can run arbitrary code. Use the .safetensors release of "
            "the model (or convert it with a tool you trust)."
        )


# ---------------------------------------------------------------------------------------------------------------
# What a file looks like (for error messages)


def describe_keys(keys: list[str]) -> str:
    """A short human description of what kind of model a list of state-dict keys belongs to."""
    keys = [k for k in keys if not k.startswith(IGNORED_PREFIXES)] or keys
    joined = "\n".join(keys)

    def has(pattern: str) -> bool:
        return re.search(pattern, joined, re.M) is not None

    if has(r"encoder\.block\.\d+\.layer\.0\.SelfAttention\.q\.weight$") or has(r"^(.*\.)?shared\.weight$"):
        return (
            "this is a T5 text encoder file, not an LTX-Video checkpoint; put it in models/text_encoders "
            "and load it with the text encoder loader"
        )
    if has(r"^initial_conv\.weight$") and has(r"^upsampler\.0\.weight$"):
        return "this is an LTX-Video latent upsampler file; load it with the latent upsampler loader"
    dit = has(r"^model\.diffusion_model\.transformer_blocks\.\d+\.attn1\.to_q\.weight$")
    vae = has(r"^vae\.decoder\.")
    if dit and vae:
        return "this looks like an LTX-Video single-file checkpoint (model.diffusion_model.* and vae.* keys)"
    if dit:
        return "this is a transformer-only LTX-Video file (model.diffusion_model.* keys, no vae.* keys)"
    if vae or has(r"^decoder\.up_blocks\.\d+\.") and has(r"^encoder\.down_blocks\.\d+\."):
        return "this is a VAE-only LTX-Video file (no transformer keys model.diffusion_model.*)"
    if has(r"^transformer_blocks\.\d+\.attn1\.to_q\.weight$") and has(r"^(patchify_proj|proj_in)\.weight$"):
        return (
            "this is a transformer-only LTX-Video file without prefixes (a diffusion_models/ file, no VAE); "
            "the full single-file checkpoint with model.diffusion_model.* and vae.* keys is needed"
        )
    if has(r"double_blocks\.\d+\."):
        return "this is a Flux/HunyuanVideo-style checkpoint (double_blocks.*), not LTX-Video"
    if has(r"joint_blocks\.\d+\."):
        return "this is a Stable Diffusion 3 checkpoint (joint_blocks.*), not LTX-Video"
    if has(r"input_blocks\.\d+\.") or has(r"^first_stage_model\."):
        return "this is a Stable Diffusion (1.x/2.x/XL UNet) checkpoint, not LTX-Video"
    if has(r"^blocks\.\d+\.(self_attn|cross_attn)\."):
        return "this is a Wan-style video model, not LTX-Video"
    return f"unrecognised model with {len(keys)} tensors (first keys: {', '.join(sorted(keys)[:3])})"


# ---------------------------------------------------------------------------------------------------------------
# Building modules on meta and filling them tensor by tensor


@contextmanager
def parameters_on_meta():
    """Construct modules with every parameter on the meta device (no memory, no init cost). Buffers stay real:
    non-persistent ones are not in the file and must keep the values computed in __init__."""
    register = nn.Module.register_parameter

    def register_on_meta(module, name, param):
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(module, name, param)

    nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def _convert(tensor: torch.Tensor, scale: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    if not tensor.is_floating_point():
        return tensor
    if scale is not None:
        return (tensor.to(torch.float32) * scale.to(torch.float32)).to(dtype)
    return tensor.to(dtype)


def fill_module(
    module: nn.Module,
    index: dict[str, TensorInfo],
    dtype: torch.dtype,
    device,
    what: str,
    defaults: dict[str, torch.Tensor] | None = None,
    dtype_for=None,
    skip=(),
) -> nn.Module:
    """Strictly check `index` (module key -> where the tensor is) against the module's state dict, then read,
    convert and assign each tensor. `defaults` supplies tensors a layout legitimately lacks; `skip` names keys
    left alone (e.g. tied duplicates); `dtype_for(key)` overrides the dtype per key."""
    defaults = dict(defaults or {})
    device = torch.device(device)
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items() if k not in skip}
    check_keys(expected, index, what, defaults)
    for key in expected:
        key_dtype = dtype_for(key) if dtype_for else dtype
        if key in index:
            info = index[key]
            scale = info.file.get(info.scale_key) if info.scale_key else None
            tensor = _convert(info.file.get(info.key), scale, key_dtype)
        else:
            tensor = defaults[key].to(key_dtype)
        _assign(module, key, tensor.to(device))
    for name, buf in module.named_buffers():  # non-persistent buffers computed in __init__
        if buf.device != device:
            _assign(module, name, buf.to(device))
    leftover = [n for n, p in module.named_parameters() if p.is_meta]
    assert not leftover, f"parameters not in the state dict stayed on meta: {leftover[:3]}"
    return module.eval()


def _assign(module: nn.Module, key: str, tensor: torch.Tensor) -> None:
    owner_name, _, name = key.rpartition(".")
    owner = module.get_submodule(owner_name)
    if name in owner._parameters:
        owner._parameters[name] = nn.Parameter(tensor, requires_grad=False)
    else:
        owner._buffers[name] = tensor


def check_keys(
    expected: dict[str, tuple], index: dict[str, TensorInfo], what: str, defaults: dict | None = None
) -> None:
    defaults = defaults or {}
    missing = sorted(k for k in expected if k not in index and k not in defaults)
    unexpected = sorted(k for k in index if k not in expected)
    wrong = sorted(k for k in expected if k in index and index[k].shape != expected[k])
    if not (missing or unexpected or wrong):
        return
    files = sorted({info.file.path for info in index.values()})
    lines = [f"{', '.join(files) or what}: the {what} does not match the model built from its config:"]
    if missing:
        lines.append(f"  {len(missing)} missing keys, e.g. {', '.join(missing[:MAX_LISTED])}")
    if unexpected:
        lines.append(f"  {len(unexpected)} unexpected keys, e.g. {', '.join(unexpected[:MAX_LISTED])}")
    if wrong:
        shown = [f"{k} expected {list(expected[k])} found {list(index[k].shape)}" for k in wrong[:MAX_LISTED]]
        lines.append(f"  {len(wrong)} keys with wrong shapes: " + "; ".join(shown))
    all_keys = sorted({k for info in index.values() for k in info.file.keys()})
    lines.append("  " + describe_keys(all_keys))
    raise CheckpointError("\n".join(lines))


def build_index(file: SafetensorsFile, prefix: str) -> dict[str, TensorInfo]:
    """Module key -> TensorInfo for the keys of `file` under `prefix` (prefix stripped).
    Scaled-fp8 files (ComfyUI): `<w>.scale_weight` scales `<w>.weight`; `scale_input` and the `scaled_fp8`
    marker are dropped."""
    index: dict[str, TensorInfo] = {}
    names = [k for k in file.keys() if k.startswith(prefix)]
    present = set(names)
    for name in names:
        local = name[len(prefix) :]
        if local == "scaled_fp8" or local.endswith((".scale_weight", ".scale_input")):
            continue
        shape, dtype = file.tensors[name]
        scale = None
        if local.endswith(".weight") and name[: -len("weight")] + "scale_weight" in present:
            scale = name[: -len("weight")] + "scale_weight"
        index[local] = TensorInfo(file, name, shape, dtype, scale)
    return index


def check_dtype(dtype: torch.dtype, path) -> None:
    """CheckpointError naming `path` unless `dtype` is one of COMPUTE_DTYPES."""
    if dtype not in COMPUTE_DTYPES:
        raise CheckpointError(f"{path}: compute dtype {dtype} is not supported; use one of {COMPUTE_DTYPES}")


# ---------------------------------------------------------------------------------------------------------------
# Config inference from tensor shapes (files without metadata)


def _block_indices(shapes: dict[str, tuple], prefix: str) -> list[int]:
    found = {int(m.group(1)) for k in shapes if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return sorted(found)


def official_transformer_metadata(
    num_layers: int,
    num_attention_heads: int,
    attention_head_dim: int,
    cross_attention_dim: int,
    caption_channels: int,
    in_channels: int,
    out_channels: int,
    causal_temporal_positioning: bool,
    norm_eps: float = 1e-6,
) -> dict:
    """A complete official "transformer" metadata dict; the fixed fields are those of every released model."""
    return {
        "num_layers": num_layers,
        "num_attention_heads": num_attention_heads,
        "attention_head_dim": attention_head_dim,
        "cross_attention_dim": cross_attention_dim,
        "caption_channels": caption_channels,
        "in_channels": in_channels,
        "out_channels": out_channels,
        "norm_eps": norm_eps,
        "activation_fn": "gelu-approximate",
        "attention_bias": True,
        "qk_norm": "rms_norm",
        "standardization_norm": "rms_norm",
        "norm_elementwise_affine": False,
        "adaptive_norm": "single_scale_shift",
        "positional_embedding_type": "rope",
        "positional_embedding_theta": 10000.0,
        "positional_embedding_max_pos": [20, 2048, 2048],
        "timestep_scale_multiplier": 1000,
        "causal_temporal_positioning": causal_temporal_positioning,
    }


def infer_transformer_config(shapes: dict[str, tuple], causal_temporal_positioning: bool) -> dict:
    """The "transformer" metadata dict from DiT key shapes (keys without prefix). Heads are assumed to be 32, as in
    every official LTX-Video model (shapes cannot tell heads from head width, ComfyUI assumes the same)."""
    heads = 32
    to_k = shapes["transformer_blocks.0.attn2.to_k.weight"]
    return official_transformer_metadata(
        num_layers=len(_block_indices(shapes, "transformer_blocks.")),
        num_attention_heads=heads,
        attention_head_dim=to_k[0] // heads,
        cross_attention_dim=to_k[1],
        caption_channels=shapes["caption_projection.linear_1.weight"][1],
        in_channels=shapes["patchify_proj.weight"][1],
        out_channels=shapes["proj_out.weight"][0],
        causal_temporal_positioning=causal_temporal_positioning,
    )


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
        indices = _block_indices(shapes, f"{part}.{'down' if part == 'encoder' else 'up'}_blocks.")
        prefixes = [f"{part}.{'down' if part == 'encoder' else 'up'}_blocks.{i}." for i in indices]
        result = []
        for n, p in enumerate(prefixes):
            width = in_width(p)
            next_width = in_width(prefixes[n + 1]) if n + 1 < len(prefixes) else shapes[tail_key][1]
            if p + "res_blocks.0.conv1.conv.weight" in shapes:
                params = {"num_layers": len(_block_indices(shapes, p + "res_blocks."))}
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


def vae_generation(shapes: dict[str, tuple]) -> int:
    """0: 0.9.0 VAE, 1: 0.9.1 (timestep-conditioned decoder), 2: 0.9.5+ (also residual space-to-depth encoder).
    Same decision as ComfyUI's (decoder width 512/1024 and encoder.down_blocks.1.conv.conv.bias), stated by
    structure so that it also holds for narrow test models."""
    if "decoder.last_time_embedder.timestep_embedder.linear_1.weight" not in shapes:
        return 0
    if any(re.match(r"encoder\.down_blocks\.\d+\.conv\.conv\.bias$", k) for k in shapes):
        return 2
    return 1


def version_string(generation: int, num_layers: int) -> str:
    if num_layers == 48:
        return "0.9.7"
    return ("0.9.0", "0.9.1", "0.9.5")[generation]


def default_scheduler_config(generation: int) -> dict:
    """Scheduler used when a file carries none: SD3-shifted uniform with terminal 0.1 for 0.9.0/0.9.1 (official
    mapping of the diffusers config); linear-quadratic without shifting for 0.9.5+ (design doc §2.2, [I])."""
    if generation < 2:
        return {
            "num_train_timesteps": 1000,
            "sampler": "Uniform",
            "shifting": "SD3",
            "base_resolution": None,
            "target_shift_terminal": 0.1,
        }
    return {"num_train_timesteps": 1000, "sampler": "LinearQuadratic", "shifting": None}


# ---------------------------------------------------------------------------------------------------------------
# Official single file


def load_checkpoint(path, dtype: torch.dtype = torch.bfloat16, device="cpu") -> LoadedCheckpoint:
    """Load DiT + VAE from an official single file or a diffusers folder (transformer/, vae/, scheduler/); a
    diffusers transformer weight file inside such a folder loads the whole folder."""
    check_dtype(dtype, path)
    path = str(path)
    if os.path.isdir(path):
        return _load_diffusers_folder(path, dtype, device)
    root = _diffusers_root(path)
    if root is not None:
        return _load_diffusers_folder(root, dtype, device)
    file = SafetensorsFile(path)
    keys = file.keys()
    if any(k.startswith(DIT_PREFIX) for k in keys) and any(k.startswith(VAE_PREFIX) for k in keys):
        return _load_official_file(file, dtype, device)
    if any(k.startswith(("proj_in.", "transformer.proj_in.")) for k in keys):
        raise CheckpointError(
            f"{path}: this is a diffusers-format transformer file (proj_in.*, time_embed.* "
            "keys) without its VAE and config; point the loader at the diffusers folder that "
            "holds transformer/ and vae/, or use the official single-file checkpoint"
        )
    raise CheckpointError(
        f"{path}: not an LTX-Video checkpoint (DiT model.diffusion_model.* + VAE vae.* keys); " + describe_keys(keys)
    )


def _diffusers_root(path: str) -> str | None:
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


def _load_official_file(file: SafetensorsFile, dtype, device) -> LoadedCheckpoint:
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
    dit_shapes = {k: v.shape for k, v in dit_index.items()}
    vae_shapes = {k: v.shape for k, v in vae_index.items()}
    config = file.config()
    if config is not None and ("transformer" not in config or "vae" not in config):
        raise CheckpointError(
            f"{file.path}: metadata 'config' has keys {sorted(config)}, expected 'transformer' "
            f"and 'vae'; " + describe_keys(file.keys())
        )
    try:
        generation = vae_generation(vae_shapes)
        if config is None:
            config = {
                "transformer": infer_transformer_config(dit_shapes, causal_temporal_positioning=generation >= 2),
                "vae": infer_vae_config(vae_shapes),
            }
    except (KeyError, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(
            f"{file.path}: no metadata config and the layout cannot be inferred (missing or "
            f"unusual key {e}); " + describe_keys(file.keys())
        ) from None
    config.setdefault("scheduler", default_scheduler_config(generation))
    transformer_config, vae_config = _configs(config, file.path)
    transformer = _build(LTXVideoTransformer, transformer_config)
    fill_module(transformer, dit_index, dtype, device, "transformer (model.diffusion_model.*)")
    vae = _build(CausalVideoVAE, vae_config)
    fill_module(vae, vae_index, dtype, device, "VAE (vae.*)")
    file.close()
    return LoadedCheckpoint(
        transformer=transformer,
        vae=vae,
        transformer_config=transformer_config,
        vae_config=vae_config,
        scheduler_config=config["scheduler"] or default_scheduler_config(generation),
        allowed_inference_steps=config.get("allowed_inference_steps"),
        version=version_string(generation, transformer_config.num_layers),
        path=file.path,
        metadata=config,
    )


def _configs(config: dict, where: str) -> tuple[TransformerConfig, VAEConfig]:
    try:
        return TransformerConfig.from_metadata(config["transformer"]), VAEConfig.from_metadata(config["vae"])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{where}: unusable model config: {e}") from None


def _build(cls, config) -> nn.Module:
    with parameters_on_meta():
        return cls(config)


# ---------------------------------------------------------------------------------------------------------------
# diffusers layouts (section 2.4 of the design reference): rename our keys forward to diffusers names and look
# those up, so that every expected key is checked exactly once.

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
_DROPPED_STATISTICS = (
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
    return official_transformer_metadata(
        num_layers=cfg["num_layers"],
        num_attention_heads=cfg["num_attention_heads"],
        attention_head_dim=cfg["attention_head_dim"],
        cross_attention_dim=cfg["cross_attention_dim"],
        caption_channels=cfg["caption_channels"],
        in_channels=cfg["in_channels"],
        out_channels=cfg["out_channels"],
        causal_temporal_positioning=causal_temporal_positioning,
        norm_eps=cfg.get("norm_eps", 1e-6),
    )


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


def _vae_generation_from_diffusers(vae_cfg: dict) -> int:
    if list(vae_cfg.get("down_block_types", [""]))[-1] == "LTXVideo095DownBlock3D":
        return 2
    return 1 if vae_cfg.get("timestep_conditioning") else 0


def read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read the JSON config ({e})") from None


def _folder_files(folder: str) -> list[SafetensorsFile]:
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


def _merged_index(files: list[SafetensorsFile], prefix: str = "") -> dict[str, TensorInfo]:
    index: dict[str, TensorInfo] = {}
    for f in files:
        index.update(build_index(f, prefix))
    return index


def _load_diffusers_folder(folder: str, dtype, device) -> LoadedCheckpoint:
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
    dit_index = _merged_index(_folder_files(parts["transformer"]))
    vae_index = _merged_index(_folder_files(parts["vae"]))
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
    generation = _vae_generation_from_diffusers(vae_cfg)
    config = {
        "transformer": transformer_metadata_from_diffusers(dit_cfg, generation >= 2, where),
        "vae": vae_metadata_from_diffusers(vae_cfg, where),
        "scheduler": scheduler_metadata_from_diffusers(sched_cfg, generation),
    }
    transformer_config, vae_config = _configs(config, where)
    transformer = _build(LTXVideoTransformer, transformer_config)
    names = {k: diffusers_dit_key(k) for k in transformer.state_dict()}
    ours = {k: dit_index[n] for k, n in names.items() if n in dit_index}
    _check_no_leftovers(dit_index, set(names.values()), "transformer", where)
    fill_module(transformer, ours, dtype, device, "diffusers transformer")
    vae = _build(CausalVideoVAE, vae_config)
    vae_keys = list(vae.state_dict())
    names = {k: diffusers_vae_key(k, generation) for k in vae_keys}
    ours = {k: vae_index[n] for k, n in names.items() if n in vae_index}
    _check_no_leftovers(vae_index, set(names.values()), "VAE", where)
    channels = config["vae"]["latent_channels"]
    defaults = {
        k: (torch.arange(channels, dtype=torch.float32) if k.endswith(".channel") else torch.zeros(channels))
        for k in vae_keys
        if k in _DROPPED_STATISTICS
    }
    fill_module(vae, ours, dtype, device, "diffusers VAE", defaults)
    return LoadedCheckpoint(
        transformer=transformer,
        vae=vae,
        transformer_config=transformer_config,
        vae_config=vae_config,
        scheduler_config=config["scheduler"],
        allowed_inference_steps=None,
        version=version_string(generation, transformer_config.num_layers),
        path=where,
        metadata=config,
    )


def _check_no_leftovers(index: dict[str, TensorInfo], used: set[str], what: str, where: str) -> None:
    extra = sorted(k for k in index if k not in used)
    if extra:
        raise CheckpointError(
            f"{where}: the diffusers {what} has {len(extra)} keys our model does not expect, "
            f"e.g. {', '.join(extra[:MAX_LISTED])}"
        )


# ---------------------------------------------------------------------------------------------------------------
# Latent upsampler (0.9.7+)


def infer_upsampler_config(shapes: dict[str, tuple]) -> dict:
    initial = shapes["initial_conv.weight"]
    mid = initial[0]
    up = shapes["upsampler.0.weight"]
    layouts = {4: (True, False), 2: (False, True), 8: (True, True)}  # channel factor -> (spatial, temporal)
    if up[0] % mid or up[0] // mid not in layouts:
        raise ValueError(
            f"upsampler.0.weight has {up[0]} output channels for {mid} mid channels; expected 2, 4 or "
            "8 times as many (temporal, spatial, both)"
        )
    spatial, temporal = layouts[up[0] // mid]
    return {
        "_class_name": "LatentUpsampler",
        "in_channels": initial[1],
        "mid_channels": mid,
        "num_blocks_per_stage": len(_block_indices(shapes, "res_blocks.")),
        "dims": len(initial) - 2,
        "spatial_upsample": spatial,
        "temporal_upsample": temporal,
    }


def load_latent_upsampler(path, dtype: torch.dtype = torch.bfloat16, device="cpu") -> LatentUpsampler:
    check_dtype(dtype, path)
    file = SafetensorsFile(str(path))
    keys = file.keys()
    if "initial_conv.weight" not in keys or "upsampler.0.weight" not in keys:
        raise CheckpointError(
            f"{file.path}: not an LTX-Video latent upsampler (no initial_conv/upsampler keys); " + describe_keys(keys)
        )
    index = build_index(file, "")
    config = file.config()
    try:
        if not config:
            config = infer_upsampler_config({k: v.shape for k, v in index.items()})
        upsampler_config = UpsamplerConfig.from_metadata(config)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{file.path}: unusable latent upsampler config: {e}") from None
    upsampler = _build(LatentUpsampler, upsampler_config)
    fill_module(upsampler, index, dtype, device, "latent upsampler")
    file.close()
    return upsampler


# ---------------------------------------------------------------------------------------------------------------
# Saving


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


def save_safetensors(path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    path = str(path)
    tmp = path + ".tmp"
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:  # a failed write leaves no partial .tmp behind
        if os.path.exists(tmp):
            os.remove(tmp)
