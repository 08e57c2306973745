"""LTX-2 rotary position embedding: fractional positions from [start, end) bounds, any number of axes.

The frequency grid and the (frequency, axis) channel order are those of LTX-Video 0.9.x (model/blocks/rope.py);
LTX-2 adds the middle-of-bounds position, a float64 grid option, 1-axis audio and cross-modal (time-only) RoPE,
and the "split" layout, where each head rotates its two halves and the padding goes before the first head.
"""

import torch

from ..blocks.rope import rope_frequencies


def rope_angles(
    positions: torch.Tensor, dim: int, theta: float, max_pos: tuple[int, ...], float64: bool
) -> torch.Tensor:
    """positions (B, axes, T, 2) [start, end) bounds -> angles (B, T, axes * (dim // (2 axes))) float32.

    Each token sits at the middle of its bounds; position / max_pos per axis gives the fraction f and the angle of
    frequency k on axis a is freq_k * (2 f_a - 1), ordered [k0 a0, k0 a1, ..., k1 a0, ...].
    """
    axes = positions.shape[1]
    if len(max_pos) != axes:
        raise ValueError(f"rope_angles: positions have {axes} axes but max_pos has {len(max_pos)}: {max_pos!r}")
    middle = (positions[..., 0] + positions[..., 1]).to(torch.float32) / 2.0  # (B, axes, T)
    fraction = torch.stack([middle[:, a] / max_pos[a] for a in range(axes)], dim=-1)  # (B, T, axes)
    freqs = rope_frequencies(dim, theta, positions.device, axes=axes, float64=float64)  # (K,)
    angles = freqs * (fraction.unsqueeze(-1) * 2 - 1)  # (B, T, axes, K)
    return angles.transpose(-1, -2).flatten(2)  # (B, T, K * axes)


def rope_cos_sin(
    positions: torch.Tensor,
    dim: int,
    heads: int,
    theta: float,
    max_pos: tuple[int, ...],
    rope_type: str,
    float64: bool,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin for model/blocks/attention.Attention over a width of `dim` split into `heads` heads.

    split: (B, heads, T, dim / (2 heads)); the dim / 2 - angles missing pairs are zero angles (cos 1, sin 0) in
    front, so they fall on the first head. interleaved: (B, T, angles) pairs over the full width (apply_rope leaves
    the leading channels that have no angle unrotated).
    """
    angles = rope_angles(positions, dim, theta, max_pos, float64)
    if rope_type == "split":
        batch, tokens, count = angles.shape
        angles = torch.cat((angles.new_zeros(batch, tokens, dim // 2 - count), angles), dim=-1)
        angles = angles.unflatten(-1, (heads, -1)).transpose(1, 2)  # (B, H, T, dim / (2 H))
    return angles.cos().to(dtype), angles.sin().to(dtype)
