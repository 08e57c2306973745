"""Token layout and 3D rotary position embedding (RoPE) of the LTX-Video DiT.

A latent video (B, C, F, H, W) becomes F*H*W tokens in (f h w) raster order, one per latent voxel (patch size 1).
Each token carries a coordinate [t in seconds, y in pixels, x in pixels] of the first pixel it covers; the DiT turns
it into a fractional position (coordinate / max_pos per axis) and rotates query/key channel pairs by angles
freq_k * (2 * position - 1).
"""

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
