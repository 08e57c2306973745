"""Audio tracks in and out of the LTX-2 audio path (pure PyTorch).

In: `fit_audio` brings a given track to what the audio VAE encodes for one video (audio-to-video conditioning):
its rate (model/ltx2/resample.py), its channel count and the video's duration. Out: `decode_audio` turns an audio
latent into a waveform with the audio VAE's decoder and a vocoder, at the vocoder's output rate.

Waveforms are float tensors (channels, samples) or (batch, channels, samples), the layout ComfyUI's AUDIO uses.
Every helper returns (waveform, message): the message says in words what was changed ("" when nothing was), so a
caller can log it; nothing is changed silently.
"""

import torch
from torch import nn

from .resample import resample

SILENT_PEAK = 1.0 / 32768  # a peak below one step of 16-bit audio counts as silence
CHANNEL_NAMES = {1: "mono", 2: "stereo"}


def channel_name(channels: int) -> str:
    return CHANNEL_NAMES.get(channels, f"{channels} channels")


def video_samples(num_frames: int, fps: float, sample_rate: int) -> int:
    """Samples of audio that last as long as num_frames frames at fps: round(num_frames / fps * sample_rate)."""
    if num_frames < 1 or not fps > 0 or sample_rate < 1:
        raise ValueError(
            f"video_samples needs frames >= 1, fps > 0 and a rate >= 1, got {num_frames}, {fps}, {sample_rate}"
        )
    return round(num_frames * sample_rate / fps)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    return value


def check_waveform(waveform, name: str = "audio") -> None:
    """ValueError naming `name` unless waveform is a float tensor (channels, samples) or (batch, channels, samples)
    with at least one sample and channel, and only finite values."""
    if not isinstance(waveform, torch.Tensor):
        raise ValueError(f"{name}: expected a waveform tensor (channels, samples), got {type(waveform).__name__}")
    if waveform.ndim not in (2, 3):
        raise ValueError(
            f"{name}: expected a waveform (channels, samples) or (batch, channels, samples), got shape "
            f"{tuple(waveform.shape)}"
        )
    if not waveform.is_floating_point():
        raise ValueError(f"{name}: expected float samples in [-1, 1], got dtype {waveform.dtype}")
    if waveform.numel() == 0:
        raise ValueError(f"{name}: the waveform is empty (shape {tuple(waveform.shape)}); give at least one sample")
    if not torch.isfinite(waveform).all():
        raise ValueError(f"{name}: the waveform has NaN or infinite samples; only finite values can be used")


def fit_length(waveform: torch.Tensor, target_samples: int, sample_rate: int) -> tuple[torch.Tensor, str]:
    """Trim the end of (..., samples) or pad it with silence (zeros) to target_samples.

    The message says which and by how many seconds ("" when the length already fits).
    """
    samples = waveform.shape[-1]
    have, need = samples / sample_rate, target_samples / sample_rate
    if samples > target_samples:
        message = f"audio is {have:.3f} s, the video {need:.3f} s: trimmed the last {have - need:.3f} s"
        return waveform[..., :target_samples], message
    if samples < target_samples:
        message = f"audio is {have:.3f} s, the video {need:.3f} s: padded {need - have:.3f} s of silence at the end"
        return nn.functional.pad(waveform, (0, target_samples - samples)), message
    return waveform, ""


def convert_channels(waveform: torch.Tensor, channels: int) -> tuple[torch.Tensor, str]:
    """(..., C, samples) -> (..., channels, samples). Rules: the same count is kept; mono becomes any count by
    copying its channel; any count becomes mono by averaging; anything else (e.g. 5.1 -> stereo) is a ValueError."""
    have = waveform.shape[-2]
    if have == channels:
        return waveform, ""
    if have == 1:
        copied = waveform.expand(*waveform.shape[:-2], channels, waveform.shape[-1]).contiguous()
        return copied, f"{channel_name(1)} -> {channel_name(channels)} (the one channel copied to each)"
    if channels == 1:
        return waveform.mean(dim=-2, keepdim=True), f"{channel_name(have)} -> mono (the channels averaged)"
    raise ValueError(
        f"audio has {have} channels and {channels} are needed: only mono -> {channels} channels and any count -> "
        f"mono are converted; mix the track down to mono or {channel_name(channels)} first"
    )


