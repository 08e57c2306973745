"""LTX-2 audio path (model/ltx2/{mel,resample,audio_vae,audio_patchify,vocoder}.py) against the references.

Parity (CPU, fp32, tiny configs, one random state dict loaded by name into ours and the reference): ltx-core 1.0.0
AudioEncoder / AudioDecoder / Vocoder / VocoderWithBWE and diffusers 0.42.1 AutoencoderKLLTX2Audio / LTX2Vocoder /
LTX2VocoderWithBWE, to <= 1e-4 max abs. The mel front-end is compared with a float64 NumPy evaluation of its
formula, run through ltx-core's own AudioProcessor (torchaudio is stubbed with that formula inside a fixture: PyPI
has no torchaudio for this torch; benchmarks/mel_vs_torchaudio.py compares with the real one). Full-size 2.0 / 2.3
key sets are compared on the meta device.
"""

import math
import sys
import types

import numpy as np
import pytest
import torch
from diffusers.models.autoencoders.autoencoder_kl_ltx2_audio import AutoencoderKLLTX2Audio
from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE
from ltx_core.components.patchifiers import AudioPatchifier
from ltx_core.types import Audio, AudioLatentShape
from videodit.model.ltx2.audio_patchify import audio_latent_frames, audio_token_seconds, patchify_audio
from videodit.model.ltx2.audio_vae import AudioVAE, AudioVAEConfig
from videodit.model.ltx2.mel import LogMelSpectrogram, MelConfig, slaney_mel_filterbank, waveform_to_log_mel
from videodit.model.ltx2.resample import resample
from videodit.model.ltx2.vocoder import Vocoder, VocoderConfig, VocoderWithBWE, build_vocoder

TOL = 1e-4

# Metadata sections as the released single files carry them (values from public dumps of the file headers; the
# diffusers conversion script builds the same 2.0 architecture and loads the real weights with strict=True).
AUDIO_VAE_2_0 = {
    "model": {
        "params": {
            "ddconfig": {
                "double_z": True, "mel_bins": 64, "z_channels": 8, "resolution": 256, "downsample_time": False,
                "in_channels": 2, "out_ch": 2, "ch": 128, "ch_mult": [1, 2, 4], "num_res_blocks": 2,
                "attn_resolutions": [], "dropout": 0.0, "mid_block_add_attention": False, "norm_type": "pixel",
                "causality_axis": "height",
            },
            "sampling_rate": 16000,
        }
    },
    "preprocessing": {"stft": {"filter_length": 1024, "hop_length": 160, "win_length": 1024, "causal": True},
                      "mel": {"n_mel_channels": 64, "mel_fmin": 0, "mel_fmax": 8000}},
}  # fmt: skip
AUDIO_VAE_2_3 = {"model": {"params": {"ddconfig": {
    "double_z": True, "mel_bins": 64, "z_channels": 8, "resolution": 256, "in_channels": 2, "out_ch": 2, "ch": 128,
    "ch_mult": [1, 2, 4], "num_res_blocks": 2, "dropout": 0.0, "mid_block_add_attention": False,
    "norm_type": "pixel", "causality_axis": "height"}, "sampling_rate": 16000}}}  # fmt: skip
VOCODER_2_0 = {
    "resblock_kernel_sizes": [3, 7, 11], "upsample_rates": [6, 5, 2, 2, 2], "upsample_kernel_sizes": [16, 15, 8, 4, 4],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "upsample_initial_channel": 1024, "resblock": "1",
    "stereo": True, "output_sampling_rate": 24000,
}  # fmt: skip
_AMP = {"resblock": "AMP1", "resblock_kernel_sizes": [3, 7, 11], "resblock_dilation_sizes": [[1, 3, 5]] * 3,
        "stereo": True, "use_tanh_at_final": False, "activation": "snakebeta", "use_bias_at_final": False}  # fmt: skip
