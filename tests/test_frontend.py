"""The shared front-end (model/frontend.py, geometry.py, preprocess.py, builtin.py): geometry from the VAE config,
keyframes never trimmed, prompt length by checkpoint version, family dispatch, the built-in model's helpers."""

import logging
import os
import shutil
import subprocess
import sys

import pytest
import torch
from videodit.model import builtin, frontend
from videodit.model.geometry import LTXV_GEOMETRY, VideoGeometry
from videodit.model.sampling import TextCondition

# ------------------------------------------------------------------------------------------------- geometry


def small_vae_config():
    """A VAE that compresses 2x in time and 16x in space (patch 4, then space x2 and all x2)."""
    from videodit.model.ltxv.vae import VAEConfig

    blocks = [["compress_space", {}], ["compress_all", {}]]
    return VAEConfig(
        encoder_blocks=blocks,
        decoder_blocks=blocks,
        latent_channels=8,
        patch_size=4,
        encoder_base_channels=8,
        decoder_base_channels=8,
    )


def test_geometry_comes_from_the_vae_config():
    geometry = VideoGeometry.of(small_vae_config())
    assert (geometry.temporal_factor, geometry.spatial_factor, geometry.latent_channels) == (2, 16, 8)
    assert geometry.latent_shape(64, 48, 9) == (5, 3, 4) and geometry.pixel_shape(5, 3, 4) == (64, 48, 9)
    assert geometry.video_problems(64, 48, 9) == []
    (width,) = geometry.video_problems(40, 48, 9)
    assert width == (
        "width must be a multiple of 16 between 16 and 8192 (the VAE compresses 16x in space): got 40; "
        "nearest valid: 32 or 48"
    )
    (frames,) = geometry.video_problems(64, 48, 8)
    assert frames.startswith("frames must be 2k+1 (1, 3, 5, ...") and frames.endswith("got 8; nearest valid: 7 or 9")
    latent = frontend.empty_latent(geometry, 64, 48, 9, batch=2)
    assert latent.shape == (2, 8, 5, 3, 4) and not latent.any()
    with pytest.raises(ValueError, match="height must be a multiple of 16 .*got 50; nearest valid: 48 or 64"):
        frontend.empty_latent(geometry, 64, 50, 9)


def test_ltxv_geometry_is_what_the_released_vaes_say():
    from videodit.tiny import configs

    assert VideoGeometry.of(configs.vae_config(), configs.transformer_config()) == LTXV_GEOMETRY
    assert LTXV_GEOMETRY.latent_shape(768, 512, 121) == (16, 16, 24)


def test_token_coordinates_and_clip_placement_follow_the_geometry():
    """A clip keyframe at pixel frame k is written from latent frame k/t + 2 on and its tokens sit at pixel
    coordinates of the VAE's factors: t = 2, s = 16 here (the LTX-Video 8 / 32 would put them elsewhere)."""
    from videodit.model.conditioning import Keyframe, apply_keyframes

    geometry = VideoGeometry.of(small_vae_config())
    latents = torch.zeros(1, 8, 6, 2, 3)  # 11 frames of 32 x 48
    clip = Keyframe(torch.ones(1, 8, 3, 2, 3), pixel_frame=4)  # 5 pixel frames starting at frame 4
    out = apply_keyframes(latents, [clip], torch.Generator().manual_seed(0), False, 1.0, geometry)
    assert out.num_extra == 2 * 2 * 3  # the two-latent-frame prefix
    video_mask = out.mask[0, out.num_extra :].view(6, 2, 3)
    assert video_mask[4:5].eq(1).all() and video_mask[:4].eq(0).all() and video_mask[5:].eq(0).all()
    video_coords = out.coords[0, :, out.num_extra :].view(3, 6, 2, 3)
    assert video_coords[1, 0, :, 0].tolist() == [0.0, 16.0] and video_coords[2, 0, 0].tolist() == [0.0, 16.0, 32.0]
    assert video_coords[0, :, 0, 0].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]  # frame_rate 1: seconds = frames
    assert out.coords[0, 0, : out.num_extra].unique().tolist() == [4.0, 6.0]  # k + (0, t) without the causal fix


@pytest.mark.parametrize(
    "count,index,message",
    [
        (10, 0, "keyframes\\[0\\] has 10 frames: give one image, or a clip of 8k\\+1 frames"),
        (
            17,
            16,
            "keyframes\\[0\\].pixel_frame = 16 puts keyframes\\[0\\] \\(17 frame\\(s\\)\\) outside the video's 25",
        ),
        (9, 12, "a clip after frame 0 must start at a multiple of 8; nearest valid: 8 or 16"),
        (1, 25, "outside the video's 25 frames \\(valid: -25 to 24\\)"),
    ],
)
def test_keyframes_that_do_not_fit_are_rejected_never_trimmed(count, index, message):
    """The pipeline used to cut such clips down; now pipeline and nodes reject them the same way."""
    from videodit.model.pipeline import ImageKeyframe, VideoPipeline

    pipe = VideoPipeline(torch.nn.Linear(1, 1), None, None)
    with pytest.raises(ValueError, match=message):
        pipe.encode_keyframe(ImageKeyframe(torch.rand(count, 32, 32, 3), index), 64, 64, 25)


