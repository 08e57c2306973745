"""The node pack's nodes on LTX-2 (CPU, fp32, tiny random files written in the official layouts).

The node chain Model Loader -> Text Encoder Loader -> Text Encode x2 -> Empty Latent Video -> (Image To Video /
Audio To Video) -> Sampler -> VAE Decode + Audio Decode at the nodes' DEFAULT settings (guidance "default": the
version's GUIDANCE; schedule auto; crf 29; frame rate 25; tiling auto; seed 0) gives the frames and waveform of
LTX2Pipeline.generate (loaded independently with load_ltx2_pipeline) called with the same values (max abs diff
printed, tolerance 1e-5): T2AV, I2AV (first and last frame), A2V, and the two-stage graph (Empty Latent two_stage
-> Sampler -> Latent Upsample -> Sampler distilled_stage_2) against generate(two_stage=True). Only the video size
and the step count (8 instead of 30) are set, for CPU time. The tiny
transformer has 29 blocks, so the 2.3 default STG block 28 exists. Then split files, Save Video with the decoded
audio, and bad inputs (each a ValueError naming the input).
"""

import dataclasses
import logging
import math
import os

import pytest
import torch
from test_audio_io import streams
from test_ltx2_pipeline import (
    AUDIO_CHANNELS,
    AUDIO_MEL,
    VAE_METADATA,
    VIDEO_CHANNELS,
    randomize,
    sections_of,
    tiny_text_path,
    tiny_vocoder,
)
from test_ltx2_text import _comfy_file, _gemma3, _tokenizer
from videodit.model.ltx2.audio_vae import AudioVAE, AudioVAEConfig
from videodit.model.ltx2.config import tiny as tiny_config
from videodit.model.ltx2.guidance import MultiModalGuidance
from videodit.model.ltx2.transformer import LTX2Transformer
from videodit.model.ltx2.video_vae import LTX2VideoVAE, ltx2_vae_config
from videodit.model.ltxv.upsampler import LatentUpsampler, UpsamplerConfig
from videodit.nodes import host
from videodit.nodes.audio import VideoDiTAudioDecode
from videodit.nodes.common import InputError, input_spec
from videodit.nodes.latents import VideoDiTEmptyLatentVideo, VideoDiTImageToVideo, VideoDiTVAEDecode
from videodit.nodes.loaders import VideoDiTModelLoader, VideoDiTTextEncode, VideoDiTTextEncoderLoader
from videodit.nodes.ltx2_nodes import VideoDiTAudioToVideo, VideoDiTLatentUpsample
from videodit.nodes.sampler import VideoDiTSampler
from videodit.nodes.save import VideoDiTSaveVideo

