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

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..blocks.timestep import TimestepEmbedding
from .vae_config import STATISTICS_NAMES, VAEConfig, compress_stride
from .vae_layers import (
    CausalConv3d,
    DecoderNoise,
    DepthToSpaceUpsample,
    ResBlockStack,
    ResnetBlock3D,
    SpaceToDepthDownsample,
    patchify_video,
    pixel_norm,
    unpatchify_video,
)

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
