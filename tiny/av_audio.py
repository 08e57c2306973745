"""Audio side of the tiny LTX-2 training (tiny/train_av.py stage "audio"): log-mel of the soundtracks, the audio
VAE's reconstruction with its KL term, the vocoder's multi-resolution STFT loss, the latent statistics and a check
of the whole chain (waveform -> mel -> latent -> mel -> vocoder -> waveform) with the soundtrack judge."""

import numpy as np
import torch

from ..model.ltx2.audio_patchify import patchify_audio
from ..model.ltx2.audio_vae import fit_to
from ..model.ltx2.mel import LogMelSpectrogram
from . import av_config, data, evaluate_audio

STFT_RESOLUTIONS = ((512, 128), (1024, 256), (256, 64), (128, 32))  # (n_fft, hop)


def log_mel(device) -> LogMelSpectrogram:
    """The audio VAE's front end (av_config.MEL): waveform (B, 2, T) at 16 kHz -> log-mel (B, 2, T // 160 + 1, 64)."""
    return LogMelSpectrogram(av_config.MEL).to(device)


def soundtracks(specs, args, device) -> torch.Tensor:
    return data.render_soundtracks(specs, args.frames, av_config.FRAME_RATE, av_config.SAMPLE_RATE, args.size, device)


def vae_reconstruction(vae, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-mel (B, 2, M, 64) -> (reconstruction from a posterior sample (B, 2, M, 64), KL to N(0, 1)); raw latents
    (the statistics are measured after training)."""
    channels = vae.config.latent_channels
    moments = vae.encoder(mel).float()
    mean, logvar = moments[:, :channels], moments[:, channels:].clamp(-30.0, 20.0)
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    recon = fit_to(vae.decoder(z), mel.shape[2], mel.shape[3])
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
    return recon, kl


def _magnitude(wave: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=wave.device)
    spec = torch.stft(wave.float(), n_fft, hop, window=window, return_complex=True)
    return spec.abs().clamp(min=1e-5)


def stft_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multi-resolution STFT loss (spectral convergence + L1 of log magnitudes) of the left, right and mid
    (L + R) signals of (B, 2, T) waveforms; the mid term keeps the two channels in phase."""

    def signals(w):
        return torch.cat([w, w.sum(1, keepdim=True)], 1).flatten(0, 1)  # (B * 3, T)

    pred, target = signals(pred), signals(target)
    total = 0.0
    for n_fft, hop in STFT_RESOLUTIONS:
        p, t = _magnitude(pred, n_fft, hop), _magnitude(target, n_fft, hop)
        convergence = torch.linalg.norm(t - p) / torch.linalg.norm(t)
        total = total + convergence + (p.log() - t.log()).abs().mean()
    return total / len(STFT_RESOLUTIONS)


@torch.no_grad()
def set_statistics(vae, args, device, seed: int, batches: int | None = None) -> None:
    """mean-of-means / std-of-means over the patchified (B, T, C * M) means of encoded training soundtracks."""
    mel_of, tokens = log_mel(device), []
    for i in range(batches or args.stat_batches):
        specs = data.sample_specs(args.audio_batch, seed + i, "train", args.frames, args.size)
        mean = vae.encoder(mel_of(soundtracks(specs, args, device)))[:, : vae.config.latent_channels]
        tokens.append(patchify_audio(mean.float()).flatten(0, 1))
    z = torch.cat(tokens)  # (N, C * M)
    stats = vae.per_channel_statistics
    std = z.std(0)
    stats.get_buffer("mean-of-means").copy_(z.mean(0))
    stats.get_buffer("std-of-means").copy_(std.clamp(min=1e-2 * std.max().item()))


@torch.no_grad()
def evaluate(vae, vocoder, args, device, seed: int) -> dict:
    """Mel L1 of the VAE round trip; the judge (evaluate_audio) on the vocoder's waveform of the round trip of
    held-out and training soundtracks: note, pan direction, glide and timbre accuracy."""
    specs = data.sample_specs(max(8, args.audio_batch), seed, "all", args.frames, args.size)
    wave = soundtracks(specs, args, device)
    mel = log_mel(device)(wave)
    latent = vae.encode(mel)
    recon = fit_to(vae.decode(latent), mel.shape[2], mel.shape[3])
    voice = vocoder(recon).float()[..., : wave.shape[-1]]
    judged = [evaluate_audio.judge(v.cpu(), args.frames, av_config.SAMPLE_RATE) for v in voice]
    scores = evaluate_audio.score(judged, specs)
    return {
        "mel_l1": (recon - mel).abs().mean().item(),
        "latent_std": latent.std().item(),
        "stft_loss": stft_loss(voice, wave).item(),
        **{k: float(scores[k]) for k in ("note", "pan_direction", "glide", "timbre")},
        "clips": float(len(specs)),
        "waveform_rms": float(np.sqrt(voice.pow(2).mean().item())),
    }
