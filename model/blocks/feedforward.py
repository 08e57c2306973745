"""Feed-forward blocks: the GELU(tanh) MLP of the transformer blocks and the caption projection."""

import torch
import torch.nn.functional as F
from torch import nn


class GELUProjection(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, bias: bool = True):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim, bias=bias)
        self.fused_gelu = False  # speed option: bias + GELU(tanh) in the cuBLASLt matmul epilogue (CUDA only)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused_gelu and x.is_cuda and type(self.proj) is nn.Linear and self.proj.bias is not None:
            out = torch._addmm_activation(self.proj.bias, x.flatten(0, -2), self.proj.weight.t(), use_gelu=True)
            return out.unflatten(0, x.shape[:-1])
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(nn.Module):
    """Linear(D -> 4D) -> GELU(tanh) -> Linear(4D -> D); bias=False drops both biases (LTX-2.5 video FF)."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = True):
        super().__init__()
        # Index 1 held an inactive dropout in the official layout; the Identity keeps the output layer at `net.2`.
        self.net = nn.Sequential(
            GELUProjection(dim, hidden_dim, bias), nn.Identity(), nn.Linear(hidden_dim, dim, bias=bias)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CaptionProjection(nn.Module):
    """Text encoder features (B, L, caption_channels) -> (B, L, D): Linear -> GELU(tanh) -> Linear."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(text), approximate="tanh"))
