"""Reading LoRA files: the key formats in use, told apart from each other and from files that are not LoRAs.

A LoRA adds `scale * up @ down` to the weight of a Linear layer (out, in): `down` (rank, in), `up` (out, rank).
The formats differ in key names only:

| format | keys of one layer `<m>` | layer name `<m>` |
|---|---|---|
| ComfyUI / official (ltx-core's loader strips `diffusion_model.`) | `diffusion_model.<m>.lora_A.weight`, `.lora_B.weight`, optional `.alpha` | official |
| ComfyUI (lora_down/up spelling) | `diffusion_model.<m>.lora_down.weight`, `.lora_up.weight`, optional `.alpha` | official |
| diffusers / PEFT | `transformer.<m>.lora_A.weight`, `.lora_B.weight` (PEFT `save_pretrained`: `base_model.model.<m>`) | diffusers |
| kohya | `lora_unet_<m with . as _>.lora_down.weight`, `.lora_up.weight`, `.alpha` | official or diffusers |

`lora_A`/`lora_down` is the down matrix, `lora_B`/`lora_up` the up matrix; a file without a prefix is read too.
The scale of a layer is strength * alpha / rank when the file stores `<m>.alpha` (rank = rows of the down matrix),
and strength * 1.0 when it does not: ComfyUI's rule (tests/test_lora.py runs ComfyUI's own code on the same files),
and the diffusers/PEFT rule. ltx-core 1.0.0 ignores alpha entirely (strength * B @ A): a file whose alpha differs
from its rank merges differently there; files without alpha agree everywhere. A diffusers file whose metadata
`lora_adapter_metadata` holds PEFT's `lora_alpha` and `r` gets lora_alpha / r on every layer.

LyCORIS LoKr layers (`lokr_w1`, `lokr_w2`, ...; lokr.py) are read too. LyCORIS LoHa, OFT, DoRA and
full-difference (`.diff`) files are refused with their format named.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import torch

from ..checkpoint.files import CheckpointError, SafetensorsFile
from ..checkpoint.keys import describe_keys
from .lokr import LokrLayer, parse_lokr

# (down suffix, up suffix) of one layer, in the order they are tried
PAIR_SUFFIXES = ((".lora_A.weight", ".lora_B.weight"), (".lora_down.weight", ".lora_up.weight"))
ALPHA_SUFFIX = ".alpha"
# file prefix -> which names follow it ("official", "diffusers", or "any": told by the model's name tables)
PREFIXES = (
    ("model.diffusion_model.", "official"),
    ("diffusion_model.", "official"),
    ("transformer.", "diffusers"),
    ("base_model.model.", "any"),
    ("lora_unet_", "kohya"),
    ("lora_transformer_", "kohya"),
)
# key pattern -> the format it belongs to (refused)
UNSUPPORTED = (
    (re.compile(r"\.hada_w[12]_[ab]$"), "LyCORIS LoHa (hada_w1_a/hada_w2_b keys)"),
    (re.compile(r"\.oft_(blocks|diag)$|\.oft_r\.weight$"), "OFT (oft_blocks keys)"),
    (re.compile(r"\.dora_scale$|\.lora_magnitude_vector(\.\w+)?$"), "DoRA (dora_scale / lora_magnitude_vector keys)"),
    (re.compile(r"\.lora_mid\.weight$"), "LoCon with a Tucker middle (lora_mid keys)"),
    (re.compile(r"\.diff(_b)?$"), "full weight differences (.diff / .diff_b keys)"),
)
PEFT_METADATA_KEY = "lora_adapter_metadata"
MAX_LISTED = 5


@dataclass(frozen=True)
class LoraLayer:
    """One low-rank pair of a file. `name` is the layer path as the file writes it (prefix and suffixes removed;
    kohya names keep their underscores), `naming` which names it uses ("official", "diffusers", "kohya", "any")."""

    name: str
    naming: str
    down_key: str
    up_key: str
    down_shape: tuple[int, ...]
    up_shape: tuple[int, ...]
    alpha: float | None

    @property
    def rank(self) -> int:
        return self.down_shape[0]

    @property
    def scale(self) -> float:
        """alpha / rank, or 1.0 without an alpha."""
        return 1.0 if self.alpha is None else self.alpha / self.rank

    @property
    def out_in(self) -> tuple[int, int]:
        return self.up_shape[0], self.down_shape[1]

    def delta(self, get, device: torch.device) -> torch.Tensor:
        """fp32 (out, in) up @ down, without the scale; `get` reads a key of the file."""
        return get(self.up_key).to(device, torch.float32) @ get(self.down_key).to(device, torch.float32)


class LoraFile:
    """The layers of one LoRA; tensors are read one layer at a time (a 22B LoRA of rank 384 is several GB).

    source: a path to a .safetensors file, or a state dict {key: tensor} (then `name` names it in messages)."""

    def __init__(self, source, name: str | None = None, metadata: dict | None = None):
        if isinstance(source, dict):
            self.path = name or "<LoRA state dict>"
            self._tensors, self._file = source, None
            shapes = {k: tuple(v.shape) for k, v in source.items()}
            self.metadata = dict(metadata or {})
        else:
            self._file, self._tensors = SafetensorsFile(os.fspath(source)), None
            self.path = self._file.path
            shapes = {k: shape for k, (shape, _) in self._file.tensors.items()}
            self.metadata = dict(self._file.metadata)
        self.layers = parse_layers(shapes, self._get, self.path, self.metadata)

    def down(self, layer: LoraLayer) -> torch.Tensor:
        return self._get(layer.down_key)

    def up(self, layer: LoraLayer) -> torch.Tensor:
        return self._get(layer.up_key)

    def delta(self, layer: LoraLayer | LokrLayer, device: torch.device) -> torch.Tensor:
        """fp32 (out, in) weight difference of one layer at scale 1 (multiply by layer.scale and the strength)."""
        return layer.delta(self._get, device)

    def _get(self, key: str) -> torch.Tensor:
        return self._tensors[key] if self._file is None else self._file.get(key)

    def __repr__(self) -> str:
        return f"LoraFile({self.path!r}, {len(self.layers)} layers)"


def load_lora(source, name: str | None = None) -> LoraFile:
    """A LoraFile from a path or a state dict; CheckpointError naming the file for files that are not LoRAs,
    LyCORIS/DoRA/OFT files, unpaired or mis-shaped low-rank matrices."""
    return source if isinstance(source, LoraFile) else LoraFile(source, name)


def split_prefix(key: str) -> tuple[str, str]:
    """key -> (naming, key without its prefix)."""
    for prefix, naming in PREFIXES:
        if key.startswith(prefix):
            return naming, key[len(prefix) :]
    return "any", key


def parse_layers(shapes: dict[str, tuple[int, ...]], read_scalar, where: str, metadata: dict) -> list:
    """LoraLayer / LokrLayer of every layer of a file, every key accounted for."""
    for pattern, fmt in UNSUPPORTED:
        found = sorted(k for k in shapes if pattern.search(k))
        if found:
            raise CheckpointError(
                f"{where}: this is a {fmt} file ({len(found)} such keys, e.g. {found[0]}); only LoRA files "
                "(lora_A/lora_B or lora_down/lora_up pairs) and LyCORIS LoKr are supported"
            )
    peft_scale = _peft_metadata_scale(metadata, where)
    layers, used = parse_lokr(shapes, read_scalar, where, split_prefix)
    for key in sorted(shapes):
        for down_suffix, up_suffix in PAIR_SUFFIXES:
            if not key.endswith(down_suffix):
                continue
            stem = key[: -len(down_suffix)]
            up_key = stem + up_suffix
            if up_key not in shapes:
                raise CheckpointError(f"{where}: {key} has no matching {up_key}; the file is incomplete")
            alpha_key = stem + ALPHA_SUFFIX
            if alpha_key in shapes:
                alpha = float(read_scalar(alpha_key).float().reshape(-1)[0])
            elif peft_scale is not None:  # PEFT metadata gives alpha / r: stored as the alpha of this rank
                alpha = peft_scale * (shapes[key] or (1,))[0]
            else:
                alpha = None
            layers.append(_layer(stem, key, up_key, shapes, alpha, where))
            used.update(k for k in (key, up_key, alpha_key) if k in shapes)
    if not layers:
        raise CheckpointError(
            f"{where}: not a LoRA file (no lora_A/lora_B, lora_down/lora_up or LoKr keys); {describe_keys(list(shapes))}"
        )
    orphans = sorted(k for k in shapes if k not in used)
    if orphans:
        raise CheckpointError(
            f"{where}: {len(orphans)} keys are not parts of a LoRA pair or its alpha (first: "
            f"{', '.join(orphans[:MAX_LISTED])}); only lora_A/lora_B, lora_down/lora_up, LoKr and .alpha keys are "
            "supported"
        )
    return layers


def _layer(stem, down_key, up_key, shapes, alpha, where) -> LoraLayer:
    naming, name = split_prefix(stem)
    down_shape, up_shape = shapes[down_key], shapes[up_key]
    if len(down_shape) != 2 or len(up_shape) != 2 or down_shape[0] != up_shape[1]:
        raise CheckpointError(
            f"{where}: layer {name}: down {down_key} {list(down_shape)} and up {up_key} {list(up_shape)} are not a "
            "low-rank pair of matrices (down (rank, in), up (out, rank))"
        )
    return LoraLayer(name, naming, down_key, up_key, tuple(down_shape), tuple(up_shape), alpha)


def _peft_metadata_scale(metadata: dict, where: str) -> float | None:
    """lora_alpha / r from a diffusers file's `lora_adapter_metadata` (one value for every layer), or None."""
    text = metadata.get(PEFT_METADATA_KEY)
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{where}: metadata {PEFT_METADATA_KEY} is not valid JSON ({e})") from None
    values = {k.rpartition(".")[2] if k.startswith("transformer.") else k: v for k, v in config.items()}
    if values.get("alpha_pattern") or values.get("rank_pattern"):
        raise CheckpointError(
            f"{where}: metadata {PEFT_METADATA_KEY} has per-layer alpha_pattern/rank_pattern, which is not supported"
        )
    if values.get("lora_alpha") is None or not values.get("r"):
        return None
    return float(values["lora_alpha"]) / float(values["r"])
