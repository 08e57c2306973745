"""The built-in tiny model: synthetic data, tracker, committed weights through the real loaders and pipeline,
generation quality on a fixed prompt set, I2V first-frame fidelity, and the training script's smoke run."""

import json
import os

import numpy as np
import pytest
import torch
from videodit.tiny import configs, data, evaluate, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT = os.path.join(ROOT, "weights", "videodit-tiny.safetensors")
TEXT_ENCODER = os.path.join(ROOT, "weights", "t5-tiny.safetensors")
EVAL_STEPS = 10


# ---------------------------------------------------------------------------------------------------- data


def test_specs_are_deterministic_and_training_split_excludes_held_out():
    a, b = data.sample_specs(50, seed=3), data.sample_specs(50, seed=3)
    assert a == b
    assert a != data.sample_specs(50, seed=4)
    held = set(data.HELD_OUT)
    train_specs = data.sample_specs(2000, seed=0, split="train")
    assert not any((s.color, s.shape, s.motion) in held for s in train_specs)
    assert {s.color for s in train_specs} == set(data.COLORS)
    assert {(s.shape, s.motion, s.background) for s in train_specs} == {
        (sh, m, bg) for sh in data.SHAPES for m in data.MOTIONS for bg in data.BACKGROUNDS
    }


def test_shapes_stay_inside_the_frame_and_move_as_specified():
    specs = data.sample_specs(40, seed=1, split="all")
    video = data.render(specs)
    assert video.shape == (40, data.FRAMES, data.SIZE, data.SIZE, 3) and video.dtype == np.float32
    for spec, clip in zip(specs, video):
        bg = data.BACKGROUNDS[spec.background]
        assert np.all(clip[:, 0] == bg) and np.all(clip[:, -1] == bg)  # borders untouched: shape always inside
        assert np.all(clip[:, :, 0] == bg) and np.all(clip[:, :, -1] == bg)
        x_end, y_end = spec.center(data.FRAMES - 1)
        dx, dy = data.MOTION_VECTORS[spec.motion]
        assert (x_end - spec.x0) * dx >= 0 and (y_end - spec.y0) * dy >= 0


def test_numpy_and_torch_renderers_agree():
    specs = data.sample_specs(3, seed=2)
    video_np = data.render(specs, frames=9, size=64)
    video_t, coverage = data.render_torch(specs, frames=9, size=64)
    assert video_t.shape == (3, 3, 9, 64, 64) and coverage.shape == (3, 1, 9, 64, 64)
    np.testing.assert_allclose(((video_t + 1) / 2).permute(0, 2, 3, 4, 1).numpy(), video_np, atol=1e-5)


def test_captions_name_colour_shape_and_motion():
    rng = np.random.default_rng(0)
    words = {
        "circle": ("circle", "disc", "disk", "ball", "round dot"),
        "square": ("square", "box", "block"),
        "triangle": ("triangle", "wedge"),
    }
    for spec in data.sample_specs(200, seed=5, split="all"):
        text = data.caption(spec, rng)
        assert spec.color in text
        assert any(w in text for w in words[spec.shape])
        tokens = text.replace(",", "").split()
        for article, following in zip(tokens, tokens[1:]):  # "an orange ...", "a circle, orange, ..."
            if article in ("a", "an"):
                assert article == ("an" if following[0] in "aeiou" else "a"), text
    phrasings = {data.caption(data.sample_specs(1, seed=6)[0], rng) for _ in range(50)}
    assert len(phrasings) > 10
    assert (
        data.canonical_caption("red", "circle", "right", "black")
        == "a red circle moving to the right on a black background"
    )


def test_byte_tokens_equal_byt5_tokenizer():
    from transformers import ByT5Tokenizer

    prompts = ["a red circle moving to the right on a black background", "", "grün ✓ square"]
    ids, mask = configs.byte_tokens(prompts)
    reference = ByT5Tokenizer()(prompts, padding=True, return_tensors="pt")
    assert torch.equal(ids, reference["input_ids"]) and torch.equal(mask, reference["attention_mask"])


