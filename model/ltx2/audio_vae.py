"""LTX-2 audio VAE: log-mel spectrogram (B, 2, T, 64) <-> latent (B, 8, T', 16), T' = (T - 1) // 4 + 1 (causal).

An LDM-style 2-D conv autoencoder over (time, mel) with convolutions causal along time (`causality_axis="height"`:
time is the height axis), pixel norm, no attention in the released files. The encoder returns the mean half of its
output, normalised with the per-channel statistics on the patchified form (`b c t f -> b t (c f)`, 128 values);
the decoder un-normalises, decodes and crops or zero-pads to 4 * T' - 3 mel frames (ltx-core
`model/audio_vae/audio_vae.py`). Module and key names are the official ones, i.e. the file's keys without `audio_vae.`:
`encoder.*`, `decoder.*`, `per_channel_statistics.{mean-of-means,std-of-means}`.
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks.attention import attention
from ..ltxv.vae_layers import pixel_norm
from .audio_patchify import LATENT_DOWNSAMPLE, patchify_audio, unpatchify_audio
from .mel import MelConfig, waveform_to_log_mel

NORM_EPS = 1e-6
NORM_TYPES = ("pixel", "group")
# (left, right, top, bottom) zero padding of the stride-2 3x3 downsampling conv, per causal axis
DOWNSAMPLE_PAD = {
    "none": (0, 1, 0, 1),
    "width": (2, 0, 0, 1),
    "height": (0, 1, 2, 0),
    "width-compatibility": (1, 0, 0, 1),
}


@dataclass(frozen=True)
class AudioVAEConfig:
    """Architecture of the audio VAE; the defaults are the released LTX-2.0 / 2.3 values.

    channels: base width (`ch`); level i has channels * channel_multipliers[i]. Each level but the last halves time
    and mel. attn_resolutions: levels (by their `resolution`, halved per level) that get self-attention after each
    block. stats width (the per-channel statistics, sized `channels` as in ltx-core) must equal the patchified
    latent width latent_channels * latent mel bins.
    """

    channels: int = 128
    channel_multipliers: tuple[int, ...] = (1, 2, 4)
    res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = ()
    resolution: int = 256
    latent_channels: int = 8
    double_z: bool = True
    in_channels: int = 2
    out_channels: int = 2
    norm_type: str = "pixel"
    causality_axis: str = "height"
    mid_attention: bool = False
    mel: MelConfig = field(default_factory=MelConfig)

    def __post_init__(self):
        object.__setattr__(self, "channel_multipliers", tuple(self.channel_multipliers))
        object.__setattr__(self, "attn_resolutions", tuple(sorted(self.attn_resolutions)))
        if self.norm_type not in NORM_TYPES:
            raise ValueError(f"AudioVAEConfig.norm_type must be one of {NORM_TYPES}, got {self.norm_type!r}")
        if self.causality_axis not in DOWNSAMPLE_PAD:
            raise ValueError(
                f"AudioVAEConfig.causality_axis must be one of {tuple(DOWNSAMPLE_PAD)}, got {self.causality_axis!r}"
            )
        if self.causality_axis != "none" and self.norm_type == "group":
            raise ValueError(
                "AudioVAEConfig: GroupNorm with causal convolutions is not supported; use norm_type='pixel'"
            )
        if not self.channel_multipliers or min(self.channel_multipliers) <= 0:
            raise ValueError(f"AudioVAEConfig.channel_multipliers must be positive, got {self.channel_multipliers}")
        if self.stats_width != self.latent_channels * self.latent_mel_bins:
            raise ValueError(
                f"AudioVAEConfig: the per-channel statistics have channels={self.channels} entries but a patchified "
                f"latent has latent_channels * latent mel bins = {self.latent_channels} * {self.latent_mel_bins}"
            )

    @property
    def stats_width(self) -> int:
        return self.channels

    @property
    def latent_mel_bins(self) -> int:
        return self.mel.mel_bins // 2 ** (len(self.channel_multipliers) - 1)

    @classmethod
    def from_metadata(cls, config: dict) -> "AudioVAEConfig":
        """From a checkpoint's parsed `config` metadata (its `audio_vae` section), read as ltx-core's configurators
        read it: architecture from `model.params.ddconfig`, rate from `model.params.sampling_rate`, STFT from
        `preprocessing.stft`; keys absent there take ltx-core's defaults."""
        section = config.get("audio_vae")
        if not section:
            raise ValueError("checkpoint metadata has no 'audio_vae' config section (not a file with an audio VAE)")
        params = section.get("model", {}).get("params", {})
        dd = params.get("ddconfig", {})
        stft = section.get("preprocessing", {}).get("stft", {})
        mel_section = section.get("preprocessing", {}).get("mel", {})
        mel_bins = (
            dd.get("mel_bins") or mel_section.get("n_mel_channels") or section.get("variables", {}).get("mel_bins")
        )
        mel = MelConfig(
            sample_rate=params.get("sampling_rate", 16000),
            n_fft=stft.get("filter_length", 1024),
            hop_length=stft.get("hop_length", 160),
            mel_bins=mel_bins or 64,
        )
        return cls(
            channels=dd.get("ch", 128),
            channel_multipliers=tuple(dd.get("ch_mult", (1, 2, 4))),
            res_blocks=dd.get("num_res_blocks", 2),
            attn_resolutions=tuple(dd.get("attn_resolutions", (8, 16, 32))),
            resolution=dd.get("resolution", 256),
            latent_channels=dd.get("z_channels", 8),
            double_z=dd.get("double_z", True),
            in_channels=dd.get("in_channels", 2),
            out_channels=dd.get("out_ch", 2),
            norm_type=dd.get("norm_type", "pixel"),
            causality_axis=dd.get("causality_axis", "height") or "none",  # ltx-core spells "none" as null
            mid_attention=dd.get("mid_block_add_attention", True),
            mel=mel,
        )


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_norm(x, NORM_EPS)


