"""Configuration of the LTX-Video 0.9.x causal video VAE (vae.py): encoder/decoder block layouts, the presets of
the three generations, official metadata in and out, and the compression factors that decide latent geometry."""

from __future__ import annotations

import math
from dataclasses import dataclass

ENCODER_BLOCKS = (
    "res_x",
    "res_x_y",
    "compress_time",
    "compress_space",
    "compress_all",
    "compress_all_x_y",
    "compress_time_res",
    "compress_space_res",
    "compress_all_res",
)
DECODER_BLOCKS = ("res_x", "res_x_y", "compress_time", "compress_space", "compress_all")
BLOCK_PARAMS = ("num_layers", "inject_noise", "multiplier", "residual")
PADDING_MODES = ("zeros", "reflect", "replicate")
SHORTCUT_NORMS = ("layer_norm", "group_norm")  # 0.9.x: LayerNorm over channels; LTX-2: GroupNorm with one group
LOG_VARIANCE_MODES = ("uniform", "constant")
COMPRESS_STRIDES = {"time": (2, 1, 1), "space": (1, 2, 2), "all": (2, 2, 2)}
STATISTICS_NAMES = ("channel", "mean-of-means", "mean-of-stds", "std-of-means", "mean-of-stds_over_std-of-means")


def compress_stride(block_name: str) -> tuple[int, int, int]:
    """'compress_all_res' -> (2, 2, 2), 'compress_time' -> (2, 1, 1), ..."""
    return COMPRESS_STRIDES[block_name.split("_")[1]]


def _normalize_blocks(blocks, allowed: tuple[str, ...], what: str) -> tuple[tuple[str, dict], ...]:
    """Official block list ([name, int | dict] pairs) -> ((name, params dict), ...), validated."""
    if not isinstance(blocks, (list, tuple)) or not blocks:
        raise ValueError(f"VAE config: {what} must be a non-empty list of [name, params] pairs, got {blocks!r}")
    normalized = []
    for entry in blocks:
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise ValueError(f"VAE config: each {what} entry must be [name, params], got {entry!r}")
        name, params = entry
        if name not in allowed:
            raise ValueError(f"VAE config: unsupported {what} block {name!r}; supported: {', '.join(allowed)}")
        params = {"num_layers": params} if isinstance(params, int) else dict(params)
        unknown = sorted(set(params) - set(BLOCK_PARAMS))
        if unknown:
            raise ValueError(
                f"VAE config: {what} block {name!r} has unsupported parameters {unknown}; "
                f"supported: {', '.join(BLOCK_PARAMS)}"
            )
        if name == "res_x" and (not isinstance(params.get("num_layers"), int) or params["num_layers"] < 1):
            raise ValueError(f"VAE config: {what} block 'res_x' needs num_layers >= 1, got {params!r}")
        if not isinstance(params.get("multiplier", 1), int) or params.get("multiplier", 1) < 1:
            raise ValueError(f"VAE config: {what} block {name!r} multiplier must be an integer >= 1, got {params!r}")
        normalized.append((name, params))
    return tuple(normalized)


