"""Timestep embedding and AdaLN-single modulation (PixArt): one timestep MLP shared by the whole network.

Shapes: M timesteps (B for a global timestep, B*N for per-token timesteps), D model width.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

TIMESTEP_SINUSOID_DIM = 256


def timestep_sinusoid(t: torch.Tensor, dim: int = TIMESTEP_SINUSOID_DIM, max_period: float = 10000.0) -> torch.Tensor:
    """(M,) timesteps (already scaled, e.g. 0..1000) -> (M, dim) float32 [cos(t w_k), sin(t w_k)]."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    angles = t.to(torch.float32)[:, None] * torch.exp(exponent)[None, :]  # (M, half)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class TimestepMLP(nn.Module):
    """Linear -> SiLU -> Linear on the timestep sinusoid."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class TimestepEmbedding(nn.Module):
    """Timestep -> sinusoid -> MLP: the `embedded_timestep` (M, D)."""

    def __init__(self, dim: int):
        super().__init__()
        self.timestep_embedder = TimestepMLP(TIMESTEP_SINUSOID_DIM, dim)

    def forward(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return self.timestep_embedder(timestep_sinusoid(t).to(dtype))


class AdaLNSingle(nn.Module):
    """One shared timestep embedding for the whole network (PixArt adaLN-single); `coefficient` modulation rows
    of width D (6 in 0.9.x; LTX-2 also uses 9, 4, 2 and 1)."""

    def __init__(self, dim: int, coefficient: int = 6):
        super().__init__()
        self.emb = TimestepEmbedding(dim)
        self.linear = nn.Linear(dim, coefficient * dim)

    def forward(self, t: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(M,) scaled timesteps -> modulation (M, coefficient * D), embedded_timestep (M, D)."""
        embedded = self.emb(t, dtype)
        return self.linear(F.silu(embedded)), embedded
