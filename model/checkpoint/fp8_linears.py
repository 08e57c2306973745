"""fp8-stored linear weights kept as fp8: each nn.Linear of a module built on meta whose file weight is float8_e4m3fn
becomes a blocks.fp8.FP8Linear holding the stored bytes unchanged, with the file's per-tensor scale (or 1) as its
per-output-channel scale. Everything else is filled by fill.fill_module as usual.
"""

from __future__ import annotations

import torch
from torch import nn

from ..blocks.fp8 import FP8, FP8Linear
from .files import TensorInfo
from .fill import convert

STORED_FP8 = "F8_E4M3"


def keep_fp8_linears(module: nn.Module, index: dict[str, TensorInfo], dtype: torch.dtype, device) -> set[str]:
    """Replace, in place, the linears of `module` whose weight `index` stores as fp8 (right shape) by FP8Linear;
    bias converted to `dtype`. Returns the state-dict keys filled this way (for fill_module's skip)."""
    filled: set[str] = set()
    for name, linear in list(module.named_modules()):
        if type(linear) is not nn.Linear:
            continue
        info = index.get(f"{name}.weight")
        if info is None or info.dtype != STORED_FP8 or info.shape != tuple(linear.weight.shape):
            continue  # not fp8, or a key problem that fill_module reports
        bias_info = index.get(f"{name}.bias")
        if (bias_info is None) != (linear.bias is None):
            continue
        weight = info.file.get(info.key).to(FP8)
        scale = info.file.get(info.scale_key).float().reshape(()) if info.scale_key else torch.tensor(1.0)
        bias = convert(bias_info.file.get(bias_info.key), None, dtype) if bias_info is not None else None
        replacement = FP8Linear(weight, scale.expand(weight.shape[0]).clone(), bias).to(device)
        parent_name, _, child = name.rpartition(".")
        setattr(module.get_submodule(parent_name), child, replacement)
        filled.update({f"{name}.weight"} | ({f"{name}.bias"} if bias is not None else set()))
    return filled
