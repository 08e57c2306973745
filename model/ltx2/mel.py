"""The audio VAE's mel front-end: waveform -> log-mel spectrogram, with torch.stft and a Slaney mel filterbank.

The official audio processor (ltx-core `audio_vae/ops.py::AudioProcessor`) uses torchaudio's MelSpectrogram with:
sample rate 16000 (input resampled to it), n_fft = win_length = 1024, hop 160, periodic Hann window, centred frames
with reflect padding, magnitude (power 1), f_min 0, f_max = sample_rate / 2, 64 mel bins on the Slaney scale with
Slaney area normalisation, then log(max(mel, 1e-5)). Output layout (B, C, frames, mels): time before frequency.
frames = samples // hop + 1 (centred). No torchaudio here; benchmarks/mel_vs_torchaudio.py measures the difference.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from .resample import resample

LOG_FLOOR = 1e-5  # the clamp before log

# Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above (27 steps per factor 6.4)
_SLANEY_HZ_PER_MEL = 200.0 / 3
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = math.log(6.4) / 27.0


@dataclass(frozen=True)
class MelConfig:
    """STFT and mel settings; the defaults are the official LTX-2 ones (audio VAE metadata `preprocessing`)."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 160
    mel_bins: int = 64

    def __post_init__(self):
        for name in ("sample_rate", "n_fft", "hop_length", "mel_bins"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"MelConfig.{name} must be a positive int, got {value!r}")
        if self.hop_length > self.n_fft:
            raise ValueError(f"MelConfig.hop_length ({self.hop_length}) must be <= n_fft ({self.n_fft})")

    @property
    def f_max(self) -> float:
        return self.sample_rate / 2.0

    def frames(self, samples: int) -> int:
        """Number of mel frames for a waveform of `samples` samples (centred STFT)."""
        return samples // self.hop_length + 1


def hz_to_slaney_mel(hz: float) -> float:
    if hz < _SLANEY_BREAK_HZ:
        return hz / _SLANEY_HZ_PER_MEL
    return _SLANEY_BREAK_MEL + math.log(hz / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP


def slaney_mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    linear = mel * _SLANEY_HZ_PER_MEL
    logarithmic = _SLANEY_BREAK_HZ * torch.exp(_SLANEY_LOG_STEP * (mel - _SLANEY_BREAK_MEL))
    return torch.where(mel >= _SLANEY_BREAK_MEL, logarithmic, linear)


def slaney_mel_filterbank(n_freqs: int, f_min: float, f_max: float, mel_bins: int, sample_rate: int) -> torch.Tensor:
    """Triangular filters on the Slaney mel scale, each scaled to unit area (2 / bandwidth) -> (n_freqs, mel_bins).

    STFT bin i sits at i * (sample_rate // 2) / (n_freqs - 1) Hz; filter m rises from edge m to edge m + 1 and falls
    to edge m + 2, with mel_bins + 2 edges evenly spaced in mel between f_min and f_max. float32, like torchaudio.
    """
    bin_hz = torch.linspace(0, sample_rate // 2, n_freqs)
    edges_hz = slaney_mel_to_hz(torch.linspace(hz_to_slaney_mel(f_min), hz_to_slaney_mel(f_max), mel_bins + 2))
    widths = edges_hz[1:] - edges_hz[:-1]  # (mel_bins + 1,)
    to_edge = edges_hz[None, :] - bin_hz[:, None]  # (n_freqs, mel_bins + 2): edge minus bin frequency
    rising = -to_edge[:, :-2] / widths[:-1]
    falling = to_edge[:, 2:] / widths[1:]
    triangles = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return triangles * (2.0 / (edges_hz[2:] - edges_hz[:-2]))[None, :]


class LogMelSpectrogram(nn.Module):
    """Waveform (B, C, samples) at config.sample_rate -> log-mel (B, C, frames, mel_bins).

    The Hann window and filterbank are non-persistent buffers (not in any released file), built in float32; the
    STFT runs in float32 and the result is cast back to the input dtype.
    """

    def __init__(self, config: MelConfig = MelConfig()):
        super().__init__()
        self.config = config
        n_freqs = config.n_fft // 2 + 1
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        filterbank = slaney_mel_filterbank(n_freqs, 0.0, config.f_max, config.mel_bins, config.sample_rate)
        self.register_buffer("filterbank", filterbank, persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.ndim != 3:
            raise ValueError(f"LogMelSpectrogram expects a waveform (B, C, samples), got shape {tuple(waveform.shape)}")
        batch, channels, samples = waveform.shape
        cfg = self.config
        if samples <= cfg.n_fft // 2:
            raise ValueError(
                f"waveform has {samples} samples; reflect padding needs more than n_fft/2 = {cfg.n_fft // 2}"
            )
        spectrum = torch.stft(
            waveform.reshape(batch * channels, samples).float(),
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.n_fft,
            window=self.window.to(waveform.device),
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        ).abs()  # (B*C, n_freqs, frames)
        mel = torch.matmul(spectrum.transpose(1, 2), self.filterbank.to(waveform.device))  # (B*C, frames, mels)
        log_mel = torch.log(torch.clamp(mel, min=LOG_FLOOR))
        return log_mel.reshape(batch, channels, *log_mel.shape[1:]).to(waveform.dtype)


def waveform_to_log_mel(waveform: torch.Tensor, sample_rate: int, config: MelConfig = MelConfig()) -> torch.Tensor:
    """Resample (B, C, samples) at `sample_rate` Hz to config.sample_rate, then log-mel -> (B, C, frames, mels)."""
    waveform = resample(waveform, sample_rate, config.sample_rate)
    return LogMelSpectrogram(config).to(waveform.device)(waveform)