@pytest.mark.parametrize("blur", [1, 5, 7])
def test_tracker_recovers_rendered_clips_even_when_blurred(blur):
    # A 7-pixel box blur rounds corners more than the tiny VAE does: colour, shape and motion must survive it.
    specs = data.sample_specs(30, seed=7, split="all")
    video = torch.from_numpy(data.render(specs))
    blurred = torch.nn.functional.avg_pool2d(
        video.permute(0, 1, 4, 2, 3).flatten(0, 1), blur, 1, blur // 2, count_include_pad=False
    )
    blurred = blurred.unflatten(0, (30, data.FRAMES)).permute(0, 1, 3, 4, 2).numpy()
    cases = [(s.color, s.shape, s.motion, s.background) for s in specs]
    tracks = [evaluate.track(v) for v in blurred]
    assert evaluate.score(tracks, cases)["all"] == 1.0, [
        (c, t.shape, t.fill_ratio, t.asymmetry) for c, t in zip(cases, tracks) if t.shape != c[1]
    ]


def test_tracker_shape_measures_and_empty_video():
    spec = data.make_spec("red", "triangle", "still", "black", np.random.default_rng(0))
    triangle = evaluate.track(data.render([spec])[0])
    assert triangle.shape == "triangle" and triangle.asymmetry == pytest.approx(0.5, abs=0.06)
    square = evaluate.track(data.render([data.ClipSpec("red", "square", "still", "white", 14, 64, 64, 0)])[0])
    assert square.shape == "square" and square.fill_ratio > 0.95 and abs(square.asymmetry) < 0.02
    upside_down = evaluate.track(data.render([spec])[0][:, ::-1])  # apex down: not an upright triangle
    assert upside_down.shape != "triangle"
    empty = evaluate.track(np.zeros((data.FRAMES, data.SIZE, data.SIZE, 3), np.float32))
    assert empty.color is None and empty.motion is None and empty.background == "black"


def test_psnr():
    a = np.zeros((4, 4, 3))
    assert evaluate.psnr(a, a) == float("inf")
    assert evaluate.psnr(a, a + 0.1) == pytest.approx(20.0)


# ---------------------------------------------------------------------------------------------------- weights


@pytest.fixture(scope="module")
def pipeline():
    torch.manual_seed(0)
    return evaluate.load(CHECKPOINT, TEXT_ENCODER)


def test_weight_files_are_small_and_load_through_the_real_loaders():
    from videodit.model.checkpoint import load_checkpoint
    from videodit.model.schedules import timesteps
    from videodit.model.text_encoder import load_text_encoder

    assert os.path.getsize(CHECKPOINT) + os.path.getsize(TEXT_ENCODER) <= 30 * 1024 * 1024
    ckpt = load_checkpoint(CHECKPOINT, dtype=torch.float32)
    assert ckpt.transformer_config == configs.transformer_config()
    assert ckpt.vae_config.spatial_factor == 32 and ckpt.vae_config.temporal_factor == 8
    assert ckpt.vae_config.latent_channels == 128
    assert ckpt.metadata["videodit"]["steps"] >= 1
    ts = timesteps("auto", 4, (4, 4, 4), ckpt.scheduler_config)
    assert ts == pytest.approx([1.0, 6 / 7, 2 / 3, 0.4], abs=1e-6)  # uniform through the 2x shift
    text = load_text_encoder(TEXT_ENCODER, dtype=torch.float32)
    assert type(text.tokenizer).__name__ == "ByT5Tokenizer"
    cond = text.encode(["a red circle moving to the right on a black background"])
    assert cond.embeddings.shape[-1] == ckpt.transformer_config.caption_channels
    assert torch.isfinite(cond.embeddings).all()