def test_negative_keyframe_index_counts_from_the_end():
    assert LTXV_GEOMETRY.keyframe_start("image", "index", -1, 1, 25) == 24
    assert LTXV_GEOMETRY.keyframe_start("image", "index", -9, 9, 25) == 16


# ------------------------------------------------------------------------------------------------- preprocessing


def test_compression_round_trip_changes_the_image_like_h264_and_zero_is_off():
    from videodit.model.preprocess import blur_3x3, compress_like_training, keyframe_pixels

    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(compress_like_training(image, 0), image)
    compressed = compress_like_training(image, 29)
    blurred = blur_3x3(image)
    # noise does not survive crf 29: far from the input, nearer to its blurred copy, values quantised to 1/255
    assert (compressed - image).abs().mean() > 0.1
    assert (compressed - blurred).abs().mean() < (compressed - image).abs().mean()
    assert torch.equal((compressed * 255).round() / 255, compressed)
    vae_input = keyframe_pixels(image[0], 64, 64)  # the default: crf 29
    torch.testing.assert_close(vae_input, compressed.permute(3, 0, 1, 2)[None] * 2 - 1, rtol=0, atol=1e-6)
    assert keyframe_pixels(torch.rand(2, 30, 40, 4), 32, 64, crf=0).shape == (1, 3, 2, 64, 32)  # alpha dropped


# ------------------------------------------------------------------------------------------------- prompts


@pytest.fixture(scope="module")
def t5_file(tmp_path_factory):
    from transformers import T5EncoderModel
    from videodit.model.text_encoder import save_text_encoder
    from videodit.tiny import configs

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("t5") / "t5.safetensors"
    save_text_encoder(str(path), T5EncoderModel(configs.t5_config()), {"tokenizer": "byte"})  # no max_tokens
    return str(path)


def test_prompt_length_follows_the_checkpoint_version(t5_file):
    """Text Encode does not know the checkpoint: its Prompt is re-encoded by the sampler at 128 tokens for
    0.9.0/0.9.1, the length load_pipeline uses for those, and stays at 256 for 0.9.5+."""
    from videodit.model.text_encoder import load_text_encoder

    assert frontend.pinned_prompt_tokens(t5_file) is None
    assert frontend.prompt_tokens("0.9.0") == frontend.prompt_tokens("0.9.1") == 128
    assert frontend.prompt_tokens("0.9.5") == frontend.prompt_tokens(None) == 256
    assert frontend.prompt_tokens("0.9.0", pinned=64) == 64
    encoder = load_text_encoder(t5_file, dtype=torch.float32, max_tokens=256)
    calls = []

    def encode(text, tokens):
        calls.append(tokens)
        return frontend.encode_prompt(encoder, text, tokens)

    prompt = frontend.Prompt("a red circle", encode("a red circle", 256), 256, False, encode)
    assert prompt.for_version("0.9.5").embeddings.shape[1] == 256 and calls == [256]
    legacy = prompt.for_version("0.9.1")
    assert legacy.embeddings.shape[1] == 128 and calls == [256, 128]
    reference = load_text_encoder(t5_file, dtype=torch.float32, max_tokens=128).encode(["a red circle"])
    diff = (legacy.embeddings - reference.embeddings).abs().max().item()
    assert diff <= 1e-6 and torch.equal(legacy.mask, reference.mask), f"max abs diff {diff:.2e}"
    assert encoder.max_tokens == 256  # encoding at another length leaves the encoder as it was
    pinned = frontend.Prompt("x", encode("x", 64), 64, True, encode)
    assert pinned.for_version("0.9.1").embeddings.shape[1] == 64 and calls[-1] == 64


def test_builtin_text_encoder_pins_its_length():
    assert frontend.pinned_prompt_tokens(builtin.builtin_weights().text_encoder) == 128


# ------------------------------------------------------------------------------------------------- families


def test_family_dispatch():
    assert frontend.steps_for("ltxv").family == "ltxv"
    assert frontend.steps_for("ltx2").family == "ltx2"
    assert frontend.steps_for("ltx2").encode_keyframe is frontend.encode_keyframe  # shared with 0.9.x
    assert frontend.steps_for("ltx2").prompt_tokens("2.3", None) == 1024
    with pytest.raises(ValueError, match="unknown model family 'sd3'; known: ltxv, ltx2"):
        frontend.steps_for("sd3")