# On a GPU the loaders' defaults give bf16 on CUDA; the reference pipeline then runs there in bf16 too (same
# kernels, but not guaranteed bit-identical); on the CPU both are fp32.
TOL = 1e-5 if host.torch_device().type == "cpu" else 2e-3
LAYERS = 29  # GUIDANCE["2.3"] skips block 28 in its STG pass
CHECKPOINT, GEMMA, UPSAMPLER = "ltx-2.3-tiny.safetensors", "gemma_3_tiny.safetensors", "tiny-spatial-x2.safetensors"
PROMPT, NEGATIVE = "a red ball jumps over the dog", "blue cat"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_parts(version="2.3"):
    channels = dict(in_channels=VIDEO_CHANNELS, out_channels=VIDEO_CHANNELS)
    channels |= dict(audio_in_channels=AUDIO_CHANNELS * AUDIO_MEL, audio_out_channels=AUDIO_CHANNELS * AUDIO_MEL)
    return dict(
        transformer=randomize(LTX2Transformer(tiny_config(version, num_layers=LAYERS, **channels)), 1, 0.2),
        video_vae=randomize(LTX2VideoVAE(ltx2_vae_config(VAE_METADATA)), 2),
        audio_vae=randomize(AudioVAE(AudioVAEConfig(channels=32, latent_channels=AUDIO_CHANNELS, res_blocks=1)), 3),
        vocoder=tiny_vocoder(),
        text_path=tiny_text_path(7, 9),
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """models/ with the 2.3 single file, its split twin, a tiny Gemma 3 (sidecar tokenizer) and an x2 upsampler."""
    from safetensors.torch import save_file
    from videodit.model.checkpoint import save_ltx2_checkpoint

    root = tmp_path_factory.mktemp("ltx2_models")
    for sub in ("checkpoints", "diffusion_models", "text_encoders", "vae", "latent_upscale_models"):
        (root / sub).mkdir()
    torch.manual_seed(0)
    parts = tiny_parts()
    sections = sections_of(parts)
    save_ltx2_checkpoint(root / "checkpoints" / CHECKPOINT, parts, sections, "2.3.0")
    split = {
        "transformer": ("transformer", "text_path"),
        "video_vae": ("video_vae",),
        "audio": ("audio_vae", "vocoder"),
    }
    names = {"transformer": "ltx-2.3-split-transformer.safetensors", "video_vae": "ltx-2.3-split-video-vae.safetensors"}
    names["audio"] = "ltx-2.3-split-audio-vae.safetensors"
    for part, modules in split.items():
        folder = "diffusion_models" if part == "transformer" else "vae"
        save_ltx2_checkpoint(root / folder / names[part], {m: parts[m] for m in modules}, sections, "2.3.0")
    gemma = root / "text_encoders" / GEMMA
    _comfy_file(gemma, _gemma3(seed=1))
    _tokenizer(add_bos=True).save_pretrained(str(gemma) + ".tokenizer")
    upsampler = randomize(LatentUpsampler(UpsamplerConfig(VIDEO_CHANNELS, 32, 1)), 5)
    save_file(
        {k: v.contiguous() for k, v in upsampler.state_dict().items()}, str(root / "latent_upscale_models" / UPSAMPLER)
    )
    return root, names


@pytest.fixture
def models(files, tmp_path):
    root, names = files
    saved = (host.HEADLESS.models_dir, host.HEADLESS.output_dir, host.HEADLESS.input_dir, host.HEADLESS.show_progress)
    host.configure_headless(models_dir=str(root), output_dir=str(tmp_path / "output"), show_progress=False)
    yield root, names
    host.configure_headless(*saved)


def defaults(cls, **changes):
    values = {name: options["default"] for name, (_, options) in input_spec(cls).items() if "default" in options}
    return {**values, **changes}


def load_nodes():
    model, vae, audio_vae = VideoDiTModelLoader().load(**defaults(VideoDiTModelLoader, checkpoint=CHECKPOINT))
    (encoder,) = VideoDiTTextEncoderLoader().load(**defaults(VideoDiTTextEncoderLoader, text_encoder=GEMMA))
    (positive,) = VideoDiTTextEncode().encode(encoder, PROMPT)
    (negative,) = VideoDiTTextEncode().encode(encoder, NEGATIVE)
    return model, vae, audio_vae, positive, negative


def reference_pipeline(checkpoint, gemma, upsampler=None):
    """load_ltx2_pipeline where the nodes run, in the loaders' default dtype."""
    from videodit.model.ltx2.pipeline import load_ltx2_pipeline
    from videodit.nodes.loaders import resolve_dtype

    device = host.torch_device()
    dtype = resolve_dtype("auto", device)
    return load_ltx2_pipeline(checkpoint, gemma, dtype=dtype, device=device, upsampler_path=upsampler)


@pytest.fixture(scope="module")
def pipeline(files):
    root, _ = files
    return reference_pipeline(
        root / "checkpoints" / CHECKPOINT, root / "text_encoders" / GEMMA, root / "latent_upscale_models" / UPSAMPLER
    )


def max_diff(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.double() - b.double()).abs().max().item()


def finish(model, vae, audio_vae, positive, negative, latent, **sampler):
    sampler.setdefault("steps", STEPS)
    (latent,) = VideoDiTSampler().sample(model, positive, negative, latent, **defaults(VideoDiTSampler, **sampler))
    (images,) = VideoDiTVAEDecode().decode(vae, latent, **defaults(VideoDiTVAEDecode))
    (audio,) = VideoDiTAudioDecode().decode(audio_vae, latent)
    return latent, images, audio


def compare(what, images, waveform, rate, reference):
    diffs = {"frames": max_diff(images, reference.frames), "waveform": max_diff(waveform, reference.waveform)}
    print(f"{what}: node chain vs LTX2Pipeline.generate, max abs diffs {diffs}")
    assert rate == reference.sample_rate
    assert max(diffs.values()) <= TOL, f"{what}: node chain vs generate: {diffs}"


SIZE = dict(width=64, height=64, frames=9)
STEPS = 8  # CPU time: 29 blocks x 4 guided passes per step (the node's default is 30)


def test_text_to_audio_video_equals_the_pipeline_at_node_defaults(models, pipeline):
    model, vae, audio_vae, positive, negative = load_nodes()
    assert (model.family, vae.family, model.version) == ("ltx2", "ltx2", "2.3")
    (latent,) = VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **SIZE, vae=vae))
    fps = latent["frame_rate"]
    assert latent["audio_samples"].shape == (1, AUDIO_CHANNELS, round(9 / fps * 25), AUDIO_MEL)
    assert math.isclose(latent["audio_seconds"], 9 / fps)
    latent, images, audio = finish(model, vae, audio_vae, positive, negative, latent)
    assert images.shape == (9, 64, 64, 3) and audio["waveform"].shape == (1, 2, round(9 / fps * 24000))
    reference = pipeline.generate(PROMPT, NEGATIVE, 64, 64, 9, fps, steps=STEPS, seed=0)
    compare("T2AV", images, audio["waveform"][0], audio["sample_rate"], reference)
    unguided = pipeline.generate(PROMPT, NEGATIVE, 64, 64, 9, fps, steps=STEPS, seed=0, guidance=MultiModalGuidance())
    assert max_diff(images, unguided.frames) > 1e-3, "the version's guidance must change the result"
    # Save Video with the decoded sound: one file, one video and one audio stream
    result = VideoDiTSaveVideo().save(images, fps, "mp4 (h264)", 19, "ltx2/t2av", audio=audio)
    info = result["ui"]["images"][0]
    lines = streams(os.path.join(host.HEADLESS.output_dir, info["subfolder"], info["filename"]))
    kinds = [line.split(": ")[1] for line in lines]
    assert kinds.count("Video") == 1 and kinds.count("Audio") == 1, lines


