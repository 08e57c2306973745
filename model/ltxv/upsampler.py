"""Latent upsampler of LTX-Video 0.9.7/0.9.8 (multi-scale pipeline): raw VAE latents at 2x the spatial size.

(B, 128, F, H, W) -> Conv3d 128->512 -> GroupNorm(32) -> SiLU -> 4 ResBlocks -> upsample -> 4 ResBlocks
-> Conv3d 512->128 -> (B, 128, F, 2H, 2W).
The spatial upsample is a per-frame Conv2d (512 -> 4*512) and a 2x2 pixel shuffle; the temporal variant is a
Conv3d (512 -> 2*512) and a 2x shuffle along time with the first frame dropped (F -> 2F - 1); both together use a
Conv3d (512 -> 8*512) and a 2x2x2 shuffle, also dropping the first frame. All convolutions pad with zeros
(not causal). It works on un-normalized (raw) latents.

LTX-2 uses the same network (spatial x2, temporal x2) and adds a rational spatial resampler (x1.5 in 2.3,
`rational_resampler`): per frame, Conv2d (mid -> num^2 * mid), num x num pixel shuffle, then a fixed 5x5 binomial
blur with stride den (scale = num / den; the blur kernel is a buffer stored in the file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .vae_layers import depth_to_space

RATIONAL_SCALES = {0.75: (3, 4), 1.5: (3, 2), 2.0: (2, 1), 4.0: (4, 1)}  # scale -> (up, down)
BLUR_KERNEL_SIZE = 5


@dataclass
class UpsamplerConfig:
    """Fields as in the upsampler file's metadata "config" (defaults: the 0.9.7/0.9.8 spatial upsampler)."""

    in_channels: int = 128
    mid_channels: int = 512
    num_blocks_per_stage: int = 4
    spatial_upsample: bool = True
    temporal_upsample: bool = False
    spatial_scale: float = 2.0
    rational_resampler: bool = False

    def __post_init__(self):
        if not (self.spatial_upsample or self.temporal_upsample):
            raise ValueError("Upsampler config: one of spatial_upsample or temporal_upsample must be true")
        self.spatial_scale = float(self.spatial_scale)
        if self.rational_resampler:
            if self.temporal_upsample or not self.spatial_upsample:
                raise ValueError("Upsampler config: rational_resampler needs spatial_upsample and no temporal_upsample")
            if self.spatial_scale not in RATIONAL_SCALES:
                raise ValueError(
                    f"Upsampler config: spatial_scale {self.spatial_scale} is not supported by the rational "
                    f"resampler; supported: {sorted(RATIONAL_SCALES)}"
                )
        elif self.spatial_scale != 2.0:
            raise ValueError(
                f"Upsampler config: spatial_scale {self.spatial_scale} needs rational_resampler=true "
                "(the pixel-shuffle upsampler is x2 only)"
            )
        if self.mid_channels % 32:
            raise ValueError(
                f"Upsampler config: mid_channels must be a multiple of 32 (GroupNorm with 32 groups), "
                f"got {self.mid_channels}"
            )

    @classmethod
    def from_metadata(cls, d: dict) -> "UpsamplerConfig":
        """Official LatentUpsampler config dict -> UpsamplerConfig (only dims 3 is supported)."""
        if d.get("_class_name", "LatentUpsampler") != "LatentUpsampler":
            raise ValueError(f"Upsampler config: _class_name must be 'LatentUpsampler', got {d['_class_name']!r}")
        if d.get("dims", 3) != 3:
            raise ValueError(f"Upsampler config: only dims=3 is supported, got dims={d['dims']!r}")
        return cls(
            in_channels=int(d.get("in_channels", 128)),
            mid_channels=int(d.get("mid_channels", 512)),
            num_blocks_per_stage=int(d.get("num_blocks_per_stage", 4)),
            spatial_upsample=bool(d.get("spatial_upsample", True)),
            temporal_upsample=bool(d.get("temporal_upsample", False)),
            spatial_scale=float(d.get("spatial_scale", 2.0)),
            rational_resampler=bool(d.get("rational_resampler", False)),
        )

    def to_metadata(self) -> dict:
        rational = {"spatial_scale": self.spatial_scale, "rational_resampler": True} if self.rational_resampler else {}
        return rational | {
            "_class_name": "LatentUpsampler",
            "in_channels": self.in_channels,
            "mid_channels": self.mid_channels,
            "num_blocks_per_stage": self.num_blocks_per_stage,
            "dims": 3,
            "spatial_upsample": self.spatial_upsample,
            "temporal_upsample": self.temporal_upsample,
        }


