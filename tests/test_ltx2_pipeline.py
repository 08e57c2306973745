"""LTX2Pipeline (model/ltx2/pipeline.py) on tiny random components, CPU, fp32.

The pipeline is shown to add no behaviour of its own: its result equals sampling.generate / sampling.two_stage and
the decoders (LTX2VideoVAE.decode_normalized, AudioVAE.decode + vocoder) called by hand with the same seed
(max abs diff printed, tolerance 1e-5). Then: durations (audio latents and waveform samples), audio-to-video
(given latent kept, mask 0, trim/pad logged), first-frame image, two-stage with a tiny upsampler, bad inputs.
"""

import json
import logging
import math
import types
import zlib
from dataclasses import dataclass, replace

import pytest
import torch
from videodit.model import frontend
from videodit.model.checkpoint import CheckpointError
from videodit.model.ltx2 import guidance as G
from videodit.model.ltx2 import sampling as S
from videodit.model.ltx2.audio_vae import AudioVAE, AudioVAEConfig
from videodit.model.ltx2.config import tiny as tiny_config
from videodit.model.ltx2.latents import audio_token_count
from videodit.model.ltx2.pipeline import MODULES, LTX2Pipeline
from videodit.model.ltx2.resample import resample
from videodit.model.ltx2.schedules import distilled_sigmas, ltx2_sigmas
from videodit.model.ltx2.transformer import LTX2Transformer
from videodit.model.ltx2.video_vae import LTX2VideoVAE, ltx2_vae_config, upsample_normalized
from videodit.model.ltx2.vocoder import Vocoder, VocoderConfig
from videodit.model.ltxv.upsampler import LatentUpsampler, UpsamplerConfig
from videodit.model.pipeline import ImageKeyframe