def test_image_to_audio_video_first_and_last_frame_equals_the_pipeline(models, pipeline):
    model, vae, audio_vae, positive, negative = load_nodes()
    first = torch.rand(1, 80, 100, 3, generator=torch.Generator().manual_seed(1))
    last = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(2))
    (latent,) = VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **SIZE, vae=vae))
    i2v = defaults(VideoDiTImageToVideo)
    (latent,) = VideoDiTImageToVideo().apply(vae, latent, first, image_2=last, **i2v)
    _, images, audio = finish(model, vae, audio_vae, positive, negative, latent)
    fps = latent["frame_rate"]
    keyframes = [(first[0], 0, 1.0), (last[0], 8, 1.0)]
    reference = pipeline.generate(
        PROMPT, NEGATIVE, 64, 64, 9, fps, steps=STEPS, seed=0, image=keyframes, image_crf=i2v["crf"]
    )
    compare("I2AV first+last", images, audio["waveform"][0], audio["sample_rate"], reference)


def test_audio_to_video_equals_the_pipeline_and_says_it_trimmed(models, pipeline, caplog):
    model, vae, audio_vae, positive, negative = load_nodes()
    rate = 22050
    t = torch.arange(int(1.3 * rate)) / rate
    track = torch.stack([torch.sin(2 * math.pi * 330 * t), 0.5 * torch.sin(2 * math.pi * 550 * t)]).float()
    (latent,) = VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **SIZE, vae=vae))
    with caplog.at_level(logging.WARNING, logger="videodit"):
        latent, given = VideoDiTAudioToVideo().apply(vae, latent, {"waveform": track[None], "sample_rate": rate})
    assert "resampled 22050 -> 16000 Hz" in caplog.text and "trimmed the last" in caplog.text, caplog.text
    assert latent["audio_given"] and given["sample_rate"] == rate
    (latent,) = VideoDiTSampler().sample(model, positive, negative, latent, **defaults(VideoDiTSampler, steps=STEPS))
    (images,) = VideoDiTVAEDecode().decode(vae, latent, **defaults(VideoDiTVAEDecode))
    fps = latent["frame_rate"]
    reference = pipeline.generate(PROMPT, NEGATIVE, 64, 64, 9, fps, steps=STEPS, seed=0, audio=(track, rate))
    compare("A2V", images, given["waveform"][0], given["sample_rate"], reference)


def test_two_stage_graph_equals_generate_two_stage(models, pipeline):
    model, vae, audio_vae, positive, negative = load_nodes()
    size = dict(width=128, height=64, frames=9)
    (latent,) = VideoDiTEmptyLatentVideo().generate(
        **defaults(VideoDiTEmptyLatentVideo, **size, vae=vae, two_stage=True)
    )
    assert latent["samples"].shape[-2:] == (1, 2) and (latent["width"], latent["height"]) == (64, 32)
    (latent,) = VideoDiTSampler().sample(model, positive, negative, latent, **defaults(VideoDiTSampler, steps=STEPS))
    (latent,) = VideoDiTLatentUpsample().upsample(vae, latent, UPSAMPLER)
    assert (latent["width"], latent["height"], latent["frames"]) == (128, 64, 9)
    _, images, audio = finish(model, vae, audio_vae, positive, negative, latent, schedule="distilled_stage_2")
    fps = latent["frame_rate"]
    reference = pipeline.generate(PROMPT, NEGATIVE, 128, 64, 9, fps, steps=STEPS, seed=0, two_stage=True)
    compare("two-stage", images, audio["waveform"][0], audio["sample_rate"], reference)