def _check_not_silent(waveform: torch.Tensor, what: str) -> None:
    peaks = waveform.abs().flatten(-2).amax(dim=-1).reshape(-1)  # one peak per batch item
    silent = [index for index, peak in enumerate(peaks.tolist()) if peak < SILENT_PEAK]
    if silent:
        items = "" if waveform.ndim == 2 else f" (batch item{'s' if len(silent) > 1 else ''} {silent})"
        raise ValueError(
            f"audio: {what}{items} is silent (peak below 1/32768, one 16-bit step); audio conditioning needs a "
            "track with sound"
        )


def fit_audio(
    waveform: torch.Tensor, sample_rate: int, target_rate: int, target_samples: int, channels: int
) -> tuple[torch.Tensor, str]:
    """A track made ready for one video: (C, T) or (B, C, T) at sample_rate Hz -> the same rank with `channels`
    channels and target_samples samples at target_rate Hz, and a message saying what changed ("" if nothing did).

    Steps, in this order: channel conversion (convert_channels: mono <-> N as copy / average), resampling with
    model/ltx2/resample.py's `resample` (Hann-windowed sinc, torchaudio's algorithm), then trimming the end or
    padding it with silence to target_samples (fit_length). For the LTX-2 audio VAE: target_rate 16000, channels 2,
    target_samples = video_samples(num_frames, fps, 16000).

    ValueError (naming the argument and what would work) for: a waveform that is not a float tensor of rank 2 or 3,
    empty, or with non-finite values; rates, target_samples or channels that are not positive ints; a channel count
    that cannot be converted; a silent track, or a track whose part that fits the video is silent.
    """
    check_waveform(waveform, "audio")
    sample_rate = _positive_int("sample_rate", sample_rate)
    target_rate = _positive_int("target_rate", target_rate)
    target_samples = _positive_int("target_samples", target_samples)
    channels = _positive_int("channels", channels)
    _check_not_silent(waveform, "the track")
    messages = []
    waveform, message = convert_channels(waveform, channels)
    messages.append(message)
    if sample_rate != target_rate:
        waveform = resample(waveform, sample_rate, target_rate)
        messages.append(f"resampled {sample_rate} -> {target_rate} Hz")
    waveform, message = fit_length(waveform, target_samples, target_rate)
    messages.append(message)
    _check_not_silent(waveform, f"the first {target_samples / target_rate:.3f} s (the part that fits the video)")
    return waveform, "; ".join(m for m in messages if m)


def output_sample_rate(vocoder: nn.Module) -> int:
    """The rate of the waveforms a vocoder returns (Vocoder / VocoderWithBWE `output_sample_rate`)."""
    rate = getattr(vocoder, "output_sample_rate", None)
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise ValueError(f"the vocoder has no positive integer output_sample_rate (got {rate!r})")
    return rate


def decode_audio(audio_vae: nn.Module, vocoder: nn.Module, latent: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Normalised audio latent (B, C, T', F') -> (waveform (B, 2, samples) float32 on the CPU, sample rate).

    audio_vae.decode gives the stereo log-mel (B, 2, 4T' - 3, mels) and the vocoder the waveform at its output rate
    (24 kHz for 2.0, 48 kHz for 2.3+). The latent is moved to the decoder's device and dtype.
    """
    parameter = next(audio_vae.parameters())
    mel = audio_vae.decode(latent.to(device=parameter.device, dtype=parameter.dtype))  # (B, 2, T, mels)
    vocoder_parameter = next(vocoder.parameters())
    waveform = vocoder(mel.to(device=vocoder_parameter.device, dtype=vocoder_parameter.dtype))  # (B, 2, samples)
    return waveform.float().cpu().contiguous(), output_sample_rate(vocoder)
