"""The LTX-2 text path after Gemma: feature extractor -> 1-D connector per modality -> caption projection (2.0).

A connector is a small pre-norm transformer over the text tokens:
  1. learnable registers: per sample, the valid tokens move to the front in their order; every later position p
     takes registers[p mod R] (the R registers tiled over the sequence); attention is then over all T tokens.
  2. RoPE over the positions 0..T-1 (fraction p / max_pos), split (half-rotation per head) or interleaved pairs.
  3. N blocks: h += attn(rms(h)), h += ff(rms(h)); attention with learned q/k RMSNorm across heads and optional
     per-head gating 2 * sigmoid(Linear(x)).
  4. a final parameter-free rms(h).

Where the Gemma features are projected to each stream's width depends on the version:
  LTX-2.0: V1 extractor (one 3840-wide output) -> connectors (3840) -> caption projections after the connectors
           (Linear -> GELU(tanh) -> Linear to 4096 video / 2048 audio; in the files they sit under
           model.diffusion_model.caption_projection / audio_caption_projection).
  LTX-2.3/2.5: V2 extractor projects before the connectors (video 4096, audio 2048); no caption projection.

Module names follow the official files after their prefixes (see OFFICIAL_PREFIXES), so a checkpoint fills these
modules with a prefix swap only.
Attention (gated heads, split RoPE) is model/blocks' and the RoPE grid model/ltx2/rope.py's, as in the transformer.
"""

from dataclasses import dataclass

import torch
from torch import nn

from ..blocks.attention import Attention
from ..blocks.feedforward import CaptionProjection, FeedForward
from ..blocks.norm import rms_norm
from .rope import rope_cos_sin
from .text_features import FeatureConfig, build_feature_extractor

NORM_EPS = 1e-6  # block pre-norms, final norm and the q/k norms of the connector
ROPE_TYPES = ("split", "interleaved")

# Our module prefix -> the prefix of the same tensors in the official LTX-2.0/2.3 single file.
OFFICIAL_PREFIXES = {
    "feature_extractor.": "text_embedding_projection.",
    "video_connector.": "model.diffusion_model.video_embeddings_connector.",
    "audio_connector.": "model.diffusion_model.audio_embeddings_connector.",
    "caption_projection.": "model.diffusion_model.caption_projection.",
    "audio_caption_projection.": "model.diffusion_model.audio_caption_projection.",
}


