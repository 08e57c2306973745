"""Rotary position embedding math: log-spaced frequencies over fractional positions, interleaved channel pairs.

Each token carries a coordinate per axis; the position is coordinate / max_pos per axis and query/key channel pairs
rotate by angles freq_k * (2 * position - 1).
"""

import math

import torch


def rope_frequencies(
    dim: int, theta: float, device: torch.device | None = None, *, axes: int = 3, float64: bool = False
) -> torch.Tensor:
    """dim // (2 * axes) base angular frequencies, log-spaced from pi/2 to theta * pi/2 -> float32.

    float64: compute the grid in double precision and round once to float32 (LTX-2 `frequencies_precision`).
    """
    grid_dtype = torch.float64 if float64 else torch.float32
    exponents = torch.linspace(0.0, 1.0, dim // (2 * axes), dtype=grid_dtype, device=device)
    return (theta**exponents * math.pi / 2).to(torch.float32)


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


def apply_split_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each head's two halves (a | b) -> (a cos - b sin | b cos + a sin) (LTX-2 "split" RoPE).

    x: (B, H, N, d); cos/sin: (B or 1, H, N, d / 2).
    """
    a, b = x.chunk(2, dim=-1)
    return torch.cat((a * cos - b * sin, b * cos + a * sin), dim=-1)
