"""Process groups and the token collectives of sequence parallelism (pure torch.distributed).

Method. Self-attention over the video tokens is made exact across ranks with Ulysses-style all-to-all (DeepSpeed
Ulysses): every rank holds a contiguous shard of the tokens with all heads; one all_to_all_single turns that into
all tokens for heads / world_size heads, plain SDPA (the pack's `attention`, so the backend choice still applies)
runs on them, and a second all-to-all turns the output back into the rank's token shard. Everything else in a
block (norms, modulation, feed-forward, text cross-attention with replicated text keys/values) is token-wise and
runs on the shard unchanged. Why this and not a library (checked here, torch 2.13.0+cpu, 2 processes on gloo):
  - yunchang 0.6.4 (pip-installable, imports on the CPU): its Ulysses attention with AttnType.TORCH_MATH calls
    aten::_scaled_dot_product_flash_attention, which has no CPU kernel (NotImplementedError); its attention
    functions take no attention mask, which the LTX-2 conditioning mask needs, and it assumes equal shards.
  - torch.distributed.tensor.experimental.context_parallel (ring attention): runs on the CPU with gloo for a plain
    SDPA call (max abs diff 2.4e-7 against one process, with its load-balanced token order), but it rewrites the
    buffers in place into its own token order, replaces SDPA globally inside its context (text and cross-modal
    attention would be sharded too), and a call with attn_mask (the conditioning mask, the padded-token mask)
    gave no result in the probe (the workers ended without output).
  A hand-written all-to-all needs only all_to_all_single / all_gather (NCCL and gloo both have them), keeps the
  token order, and masks the padding by dropping it after the exchange. Heads must divide by the world size.

The audio stream of LTX-2 (about 25 tokens per second) is replicated on every rank; the video->audio attention,
whose keys are the sharded video tokens, merges per-rank partial softmaxes with their log-sum-exp (exact).
Inference only: the collectives here carry no gradients.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ParallelGroup:
    """A process group with this process's rank in it and its size (group None: the default group)."""

    group: dist.ProcessGroup | None
    rank: int
    size: int

    @classmethod
    def of(cls, group: dist.ProcessGroup | None = None) -> "ParallelGroup":
        if not dist.is_initialized():
            raise RuntimeError(
                "model.parallel: torch.distributed is not initialized; call init_from_env() (under torchrun) or "
                "torch.distributed.init_process_group first"
            )
        return cls(group, dist.get_rank(group), dist.get_world_size(group))


def init_from_env(backend: str | None = None) -> ParallelGroup:
    """Initialize the default process group from torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, ...).

    backend None: "nccl" when CUDA is available (each process then uses GPU LOCAL_RANK), else "gloo". An already
    initialized default group is returned as it is.
    """
    if not dist.is_initialized():
        missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
        if missing:
            raise RuntimeError(f"init_from_env: environment variables {missing} are not set; start with torchrun")
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend)
    return ParallelGroup.of()


def padded_length(tokens: int, world: int) -> int:
    """The smallest multiple of `world` >= tokens."""
    return -(-tokens // world) * world


def shard(x: torch.Tensor, dim: int, pg: ParallelGroup) -> torch.Tensor:
    """x with `dim` zero-padded at the end to a multiple of the world size -> this rank's contiguous chunk."""
    pad = padded_length(x.shape[dim], pg.size) - x.shape[dim]
    if pad:
        shape = list(x.shape)
        shape[dim] = pad
        x = torch.cat((x, x.new_zeros(shape)), dim=dim)  # any dtype, bool masks included
    return x.chunk(pg.size, dim=dim)[pg.rank]


def gather(x: torch.Tensor, dim: int, tokens: int, pg: ParallelGroup) -> torch.Tensor:
    """Inverse of shard: the equal chunks of all ranks concatenated along `dim`, cut to `tokens`."""
    parts = [torch.empty_like(x) for _ in range(pg.size)]
    dist.all_gather(parts, x.contiguous(), group=pg.group)
    return torch.cat(parts, dim=dim).narrow(dim, 0, tokens)


def tokens_to_heads(x: torch.Tensor, pg: ParallelGroup) -> torch.Tensor:
    """(..., H, S, d) with S tokens of this rank -> (..., H / W, W * S, d): all tokens of this rank's heads."""
    *lead, heads, local, width = x.shape
    # (W, ..., H/W, S, d): head group g goes to rank g
    send = x.unflatten(-3, (pg.size, heads // pg.size)).movedim(-4, 0).contiguous()
    received = torch.empty_like(send)  # dim 0: the sending rank = its token chunk
    dist.all_to_all_single(received, send, group=pg.group)
    return received.movedim(0, -3).flatten(-3, -2)  # (..., H/W, W*S, d)


def heads_to_tokens(x: torch.Tensor, pg: ParallelGroup) -> torch.Tensor:
    """Inverse of tokens_to_heads: (..., H / W, W * S, d) -> (..., H, S, d)."""
    send = x.unflatten(-2, (pg.size, -1)).movedim(-3, 0).contiguous()  # (W, ..., H/W, S, d): chunk j to rank j
    received = torch.empty_like(send)  # dim 0: the sending rank = its head group
    dist.all_to_all_single(received, send, group=pg.group)
    return received.movedim(0, -4).flatten(-4, -3)  # (..., H, S, d)


def check_heads(heads: int, pg: ParallelGroup, what: str) -> None:
    if heads % pg.size:
        divisors = [w for w in range(1, heads + 1) if heads % w == 0]
        raise ValueError(
            f"sequence parallel: {what} has {heads} attention heads, which world size {pg.size} does not divide "
            f"(Ulysses gives each rank heads / world_size heads); use a world size in {divisors}, or the batch split"
        )
