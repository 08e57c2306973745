"""Audio latents <-> the transformer's audio tokens, and the audio timeline.

An audio latent (B, C=8, T, F=16) becomes T tokens of C*F = 128 values, channel-major: `b c t f -> b t (c f)`
(ltx-core `AudioPatchifier`, patch size 1). One latent frame covers 4 mel frames of 160 samples at 16 kHz:
25 tokens per second.
"""

import torch

LATENT_DOWNSAMPLE = 4  # mel frames per latent frame (the audio VAE's time compression)


def patchify_audio(latent: torch.Tensor) -> torch.Tensor:
    """(B, C, T, F) -> (B, T, C*F)."""
    if latent.ndim != 4:
        raise ValueError(f"patchify_audio expects an audio latent (B, C, T, F), got shape {tuple(latent.shape)}")
    batch, channels, frames, bins = latent.shape
    return latent.permute(0, 2, 1, 3).reshape(batch, frames, channels * bins)


def unpatchify_audio(tokens: torch.Tensor, channels: int, mel_bins: int) -> torch.Tensor:
    """(B, T, C*F) -> (B, C, T, F)."""
    if tokens.ndim != 3 or tokens.shape[-1] != channels * mel_bins:
        raise ValueError(
            f"unpatchify_audio expects tokens (B, T, {channels}*{mel_bins}={channels * mel_bins}), "
            f"got shape {tuple(tokens.shape)}"
        )
    batch, frames, _ = tokens.shape
    return tokens.reshape(batch, frames, channels, mel_bins).permute(0, 2, 1, 3)


def tokens_per_second(sample_rate: int = 16000, hop_length: int = 160) -> float:
    return sample_rate / hop_length / LATENT_DOWNSAMPLE


def audio_latent_frames(duration_s: float, sample_rate: int = 16000, hop_length: int = 160) -> int:
    """Audio latent frames (= tokens) generated for `duration_s` seconds: round(duration * 25).

    For a video of F frames at fps, duration_s = F / fps (121 frames at 24 fps -> 126 tokens).
    """
    if duration_s < 0:
        raise ValueError(f"audio duration must be >= 0 s, got {duration_s}")
    return round(duration_s * tokens_per_second(sample_rate, hop_length))


def audio_token_seconds(
    frames: int, batch: int = 1, sample_rate: int = 16000, hop_length: int = 160, causal: bool = True, shift: int = 0
) -> torch.Tensor:
    """[start, end) time in seconds of each audio token -> (batch, 1, frames, 2), float32.

    Latent i covers mel frames [4i - 3, 4i + 1) clipped at 0 when causal (the first latent sees one mel frame),
    [4i, 4i + 4) otherwise; a mel frame lasts hop / sample_rate s. `shift` offsets the latent index.
    """

    def start_mel(index: torch.Tensor) -> torch.Tensor:
        mel = index * LATENT_DOWNSAMPLE
        return (mel + 1 - LATENT_DOWNSAMPLE).clip(min=0) if causal else mel

    index = torch.arange(shift, frames + shift, dtype=torch.float32)
    bounds = torch.stack([start_mel(index), start_mel(index + 1)], dim=-1) * hop_length / sample_rate
    return bounds[None, None].expand(batch, 1, frames, 2)
