"""The tiny LTX-2 audio+video model (tiny/av_config.py, tiny/train_av.py): the configs within the size budget and
the clip geometry, the byte-level Gemma tokenizer, training-time text contexts equal to the pipeline's text encoder,
and the smoke training's files through the real loaders (load_ltx2_checkpoint, load_gemma, load_pipeline) to frames
and a waveform of the right shapes and durations. CPU, fp32."""

import json
import os
import time

import numpy as np
import pytest
import torch
from videodit.tiny import av_config, av_flow, data, train_av

BUDGET_BYTES = 25e6  # the whole model (transformer, connectors, VAEs, vocoder, Gemma) stored as fp16
TOL = 1e-4


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small matmuls: one intra-op thread is faster on a loaded CPU (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.double() - b.double()).abs().max().item()


def test_configs_fit_the_size_budget_and_the_clip_geometry():
    from videodit.model.geometry import VideoGeometry

    parts = av_config.build(0)
    counts = av_config.parameter_counts(parts)
    total = sum(counts.values())
    print(f"parameters: {counts}, total {total / 1e6:.2f} M = {2 * total / 1e6:.1f} MB in fp16")
    assert 2 * total <= BUDGET_BYTES, f"{2 * total / 1e6:.1f} MB in fp16 > {BUDGET_BYTES / 1e6:.0f} MB: {counts}"
    t = parts["transformer"].config
    assert (t.num_layers, t.num_attention_heads, t.attention_head_dim, t.audio_attention_head_dim) == (6, 4, 32, 16)
    assert t.apply_gated_attention and t.cross_attention_adaln  # the LTX-2.3 flags
    geometry = VideoGeometry.of(parts["video_vae"].config, t)
    assert geometry.latent_shape(av_config.SIZE, av_config.SIZE, av_config.FRAMES) == (4, 4, 4)  # 64 video tokens
    spec = data.sample_specs(1, 0)[0]
    with torch.no_grad():
        latent = parts["audio_vae"].encode_waveform(data.render_soundtrack(spec)[None], data.SAMPLE_RATE)
        mel = parts["audio_vae"].decode(latent[:, :, :25])
        wave = parts["vocoder"](mel)
    # 1 s of 16 kHz stereo: 101 mel frames -> 26 latents (the pipeline keeps round(25 / 25 * 25) = 25) of 4 x 16
    assert latent.shape == (1, 4, 26, 16) and 4 * 16 == t.audio_in_channels
    assert mel.shape == (1, 2, 97, 64) and wave.shape == (1, 2, 97 * 160)  # vocoder x8 x5 x4 at 16 kHz
    assert parts["vocoder"].output_sample_rate == data.SAMPLE_RATE


def test_byte_tokenizer_round_trips_and_loads_from_the_gemma_file(tmp_path):
    from videodit.model.ltx2.gemma import load_gemma
    from videodit.model.ltx2.text_encoder import prompt_rule, tokenize

    tokenizer = av_config.byte_tokenizer()
    texts = ["a red circle moving up on a black background", "", "ünïcödé ☃ 日本\t\n", "x" * 200, "\x00\x7f~ !"]
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        want = [av_config.BOS_ID] + [b + av_config.BYTE_OFFSET for b in text.encode()]
        assert ids == want, f"{text!r}: {ids[:12]} != {want[:12]}"
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert len(tokenizer) == 260 <= av_config.VOCAB
    path = tmp_path / "gemma.safetensors"
    av_config.save_gemma(str(path), av_config.build(0, ("gemma",))["gemma"])
    gemma = load_gemma(path, torch.float32)  # the tokenizer comes from inside the file
    assert gemma.family == "gemma3" and gemma.num_states == av_config.GEMMA_STATES
    ids, mask = tokenize(gemma.tokenizer, texts[:3], prompt_rule("2.3"))
    assert ids.shape == (3, 1024) and int(mask[1].sum()) == 1  # "" is BOS alone, left-padded
    first = ids[0][mask[0].bool()].tolist()
    assert first == tokenizer(texts[0])["input_ids"]


