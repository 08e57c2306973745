"""Token layout and 3D rotary position embedding (RoPE) of the LTX-Video DiT.

A latent video (B, C, F, H, W) becomes F*H*W tokens in (f h w) raster order, one per latent voxel (patch size 1).
Each token carries a coordinate [t in seconds, y in pixels, x in pixels] of the first pixel it covers; the DiT turns
it into a fractional position (coordinate / max_pos per axis) and rotates query/key channel pairs by angles
freq_k * (2 * position - 1).
"""
import math

import torch


def patchify(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, F, H, W) latents -> (B, F*H*W, C) tokens in (f h w) order."""
    if latents.ndim != 5:
        raise ValueError(f"patchify: latents must be (B, C, F, H, W), got shape {tuple(latents.shape)}")
    batch, channels = latents.shape[:2]
    return latents.reshape(batch, channels, -1).transpose(1, 2)


def unpatchify(tokens: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    """(B, F*H*W, C) tokens in (f h w) order -> (B, C, F, H, W) latents."""
    if tokens.ndim != 3 or tokens.shape[1] != frames * height * width:
        raise ValueError(
            f"unpatchify: tokens must be (B, {frames}*{height}*{width}={frames * height * width}, C), "
            f"got shape {tuple(tokens.shape)}"
        )
    batch, _, channels = tokens.shape
    return tokens.transpose(1, 2).reshape(batch, channels, frames, height, width)


def video_coords(
    batch: int,
    latent_frames: int,
    latent_height: int,
    latent_width: int,
    frame_rate: float,
    causal_fix: bool,
    scale_factors: tuple[int, int, int] = (8, 32, 32),
    device: torch.device | str | None = None,
    frame_offset: int = 0,
) -> torch.Tensor:
    """Coordinates of the tokens of a latent video -> (B, 3, F*H*W) float32 [t seconds, y pixels, x pixels].

    Latent index (f, y, x) maps to pixel (f*8, y*32, x*32). With causal_fix (causal_temporal_positioning, 0.9.5+)
    the time is max(t + 1 - 8, 0): latent frame 0 holds pixel frame 0 only, latent frame f >= 1 starts at
    pixel frame 8f - 7. frame_offset (pixel frames) is added after that, as for keyframe tokens placed at a later
    frame. Time is then converted to seconds by multiplying with 1 / frame_rate (the reference's rounding).
    """
    if frame_rate <= 0:
        raise ValueError(f"video_coords: frame_rate must be > 0, got {frame_rate}")
    if min(batch, latent_frames, latent_height, latent_width) < 1:
        raise ValueError(
            f"video_coords: batch and latent sizes must be >= 1, got batch={batch}, "
            f"(F, H, W)=({latent_frames}, {latent_height}, {latent_width})"
        )
    scale_t, scale_y, scale_x = scale_factors
    grid = torch.meshgrid(
        torch.arange(latent_frames, device=device) * scale_t,
        torch.arange(latent_height, device=device) * scale_y,
        torch.arange(latent_width, device=device) * scale_x,
        indexing="ij",
    )
    pixel = torch.stack(grid).reshape(3, -1)  # (3, N) int64, (f h w) order
    if causal_fix:
        pixel[0] = (pixel[0] + 1 - scale_t).clamp(min=0)
    pixel[0] += frame_offset
    coords = pixel.to(torch.float32)
    coords[0] = coords[0] * (1.0 / frame_rate)
    return coords.unsqueeze(0).repeat(batch, 1, 1)


def rope_frequencies(dim: int, theta: float, device: torch.device | None = None) -> torch.Tensor:
    """dim // 6 base angular frequencies, log-spaced from pi/2 to theta * pi/2 -> (dim // 6,) float32."""
    exponents = torch.linspace(0.0, 1.0, dim // 6, dtype=torch.float32, device=device)
    return theta**exponents * math.pi / 2


def rope_cos_sin(
    coords: torch.Tensor, dim: int, theta: float, max_pos: tuple[int, int, int], dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """coords (B, 3, N) [t, y, x] -> cos, sin, each (B, N, 3 * (dim // 6)) in `dtype`, one value per channel pair.

    Pair j rotates with frequency j // 3 on axis j % 3 (t, y, x interleaved). Angles are computed in float32
    (they reach ~theta * pi/2 rad) and only cos/sin are cast to `dtype`. The first dim % 6 channels of q/k are
    not rotated (apply_rope leaves them as they are).
    """
    max_pos_t = torch.tensor(max_pos, dtype=torch.float32, device=coords.device)
    positions = coords.to(torch.float32) / max_pos_t[None, :, None]  # (B, 3, N) in about [0, 1]
    freqs = rope_frequencies(dim, theta, coords.device)  # (K,)
    angles = freqs * (positions.transpose(1, 2).unsqueeze(-1) * 2 - 1)  # (B, N, 3, K)
    angles = angles.transpose(-1, -2).flatten(2)  # (B, N, 3K): [f0 t, f0 y, f0 x, f1 t, ...]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved channel pairs (a, b) -> (a cos - b sin, b cos + a sin) of x (B, N, D).

    cos/sin are (B or 1, N, P) with 2P <= D; the leading D - 2P channels pass through unchanged.
    """
    identity = x.shape[-1] - 2 * cos.shape[-1]
    a, b = x[..., identity:].unflatten(-1, (-1, 2)).unbind(-1)  # each (B, N, P)
    rotated = torch.stack((a * cos - b * sin, b * cos + a * sin), dim=-1).flatten(-2)  # (B, N, 2P)
    return torch.cat((x[..., :identity], rotated), dim=-1)