TOL = 1e-5
VIDEO_CHANNELS, AUDIO_CHANNELS, AUDIO_MEL = 16, 2, 16  # audio tokens: 2 x 16 = 32 values
TEXT_TOKENS = 6
GUIDED = G.MultiModalGuidance(
    video=G.GuiderParams(cfg_scale=3.0, stg_scale=1.0, stg_blocks=(1,), rescale_scale=0.7, modality_scale=3.0),
    audio=G.GuiderParams(cfg_scale=7.0, stg_scale=1.0, stg_blocks=(0,), rescale_scale=0.7, modality_scale=3.0),
)
RES_UP = {"residual": True, "multiplier": 2}
VAE_METADATA = {
    "latent_channels": VIDEO_CHANNELS,
    "patch_size": 4,
    "decoder_base_channels": 8,
    "timestep_conditioning": True,  # the decode noise and timestep are exercised
    "encoder_blocks": [["res_x", 1], ["compress_space_res", {"multiplier": 2}], ["res_x", 1],
                       ["compress_time_res", {"multiplier": 2}], ["res_x", 1], ["compress_all_res", {"multiplier": 2}],
                       ["res_x", 1], ["compress_all_res", {"multiplier": 2}], ["res_x", 1]],
    "decoder_blocks": [["res_x", 1], ["compress_all", RES_UP], ["res_x", 1], ["compress_all", RES_UP], ["res_x", 1],
                       ["compress_all", RES_UP], ["res_x", 1]],
}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convolutions and matmuls: one intra-op thread is faster on a loaded CPU (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomize(module: torch.nn.Module, seed: int, scale: float = 0.1) -> torch.nn.Module:
    """Random weights; positive latent statistics; computed filters, blur kernels and multipliers kept."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in module.state_dict().items():
            if name.endswith(("filter", "kernel", "timestep_scale_multiplier")) or not value.is_floating_point():
                continue
            if "std" in name:
                value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
            else:
                one = 1.0 if name.endswith("norm.weight") else 0.0
                value.copy_(torch.randn(value.shape, generator=generator) * scale + one)
    return module.eval()


@dataclass
class Encoded:
    video: torch.Tensor
    audio: torch.Tensor


class FakeTextEncoder:
    """encode_prompts like LTX2TextEncoder: per-prompt features (a fixed function of the text), batch-independent."""

    def __init__(self):
        self.calls = []

    def encode_prompts(self, prompts, device=None):
        self.calls.append(list(prompts))
        rows = []
        for text in prompts:
            generator = torch.Generator().manual_seed(zlib.crc32(text.encode()))
            rows.append(
                (torch.randn(TEXT_TOKENS, 32, generator=generator), torch.randn(TEXT_TOKENS, 16, generator=generator))
            )
        return Encoded(torch.stack([r[0] for r in rows]).to(device), torch.stack([r[1] for r in rows]).to(device))


def tiny_vocoder() -> Vocoder:
    config = VocoderConfig(
        upsample_rates=(6, 5, 8),
        upsample_kernel_sizes=(12, 11, 16),
        resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1, 3, 5),),
        upsample_initial_channel=16,
    )  # x240: 24 kHz
    return randomize(Vocoder(config), 4)


def tiny_transformer(version: str, seed: int) -> LTX2Transformer:
    """A random 2-layer transformer with `version`'s flags and the tiny VAEs' latent widths."""
    channels = dict(in_channels=VIDEO_CHANNELS, out_channels=VIDEO_CHANNELS)
    channels |= dict(audio_in_channels=AUDIO_CHANNELS * AUDIO_MEL, audio_out_channels=AUDIO_CHANNELS * AUDIO_MEL)
    return randomize(LTX2Transformer(tiny_config(version, **channels)), seed, 0.2)


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    return dict(
        transformer=tiny_transformer("2.3", 1),
        video_vae=randomize(LTX2VideoVAE(ltx2_vae_config(VAE_METADATA)), 2),
        audio_vae=randomize(AudioVAE(AudioVAEConfig(channels=32, latent_channels=AUDIO_CHANNELS, res_blocks=1)), 3),
        vocoder=tiny_vocoder(),
        upsampler=randomize(LatentUpsampler(UpsamplerConfig(VIDEO_CHANNELS, 32, 1)), 5),
    )


def make(parts, **options) -> LTX2Pipeline:
    return LTX2Pipeline(
        parts["transformer"],
        parts["video_vae"],
        parts["audio_vae"],
        parts["vocoder"],
        FakeTextEncoder(),
        "2.3",
        parts["upsampler"],
        **options,
    )


def fit(waveform: torch.Tensor, samples: int) -> torch.Tensor:
    """Trim the end, or append zeros, to `samples`."""
    return torch.nn.functional.pad(waveform[..., :samples], (0, max(samples - waveform.shape[-1], 0)))


def max_diff(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.double() - b.double()).abs().max().item()


def contexts(prompts):
    encoded = FakeTextEncoder().encode_prompts(prompts)
    return [S.TextContext(encoded.video[i : i + 1], encoded.audio[i : i + 1]) for i in range(len(prompts))]


def decode_by_hand(parts, video, audio, seed, samples):
    with torch.no_grad():
        pixels = parts["video_vae"].decode_normalized(video, generator=frontend.decode_generator(seed))
        frames = ((pixels.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 4, 1)[0]
        wave = parts["vocoder"](parts["audio_vae"].decode(audio))[0]
    return frames, fit(wave, samples)


# ---------------------------------------------------------------------------------------------- text to audio+video


@pytest.mark.parametrize("fps", [24.0, 7.0])
def test_text_to_audio_video_equals_sampler_and_decoders_by_hand(parts, fps):
    pipe = make(parts)
    frames, width, height, seed = 9, 64, 96, 3
    result = pipe.generate("a bell rings", "noise", width, height, frames, fps, steps=3, guidance=GUIDED, seed=seed)
    samples = round(frames / fps * 24000)  # 9000 at 24 fps; 30857.14 -> 30857 at 7 fps
    assert result.frames.shape == (frames, height, width, 3) and result.frames.dtype == torch.float32
    assert 0.0 <= result.frames.min() and result.frames.max() <= 1.0
    assert result.sample_rate == 24000 and result.waveform.shape == (2, samples)
    tokens = audio_token_count(frames, fps)  # round(9 / fps * 25): 9 at 24 fps, 32 at 7 fps
    assert result.audio_latent.shape == (1, AUDIO_CHANNELS, tokens, AUDIO_MEL) and tokens == round(frames / fps * 25)
    assert pipe.text_encoder.calls == [["a bell rings", "noise"]], "one encoder call for both prompts"

    positive, negative = contexts(["a bell rings", "noise"])
    with torch.no_grad():
        video, audio = S.generate(
            parts["transformer"],
            video_latent=torch.zeros(1, VIDEO_CHANNELS, 2, height // 32, width // 32),
            audio_latent=torch.zeros(1, AUDIO_CHANNELS, tokens, AUDIO_MEL),
            fps=fps,
            sigmas=ltx2_sigmas(3),
            positive=positive,
            negative=negative,
            guidance=GUIDED,
            num_layers=2,
            generator=torch.Generator().manual_seed(seed),
        )
    hand_frames, hand_wave = decode_by_hand(parts, video, audio, seed, samples)
    diffs = {
        "video latent": max_diff(result.video_latent, video),
        "audio latent": max_diff(result.audio_latent, audio),
        "frames": max_diff(result.frames, hand_frames),
        "waveform": max_diff(result.waveform, hand_wave),
    }
    print(f"fps {fps}: max abs diffs {diffs}")
    assert max(diffs.values()) <= TOL, f"pipeline vs by hand: {diffs}"
    again = pipe.generate("a bell rings", "noise", width, height, frames, fps, steps=3, guidance=GUIDED, seed=seed)
    other = pipe.generate("a bell rings", "noise", width, height, frames, fps, steps=3, guidance=GUIDED, seed=4)
    assert torch.equal(again.frames, result.frames) and torch.equal(again.waveform, result.waveform)
    assert not torch.equal(other.video_latent, result.video_latent)


def test_version_defaults_and_distilled_run_without_negative_prompt(parts):
    pipe = make(parts)
    assert pipe.default_guidance() is G.GUIDANCE["2.3"]
    assert torch.equal(pipe.sigmas(), ltx2_sigmas(30))
    distilled = make(parts, distilled=True)
    assert distilled.default_guidance() is None and torch.equal(distilled.sigmas(), distilled_sigmas(1))
    result = distilled.generate("rain", width=64, height=64, num_frames=1, seed=1)
    assert distilled.text_encoder.calls == [["rain"]], "no guidance: the negative prompt is not encoded"
    positive = contexts(["rain"])[0]
    with torch.no_grad():
        video, audio = S.generate(
            parts["transformer"],
            video_latent=torch.zeros(1, VIDEO_CHANNELS, 1, 2, 2),
            audio_latent=torch.zeros(1, AUDIO_CHANNELS, audio_token_count(1, 24.0), AUDIO_MEL),
            fps=24.0,
            sigmas=distilled_sigmas(1),
            positive=positive,
            generator=torch.Generator().manual_seed(1),
        )
    diff = max(max_diff(result.video_latent, video), max_diff(result.audio_latent, audio))
    assert diff <= TOL, f"distilled defaults: max diff {diff}"
    assert result.waveform.shape == (2, 1000)  # 1 frame at 24 fps = 1/24 s at 24 kHz


def test_negative_prompt_none_reads_as_empty(parts):
    pipe = make(parts)
    args = dict(width=64, height=64, num_frames=1, steps=1, guidance=GUIDED, seed=2)
    none, empty = pipe.generate("x", None, **args), pipe.generate("x", "", **args)
    assert pipe.text_encoder.calls == [["x", ""], ["x", ""]] and torch.equal(none.video_latent, empty.video_latent)


def test_bandwidth_extension_vocoder_gives_48_khz(parts):
    """The 2.3+ vocoder (BigVGAN + bandwidth extension): the result's rate is the vocoder's output rate."""
    from test_ltx2_checkpoint import BWE
    from videodit.model.ltx2.vocoder import build_vocoder

    pipe = make({**parts, "vocoder": randomize(build_vocoder({"vocoder": BWE}), 6)})
    result = pipe.generate("rain", width=64, height=64, num_frames=9, steps=1, guidance=G.MultiModalGuidance())
    assert result.sample_rate == 48000 and result.waveform.shape == (2, 18000)  # 9 / 24 s at 48 kHz
    assert bool(torch.isfinite(result.waveform).all()) and result.waveform.abs().max() <= 1.0


def test_model_family_of_diffusers_folders(tmp_path):
    from videodit.model.pipeline import model_family

    for name, family in (("LTX2VideoTransformer3DModel", "ltx2"), ("LTXVideoTransformer3DModel", "ltxv")):
        (tmp_path / name / "transformer").mkdir(parents=True)
        (tmp_path / name / "transformer" / "config.json").write_text(json.dumps({"_class_name": name}))
        assert model_family(tmp_path / name) == family


# ---------------------------------------------------------------------------------------------- audio to video


class Recorder(torch.nn.Module):
    """The transformer, with the audio streams' timesteps (denoise mask * sigma) of every call kept."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.audio_timesteps = inner, []

    @property
    def config(self):
        return self.inner.config

    def forward(self, video, audio, skip):
        self.audio_timesteps.append(audio.timesteps.clone())
        return self.inner(video, audio, skip)


@pytest.mark.parametrize("seconds, action", [(1.0, "trimmed"), (0.2, "padded")])
def test_audio_to_video_keeps_the_given_latent_and_logs_the_fit(parts, caplog, seconds, action):
    rate, frames, fps = 44100, 9, 24.0
    t = torch.arange(round(seconds * rate)) / rate
    tone = 0.3 * torch.sin(2 * math.pi * 440 * t)
    waveform = torch.stack([tone, 0.5 * tone])
    recorder = Recorder(parts["transformer"])
    pipe = make({**parts, "transformer": recorder})
    with caplog.at_level(logging.INFO, logger="videodit.model.ltx2.pipeline"):
        result = pipe.generate("a tone", "", 64, 64, frames, fps, steps=2, guidance=GUIDED, audio=(waveform, rate))
    need = frames / fps
    told = f"trimmed the last {seconds - need:.3f} s" if action == "trimmed" else f"padded {need - seconds:.3f} s of"
    message = f"audio-to-video: resampled 44100 -> 16000 Hz; audio is {seconds:.3f} s, the video {need:.3f} s: {told}"
    assert message in caplog.text, caplog.text
    given = round(frames / fps * rate)  # 16538 samples
    assert result.sample_rate == rate and torch.equal(result.waveform, fit(waveform, given))
    at_16k = fit(resample(waveform, rate, 16000), round(frames / fps * 16000))
    with torch.no_grad():
        latent = parts["audio_vae"].encode_waveform(at_16k[None], 16000)[:, :, : audio_token_count(frames, fps)]
    assert torch.equal(result.audio_latent, latent), "the given audio latent changed"
    assert recorder.audio_timesteps and all(bool((t == 0).all()) for t in recorder.audio_timesteps), "mask not 0"
    assert len(recorder.audio_timesteps) == 2 * 4, "2 steps x the video's 4 passes (the audio guidance is off)"


# ---------------------------------------------------------------------------------------------- images, two stages


def test_first_frame_image_is_kept_and_keyframes_are_accepted(parts):
    pipe = make(parts)
    image = torch.rand(80, 50, 3, generator=torch.Generator().manual_seed(6))  # cropped + resized to 64 x 64
    args = dict(width=64, height=64, num_frames=17, steps=2, guidance=GUIDED, seed=2, image_crf=0)
    plain = pipe.generate("a face", **args)
    first = pipe.generate("a face", image=image, **args)
    encoded = frontend.encode_keyframe(parts["video_vae"], image, 0, 1.0, 64, 64, 17, pipe.geometry, 0)
    assert max_diff(first.video_latent[:, :, :1], encoded.latent) == 0.0, "first-frame latent not kept"
    assert not torch.equal(first.video_latent[:, :, 1:], plain.video_latent[:, :, 1:])
    both = pipe.generate("a face", image=[ImageKeyframe(image, 0), (image, 16, 0.5)], **args)
    assert both.frames.shape == (17, 64, 64, 3) and max_diff(both.video_latent[:, :, :1], encoded.latent) == 0.0
    assert not torch.equal(both.video_latent, first.video_latent)


def test_two_stage_equals_sampler_by_hand(parts):
    pipe = make(parts)
    image = torch.rand(64, 64, 3, generator=torch.Generator().manual_seed(8))
    result = pipe.generate(
        "waves", "", 128, 128, 9, 24.0, steps=2, guidance=GUIDED, seed=5, image=image, two_stage=True, image_crf=0
    )
    assert result.frames.shape == (9, 128, 128, 3) and result.waveform.shape == (2, 9000)
    positive, negative = contexts(["waves", ""])
    geometry = pipe.geometry
    latents = [
        S.ImageCondition(frontend.encode_keyframe(parts["video_vae"], image, 0, 1.0, w, w, 9, geometry, 0).latent)
        for w in (64, 128)
    ]
    with torch.no_grad():
        video, audio = S.two_stage(
            parts["transformer"],
            parts["transformer"],
            lambda z: upsample_normalized(z, parts["video_vae"], parts["upsampler"]),
            video_shape=(1, VIDEO_CHANNELS, 2, 2, 2),
            audio_shape=(1, AUDIO_CHANNELS, 9, AUDIO_MEL),
            fps=24.0,
            stage_1_sigmas=ltx2_sigmas(2),
            positive=positive,
            negative=negative,
            guidance=GUIDED,
            num_layers=2,
            generator=torch.Generator().manual_seed(5),
            stage_1_images=(latents[0],),
            stage_2_images=(latents[1],),
        )
    hand_frames, hand_wave = decode_by_hand(parts, video, audio, 5, 9000)
    diffs = {
        "video latent": max_diff(result.video_latent, video),
        "frames": max_diff(result.frames, hand_frames),
        "waveform": max_diff(result.waveform, hand_wave),
    }
    print(f"two-stage: max abs diffs {diffs}")
    assert max(diffs.values()) <= TOL, f"two-stage pipeline vs by hand: {diffs}"


# ---------------------------------------------------------------------------------------------- bad inputs

SIZE_ERRORS = [
    (dict(width=100), r"width must be a multiple of 32 .*got 100; nearest valid: 96 or 128"),
    (dict(height=20), r"height must be a multiple of 32 .*got 20; nearest valid: 32"),
    (dict(num_frames=10), r"num_frames must be 8k\+1 .*got 10; nearest valid: 9 or 17"),
    (dict(width=96, two_stage=True), r"two_stage=True .*multiples of 64: width .*got 96; nearest valid: 64 or 128"),
    (dict(fps=0), r"fps must be a positive number .*got 0"),
    (dict(steps=0), r"steps must be an integer >= 1, got 0"),
    (dict(sigmas=[0.5, 0.9, 0.0]), r"sigmas must be at least 2 strictly decreasing values in \[0, 1\]"),
    (dict(sigmas=[1.5, 0.0]), r"sigmas must be .* got \[1.5, 0.0\]"),
    (dict(steps=3, sigmas=[1.0, 0.0]), r"give steps or sigmas, not both"),
    (dict(guidance=G.GuiderParams(cfg_scale=3.0)), r"guidance must be a ltx2.guidance.MultiModalGuidance or None"),
    (dict(image="face.png"), r"image: expected a tensor, an ImageKeyframe or a list of keyframes, got str"),
    (dict(image=[torch.rand(32, 32, 3)]), r"image\[0\]: expected an ImageKeyframe or \(image, frame_index"),
    (dict(image=[(torch.rand(32, 32, 3), 9)]), r"image\[0\].pixel_frame = 9 puts image\[0\] .* \(valid: -9 to 8\)"),
    (dict(image=[(torch.rand(32, 32, 3), 0, 2.0)]), r"image\[0\]: strength must be in \[0, 1\], got 2.0"),
]
TONE = torch.sin(torch.arange(8000) / 10.0)[None]
AUDIO_ERRORS = [
    ((TONE[:, :0], 16000), r"audio: the waveform is empty \(shape \(1, 0\)\); give at least one sample"),
    ((torch.zeros(2, 8000), 16000), r"audio: the track is silent \(peak below 1/32768"),
    ((TONE * 1e-6, 16000), r"audio: the track is silent"),
    ((TONE[None], 16000), r"audio: expected one waveform \[channels, samples\], got shape \(1, 1, 8000\)"),
    ((TONE.expand(3, -1), 16000), r"audio has 3 channels and 2 are needed"),
    ((TONE * float("nan"), 16000), r"audio: the waveform has NaN or infinite samples"),
    ((TONE, 0), r"sample_rate must be a positive whole number, got 0"),
    ((TONE, -8000), r"sample_rate must be a positive whole number, got -8000"),
    ((TONE, 16000.0), r"sample_rate must be a positive whole number, got 16000.0"),
    (TONE, r"audio: expected \(waveform \[channels, samples\], sample_rate\), got Tensor"),
]


@pytest.mark.parametrize("bad, message", SIZE_ERRORS + [(dict(audio=a), m) for a, m in AUDIO_ERRORS])
def test_bad_inputs_raise_value_error_naming_the_input(parts, bad, message):
    pipe = make(parts)
    args = dict(width=32, height=32, num_frames=9, guidance=G.MultiModalGuidance())
    args |= bad if "sigmas" in bad else {"steps": 1} | bad
    with pytest.raises(ValueError, match=message):
        pipe.generate("x", **args)


def test_bad_construction_and_two_stage_without_upsampler(parts):
    with pytest.raises(ValueError, match=r"version must be one of \('2.0', '2.3', '2.5'\), got '2.1'"):
        LTX2Pipeline(
            parts["transformer"], parts["video_vae"], parts["audio_vae"], parts["vocoder"], FakeTextEncoder(), "2.1"
        )
    with pytest.raises(
        ValueError, match="LTX2Pipeline needs transformer, video_vae, audio_vae, vocoder; missing: vocoder"
    ):
        LTX2Pipeline(parts["transformer"], parts["video_vae"], parts["audio_vae"], None, FakeTextEncoder(), "2.3")
    split = types.SimpleNamespace(**{k: parts[k] for k in ("transformer", "video_vae")}, audio_vae=None, vocoder=None)
    split.paths = ("dit.safetensors", "vae.safetensors")
    with pytest.raises(CheckpointError, match="dit.safetensors, vae.safetensors: no audio_vae and no vocoder in these"):
        LTX2Pipeline.from_checkpoint(split, FakeTextEncoder())
    full = types.SimpleNamespace(**{k: parts[k] for k in MODULES}, paths=("x",), version="2.0", distilled=True)
    encoder = FakeTextEncoder()
    pipe = LTX2Pipeline.from_checkpoint(full, encoder, parts["upsampler"])
    assert (pipe.version, pipe.distilled, pipe.text_encoder, pipe.upsampler) == (
        "2.0",
        True,
        encoder,
        parts["upsampler"],
    )
    with pytest.raises(ValueError, match="text_encoder needs encode_prompts, got object"):
        LTX2Pipeline(parts["transformer"], parts["video_vae"], parts["audio_vae"], parts["vocoder"], object(), "2.3")
    with pytest.raises(ValueError, match=r"two_stage=True needs a latent upsampler"):
        make({**parts, "upsampler": None}).generate("x", width=64, height=64, num_frames=9, two_stage=True)
    with pytest.raises(ValueError, match="prompt must be a string, got list"):
        make(parts).generate(["x"], width=32, height=32, num_frames=1, steps=1, guidance=G.MultiModalGuidance())


# ---------------------------------------------------------------------------------------------- files: load_pipeline


def sections_of(parts) -> dict:
    """The official vae / audio_vae / vocoder metadata sections of the tiny parts."""
    audio_dd = {"ch": 32, "ch_mult": [1, 2, 4], "num_res_blocks": 1, "z_channels": AUDIO_CHANNELS, "double_z": True,
                "attn_resolutions": [], "mid_block_add_attention": False, "in_channels": 2, "out_ch": 2}  # fmt: skip
    vocoder = parts["vocoder"].config
    return {
        "vae": {"_class_name": "CausalVideoAutoencoder", "dims": 3, "norm_layer": "pixel_norm", **VAE_METADATA},
        "audio_vae": {"model": {"params": {"ddconfig": audio_dd, "sampling_rate": 16000}}},
        "vocoder": {
            "upsample_rates": list(vocoder.upsample_rates),
            "upsample_kernel_sizes": list(vocoder.upsample_kernel_sizes),
            "resblock_kernel_sizes": list(vocoder.resblock_kernel_sizes),
            "resblock_dilation_sizes": [list(d) for d in vocoder.resblock_dilation_sizes],
            "upsample_initial_channel": vocoder.upsample_initial_channel,
            "output_sampling_rate": 24000,
        },
    }


def tiny_text_path(gemma_states: int, seed: int):
    """A 2.3/2.5 (V2) text path for the 16-wide tiny Gemmas, at the tiny transformer's text widths (32 / 16)."""
    from videodit.model.ltx2 import text_connector as tc
    from videodit.model.ltx2.text_features import FeatureConfig

    connector = dict(layers=1, registers=4, gated_attention=True)
    video, audio = tc.ConnectorConfig(2, 16, **connector), tc.ConnectorConfig(2, 8, **connector)
    return randomize(
        tc.TextPath(tc.TextPathConfig(FeatureConfig("v2", 16, gemma_states, 32, 16), video, audio)), seed, 0.3
    )


def test_load_pipeline_reads_an_ltx2_file_and_a_gemma_file(parts, tmp_path):
    """An official 2.3 single file (save_ltx2_checkpoint) + a ComfyUI-style Gemma 3 file: load_pipeline dispatches on
    detect_family to LTX2Pipeline, whose result equals the pipeline built from the same modules in memory."""
    from test_ltx2_text import _comfy_file, _gemma3, _tokenizer
    from videodit.model.builtin import builtin_weights
    from videodit.model.checkpoint import load_ltx2_checkpoint, save_ltx2_checkpoint
    from videodit.model.ltx2.gemma import load_gemma
    from videodit.model.ltx2.pipeline import LTX2Pipeline as Pipeline
    from videodit.model.ltx2.text_encoder import LTX2TextEncoder, prompt_rule
    from videodit.model.pipeline import load_pipeline, model_family

    gemma_file = tmp_path / "gemma_3_tiny.safetensors"
    _comfy_file(gemma_file, _gemma3(seed=1))
    _tokenizer(add_bos=True).save_pretrained(str(gemma_file) + ".tokenizer")
    text_path = tiny_text_path(7, 9)
    modules = {k: parts[k] for k in ("transformer", "video_vae", "audio_vae", "vocoder")} | {"text_path": text_path}
    path = tmp_path / "ltx-2.3-tiny.safetensors"
    save_ltx2_checkpoint(path, modules, sections_of(parts), "2.3.0")
    assert model_family(path) == "ltx2" and model_family([path]) == "ltx2"

    pipe = load_pipeline(path, gemma_file, dtype=torch.float32)
    assert isinstance(pipe, Pipeline) and pipe.version == "2.3" and not pipe.distilled
    gemma = load_gemma(gemma_file, torch.float32)
    in_memory = Pipeline(*(parts[k] for k in MODULES), LTX2TextEncoder(gemma, text_path, prompt_rule("2.3")), "2.3")
    with pytest.raises(CheckpointError, match="LTX-2.3 transformer needs the Gemma 3 12B text encoder, got Gemma 4"):
        Pipeline.from_checkpoint(load_ltx2_checkpoint(path, torch.float32), replace(gemma, family="gemma4_unified"))
    args = dict(width=64, height=64, num_frames=9, steps=2, guidance=GUIDED, seed=7)
    loaded, expected = (
        pipe.generate("a red ball jumps", "the dog", **args),
        in_memory.generate("a red ball jumps", "the dog", **args),
    )
    diffs = {
        "frames": max_diff(loaded.frames, expected.frames),
        "waveform": max_diff(loaded.waveform, expected.waveform),
        "video latent": max_diff(loaded.video_latent, expected.video_latent),
    }
    print(f"load_pipeline vs in memory: max abs diffs {diffs}")
    assert max(diffs.values()) <= TOL, f"load_pipeline vs in memory: {diffs}"
    with pytest.raises(ValueError, match="upsampler_path is for LTX-2 checkpoints"):
        load_pipeline(builtin_weights().checkpoint, gemma_file, upsampler_path="up.safetensors")


def test_load_pipeline_reads_ltx25_split_files_and_a_packed_gemma4_file(parts, tmp_path, monkeypatch):
    """LTX-2.5: split files (transformer + connectors, video VAE, audio VAE + vocoder) and a packed Gemma 4 file
    that carries the feature projection: from_checkpoint reads the projection from the Gemma file; the result
    equals the pipeline built from the same modules in memory."""
    import test_ltx2_checkpoint
    from test_ltx2_text import _bytes_tensor, _comfy_file, _gemma4, _tokenizer
    from videodit.model.ltx2.gemma import load_gemma
    from videodit.model.ltx2.text_encoder import LTX2TextEncoder, prompt_rule
    from videodit.model.pipeline import load_pipeline

    gemma, tokenizer = _gemma4(seed=2), _tokenizer(add_bos=True)
    modules = {k: parts[k] for k in ("video_vae", "audio_vae", "vocoder")} | {
        "transformer": tiny_transformer("2.5", 11),
        "text_path": tiny_text_path(4, 10),
    }
    monkeypatch.setattr(test_ltx2_checkpoint, "sections", lambda version: sections_of(parts))
    paths = test_ltx2_checkpoint.write_split(tmp_path, modules, "2.5")[
        :3
    ]  # the projection goes into the Gemma file instead
    projection = {
        "text_embedding_projection." + k[len("feature_extractor.") :]: v
        for k, v in modules["text_path"].state_dict().items()
        if k.startswith("feature_extractor.")
    }
    packed = tmp_path / "gemma4-tiny-with-proj.safetensors"
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    extra = projection | {
        "tokenizer_json": _bytes_tensor(tokenizer.backend_tokenizer.to_str().encode()),
        "hf_asset__tokenizer_config.json": _bytes_tensor(
            (tmp_path / "tokenizer" / "tokenizer_config.json").read_bytes()
        ),
    }
    _comfy_file(packed, gemma, extra, metadata={"gemma_config": json.dumps(gemma.config.to_dict())})

    pipe = load_pipeline(paths, packed, dtype=torch.float32)
    assert pipe.version == "2.5" and pipe.text_encoder.rule.ensure_bos
    in_memory = LTX2Pipeline(
        *(modules[k] for k in MODULES),
        LTX2TextEncoder(load_gemma(packed, torch.float32), modules["text_path"], prompt_rule("2.5")),
        "2.5",
    )
    guidance = G.MultiModalGuidance(video=G.GuiderParams(cfg_scale=3.0), audio=G.GuiderParams(cfg_scale=7.0))
    args = dict(width=64, height=64, num_frames=9, steps=2, guidance=guidance, seed=8)
    loaded, expected = (
        pipe.generate("a cat runs", "the dog", **args),
        in_memory.generate("a cat runs", "the dog", **args),
    )
    diffs = {k: max_diff(getattr(loaded, k), getattr(expected, k)) for k in ("frames", "waveform", "video_latent")}
    print(f"LTX-2.5 load_pipeline vs in memory: max abs diffs {diffs}")
    assert max(diffs.values()) <= TOL, f"LTX-2.5 load_pipeline vs in memory: {diffs}"