def test_custom_guidance_widgets_equal_the_same_multimodal_guidance(models, pipeline):
    """guidance custom: cfg (video), audio_cfg, stg on stg_blocks, rescale, modality_scale from the widgets."""
    from videodit.model.ltx2.guidance import GuiderParams

    model, vae, audio_vae, positive, negative = load_nodes()
    (latent,) = VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **SIZE, vae=vae))
    widgets = dict(guidance="custom", cfg=2.5, audio_cfg=5.0, stg=0.5, stg_blocks="1, 3", rescale=0.3)
    _, images, audio = finish(model, vae, audio_vae, positive, negative, latent, steps=3, modality_scale=2.0, **widgets)
    common = dict(stg_scale=0.5, stg_blocks=(1, 3), rescale_scale=0.3, modality_scale=2.0)
    guidance = MultiModalGuidance(GuiderParams(cfg_scale=2.5, **common), GuiderParams(cfg_scale=5.0, **common))
    reference = pipeline.generate(PROMPT, NEGATIVE, 64, 64, 9, 25.0, steps=3, seed=0, guidance=guidance)
    compare("custom guidance", images, audio["waveform"][0], audio["sample_rate"], reference)
    with pytest.raises(InputError, match=r"stg_blocks: block\(s\) \[40\] do not exist; this model has 29 blocks"):
        finish(model, vae, audio_vae, positive, negative, latent, steps=1, guidance="custom", stg_blocks="40")


def test_streamed_blocks_give_the_resident_result(models, caplog):
    """memory "stream blocks" (model/streaming.py, here on the CPU) equals memory "resident" bit for bit."""
    caplog.set_level(logging.INFO, logger="videodit")
    outputs = []
    for memory in ("resident", "stream blocks"):
        loader = defaults(VideoDiTModelLoader, checkpoint=CHECKPOINT, memory=memory)
        model, vae, _ = VideoDiTModelLoader().load(**loader)
        (encoder,) = VideoDiTTextEncoderLoader().load(**defaults(VideoDiTTextEncoderLoader, text_encoder=GEMMA))
        (positive,) = VideoDiTTextEncode().encode(encoder, PROMPT)
        (latent,) = VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **SIZE, vae=vae))
        sampler = defaults(VideoDiTSampler, steps=2, guidance="custom", stg_blocks="1")
        (latent,) = VideoDiTSampler().sample(model, positive, positive, latent, **sampler)
        assert model._streamer is None  # released: the streamer's hooks removed
        outputs.append(latent)
    assert "streaming 15 of 29 LTX-2 blocks" in caplog.text  # half kept resident, the rest streamed
    diffs = [max_diff(outputs[0][k], outputs[1][k]) for k in ("samples", "audio_samples")]
    print(f"streamed vs resident: max abs diffs video {diffs[0]}, audio {diffs[1]}")
    assert max(diffs) == 0.0, diffs


def test_a_plain_video_latent_gets_its_sound_in_the_sampler(models):
    """A video latent without audio (Empty Latent Video without the vae input makes one; the tiny VAE's 16 channels
    are not the released 128, so its keys are dropped here): the LTX-2 sampler adds the silent-start audio latent of
    the video's duration itself; the result equals the joint latent's."""
    model, vae, audio_vae, positive, negative = load_nodes()
    sampler = defaults(VideoDiTSampler, steps=2, guidance="custom", stg_blocks="1")
    (joint,) = VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **SIZE, vae=vae))
    plain = {k: v for k, v in joint.items() if not k.startswith("audio_") and k != "family"}
    outputs = []
    for latent in (plain, joint):
        (latent,) = VideoDiTSampler().sample(model, positive, negative, latent, **sampler)
        outputs.append(latent)
    assert "audio_samples" in outputs[0] and outputs[0]["family"] == "ltx2"
    assert max(max_diff(outputs[0][k], outputs[1][k]) for k in ("samples", "audio_samples")) == 0.0


