"""Band-limited 1-D resampling for the LTX-2 audio path.

Three filters, each written from its formula:
- Kaiser-windowed sinc low-pass (BigVGAN v2): the x2 up / x2 down pair around every SnakeBeta activation of the
  2.3+ vocoder. Their filter taps are persistent buffers, so the released files carry them (`...upsample.filter`,
  `...downsample.lowpass.filter`).
- Hann-windowed sinc interpolation by an integer factor: the skip path of the bandwidth extension (16 -> 48 kHz).
  Not stored in the files (a non-persistent buffer, rebuilt here).
- `resample`: arbitrary rational rate change with the Hann-windowed sinc kernel of torchaudio.functional.resample
  (lowpass width 6, rolloff 0.99), used to bring input audio to the audio VAE's 16 kHz.
"""

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn


def kaiser_sinc_filter(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """Kaiser-windowed sinc low-pass taps normalised to unit DC gain -> (1, 1, kernel_size), float32, on the default
    device (computed once per setting on the CPU: a 2.3 vocoder has some 400 of these filters).

    cutoff and half_width are in cycles per sample (0.5 = Nyquist). beta follows Kaiser's empirical rule from the
    attenuation of a transition band 4 * half_width wide.
    """
    return _kaiser_sinc_taps(cutoff, half_width, kernel_size).to(torch.get_default_device(), copy=True)


@lru_cache(maxsize=16)
def _kaiser_sinc_taps(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    if cutoff == 0:
        return torch.zeros(1, 1, kernel_size, device="cpu")
    half = kernel_size // 2
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, beta=beta, periodic=False, device="cpu")
    # tap times centred on the kernel: half-integers for an even size
    if kernel_size % 2 == 0:
        time = torch.arange(-half, half, device="cpu") + 0.5
    else:
        time = (torch.arange(kernel_size, device="cpu") - half).float()
    taps = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    return (taps / taps.sum()).view(1, 1, kernel_size)


class LowPassFilter(nn.Module):
    """Depthwise Kaiser-sinc low-pass with replicate padding and a stride (the decimating half of DownSample)."""

    def __init__(self, cutoff: float, half_width: float, stride: int, kernel_size: int):
        super().__init__()
        self.stride = stride
        self.pad_left = kernel_size // 2 - int(kernel_size % 2 == 0)
        self.pad_right = kernel_size // 2
        self.register_buffer("filter", kaiser_sinc_filter(cutoff, half_width, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, T) -> (B, C, ceil(T / stride))."""
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        taps = self.filter.to(x.dtype).expand(x.shape[1], -1, -1)
        return F.conv1d(x, taps, stride=self.stride, groups=x.shape[1])


class DownSample(nn.Module):
    """Anti-aliased decimation by `ratio` (Kaiser-sinc low-pass at 0.5 / ratio, then every ratio-th sample)."""

    def __init__(self, ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.lowpass = LowPassFilter(0.5 / ratio, 0.6 / ratio, ratio, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class UpSample(nn.Module):
    """Anti-aliased interpolation by an integer `ratio`: zero-stuffing + low-pass as one transposed conv.

    window "kaiser": the BigVGAN filter (taps stored in the files). window "hann": a Hann-windowed sinc
    (lowpass width 6 zero crossings, rolloff 0.99), taps not stored (`persistent=False`).
    (B, C, T) -> (B, C, ratio * T).
    """

    def __init__(self, ratio: int = 2, kernel_size: int = 12, window: str = "kaiser", persistent: bool = True):
        super().__init__()
        self.ratio = ratio
        if window == "hann":
            rolloff, zero_crossings = 0.99, 6
            width = math.ceil(zero_crossings / rolloff)
            kernel_size = 2 * width * ratio + 1
            self.pad = width
            self.crop_left, self.crop_right = 2 * width * ratio, kernel_size - ratio
            time = (torch.arange(kernel_size) / ratio - width) * rolloff
            hann = torch.cos(time.clamp(-zero_crossings, zero_crossings) * math.pi / zero_crossings / 2) ** 2
            taps = (torch.sinc(time) * hann * rolloff / ratio).view(1, 1, -1)
        elif window == "kaiser":
            self.pad = kernel_size // ratio - 1
            self.crop_left = self.pad * ratio + (kernel_size - ratio) // 2
            self.crop_right = self.pad * ratio + (kernel_size - ratio + 1) // 2
            taps = kaiser_sinc_filter(0.5 / ratio, 0.6 / ratio, kernel_size)
        else:
            raise ValueError(f"UpSample window must be 'kaiser' or 'hann', got {window!r}")
        self.register_buffer("filter", taps, persistent=persistent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        taps = self.filter.to(device=x.device, dtype=x.dtype).expand(x.shape[1], -1, -1)
        x = self.ratio * F.conv_transpose1d(x, taps, stride=self.ratio, groups=x.shape[1])
        return x[..., self.crop_left : -self.crop_right]


def resample(waveform: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Resample (..., samples) from orig_rate to new_rate Hz (ints) -> (..., ceil(samples * new / orig)).

    Polyphase Hann-windowed sinc interpolation with 6 zero crossings and a cutoff at 0.99 of the lower Nyquist
    frequency; the kernel is built in the waveform's dtype. The same algorithm and constants as
    torchaudio.functional.resample's default "sinc_interp_hann" (benchmarks/mel_vs_torchaudio.py compares them).
    """
    if orig_rate <= 0 or new_rate <= 0 or int(orig_rate) != orig_rate or int(new_rate) != new_rate:
        raise ValueError(f"resample needs positive integer sample rates, got {orig_rate} -> {new_rate}")
    if orig_rate == new_rate:
        return waveform
    gcd = math.gcd(int(orig_rate), int(new_rate))
    down, up = int(orig_rate) // gcd, int(new_rate) // gcd
    zero_crossings, rolloff = 6, 0.99
    base = min(down, up) * rolloff
    width = math.ceil(zero_crossings * down / base)
    dtype, device = waveform.dtype, waveform.device
    # kernel k (one per output phase) evaluated at input offsets -width .. width + down - 1
    offsets = torch.arange(-width, width + down, dtype=dtype, device=device)[None, None] / down
    t = torch.arange(0, -up, -1, dtype=dtype, device=device)[:, None, None] / up + offsets
    t = (t * base).clamp(-zero_crossings, zero_crossings)
    hann = torch.cos(t * math.pi / zero_crossings / 2) ** 2
    t = t * math.pi
    kernels = torch.where(t == 0, torch.ones_like(t), t.sin() / t) * hann * (base / down)  # (up, 1, taps)

    shape = waveform.shape
    flat = waveform.reshape(-1, shape[-1])
    length = flat.shape[-1]
    out = F.conv1d(F.pad(flat, (width, width + down))[:, None], kernels, stride=down)  # (N, up, frames)
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)
    out = out[..., : math.ceil(up * length / down)]
    return out.reshape(*shape[:-1], out.shape[-1])