def make_norm(channels: int, norm_type: str) -> nn.Module:
    return PixelNorm() if norm_type == "pixel" else nn.GroupNorm(32, channels, eps=NORM_EPS)


class CausalConv2d(nn.Module):
    """Conv2d with stride 1 whose 'same' padding is all on the past side of the causal axis (zeros)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, causality_axis: str):
        super().__init__()
        total = kernel_size - 1
        centred = (total // 2, total - total // 2)
        if causality_axis == "height":
            self.padding = (*centred, total, 0)
        elif causality_axis in ("width", "width-compatibility"):
            self.padding = (total, 0, *centred)
        else:
            self.padding = (*centred, *centred)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.padding))


class ResnetBlock(nn.Module):
    """norm -> SiLU -> conv3 -> norm -> SiLU -> conv3, plus the input (through a 1x1 conv when widths differ)."""

    def __init__(self, in_channels: int, out_channels: int, cfg: AudioVAEConfig):
        super().__init__()
        self.norm1 = make_norm(in_channels, cfg.norm_type)
        self.conv1 = CausalConv2d(in_channels, out_channels, 3, cfg.causality_axis)
        self.norm2 = make_norm(out_channels, cfg.norm_type)
        self.conv2 = CausalConv2d(out_channels, out_channels, 3, cfg.causality_axis)
        self.nin_shortcut = (
            CausalConv2d(in_channels, out_channels, 1, cfg.causality_axis) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all (time, mel) positions, 1x1-conv projections, residual."""

    def __init__(self, channels: int, norm_type: str):
        super().__init__()
        self.norm = make_norm(channels, norm_type)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        h = self.norm(x)

        def tokens(t: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, 1, H*W, C)
            return t.reshape(batch, 1, channels, height * width).transpose(2, 3)

        out = attention(tokens(self.q(h)), tokens(self.k(h)), tokens(self.v(h)))  # (B, 1, H*W, C)
        out = out.transpose(2, 3).reshape(batch, channels, height, width)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """3x3 conv, stride 2 in time and mel, zero padding on the past side of the causal axis."""

    def __init__(self, channels: int, causality_axis: str):
        super().__init__()
        self.padding = DOWNSAMPLE_PAD[causality_axis]
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.padding))


