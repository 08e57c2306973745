"""Model files on disk: refusing pickles, checking a safetensors header against the file size, reading tensors and
metadata, reading JSON configs, and writing safetensors files without leaving half-written ones behind.

Nothing here knows what model a file holds (keys.py tells that) and nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import torch
from safetensors import safe_open
from safetensors.torch import save_file

COMPUTE_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")
DAMAGED = "the file is truncated or corrupt, re-download it"  # model/builtin.py rewrites the advice for its files


class CheckpointError(ValueError):
    """A model file that cannot be loaded: the message names the file and the problem."""


@dataclass
class TensorInfo:
    file: SafetensorsFile
    key: str  # key inside the file
    shape: tuple[int, ...]
    dtype: str  # safetensors dtype name, e.g. "BF16", "F8_E4M3"
    scale_key: str | None = None  # scaled-fp8: the scalar to multiply the weight with


def refuse_pickle(path: str) -> None:
    """Refuse pickle-based files (.ckpt/.pt/.bin...) without ever unpickling them: they can run arbitrary code."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: file not found")
    with open(path, "rb") as f:
        head = f.read(9)
    looks_like_safetensors = head[8:9] == b"{"  # u64 header length, then the JSON header
    looks_like_pickle = head.startswith(b"PK\x03\x04") or (head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05")
    if path.lower().endswith(PICKLE_SUFFIXES) or (looks_like_pickle and not looks_like_safetensors):
        raise CheckpointError(
            f"{path}: this is a pickle/PyTorch file (.ckpt/.pt/.bin), not safetensors; it is "
            "refused because unpickling can run arbitrary code. Use the .safetensors release of "
            "the model (or convert it with a tool you trust)."
        )


def read_header(path: str) -> tuple[dict, dict]:
    """(tensor entries {key: {"dtype", "shape", "data_offsets"}}, metadata {str: str}) of a safetensors file,
    checked against the file size. CheckpointError naming the file for pickles, GGUF, truncated or corrupt files."""
    refuse_pickle(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if head[:4] == b"GGUF":
            raise CheckpointError(
                f"{path}: this is a GGUF (llama.cpp-style quantized) file; only safetensors files are supported"
            )
        if len(head) < 8:
            raise CheckpointError(f"{path}: file is {size} bytes, too short for a safetensors file; {DAMAGED}")
        header_len = int.from_bytes(head, "little")
        if header_len > size - 8:
            raise CheckpointError(
                f"{path}: safetensors header claims {header_len} bytes but the file has {size} bytes; {DAMAGED}"
            )
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(
                f"{path}: the safetensors header is not valid JSON ({e}); it is not a safetensors file, or {DAMAGED}"
            ) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object; {DAMAGED}")
    metadata = header.pop("__metadata__", None) or {}
    data_len = size - 8 - header_len
    end = max((info["data_offsets"][1] for info in header.values()), default=0)
    if end != data_len:
        raise CheckpointError(
            f"{path}: the header describes {end} bytes of tensor data but the file holds {data_len}; {DAMAGED}"
        )
    return header, metadata


def parse_config(metadata: dict, where: str) -> dict | None:
    """The parsed JSON of metadata["config"], or None when absent."""
    text = metadata.get("config")
    if text is None:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{where}: metadata 'config' is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{where}: metadata 'config' is {type(config).__name__}, expected a JSON object")
    return config


class SafetensorsFile:
    """One safetensors file whose header has been checked against the file size (catches truncated downloads).
    Tensors are read lazily, one at a time."""

    def __init__(self, path):
        self.path = str(path)
        header, self.metadata = read_header(self.path)
        self.tensors: dict[str, tuple[tuple[int, ...], str]] = {
            k: (tuple(v["shape"]), v["dtype"]) for k, v in header.items()
        }
        self._handle = None

    def keys(self) -> list[str]:
        return list(self.tensors)

    def get(self, key: str) -> torch.Tensor:
        if self._handle is None:
            self._handle = safe_open(self.path, framework="pt", device="cpu")
        return self._handle.get_tensor(key)

    def config(self) -> dict | None:
        """The parsed JSON of metadata["config"], or None when absent."""
        return parse_config(self.metadata, self.path)

    def close(self):
        self._handle = None


def read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read the JSON config ({e})") from None


def check_dtype(dtype: torch.dtype, path) -> None:
    """CheckpointError naming `path` unless `dtype` is one of COMPUTE_DTYPES."""
    if dtype not in COMPUTE_DTYPES:
        raise CheckpointError(f"{path}: compute dtype {dtype} is not supported; use one of {COMPUTE_DTYPES}")


def save_safetensors(path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write to a temporary name first and rename, so a crash never leaves a half-written file under `path`."""
    path = str(path)
    tmp = path + ".tmp"
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:  # a failed write leaves no partial .tmp behind
        if os.path.exists(tmp):
            os.remove(tmp)
