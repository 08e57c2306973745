"""FP8 linear layers for the DiT blocks.

Weights are stored as float8 e4m3 with one fp32 scale per output channel (about half the memory of bf16). On GPUs
with FP8 tensor cores (CUDA compute capability 8.9 or newer) the activations are quantised per token (one scale
per row) and the product runs as a scaled FP8 matmul (torch._scaled_mm) with bf16 output. Everywhere else (CPU,
older GPUs) the weight is dequantised and the matmul runs in the activation dtype, which gives the same function
up to FP8 rounding of the activations.
"""

import functools
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0  # largest finite float8_e4m3fn value

# torch._scaled_mm's fast accumulation (Hopper FP8 tensor cores); benchmarks/bench.py checks its accuracy
FAST_ACCUM = True

_scaled_mm_enabled: bool | None = None  # None: decide per call from the input's device; set by scaled_mm_mode()


def fp8_matmul_supported(device: torch.device | str) -> bool:
    """True when `device` runs the row-scaled FP8 matmul FP8Linear uses: CUDA compute capability 8.9 (Ada) or
    newer and a PyTorch whose torch._scaled_mm takes per-row scales (checked once per GPU with a tiny product)."""
    device = torch.device(device)
    if device.type != "cuda" or not hasattr(torch, "_scaled_mm"):
        return False
    index = device.index if device.index is not None else torch.cuda.current_device()
    return _scaled_mm_works(index)


@functools.lru_cache(maxsize=None)
def _scaled_mm_works(index: int) -> bool:
    if torch.cuda.get_device_capability(index) < (8, 9):
        return False
    try:
        a = torch.ones(16, 16, device=f"cuda:{index}").to(FP8)
        torch._scaled_mm(
            a,
            a.t(),
            scale_a=torch.ones(16, 1, device=a.device),
            scale_b=torch.ones(1, 16, device=a.device),
            out_dtype=torch.bfloat16,
            use_fast_accum=FAST_ACCUM,
        )
        return True
    except (RuntimeError, TypeError):
        return False


@contextmanager
def scaled_mm_mode(enabled: bool):
    """Within the block FP8Linear uses the scaled FP8 matmul iff `enabled` (decided once, outside compiled code)."""
    global _scaled_mm_enabled
    previous, _scaled_mm_enabled = _scaled_mm_enabled, enabled
    try:
        yield
    finally:
        _scaled_mm_enabled = previous


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (M, K) -> (x_fp8 (M, K) float8_e4m3fn, scale (M, 1) fp32) with x ~= x_fp8 * scale, one scale per row."""
    x = x.float()
    scale = x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / FP8_MAX
    x_fp8 = (x / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    return x_fp8, scale


class FP8Linear(nn.Module):
    """Drop-in replacement for nn.Linear with a float8 weight. Same parameter names ("weight", "bias"), so a
    model's state_dict keys do not change; the per-channel scale is a non-persistent buffer (inference only:
    a state_dict of an FP8 model holds the raw float8 weights without their scales)."""

    def __init__(self, weight_fp8: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.out_features, self.in_features = weight_fp8.shape
        self.weight = nn.Parameter(weight_fp8, requires_grad=False)  # (out, in) float8_e4m3fn
        self.bias = nn.Parameter(bias, requires_grad=False) if bias is not None else None
        self.register_buffer("weight_scale", weight_scale.float(), persistent=False)  # (out,) fp32

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "FP8Linear":
        w_fp8, scale = quantize_rows(linear.weight.detach())
        bias = linear.bias.detach() if linear.bias is not None else None
        return cls(w_fp8, scale.squeeze(1), bias)

    def dequantized_weight(self, dtype: torch.dtype) -> torch.Tensor:
        return (self.weight.float() * self.weight_scale[:, None]).to(dtype)

    def _apply(self, fn, recurse=True):
        # a dtype cast of the whole model (model.to(torch.bfloat16)) must not turn the float8 weight into bf16:
        # float8 -> bf16 -> float8 is exact, so restoring the storage dtype afterwards loses nothing.
        super()._apply(fn, recurse)
        if self.weight.dtype != FP8:
            self.weight.data = self.weight.data.to(FP8)
        if self.weight_scale.dtype != torch.float32:
            self.weight_scale = self.weight_scale.float()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        use_scaled_mm = _scaled_mm_enabled
        if use_scaled_mm is None:
            use_scaled_mm = fp8_matmul_supported(x.device)
        if not use_scaled_mm or x.dtype != torch.bfloat16:  # row-scaled _scaled_mm writes bf16 only
            return F.linear(x, self.dequantized_weight(x.dtype), self.bias)
        x_fp8, x_scale = quantize_rows(x.reshape(-1, self.in_features))  # (M, in), (M, 1)
        out = torch._scaled_mm(
            x_fp8,
            self.weight.t(),
            scale_a=x_scale,
            scale_b=self.weight_scale[None, :],
            out_dtype=x.dtype,
            use_fast_accum=FAST_ACCUM,
        )  # (M, out)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, fp8"


def convert_linears_to_fp8(module: nn.Module) -> int:
    """Replace every nn.Linear inside `module` by an FP8Linear; returns how many were replaced. Matrices whose
    sizes are not multiples of 16 (a torch._scaled_mm requirement) stay as they are."""
    targets = [
        (name, sub)
        for name, sub in module.named_modules()
        if isinstance(sub, nn.Linear) and sub.in_features % 16 == 0 and sub.out_features % 16 == 0
    ]
    for name, linear in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(module.get_submodule(parent_name), child, FP8Linear.from_linear(linear))
    return len(targets)
