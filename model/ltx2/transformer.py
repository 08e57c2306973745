"""The LTX-2 audio+video transformer (2.0 19B, 2.3 22B, 2.5 22B): two token streams, each with its own AdaLN-single
timestep embedding, RoPE and output head, joined in every block by audio<->video cross-attention.

State-dict keys equal the official checkpoint keys with "model.diffusion_model." stripped. Called as
`model(video, audio, skip) -> (video_velocity (B, Tv, out) | None, audio_velocity (B, Ta, audio_out) | None)`.
"""

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks.feedforward import CaptionProjection
from ..blocks.timestep import AdaLNSingle
from .block import AVTransformerBlock, StreamState
from .config import AVTransformerConfig
from .rope import rope_cos_sin
from .streams import NO_SKIP, Skip, Stream


def context_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """(B, L) bool, True = real text token -> additive (B, 1, 1, L): 0, or the dtype's lowest value."""
    if mask is None:
        return None
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)[
        :, None, None
    ]


def self_attention_bias(weights: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """(B, T, T) attention weights in [0, 1] -> additive log bias (B, 1, T, T); weight <= 0 -> the dtype's lowest."""
    if weights is None:
        return None
    finfo = torch.finfo(dtype)
    log = torch.log(weights.clamp(min=finfo.tiny)).to(dtype)
    return torch.where(weights > 0, log, torch.full_like(log, finfo.min))[:, None]


class LTX2Transformer(nn.Module):
    def __init__(self, config: AVTransformerConfig):
        super().__init__()
        self.config = config
        c = config
        if c.video:
            self._init_stream("", c.in_channels, c.out_channels, c.inner_dim)
            if c.use_keyframes_abs_pos_embedding:
                self.keyframes_abs_pos_embedding = nn.Parameter(torch.zeros(1, c.inner_dim))
        if c.audio:
            self._init_stream("audio_", c.audio_in_channels, c.audio_out_channels, c.audio_inner_dim)
        if c.video and c.audio:
            self.av_ca_video_scale_shift_adaln_single = AdaLNSingle(c.inner_dim, 4)
            self.av_ca_audio_scale_shift_adaln_single = AdaLNSingle(c.audio_inner_dim, 4)
            self.av_ca_a2v_gate_adaln_single = AdaLNSingle(c.inner_dim, 1)
            self.av_ca_v2a_gate_adaln_single = AdaLNSingle(c.audio_inner_dim, 1)
        self.transformer_blocks = nn.ModuleList(AVTransformerBlock(c, i) for i in range(c.num_layers))

    def _init_stream(self, prefix: str, in_channels: int, out_channels: int, dim: int) -> None:
        """The official per-stream modules: `patchify_proj`, ... for video, `audio_patchify_proj`, ... for audio."""
        c = self.config
        self.add_module(prefix + "patchify_proj", nn.Linear(in_channels, dim))
        self.add_module(prefix + "adaln_single", AdaLNSingle(dim, c.adaln_coefficient))
        if c.cross_attention_adaln and c.use_prompt_adaln_single:
            self.add_module(prefix + "prompt_adaln_single", AdaLNSingle(dim, 2))
        if c.caption_channels is not None:
            self.add_module(prefix + "caption_projection", CaptionProjection(c.caption_channels, dim))
        self.register_parameter(prefix + "scale_shift_table", nn.Parameter(torch.zeros(2, dim)))
        self.add_module(prefix + "proj_out", nn.Linear(dim, out_channels))

    def forward(
        self, video: Stream | None, audio: Stream | None, skip: Skip = NO_SKIP
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        self._check_inputs(video, audio, skip)
        vs = self._prepare("", video, audio) if video is not None else None
        aus = self._prepare("audio_", audio, video) if audio is not None else None
        vx = vs.x if vs is not None else None
        ax = aus.x if aus is not None else None
        for block in self.transformer_blocks:
            vx, ax = block(vs.with_x(vx) if vs else None, aus.with_x(ax) if aus else None, skip)
        video_out = self._output("", vx, vs.embedded) if vs is not None else None
        audio_out = self._output("audio_", ax, aus.embedded) if aus is not None else None
        return video_out, audio_out

    def _prepare(self, prefix: str, stream: Stream, other: Stream | None) -> StreamState:
        """Patchify, timestep modulations, text context, masks and RoPE of one stream."""
        c = self.config
        is_video = prefix == ""
        dtype = stream.latent.dtype
        batch = stream.latent.shape[0]
        heads = c.num_attention_heads if is_video else c.audio_num_attention_heads
        dim = c.inner_dim if is_video else c.audio_inner_dim
        max_pos = c.positional_embedding_max_pos if is_video else c.audio_positional_embedding_max_pos

        x = getattr(self, prefix + "patchify_proj")(stream.latent)  # (B, T, D)
        if is_video and c.use_keyframes_abs_pos_embedding and stream.keyframe_mask is not None:
            x = x + stream.keyframe_mask[..., None].to(x.dtype) * self.keyframes_abs_pos_embedding.to(x.dtype)

        adaln = getattr(self, prefix + "adaln_single")
        modulation, embedded = adaln((stream.timesteps * c.timestep_scale_multiplier).flatten(), dtype)
        modulation = modulation.view(batch, -1, c.adaln_coefficient, dim)  # (B, T, rows, D)

        prompt_modulation = None
        if c.cross_attention_adaln and c.use_prompt_adaln_single:
            prompt = getattr(self, prefix + "prompt_adaln_single")
            prompt_modulation = prompt(stream.sigma * c.timestep_scale_multiplier, dtype)[0].view(batch, 1, 2, dim)

        context = stream.context
        if c.caption_channels is not None:
            context = getattr(self, prefix + "caption_projection")(context)

        rope = rope_cos_sin(
            stream.positions, dim, heads, c.positional_embedding_theta, max_pos, c.rope_type, c.rope_float64, dtype
        )
        state = StreamState(
            x=x,
            context=context,
            context_bias=context_bias(stream.context_mask, dtype),
            self_bias=self_attention_bias(stream.attention_mask, dtype),
            modulation=modulation,
            embedded=embedded.view(batch, -1, dim),
            prompt_modulation=prompt_modulation,
            rope=rope,
        )
        if other is None or not (c.video and c.audio):
            return state
        # A<->V cross-attention: time-only RoPE at the audio width, modulation from the other stream's sigma.
        cross_rope = rope_cos_sin(
            stream.positions[:, :1],
            c.audio_cross_attention_dim,
            heads,
            c.positional_embedding_theta,
            (c.cross_pe_max_pos,),
            c.rope_type,
            c.rope_float64,
            dtype,
        )
        scale_shift = (
            self.av_ca_video_scale_shift_adaln_single if is_video else self.av_ca_audio_scale_shift_adaln_single
        )
        gate = self.av_ca_a2v_gate_adaln_single if is_video else self.av_ca_v2a_gate_adaln_single
        other_t = other.sigma * c.timestep_scale_multiplier  # (B,)
        cross_modulation = scale_shift(other_t, dtype)[0].view(batch, 1, 4, dim)
        gate_t = other_t * (c.av_ca_timestep_scale_multiplier / c.timestep_scale_multiplier)
        cross_gate = gate(gate_t, dtype)[0].view(batch, 1, 1, dim)
        return replace(state, cross_rope=cross_rope, cross_modulation=cross_modulation, cross_gate=cross_gate)

    def _output(self, prefix: str, x: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
        """LayerNorm (no affine) modulated by the embedded timestep and the stream's [2, D] table, then proj_out."""
        table = getattr(self, prefix + "scale_shift_table")
        shift, scale = (table[None, None].to(x.dtype) + embedded[:, :, None]).unbind(dim=2)
        x = F.layer_norm(x, x.shape[-1:], eps=self.config.norm_eps)
        return getattr(self, prefix + "proj_out")(x * (1 + scale) + shift)

    def _check_inputs(self, video: Stream | None, audio: Stream | None, skip: Skip) -> None:
        c = self.config
        if video is None and audio is None:
            raise ValueError("LTX2Transformer: video and audio are both None; give at least one stream")
        for name, stream, built, channels, axes in (
            ("video", video, c.video, c.in_channels, 3),
            ("audio", audio, c.audio, c.audio_in_channels, 1),
        ):
            if stream is None:
                continue
            if not built:
                raise ValueError(f"LTX2Transformer: got a {name} stream but this config builds no {name} stream")
            if stream.latent.shape[-1] != channels:
                raise ValueError(
                    f"LTX2Transformer: {name} latent has {stream.latent.shape[-1]} channels, the config expects {channels}"
                )
            if stream.positions.shape[1] != axes:
                raise ValueError(
                    f"LTX2Transformer: {name} positions need {axes} axes (B, {axes}, T, 2), "
                    f"got {tuple(stream.positions.shape)}"
                )
        if video is not None and audio is not None and video.latent.shape[0] != audio.latent.shape[0]:
            raise ValueError(
                f"LTX2Transformer: video batch {video.latent.shape[0]} != audio batch {audio.latent.shape[0]}"
            )
        for name, blocks in vars(skip).items():
            outside = sorted(i for i in blocks if not 0 <= i < c.num_layers)
            if outside:
                raise ValueError(f"LTX2Transformer: skip.{name} has blocks {outside} outside 0..{c.num_layers - 1}")


# Official (ltx-core) -> diffusers 0.42.1 (LTX2VideoTransformer3DModel) parameter names: module prefixes of the
# model, then names inside the blocks; everything else (attn*, ff, scale_shift_table, proj_out, caption_projection,
# keyframes_abs_pos_embedding) is the same.
DIFFUSERS_PREFIXES = {
    "patchify_proj.": "proj_in.",
    "audio_patchify_proj.": "audio_proj_in.",
    "adaln_single.": "time_embed.",
    "audio_adaln_single.": "audio_time_embed.",
    "prompt_adaln_single.": "prompt_adaln.",
    "audio_prompt_adaln_single.": "audio_prompt_adaln.",
    "av_ca_video_scale_shift_adaln_single.": "av_cross_attn_video_scale_shift.",
    "av_ca_audio_scale_shift_adaln_single.": "av_cross_attn_audio_scale_shift.",
    "av_ca_a2v_gate_adaln_single.": "av_cross_attn_video_a2v_gate.",
    "av_ca_v2a_gate_adaln_single.": "av_cross_attn_audio_v2a_gate.",
}
DIFFUSERS_BLOCK_NAMES = {
    ".scale_shift_table_a2v_ca_video": ".video_a2v_cross_attn_scale_shift_table",
    ".scale_shift_table_a2v_ca_audio": ".audio_a2v_cross_attn_scale_shift_table",
    ".q_norm.": ".norm_q.",
    ".k_norm.": ".norm_k.",
}


def diffusers_key(official: str) -> str:
    """An official transformer key ("model.diffusion_model." stripped) -> its diffusers name."""
    for old, new in DIFFUSERS_PREFIXES.items():
        if official.startswith(old):
            return new + official[len(old) :]
    for old, new in DIFFUSERS_BLOCK_NAMES.items():
        official = official.replace(old, new)
    return official
