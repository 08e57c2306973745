"""LyCORIS LoKr layers: the weight difference is a Kronecker product, delta = kron(w1, w2) of shape (out, in) with
w1 (out1, in1), w2 (out2, in2), out = out1 * out2, in = in1 * in2; each factor is stored whole (`lokr_w1`) or as a
low-rank product (`lokr_w1_a @ lokr_w1_b`). Scale (ComfyUI's rule): alpha / dim when the file stores `<m>.alpha`
and a factor is low-rank (dim = rows of lokr_w2_b, else of lokr_w1_b), otherwise 1.0. Conv-only Tucker cores
(`lokr_t2`) are refused. LoKr layers merge (LoraMerger); they have no low-rank side path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..checkpoint.files import CheckpointError

LOKR_SUFFIXES = (".lokr_w1", ".lokr_w2", ".lokr_w1_a", ".lokr_w1_b", ".lokr_w2_a", ".lokr_w2_b", ".lokr_t2")


@dataclass(frozen=True)
class LokrLayer:
    """One LoKr layer (names as in file.LoraLayer); w1/w2: the key of the whole factor, or None for a_b pairs."""

    name: str
    naming: str
    stem: str  # the file's key of the layer without the .lokr_* suffix
    factor_shapes: tuple[tuple[int, int], tuple[int, int]]  # w1 (out1, in1), w2 (out2, in2)
    low_rank: tuple[bool, bool]  # w1, w2 stored as _a @ _b
    alpha: float | None
    dim: int | None  # the rank ComfyUI divides alpha by

    @property
    def out_in(self) -> tuple[int, int]:
        (o1, i1), (o2, i2) = self.factor_shapes
        return o1 * o2, i1 * i2

    @property
    def scale(self) -> float:
        return self.alpha / self.dim if self.alpha is not None and self.dim is not None else 1.0

    def delta(self, get, device: torch.device) -> torch.Tensor:
        """fp32 (out, in) kron(w1, w2), without the scale; `get` reads a key of the file."""
        factors = []
        for index, low_rank in zip((1, 2), self.low_rank, strict=True):
            key = f"{self.stem}.lokr_w{index}"
            if low_rank:
                factors.append(get(key + "_a").to(device, torch.float32) @ get(key + "_b").to(device, torch.float32))
            else:
                factors.append(get(key).to(device, torch.float32))
        return torch.kron(*factors)


def parse_lokr(shapes: dict[str, tuple[int, ...]], read_scalar, where: str, split_prefix) -> tuple[list, set[str]]:
    """(LoKr layers, keys they use) of a file; CheckpointError for incomplete or conv-only layers."""
    stems = sorted({k.rsplit(".lokr_", 1)[0] for k in shapes if k.endswith(LOKR_SUFFIXES)})
    layers, used = [], set()
    for stem in stems:
        if stem + ".lokr_t2" in shapes:
            raise CheckpointError(f"{where}: {stem}.lokr_t2: LoKr Tucker cores are for convolutions, not supported")
        factor_shapes, low_rank, dims = [], [], [None, None]
        for index in (1, 2):
            whole, a, b = (f"{stem}.lokr_w{index}{s}" for s in ("", "_a", "_b"))
            if whole in shapes and len(shapes[whole]) == 2:
                factor_shapes.append(tuple(shapes[whole]))
                low_rank.append(False)
                used.add(whole)
            elif a in shapes and b in shapes and len(shapes[a]) == len(shapes[b]) == 2 and shapes[a][1] == shapes[b][0]:
                factor_shapes.append((shapes[a][0], shapes[b][1]))
                low_rank.append(True)
                dims[index - 1] = shapes[b][0]
                used.update((a, b))
            else:
                raise CheckpointError(
                    f"{where}: LoKr layer {stem} has no usable factor {index} (lokr_w{index} (out, in), or "
                    f"lokr_w{index}_a (out, r) with lokr_w{index}_b (r, in))"
                )
        alpha_key = stem + ".alpha"
        alpha = None
        if alpha_key in shapes:
            alpha = float(read_scalar(alpha_key).float().reshape(-1)[0])
            used.add(alpha_key)
        naming, name = split_prefix(stem)
        dim = dims[1] if dims[1] is not None else dims[0]
        layers.append(LokrLayer(name, naming, stem, tuple(factor_shapes), tuple(low_rank), alpha, dim))
    return layers, used
