"""One LTX-2 transformer block: per stream self-attention, text cross-attention and feed-forward, plus the
audio->video and video->audio cross-attentions between the streams.

Parameter names are the official ones (video unprefixed, audio with `audio_`). Shapes: B batch, T tokens of a
stream, D its width, L text tokens, T' = T (per-token timesteps) or 1.
"""

from dataclasses import dataclass, replace

import torch
from torch import nn

from ..blocks.attention import Attention
from ..blocks.feedforward import FeedForward
from ..blocks.norm import rms_norm
from .config import AVTransformerConfig
from .streams import Skip


@dataclass(frozen=True)
class StreamState:
    """What every block needs about one stream (built once per forward by the transformer)."""

    x: torch.Tensor  # (B, T, D) hidden tokens
    context: torch.Tensor  # (B, L, D_text) text features
    context_bias: torch.Tensor | None  # (B, 1, 1, L) additive, or None
    self_bias: torch.Tensor | None  # (B, 1, T, T) additive, or None
    modulation: torch.Tensor  # (B, T', rows, D) AdaLN-single output of the per-token timesteps
    embedded: torch.Tensor  # (B, T', D) embedded timesteps (the output head's modulation)
    prompt_modulation: torch.Tensor | None  # (B, 1, 2, D) prompt AdaLN of sigma, or None
    rope: tuple[torch.Tensor, torch.Tensor]  # self-attention cos, sin
    cross_rope: tuple[torch.Tensor, torch.Tensor] | None = None  # time-only RoPE of the A<->V attentions
    cross_modulation: torch.Tensor | None = None  # (B, 1, 4, D) from the other stream's sigma
    cross_gate: torch.Tensor | None = None  # (B, 1, 1, D) from the other stream's sigma

    def with_x(self, x: torch.Tensor) -> "StreamState":
        return replace(self, x=x)


def modulation_rows(table: torch.Tensor, modulation: torch.Tensor, rows: slice) -> tuple[torch.Tensor, ...]:
    """Static table (R, D) + timestep modulation (B, T', R, D), rows `rows` -> one (B, T', D) tensor per row."""
    return (table[rows].to(modulation.dtype) + modulation[:, :, rows]).unbind(dim=2)


