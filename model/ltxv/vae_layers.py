"""Layers of the causal video VAE (vae.py): layout helpers (patchify, space/depth), the causal 3D convolution,
pixel and channel norms, 0.9.1 decoder noise injection, residual blocks and the compressing down/upsamplers."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..blocks.timestep import TimestepEmbedding

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
