"""Weight streaming: run a transformer whose blocks do not all fit on the GPU.

Of the `resident` blocks that fit, `resident - window` stay on the GPU for good (spread evenly over the stack); the
others live in pinned CPU memory and pass through `window` slots: before block i runs, the copies of the next
`window` streamed blocks are issued on a side stream, so that they overlap the compute of the blocks before them;
after a streamed block ran, its GPU copy is dropped. The copies land in `window` device buffers allocated once and
reused every step, so streaming does no allocator work. Keeping blocks matters: the H2D copy of all 48 blocks of the
22B model (35 GiB bf16) takes longer than its step, so streaming all of them cannot hide behind the compute
(benchmarks/results/streaming/). Everything that is not a block (embeddings, final layer) stays on the GPU.
Family-agnostic: it works on any module whose blocks are one `nn.ModuleList` called in order, once each, per
forward (both LTX families, Gemma's layers).

    streamer = stream_blocks(transformer, transformer.transformer_blocks, "cuda", resident=20)
    ...  # forward as usual
    streamer.remove()  # blocks back on their host tensors

`plan_resident_blocks` picks `resident` from the free GPU memory; `place_model` moves a model to its device whole
when it fits and streams its blocks when not (the automatic default the pipelines and the loader node use).
"""

from dataclasses import dataclass, field

import torch
from torch import nn


def module_bytes(module: nn.Module) -> int:
    """Bytes of a module's parameters and buffers."""
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def plan_resident_blocks(
    blocks: nn.ModuleList, free_bytes: int, reserve_bytes: int, other_bytes: int = 0
) -> int | None:
    """How many blocks may sit on the GPU at once: None when all of them fit (no streaming needed), else >= 2.

    free_bytes: free GPU memory now; reserve_bytes: kept for activations; other_bytes: the non-block weights that
    will also be on the GPU. Raises ValueError when not even two blocks fit.
    """
    budget = free_bytes - reserve_bytes - other_bytes
    per_block = max(module_bytes(b) for b in blocks)
    if per_block * len(blocks) <= budget:
        return None
    resident = budget // per_block
    if resident < 2:
        raise ValueError(
            f"weight streaming: {free_bytes / 2**30:.1f} GiB free on the GPU leaves room for {resident} block(s) of "
            f"{per_block / 2**30:.2f} GiB after {reserve_bytes / 2**30:.1f} GiB for activations and "
            f"{other_bytes / 2**30:.1f} GiB of other weights; streaming needs room for 2. Free GPU memory, use fp8 "
            "weights, or a smaller size"
        )
    return int(min(resident, len(blocks)))


@dataclass
class _BlockCopy:
    """The pinned CPU tensors of one block, and while it is loaded, its GPU tensors and the copy's event."""

    cpu: dict[str, torch.Tensor]
    gpu: dict[str, torch.Tensor] | None = None
    ready: torch.cuda.Event | None = None


def kept_blocks(num_blocks: int, resident: int, window: int) -> frozenset[int]:
    """Which blocks stay on the device for good when `resident` fit and `window` of those slots stream the rest:
    resident - window blocks, spread evenly so that a streamed block's copy overlaps the kept blocks before it."""
    kept = num_blocks if resident >= num_blocks else max(0, resident - window)
    streamed = num_blocks - kept
    streamed_at = {int((j + 0.5) * num_blocks / streamed) for j in range(streamed)}
    return frozenset(i for i in range(num_blocks) if i not in streamed_at)