class UpsamplerResBlock(nn.Module):
    """conv1 -> GroupNorm -> SiLU -> conv2 -> GroupNorm -> SiLU(x + residual)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, kernel_size=3, padding=1)
        self.norm1 = nn.GroupNorm(32, channels)
        self.conv2 = nn.Conv3d(channels, channels, kernel_size=3, padding=1)
        self.norm2 = nn.GroupNorm(32, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(self.conv1(x)))
        return F.silu(self.norm2(self.conv2(h)) + x)


class BlurDownsample(nn.Module):
    """Depthwise 5x5 binomial blur ([1, 4, 6, 4, 1] outer product, normalized) with stride, zero padding 2."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride
        taps = torch.tensor([math.comb(BLUR_KERNEL_SIZE - 1, k) for k in range(BLUR_KERNEL_SIZE)], dtype=torch.float32)
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("kernel", (kernel / kernel.sum())[None, None])  # (1, 1, 5, 5)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return frames
        c = frames.shape[1]
        weight = self.kernel.to(frames.dtype).expand(c, 1, BLUR_KERNEL_SIZE, BLUR_KERNEL_SIZE)
        return F.conv2d(frames, weight, stride=self.stride, padding=BLUR_KERNEL_SIZE // 2, groups=c)


class RationalResampler(nn.Module):
    """Per-frame spatial scale by up/down: Conv2d (C -> up^2 C), pixel shuffle by up, blur-downsample by down."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        self.up, down = RATIONAL_SCALES[scale]
        self.conv = nn.Conv2d(channels, self.up * self.up * channels, kernel_size=3, padding=1)
        self.blur_down = BlurDownsample(down)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H * up / down, W * up / down) (blur output rounded up for odd sizes)."""
        return self.blur_down(F.pixel_shuffle(self.conv(frames), self.up))


class LatentUpsampler(nn.Module):
    """Raw latent (B, C, F, H, W) -> raw latent (B, C, F', 2H, 2W) (spatial) / (B, C, 2F-1, H, W) (temporal)."""

    def __init__(self, config: UpsamplerConfig):
        super().__init__()
        self.config = config
        c, mid = config.in_channels, config.mid_channels
        self.initial_conv = nn.Conv3d(c, mid, kernel_size=3, padding=1)
        self.initial_norm = nn.GroupNorm(32, mid)
        self.res_blocks = nn.ModuleList(UpsamplerResBlock(mid) for _ in range(config.num_blocks_per_stage))
        if config.temporal_upsample:
            self.stride = (2, 2, 2) if config.spatial_upsample else (2, 1, 1)
            self.upsampler = nn.Sequential(nn.Conv3d(mid, mid * (8 if config.spatial_upsample else 2), 3, padding=1))
        elif config.rational_resampler:
            self.upsampler = RationalResampler(mid, config.spatial_scale)
        else:
            self.stride = (1, 2, 2)
            self.upsampler = nn.Sequential(nn.Conv2d(mid, 4 * mid, kernel_size=3, padding=1))
        self.post_upsample_res_blocks = nn.ModuleList(
            UpsamplerResBlock(mid) for _ in range(config.num_blocks_per_stage)
        )
        self.final_conv = nn.Conv3d(mid, c, kernel_size=3, padding=1)

    @property
    def dtype(self) -> torch.dtype:
        return self.initial_conv.weight.dtype

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.ndim != 5 or latent.shape[1] != self.config.in_channels:
            raise ValueError(
                f"LatentUpsampler: latent must be (B, {self.config.in_channels}, F, H, W), "
                f"got shape {tuple(latent.shape)}"
            )
        x = F.silu(self.initial_norm(self.initial_conv(latent.to(self.dtype))))
        for block in self.res_blocks:
            x = block(x)
        if self.config.temporal_upsample:
            x = depth_to_space(self.upsampler(x), self.stride)[:, :, 1:]  # drop the first frame: F -> 2F - 1
        elif self.config.rational_resampler:
            b, c, f, h, w = x.shape
            frames = self.upsampler(x.transpose(1, 2).reshape(b * f, c, h, w))  # (B*F, C, H', W')
            x = frames.reshape(b, f, c, *frames.shape[-2:]).transpose(1, 2)
        else:
            b, c, f, h, w = x.shape
            frames = x.transpose(1, 2).reshape(b * f, c, h, w)  # per-frame 2D conv
            frames = self.upsampler(frames).reshape(b, f, 4 * c, h, w).transpose(1, 2)  # (B, 4C, F, H, W)
            x = depth_to_space(frames, self.stride)
        for block in self.post_upsample_res_blocks:
            x = block(x)
        return self.final_conv(x).to(latent.dtype)