def test_training_text_contexts_equal_the_pipeline_text_encoder(tmp_path):
    """av_flow.text_contexts (Gemma on 128 right-padded tokens, states zero-padded to 1024) = LTX2TextEncoder
    (1024 left-padded tokens through the file's Gemma), random weights."""
    from videodit.model.ltx2.gemma import load_gemma
    from videodit.model.ltx2.text_encoder import LTX2TextEncoder, prompt_rule

    parts = av_config.build(3, ("gemma", "text_path"))
    with torch.no_grad():
        for p in parts["gemma"].parameters():  # larger weights than the init: states that differ per token
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path / "gemma.safetensors"
    av_config.save_gemma(str(path), parts["gemma"])
    encoder = LTX2TextEncoder(load_gemma(path, torch.float32), parts["text_path"].eval(), prompt_rule("2.3"))
    prompts = ["a red circle moving up on a black background", "", "green box, going left, with a low hum"]
    expected = encoder.encode_prompts(prompts)
    ids, mask = av_flow.caption_tokens(prompts)
    with torch.no_grad():
        video, audio, _ = av_flow.text_contexts(parts["gemma"].eval(), parts["text_path"], ids, mask)
    diffs = {"video": max_diff(video, expected.video), "audio": max_diff(audio, expected.audio)}
    print(
        f"training text contexts vs LTX2TextEncoder: max abs diffs {diffs} (values up to {expected.video.abs().max():.2f})"
    )
    assert video.shape == (3, 1024, av_config.VIDEO_WIDTH) and audio.shape == (3, 1024, av_config.AUDIO_WIDTH)
    assert max(diffs.values()) <= TOL, diffs


def test_sigmas_follow_the_shifted_logit_normal():
    generator = torch.Generator().manual_seed(0)
    s = av_flow.sample_sigmas(20000, generator, mu=2.05, uniform_share=0.0)
    # median of sigmoid(N(0, 1)) is 0.5, shifted: e^mu / (e^mu + 1)
    expected = np.exp(2.05) / (np.exp(2.05) + 1.0)
    assert abs(s.median().item() - expected) < 0.01, (s.median().item(), expected)
    assert 0 < s.min() and s.max() <= 1.0


def test_bank_draws_groups_of_one_combination():
    bank = av_flow.Bank.__new__(av_flow.Bank)  # only the combination index (no VAEs needed)
    combos = torch.tensor([5, 7, 5, 9, 7, 5, 9, 9, 9, 1])
    bank.set_combos(combos)
    idx = bank.draw(400, 4, torch.Generator().manual_seed(0))
    groups = combos[idx].view(400, 4)
    assert bool((groups == groups[:, :1]).all()), "a group mixes combinations"
    # every clip is reachable, and a group's combination is that of a uniformly drawn clip (9: 4 of 10 clips)
    assert set(idx.tolist()) == set(range(10))
    share = (groups[:, 0] == 9).float().mean().item()
    assert abs(share - 0.4) < 0.08, share


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-av-smoke")
    t0 = time.time()
    train_av.main(["--smoke", "--max-steps", "1", "--out", str(out)])
    print(f"smoke training (1 step per stage) took {time.time() - t0:.1f} s")
    return out


def test_smoke_training_writes_files_that_load_through_the_real_loaders(smoke):
    from videodit.model.checkpoint import detect_family, load_ltx2_checkpoint
    from videodit.model.checkpoint.files import SafetensorsFile
    from videodit.model.ltx2.gemma import load_gemma

    checkpoint, gemma_path = smoke / train_av.CHECKPOINT_FILE, smoke / train_av.GEMMA_FILE
    sizes = {p.name: os.path.getsize(p) for p in (checkpoint, gemma_path)}
    print(f"files: {sizes}")
    assert sum(sizes.values()) <= BUDGET_BYTES, sizes
    assert detect_family(SafetensorsFile(str(checkpoint))).family == "ltx2"
    loaded = load_ltx2_checkpoint(str(checkpoint), torch.float32)
    assert loaded.version == "2.3" and loaded.transformer_config == av_config.transformer_config()
    assert loaded.text_path is not None and loaded.text_path_config == av_config.text_path_config()
    assert loaded.video_vae.config.latent_channels == av_config.VIDEO_LATENT_CHANNELS
    assert loaded.audio_vae.config == av_config.audio_vae_config()
    assert loaded.vocoder.output_sample_rate == av_config.SAMPLE_RATE
    gemma = load_gemma(str(gemma_path), torch.float32)
    assert gemma.family == "gemma3" and gemma.hidden_size == av_config.GEMMA_WIDTH
    summary = json.loads((smoke / "summary-av-all.json").read_text())
    assert {"video", "audio", "dit"} <= set(summary), sorted(summary)