def test_latent_statistics_normalize_encoded_clips_to_unit_scale(pipeline):
    video, _ = data.render_torch(data.sample_specs(4, seed=11))
    with torch.no_grad():
        norm = pipeline.vae.normalize(pipeline.vae.encode(video))
    assert 0.7 < norm.std().item() < 1.3 and abs(norm.mean().item()) < 0.2


# ---------------------------------------------------------------------------------------------------- quality

# 24 fixed prompts: every held-out combination on black and white (20) plus 4 training combinations.
QUALITY_CASES = evaluate.eval_cases(held_out_only=True) + [
    ("red", "circle", "right", "black"),
    ("yellow", "triangle", "down", "white"),
    ("cyan", "circle", "up", "black"),
    ("grey", "square", "still", "white"),
]


@pytest.fixture(scope="module")
def t2v_score(pipeline):
    tracks = [
        evaluate.track(
            evaluate.generate(
                pipeline, data.canonical_caption(*case), seed=0, steps=EVAL_STEPS, cfg=evaluate.DEFAULT_CFG
            )
        )
        for case in QUALITY_CASES
    ]
    return evaluate.score(tracks, QUALITY_CASES)


def test_text_to_video_follows_the_prompt(t2v_score):
    # Targets of the issue: >= 90 % colour and direction on >= 24 fixed prompts (20 of them held-out combinations).
    # The committed weights score colour 1.0, direction 1.0, shape 0.96 here (23 of 24); the shape floor is
    # the evaluation target for held-out prompts (90 %) less one prompt of 24.
    print(f"tiny T2V on {t2v_score['count']} prompts: {t2v_score}")
    assert t2v_score["count"] >= 24
    assert t2v_score["color"] >= 0.9 and t2v_score["motion"] >= 0.9, t2v_score
    assert t2v_score["shape"] >= 0.85 and t2v_score["background"] >= 0.95, t2v_score


def test_image_to_video_keeps_the_first_frame(pipeline):
    rng = np.random.default_rng(0)
    cases = [
        ("red", "triangle", "up", "black"),
        ("blue", "circle", "left", "white"),
        ("orange", "square", "right", "white"),
        ("green", "circle", "down", "black"),
    ]
    psnrs = []
    for case in cases:
        image = data.first_frame(data.make_spec(*case, rng))
        video = evaluate.generate(
            pipeline, data.canonical_caption(*case), seed=1, steps=EVAL_STEPS, cfg=evaluate.DEFAULT_CFG, image=image
        )
        assert video.shape == (data.FRAMES, data.SIZE, data.SIZE, 3)
        psnrs.append(evaluate.psnr(video[0], image))
    print(f"tiny I2V first-frame PSNR (dB): {[round(float(p), 2) for p in psnrs]}, mean {np.mean(psnrs):.2f}")
    assert np.mean(psnrs) >= 30.0 and min(psnrs) >= 28.0, psnrs


# ---------------------------------------------------------------------------------------------------- training


def test_smoke_training_writes_files_that_load(tmp_path):
    from videodit.model.checkpoint import load_checkpoint
    from videodit.model.text_encoder import load_text_encoder

    train.main(["--smoke", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary-all.json").read_text())
    losses = [entry["loss"] for entry in summary["dit"]["log"]] + [entry["loss"] for entry in summary["vae"]["log"]]
    assert losses and all(np.isfinite(losses))
    ckpt = load_checkpoint(str(tmp_path / "videodit-tiny.safetensors"), dtype=torch.float32)
    assert ckpt.transformer_config == configs.transformer_config()
    assert ckpt.scheduler_config["sampler"] == "Constant"
    vae = train.load_vae(str(tmp_path / "tiny-vae.safetensors"), torch.device("cpu"))
    assert torch.equal(vae.per_channel_statistics.std(), ckpt.vae.per_channel_statistics.std())
    text = load_text_encoder(str(tmp_path / "t5-tiny.safetensors"), dtype=torch.float32)
    assert text.encode(["a grey square"]).embeddings.shape[-1] == configs.TEXT_WIDTH
