"""What the LTX-2 transformer takes per modality, and which attention it skips (STG, modality isolation).

The transformer is called as `transformer(video, audio, skip) -> (video_velocity, audio_velocity)`, each input a
`Stream` or None (video-only / audio-only); the sampler builds the streams, the guider chooses the skips.
"""

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Stream:
    """One modality's tokens and everything they are conditioned on.

    latent: (B, T, C) patchified latent tokens.
    sigma: (B,) the sample's noise level in [0, 1] (prompt AdaLN and the other stream's cross-modal AdaLN use it).
    timesteps: (B, T) per-token noise level = denoise_mask · sigma (clean conditioning tokens have 0).
    positions: (B, axes, T, 2) float32 [start, end) bounds: video axes (time in seconds, height px, width px),
        audio one axis (time in seconds).
    context: (B, L, D) text features for this modality (after the connector).
    context_mask: (B, L) bool, True where a text token is real; None attends to all L tokens.
    attention_mask: (B, T, T) self-attention weights in [0, 1] for conditioning tokens, or None.
    keyframe_mask: (B, T) bool, video tokens that get the LTX-2.5 keyframe embedding, or None.
    """

    latent: torch.Tensor
    sigma: torch.Tensor
    timesteps: torch.Tensor
    positions: torch.Tensor
    context: torch.Tensor
    context_mask: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    keyframe_mask: torch.Tensor | None = None

    def __post_init__(self):
        batch, tokens = self.latent.shape[:2]
        if self.timesteps.shape != (batch, tokens):
            raise ValueError(f"timesteps must be (B, T) = {(batch, tokens)}, got {tuple(self.timesteps.shape)}")
        if self.sigma.shape != (batch,):
            raise ValueError(f"sigma must be (B,) = ({batch},), got {tuple(self.sigma.shape)}")
        if self.positions.ndim != 4 or self.positions.shape[0] != batch or self.positions.shape[2:] != (tokens, 2):
            raise ValueError(
                f"positions must be (B, axes, T, 2) with B={batch}, T={tokens}, got {tuple(self.positions.shape)}"
            )


@dataclass(frozen=True)
class Skip:
    """Attention replaced per block: self-attention by its value projection (STG), A↔V cross-attention by zero
    (modality isolation). Block indices count from 0."""

    video_self_attention: frozenset[int] = field(default_factory=frozenset)
    audio_self_attention: frozenset[int] = field(default_factory=frozenset)
    audio_to_video: frozenset[int] = field(default_factory=frozenset)
    video_to_audio: frozenset[int] = field(default_factory=frozenset)

    @staticmethod
    def isolate_modalities(num_layers: int) -> "Skip":
        every = frozenset(range(num_layers))
        return Skip(audio_to_video=every, video_to_audio=every)


NO_SKIP = Skip()