def test_smoke_files_generate_frames_and_sound_of_the_right_durations(smoke):
    from videodit.model.ltx2.pipeline import LTX2Pipeline
    from videodit.model.pipeline import load_pipeline
    from videodit.tiny import evaluate_av

    pipe = load_pipeline(smoke / train_av.CHECKPOINT_FILE, smoke / train_av.GEMMA_FILE, dtype=torch.float32)
    assert isinstance(pipe, LTX2Pipeline) and pipe.sample_rate == data.SAMPLE_RATE
    guidance = evaluate_av.guidance(3.0, 3.0)
    frames, size, fps = 9, 64, av_config.FRAME_RATE
    result = pipe.generate("a red ball moving up", "", size, size, frames, fps, steps=2, guidance=guidance, seed=1)
    samples = round(frames / fps * data.SAMPLE_RATE)  # 0.36 s: 5760 samples
    assert result.frames.shape == (frames, size, size, 3) and 0 <= result.frames.min() <= result.frames.max() <= 1
    assert result.waveform.shape == (2, samples) and result.sample_rate == data.SAMPLE_RATE
    assert result.audio_latent.shape == (1, 4, round(frames / fps * 25), 16)
    assert bool(torch.isfinite(result.waveform).all())
    spec = data.make_spec("red", "circle", "right", "black", np.random.default_rng(0), frames, size)
    given = data.render_soundtracks([spec], frames, fps, data.SAMPLE_RATE, size)[0]
    a2v = pipe.generate("", "", size, size, frames, fps, steps=2, guidance=guidance, seed=1, audio=(given, 16000))
    assert a2v.frames.shape == (frames, size, size, 3)
    assert max_diff(a2v.waveform, given) == 0.0  # audio-to-video returns the given track


def test_dit_stage_continues_from_the_smoke_files(smoke):
    """--init-checkpoint / --init-gemma: the fresh transformer, connectors and Gemma take the files' weights."""
    from videodit.model.checkpoint import load_ltx2_checkpoint
    from videodit.model.ltx2.gemma import load_gemma

    parts = av_config.build(5, ("transformer", "text_path", "gemma"))
    checkpoint, gemma = str(smoke / train_av.CHECKPOINT_FILE), str(smoke / train_av.GEMMA_FILE)
    train_av.load_init(parts, checkpoint, gemma)
    loaded = load_ltx2_checkpoint(checkpoint, torch.float32)
    references = {
        "transformer": loaded.transformer,
        "text_path": loaded.text_path,
        "gemma": load_gemma(gemma, torch.float32).model,
    }
    for name, reference in references.items():
        ours, theirs = parts[name].state_dict(), reference.state_dict()
        assert ours.keys() == theirs.keys(), name
        diff = max(max_diff(ours[k], theirs[k]) for k in ours)
        assert diff == 0.0, f"{name}: max abs diff {diff} after load_init"


def test_evaluation_table_runs_through_the_real_pipeline(smoke, tmp_path):
    """evaluate_av on the smoke files: every run (T2AV, A2V with and without prompt, I2AV) gives its row."""
    from videodit.tiny import evaluate_av

    out = tmp_path / "eval.json"
    args = ["--checkpoint", str(smoke / train_av.CHECKPOINT_FILE), "--text-encoder", str(smoke / train_av.GEMMA_FILE)]
    rows = evaluate_av.main(
        args + ["--seeds", "1", "--train-prompts", "0", "--held-out", "1", "--steps", "1"] + ["--json", str(out)]
    )
    assert list(rows) == [
        "T2AV held-out combinations",
        "A2V held-out, prompt + given sound",
        "A2V held-out, empty prompt + given sound",
        "I2AV held-out, first frame given",
    ]
    assert json.loads(out.read_text()).keys() == rows.keys()
    for name, row in rows.items():
        assert row["count"] == 1 and 0.0 <= row["color"] <= 1.0 and 0.0 <= row["note"] <= 1.0, (name, row)
    # A2V returns the given (rendered) soundtrack, which the judge reads right
    assert rows["A2V held-out, empty prompt + given sound"]["note"] == 1.0
    assert np.isfinite(rows["I2AV held-out, first frame given"]["psnr_mean"])


def test_dit_stage_falls_back_to_eager_when_compiling_fails(smoke, tmp_path, monkeypatch, capsys):
    """A torch.compile failure at the first step (no Triton, an unsupported op) is logged and training goes on
    eager from the same random draws."""

    def broken_compile(module, **kwargs):
        def fail(*args, **kwargs):
            raise RuntimeError("no compiler here")

        return fail

    monkeypatch.setattr(train_av.torch, "compile", broken_compile)
    stage_a = ["--video-vae", str(smoke / train_av.VIDEO_FILE), "--audio", str(smoke / train_av.AUDIO_FILE)]
    train_av.main(["--smoke", "--max-steps", "1", "--stage", "dit", "--compile", "--out", str(tmp_path)] + stage_a)
    printed = capsys.readouterr().out
    assert "torch.compile failed (RuntimeError: no compiler here); training eager" in printed
    assert (tmp_path / train_av.CHECKPOINT_FILE).is_file() and (tmp_path / train_av.GEMMA_FILE).is_file()