def test_progress_previews_and_interrupt(models, monkeypatch):
    """One progress update per step with a preview of the denoised video (ComfyUI with previews on); an interrupt
    stops the run at the next transformer call."""
    from PIL import Image

    model, vae, audio_vae, positive, negative = load_nodes()
    (latent,) = VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **SIZE, vae=vae))
    sampler = defaults(VideoDiTSampler, steps=3, guidance="custom", stg_blocks="1")
    updates = []
    monkeypatch.setattr(host, "previews_enabled", lambda: True)
    monkeypatch.setattr(host.Progress, "update", lambda self, value, image=None: updates.append((value, image)))
    VideoDiTSampler().sample(model, positive, negative, latent, **sampler)
    assert [value for value, _ in updates] == [1, 2, 3]
    assert all(isinstance(image, Image.Image) and image.size == (16, 16) for _, image in updates)
    updates.clear()  # denoise 0.5: the last half of the schedule, from the input latent re-noised at its sigma
    (out,) = VideoDiTSampler().sample(model, positive, negative, latent, **dict(sampler, steps=4, denoise=0.5))
    assert [value for value, _ in updates] == [1, 2] and torch.isfinite(out["samples"]).all()

    class Interrupted(Exception):
        pass

    calls = []

    def interrupt():
        calls.append(1)
        raise Interrupted()

    monkeypatch.setattr(host, "check_interrupt", interrupt)
    with pytest.raises(Interrupted):
        VideoDiTSampler().sample(model, positive, negative, latent, **sampler)
    assert calls == [1] and model._streamer is None


def test_distilled_checkpoint_runs_the_distilled_list_without_guidance_by_default(models):
    """A distilled release (its file name says so): schedule auto + guidance default = generate's defaults for it
    (the distilled 8-step list, one pass per step); the node ignores steps."""
    import shutil

    root, _ = models
    name = "ltx-2.3-tiny-distilled.safetensors"
    shutil.copy(root / "checkpoints" / CHECKPOINT, root / "checkpoints" / name)
    model, vae, audio_vae = VideoDiTModelLoader().load(**defaults(VideoDiTModelLoader, checkpoint=name))
    assert model.distilled
    (encoder,) = VideoDiTTextEncoderLoader().load(**defaults(VideoDiTTextEncoderLoader, text_encoder=GEMMA))
    (positive,) = VideoDiTTextEncode().encode(encoder, PROMPT)
    (negative,) = VideoDiTTextEncode().encode(encoder, NEGATIVE)
    (latent,) = VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **SIZE, vae=vae))
    _, images, audio = finish(model, vae, audio_vae, positive, negative, latent, steps=30)
    pipe = reference_pipeline(root / "checkpoints" / name, root / "text_encoders" / GEMMA)
    assert pipe.distilled
    reference = pipe.generate(PROMPT, NEGATIVE, 64, 64, 9, latent["frame_rate"], seed=0)
    compare("distilled T2AV", images, audio["waveform"][0], audio["sample_rate"], reference)


def test_two_stage_image_to_video_graph_equals_generate_two_stage(models, pipeline):
    """Keyframes in both stages: Image To Video on the half-size latent, and again after Latent Upsample (which drops
    the stage-1 keyframes) = generate(two_stage=True, image=...) (stage-1 images at half size, stage-2 at full)."""
    model, vae, audio_vae, positive, negative = load_nodes()
    image = torch.rand(1, 70, 90, 3, generator=torch.Generator().manual_seed(4))
    empty = defaults(VideoDiTEmptyLatentVideo, width=128, height=64, frames=9, vae=vae, two_stage=True)
    (latent,) = VideoDiTEmptyLatentVideo().generate(**empty)
    i2v = defaults(VideoDiTImageToVideo)
    (latent,) = VideoDiTImageToVideo().apply(vae, latent, image, **i2v)
    (latent,) = VideoDiTSampler().sample(model, positive, negative, latent, **defaults(VideoDiTSampler, steps=3))
    (latent,) = VideoDiTLatentUpsample().upsample(vae, latent, UPSAMPLER)
    assert "keyframes" not in latent
    (latent,) = VideoDiTImageToVideo().apply(vae, latent, image, **i2v)
    _, images, audio = finish(model, vae, audio_vae, positive, negative, latent, schedule="distilled_stage_2")
    reference = pipeline.generate(
        PROMPT, NEGATIVE, 128, 64, 9, 25.0, steps=3, seed=0, two_stage=True, image=image[0], image_crf=i2v["crf"]
    )
    compare("two-stage I2AV", images, audio["waveform"][0], audio["sample_rate"], reference)