class Upsample(nn.Module):
    """Nearest x2 in time and mel, causal 3x3 conv, then the first step of the causal axis is dropped so that
    T frames become 2T - 1 (the inverse of the causal downsampling)."""

    def __init__(self, channels: int, causality_axis: str):
        super().__init__()
        self.causality_axis = causality_axis
        self.conv = CausalConv2d(channels, channels, 3, causality_axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        if self.causality_axis == "height":
            return x[:, :, 1:]
        if self.causality_axis == "width":
            return x[:, :, :, 1:]
        return x


class Level(nn.Module):
    """One resolution: res blocks (`block.N`), optional attention after each (`attn.N`), optional resampler."""

    def __init__(self, widths: list[tuple[int, int]], with_attention: bool, cfg: AudioVAEConfig):
        super().__init__()
        self.block = nn.ModuleList(ResnetBlock(i, o, cfg) for i, o in widths)
        self.attn = nn.ModuleList(AttnBlock(o, cfg.norm_type) for _, o in widths) if with_attention else nn.ModuleList()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, block in enumerate(self.block):
            x = block(x)
            if len(self.attn):
                x = self.attn[index](x)
        return x


class MidBlock(nn.Module):
    def __init__(self, channels: int, cfg: AudioVAEConfig):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, cfg)
        self.attn_1 = AttnBlock(channels, cfg.norm_type) if cfg.mid_attention else nn.Identity()
        self.block_2 = ResnetBlock(channels, channels, cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class AudioEncoder(nn.Module):
    """mel (B, in_channels, T, mels) -> moments (B, 2*latent or latent, T', mels / 2^(levels-1)), un-normalised."""

    def __init__(self, cfg: AudioVAEConfig):
        super().__init__()
        widths = [cfg.channels * m for m in cfg.channel_multipliers]
        self.conv_in = CausalConv2d(cfg.in_channels, cfg.channels, 3, cfg.causality_axis)
        self.down = nn.ModuleList()
        width, resolution = cfg.channels, cfg.resolution
        for index, out in enumerate(widths):
            level = Level([(width, out)] + [(out, out)] * (cfg.res_blocks - 1), resolution in cfg.attn_resolutions, cfg)
            if index < len(widths) - 1:
                level.downsample = Downsample(out, cfg.causality_axis)
                resolution //= 2
            self.down.append(level)
            width = out
        self.mid = MidBlock(width, cfg)
        self.norm_out = make_norm(width, cfg.norm_type)
        self.conv_out = CausalConv2d(width, cfg.latent_channels * (2 if cfg.double_z else 1), 3, cfg.causality_axis)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(mel)
        for level in self.down:
            h = level(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AudioDecoder(nn.Module):
    """latent (B, latent, T', F') (un-normalised) -> mel (B, out_channels, ~4T', ~4F') before the final crop."""

    def __init__(self, cfg: AudioVAEConfig):
        super().__init__()
        levels = len(cfg.channel_multipliers)
        width = cfg.channels * cfg.channel_multipliers[-1]
        resolution = cfg.resolution // 2 ** (levels - 1)
        self.conv_in = CausalConv2d(cfg.latent_channels, width, 3, cfg.causality_axis)
        self.mid = MidBlock(width, cfg)
        up = [None] * levels  # up[i] is the level at resolution i (0 = full), run from the coarsest
        for index in reversed(range(levels)):
            out = cfg.channels * cfg.channel_multipliers[index]
            level = Level([(width, out)] + [(out, out)] * cfg.res_blocks, resolution in cfg.attn_resolutions, cfg)
            if index > 0:
                level.upsample = Upsample(out, cfg.causality_axis)
                resolution *= 2
            up[index] = level
            width = out
        self.up = nn.ModuleList(up)
        self.norm_out = make_norm(width, cfg.norm_type)
        self.conv_out = CausalConv2d(width, cfg.out_channels, 3, cfg.causality_axis)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(latent))
        for level in reversed(self.up):
            h = level(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class LatentStatistics(nn.Module):
    """Per-entry mean and std of the patchified latent (buffers named as in the files)."""

    def __init__(self, width: int):
        super().__init__()
        self.register_buffer("std-of-means", torch.ones(width))
        self.register_buffer("mean-of-means", torch.zeros(width))

    def normalize(self, tokens: torch.Tensor) -> torch.Tensor:
        return (tokens - self.get_buffer("mean-of-means").to(tokens)) / self.get_buffer("std-of-means").to(tokens)

    def denormalize(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens * self.get_buffer("std-of-means").to(tokens) + self.get_buffer("mean-of-means").to(tokens)


class AudioVAE(nn.Module):
    """Encoder, decoder and latent statistics of the LTX-2 audio VAE."""

    def __init__(self, config: AudioVAEConfig = AudioVAEConfig()):
        super().__init__()
        self.config = config
        self.encoder = AudioEncoder(config)
        self.decoder = AudioDecoder(config)
        self.per_channel_statistics = LatentStatistics(config.stats_width)

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, in_channels, T, mels) -> normalised latent (B, latent_channels, (T - 1) // 4 + 1, mels / 4)."""
        cfg = self.config
        if mel.ndim != 4 or mel.shape[1] != cfg.in_channels or mel.shape[3] != cfg.mel.mel_bins:
            raise ValueError(
                f"AudioVAE.encode expects a log-mel (B, {cfg.in_channels}, T, {cfg.mel.mel_bins}), "
                f"got shape {tuple(mel.shape)}"
            )
        mean = self.encoder(mel)[:, : cfg.latent_channels]  # the mean half of the moments
        tokens = self.per_channel_statistics.normalize(patchify_audio(mean))
        return unpatchify_audio(tokens, mean.shape[1], mean.shape[3])

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Normalised latent (B, latent_channels, T', F') -> log-mel (B, out_channels, 4T' - 3 (causal) or 4T', mels)."""
        cfg = self.config
        if latent.ndim != 4 or latent.shape[1] != cfg.latent_channels:
            raise ValueError(
                f"AudioVAE.decode expects a latent (B, {cfg.latent_channels}, T, F), got shape {tuple(latent.shape)}"
            )
        frames = latent.shape[2] * LATENT_DOWNSAMPLE
        if cfg.causality_axis != "none":
            frames = max(frames - (LATENT_DOWNSAMPLE - 1), 1)
        tokens = self.per_channel_statistics.denormalize(patchify_audio(latent))
        mel = self.decoder(unpatchify_audio(tokens, latent.shape[1], latent.shape[3]))
        return fit_to(mel, frames, cfg.mel.mel_bins)

    def encode_waveform(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Waveform (B, in_channels, samples) at sample_rate Hz -> normalised latent (25 frames per second)."""
        mel = waveform_to_log_mel(waveform.float(), sample_rate, self.config.mel)
        return self.encode(mel.to(next(self.parameters()).dtype))


def fit_to(mel: torch.Tensor, frames: int, mel_bins: int) -> torch.Tensor:
    """Crop or zero-pad (B, C, T, F) at the end of time and mel to (B, C, frames, mel_bins)."""
    mel = mel[:, :, :frames, :mel_bins]
    return F.pad(mel, (0, mel_bins - mel.shape[3], 0, frames - mel.shape[2]))