@dataclass
class BlockStreamer:
    """Keeps `resident - window` blocks on the device and streams the others through `window` slots: before block
    i runs, the next `window` streamed blocks from i on are loaded (or on their way); a streamed block is dropped
    after it ran. See module doc."""

    blocks: nn.ModuleList
    device: torch.device
    resident: int
    window: int = 3
    kept: frozenset[int] = frozenset()
    copies: dict[int, _BlockCopy] = field(default_factory=dict)  # streamed blocks only
    host: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)  # kept blocks' host tensors
    handles: list = field(default_factory=list)
    loaded_peak: int = 0  # the most streamed blocks that were on the device at once (for tests and benchmarks)

    def __post_init__(self):
        if self.resident < 2:
            raise ValueError(f"BlockStreamer: resident must be >= 2 (one running, one arriving), got {self.resident}")
        if self.window < 2:
            raise ValueError(f"BlockStreamer: window must be >= 2 (one running, one arriving), got {self.window}")
        self.device = torch.device(self.device)
        self.window = min(self.window, self.resident)
        self.kept = kept_blocks(len(self.blocks), self.resident, self.window)
        use_cuda = self.device.type == "cuda"
        self.side = torch.cuda.Stream(self.device) if use_cuda else None
        for i, block in enumerate(self.blocks):
            if i in self.kept:
                self.host[i] = {name: tensor.detach() for name, tensor in _named_tensors(block)}
                _assign(block, {name: t.to(self.device) for name, t in self.host[i].items()})
                continue
            cpu = {}
            for name, tensor in _named_tensors(block):
                if use_cuda:  # one copy straight into pinned memory, from the GPU or from pageable host memory
                    cpu[name] = torch.empty_like(tensor, device="cpu", pin_memory=True).copy_(tensor.detach())
                else:
                    cpu[name] = tensor.detach().to("cpu")
            self.copies[i] = _BlockCopy(cpu)
            _assign(block, cpu)
        self.streamed = sorted(self.copies)
        self.slot_of = {j: k % self.window for k, j in enumerate(self.streamed)}
        self.slots: list[dict[str, torch.Tensor] | None] = [None] * self.window  # device buffers, reused per step
        for i in self.streamed:
            self.handles.append(self.blocks[i].register_forward_hook(self._after(i)))
        for i, block in enumerate(self.blocks):
            self.handles.append(block.register_forward_pre_hook(self._before(i)))

    def _slot(self, i: int) -> dict[str, torch.Tensor] | None:
        """The device buffers block i is copied into: the same `window` buffers every step (no allocation, so no
        allocator work or fragmentation while streaming); None for a block whose tensors differ in name, shape or
        dtype from the buffers' (it gets fresh memory)."""
        k = self.slot_of[i]
        cpu = self.copies[i].cpu
        if self.slots[k] is None:
            self.slots[k] = {name: torch.empty_like(t, device=self.device) for name, t in cpu.items()}
        slot = self.slots[k]
        same = slot.keys() == cpu.keys() and all(
            slot[n].shape == t.shape and slot[n].dtype == t.dtype for n, t in cpu.items()
        )
        return slot if same else None

    def _load(self, i: int) -> None:
        copy = self.copies[i]
        if copy.gpu is not None:
            return
        slot = self._slot(i)
        if self.side is None:
            copy.gpu = {name: (slot[name] if slot else torch.empty_like(t)).copy_(t) for name, t in copy.cpu.items()}
        else:
            # The side stream must not start copying into memory the compute stream may still be reading (the
            # slot's previous block is queued before this point).
            self.side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.side):
                copy.gpu = {
                    name: slot[name].copy_(t, non_blocking=True) if slot else t.to(self.device, non_blocking=True)
                    for name, t in copy.cpu.items()
                }
                copy.ready = torch.cuda.Event()
                copy.ready.record(self.side)
        self.loaded_peak = max(self.loaded_peak, sum(c.gpu is not None for c in self.copies.values()))

    def _before(self, i: int):
        def hook(module, args):
            for j in [j for j in self.streamed if j >= i][: self.window]:
                self._load(j)
            copy = self.copies.get(i)
            if copy is None:
                return  # a kept block
            if copy.ready is not None:
                compute = torch.cuda.current_stream(self.device)
                compute.wait_event(copy.ready)
                for t in copy.gpu.values():
                    t.record_stream(compute)  # fresh (non-slot) memory is reused only after this block's compute
            _assign(module, copy.gpu)

        return hook

    def _after(self, i: int):
        def hook(module, args, output):
            copy = self.copies[i]
            _assign(module, copy.cpu)
            copy.gpu, copy.ready = None, None
            return output

        return hook

    def remove(self) -> None:
        """Detach the hooks; every block is back on its host tensors (the kept ones too)."""
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        for i, tensors in self.host.items():
            _assign(self.blocks[i], tensors)
        self.slots = [None] * self.window


def stream_blocks(model: nn.Module, blocks: nn.ModuleList, device, resident: int, window: int = 3) -> BlockStreamer:
    """Move everything of `model` except `blocks` to `device`; keep `resident - window` blocks there and stream the
    others through `window` slots (see BlockStreamer)."""
    block_ids = {id(t) for b in blocks for _, t in _named_tensors(b)}
    for module in model.modules():
        for name, tensor in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
            if id(tensor) not in block_ids:
                _set(module, name, tensor.detach().to(device))
    return BlockStreamer(blocks, torch.device(device), resident, window)


def _named_tensors(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return list(module.named_parameters()) + list(module.named_buffers())


def _assign(block: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    for name, tensor in tensors.items():
        owner_name, _, leaf = name.rpartition(".")
        _set(block.get_submodule(owner_name) if owner_name else block, leaf, tensor)


def _set(owner: nn.Module, leaf: str, tensor: torch.Tensor) -> None:
    if leaf in owner._parameters:
        owner._parameters[leaf] = nn.Parameter(tensor, requires_grad=False)
    else:
        owner._buffers[leaf] = tensor


def place_model(
    model: nn.Module, blocks: nn.ModuleList, device, resident="auto", reserve_bytes: int = 4 * 2**30, window: int = 3
) -> BlockStreamer | None:
    """Put `model` on `device`, streaming `blocks` when they do not all fit. Returns the streamer, or None when the
    model moved whole.

    resident: "auto" (on a CUDA device: planned from the free memory after `reserve_bytes` for activations, whole
    when everything fits; elsewhere whole), an int >= 2 (always stream, that many blocks on the device), or "off"
    (whole, whatever the memory). The 22B LTX-2 step at 768x512x121 with CFG needs about 2.8 GiB of activations in
    bf16 (benchmarks/results/streaming): the 4 GiB default leaves room for that size; give more for larger videos."""
    device = torch.device(device)
    if resident == "off" or (resident == "auto" and device.type != "cuda"):
        model.to(device)
        return None
    if resident == "auto":
        free, _ = torch.cuda.mem_get_info(device)
        other = module_bytes(model) - sum(module_bytes(b) for b in blocks)
        resident = plan_resident_blocks(blocks, free, reserve_bytes, other)
        if resident is None:
            model.to(device)
            return None
    if isinstance(resident, bool) or not isinstance(resident, int) or resident < 2:
        raise ValueError(f'resident must be "auto", "off" or an integer >= 2 (blocks on the device), got {resident!r}')
    return stream_blocks(model, blocks, device, resident, window)