@pytest.mark.parametrize("name", ["ltx2_3_t2av", "ltx2_3_two_stage"])
def test_shipped_ltx2_workflows_run_headless_to_a_video_with_sound(models, name):
    """The shipped LTX-2.3 API workflows, with the tiny files and a small size, run through the headless runner to
    one MP4 with a video and an audio stream."""
    import json

    from videodit.cli import run_prompt
    from videodit.nodes.video_io import read_video

    workflows = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workflows")
    with open(os.path.join(workflows, "api", f"{name}_api.json"), encoding="utf-8") as f:
        prompt = json.load(f)
    prompt["1"]["inputs"]["checkpoint"] = CHECKPOINT
    prompt["2"]["inputs"]["text_encoder"] = GEMMA
    prompt["3"]["inputs"]["text"], prompt["4"]["inputs"]["text"] = PROMPT, NEGATIVE
    prompt["5"]["inputs"].update(width=128, height=64, frames=9, frame_rate=25.0)
    prompt["6"]["inputs"]["steps"] = 2
    prompt["8"]["inputs"]["fps"] = 25.0
    if "10" in prompt:
        prompt["10"]["inputs"]["upscale_model"] = UPSAMPLER
    (ui,) = run_prompt(prompt)
    (info,) = ui["images"]
    path = os.path.join(host.HEADLESS.output_dir, info["subfolder"], info["filename"])
    kinds = [line.split(": ")[1] for line in streams(path)]
    assert kinds.count("Video") == 1 and kinds.count("Audio") == 1, kinds
    frames, fps = read_video(path)
    assert frames.shape == (9, 64, 128, 3) and fps == 25.0


# ---------------------------------------------------------------------------------------------- files and bad input


def test_split_files_load_through_the_optional_inputs(models):
    root, names = models
    inputs = defaults(VideoDiTModelLoader, checkpoint=names["transformer"])
    with pytest.raises(InputError, match=r"no video vae and no audio vae and no vocoder .* give vae_file"):
        VideoDiTModelLoader().load(**inputs)
    model, vae, audio_vae = VideoDiTModelLoader().load(
        **dict(inputs, vae_file=names["video_vae"], audio_vae_file=names["audio"])
    )
    assert model.family == "ltx2" and vae.audio is audio_vae and len(model.checkpoint.paths) == 3


def test_ltx25_split_files_and_a_packed_gemma4_file(models, tmp_path, monkeypatch):
    """LTX-2.5: the transformer from diffusion_models, vae_file and audio_vae_file from models/vae, the Gemma 4 file
    with the feature projection in text_encoders: the node chain equals load_ltx2_pipeline on the same files; the
    Gemma 3 text encoder is refused naming both files."""
    import json
    import shutil

    import test_ltx2_checkpoint
    from test_ltx2_text import _bytes_tensor, _gemma4

    root, _ = models
    torch.manual_seed(3)
    parts = tiny_parts("2.5") | {"text_path": tiny_text_path(4, 10)}  # the tiny Gemma 4: 3 layers -> 4 states
    monkeypatch.setattr(test_ltx2_checkpoint, "sections", lambda version: sections_of(parts))
    written = test_ltx2_checkpoint.write_split(tmp_path, parts, "2.5")[:3]  # the projection goes to the Gemma file
    names = ["ltx-2.5-tiny-transformer.safetensors", "ltx-2.5-tiny-video-vae.safetensors"]
    names.append("ltx-2.5-tiny-audio-vae.safetensors")
    targets = [root / "diffusion_models" / names[0], root / "vae" / names[1], root / "vae" / names[2]]
    for source, target in zip(written, targets):
        shutil.copy(source, target)
    gemma, tokenizer = _gemma4(seed=2), _tokenizer(add_bos=True)
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    projection = {
        "text_embedding_projection." + k[len("feature_extractor.") :]: v
        for k, v in parts["text_path"].state_dict().items()
        if k.startswith("feature_extractor.")
    }
    extra = projection | {
        "tokenizer_json": _bytes_tensor(tokenizer.backend_tokenizer.to_str().encode()),
        "hf_asset__tokenizer_config.json": _bytes_tensor(
            (tmp_path / "tokenizer" / "tokenizer_config.json").read_bytes()
        ),
    }
    packed = root / "text_encoders" / "gemma4-tiny-with-proj.safetensors"
    _comfy_file(packed, gemma, extra, metadata={"gemma_config": json.dumps(gemma.config.to_dict())})

    loader = defaults(VideoDiTModelLoader, checkpoint=names[0], vae_file=names[1], audio_vae_file=names[2])
    model, vae, audio_vae = VideoDiTModelLoader().load(**loader)
    assert model.version == "2.5"
    (encoder,) = VideoDiTTextEncoderLoader().load(**defaults(VideoDiTTextEncoderLoader, text_encoder=packed.name))
    (positive,) = VideoDiTTextEncode().encode(encoder, "a cat runs")
    (negative,) = VideoDiTTextEncode().encode(encoder, "the dog")
    (latent,) = VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **SIZE, vae=vae))
    _, images, audio = finish(model, vae, audio_vae, positive, negative, latent, steps=2)
    pipe = reference_pipeline(targets, packed)
    reference = pipe.generate("a cat runs", "the dog", 64, 64, 9, 25.0, steps=2, seed=0)
    compare("LTX-2.5 split", images, audio["waveform"][0], audio["sample_rate"], reference)
    (gemma3,) = VideoDiTTextEncoderLoader().load(**defaults(VideoDiTTextEncoderLoader, text_encoder=GEMMA))
    (positive,) = VideoDiTTextEncode().encode(gemma3, "a cat runs")
    with pytest.raises(InputError, match=rf"text encoder .*{GEMMA} and model .*{names[0]}.* do not pair: .*LTX-2.5"):
        VideoDiTSampler().sample(model, positive, positive, latent, **defaults(VideoDiTSampler, steps=1))