VOCODER_2_3 = {
    "vocoder": {**_AMP, "upsample_initial_channel": 1536, "upsample_rates": [5, 2, 2, 2, 2, 2],
                "upsample_kernel_sizes": [11, 4, 4, 4, 4, 4]},
    "bwe": {**_AMP, "upsample_initial_channel": 512, "upsample_rates": [6, 5, 2, 2, 2],
            "upsample_kernel_sizes": [12, 11, 4, 4, 4], "apply_final_activation": False, "input_sampling_rate": 16000,
            "output_sampling_rate": 48000, "hop_length": 80, "n_fft": 512, "win_size": 512, "num_mels": 64},
}  # fmt: skip


# ------------------------------------------------------------------------------------------------------------------
# Formula references (float64 NumPy, written from the definitions)


def slaney_hz_to_mel(hz):
    hz = np.asarray(hz, dtype=np.float64)
    return np.where(hz < 1000, 3 * hz / 200, 15 + 27 * np.log(np.maximum(hz, 1e-12) / 1000) / np.log(6.4))


def slaney_mel_to_hz(mel):
    return np.where(mel < 15, 200 * mel / 3, 1000 * np.exp((mel - 15) * np.log(6.4) / 27))


def reference_filterbank(sample_rate, n_fft, mel_bins, f_min, f_max):
    """(n_freqs, mel_bins): triangles between consecutive Slaney-mel edges, scaled to 2 / (upper - lower edge)."""
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    edges = slaney_mel_to_hz(np.linspace(slaney_hz_to_mel(f_min), slaney_hz_to_mel(f_max), mel_bins + 2))
    bank = np.zeros((freqs.size, mel_bins))
    for m in range(mel_bins):
        lower, centre, upper = edges[m], edges[m + 1], edges[m + 2]
        rising = (freqs - lower) / (centre - lower)
        falling = (upper - freqs) / (upper - centre)
        bank[:, m] = np.maximum(0, np.minimum(rising, falling)) * 2 / (upper - lower)
    return bank


