"""Merging LoRAs into a transformer's weights in place, and taking them out again, without drift.

    merger = LoraMerger(transformer)
    merger.apply([LoraStrength(load_lora("style.safetensors"), 0.8), LoraStrength(load_lora("motion.safetensors"))])
    ...  # sample: the model runs at its usual speed, the LoRAs are in its weights
    merger.apply([LoraStrength(style, 0.5)])  # another set or strength: merged again from the base weights
    merger.remove()  # the base weights, bit for bit

Per touched layer: W = W_base + sum_i coef_i * (B_i @ A_i), in fp32 on the layer's device, cast back to the
layer's dtype; coef_i = strength_i * alpha_i / rank_i (file.py). FP8Linear layers (fp8 weight, one scale per row)
are dequantised, merged, and quantised again per row.

Where the base weights of the touched layers come from (never a second copy of the whole model):
- kept (default): the first time a layer is touched its weight (and fp8 scales) is copied, in its stored dtype, to
  `base_device` (CPU by default). Cost: sum over the touched layers of out * in * bytes per weight (+ 4 * out for
  fp8 scales): a LoRA on the 8 attention projections (attn1, attn2) of a 48-block 4096-wide stream in bf16 keeps
  48 * 8 * 4096^2 * 2 B = 12 GiB; one on every block layer of the 22B LTX-2.3 transformer 34.6 GiB of its 35.4
  (benchmarks/lora_cpu.py). ComfyUI keeps the same per-layer backups. Measured on the CPU (2 threads, 4 blocks
  1024 wide, rank 32 on all 136 block layers, fp32): first merge 1.75 s (369 MiB kept), strength change 0.82 s,
  remove 0.08 s; the merged forward runs at the base model's speed.
- read back (`base_weights=`): a function returning a layer's weight as loaded, e.g. from the checkpoint file
  (memory-mapped); nothing is kept, each merge and restore reads the touched layers again.
Every apply() merges from the base weights, so changing a LoRA or a strength gives exactly (bit for bit) what a
fresh merge into the base model gives, however often it is changed; layers that the new set no longer touches (or
touches only with strength 0) get their base tensors back unchanged. Transient memory while merging: two fp32
matrices of the largest touched layer.

Apply LoRAs before block streaming (model/streaming.py keeps its own host copies of the block weights); the text
key/value cache (model/speed.py) sees the in-place change through the weights' version counters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..blocks.fp8 import FP8Linear, quantize_rows
from .file import LoraFile, LoraLayer
from .lokr import LokrLayer
from .targets import linear_layers, match_layers, model_family


@dataclass(frozen=True)
class LoraStrength:
    """One LoRA of a stack and its strengths. audio_strength: LTX-2 audio layers (targets.py); None = strength."""

    lora: LoraFile
    strength: float = 1.0
    audio_strength: float | None = None


# one term of a layer's delta: coefficient, the file, the layer in it
Term = tuple[float, LoraFile, LoraLayer | LokrLayer]


def layer_terms(model: nn.Module, loras: Sequence[LoraStrength]) -> dict[str, list[Term]]:
    """Official layer name -> the non-zero terms of its delta, in stack order (files checked against the model)."""
    family = model_family(model)
    plan: dict[str, list[Term]] = {}
    for index, spec in enumerate(loras):
        if not isinstance(spec, LoraStrength) or not isinstance(spec.lora, LoraFile):
            raise TypeError(f"loras[{index}]: expected LoraStrength(load_lora(...), strength), got {spec!r}")
        if family == "ltxv" and spec.audio_strength is not None:
            raise ValueError(
                f"loras[{index}] ({spec.lora.path}): audio_strength is for LTX-2 models; this LTX-Video 0.9.x model "
                "has no audio stream (leave it None)"
            )
        for target in match_layers(spec.lora, model):
            strength = spec.audio_strength if target.audio and spec.audio_strength is not None else spec.strength
            coef = float(strength) * target.layer.scale
            if coef != 0.0:
                plan.setdefault(target.name, []).append((coef, spec.lora, target.layer))
    return plan


def merged_weight(base: torch.Tensor, base_scale: torch.Tensor | None, terms: list[Term]) -> torch.Tensor:
    """fp32 (out, in): the base weight (dequantised when base_scale is given) plus every term's coef * B @ A
    (coef * kron(w1, w2) for LoKr layers)."""
    # a new fp32 tensor in both cases (base.float() of an fp32 base would be the kept base itself)
    weight = base.to(torch.float32, copy=True) if base_scale is None else base.float() * base_scale.float()[:, None]
    for coef, lora, layer in terms:
        weight += coef * lora.delta(layer, weight.device)  # B @ A (or a LoKr product), (out, in)
    return weight


class LoraMerger:
    """Keeps one transformer's LoRA stack merged into its weights (module docstring).

    base_weights: optional name -> that layer's base weight as it was loaded (before any fp8 conversion), e.g. read
    again from the checkpoint file. Given, no base tensor is kept in memory: every merge and restore reads the
    base weight through it (fp8 layers quantise it per row again, as convert_linears_to_fp8 did at load time)."""

    def __init__(
        self,
        model: nn.Module,
        base_device: torch.device | str = "cpu",
        base_weights: Callable[[str], torch.Tensor] | None = None,
    ):
        model_family(model)  # TypeError for anything but our two transformers
        self.model = model
        self.base_device = torch.device(base_device)
        self.base_weights = base_weights
        # official layer name -> (the module, its kept base weight in the stored dtype, its fp8 row scales or None);
        # weight and scales are None when base_weights reads them
        self._base: dict[str, tuple[nn.Module, torch.Tensor | None, torch.Tensor | None]] = {}
        self.loras: tuple[LoraStrength, ...] = ()

    @property
    def base_bytes(self) -> int:
        """Bytes held for the base tensors of the touched layers."""
        return sum(
            (0 if w is None else w.numel() * w.element_size()) + (0 if s is None else s.numel() * 4)
            for _, w, s in self._base.values()
        )

    @property
    def touched(self) -> list[str]:
        """Layers touched by this or an earlier stack (their base weights are kept or read back)."""
        return list(self._base)

    @torch.no_grad()
    def apply(self, loras: Sequence[LoraStrength]) -> None:
        """Make the model's weights base + this stack (all files are checked before any weight changes)."""
        plan = layer_terms(self.model, loras)
        layers = linear_layers(self.model)
        for name, (module, _, _) in self._base.items():
            if layers.get(name) is not module:
                raise RuntimeError(
                    f"LoraMerger: layer {name} was replaced since its LoRA was merged (e.g. by an fp8 conversion); "
                    "call remove() before changing the model's layers, then make a new LoraMerger"
                )
        for name in list(self._base):
            if name not in plan:
                self._restore(name)
        for name, terms in plan.items():
            self._merge(name, layers[name], terms)
        self.loras = tuple(loras)

    def remove(self) -> None:
        """Every touched layer back to its base tensors, bit for bit; the kept copies are released."""
        self.apply([])
        self._base.clear()

    def _read_base(self, name: str, module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(base weight, fp8 row scales or None) on the layer's device."""
        device = module.weight.device
        _, weight, scale = self._base[name]
        if self.base_weights is None:
            return weight.to(device), None if scale is None else scale.to(device)
        weight = self.base_weights(name).to(device)
        expected = (module.out_features, module.in_features)
        if tuple(weight.shape) != expected:
            raise ValueError(f"LoraMerger base_weights({name!r}) has shape {tuple(weight.shape)}, the layer {expected}")
        if isinstance(module, FP8Linear):  # the fp8 base as convert_linears_to_fp8 made it from this weight
            weight_fp8, row_scale = quantize_rows(weight)
            return weight_fp8, row_scale.squeeze(1)
        return weight.to(module.weight.dtype), None

    def _restore(self, name: str) -> None:
        module = self._base[name][0]
        weight, scale = self._read_base(name, module)
        module.weight.copy_(weight)
        if scale is not None:
            module.weight_scale.copy_(scale)

    def _merge(self, name: str, module: nn.Module, terms: list[Term]) -> None:
        fp8 = isinstance(module, FP8Linear)
        if name not in self._base:
            if self.base_weights is not None:
                self._base[name] = (module, None, None)
            else:
                scale = module.weight_scale.detach().to(self.base_device, copy=True) if fp8 else None
                self._base[name] = (module, module.weight.detach().to(self.base_device, copy=True), scale)
        weight = merged_weight(*self._read_base(name, module), terms)
        if fp8:
            weight_fp8, row_scale = quantize_rows(weight)  # (out, in), (out, 1)
            module.weight.copy_(weight_fp8)
            module.weight_scale.copy_(row_scale.squeeze(1))
        else:
            module.weight.copy_(weight.to(module.weight.dtype))
