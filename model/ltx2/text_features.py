"""Gemma hidden states -> the connectors' input: the multi-layer feature extractors of LTX-2.

Gemma returns L = num_layers + 1 hidden states (embeddings + every layer), each (B, T, D). Both extractors stack
them into (B, T, D, L), normalise, flatten with the layer as the fastest index (B, T, D * L) and project:

  V1 (LTX-2.0, 19B): per sample and per layer, over the valid tokens and all D channels,
      8 * (x - mean) / (max - min + 1e-6); one Linear(D * L -> D, no bias) feeds both the video and the audio
      connector (the caption projections after the connectors map D to each stream's width).
  V2 (LTX-2.3, 2.5; 22B): per token and per layer, x * rsqrt(mean_D(x^2) + 1e-6); per modality
      Linear(D * L -> width, bias) applied to the normalised features times sqrt(width / D).

Padded positions are zero before the projection in both. The valid positions come from the attention mask itself
(1 = token), so left and right padding give the same numbers.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

NORM_EPS = 1e-6
V1_SCALE = 8.0


@dataclass(frozen=True)
class FeatureConfig:
    """version: "v1" (2.0) or "v2" (2.3/2.5). gemma_dim: Gemma's hidden size; gemma_states: hidden states used
    (layers + 1). video_dim/audio_dim: V2 projection widths (audio_dim 0: video only); ignored by V1."""

    version: str
    gemma_dim: int = 3840
    gemma_states: int = 49
    video_dim: int = 4096
    audio_dim: int = 2048

    def __post_init__(self):
        if self.version not in ("v1", "v2"):
            raise ValueError(
                f"FeatureConfig.version must be 'v1' (LTX-2.0) or 'v2' (LTX-2.3/2.5), got {self.version!r}"
            )
        for name in ("gemma_dim", "gemma_states", "video_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"FeatureConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.audio_dim < 0:
            raise ValueError(f"FeatureConfig.audio_dim must be >= 0 (0: no audio stream), got {self.audio_dim}")


def stack_states(hidden_states: torch.Tensor | tuple[torch.Tensor, ...] | list[torch.Tensor]) -> torch.Tensor:
    """L tensors (B, T, D), or one already stacked (B, T, D, L) -> (B, T, D, L)."""
    if isinstance(hidden_states, (tuple, list)):
        return torch.stack(tuple(hidden_states), dim=-1)
    if hidden_states.ndim != 4:
        raise ValueError(
            f"hidden states must be (B, T, D, L) or a tuple of (B, T, D), got {tuple(hidden_states.shape)}"
        )
    return hidden_states


def masked_range_norm(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """V1: states (B, T, D, L), mask (B, T) -> (B, T, D * L); statistics per sample and layer over valid tokens."""
    batch, tokens, dim, layers = states.shape
    valid = mask.bool()[:, :, None, None]  # (B, T, 1, 1)
    count = (mask.sum(dim=1) * dim).view(batch, 1, 1, 1)
    mean = states.masked_fill(~valid, 0.0).sum(dim=(1, 2), keepdim=True) / (count + NORM_EPS)  # (B, 1, 1, L)
    low = states.masked_fill(~valid, float("inf")).amin(dim=(1, 2), keepdim=True)
    high = states.masked_fill(~valid, float("-inf")).amax(dim=(1, 2), keepdim=True)
    normed = V1_SCALE * (states - mean) / (high - low + NORM_EPS)
    return normed.reshape(batch, tokens, dim * layers).masked_fill(~valid[..., 0], 0.0)


def token_rms_norm(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """V2: states (B, T, D, L), mask (B, T) -> (B, T, D * L); RMS over D per token and layer."""
    batch, tokens, dim, layers = states.shape
    normed = states * torch.rsqrt(states.pow(2).mean(dim=2, keepdim=True) + NORM_EPS)
    normed = normed.reshape(batch, tokens, dim * layers)
    return torch.where(mask.bool()[..., None], normed, torch.zeros_like(normed))


class FeatureExtractorV1(nn.Module):
    """LTX-2.0: masked range norm -> aggregate_embed; the same features go to both streams."""

    def __init__(self, config: FeatureConfig):
        super().__init__()
        self.config = config
        self.aggregate_embed = nn.Linear(config.gemma_dim * config.gemma_states, config.gemma_dim, bias=False)

    def forward(self, hidden_states, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        states = stack_states(hidden_states)
        features = self.aggregate_embed(masked_range_norm(states, mask).to(states.dtype))  # (B, T, D)
        return features, (features if self.config.audio_dim else None)


class FeatureExtractorV2(nn.Module):
    """LTX-2.3/2.5: token RMS norm -> per-modality rescale and aggregate embed."""

    def __init__(self, config: FeatureConfig):
        super().__init__()
        self.config = config
        flat = config.gemma_dim * config.gemma_states
        self.video_aggregate_embed = nn.Linear(flat, config.video_dim, bias=True)
        self.audio_aggregate_embed = nn.Linear(flat, config.audio_dim, bias=True) if config.audio_dim else None

    def _project(self, normed: torch.Tensor, embed: nn.Linear) -> torch.Tensor:
        return embed(normed * math.sqrt(embed.out_features / self.config.gemma_dim))

    def forward(self, hidden_states, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        states = stack_states(hidden_states)
        normed = token_rms_norm(states, mask).to(states.dtype)  # (B, T, D * L)
        video = self._project(normed, self.video_aggregate_embed)  # (B, T, video_dim)
        audio = self._project(normed, self.audio_aggregate_embed) if self.audio_aggregate_embed is not None else None
        return video, audio


def build_feature_extractor(config: FeatureConfig) -> nn.Module:
    return FeatureExtractorV1(config) if config.version == "v1" else FeatureExtractorV2(config)