def test_mismatched_pairs_are_named(models, tiny_models):
    import shutil

    root, names = models
    shutil.copy(tiny_models.checkpoint_path, root / "vae" / "ltxv-0.9.x.safetensors")
    inputs = defaults(VideoDiTModelLoader, checkpoint=names["transformer"])
    with pytest.raises(InputError, match=r"vae_file: .*ltxv-0.9.x.safetensors is an LTX-Video 0.9.x checkpoint"):
        VideoDiTModelLoader().load(**dict(inputs, vae_file="ltxv-0.9.x.safetensors", audio_vae_file=names["audio"]))
    with pytest.raises(InputError, match=r"vae_file: .* is an LTX-Video 0.9.x checkpoint with its VAE inside"):
        VideoDiTModelLoader().load(**defaults(VideoDiTModelLoader, vae_file=names["video_vae"]))
    model, vae, audio_vae, positive, negative = load_nodes()
    (latent,) = VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **SIZE, vae=vae))
    # an LTX-2.5 transformer with the (Gemma 3) text encoder of 2.0/2.3
    model_25 = dataclasses.replace(model, checkpoint=dataclasses.replace(model.checkpoint, version="2.5"))
    with pytest.raises(InputError, match=rf"text encoder .*{GEMMA} and model .*{CHECKPOINT} do not pair: .*LTX-2.5 "
                       r"transformer needs the LTX-2.5 Gemma 4 text encoder, got Gemma 3"):  # fmt: skip
        VideoDiTSampler().sample(model_25, positive, negative, latent, **defaults(VideoDiTSampler, steps=1))
    # the 0.9.x model with LTX-2 prompts / latents, and the LTX-2 model with a T5 prompt
    ltxv_model, ltxv_vae, no_audio = VideoDiTModelLoader().load(**defaults(VideoDiTModelLoader))
    with pytest.raises(InputError, match="positive: this conditioning comes from the Gemma text encoder"):
        VideoDiTSampler().sample(ltxv_model, positive, negative, latent, **defaults(VideoDiTSampler, steps=1))
    (t5,) = VideoDiTTextEncoderLoader().load(**defaults(VideoDiTTextEncoderLoader))
    (t5_prompt,) = VideoDiTTextEncode().encode(t5, "a red circle")
    with pytest.raises(InputError, match="positive: this conditioning comes from a T5 text encoder"):
        VideoDiTSampler().sample(model, t5_prompt, t5_prompt, latent, **defaults(VideoDiTSampler, steps=1))
    with pytest.raises(InputError, match="latent: this latent was made for an LTX-2 model, but the vae is LTX-Video"):
        VideoDiTVAEDecode().decode(ltxv_vae, latent, **defaults(VideoDiTVAEDecode))
    with pytest.raises(InputError, match="audio_vae: .* is an LTX-Video 0.9.x checkpoint, which has no audio VAE"):
        VideoDiTAudioDecode().decode(no_audio, latent)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(frames=10), r"frames must be 8k\+1 .*got 10"),
        (dict(width=100), r"width must be a multiple of 32 .*got 100"),
        (dict(width=96, two_stage=True), r"two_stage: .* must be multiples of 64: width must be a multiple of 64"),
    ],
)
def test_bad_sizes_name_the_input(models, changes, message):
    _, vae, *_ = VideoDiTModelLoader().load(**defaults(VideoDiTModelLoader, checkpoint=CHECKPOINT))
    with pytest.raises(InputError, match=message):
        VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **dict(SIZE, vae=vae, **changes)))


