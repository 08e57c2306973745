"""Attention for both families: one scaled-dot-product entry point with swappable backends, and the
multi-head attention module (RMSNorm q/k across heads, optional RoPE, STG replacement).

The backend is a preference, not a requirement: each name lists PyTorch SDPA kernels in the order to try, and
PyTorch falls through to the next one when a kernel cannot take the inputs (a CPU tensor, an attention bias,
an unsupported head size). So every backend computes the same function and none of them can fail on a device
that lacks it.
"""

import inspect
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .norm import RMSNorm
from .rope import apply_rope, apply_split_rope

QK_NORM_EPS = 1e-5
ROPE_TYPES = ("interleaved", "split")

_ALL = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.MATH]

# name -> kernels in priority order (None: PyTorch's own choice, i.e. plain F.scaled_dot_product_attention)
BACKENDS: dict[str, list[SDPBackend] | None] = {
    "sdpa": None,
    "cudnn": [SDPBackend.CUDNN_ATTENTION] + [b for b in _ALL if b != SDPBackend.CUDNN_ATTENTION],
    "flash": [SDPBackend.FLASH_ATTENTION] + [b for b in _ALL if b != SDPBackend.FLASH_ATTENTION],
    "efficient": [SDPBackend.EFFICIENT_ATTENTION] + [b for b in _ALL if b != SDPBackend.EFFICIENT_ATTENTION],
    "math": [SDPBackend.MATH],
}

_current = "sdpa"  # the backend attention() uses; set with attention_backend()
# Kernel priorities need PyTorch >= 2.6 (sdpa_kernel(..., set_priority=True)); older versions use their own choice.
_HAS_PRIORITY = "set_priority" in inspect.signature(sdpa_kernel).parameters


def resolve_backend(name: str, device: torch.device | str | None = None) -> str:
    """Turn a requested backend name ("auto" or one of BACKENDS) into a BACKENDS key for `device`.

    "auto" prefers cuDNN attention on Hopper and newer GPUs (fastest SDPA kernel there for head sizes 64 and 128 in
    benchmarks/bench.py) and PyTorch's default choice everywhere else.
    """
    if name == "auto":
        device = torch.device(device) if device is not None else None
        if device is not None and device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 9:
            return "cudnn"
        return "sdpa"
    if name not in BACKENDS:
        raise ValueError(
            f"attention backend {name!r} is unknown; valid: 'auto', " + ", ".join(repr(b) for b in BACKENDS)
        )
    return name


@contextmanager
def attention_backend(name: str):
    """Within the block, attention() uses backend `name` (a BACKENDS key; use resolve_backend for "auto")."""
    global _current
    if name not in BACKENDS:
        raise ValueError(f"attention backend {name!r} is unknown; valid: " + ", ".join(repr(b) for b in BACKENDS))
    previous, _current = _current, name
    try:
        yield
    finally:
        _current = previous


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """q: (B, H, Nq, d), k/v: (B, H, Nk, d), bias: additive, broadcastable to (B, H, Nq, Nk) -> (B, H, Nq, d)."""
    kernels = BACKENDS[_current]
    if kernels is None or not _HAS_PRIORITY:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    with sdpa_kernel(kernels, set_priority=True):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


class Attention(nn.Module):
    """Multi-head attention with RMSNorm on the full-width q and k; optional RoPE and per-head output gates.

    dim: query width (and output width); context_dim: key/value input width; inner_dim: heads * head_dim
    (default dim). rope_type: how `rope` rotates q and k: "interleaved" (channel pairs over the full width, 0.9.x)
    or "split" (the two halves of each head, LTX-2). gated: a per-head gate 2 * sigmoid(to_gate_logits(x)) on the
    attention output before to_out (1 at zero init; LTX-2.3+).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        context_dim: int,
        *,
        inner_dim: int | None = None,
        qk_norm_eps: float = QK_NORM_EPS,
        rope_type: str = "interleaved",
        gated: bool = False,
    ):
        super().__init__()
        if rope_type not in ROPE_TYPES:
            raise ValueError(f"Attention rope_type must be one of {ROPE_TYPES}, got {rope_type!r}")
        inner_dim = dim if inner_dim is None else inner_dim
        self.heads = heads
        self.rope_type = rope_type
        self.to_q = nn.Linear(dim, inner_dim)
        self.to_k = nn.Linear(context_dim, inner_dim)
        self.to_v = nn.Linear(context_dim, inner_dim)
        self.to_out = nn.ModuleList([nn.Linear(inner_dim, dim)])
        self.q_norm = RMSNorm(inner_dim, qk_norm_eps)
        self.k_norm = RMSNorm(inner_dim, qk_norm_eps)
        self.to_gate_logits = nn.Linear(dim, heads) if gated else None
        # Optional replacement of attention(q, k, v, bias) for this module (same signature and shapes), e.g. the
        # sequence-parallel attention of model/parallel; None: the module-level attention().
        self.sdpa = None

    def project_context(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """context (B, M, C) -> normed keys, values, each (B, M, inner_dim)."""
        return self.k_norm(self.to_k(context)), self.to_v(context)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
        bias: torch.Tensor | None = None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        skip_mode: str | None = None,
        perturbed: torch.Tensor | None = None,
        key_rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """x (B, N, dim), context (B, M, C) or its project_context() output -> (B, N, dim).

        rope rotates q (and k unless key_rope is given; cross-modal attention rotates keys with the other stream's
        positions). skip_mode/perturbed: STG replacement of the attention output (before the gate and to_out) for
        the perturbed samples.
        """
        q = self.q_norm(self.to_q(x))
        k, v = context if isinstance(context, tuple) else self.project_context(context)
        key_rope = rope if key_rope is None else key_rope
        if rope is not None and self.rope_type == "interleaved":
            q = apply_rope(q, *rope)
            k = apply_rope(k, *key_rope)
        batch, _, inner = q.shape
        # (B, N, inner) -> (B, H, N, d)
        q, k, vh = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        if rope is not None and self.rope_type == "split":
            q = apply_split_rope(q, *rope)
            k = apply_split_rope(k, *key_rope)
        out = attention(q, k, vh, bias) if self.sdpa is None else self.sdpa(q, k, vh, bias)
        out = out.transpose(1, 2).reshape(batch, -1, inner).to(q.dtype)  # (B, N, inner)
        if skip_mode is not None:
            replacement = v if skip_mode == "attention_values" else x
            out = torch.where(perturbed[:, None, None], replacement, out)
        if self.to_gate_logits is not None:
            gates = 2.0 * torch.sigmoid(self.to_gate_logits(x))  # (B, N, H)
            out = (out.unflatten(-1, (self.heads, -1)) * gates[..., None]).flatten(-2)
        return self.to_out[0](out)
