"""Keyframe conditioning: turn a noise latent plus keyframe latents into the token sequence the sampler denoises.

Rules (official LTX-Video 0.9.5+ conditioning items; strength s in [0, 1]):
  * keyframe at pixel frame 0 (image or clip of f latent frames): written in place into latent frames [0, f):
    lerp(noise, keyframe, s); those tokens get mask s.
  * single image at pixel frame k > 0 (any k): extra tokens lerp(fresh noise, keyframe, s), temporal pixel
    coordinate k (the image's own coordinate is 0 with or without the causal fix, then + k), mask s.
  * clip at pixel frame k > 0 (k % t == 0, t = the VAE's temporal factor, 8 for LTX-Video; f >= 2 latent frames):
    latent frames j >= 2 are written in place at latent frame k/t + j; the first two latent frames (the single-frame
    latent of the causal encoder and the next one) become extra tokens with temporal pixel coordinates k + (0, 1)
    with the causal fix, k + (0, t) without.
  * Extra tokens are PREPENDED before the video tokens (as the official pipeline and diffusers'
    LTXConditionPipeline do; ComfyUI's LTXVAddGuide appends them instead). Self-attention is unmasked and RoPE is
    position-based, so the order only changes floating-point summation order; prepending keeps us bit-comparable
    with the official code. ComfyUI also gives clip prefixes non-causal coordinates (k, k+t); we follow the official
    causal rule when the checkpoint enables causal_temporal_positioning.
  * The sampler removes the extra tokens after the last step.

Random draws: one fresh noise tensor per extra-token keyframe, shaped like its prefix latent (b, C, f', h, w), drawn
from the sampler's CPU generator in keyframe order right after the initial noise (the official order).
"""

from dataclasses import dataclass
from typing import Sequence

import torch

from .geometry import LTXV_GEOMETRY, VideoGeometry
from .ltxv.positions import patchify, video_coords

CLIP_PREFIX_LATENT_FRAMES = 2


@dataclass
class Keyframe:
    """latent: (B or 1, C, f, h, w) NORMALIZED latent of an image (f = 1) or clip (t*k+1 pixel frames, f = k+1)
    at the video's latent height/width; pixel_frame: first pixel frame it occupies; strength: 1 = hard condition."""

    latent: torch.Tensor
    pixel_frame: int
    strength: float = 1.0


@dataclass
class ConditionedTokens:
    tokens: torch.Tensor  # (B, N_extra + F*H*W, C) float32
    coords: torch.Tensor  # (B, 3, N_extra + F*H*W) float32 [seconds, px, px]
    mask: torch.Tensor | None  # (B, N_extra + F*H*W) float32 conditioning strength; None without keyframes
    num_extra: int  # extra tokens at the front, dropped after sampling


def validate_keyframe(kf: Keyframe, latent_shape: Sequence[int], geometry: VideoGeometry = LTXV_GEOMETRY) -> None:
    """latent_shape: (B, C, F, H, W) of the video latent; geometry: its VAE's (the temporal factor t)."""
    _, c, frames, h, w = latent_shape
    if kf.latent.ndim != 5:
        raise ValueError(f"keyframe latent must be (B, C, f, h, w), got shape {tuple(kf.latent.shape)}")
    kb, kc, kf_frames, kh, kw = kf.latent.shape
    if kc != c or (kh, kw) != (h, w) or kb not in (1, latent_shape[0]):
        raise ValueError(
            f"keyframe latent shape {tuple(kf.latent.shape)} does not fit the video latent "
            f"{tuple(latent_shape)}: need batch 1 or {latent_shape[0]}, {c} channels, {h}x{w} latent "
            f"pixels (resize the image to the video size before encoding)"
        )
    if not 0.0 <= kf.strength <= 1.0:
        raise ValueError(f"keyframe strength must be in [0, 1], got {kf.strength}")
    t = geometry.temporal_factor
    num_pixel_frames, kf_pixel_frames = geometry.pixel_frames(frames), geometry.pixel_frames(kf_frames)
    last = num_pixel_frames - kf_pixel_frames
    if not 0 <= kf.pixel_frame <= last:
        raise ValueError(
            f"keyframe pixel_frame {kf.pixel_frame} out of range: a {kf_pixel_frames}-frame keyframe "
            f"in a {num_pixel_frames}-frame video must start at a frame in [0, {last}]"
        )
    if kf_frames > 1 and kf.pixel_frame % t != 0:
        lower = kf.pixel_frame // t * t
        higher = min(lower + t, last // t * t)
        raise ValueError(
            f"a video keyframe ({kf_pixel_frames} frames) must start at a multiple of {t}, got "
            f"pixel_frame {kf.pixel_frame}; nearest valid: {lower} or {higher}"
        )


def apply_keyframes(
    latents: torch.Tensor,
    keyframes: Sequence[Keyframe],
    generator: torch.Generator,
    causal_fix: bool,
    frame_rate: float,
    geometry: VideoGeometry = LTXV_GEOMETRY,
) -> ConditionedTokens:
    """latents: (B, C, F, H, W) float32 initial (noised) latents. Returns the token sequence with extra keyframe
    tokens prepended, their coordinates in seconds and the conditioning mask (None when there are no keyframes).
    geometry: the VAE's factors, which place keyframes in time and give the tokens their pixel coordinates."""
    b, c, frames, h, w = latents.shape
    device = latents.device
    scale = geometry.scale_factors
    latents = latents.clone()
    mask = torch.zeros(b, frames, h, w, device=device)
    extra_tokens, extra_coords, extra_mask = [], [], []
    for kf in keyframes:
        validate_keyframe(kf, latents.shape, geometry)
        cond = kf.latent.to(device=device, dtype=latents.dtype)
        s = float(kf.strength)
        if kf.pixel_frame == 0:
            f = cond.shape[2]
            latents[:, :, :f] = torch.lerp(latents[:, :, :f], cond, s)
            mask[:, :f] = s
            continue
        if cond.shape[2] > 1:  # clip at k > 0: in place except the 2-latent prefix
            start = kf.pixel_frame // geometry.temporal_factor + CLIP_PREFIX_LATENT_FRAMES
            end = start + cond.shape[2] - CLIP_PREFIX_LATENT_FRAMES
            latents[:, :, start:end] = torch.lerp(latents[:, :, start:end], cond[:, :, CLIP_PREFIX_LATENT_FRAMES:], s)
            mask[:, start:end] = s
            cond = cond[:, :, :CLIP_PREFIX_LATENT_FRAMES]
        noise = torch.randn(cond.shape, generator=generator, dtype=torch.float32).to(device)
        cond = torch.lerp(noise, cond, s).expand(b, -1, -1, -1, -1)
        extra_tokens.append(patchify(cond))
        extra_coords.append(
            video_coords(
                b, cond.shape[2], h, w, frame_rate, causal_fix, scale, device=device, frame_offset=kf.pixel_frame
            )
        )
        extra_mask.append(torch.full(extra_tokens[-1].shape[:2], s, device=device))

    tokens = torch.cat([*extra_tokens, patchify(latents)], dim=1)
    coords = torch.cat([*extra_coords, video_coords(b, frames, h, w, frame_rate, causal_fix, scale, device)], dim=2)
    full_mask = torch.cat([*extra_mask, mask.flatten(1)], dim=1) if keyframes else None
    num_extra = tokens.shape[1] - frames * h * w
    return ConditionedTokens(tokens, coords, full_mask, num_extra)