class AVTransformerBlock(nn.Module):
    def __init__(self, config: AVTransformerConfig, index: int):
        super().__init__()
        self.index = index
        self.norm_eps = config.norm_eps
        self.cross_attention_adaln = config.cross_attention_adaln
        rows = config.adaln_coefficient
        options = dict(qk_norm_eps=config.norm_eps, rope_type=config.rope_type, gated=config.apply_gated_attention)
        if config.video:
            dim, heads = config.inner_dim, config.num_attention_heads
            self.attn1 = Attention(dim, heads, dim, **options)
            self.attn2 = Attention(dim, heads, config.cross_attention_dim, **options)
            self.ff = FeedForward(dim, 4 * dim, bias=config.ff_bias)
            self.scale_shift_table = nn.Parameter(torch.zeros(rows, dim))
            if config.cross_attention_adaln:
                self.prompt_scale_shift_table = nn.Parameter(torch.zeros(2, dim))
        if config.audio:
            dim, heads = config.audio_inner_dim, config.audio_num_attention_heads
            self.audio_attn1 = Attention(dim, heads, dim, **options)
            self.audio_attn2 = Attention(dim, heads, config.audio_cross_attention_dim, **options)
            self.audio_ff = FeedForward(dim, 4 * dim, bias=config.audio_ff_bias)
            self.audio_scale_shift_table = nn.Parameter(torch.zeros(rows, dim))
            if config.cross_attention_adaln:
                self.audio_prompt_scale_shift_table = nn.Parameter(torch.zeros(2, dim))
        if config.video and config.audio:
            video_dim, audio_dim = config.inner_dim, config.audio_inner_dim
            heads = config.audio_num_attention_heads
            # Both cross-modal attentions run at the audio width with the audio heads.
            self.audio_to_video_attn = Attention(video_dim, heads, audio_dim, inner_dim=audio_dim, **options)
            self.video_to_audio_attn = Attention(audio_dim, heads, video_dim, inner_dim=audio_dim, **options)
            # rows: 0 A2V scale, 1 A2V shift, 2 V2A scale, 3 V2A shift, 4 gate (scale before shift)
            self.scale_shift_table_a2v_ca_video = nn.Parameter(torch.zeros(5, video_dim))
            self.scale_shift_table_a2v_ca_audio = nn.Parameter(torch.zeros(5, audio_dim))

    def forward(
        self, video: StreamState | None, audio: StreamState | None, skip: Skip
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """-> updated video x (B, Tv, Dv) or None, audio x (B, Ta, Da) or None."""
        vx = ax = None
        if video is not None:
            prompt_table = self.prompt_scale_shift_table if self.cross_attention_adaln else None
            vx = self._self_and_text(
                video, self.attn1, self.attn2, self.scale_shift_table, prompt_table, skip.video_self_attention
            )
        if audio is not None:
            prompt_table = self.audio_prompt_scale_shift_table if self.cross_attention_adaln else None
            ax = self._self_and_text(
                audio,
                self.audio_attn1,
                self.audio_attn2,
                self.audio_scale_shift_table,
                prompt_table,
                skip.audio_self_attention,
            )
        if video is not None and audio is not None:
            vx, ax = self._audio_video(video.with_x(vx), audio.with_x(ax), skip)
        if video is not None:
            vx = self._feed_forward(vx, video.modulation, self.ff, self.scale_shift_table)
        if audio is not None:
            ax = self._feed_forward(ax, audio.modulation, self.audio_ff, self.audio_scale_shift_table)
        return vx, ax

    def _self_and_text(
        self,
        s: StreamState,
        self_attn: Attention,
        text_attn: Attention,
        table: torch.Tensor,
        prompt_table: torch.Tensor | None,
        skipped_blocks: frozenset[int],
    ) -> torch.Tensor:
        x = s.x
        shift, scale, gate = modulation_rows(table, s.modulation, slice(0, 3))
        normed = rms_norm(x, self.norm_eps) * (1 + scale) + shift
        stg = {}
        if self.index in skipped_blocks:  # STG: the self-attention output becomes its value projection
            stg = dict(
                skip_mode="attention_values", perturbed=torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
            )
        x = x + self_attn(normed, normed, bias=s.self_bias, rope=s.rope, **stg) * gate

        if not self.cross_attention_adaln:  # 2.0: unmodulated, ungated text cross-attention
            return x + text_attn(rms_norm(x, self.norm_eps), s.context, bias=s.context_bias)
        shift_q, scale_q, gate_q = modulation_rows(table, s.modulation, slice(6, 9))
        kv_modulation = prompt_table[None, None].to(x.dtype)  # (1, 1, 2, D): rows shift, scale
        if s.prompt_modulation is not None:
            kv_modulation = kv_modulation + s.prompt_modulation
        shift_kv, scale_kv = kv_modulation.unbind(dim=2)
        query = rms_norm(x, self.norm_eps) * (1 + scale_q) + shift_q
        context = s.context * (1 + scale_kv) + shift_kv
        return x + text_attn(query, context, bias=s.context_bias) * gate_q

    def _audio_video(self, video: StreamState, audio: StreamState, skip: Skip) -> tuple[torch.Tensor, torch.Tensor]:
        vx, ax = video.x, audio.x
        # Both directions read the streams as they are before A2V updates the video.
        v_normed = rms_norm(vx, self.norm_eps)
        a_normed = rms_norm(ax, self.norm_eps)
        v_table, a_table = self.scale_shift_table_a2v_ca_video, self.scale_shift_table_a2v_ca_audio
        v_scale_a2v, v_shift_a2v, v_scale_v2a, v_shift_v2a = modulation_rows(
            v_table, video.cross_modulation, slice(0, 4)
        )
        a_scale_a2v, a_shift_a2v, a_scale_v2a, a_shift_v2a = modulation_rows(
            a_table, audio.cross_modulation, slice(0, 4)
        )
        new_vx, new_ax = vx, ax
        if self.index not in skip.audio_to_video:
            (gate,) = modulation_rows(v_table[4:], video.cross_gate, slice(0, 1))
            query = v_normed * (1 + v_scale_a2v) + v_shift_a2v
            context = a_normed * (1 + a_scale_a2v) + a_shift_a2v
            out = self.audio_to_video_attn(query, context, rope=video.cross_rope, key_rope=audio.cross_rope)
            new_vx = vx + out * gate
        if self.index not in skip.video_to_audio:
            (gate,) = modulation_rows(a_table[4:], audio.cross_gate, slice(0, 1))
            query = a_normed * (1 + a_scale_v2a) + a_shift_v2a
            context = v_normed * (1 + v_scale_v2a) + v_shift_v2a
            out = self.video_to_audio_attn(query, context, rope=audio.cross_rope, key_rope=video.cross_rope)
            new_ax = ax + out * gate
        return new_vx, new_ax

    def _feed_forward(self, x: torch.Tensor, modulation: torch.Tensor, ff: FeedForward, table: torch.Tensor):
        shift, scale, gate = modulation_rows(table, modulation, slice(3, 6))
        return x + ff(rms_norm(x, self.norm_eps) * (1 + scale) + shift) * gate