def test_nodes_dispatch_on_the_loaders_family(headless, tiny_models):
    """The loader's model and VAE say their family; sampler, Image To Video and VAE Decode run its steps, so a
    family without steps stops there with the message naming it."""
    import dataclasses

    from videodit.nodes.latents import VideoDiTEmptyLatentVideo, VideoDiTImageToVideo, VideoDiTVAEDecode
    from videodit.nodes.loaders import VideoDiTModelLoader
    from videodit.nodes.sampler import VideoDiTSampler

    model, vae, _ = VideoDiTModelLoader().load(tiny_models.checkpoint, "fp32", "gpu")
    assert model.family == vae.family == "ltxv" and model.geometry == vae.geometry == LTXV_GEOMETRY
    (latent,) = VideoDiTEmptyLatentVideo().generate(64, 64, 9, 25.0, 1)
    model2, vae2 = dataclasses.replace(model, family="sd3"), dataclasses.replace(vae, family="sd3")
    text = TextCondition(torch.zeros(1, 4, 256), torch.ones(1, 4))
    with pytest.raises(ValueError, match="unknown model family 'sd3'"):
        VideoDiTSampler().sample(model2, text, text, latent, 0, 1, 1.0, 0.0, "1", 0.7, "auto", 1.0, 0.0)
    with pytest.raises(ValueError, match="unknown model family 'sd3'"):
        VideoDiTImageToVideo().apply(vae2, latent, torch.rand(1, 64, 64, 3), 0, 1.0, 0)
    with pytest.raises(ValueError, match="unknown model family 'sd3'"):
        VideoDiTVAEDecode().decode(vae2, latent, 0.05, 0.025, "off")


# ------------------------------------------------------------------------------------------------- built-in model


def test_builtin_weights_are_found_from_any_folder(tmp_path):
    code = (
        "import os; from videodit.model.builtin import builtin_weights; w = builtin_weights(); "
        "print(os.path.isabs(w.checkpoint) and os.path.isfile(w.checkpoint) and os.path.isfile(w.text_encoder))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr


def test_damaged_builtin_file_says_restore_with_git(tmp_path, monkeypatch, headless):
    from videodit.model.checkpoint import CheckpointError
    from videodit.model.pipeline import load_pipeline
    from videodit.nodes import loaders

    real = builtin.builtin_weights()
    shutil.copy(real.text_encoder, tmp_path / builtin.TEXT_ENCODER_FILE)
    with open(real.checkpoint, "rb") as f:
        (tmp_path / builtin.CHECKPOINT_FILE).write_bytes(f.read()[:100_000])  # truncated
    monkeypatch.setattr(builtin, "WEIGHTS_DIR", str(tmp_path))
    damaged = builtin.builtin_weights()
    with pytest.raises(CheckpointError) as err:
        load_pipeline(damaged.checkpoint, damaged.text_encoder, dtype=torch.float32)
    message = str(err.value)
    assert "git checkout -- weights/" in message and "re-download" not in message and damaged.checkpoint in message
    monkeypatch.setitem(loaders.BUILTIN_FILES, loaders.BUILTIN_MODEL, damaged.checkpoint)
    monkeypatch.setattr(loaders, "_CACHE", {})
    with pytest.raises(CheckpointError, match="restore it with `git checkout -- weights/`"):
        loaders.VideoDiTModelLoader().load(loaders.BUILTIN_MODEL, "fp32", "gpu")
    os.remove(damaged.checkpoint)
    with pytest.raises(FileNotFoundError, match="is missing: .* does not exist; this file ships with the pack"):
        loaders.VideoDiTModelLoader().load(loaders.BUILTIN_MODEL, "fp32", "gpu")


@pytest.mark.parametrize(
    "prompt,missing",
    [
        ("a purple square sliding to the left", ["colour"]),
        ("the cyan blob", ["shape", "motion"]),
        ("a red circle moving to the right on a black background", []),
        ("Green box, falls, on white", []),
        ("", ["colour", "shape", "motion"]),
    ],
)
def test_builtin_vocabulary_check(prompt, missing):
    assert builtin.missing_kinds(prompt) == missing
    assert (builtin.check_prompt(prompt) is None) == (not missing)


def test_every_training_caption_is_in_the_vocabulary():
    import numpy as np
    from videodit.tiny import data

    rng = np.random.default_rng(0)
    for color, shape, motion in data.combos("all"):
        for background in data.BACKGROUNDS:
            spec = data.ClipSpec(color, shape, motion, background, 12.0, 64.0, 64.0, 2.0)
            for _ in range(5):
                caption = data.caption(spec, rng)
                assert builtin.check_prompt(caption) is None, caption


def test_vocabulary_warning_is_logged_once_per_prompt(caplog, monkeypatch):
    monkeypatch.setattr(builtin, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="videodit"):
        builtin.warn_prompt("the cyan blob")
        builtin.warn_prompt("the cyan blob")
        builtin.warn_prompt("a red circle moving up")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "knows no shape / motion word" in messages[0] and "circle, square" in messages[0]


def test_text_encode_tooltip_lists_the_vocabulary():
    from videodit.nodes.common import input_spec
    from videodit.nodes.loaders import VideoDiTTextEncode
    from videodit.tiny import data

    tooltip = input_spec(VideoDiTTextEncode)["text"][1]["tooltip"]
    assert all(word in tooltip for word in [*data.COLORS, *data.SHAPES, *data.BACKGROUNDS, "left", "still"])
