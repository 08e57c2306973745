"""LoRAs as a low-rank side path: the weights stay untouched and a forward hook on each touched layer adds
sum_i coef_i * (x @ A_i^T) @ B_i^T to its output (the way PEFT runs an unmerged adapter).

    side = LoraSidePath(transformer)
    side.apply([LoraStrength(load_lora("style.safetensors"), 0.8)])
    ...
    side.remove()  # hooks gone; the weights were never changed

Cost, per touched layer (out, in) of rank r at T tokens: memory r * (in + out) LoRA weights (on the layer's device,
in the compute dtype) plus a (T, r) activation; time T * r * (in + out) extra multiply-adds at every forward on top
of the layer's T * in * out (the merge pays r * in * out once): 2 r / d more linear-layer work for square d x d
layers (6.25 % at r = 32, d = 1024; 18.75 % for a rank-384 LoRA on 4096-wide layers), plus two extra kernel launches
per layer. Measured (benchmarks/lora_cpu.py, CPU, 2 shared threads, 4 blocks 1024 wide, 512 video tokens, rank 32 on
all 136 block layers): forward 2.93 s vs 2.44 s merged and 2.65 s base (timings on a loaded machine, +-10 %);
factors 26.8 MiB. Changing a strength is cheap and never touches the weights, fp8 layers keep their
exact base weights, but every step is slower: use LoraMerger for sampling, this for quick comparisons. Do not
combine the two on one model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks.fp8 import FP8
from .lokr import LokrLayer
from .merge import LoraStrength, layer_terms
from .targets import linear_layers, model_family


class LoraSidePath:
    """Forward hooks adding the LoRA stack's low-rank products to the touched layers' outputs."""

    def __init__(self, model: nn.Module):
        model_family(model)
        self.model = model
        self._handles: list = []
        # official layer name -> [(coef, down (r, in), up (out, r))]
        self.factors: dict[str, list[tuple[float, torch.Tensor, torch.Tensor]]] = {}

    @property
    def factor_bytes(self) -> int:
        return sum(
            d.numel() * d.element_size() + u.numel() * u.element_size() for f in self.factors.values() for _, d, u in f
        )

    def apply(self, loras: Sequence[LoraStrength]) -> None:
        """Hooks for this stack replace the previous ones (all files are checked first)."""
        plan = layer_terms(self.model, loras)
        lokr = next(
            (lora.path for terms in plan.values() for _, lora, layer in terms if isinstance(layer, LokrLayer)), None
        )
        if lokr is not None:
            raise ValueError(f"{lokr}: LoKr layers are not low-rank products and have no side path; use LoraMerger")
        layers = linear_layers(self.model)
        self.remove()
        for name, terms in plan.items():
            module = layers[name]
            dtype = torch.bfloat16 if module.weight.dtype == FP8 else module.weight.dtype
            device = module.weight.device
            self.factors[name] = [
                (coef, lora.down(layer).to(device, dtype), lora.up(layer).to(device, dtype))
                for coef, lora, layer in terms
            ]
            self._handles.append(module.register_forward_hook(self._hook(name)))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.factors.clear()

    def _hook(self, name: str):
        def add_low_rank(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            x = inputs[0]  # (..., in)
            for coef, down, up in self.factors[name]:
                output = output + coef * F.linear(F.linear(x, down.to(x.dtype)), up.to(x.dtype))  # (..., out)
            return output

        return add_low_rank