class FormulaMelSpectrogram:
    """Stand-in for torchaudio.transforms.MelSpectrogram: centred reflect-padded frames, periodic Hann, |rfft|^power,
    Slaney filterbank; float64. Records its keyword arguments (ltx-core's settings)."""

    instances = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        FormulaMelSpectrogram.instances.append(self)

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:  # (..., samples) -> (..., mels, frames)
        k = self.kwargs
        n_fft, hop = k["n_fft"], k["hop_length"]
        assert k["win_length"] == n_fft and k["center"] and k["pad_mode"] == "reflect"
        assert k["mel_scale"] == "slaney" and k["norm"] == "slaney" and k["window_fn"] is torch.hann_window
        x = waveform.double().numpy()
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(n_fft // 2, n_fft // 2)], mode="reflect")
        frames = 1 + (x.shape[-1] - n_fft) // hop
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
        segments = np.stack([x[..., i * hop : i * hop + n_fft] * window for i in range(frames)], axis=-2)
        magnitude = np.abs(np.fft.rfft(segments, axis=-1)) ** k["power"]  # (..., frames, n_freqs)
        bank = reference_filterbank(k["sample_rate"], n_fft, k["n_mels"], k["f_min"], k["f_max"])
        return torch.from_numpy(np.swapaxes(magnitude @ bank, -1, -2).copy())


def reference_resample(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    """y[j] = sum_i x[i] h(i/orig' - j/new'), h = Hann(6 zero crossings) * sinc at 0.99 of the lower rate."""
    gcd = math.gcd(orig, new)
    down, up = orig // gcd, new // gcd
    base = min(down, up) * 0.99
    out_len = math.ceil(up * x.shape[-1] / down)
    t = (np.arange(x.shape[-1])[None, :] / down - np.arange(out_len)[:, None] / up) * base
    h = np.where(np.abs(t) <= 6, np.cos(np.pi * t / 12) ** 2, 0.0) * np.sinc(t) * base / down
    return x @ h.T


# ------------------------------------------------------------------------------------------------------------------
# Reference imports


CORE_AUDIO = "ltx_core.model.audio_vae"


@pytest.fixture(scope="module")
def core():
    """ltx-core's audio_vae package imported with a stub `torchaudio` (only AudioProcessor touches it);
    sys.modules is restored afterwards."""
    module_names = ("torchaudio",)
    saved = {n: sys.modules.pop(n) for n in list(sys.modules) if n in module_names or n.startswith(CORE_AUDIO)}
    stub = types.ModuleType("torchaudio")
    stub.transforms = types.SimpleNamespace(MelSpectrogram=FormulaMelSpectrogram)
    stub.functional = types.SimpleNamespace(resample=None)
    sys.modules["torchaudio"] = stub
    try:
        import ltx_core.model.audio_vae as package
        from ltx_core.model.audio_vae import model_configurator, ops, vocoder
    finally:
        del sys.modules["torchaudio"]  # only the import needs it; ops keeps its own reference to the stub
    try:
        yield types.SimpleNamespace(
            package=package, ops=ops, vocoder=vocoder, configurator=model_configurator, Audio=Audio,
            AudioLatentShape=AudioLatentShape, AudioPatchifier=AudioPatchifier,
        )  # fmt: skip
    finally:
        for name in [n for n in sys.modules if n.startswith(CORE_AUDIO)]:
            del sys.modules[name]
        sys.modules.update(saved)


def fill_random(module: torch.nn.Module, seed: int) -> dict:
    """Random parameters (fan-in scaled) and random latent statistics; returns the state dict. Resampling filter
    buffers keep their computed taps."""
    gen = torch.Generator().manual_seed(seed)
    state = module.state_dict()
    for name, value in state.items():
        if name.endswith("filter"):
            continue
        if name.endswith("std-of-means"):
            value.copy_(torch.rand(value.shape, generator=gen) + 0.5)
        elif name.endswith(("alpha", "beta")):  # log-scale Snake parameters
            value.copy_(0.3 * torch.randn(value.shape, generator=gen))
        elif name.endswith("mel_basis"):
            value.copy_(torch.rand(value.shape, generator=gen) * 0.1)
        elif value.ndim >= 2:
            fan_in = value[0].numel() if not name.endswith("basis") else value.shape[-1]
            value.copy_(torch.randn(value.shape, generator=gen) / math.sqrt(fan_in))
        else:
            value.copy_(0.1 * torch.randn(value.shape, generator=gen))
    return state


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}"
    return (a - b).abs().max().item()


def audio_vae_section(dd: dict, mel_bins: int) -> dict:
    return {"audio_vae": {"model": {"params": {"ddconfig": {**dd, "mel_bins": mel_bins}, "sampling_rate": 16000}},
                          "preprocessing": {"stft": {"filter_length": 1024, "hop_length": 160}}}}  # fmt: skip


def core_audio_vae(core, metadata: dict, device: str = "cpu"):
    with torch.device(device):
        encoder = core.package.AudioEncoderConfigurator.from_config(metadata)
        decoder = core.package.AudioDecoderConfigurator.from_config(metadata)
    return encoder, decoder


def core_to_ours(encoder_state: dict, decoder_state: dict) -> dict:
    """ltx-core encoder/decoder state dicts -> our AudioVAE keys (= the file's audio_vae.* keys, prefix stripped)."""
    state = {}
    for prefix, part in (("encoder.", encoder_state), ("decoder.", decoder_state)):
        for key, value in part.items():
            state[key if key.startswith("per_channel_statistics.") else prefix + key] = value
    return state


TINY_VAE = {"ch": 32, "ch_mult": [1, 2, 4], "num_res_blocks": 1, "z_channels": 8, "resolution": 16,
            "attn_resolutions": [8], "mid_block_add_attention": True, "in_channels": 2, "out_ch": 2,
            "double_z": True}  # fmt: skip


# ------------------------------------------------------------------------------------------------------------------
# Mel front-end and resampling


def test_filterbank_equals_the_slaney_formula():
    ours = slaney_mel_filterbank(513, 0.0, 8000.0, 64, 16000).double().numpy()
    ref = reference_filterbank(16000, 1024, 64, 0.0, 8000.0)
    diff = np.abs(ours - ref).max()
    assert diff <= 1e-5 * ref.max(), f"filterbank (float32) max abs diff {diff:.3g} (max tap {ref.max():.3g})"
    assert (ref > 0).any(axis=0).all(), "every mel filter covers at least one STFT bin"


def test_mel_equals_ltx_core_audio_processor(core):
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(8000) / 16000
    tone = 0.5 * torch.sin(2 * math.pi * 440 * t)
    waveform = (tone + 0.05 * torch.randn(2, 2, 8000, generator=gen)).float()  # (B, C, samples), broadband floor
    FormulaMelSpectrogram.instances.clear()
    processor = core.ops.AudioProcessor(target_sample_rate=16000, mel_bins=64, mel_hop_length=160, n_fft=1024)
    settings = FormulaMelSpectrogram.instances[-1].kwargs
    expected = {"sample_rate": 16000, "n_fft": 1024, "win_length": 1024, "hop_length": 160, "f_min": 0.0,
                "f_max": 8000.0, "n_mels": 64, "power": 1.0}  # fmt: skip
    assert {k: settings[k] for k in expected} == expected, f"ltx-core's mel settings changed: {settings}"
    reference = processor.waveform_to_mel(core.Audio(waveform=waveform.double(), sampling_rate=16000))
    ours = waveform_to_log_mel(waveform, 16000, MelConfig())
    assert ours.shape == (2, 2, 8000 // 160 + 1, 64)
    diff = max_diff(ours.double(), reference)
    assert diff <= TOL, f"log-mel vs ltx-core AudioProcessor (formula MelSpectrogram): max abs diff {diff:.3g}"


def test_mel_of_a_tone_peaks_in_its_band():
    freq = 1000.0
    t = torch.arange(16000) / 16000
    waveform = torch.sin(2 * math.pi * freq * t).expand(1, 2, -1)
    mel = LogMelSpectrogram(MelConfig())(waveform)  # (1, 2, 101, 64)
    bank = slaney_mel_filterbank(513, 0.0, 8000.0, 64, 16000)
    centre_hz = (bank * torch.linspace(0, 8000, 513)[:, None]).sum(0) / bank.sum(0)
    peak = mel[0, 0, 50].argmax().item()
    assert abs(centre_hz[peak].item() - freq) < 60, f"peak mel bin centred at {centre_hz[peak].item():.0f} Hz"


@pytest.mark.parametrize("orig", [48000, 44100, 8000])
def test_resample_equals_the_windowed_sinc_formula(orig):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, orig // 10, generator=gen, dtype=torch.float64)
    ours = resample(x, orig, 16000)
    ref = torch.from_numpy(reference_resample(x.numpy(), orig, 16000))
    diff = max_diff(ours, ref)
    assert diff <= 1e-9, f"resample {orig} -> 16000 Hz vs formula: max abs diff {diff:.3g}"
    assert resample(x.float(), orig, 16000).dtype == torch.float32


# ------------------------------------------------------------------------------------------------------------------
# Audio VAE


@pytest.mark.parametrize("axis,norm", [("height", "pixel"), ("width", "pixel"), (None, "group")])
def test_audio_vae_equals_ltx_core(core, axis, norm):
    metadata = audio_vae_section({**TINY_VAE, "causality_axis": axis, "norm_type": norm}, mel_bins=16)
    encoder, decoder = core_audio_vae(core, metadata)
    ours = AudioVAE(AudioVAEConfig.from_metadata(metadata)).eval()
    state = core_to_ours(fill_random(encoder, 0), fill_random(decoder, 1))
    decoder.per_channel_statistics.load_state_dict(encoder.per_channel_statistics.state_dict())
    state.update({f"per_channel_statistics.{k}": v for k, v in encoder.per_channel_statistics.state_dict().items()})
    ours.load_state_dict(state, strict=True)
    mel = torch.randn(2, 2, 30, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        latent_ref, latent = encoder(mel), ours.encode(mel)
        enc_diff = max_diff(latent, latent_ref)
        decoded_ref, decoded = decoder(latent_ref), ours.decode(latent_ref)
        dec_diff = max_diff(decoded, decoded_ref)
    assert enc_diff <= TOL, f"audio VAE encode ({axis}, {norm}) vs ltx-core: max abs diff {enc_diff:.3g}"
    assert dec_diff <= TOL, f"audio VAE decode ({axis}, {norm}) vs ltx-core: max abs diff {dec_diff:.3g}"
    assert latent.abs().max() > 0.1 and decoded.abs().max() > 0.1, "outputs are not trivially zero"


def test_audio_vae_equals_diffusers(core):
    metadata = audio_vae_section({**TINY_VAE, "causality_axis": "height", "norm_type": "pixel"}, mel_bins=16)
    ours = AudioVAE(AudioVAEConfig.from_metadata(metadata)).eval()
    fill_random(ours, 3)
    ref = AutoencoderKLLTX2Audio(
        base_channels=32, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=1, attn_resolutions=(8,),
        in_channels=2, resolution=16, latent_channels=8, norm_type="pixel", causality_axis="height",
        mid_block_add_attention=True, mel_bins=16, double_z=True,
    ).eval()  # fmt: skip
    renames = {
        "per_channel_statistics.mean-of-means": "latents_mean",
        "per_channel_statistics.std-of-means": "latents_std",
    }
    ref.load_state_dict({renames.get(k, k): v for k, v in ours.state_dict().items()}, strict=True)
    mel = torch.randn(2, 2, 29, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        # diffusers' pipeline normalises the packed latent (b t (c f)) with latents_mean / latents_std
        mean = ref.encode(mel).latent_dist.mode()
        packed = (patchify_audio(mean) - ref.latents_mean) / ref.latents_std
        latent_ref = packed.reshape(2, mean.shape[2], 8, 4).permute(0, 2, 1, 3)
        enc_diff = max_diff(ours.encode(mel), latent_ref)
        unpacked = (patchify_audio(latent_ref) * ref.latents_std + ref.latents_mean).reshape(2, -1, 8, 4)
        decoded_ref = ref.decode(unpacked.permute(0, 2, 1, 3)).sample
        dec_diff = max_diff(ours.decode(latent_ref), decoded_ref)
    assert enc_diff <= TOL, f"audio VAE encode vs diffusers: max abs diff {enc_diff:.3g}"
    assert dec_diff <= TOL, f"audio VAE decode vs diffusers: max abs diff {dec_diff:.3g}"


def test_audio_tokens_and_timeline_equal_ltx_core(core):
    patchifier = core.AudioPatchifier(patch_size=1, sample_rate=16000, hop_length=160, is_causal=True)
    latent = torch.randn(2, 8, 7, 16)
    assert torch.equal(patchify_audio(latent), patchifier.patchify(latent))
    shape = core.AudioLatentShape(batch=2, channels=8, frames=7, mel_bins=16)
    bounds_ref = patchifier.get_patch_grid_bounds(shape)
    assert torch.equal(audio_token_seconds(7, batch=2), bounds_ref), "token [start, end) seconds"
    for frames, fps in ((121, 24.0), (97, 25.0), (1, 30.0)):
        ref = core.AudioLatentShape.from_duration(batch=1, duration=frames / fps).frames
        assert audio_latent_frames(frames / fps) == ref, f"{frames} frames at {fps} fps"
    assert audio_latent_frames(121 / 24) == 126


# ------------------------------------------------------------------------------------------------------------------
# Vocoders


TINY_HIFIGAN = {"upsample_initial_channel": 32, "upsample_rates": [3, 2], "upsample_kernel_sizes": [7, 4],
                "resblock_kernel_sizes": [3, 5], "resblock_dilation_sizes": [[1, 3, 5], [1, 2, 3]], "resblock": "1",
                "stereo": True, "output_sampling_rate": 24000}  # fmt: skip
TINY_AMP = {**TINY_HIFIGAN, "resblock": "AMP1", "activation": "snakebeta", "use_tanh_at_final": False,
            "use_bias_at_final": False}  # fmt: skip
TINY_BWE = {
    "vocoder": {**TINY_AMP},
    "bwe": {**TINY_AMP, "upsample_initial_channel": 16, "upsample_rates": [3, 8], "upsample_kernel_sizes": [3, 16],
            "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]], "apply_final_activation": False,
            "input_sampling_rate": 16000, "output_sampling_rate": 48000, "hop_length": 8, "n_fft": 32,
            "num_mels": 64},
}  # fmt: skip
DIFFUSERS_VOCODER_RENAMES = (("ups.", "upsamplers."), ("resblocks.", "resnets."), ("conv_pre.", "conv_in."),
                             ("conv_post.", "conv_out."), ("act_post.", "act_out."),
                             ("downsample.lowpass.", "downsample."))  # fmt: skip


def to_diffusers_vocoder(state: dict) -> dict:
    renamed = {}
    for key, value in state.items():
        for old, new in DIFFUSERS_VOCODER_RENAMES:
            key = key.replace(old, new)
        renamed[key] = value
    return renamed


def diffusers_generator_kwargs(section: dict, prefix: str = "") -> dict:
    amp = section["resblock"] == "AMP1"
    final = None if section.get("apply_final_activation", True) is False else (
        "tanh" if section.get("use_tanh_at_final", True) else "clamp")  # fmt: skip
    kwargs = {
        "hidden_channels": section["upsample_initial_channel"], "upsample_kernel_sizes": section["upsample_kernel_sizes"],
        "upsample_factors": section["upsample_rates"], "resnet_kernel_sizes": section["resblock_kernel_sizes"],
        "resnet_dilations": section["resblock_dilation_sizes"], "act_fn": "snakebeta" if amp else "leaky_relu",
        "antialias": amp, "final_act_fn": final, "final_bias": section.get("use_bias_at_final", True),
    }  # fmt: skip
    return {prefix + k: v for k, v in kwargs.items()}


def vocoder_input(frames: int, seed: int) -> torch.Tensor:
    return torch.randn(2, 2, frames, 64, generator=torch.Generator().manual_seed(seed))


def check_not_saturated(wave: torch.Tensor):
    assert (wave.abs() < 0.99).float().mean() > 0.5, "test waveform is mostly clipped: weights too large to compare"


@pytest.mark.parametrize("section", [TINY_HIFIGAN, TINY_AMP], ids=["hifigan", "bigvgan"])
def test_vocoder_equals_ltx_core_and_diffusers(core, section):
    reference = core.configurator._vocoder_from_config(section)  # the official flat-config reader
    ours = Vocoder(VocoderConfig.from_metadata(section))
    state = fill_random(reference.eval(), 5)
    state["conv_post.weight"].mul_(0.1)  # keep tanh / clamp out of saturation so the comparison means something
    assert set(ours.state_dict()) == set(state), "our key names differ from ltx-core's"
    ours.load_state_dict(state, strict=True)
    dif = LTX2Vocoder(
        in_channels=128, out_channels=2, output_sampling_rate=24000, **diffusers_generator_kwargs(section)
    )
    dif.load_state_dict(to_diffusers_vocoder(state), strict=True)
    mel = vocoder_input(9, 6)
    with torch.no_grad():
        wave, wave_core, wave_dif = ours.eval()(mel), reference(mel), dif.eval()(mel)
    assert wave.shape == (2, 2, 9 * 6) and ours.output_sample_rate == 24000
    check_not_saturated(wave)
    core_diff, dif_diff = max_diff(wave, wave_core), max_diff(wave, wave_dif)
    assert core_diff <= TOL, f"vocoder ({section['resblock']}) vs ltx-core: max abs diff {core_diff:.3g}"
    assert dif_diff <= TOL, f"vocoder ({section['resblock']}) vs diffusers: max abs diff {dif_diff:.3g}"


def test_vocoder_with_bwe_equals_ltx_core_and_diffusers(core):
    reference = core.package.VocoderConfigurator.from_config({"vocoder": TINY_BWE}).eval()
    ours = build_vocoder({"vocoder": TINY_BWE}).eval()
    assert isinstance(ours, VocoderWithBWE) and ours.output_sample_rate == 48000
    fresh_core, fresh_ours = reference.state_dict(), ours.state_dict()
    filters = [k for k in fresh_core if k.endswith("filter")]
    assert filters, "the anti-aliasing filters are stored buffers"
    filter_diff = max(max_diff(fresh_ours[k], fresh_core[k]) for k in filters)
    assert filter_diff <= 1e-6, f"Kaiser-sinc filter taps vs ltx-core: max abs diff {filter_diff:.3g}"
    resampler_diff = max_diff(ours.resampler.filter, reference.resampler.filter)
    assert resampler_diff <= 1e-6, f"Hann-sinc resampler taps vs ltx-core: max abs diff {resampler_diff:.3g}"
    state = fill_random(reference, 7)
    for key in ("vocoder.conv_post.weight", "bwe_generator.conv_post.weight"):
        state[key].mul_(0.1)  # keep the clamps out of saturation
    assert set(fresh_ours) == set(state), "our key names differ from ltx-core's"
    ours.load_state_dict(state, strict=True)
    bwe = TINY_BWE["bwe"]
    dif = LTX2VocoderWithBWE(
        **diffusers_generator_kwargs(TINY_BWE["vocoder"]), **diffusers_generator_kwargs(bwe, "bwe_"),
        filter_length=32, hop_length=8, window_length=32, num_mel_channels=64, input_sampling_rate=16000,
        output_sampling_rate=48000,
    ).eval()  # fmt: skip
    dif.load_state_dict(to_diffusers_vocoder(state), strict=True)
    for frames in (7, 8):  # 7 * 6 samples is not a whole number of BWE hops: the padded path
        mel = vocoder_input(frames, 8)
        with torch.no_grad():
            wave, wave_core, wave_dif = ours(mel), reference(mel), dif(mel)
        assert wave.shape == (2, 2, frames * 6 * 3)
        check_not_saturated(wave)
        core_diff, dif_diff = max_diff(wave, wave_core), max_diff(wave, wave_dif)
        assert core_diff <= TOL, f"vocoder+BWE ({frames} frames) vs ltx-core: max abs diff {core_diff:.3g}"
        assert dif_diff <= TOL, f"vocoder+BWE ({frames} frames) vs diffusers: max abs diff {dif_diff:.3g}"


# ------------------------------------------------------------------------------------------------------------------
# Full-size key sets (meta device)


def shapes(state: dict) -> dict:
    return {k: tuple(v.shape) for k, v in state.items()}


@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_full_size_key_sets_equal_ltx_core(core, version):
    metadata = {"audio_vae": AUDIO_VAE_2_0 if version == "2.0" else AUDIO_VAE_2_3,
                "vocoder": VOCODER_2_0 if version == "2.0" else VOCODER_2_3}  # fmt: skip
    encoder, decoder = core_audio_vae(core, metadata, device="meta")
    with torch.device("meta"):
        reference_vocoder = core.package.VocoderConfigurator.from_config(metadata)
        ours_vae = AudioVAE(AudioVAEConfig.from_metadata(metadata))
        ours_vocoder = build_vocoder(metadata)
    expected_vae = shapes(core_to_ours(encoder.state_dict(), decoder.state_dict()))
    got_vae = shapes(ours_vae.state_dict())
    assert got_vae == expected_vae, (
        f"audio VAE {version}: missing {sorted(set(expected_vae) - set(got_vae))[:5]}, "
        f"unexpected {sorted(set(got_vae) - set(expected_vae))[:5]}, "
        f"shape mismatches {[k for k in expected_vae if k in got_vae and expected_vae[k] != got_vae[k]][:5]}"
    )
    expected_voc, got_voc = shapes(reference_vocoder.state_dict()), shapes(ours_vocoder.state_dict())
    assert got_voc == expected_voc, (
        f"vocoder {version}: missing {sorted(set(expected_voc) - set(got_voc))[:5]}, "
        f"unexpected {sorted(set(got_voc) - set(expected_voc))[:5]}"
    )
    assert ours_vocoder.output_sample_rate == (24000 if version == "2.0" else 48000)
    assert ours_vocoder.output_sample_rate == reference_vocoder.output_sampling_rate
    if version == "2.3":
        assert any(k.startswith("bwe_generator.") for k in got_voc) and "mel_stft.mel_basis" in got_voc


def test_full_size_key_sets_equal_diffusers(core):
    with torch.device("meta"):
        ours_vae = AudioVAE(AudioVAEConfig.from_metadata({"audio_vae": AUDIO_VAE_2_0}))
        ours_v20 = build_vocoder({"vocoder": VOCODER_2_0})
        ours_v23 = build_vocoder({"vocoder": VOCODER_2_3})
    with torch.device("meta"):
        dif_vae = AutoencoderKLLTX2Audio(attn_resolutions=None, mid_block_add_attention=False)  # the 2.0 conversion
        dif_v20 = LTX2Vocoder()
        dif_v23 = LTX2VocoderWithBWE()  # its defaults are the 2.3 architecture
    renames = {
        "per_channel_statistics.mean-of-means": "latents_mean",
        "per_channel_statistics.std-of-means": "latents_std",
    }
    pairs = (
        ("audio VAE", {renames.get(k, k): v for k, v in shapes(ours_vae.state_dict()).items()}, dif_vae),
        ("vocoder 2.0", to_diffusers_vocoder(shapes(ours_v20.state_dict())), dif_v20),
        ("vocoder 2.3", to_diffusers_vocoder(shapes(ours_v23.state_dict())), dif_v23),
    )
    for name, ours, reference in pairs:
        expected = shapes(reference.state_dict())
        assert ours == expected, (
            f"{name} vs diffusers: missing {sorted(set(expected) - set(ours))[:5]}, "
            f"unexpected {sorted(set(ours) - set(expected))[:5]}"
        )


# ------------------------------------------------------------------------------------------------------------------
# The whole audio path on a known tone


def test_tone_through_mel_vae_and_vocoders_has_the_documented_shapes():
    seconds, rate = 2, 16000
    t = torch.arange(seconds * rate) / rate
    tone = 0.5 * torch.sin(2 * math.pi * 440 * t)
    waveform = torch.stack([tone, 0.5 * tone])[None]  # (1, 2, 32000) stereo
    cfg = AudioVAEConfig(channels=32, latent_channels=2, res_blocks=1)  # official mel settings, tiny widths
    vae = AudioVAE(cfg).eval()
    fill_random(vae, 9)
    with torch.no_grad():
        mel = waveform_to_log_mel(waveform, rate, cfg.mel)
        latent = vae.encode_waveform(waveform, rate)
        tokens = patchify_audio(latent)
        decoded = vae.decode(latent)
    assert mel.shape == (1, 2, seconds * 100 + 1, 64), "100 mel frames per second (+1: centred frames)"
    assert latent.shape == (1, 2, seconds * 25 + 1, 16), "25 latent frames per second (+1: causal first frame)"
    assert tokens.shape == (1, seconds * 25 + 1, 32) and audio_latent_frames(seconds) == seconds * 25
    assert decoded.shape == mel.shape, "decode returns 4 * T' - 3 mel frames: the input's length"
    small = {"upsample_initial_channel": 16, "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]]}
    hifigan = build_vocoder({"vocoder": {**small, "upsample_rates": [6, 5, 8], "upsample_kernel_sizes": [12, 11, 16]}})
    bwe_section = {k: v for k, v in TINY_BWE["bwe"].items() if k not in ("n_fft", "hop_length")}
    with_bwe = build_vocoder({"vocoder": {
        "vocoder": {**TINY_AMP, **small, "upsample_rates": [5, 4, 8], "upsample_kernel_sizes": [11, 8, 16]},
        "bwe": {**bwe_section, "upsample_rates": [6, 5, 8], "upsample_kernel_sizes": [12, 11, 16], "n_fft": 512,
                "hop_length": 80}}})  # fmt: skip
    fill_random(hifigan, 10)
    fill_random(with_bwe, 11)
    with torch.no_grad():
        wave_24k, wave_48k = hifigan(decoded), with_bwe(decoded)
    assert hifigan.output_sample_rate == 24000 and wave_24k.shape == (1, 2, decoded.shape[2] * 240)
    assert with_bwe.output_sample_rate == 48000 and wave_48k.shape == (1, 2, decoded.shape[2] * 480)
    assert torch.isfinite(wave_24k).all() and torch.isfinite(wave_48k).all() and wave_48k.abs().max() <= 1
