"""Sequence-parallel replacements of attention(q, k, v, bias), installed per module on Attention.sdpa.

UlyssesAttention: self-attention of a sharded stream (queries and keys are the same sharded tokens).
ShardedKeyAttention: replicated queries (the LTX-2 audio) attending to sharded keys (the video tokens).
Shapes as in model/blocks/attention.attention: q (B, H, Nq, d), k/v (B, H, Nk, d).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..blocks.attention import Attention, attention
from .engine import ParallelGroup, heads_to_tokens, tokens_to_heads


class UlyssesAttention:
    """Exact self-attention over `tokens` real tokens sharded (padded) across the group.

    bias: None, or the additive bias of the whole unsharded sequence (B, 1, tokens, tokens); the block's own bias
    argument must then be None (the sharded stream carries no mask).
    """

    def __init__(self, pg: ParallelGroup, tokens: int, bias: torch.Tensor | None = None):
        self.pg, self.tokens, self.bias = pg, tokens, bias

    def __call__(self, q, k, v, bias=None) -> torch.Tensor:
        if bias is not None:
            raise ValueError("UlyssesAttention: a per-shard bias cannot be sharded; give the full bias at setup")
        local = q.shape[-2]  # S tokens of this rank (padded shard)
        qkv = tokens_to_heads(torch.stack((q, k, v)), self.pg)  # (3, B, H/W, W*S, d)
        q, k, v = qkv[:, :, :, : self.tokens].unbind(0)  # padding dropped: it is neither query nor key
        out = attention(q, k, v, self.bias)  # (B, H/W, tokens, d)
        out = F.pad(out, (0, 0, 0, self.pg.size * local - self.tokens))
        return heads_to_tokens(out, self.pg)  # (B, H, S, d)


class ShardedKeyAttention:
    """Exact attention of queries present on every rank to keys sharded across the group (`tokens` real keys).

    Each rank attends to its own key shard (its padding masked) and returns its output with the log-sum-exp of
    its scores; the partial results of all ranks are merged with softmax weights exp(lse_r - lse). Every rank gets
    the same result (the merge runs in rank order on the same gathered tensors). Computed in float32.
    """

    def __init__(self, pg: ParallelGroup, tokens: int):
        self.pg, self.tokens = pg, tokens

    def __call__(self, q, k, v, bias=None) -> torch.Tensor:
        if bias is not None:
            raise ValueError("ShardedKeyAttention: an attention bias over the sharded keys is not supported")
        local = k.shape[-2]
        valid = max(0, min(local, self.tokens - self.pg.rank * local))  # real keys of this rank
        qf, kf, vf = (t.float() for t in (q, k[..., :valid, :], v[..., :valid, :]))
        scores = qf @ kf.transpose(-1, -2) * q.shape[-1] ** -0.5  # (B, H, Nq, valid)
        if valid:
            lse = torch.logsumexp(scores, dim=-1, keepdim=True)  # (B, H, Nq, 1)
            out = torch.exp(scores - lse) @ vf  # (B, H, Nq, d)
        else:  # a rank holding padding only contributes nothing
            lse = torch.full((*q.shape[:-1], 1), float("-inf"), device=q.device)
            out = torch.zeros(q.shape, device=q.device)
        packed = torch.cat((out, lse), dim=-1)  # (B, H, Nq, d + 1)
        parts = [torch.empty_like(packed) for _ in range(self.pg.size)]
        dist.all_gather(parts, packed, group=self.pg.group)
        stacked = torch.stack(parts)  # (W, B, H, Nq, d + 1)
        outs, lses = stacked[..., :-1], stacked[..., -1:]
        weights = torch.softmax(lses, dim=0)  # exp(lse_r - logsumexp_r lse_r)
        return (weights * outs).sum(dim=0).to(q.dtype)


@contextmanager
def swapped_sdpa(replacements: dict[Attention, object]):
    """Within the block, each Attention in `replacements` computes attention with its replacement."""
    previous = {module: module.sdpa for module in replacements}
    try:
        for module, sdpa in replacements.items():
            module.sdpa = sdpa
        yield
    finally:
        for module, sdpa in previous.items():
            module.sdpa = sdpa