@dataclass(frozen=True)
class ConnectorConfig:
    heads: int = 30
    head_dim: int = 128
    layers: int = 2
    registers: int | None = 128  # None: no registers, the text mask is kept as an attention bias
    rope_type: str = "split"
    rope_theta: float = 10000.0
    rope_max_pos: float = 4096.0
    rope_double_precision: bool = True  # frequency grid computed in float64 (then float32)
    gated_attention: bool = False

    def __post_init__(self):
        for name in ("heads", "head_dim", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"ConnectorConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.registers is not None and self.registers < 1:
            raise ValueError(f"ConnectorConfig.registers must be >= 1 or None, got {self.registers}")
        if self.rope_type not in ROPE_TYPES:
            raise ValueError(f"ConnectorConfig.rope_type must be one of {ROPE_TYPES}, got {self.rope_type!r}")
        if self.head_dim % 2:
            raise ValueError(f"ConnectorConfig.head_dim must be even for RoPE, got {self.head_dim}")

    @property
    def dim(self) -> int:
        return self.heads * self.head_dim


def connector_rope(config: ConnectorConfig, tokens: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin for positions 0..tokens-1 (fraction p / rope_max_pos, one axis), in Attention's layout."""
    positions = torch.arange(tokens, dtype=torch.float32, device=device)[None, None, :, None].expand(-1, -1, -1, 2)
    return rope_cos_sin(
        positions,
        config.dim,
        config.heads,
        config.rope_theta,
        (config.rope_max_pos,),
        config.rope_type,
        config.rope_double_precision,
        dtype,
    )


class ConnectorBlock(nn.Module):
    def __init__(self, config: ConnectorConfig):
        super().__init__()
        options = dict(qk_norm_eps=NORM_EPS, rope_type=config.rope_type, gated=config.gated_attention)
        self.attn1 = Attention(config.dim, config.heads, config.dim, **options)
        self.ff = FeedForward(config.dim, 4 * config.dim)

    def forward(self, h: torch.Tensor, rope, bias=None) -> torch.Tensor:
        normed = rms_norm(h, NORM_EPS)
        h = h + self.attn1(normed, normed, bias=bias, rope=rope)
        return h + self.ff(rms_norm(h, NORM_EPS))


def substitute_registers(h: torch.Tensor, mask: torch.Tensor, registers: torch.Tensor) -> torch.Tensor:
    """h (B, T, D), mask (B, T) 1 = token -> valid tokens first (order kept), then registers[p mod R] at p."""
    batch, tokens, dim = h.shape
    valid = mask.bool()
    order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)  # valid positions first
    front = torch.gather(h, 1, order[..., None].expand(-1, -1, dim))
    tiled = registers.to(h.dtype).repeat(tokens // registers.shape[0], 1)  # (T, D)
    keep = torch.arange(tokens, device=h.device)[None, :] < valid.sum(dim=1, keepdim=True)  # (B, T)
    return torch.where(keep[..., None], front, tiled[None])


class TextConnector(nn.Module):
    """Connector of one modality: (B, T, D) features + mask (B, T) -> (B, T, D) encoding + the mask to use
    (all ones with registers: the registers replace the padding)."""

    def __init__(self, config: ConnectorConfig):
        super().__init__()
        self.config = config
        self.transformer_1d_blocks = nn.ModuleList([ConnectorBlock(config) for _ in range(config.layers)])
        if config.registers:
            self.learnable_registers = nn.Parameter(torch.rand(config.registers, config.dim) * 2.0 - 1.0)
        else:
            self.learnable_registers = None

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, tokens, dim = h.shape
        if dim != self.config.dim:
            raise ValueError(f"TextConnector: features are {dim} wide, the connector expects {self.config.dim}")
        bias = None
        if self.learnable_registers is not None:
            if tokens % self.config.registers:
                raise ValueError(
                    f"TextConnector: {tokens} text tokens is not a multiple of the {self.config.registers} "
                    "registers; pad the prompt to a multiple (LTX-2 pads to 1024)"
                )
            h = substitute_registers(h, mask, self.learnable_registers)
            mask = torch.ones_like(mask)
        else:
            bias = ((mask.to(h.dtype) - 1) * torch.finfo(h.dtype).max)[:, None, None, :]  # (B, 1, 1, T)
        rope = connector_rope(self.config, tokens, h.device, h.dtype)
        for block in self.transformer_1d_blocks:
            h = block(h, rope, bias)
        return rms_norm(h, NORM_EPS), mask


@dataclass(frozen=True)
class TextPathConfig:
    """features: the Gemma feature extractor; video/audio: the connectors (audio None: video only);
    caption_video_dim/caption_audio_dim > 0: caption projections after the connectors (LTX-2.0)."""

    features: FeatureConfig
    video: ConnectorConfig
    audio: ConnectorConfig | None
    caption_video_dim: int = 0
    caption_audio_dim: int = 0

    def __post_init__(self):
        f = self.features
        video_in = f.gemma_dim if f.version == "v1" else f.video_dim
        if self.video.dim != video_in:
            raise ValueError(f"TextPathConfig: video connector is {self.video.dim} wide, its input {video_in}")
        if self.audio is not None:
            audio_in = f.gemma_dim if f.version == "v1" else f.audio_dim
            if self.audio.dim != audio_in or not f.audio_dim:
                raise ValueError(f"TextPathConfig: audio connector is {self.audio.dim} wide, its input {audio_in}")
        if (self.caption_video_dim or self.caption_audio_dim) and f.version != "v1":
            raise ValueError("TextPathConfig: caption projections after the connector exist only with V1 features")


def ltx20_text_path() -> TextPathConfig:
    """LTX-2.0 (19B): V1 features, two 2-layer 30 x 128 connectors, caption projections to 4096 / 2048."""
    connector = ConnectorConfig(heads=30, head_dim=128, layers=2)
    return TextPathConfig(FeatureConfig("v1", 3840, 49), connector, connector, 4096, 2048)


def ltx23_text_path() -> TextPathConfig:
    """LTX-2.3 (22B), and LTX-2.5 whose Gemma 4 has the same 3840 x 48 geometry: V2 features, gated 8-layer
    connectors 32 x 128 (video) and 32 x 64 (audio)."""
    video = ConnectorConfig(heads=32, head_dim=128, layers=8, gated_attention=True)
    audio = ConnectorConfig(heads=32, head_dim=64, layers=8, gated_attention=True)
    return TextPathConfig(FeatureConfig("v2", 3840, 49, 4096, 2048), video, audio)


def text_path_from_metadata(transformer: dict, gemma_dim: int, gemma_states: int) -> TextPathConfig:
    """The text path a checkpoint's metadata config["transformer"] describes, read with the official loader's
    rules and defaults (V2 when caption_proj_before_connector is set; connector fields connector_* and
    audio_connector_*, falling back to the video connector's)."""
    v2 = bool(transformer.get("caption_proj_before_connector", False))
    get = transformer.get

    def connector(prefix: str) -> ConnectorConfig:
        def field(name, default):
            return get(f"{prefix}connector_{name}", get(f"connector_{name}", default))

        return ConnectorConfig(
            heads=field("num_attention_heads", 30),
            head_dim=field("attention_head_dim", 128),
            layers=field("num_layers", 2),
            rope_type=get("rope_type", "split"),
            rope_max_pos=float(get("connector_positional_embedding_max_pos", [1])[0]),
            rope_double_precision=get("frequencies_precision") == "float64",
            gated_attention=bool(get("connector_apply_gated_attention", False)),
        )

    video_dim = get("num_attention_heads", 32) * get("attention_head_dim", 128)
    audio_dim = get("audio_num_attention_heads", 32) * get("audio_attention_head_dim", 64)
    if v2:
        features = FeatureConfig("v2", gemma_dim, gemma_states, video_dim, audio_dim)
        return TextPathConfig(features, connector(""), connector("audio_"))
    features = FeatureConfig("v1", gemma_dim, gemma_states, video_dim, audio_dim)
    return TextPathConfig(features, connector(""), connector("audio_"), video_dim, audio_dim)


class TextPath(nn.Module):
    """Gemma hidden states + mask -> (video context (B, T, Dv), audio context (B, T, Da) or None, mask (B, T))."""

    def __init__(self, config: TextPathConfig):
        super().__init__()
        self.config = config
        self.feature_extractor = build_feature_extractor(config.features)
        self.video_connector = TextConnector(config.video)
        self.audio_connector = TextConnector(config.audio) if config.audio is not None else None
        width = config.video.dim
        cv, ca = config.caption_video_dim, config.caption_audio_dim
        self.caption_projection = CaptionProjection(width, cv) if cv else None
        self.audio_caption_projection = CaptionProjection(config.audio.dim, ca) if ca and config.audio else None

    def forward(self, hidden_states, mask: torch.Tensor):
        video, audio = self.feature_extractor(hidden_states, mask)
        video, out_mask = self.video_connector(video, mask)
        video = video * out_mask[..., None].to(video.dtype)
        if self.caption_projection is not None:
            video = self.caption_projection(video)
        if self.audio_connector is not None:
            audio, _ = self.audio_connector(audio, mask)
            if self.audio_caption_projection is not None:
                audio = self.audio_caption_projection(audio)
        return video, audio, out_mask


def official_key(key: str) -> str:
    """Our TextPath state-dict key -> the key of the same tensor in the official LTX-2 single file."""
    for ours, theirs in OFFICIAL_PREFIXES.items():
        if key.startswith(ours):
            return theirs + key[len(ours) :]
    raise KeyError(f"{key!r} is not a TextPath key")


def diffusers_connector_key(key: str) -> str:
    """A key of diffusers' LTX2TextConnectors -> ours (feature_extractor.* / video_connector.* / audio_connector.*)."""
    for theirs, ours in (
        ("text_proj_in.", "feature_extractor.aggregate_embed."),
        ("video_text_proj_in.", "feature_extractor.video_aggregate_embed."),
        ("audio_text_proj_in.", "feature_extractor.audio_aggregate_embed."),
    ):
        if key.startswith(theirs):
            return ours + key[len(theirs) :]
    key = key.replace(".transformer_blocks.", ".transformer_1d_blocks.")
    return key.replace(".norm_q.", ".q_norm.").replace(".norm_k.", ".k_norm.")