@dataclass
class VAEConfig:
    """Structure of a CausalVideoVAE; fields are named as in the official "vae" metadata dict.

    `decoder_blocks` is listed in the official (encoder-side) order: the decoder runs it reversed, so the legacy
    0.9.0 `blocks` list serves as both encoder_blocks and decoder_blocks.
    The last three fields are the LTX-2 variations (model/ltx2/video_vae.py builds those configs):
    `decoder_spatial_padding_mode` (None: same as the encoder's), `shortcut_norm` of channel-changing res blocks
    (0.9.x "layer_norm", keys norm3.norm.*; LTX-2 "group_norm", one group over (C, F, H, W), keys norm3.*) and
    `latent_log_var` ("uniform": a learned shared log-variance channel; "constant": that channel is ignored, -30).
    """

    encoder_blocks: tuple = ()
    decoder_blocks: tuple = ()
    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 128
    patch_size: int = 4
    encoder_base_channels: int = 128
    decoder_base_channels: int = 128
    timestep_conditioning: bool = False
    causal_decoder: bool = False
    spatial_padding_mode: str = "zeros"
    decoder_spatial_padding_mode: str | None = None
    shortcut_norm: str = "layer_norm"
    latent_log_var: str = "uniform"

    def __post_init__(self):
        self.encoder_blocks = _normalize_blocks(self.encoder_blocks, ENCODER_BLOCKS, "encoder_blocks")
        self.decoder_blocks = _normalize_blocks(self.decoder_blocks, DECODER_BLOCKS, "decoder_blocks")
        if self.decoder_spatial_padding_mode is None:
            self.decoder_spatial_padding_mode = self.spatial_padding_mode
        for field, value, allowed in (
            ("spatial_padding_mode", self.spatial_padding_mode, PADDING_MODES),
            ("decoder_spatial_padding_mode", self.decoder_spatial_padding_mode, PADDING_MODES),
            ("shortcut_norm", self.shortcut_norm, SHORTCUT_NORMS),
            ("latent_log_var", self.latent_log_var, LOG_VARIANCE_MODES),
        ):
            if value not in allowed:
                raise ValueError(f"VAE config: {field} must be one of {allowed}, got {value!r}")
        if self.patch_size < 1 or self.patch_size & (self.patch_size - 1):
            raise ValueError(f"VAE config: patch_size must be a power of 2, got {self.patch_size}")
        if self.decoder_factors != (self.temporal_factor, self.spatial_factor):
            raise ValueError(
                f"VAE config: encoder compresses (time, space) by {(self.temporal_factor, self.spatial_factor)} "
                f"but the decoder expands by {self.decoder_factors}"
            )

    @property
    def spatial_factor(self) -> int:
        """Pixels per latent voxel along height and width (32 for all released VAEs)."""
        strides = [compress_stride(n)[1] for n, _ in self.encoder_blocks if n.startswith("compress")]
        return self.patch_size * math.prod(strides)

    @property
    def temporal_factor(self) -> int:
        """Pixel frames per latent frame after the first (8 for all released VAEs)."""
        return math.prod(compress_stride(n)[0] for n, _ in self.encoder_blocks if n.startswith("compress"))

    @property
    def decoder_factors(self) -> tuple[int, int]:
        strides = [compress_stride(n) for n, _ in self.decoder_blocks if n.startswith("compress")]
        return math.prod(s[0] for s in strides), self.patch_size * math.prod(s[1] for s in strides)

    @classmethod
    def from_metadata(cls, d: dict) -> "VAEConfig":
        """Official "vae" metadata dict (CausalVideoAutoencoder config) -> VAEConfig.

        Accepts the legacy shared `blocks` list (0.9.0) or encoder_blocks + decoder_blocks. Values the released
        VAEs do not use (other norms, log-variance modes, quant convs, 2D dims) raise ValueError.
        """
        if not isinstance(d, dict):
            raise ValueError(f"VAE config: expected a dict, got {type(d).__name__}")
        expected = {
            "_class_name": "CausalVideoAutoencoder",
            "dims": 3,
            "norm_layer": "pixel_norm",
            "latent_log_var": "uniform",
            "use_quant_conv": False,
            "normalize_latent_channels": False,
        }
        for key, value in expected.items():
            found = d.get(key, value)
            if isinstance(found, list):
                found = tuple(found)
            if found != value:
                raise ValueError(f"VAE config: unsupported {key}={found!r}; this implementation supports {value!r}")
        if d.get("double_z", True) is not True:
            raise ValueError(f"VAE config: unsupported double_z={d['double_z']!r}; supported: true")
        if "encoder_blocks" in d or "decoder_blocks" in d:
            if "encoder_blocks" not in d or "decoder_blocks" not in d:
                raise ValueError("VAE config: encoder_blocks and decoder_blocks must be given together")
            encoder_blocks, decoder_blocks = d["encoder_blocks"], d["decoder_blocks"]
        elif "blocks" in d:
            encoder_blocks = decoder_blocks = d["blocks"]
        else:
            raise ValueError("VAE config: needs 'blocks' or 'encoder_blocks' + 'decoder_blocks'")
        for name, params in decoder_blocks:
            if (
                name in ("compress_time", "compress_space")
                and isinstance(params, dict)
                and params.get("multiplier", 1) != 1
            ):
                raise ValueError(
                    f"VAE config: 0.9.x decoder block {name!r} does not support a channel multiplier, got {params!r}"
                )
        return cls(
            encoder_blocks=encoder_blocks,
            decoder_blocks=decoder_blocks,
            in_channels=int(d.get("in_channels", 3)),
            out_channels=int(d.get("out_channels", 3)),
            latent_channels=int(d["latent_channels"]),
            patch_size=int(d.get("patch_size", 1)),
            encoder_base_channels=int(d.get("encoder_base_channels", 128)),
            decoder_base_channels=int(d.get("decoder_base_channels", 128)),
            timestep_conditioning=bool(d.get("timestep_conditioning", False)),
            causal_decoder=bool(d.get("causal_decoder", False)),
            spatial_padding_mode=d.get("spatial_padding_mode", "zeros"),
        )

    def to_metadata(self) -> dict:
        """The official "vae" metadata dict for this config (what save_checkpoint writes)."""
        return {
            "_class_name": "CausalVideoAutoencoder",
            "dims": 3,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "latent_channels": self.latent_channels,
            "encoder_blocks": [[name, dict(params)] for name, params in self.encoder_blocks],
            "decoder_blocks": [[name, dict(params)] for name, params in self.decoder_blocks],
            "scaling_factor": 1.0,
            "norm_layer": "pixel_norm",
            "patch_size": self.patch_size,
            "latent_log_var": "uniform",
            "use_quant_conv": False,
            "causal_decoder": self.causal_decoder,
            "timestep_conditioning": self.timestep_conditioning,
            "encoder_base_channels": self.encoder_base_channels,
            "decoder_base_channels": self.decoder_base_channels,
            "spatial_padding_mode": self.spatial_padding_mode,
        }

    @classmethod
    def v0_9_0(cls, **overrides) -> "VAEConfig":
        """0.9.0: shared block list, plain decoder (no timestep conditioning)."""
        blocks = [
            ["res_x", 4],
            ["compress_all", 1],
            ["res_x_y", 1],
            ["res_x", 3],
            ["compress_all", 1],
            ["res_x_y", 1],
            ["res_x", 3],
            ["compress_all", 1],
            ["res_x", 3],
            ["res_x", 4],
        ]
        return cls(**{"encoder_blocks": blocks, "decoder_blocks": blocks, **overrides})

    @classmethod
    def v0_9_1(cls, **overrides) -> "VAEConfig":
        """0.9.1: 0.9.0 encoder, wider timestep-conditioned decoder with noise injection."""
        up = ["compress_all", {"residual": True, "multiplier": 2}]
        decoder = [
            ["res_x", {"num_layers": 5, "inject_noise": True}],
            up,
            ["res_x", {"num_layers": 6, "inject_noise": True}],
            up,
            ["res_x", {"num_layers": 7, "inject_noise": True}],
            up,
            ["res_x", {"num_layers": 8, "inject_noise": False}],
        ]
        return cls(
            **{
                "encoder_blocks": cls.v0_9_0().encoder_blocks,
                "decoder_blocks": decoder,
                "timestep_conditioning": True,
                **overrides,
            }
        )

    @classmethod
    def v0_9_5(cls, **overrides) -> "VAEConfig":
        """0.9.5 and later (0.9.6, 0.9.7, 0.9.8): residual space/time-to-depth encoder, conditioned decoder."""
        two = {"multiplier": 2}
        encoder = [
            ["res_x", 4],
            ["compress_space_res", two],
            ["res_x", 6],
            ["compress_time_res", two],
            ["res_x", 6],
            ["compress_all_res", two],
            ["res_x", 2],
            ["compress_all_res", two],
            ["res_x", 2],
        ]
        up = ["compress_all", {"residual": True, "multiplier": 2}]
        res = ["res_x", {"num_layers": 5, "inject_noise": False}]
        decoder = [res, up, res, up, res, up, res]
        return cls(**{"encoder_blocks": encoder, "decoder_blocks": decoder, "timestep_conditioning": True, **overrides})
