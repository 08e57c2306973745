"""The separate latent upsampler file (LTX-Video 0.9.7+, LTX-2): unprefixed keys (initial_conv, res_blocks.N,
upsampler.0 for the pixel-shuffle x2 upsamplers or upsampler.conv for the rational ones (x1.5, ...),
post_upsample_res_blocks.N, final_conv) and a flat metadata "config", or none (then inferred)."""

from __future__ import annotations

import torch

from ..ltxv.upsampler import RATIONAL_SCALES, LatentUpsampler, UpsamplerConfig
from .files import CheckpointError, SafetensorsFile, check_dtype
from .fill import build_index, build_on_meta, fill_module
from .keys import describe_keys
from .ltxv_config import block_indices

# output channels of upsampler.0 per mid channel -> (spatial, temporal): pixel shuffle over 2-D, 1-D or 3-D
_SHUFFLE_LAYOUTS = {4: (True, False), 2: (False, True), 8: (True, True)}


def infer_upsampler_config(shapes: dict[str, tuple]) -> dict:
    initial = shapes["initial_conv.weight"]
    mid = initial[0]
    common = {
        "_class_name": "LatentUpsampler",
        "in_channels": initial[1],
        "mid_channels": mid,
        "num_blocks_per_stage": len(block_indices(shapes, "res_blocks.")),
        "dims": len(initial) - 2,
    }
    if "upsampler.conv.weight" in shapes:  # rational resampler: Conv2d (mid -> up^2 mid), shuffle by up, blur down
        up = round((shapes["upsampler.conv.weight"][0] / mid) ** 0.5)
        scales = [scale for scale, (u, _) in RATIONAL_SCALES.items() if u == up]
        if len(scales) != 1:
            raise ValueError(
                f"upsampler.conv.weight has {shapes['upsampler.conv.weight'][0]} output channels for {mid} mid "
                f"channels (shuffle by {up}); the scale cannot be told from the shapes alone "
                f"({', '.join(map(str, scales)) or 'no supported scale'}): the file needs its metadata config"
            )
        return common | {"spatial_upsample": True, "temporal_upsample": False, "rational_resampler": True,
                         "spatial_scale": scales[0]}  # fmt: skip
    up = shapes["upsampler.0.weight"]
    if up[0] % mid or up[0] // mid not in _SHUFFLE_LAYOUTS:
        raise ValueError(
            f"upsampler.0.weight has {up[0]} output channels for {mid} mid channels; expected 2, 4 or "
            "8 times as many (temporal, spatial, both)"
        )
    spatial, temporal = _SHUFFLE_LAYOUTS[up[0] // mid]
    return common | {"spatial_upsample": spatial, "temporal_upsample": temporal}


def load_latent_upsampler(path, dtype: torch.dtype = torch.bfloat16, device="cpu") -> LatentUpsampler:
    check_dtype(dtype, path)
    file = SafetensorsFile(path)
    keys = file.keys()
    if "initial_conv.weight" not in keys or not {"upsampler.0.weight", "upsampler.conv.weight"} & set(keys):
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
    upsampler = fill_module(build_on_meta(LatentUpsampler, upsampler_config), index, dtype, device, "latent upsampler")
    file.close()
    return upsampler