def test_sampler_bad_inputs_name_the_input(models, tiny_models):
    model, vae, audio_vae, positive, negative = load_nodes()
    (latent,) = VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **SIZE, vae=vae))
    (batch,) = VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **SIZE, vae=vae, batch_size=2))
    cases = [
        (latent, dict(schedule="linear_quadratic"), "schedule: linear_quadratic is the LTX-Video 0.9.5"),
        (batch, {}, "latent: LTX-2 samples one video at a time; this latent holds a batch of 2"),
    ]
    for value, changes, message in cases:
        with pytest.raises(InputError, match=message):
            VideoDiTSampler().sample(model, positive, negative, value, **defaults(VideoDiTSampler, steps=1, **changes))
    ltxv, _, _ = VideoDiTModelLoader().load(**defaults(VideoDiTModelLoader))
    (t5,) = VideoDiTTextEncoderLoader().load(**defaults(VideoDiTTextEncoderLoader))
    (t5_prompt,) = VideoDiTTextEncode().encode(t5, "a red circle")
    (plain,) = VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **SIZE))
    with pytest.raises(InputError, match="schedule: distilled_stage_2 is for LTX-2 two-stage graphs"):
        VideoDiTSampler().sample(ltxv, t5_prompt, t5_prompt, plain, **defaults(VideoDiTSampler, steps=1,
                                 stg_blocks="1", schedule="distilled_stage_2"))  # fmt: skip


def test_latent_upsample_temporal_x2(models):
    """A temporal x2 upsampler (file metadata config): frames 9 -> 17 at twice the frame rate (same duration); the
    audio stays as it is."""
    import json

    from safetensors.torch import save_file

    root, _ = models
    config = UpsamplerConfig(VIDEO_CHANNELS, 32, 1, spatial_upsample=False, temporal_upsample=True)
    upsampler = randomize(LatentUpsampler(config), 6)
    name = "tiny-temporal-x2.safetensors"
    tensors = {k: v.contiguous() for k, v in upsampler.state_dict().items()}
    metadata = {"config": json.dumps(config.to_metadata())}
    save_file(tensors, str(root / "latent_upscale_models" / name), metadata=metadata)
    _, vae, *_ = VideoDiTModelLoader().load(**defaults(VideoDiTModelLoader, checkpoint=CHECKPOINT))
    (latent,) = VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **SIZE, vae=vae))
    (out,) = VideoDiTLatentUpsample().upsample(vae, latent, name)
    assert (out["width"], out["height"], out["frames"], out["frame_rate"]) == (64, 64, 17, 50.0)
    assert out["samples"].shape[2:] == (3, 2, 2) and torch.equal(out["audio_samples"], latent["audio_samples"])


def test_latent_upsample_without_a_file_says_where_to_put_one(models, monkeypatch):
    from videodit.nodes import ltx2_nodes

    _, vae, *_ = VideoDiTModelLoader().load(**defaults(VideoDiTModelLoader, checkpoint=CHECKPOINT))
    (latent,) = VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **SIZE, vae=vae))
    monkeypatch.setattr(host, "list_models", lambda key: [])
    assert ltx2_nodes.upscale_model_choices() == [ltx2_nodes.NO_UPSCALER]
    with pytest.raises(InputError, match=r"upscale_model: no latent upsampler file was found; put one .* in .*"
                       r"latent_upscale_models"):  # fmt: skip
        VideoDiTLatentUpsample().upsample(vae, latent, ltx2_nodes.NO_UPSCALER)


@pytest.mark.parametrize(
    "waveform, message",
    [
        (torch.zeros(1, 2, 0), "the waveform is empty"),
        (torch.zeros(1, 2, 8000), "the track is silent"),
        (torch.full((1, 2, 8000), float("nan")), "NaN or infinite samples"),
    ],
)
def test_empty_or_silent_audio_is_refused(models, waveform, message):
    _, vae, *_ = VideoDiTModelLoader().load(**defaults(VideoDiTModelLoader, checkpoint=CHECKPOINT))
    (latent,) = VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **SIZE, vae=vae))
    with pytest.raises(InputError, match=message):
        VideoDiTAudioToVideo().apply(vae, latent, {"waveform": waveform, "sample_rate": 16000})
