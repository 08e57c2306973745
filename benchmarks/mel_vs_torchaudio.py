"""Our torch-only mel front-end and resampler (model/ltx2/mel.py, resample.py) against torchaudio, with the official
LTX-2 audio processor settings (ltx-core `audio_vae/ops.py::AudioProcessor`).

    PYTHONPATH=. python benchmarks/mel_vs_torchaudio.py          # from the repo root; needs torch and torchaudio

Prints the max abs difference of the log-mel (16 kHz, n_fft 1024, hop 160, 64 Slaney mels, magnitude, log clamp
1e-5) and of the resampling to 16 kHz from 48000, 44100, 24000 and 8000 Hz. Not a test: PyPI's torchaudio stops
at 2.11, so it runs where a matching torchaudio is installed. The pack is imported as `videodit` when installed
(`pip install -e . --no-deps`); otherwise the repo root is registered as that package without running its ComfyUI
entry point.
"""

import math
import sys
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def import_pack():
    try:
        import videodit.model.ltx2.mel  # noqa: F401
    except ImportError:
        package = types.ModuleType("videodit")
        package.__path__ = [str(REPO)]  # the model/ subpackage only; the root __init__ (ComfyUI nodes) is not run
        sys.modules["videodit"] = package
    from videodit.model.ltx2 import mel, resample

    return mel, resample


def compare_with_torchaudio(seconds: float = 3.0, device: str = "cpu") -> dict:
    import torchaudio

    mel, resample = import_pack()
    config = mel.MelConfig()
    gen = torch.Generator().manual_seed(0)
    samples = int(seconds * config.sample_rate)
    t = torch.arange(samples) / config.sample_rate
    tone = 0.5 * torch.sin(2 * math.pi * 440 * t) + 0.2 * torch.sin(2 * math.pi * 3100 * t)
    waveform = (tone + 0.01 * torch.randn(2, 2, samples, generator=gen)).to(device)  # (B, C, samples)

    reference_transform = torchaudio.transforms.MelSpectrogram(
        sample_rate=config.sample_rate, n_fft=config.n_fft, win_length=config.n_fft, hop_length=config.hop_length,
        f_min=0.0, f_max=config.sample_rate / 2.0, n_mels=config.mel_bins, window_fn=torch.hann_window,
        center=True, pad_mode="reflect", power=1.0, mel_scale="slaney", norm="slaney",
    ).to(device)  # fmt: skip
    reference = torch.log(torch.clamp(reference_transform(waveform), min=1e-5)).permute(0, 1, 3, 2)
    ours = mel.LogMelSpectrogram(config).to(device)(waveform)
    results = {"log_mel": (ours - reference).abs().max().item()}
    fb_ref = torchaudio.functional.melscale_fbanks(
        config.n_fft // 2 + 1, 0.0, config.sample_rate / 2.0, config.mel_bins, config.sample_rate, "slaney", "slaney"
    )
    fb = mel.slaney_mel_filterbank(config.n_fft // 2 + 1, 0.0, config.sample_rate / 2.0, config.mel_bins, 16000)
    results["filterbank"] = (fb - fb_ref).abs().max().item()

    for rate in (48000, 44100, 24000, 8000):
        x = torch.randn(2, 2, int(seconds * rate), generator=gen).to(device)
        ref = torchaudio.functional.resample(x, rate, config.sample_rate)
        got = resample.resample(x, rate, config.sample_rate)
        if got.shape != ref.shape:
            results[f"resample_{rate}"] = f"shape {tuple(got.shape)} vs torchaudio {tuple(ref.shape)}"
        else:
            results[f"resample_{rate}"] = (got - ref).abs().max().item()
        results[f"log_mel_from_{rate}"] = (
            (
                mel.waveform_to_log_mel(x, rate, config)
                - reference_transform(ref).clamp(min=1e-5).log().permute(0, 1, 3, 2)
            )
            .abs()
            .max()
            .item()
        )
    return results


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    import torchaudio

    print(f"torch {torch.__version__}, torchaudio {torchaudio.__version__}, device {device}")
    for name, value in compare_with_torchaudio(device=device).items():
        print(f"{name:>22}: max abs diff {value:.3g}" if isinstance(value, float) else f"{name:>22}: {value}")


if __name__ == "__main__":
    main()
