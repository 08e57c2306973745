"""Scaled dot-product attention used by the DiT. One entry point, so faster backends can be swapped in."""
import torch
import torch.nn.functional as F


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """q: (B, H, Nq, d), k/v: (B, H, Nk, d), bias: additive, broadcastable to (B, H, Nq, Nk) -> (B, H, Nq, d)."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
