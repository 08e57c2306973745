"""Sequence-parallel and batch-split forwards of both transformers, wrapping the existing modules.

Sequence parallel: the video tokens and everything given per video token (coordinates / positions, per-token
timesteps, keyframe mask) are padded to a multiple of the world size and sharded; the unchanged model forward runs
on the shard with its self-attention modules swapped for UlyssesAttention (and, in LTX-2, its video->audio
attention for ShardedKeyAttention); the velocity shards are gathered and the padding cut. RoPE is computed by the
model from the sharded positions, so each token keeps its own rotation. Text and (LTX-2) audio are replicated.

Batch split ("CFG split"): the samples of a batch (e.g. cond and uncond) are spread over the ranks, each rank runs
the whole model on its samples, the outputs are gathered. No collective inside the model; any head count.

Every rank calls these with the same inputs and gets the full result.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.distributed as dist
from torch import nn

from ..ltx2.streams import NO_SKIP, Skip, Stream
from ..ltx2.transformer import LTX2Transformer, self_attention_bias
from ..ltxv.dit import LTXVideoTransformer, SkipLayers
from .attention import ShardedKeyAttention, UlyssesAttention, swapped_sdpa
from .engine import ParallelGroup, check_heads, gather, padded_length, shard


@torch.no_grad()
def dit_sequence_parallel(
    model: LTXVideoTransformer,
    tokens: torch.Tensor,
    coords: torch.Tensor,
    text: torch.Tensor,
    text_mask: torch.Tensor,
    timestep: torch.Tensor,
    skip: SkipLayers | None = None,
    group: ParallelGroup | None = None,
) -> torch.Tensor:
    """LTXVideoTransformer.forward (same arguments and result) with the N video tokens split across the group."""
    pg = group or ParallelGroup.of()
    check_heads(model.config.num_attention_heads, pg, "the 0.9.x DiT self-attention")
    count = tokens.shape[1]
    per_token = timestep.shape[1] == count and count > 1
    ulysses = UlyssesAttention(pg, count)
    with swapped_sdpa({block.attn1: ulysses for block in model.transformer_blocks}):
        out = model(
            shard(tokens, 1, pg),
            shard(coords, 2, pg),
            text,
            text_mask,
            shard(timestep, 1, pg) if per_token else timestep,
            skip,
        )  # (B, N_pad / W, out_channels)
    return gather(out, 1, count, pg)


def _shard_stream(stream: Stream, pg: ParallelGroup) -> Stream:
    """The stream's tokens and per-token inputs sharded; the self-attention mask left out (given to Ulysses)."""
    return replace(
        stream,
        latent=shard(stream.latent, 1, pg),
        timesteps=shard(stream.timesteps, 1, pg),
        positions=shard(stream.positions, 2, pg),
        attention_mask=None,
        keyframe_mask=None if stream.keyframe_mask is None else shard(stream.keyframe_mask, 1, pg),
    )


