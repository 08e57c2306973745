"""Modules built with their parameters on the meta device and filled tensor by tensor from files.

Each tensor is converted to the compute dtype as it is read (fp8 weights are upcast, scaled-fp8 weights multiplied
by their `scale_weight`), so a full-precision copy of the model never exists in host memory. Every key, missing,
extra or mis-shaped, is checked before anything is read.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from .files import CheckpointError, SafetensorsFile, TensorInfo
from .keys import describe_keys

MAX_LISTED = 5  # keys named in an error message


@contextmanager
def parameters_on_meta():
    """Construct modules with every parameter on the meta device (no memory, no init cost). Buffers stay real:
    non-persistent ones are not in the file and must keep the values computed in __init__."""
    register = nn.Module.register_parameter

    def register_on_meta(module, name, param):
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(module, name, param)

    nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def build_on_meta(cls, config) -> nn.Module:
    """`cls(config)` with its parameters on meta, to be filled by fill_module."""
    with parameters_on_meta():
        return cls(config)


def build_index(file: SafetensorsFile, prefix: str) -> dict[str, TensorInfo]:
    """Module key -> TensorInfo for the keys of `file` under `prefix` (prefix stripped).
    Scaled-fp8 files (ComfyUI): `<w>.scale_weight` scales `<w>.weight`; `scale_input` and the `scaled_fp8`
    marker are dropped."""
    index: dict[str, TensorInfo] = {}
    names = [k for k in file.keys() if k.startswith(prefix)]
    present = set(names)
    for name in names:
        local = name[len(prefix) :]
        if local == "scaled_fp8" or local.endswith((".scale_weight", ".scale_input")):
            continue
        shape, dtype = file.tensors[name]
        scale = None
        if local.endswith(".weight") and name[: -len("weight")] + "scale_weight" in present:
            scale = name[: -len("weight")] + "scale_weight"
        index[local] = TensorInfo(file, name, shape, dtype, scale)
    return index


def merged_index(files: list[SafetensorsFile], prefix: str = "") -> dict[str, TensorInfo]:
    """One index over the shards of a model."""
    index: dict[str, TensorInfo] = {}
    for f in files:
        index.update(build_index(f, prefix))
    return index


def check_keys(
    expected: dict[str, tuple], index: dict[str, TensorInfo], what: str, defaults: dict | None = None
) -> None:
    """CheckpointError listing missing, unexpected and mis-shaped keys (with both shapes) and what the file is."""
    defaults = defaults or {}
    missing = sorted(k for k in expected if k not in index and k not in defaults)
    unexpected = sorted(k for k in index if k not in expected)
    wrong = sorted(k for k in expected if k in index and index[k].shape != expected[k])
    if not (missing or unexpected or wrong):
        return
    files = sorted({info.file.path for info in index.values()})
    lines = [f"{', '.join(files) or what}: the {what} does not match the model built from its config:"]
    if missing:
        lines.append(f"  {len(missing)} missing keys, e.g. {', '.join(missing[:MAX_LISTED])}")
    if unexpected:
        lines.append(f"  {len(unexpected)} unexpected keys, e.g. {', '.join(unexpected[:MAX_LISTED])}")
    if wrong:
        shown = [f"{k} expected {list(expected[k])} found {list(index[k].shape)}" for k in wrong[:MAX_LISTED]]
        lines.append(f"  {len(wrong)} keys with wrong shapes: " + "; ".join(shown))
    all_keys = sorted({k for info in index.values() for k in info.file.keys()})
    lines.append("  " + describe_keys(all_keys))
    raise CheckpointError("\n".join(lines))


def fill_module(
    module: nn.Module,
    index: dict[str, TensorInfo],
    dtype: torch.dtype,
    device,
    what: str,
    defaults: dict[str, torch.Tensor] | None = None,
    dtype_for=None,
    skip=(),
) -> nn.Module:
    """Strictly check `index` (module key -> where the tensor is) against the module's state dict, then read,
    convert and assign each tensor. `defaults` supplies tensors a layout legitimately lacks; `skip` names keys
    left alone (e.g. tied duplicates); `dtype_for(key)` overrides the dtype per key."""
    defaults = dict(defaults or {})
    device = torch.device(device)
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items() if k not in skip}
    check_keys(expected, index, what, defaults)
    for key in expected:
        key_dtype = dtype_for(key) if dtype_for else dtype
        if key in index:
            info = index[key]
            scale = info.file.get(info.scale_key) if info.scale_key else None
            tensor = convert(info.file.get(info.key), scale, key_dtype)
        else:
            tensor = defaults[key].to(key_dtype)
        assign(module, key, tensor.to(device))
    for name, buf in module.named_buffers():  # non-persistent buffers computed in __init__
        if buf.device != device:
            assign(module, name, buf.to(device))
    left_on_meta = [n for n, p in module.named_parameters() if p.is_meta]
    if left_on_meta:  # parameters that state_dict() does not list (a module bug, not a file problem)
        raise RuntimeError(
            f"{what}: {len(left_on_meta)} parameters are not in the module's state dict and were never filled, "
            f"e.g. {', '.join(left_on_meta[:MAX_LISTED])}"
        )
    return module.eval()


def convert(tensor: torch.Tensor, scale: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """A stored tensor in the compute dtype; scaled-fp8 weights are multiplied by their scale in fp32 first."""
    if not tensor.is_floating_point():
        return tensor
    if scale is not None:
        return (tensor.to(torch.float32) * scale.to(torch.float32)).to(dtype)
    return tensor.to(dtype)


def assign(module: nn.Module, key: str, tensor: torch.Tensor) -> None:
    """Replace the parameter or buffer `key` (dotted) of `module` by `tensor` (a frozen parameter)."""
    owner_name, _, name = key.rpartition(".")
    owner = module.get_submodule(owner_name)
    if name in owner._parameters:
        owner._parameters[name] = nn.Parameter(tensor, requires_grad=False)
    else:
        owner._buffers[name] = tensor
