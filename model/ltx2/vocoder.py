"""LTX-2 vocoders: stereo log-mel (B, 2, T, 64) -> waveform (B, 2, samples).

- 2.0 (`Vocoder` with resblock "1"): HiFi-GAN. conv_pre 128 -> 1024, transposed-conv upsampling 6, 5, 2, 2, 2
  (x240: 100 mel frames/s -> 24 kHz), parallel dilated residual blocks (kernels 3, 7, 11) averaged, LeakyReLU 0.1,
  conv_post -> 2 channels, tanh.
- 2.3+ (`VocoderWithBWE`): a BigVGAN-v2 generator (resblock "AMP1": anti-aliased SnakeBeta activations) to 16 kHz,
  then bandwidth extension: causal log-mel of that waveform (STFT and mel bases are buffers from the file) -> a
  second generator (x240 -> 48 kHz) predicting a residual added to a Hann-sinc x3 upsampling of the 16 kHz wave,
  clamped to [-1, 1].
Module and key names are the official ones (the file's keys without one leading `vocoder.`). `output_sample_rate`
gives the rate of the returned waveform.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .resample import DownSample, UpSample

LEAKY_SLOPE = 0.1
SNAKE_EPS = 1e-9
RESBLOCK_TYPES = ("1", "AMP1")
ACTIVATIONS = ("snake", "snakebeta")


@dataclass(frozen=True)
class VocoderConfig:
    """One generator, as the file's flat vocoder config (ltx-core `Vocoder` arguments; defaults = 2.0).

    final_activation: after conv_post, "tanh", "clamp" ([-1, 1]) or None (ltx-core: tanh if use_tanh_at_final else
    clamp, none when apply_final_activation is false).
    """

    upsample_rates: tuple[int, ...] = (6, 5, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 15, 8, 4, 4)
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    upsample_initial_channel: int = 1024
    resblock: str = "1"
    activation: str = "snake"
    final_activation: str | None = "tanh"
    final_bias: bool = True
    in_channels: int = 128  # 2 stereo channels x 64 mel bins
    output_sample_rate: int = 24000

    def __post_init__(self):
        for name in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "resblock_dilation_sizes", tuple(tuple(d) for d in self.resblock_dilation_sizes))
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError(
                f"VocoderConfig: upsample_rates {self.upsample_rates} and upsample_kernel_sizes "
                f"{self.upsample_kernel_sizes} must have the same length"
            )
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError(
                f"VocoderConfig: resblock_kernel_sizes {self.resblock_kernel_sizes} and resblock_dilation_sizes "
                f"{self.resblock_dilation_sizes} must have the same length"
            )
        if self.resblock not in RESBLOCK_TYPES:
            raise ValueError(f"VocoderConfig.resblock must be one of {RESBLOCK_TYPES}, got {self.resblock!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"VocoderConfig.activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.final_activation not in ("tanh", "clamp", None):
            raise ValueError(
                f"VocoderConfig.final_activation must be 'tanh', 'clamp' or None, got {self.final_activation!r}"
            )
        if self.upsample_initial_channel % 2 ** len(self.upsample_rates):
            raise ValueError(
                f"VocoderConfig.upsample_initial_channel ({self.upsample_initial_channel}) must be divisible by "
                f"2^{len(self.upsample_rates)} (it halves at every upsampling stage)"
            )

    @property
    def hop(self) -> int:
        """Output samples per input frame."""
        total = 1
        for rate in self.upsample_rates:
            total *= rate
        return total

    @classmethod
    def from_metadata(
        cls, section: dict, apply_final_activation: bool = True, output_sample_rate: int | None = None
    ) -> "VocoderConfig":
        """From a flat vocoder config dict (ltx-core `_vocoder_from_config`, same defaults)."""
        if not section.get("stereo", True):
            raise ValueError("vocoder config has stereo=false; the LTX-2 vocoders are stereo (128 input channels)")
        final = None
        if apply_final_activation:
            final = "tanh" if section.get("use_tanh_at_final", True) else "clamp"
        return cls(
            upsample_rates=section.get("upsample_rates", (6, 5, 2, 2, 2)),
            upsample_kernel_sizes=section.get("upsample_kernel_sizes", (16, 15, 8, 4, 4)),
            resblock_kernel_sizes=section.get("resblock_kernel_sizes", (3, 7, 11)),
            resblock_dilation_sizes=section.get("resblock_dilation_sizes", ((1, 3, 5),) * 3),
            upsample_initial_channel=section.get("upsample_initial_channel", 1024),
            resblock=section.get("resblock", "1"),
            activation=section.get("activation", "snake"),
            final_activation=final,
            final_bias=section.get("use_bias_at_final", True),
            output_sample_rate=(
                output_sample_rate if output_sample_rate is not None else section.get("output_sampling_rate", 24000)
            ),
        )


class Snake(nn.Module):
    """x + sin^2(a x) / a (Snake, beta=False) or x + sin^2(a x) / b (SnakeBeta); a, b stored as logs, per channel."""

    def __init__(self, channels: int, beta: bool):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels)) if beta else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B, C, T)
        alpha = self.alpha.exp()[None, :, None]
        amplitude = alpha if self.beta is None else self.beta.exp()[None, :, None]
        return x + torch.sin(x * alpha).pow(2) / (amplitude + SNAKE_EPS)


class AntiAliasedActivation(nn.Module):
    """Upsample x2 (Kaiser sinc), activation, low-pass and decimate x2: the activation's harmonics do not alias."""

    def __init__(self, activation: nn.Module):
        super().__init__()
        self.upsample = UpSample(2, 12)
        self.act = activation
        self.downsample = DownSample(2, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


def dilated_conv(channels: int, kernel_size: int, dilation: int) -> nn.Conv1d:
    return nn.Conv1d(channels, channels, kernel_size, dilation=dilation, padding=dilation * (kernel_size - 1) // 2)


class ResBlock(nn.Module):
    """Per dilation d: x += conv_k(act(conv_k,d(act(x)))). HiFi-GAN "1": LeakyReLU 0.1; BigVGAN "AMP1": one
    anti-aliased Snake(Beta) per convolution (`acts1.N`, `acts2.N`)."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...], cfg: VocoderConfig):
        super().__init__()
        self.convs1 = nn.ModuleList(dilated_conv(channels, kernel_size, d) for d in dilations)
        self.convs2 = nn.ModuleList(dilated_conv(channels, kernel_size, 1) for _ in dilations)
        if cfg.resblock == "AMP1":
            beta = cfg.activation == "snakebeta"
            self.acts1 = nn.ModuleList(AntiAliasedActivation(Snake(channels, beta)) for _ in dilations)
            self.acts2 = nn.ModuleList(AntiAliasedActivation(Snake(channels, beta)) for _ in dilations)
        else:
            self.acts1 = self.acts2 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, (conv1, conv2) in enumerate(zip(self.convs1, self.convs2)):
            if self.acts1 is None:
                h = conv2(F.leaky_relu(conv1(F.leaky_relu(x, LEAKY_SLOPE)), LEAKY_SLOPE))
            else:
                h = conv2(self.acts2[index](conv1(self.acts1[index](x))))
            x = x + h
        return x


class Vocoder(nn.Module):
    """One generator: frames (B, in_channels, T) -> waveform (B, 2, T * hop). forward takes the stereo log-mel."""

    def __init__(self, config: VocoderConfig = VocoderConfig()):
        super().__init__()
        self.config = config
        base = config.upsample_initial_channel
        self.conv_pre = nn.Conv1d(config.in_channels, base, 7, padding=3)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(base // 2**i, base // 2 ** (i + 1), k, stride, padding=(k - stride) // 2)
            for i, (stride, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes))
        )
        self.resblocks = nn.ModuleList(
            ResBlock(base // 2 ** (i + 1), k, d, config)
            for i in range(len(config.upsample_rates))
            for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes)
        )
        final = base // 2 ** len(config.upsample_rates)
        if config.resblock == "AMP1":
            self.act_post = AntiAliasedActivation(Snake(final, beta=True))
        else:
            self.act_post = nn.LeakyReLU()  # default slope 0.01, as in the official code
        self.conv_post = nn.Conv1d(final, 2, 7, padding=3, bias=config.final_bias)

    @property
    def output_sample_rate(self) -> int:
        return self.config.output_sample_rate

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Stereo log-mel (B, 2, T, mels) -> waveform (B, 2, T * hop)."""
        if mel.ndim != 4 or mel.shape[1] * mel.shape[3] != self.config.in_channels:
            raise ValueError(
                f"Vocoder expects a stereo log-mel (B, 2, T, mels) with 2 * mels = {self.config.in_channels}, "
                f"got shape {tuple(mel.shape)}"
            )
        x = mel.transpose(2, 3).flatten(1, 2)  # (B, 2 * mels, T), channel-major
        x = self.conv_pre(x)
        per_stage = len(self.config.resblock_kernel_sizes)
        for stage, up in enumerate(self.ups):
            if self.config.resblock == "1":
                x = F.leaky_relu(x, LEAKY_SLOPE)
            x = up(x)
            blocks = self.resblocks[stage * per_stage : (stage + 1) * per_stage]
            x = torch.stack([block(x) for block in blocks]).mean(dim=0)
        x = self.conv_post(self.act_post(x))
        if self.config.final_activation == "tanh":
            return torch.tanh(x)
        if self.config.final_activation == "clamp":
            return x.clamp(-1, 1)
        return x


@dataclass(frozen=True)
class BandwidthExtensionConfig:
    """The BWE stage of 2.3+ (`bwe` section): causal STFT of the generator output and the rate change."""

    n_fft: int = 512
    hop_length: int = 80
    mel_bins: int = 64
    input_sample_rate: int = 16000
    output_sample_rate: int = 48000

    def __post_init__(self):
        if self.output_sample_rate % self.input_sample_rate:
            raise ValueError(
                f"BandwidthExtensionConfig: output rate {self.output_sample_rate} must be an integer multiple of "
                f"the input rate {self.input_sample_rate}"
            )


class CausalSTFT(nn.Module):
    """STFT as a strided conv with a stored windowed-DFT basis (real rows, then imaginary rows), left padding only.
    `inverse_basis` is stored in the files but unused for inference."""

    def __init__(self, n_fft: int, hop_length: int):
        super().__init__()
        self.hop_length = hop_length
        self.left_pad = max(0, n_fft - hop_length)
        n_freqs = n_fft // 2 + 1
        self.register_buffer("forward_basis", torch.zeros(2 * n_freqs, 1, n_fft))
        self.register_buffer("inverse_basis", torch.zeros(2 * n_freqs, 1, n_fft))

    def magnitude(self, wave: torch.Tensor) -> torch.Tensor:
        """(N, samples) -> |STFT| (N, n_freqs, samples // hop)."""
        spec = F.conv1d(F.pad(wave[:, None], (self.left_pad, 0)), self.forward_basis, stride=self.hop_length)
        real, imag = spec.chunk(2, dim=1)
        return torch.sqrt(real**2 + imag**2)


class MelSTFT(nn.Module):
    def __init__(self, cfg: BandwidthExtensionConfig):
        super().__init__()
        self.stft_fn = CausalSTFT(cfg.n_fft, cfg.hop_length)
        self.register_buffer("mel_basis", torch.zeros(cfg.mel_bins, cfg.n_fft // 2 + 1))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(N, samples) -> log-mel (N, mels, frames)."""
        magnitude = self.stft_fn.magnitude(wave)
        return torch.log(torch.clamp(self.mel_basis.to(magnitude.dtype) @ magnitude, min=1e-5))


class VocoderWithBWE(nn.Module):
    """Generator to input_sample_rate, then bandwidth extension to output_sample_rate (B, 2, T * hop * ratio)."""

    def __init__(self, vocoder: VocoderConfig, bwe_generator: VocoderConfig, bwe: BandwidthExtensionConfig):
        super().__init__()
        self.bwe = bwe
        self.vocoder = Vocoder(vocoder)
        self.bwe_generator = Vocoder(bwe_generator)
        self.mel_stft = MelSTFT(bwe)
        ratio = bwe.output_sample_rate // bwe.input_sample_rate
        self.resampler = UpSample(ratio, window="hann", persistent=False)

    @property
    def output_sample_rate(self) -> int:
        return self.bwe.output_sample_rate

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        low = self.vocoder(mel)  # (B, 2, samples) at the input rate
        batch, channels, samples = low.shape
        out_samples = samples * self.bwe.output_sample_rate // self.bwe.input_sample_rate
        low = F.pad(low, (0, -samples % self.bwe.hop_length))  # whole STFT frames
        low_mel = self.mel_stft(low.reshape(batch * channels, -1))  # (B*2, mels, frames)
        low_mel = low_mel.reshape(batch, channels, *low_mel.shape[1:]).transpose(2, 3)  # (B, 2, frames, mels)
        wave = self.bwe_generator(low_mel) + self.resampler(low)
        return wave.clamp(-1, 1)[..., :out_samples]


def build_vocoder(config: dict) -> Vocoder | VocoderWithBWE:
    """From a checkpoint's parsed `config` metadata (its `vocoder` section): a flat section is the 2.0 HiFi-GAN,
    a section with `vocoder` and `bwe` sub-sections is the 2.3+ vocoder with bandwidth extension."""
    section = config.get("vocoder")
    if not section:
        raise ValueError("checkpoint metadata has no 'vocoder' config section (not a file with a vocoder)")
    if "bwe" not in section:
        return Vocoder(VocoderConfig.from_metadata(section))
    bwe = section["bwe"]
    for name, sub in (("vocoder", section.get("vocoder", {})), ("bwe", bwe)):
        if sub.get("resblock") != "AMP1" or sub.get("activation") != "snakebeta":
            raise ValueError(
                f"vocoder config '{name}' must use resblock 'AMP1' with activation 'snakebeta' for bandwidth "
                f"extension, got {sub.get('resblock')!r} / {sub.get('activation')!r}"
            )
    extension = BandwidthExtensionConfig(
        n_fft=bwe["n_fft"],
        hop_length=bwe["hop_length"],
        mel_bins=bwe["num_mels"],
        input_sample_rate=bwe["input_sampling_rate"],
        output_sample_rate=bwe["output_sampling_rate"],
    )
    return VocoderWithBWE(
        VocoderConfig.from_metadata(section.get("vocoder", {}), output_sample_rate=extension.input_sample_rate),
        VocoderConfig.from_metadata(bwe, apply_final_activation=False, output_sample_rate=extension.output_sample_rate),
        extension,
    )