@torch.no_grad()
def ltx2_sequence_parallel(
    model: LTX2Transformer,
    video: Stream | None,
    audio: Stream | None,
    skip: Skip = NO_SKIP,
    group: ParallelGroup | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """LTX2Transformer.forward (same arguments and result) with the video tokens split across the group.

    The audio stream is replicated: every rank runs it whole (it is short), so audio self-attention, audio text
    attention and audio->video attention (video queries of the shard, all audio keys) are local and exact; the
    video->audio attention merges the per-rank key shards (ShardedKeyAttention). Audio only: the plain forward.
    """
    if video is None:
        return model(video, audio, skip)
    pg = group or ParallelGroup.of()
    check_heads(model.config.num_attention_heads, pg, "the LTX-2 video self-attention")
    count = video.latent.shape[1]
    bias = self_attention_bias(video.attention_mask, video.latent.dtype)  # (B, 1, T, T) or None
    replacements = {block.attn1: UlyssesAttention(pg, count, bias) for block in model.transformer_blocks}
    if audio is not None and model.config.audio:
        key_shards = ShardedKeyAttention(pg, count)
        replacements.update({block.video_to_audio_attn: key_shards for block in model.transformer_blocks})
    with swapped_sdpa(replacements):
        video_out, audio_out = model(_shard_stream(video, pg), audio, skip)
    return gather(video_out, 1, count, pg), audio_out


def _batch_chunk(x: torch.Tensor | None, pg: ParallelGroup, batch: int) -> torch.Tensor | None:
    """This rank's samples of a (B, ...) tensor: contiguous chunks of ceil(B / W), the last padded by repeating
    the last sample. Tensors with a batch of 1 that broadcast (e.g. 0.9.x coords) are kept."""
    if x is None or (x.shape[0] == 1 and batch > 1):
        return x
    per_rank = padded_length(batch, pg.size) // pg.size
    index = torch.arange(pg.rank * per_rank, (pg.rank + 1) * per_rank, device=x.device).clamp(max=batch - 1)
    return x.index_select(0, index)


def _gather_batch(x: torch.Tensor, pg: ParallelGroup, batch: int) -> torch.Tensor:
    parts = [torch.empty_like(x) for _ in range(pg.size)]
    dist.all_gather(parts, x.contiguous(), group=pg.group)
    return torch.cat(parts)[:batch]


@torch.no_grad()
def dit_batch_split(
    model: LTXVideoTransformer,
    tokens: torch.Tensor,
    coords: torch.Tensor,
    text: torch.Tensor,
    text_mask: torch.Tensor,
    timestep: torch.Tensor,
    skip: SkipLayers | None = None,
    group: ParallelGroup | None = None,
) -> torch.Tensor:
    """LTXVideoTransformer.forward with the batch (e.g. cond / uncond / STG samples) spread over the group."""
    pg = group or ParallelGroup.of()
    batch = tokens.shape[0]
    local_skip = skip
    if skip is not None:
        local_skip = SkipLayers(skip.blocks, skip.mode, _batch_chunk(skip.perturbed, pg, batch))
    out = model(*(_batch_chunk(t, pg, batch) for t in (tokens, coords, text, text_mask, timestep)), local_skip)
    return _gather_batch(out, pg, batch)


def _stream_chunk(stream: Stream | None, pg: ParallelGroup, batch: int) -> Stream | None:
    if stream is None:
        return None
    fields = ("latent", "sigma", "timesteps", "positions", "context", "context_mask", "attention_mask", "keyframe_mask")
    return replace(stream, **{name: _batch_chunk(getattr(stream, name), pg, batch) for name in fields})


@torch.no_grad()
def ltx2_batch_split(
    model: LTX2Transformer,
    video: Stream | None,
    audio: Stream | None,
    skip: Skip = NO_SKIP,
    group: ParallelGroup | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """LTX2Transformer.forward with the batch of both streams spread over the group (skip applies to all)."""
    pg = group or ParallelGroup.of()
    batch = (video if video is not None else audio).latent.shape[0]
    outputs = model(_stream_chunk(video, pg, batch), _stream_chunk(audio, pg, batch), skip)
    return tuple(None if out is None else _gather_batch(out, pg, batch) for out in outputs)


class SplitTransformer(nn.Module):
    """A transformer of either family run split over the group, called like the model itself: a drop-in for
    model.sampling.sample (0.9.x: transformer=SplitTransformer(dit)) and for the LTX-2 samplers' denoiser
    (denoiser=SplitTransformer(ltx2)). mode "sequence": video tokens split (Ulysses); "batch": samples split."""

    def __init__(self, model: LTXVideoTransformer | LTX2Transformer, mode: str = "sequence", group=None):
        super().__init__()
        if mode not in ("sequence", "batch"):
            raise ValueError(f"SplitTransformer: mode must be 'sequence' or 'batch', got {mode!r}")
        if not isinstance(model, (LTXVideoTransformer, LTX2Transformer)):
            raise ValueError(f"SplitTransformer: expected an LTXVideoTransformer or LTX2Transformer, got {type(model)}")
        self.model, self.mode, self.group = model, mode, group
        self.config = model.config

    def forward(self, *args, **kwargs):
        dit = isinstance(self.model, LTXVideoTransformer)
        run = {
            (True, "sequence"): dit_sequence_parallel,
            (True, "batch"): dit_batch_split,
            (False, "sequence"): ltx2_sequence_parallel,
            (False, "batch"): ltx2_batch_split,
        }[dit, self.mode]
        return run(self.model, *args, group=self.group, **kwargs)
