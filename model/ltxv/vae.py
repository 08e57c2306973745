"""Causal video VAE of LTX-Video 0.9.x (all three generations: 0.9.0, 0.9.1, 0.9.5+).

Video (B, 3, F, H, W) in [-1, 1], F = 8k + 1, H and W multiples of 32
  -> patchify 4x4 into channels (order c, w-sub, h-sub)            (B, 48, F, H/4, W/4)
  -> causal 3D conv encoder (res blocks, stride-2 compressions)    (B, 129, f, h, w), f = (F - 1)/8 + 1, h = H/32
  -> 128 means + 1 shared log-variance                             raw latent (B, 128, f, h, w)
Decoding mirrors it with depth-to-space upsampling; 0.9.1+ decoders are conditioned on a decode timestep and
0.9.1 decoders add learned-scale spatial noise after each conv ("noise injection").

Every convolution of the VAE is a CausalConv3d: kernel 3, spatial padding 1 (zeros/reflect/replicate as the
config says), temporal padding by replicating frames (2 copies of the first frame in causal mode, one copy of the
first and one of the last frame in non-causal mode). The encoder is always causal, the decoder uses
`causal_decoder` (False for all released files). All norms are PixelNorm (per-voxel RMS over channels), so the
network has no global statistics: every output voxel depends on a bounded neighbourhood of the input, which is
what makes tiled decoding (vae_tiling.py) possible.

State-dict keys are the official single-file keys with the "vae." prefix stripped, including the five
per_channel_statistics buffers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..blocks.timestep import TimestepEmbedding

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


# ----------------------------------------------------------------------------------------------------------------
# Layout helpers


def patchify_video(video: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, F, H, W) -> (B, C*p*p, F, H/p, W/p), channel index c*p*p + w_sub*p + h_sub (width sub-index first)."""
    b, c, f, h, w = video.shape
    x = video.reshape(b, c, f, h // patch_size, patch_size, w // patch_size, patch_size)
    # (b, c, f, h, q, w, r) -> (b, c, r, q, f, h, w)
    x = x.permute(0, 1, 6, 4, 2, 3, 5)
    return x.reshape(b, c * patch_size * patch_size, f, h // patch_size, w // patch_size)


def unpatchify_video(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Inverse of patchify_video: (B, C*p*p, F, h, w) -> (B, C, F, h*p, w*p)."""
    b, cpp, f, h, w = x.shape
    c = cpp // (patch_size * patch_size)
    x = x.reshape(b, c, patch_size, patch_size, f, h, w)  # (b, c, r, q, f, h, w)
    x = x.permute(0, 1, 4, 5, 3, 6, 2)  # (b, c, f, h, q, w, r)
    return x.reshape(b, c, f, h * patch_size, w * patch_size)


def space_to_depth(x: torch.Tensor, stride: tuple[int, int, int]) -> torch.Tensor:
    """(B, C, F*s0, H*s1, W*s2) -> (B, C*s0*s1*s2, F, H, W), channel index ((c*s0 + t)*s1 + y)*s2 + x."""
    b, c, f, h, w = x.shape
    s0, s1, s2 = stride
    x = x.reshape(b, c, f // s0, s0, h // s1, s1, w // s2, s2)
    x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)
    return x.reshape(b, c * s0 * s1 * s2, f // s0, h // s1, w // s2)


def depth_to_space(x: torch.Tensor, stride: tuple[int, int, int]) -> torch.Tensor:
    """Inverse of space_to_depth: (B, C*s0*s1*s2, F, H, W) -> (B, C, F*s0, H*s1, W*s2)."""
    b, cs, f, h, w = x.shape
    s0, s1, s2 = stride
    c = cs // (s0 * s1 * s2)
    x = x.reshape(b, c, s0, s1, s2, f, h, w)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(b, c, f * s0, h * s1, w * s2)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-voxel RMS normalization over channels (dim 1), no parameters."""
    return x / torch.sqrt(torch.mean(x * x, dim=1, keepdim=True) + eps)


# ----------------------------------------------------------------------------------------------------------------
# Building blocks


class CausalConv3d(nn.Module):
    """3x3x3 conv, spatial padding 1 by `padding_mode`, temporal padding by replicating edge frames."""

    def __init__(self, in_channels: int, out_channels: int, stride=1, padding_mode: str = "zeros"):
        super().__init__()
        self.conv = nn.Conv3d(
            in_channels, out_channels, kernel_size=3, stride=stride, padding=(0, 1, 1), padding_mode=padding_mode
        )

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        first = x[:, :, :1]
        if causal:
            x = torch.cat([first, first, x], dim=2)  # (B, C, F+2, H, W)
        else:
            x = torch.cat([first, x, x[:, :, -1:]], dim=2)
        return self.conv(x)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel dim of (B, C, F, H, W) (keys norm3.norm.*)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


class DecoderNoise:
    """Spatial noise maps for decoder noise injection (0.9.1): one (H, W) map per draw.

    With a generator the maps are drawn on the generator's device in fp32 and moved; without one they come from
    the global RNG on the activation's device and dtype (as the reference implementation does).
    """

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator

    def draw(self, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
        if self.generator is None:
            return torch.randn((height, width), device=like.device, dtype=like.dtype)
        noise = torch.randn((height, width), generator=self.generator, device=self.generator.device)
        return noise.to(like.device, like.dtype)


class ResnetBlock3D(nn.Module):
    """PixelNorm -> [ada] -> SiLU -> conv1 -> [noise] -> PixelNorm -> [ada] -> SiLU -> conv2 -> [noise] + shortcut.

    When channels change the shortcut is norm3 + 1x1x1 conv (conv_shortcut); norm3 is a LayerNorm over channels
    ("layer_norm", 0.9.x) or a one-group GroupNorm over (C, F, H, W) ("group_norm", LTX-2).
    `ada` (B, 4*C) from the block's time embedder is added to scale_shift_table (4, C): shift1, scale1, shift2,
    scale2. Noise is one (H, W) map per conv shared by batch, frames and channels, scaled by per_channel_scale.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        padding_mode: str,
        timestep_conditioning: bool = False,
        inject_noise: bool = False,
        shortcut_norm: str = "layer_norm",
    ):
        super().__init__()
        self.conv1 = CausalConv3d(in_channels, out_channels, padding_mode=padding_mode)
        self.conv2 = CausalConv3d(out_channels, out_channels, padding_mode=padding_mode)
        self.inject_noise = inject_noise
        if inject_noise:
            self.per_channel_scale1 = nn.Parameter(torch.zeros(in_channels, 1, 1))
            self.per_channel_scale2 = nn.Parameter(torch.zeros(in_channels, 1, 1))
        if in_channels != out_channels:
            if shortcut_norm == "group_norm":
                self.norm3 = nn.GroupNorm(1, in_channels, eps=1e-6)
            else:
                self.norm3 = ChannelLayerNorm(in_channels)
            self.conv_shortcut = nn.Conv3d(in_channels, out_channels, kernel_size=1)
        self.timestep_conditioning = timestep_conditioning
        if timestep_conditioning:
            self.scale_shift_table = nn.Parameter(torch.randn(4, in_channels) / in_channels**0.5)

    def _add_noise(self, h: torch.Tensor, scale: torch.Tensor, noise: DecoderNoise) -> torch.Tensor:
        spatial = noise.draw(h.shape[-2], h.shape[-1], like=h)  # (H, W)
        return h + (spatial[None] * scale)[None, :, None]  # (1, C, 1, H, W)

    def forward(
        self, x: torch.Tensor, causal: bool = True, ada: torch.Tensor | None = None, noise: DecoderNoise | None = None
    ) -> torch.Tensor:
        h = pixel_norm(x)
        if self.timestep_conditioning:
            # (B, 4*C) + (4, C) -> 4 x (B, C, 1, 1, 1)
            values = self.scale_shift_table[None] + ada.reshape(x.shape[0], 4, -1)
            shift1, scale1, shift2, scale2 = values[..., None, None, None].unbind(dim=1)
            h = h * (1 + scale1) + shift1
        h = self.conv1(F.silu(h), causal=causal)
        if self.inject_noise:
            h = self._add_noise(h, self.per_channel_scale1, noise)
        h = pixel_norm(h)
        if self.timestep_conditioning:
            h = h * (1 + scale2) + shift2
        h = self.conv2(F.silu(h), causal=causal)
        if self.inject_noise:
            h = self._add_noise(h, self.per_channel_scale2, noise)
        if hasattr(self, "conv_shortcut"):
            x = self.conv_shortcut(self.norm3(x))
        return x + h


class ResBlockStack(nn.Module):
    """`res_x` block: num_layers same-width ResnetBlock3D; with timestep conditioning one shared time_embedder."""

    def __init__(
        self,
        channels: int,
        num_layers: int,
        padding_mode: str,
        timestep_conditioning: bool = False,
        inject_noise: bool = False,
    ):
        super().__init__()
        if timestep_conditioning:
            self.time_embedder = TimestepEmbedding(4 * channels)
        self.res_blocks = nn.ModuleList(
            ResnetBlock3D(channels, channels, padding_mode, timestep_conditioning, inject_noise)
            for _ in range(num_layers)
        )

    def forward(
        self,
        x: torch.Tensor,
        causal: bool = True,
        scaled_timestep: torch.Tensor | None = None,
        noise: DecoderNoise | None = None,
    ) -> torch.Tensor:
        ada = None
        if hasattr(self, "time_embedder"):
            ada = self.time_embedder(scaled_timestep, x.dtype)  # (B, 4*C)
        for block in self.res_blocks:
            x = block(x, causal=causal, ada=ada, noise=noise)
        return x


class SpaceToDepthDownsample(nn.Module):
    """Residual downsample: space_to_depth(conv(x)) + group-mean of space_to_depth(x).

    With temporal stride 2 the first frame is duplicated first, so F -> (F + 1) / 2.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: tuple[int, int, int], padding_mode: str):
        super().__init__()
        self.stride = stride
        self.group_size = in_channels * math.prod(stride) // out_channels
        self.conv = CausalConv3d(in_channels, out_channels // math.prod(stride), padding_mode=padding_mode)

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        if self.stride[0] == 2:
            x = torch.cat([x[:, :, :1], x], dim=2)
        shortcut = space_to_depth(x, self.stride)  # (B, C_in*s, F', H', W')
        b, c, f, h, w = shortcut.shape
        shortcut = shortcut.reshape(b, c // self.group_size, self.group_size, f, h, w).mean(dim=2)
        return space_to_depth(self.conv(x, causal=causal), self.stride) + shortcut


class DepthToSpaceUpsample(nn.Module):
    """Upsample: depth_to_space(conv(x)) [+ channel-tiled depth_to_space(x) when residual].

    With temporal stride 2 the first output frame is dropped, so F -> 2F - 1.
    """

    def __init__(
        self,
        in_channels: int,
        stride: tuple[int, int, int],
        padding_mode: str,
        residual: bool = False,
        reduction: int = 1,
    ):
        super().__init__()
        self.stride = stride
        self.residual = residual
        self.repeats = math.prod(stride) // reduction
        self.conv = CausalConv3d(in_channels, math.prod(stride) * in_channels // reduction, padding_mode=padding_mode)

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        skip = self.stride[0] == 2
        out = depth_to_space(self.conv(x, causal=causal), self.stride)[:, :, int(skip) :]
        if self.residual:
            shortcut = depth_to_space(x, self.stride).repeat(1, self.repeats, 1, 1, 1)
            out = out + shortcut[:, :, int(skip) :]
        return out


# ----------------------------------------------------------------------------------------------------------------
# Encoder and decoder


class Encoder(nn.Module):
    """(B, 3, F, H, W) -> (B, 2*latent_channels, f, h, w) = [means, uniform log-variance repeated]."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        pad = config.spatial_padding_mode
        self.patch_size = config.patch_size
        self.latent_log_var = config.latent_log_var
        channels = config.encoder_base_channels
        self.conv_in = CausalConv3d(config.in_channels * config.patch_size**2, channels, padding_mode=pad)
        self.down_blocks = nn.ModuleList()
        for name, params in config.encoder_blocks:
            if name == "res_x":
                block = ResBlockStack(channels, params["num_layers"], pad)
            elif name == "res_x_y":
                out = channels * params.get("multiplier", 2)
                block, channels = ResnetBlock3D(channels, out, pad, shortcut_norm=config.shortcut_norm), out
            elif name.endswith("_res"):
                out = channels * params.get("multiplier", 2)
                block, channels = SpaceToDepthDownsample(channels, out, compress_stride(name), pad), out
            else:  # compress_time / compress_space / compress_all / compress_all_x_y: strided causal conv
                out = channels * params.get("multiplier", 2) if name == "compress_all_x_y" else channels
                block, channels = CausalConv3d(channels, out, stride=compress_stride(name), padding_mode=pad), out
            self.down_blocks.append(block)
        self.conv_out = CausalConv3d(channels, config.latent_channels + 1, padding_mode=pad)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(patchify_video(video, self.patch_size))
        for block in self.down_blocks:
            x = block(x)
        x = self.conv_out(F.silu(pixel_norm(x)))  # (B, latent_channels + 1, f, h, w)
        means, logvar = x[:, :-1], x[:, -1:]
        if self.latent_log_var == "constant":
            logvar = torch.full_like(logvar, -30.0)
        return torch.cat([means, logvar.expand_as(means)], dim=1)


class Decoder(nn.Module):
    """Raw latent (B, latent_channels, f, h, w) -> video (B, 3, 8(f-1)+1, 32h, 32w)."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        pad = config.decoder_spatial_padding_mode
        self.patch_size = config.patch_size
        self.causal = config.causal_decoder
        self.timestep_conditioning = config.timestep_conditioning
        blocks = list(reversed(config.decoder_blocks))
        channels = config.decoder_base_channels
        for name, params in blocks:
            if name == "res_x_y":
                channels *= params.get("multiplier", 2)
            elif name.startswith("compress"):
                channels *= params.get("multiplier", 1)
        self.conv_in = CausalConv3d(config.latent_channels, channels, padding_mode=pad)
        self.up_blocks = nn.ModuleList()
        for name, params in blocks:
            if name == "res_x":
                block = ResBlockStack(
                    channels, params["num_layers"], pad, config.timestep_conditioning, params.get("inject_noise", False)
                )
            elif name == "res_x_y":
                out = channels // params.get("multiplier", 2)
                noise = params.get("inject_noise", False)
                block = ResnetBlock3D(channels, out, pad, inject_noise=noise, shortcut_norm=config.shortcut_norm)
                channels = out
            else:
                reduction = params.get("multiplier", 1)
                block = DepthToSpaceUpsample(
                    channels, compress_stride(name), pad, params.get("residual", False), reduction
                )
                channels //= reduction
            self.up_blocks.append(block)
        self.conv_out = CausalConv3d(channels, config.out_channels * config.patch_size**2, padding_mode=pad)
        if config.timestep_conditioning:
            self.timestep_scale_multiplier = nn.Parameter(torch.tensor(1000.0))
            self.last_time_embedder = TimestepEmbedding(2 * channels)
            self.last_scale_shift_table = nn.Parameter(torch.randn(2, channels) / channels**0.5)

    def forward(
        self, z: torch.Tensor, timestep: torch.Tensor | None = None, noise: DecoderNoise | None = None
    ) -> torch.Tensor:
        """z (B, C, f, h, w) in the decoder's dtype; timestep (B,) float when timestep-conditioned."""
        noise = noise or DecoderNoise()
        x = self.conv_in(z, causal=self.causal)
        scaled_timestep = None
        if self.timestep_conditioning:
            scaled_timestep = timestep.float() * self.timestep_scale_multiplier.float()  # (B,)
        for block in self.up_blocks:
            if isinstance(block, ResBlockStack):
                x = block(x, causal=self.causal, scaled_timestep=scaled_timestep, noise=noise)
            elif isinstance(block, ResnetBlock3D):
                x = block(x, causal=self.causal, noise=noise)
            else:
                x = block(x, causal=self.causal)
        x = pixel_norm(x)
        if self.timestep_conditioning:
            embedded = self.last_time_embedder(scaled_timestep, x.dtype).reshape(x.shape[0], 2, -1)  # (B, 2, C)
            shift, scale = (self.last_scale_shift_table[None] + embedded)[..., None, None, None].unbind(dim=1)
            x = x * (1 + scale) + shift
        x = self.conv_out(F.silu(x), causal=self.causal)
        return unpatchify_video(x, self.patch_size)


class PerChannelStatistics(nn.Module):
    """The five per-channel latent statistics of the official files; only mean-of-means and std-of-means are used."""

    def __init__(self, channels: int):
        super().__init__()
        for name in STATISTICS_NAMES:
            initial = (
                torch.arange(channels, dtype=torch.float32)
                if name == "channel"
                else (torch.zeros(channels) if name == "mean-of-means" else torch.ones(channels))
            )
            self.register_buffer(name, initial)

    def mean(self) -> torch.Tensor:
        return getattr(self, "mean-of-means")

    def std(self) -> torch.Tensor:
        return getattr(self, "std-of-means")


class CausalVideoVAE(nn.Module):
    """LTX-Video causal video VAE (encoder, decoder, per-channel latent statistics)."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.per_channel_statistics = PerChannelStatistics(config.latent_channels)

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.conv_in.conv.weight.dtype

    def _check_video(self, video: torch.Tensor):
        c = self.config
        if (
            video.ndim != 5
            or video.shape[1] != c.in_channels
            or (video.shape[2] - 1) % c.temporal_factor
            or video.shape[3] % c.spatial_factor
            or video.shape[4] % c.spatial_factor
        ):
            raise ValueError(
                f"VAE encode: video must be (B, {c.in_channels}, F, H, W) with F = {c.temporal_factor}k+1 and H, W "
                f"multiples of {c.spatial_factor}; got shape {tuple(video.shape)}"
            )

    def encode(
        self, video: torch.Tensor, generator: torch.Generator | None = None, sample: bool = False
    ) -> torch.Tensor:
        """video (B, 3, F, H, W) in [-1, 1] -> raw latent (B, C, (F-1)/8+1, H/32, W/32) in the video's dtype.

        Returns the posterior mean, or mean + std * N(0, 1) when sample=True (generator: drawn in fp32 on the
        generator's device; otherwise the global RNG on the latent's device, as the reference does).
        """
        self._check_video(video)
        moments = self.encoder(video.to(self.dtype))
        mean, logvar = moments.chunk(2, dim=1)
        if sample:
            std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
            if generator is None:
                eps = torch.randn(mean.shape, device=mean.device, dtype=mean.dtype)
            else:
                eps = torch.randn(mean.shape, generator=generator, device=generator.device).to(mean)
            mean = mean + std * eps
        return mean.to(video.dtype)

    def decoder_timestep(self, timestep, batch: int, device) -> torch.Tensor | None:
        """float / 0-dim / (B,) timestep -> (B,) fp32 tensor; None for decoders without timestep conditioning."""
        if not self.config.timestep_conditioning:
            return None
        if timestep is None:
            raise ValueError(
                "VAE decode: this decoder is timestep-conditioned (0.9.1+); pass timestep= "
                "(the decode timestep, e.g. 0.05)"
            )
        t = torch.as_tensor(timestep, dtype=torch.float32, device=device).flatten()
        if t.numel() == 1:
            t = t.expand(batch)
        if t.numel() != batch:
            raise ValueError(
                f"VAE decode: timestep must be a float or have {batch} values (one per sample), got {t.numel()}"
            )
        return t

    def _check_latent(self, raw: torch.Tensor):
        if raw.ndim != 5 or raw.shape[1] != self.config.latent_channels:
            raise ValueError(
                f"VAE decode: latent must be (B, {self.config.latent_channels}, f, h, w), got shape {tuple(raw.shape)}"
            )

    def decode(self, raw: torch.Tensor, timestep=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """raw latent (B, C, f, h, w) -> video (B, 3, 8(f-1)+1, 32h, 32w), about [-1, 1], in raw's dtype.

        timestep: decode timestep (float or (B,) tensor), required by timestep-conditioned decoders (0.9.1+),
        ignored otherwise. generator: source of the 0.9.1 decoder noise (global RNG when None).
        """
        self._check_latent(raw)
        t = self.decoder_timestep(timestep, raw.shape[0], raw.device)
        return self.decoder(raw.to(self.dtype), t, DecoderNoise(generator)).to(raw.dtype)

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw latent -> per-channel normalized latent (what the DiT sees): (z - mean) / std."""
        mean = self.per_channel_statistics.mean().to(raw).view(1, -1, 1, 1, 1)
        std = self.per_channel_statistics.std().to(raw).view(1, -1, 1, 1, 1)
        return (raw - mean) / std

    def denormalize(self, norm: torch.Tensor) -> torch.Tensor:
        """Inverse of normalize: z * std + mean."""
        mean = self.per_channel_statistics.mean().to(norm).view(1, -1, 1, 1, 1)
        std = self.per_channel_statistics.std().to(norm).view(1, -1, 1, 1, 1)
        return norm * std + mean
