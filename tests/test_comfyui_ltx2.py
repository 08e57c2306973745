"""LTX-2 with sound inside a real ComfyUI server (CPU, tiny random LTX-2 2.3 single file and tiny Gemma 3 written
into the server's checkpoints/ and text_encoders/ folders), API prompts queued over POST /prompt:

- text to audio+video: Model Loader -> Text Encode x2 -> Empty Latent Video (vae) -> Sampler -> VAE Decode + Audio
  Decode -> Save Video: one MP4 with one video and one audio stream, both as long as the video;
- core LoadAudio (a stereo sine WAV in the input folder) -> Audio To Video -> Sampler -> ... -> Save Video: the MP4's
  sound is the given tone, cut to the video's duration;
- our AUDIO (Audio Decode) -> core SaveAudio: the FLAC it writes has the vocoder's rate and the video's duration;
- bad inputs that only show at execution (a silent WAV, a two-stage size not a multiple of 64): an execution error
  naming the input in /history, and the server runs the next prompt.

The server fixture and helpers are those of tests/test_comfyui_server.py (skipped, with the reason printed, without
COMFYUI_DIR). Core LoadAudio / SaveAudio live in comfy_extras/nodes_audio.py, which imports torchaudio: without it
ComfyUI does not register them, and the tests that use them skip saying so.

    COMFYUI_DIR=/work/comfyui COMFYUI_PYTHON=/work/venv-comfy/bin/python python -m pytest -q tests/test_comfyui_ltx2.py
"""

import os
import uuid
import wave

import numpy as np
import pytest
import torch
from test_audio_io import decoded_audio, peak_frequency, rms, streams
from test_comfyui_server import history, run, server  # noqa: F401  (server: the module's ComfyUI fixture)
from videodit.nodes.video_io import read_video

FRAMES, FPS = 9, 9.0  # 1 s of video: 1 Hz FFT bins for the tone check
SIZE = dict(width=64, height=64, frames=FRAMES, frame_rate=FPS)
STEPS = 2
VOCODER_RATE = 24000  # the tiny vocoder of test_ltx2_pipeline.tiny_vocoder: x240 on 100 mel frames per second
TONE_HZ, TONE_RATE, TONE_SECONDS, TONE_GAINS = 440.0, 44100, 1.5, (0.5, 0.25)
AAC_FRAME = 1024  # samples: the AAC encoder's delay / padding granularity
CHECKPOINT = "ltx-2.3-tiny-comfyui-test.safetensors"
GEMMA = "gemma_3_tiny-comfyui-test.safetensors"


@pytest.fixture(scope="module")
def ltx2_files(tiny_models):
    """The tiny LTX-2 2.3 single file (29 blocks, the default STG block 28 exists) and the tiny Gemma 3 with its
    sidecar tokenizer, written where the server looks (tiny_models.models_dir is its checkpoints / text_encoders)."""
    from test_ltx2_nodes import tiny_parts
    from test_ltx2_pipeline import sections_of
    from test_ltx2_text import _comfy_file, _gemma3, _tokenizer
    from videodit.model.checkpoint import save_ltx2_checkpoint

    root = tiny_models.models_dir
    torch.manual_seed(0)
    parts = tiny_parts()
    save_ltx2_checkpoint(os.path.join(root, "checkpoints", CHECKPOINT), parts, sections_of(parts), "2.3.0")
    gemma = os.path.join(root, "text_encoders", GEMMA)
    _comfy_file(gemma, _gemma3(seed=1))
    _tokenizer(add_bos=True).save_pretrained(gemma + ".tokenizer")
    return CHECKPOINT, GEMMA


@pytest.fixture(scope="module")
def ltx2_server(ltx2_files, server):  # noqa: F811
    return server


def write_wav(path, seconds=TONE_SECONDS, rate=TONE_RATE, freq=TONE_HZ, gains=TONE_GAINS):
    """A 16-bit stereo WAV: a sine tone at `freq` with per-channel gains (zeros when all gains are 0)."""
    t = np.arange(round(seconds * rate)) / rate
    channels = [g * np.sin(2 * np.pi * freq * t) for g in gains]
    pcm = np.round(np.stack(channels, axis=1) * 32767).astype("<i2")
    with wave.open(path, "wb") as f:
        f.setnchannels(len(gains))
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())


def core_audio_nodes(srv, *names):
    status, info = srv.request("/object_info")
    assert status == 200
    missing = [n for n in names if n not in info]
    if missing:
        reason = (
            f"core {', '.join(missing)} not registered by this ComfyUI (comfy_extras/nodes_audio.py imports "
            "torchaudio: install it in ComfyUI's environment)"
        )
        print(f"SKIP: {reason}")
        pytest.skip(reason)


def graph(files, prefix, size=None, steps=STEPS, seed=0):
    """Loader -> encode x2 -> Empty Latent Video (vae) -> Sampler -> VAE Decode + Audio Decode (nodes 1-9);
    node 8 Save Video gets the decoded frames and sound."""
    checkpoint, gemma = files
    loader = dict(checkpoint=checkpoint, dtype="auto", placement="gpu", attention="auto", compile=False, fp8=False)
    loader |= dict(vae_file="none", audio_vae_file="none", memory="auto")
    sampler = dict(seed=seed, steps=steps, cfg=3.0, stg=1.0, stg_blocks="28", rescale=0.7, schedule="auto")
    sampler |= dict(denoise=1.0, frame_rate=0.0, image_noise=0.15, guidance="default", audio_cfg=7.0)
    sampler |= dict(modality_scale=3.0, model=["1", 0], positive=["3", 0], negative=["4", 0], latent=["5", 0])
    return {
        "1": {"class_type": "VideoDiTModelLoader", "inputs": loader},
        "2": {
            "class_type": "VideoDiTTextEncoderLoader",
            "inputs": {"text_encoder": gemma, "dtype": "auto", "device": "default"},
        },
        "3": {"class_type": "VideoDiTTextEncode", "inputs": {"text": "a red ball jumps", "text_encoder": ["2", 0]}},
        "4": {"class_type": "VideoDiTTextEncode", "inputs": {"text": "blurry", "text_encoder": ["2", 0]}},
        "5": {
            "class_type": "VideoDiTEmptyLatentVideo",
            "inputs": dict(size or SIZE, batch_size=1, two_stage=False, vae=["1", 1]),
        },
        "6": {"class_type": "VideoDiTSampler", "inputs": sampler},
        "7": {
            "class_type": "VideoDiTVAEDecode",
            "inputs": {
                "decode_timestep": 0.05,
                "decode_noise_scale": 0.025,
                "tiling": "off",
                "vae": ["1", 1],
                "latent": ["6", 0],
            },
        },
        "9": {"class_type": "VideoDiTAudioDecode", "inputs": {"audio_vae": ["1", 2], "latent": ["6", 0]}},
        "8": {
            "class_type": "VideoDiTSaveVideo",
            "inputs": {
                "fps": FPS,
                "format": "mp4 (h264)",
                "crf": 19,
                "filename_prefix": prefix,
                "images": ["7", 0],
                "audio": ["9", 0],
            },
        },
    }


def finished(srv, prompt):
    prompt_id, messages, _ = run(srv, prompt)
    errors = [m["data"] for m in messages if m["type"] == "execution_error"]
    assert not errors, f"{errors}\nlog:\n{srv.log()[-3000:]}"
    entry = history(srv, prompt_id)
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry["outputs"]


def saved(srv, item):
    assert item["type"] == "output", item
    return os.path.join(srv.output_dir, item["subfolder"], item["filename"])


def check_av_file(path):
    """One video stream of FRAMES frames at FPS and one audio stream as long (AAC: within one frame of samples);
    returns the decoded audio (samples, channels) and its rate."""
    kinds = [line.split(": ")[1] for line in streams(path)]
    assert kinds.count("Video") == 1 and kinds.count("Audio") == 1, kinds
    frames, fps = read_video(path)
    assert frames.shape == (FRAMES, 64, 64, 3) and fps == FPS
    samples, rate = decoded_audio(path)
    expected = round(FRAMES / FPS * rate)
    assert abs(samples.shape[0] - expected) <= AAC_FRAME, (
        f"audio {samples.shape[0]} samples at {rate} Hz, video {expected}"
    )
    return samples, rate


def test_text_to_audio_video_saves_one_mp4_with_both_streams(ltx2_server, ltx2_files):
    outputs = finished(ltx2_server, graph(ltx2_files, "ltx2/t2av"))
    (item,) = outputs["8"]["images"]
    samples, rate = check_av_file(saved(ltx2_server, item))
    assert rate == VOCODER_RATE and samples.shape[1] == 2
    assert rms(samples) > 1e-4, "decoded sound is silent: the stream check would mean nothing"


def test_core_load_audio_feeds_audio_to_video(ltx2_server, ltx2_files):
    core_audio_nodes(ltx2_server, "LoadAudio")
    name = f"tone-{uuid.uuid4().hex[:8]}.wav"
    write_wav(os.path.join(ltx2_server.input_dir, name))
    prompt = graph(ltx2_files, "ltx2/a2v")
    prompt["20"] = {"class_type": "LoadAudio", "inputs": {"audio": name}}
    prompt["21"] = {
        "class_type": "VideoDiTAudioToVideo",
        "inputs": {"vae": ["1", 1], "latent": ["5", 0], "audio": ["20", 0]},
    }
    prompt["6"]["inputs"]["latent"] = ["21", 0]
    prompt["8"]["inputs"]["audio"] = ["21", 1]
    del prompt["9"]
    outputs = finished(ltx2_server, prompt)
    samples, rate = check_av_file(saved(ltx2_server, outputs["8"]["images"][0]))
    assert rate == TONE_RATE and samples.shape[1] == 2
    for channel in range(2):
        found = peak_frequency(samples[:, channel], rate)
        assert abs(found - TONE_HZ) <= 2.0, f"channel {channel}: FFT peak at {found:.2f} Hz, given {TONE_HZ} Hz"
    ratio = rms(samples[:, 1]) / rms(samples[:, 0])
    assert abs(ratio - TONE_GAINS[1] / TONE_GAINS[0]) <= 0.03, f"R/L {ratio:.4f}, given 0.5"
    assert "trimmed the last" in ltx2_server.log(), "Audio To Video must say it cut the 1.5 s track to 1 s"


def test_our_audio_feeds_core_save_audio(ltx2_server, ltx2_files):
    core_audio_nodes(ltx2_server, "SaveAudio")
    prompt = graph(ltx2_files, "ltx2/with-flac")
    prompt["22"] = {"class_type": "SaveAudio", "inputs": {"audio": ["9", 0], "filename_prefix": "ltx2/core_audio"}}
    outputs = finished(ltx2_server, prompt)
    (item,) = outputs["22"]["audio"]
    path = saved(ltx2_server, item)
    assert path.endswith(".flac")
    samples, rate = decoded_audio(path)
    # FLAC is lossless: exactly the Audio Decode output, FRAMES / FPS s at the vocoder's rate
    assert rate == VOCODER_RATE and samples.shape == (round(FRAMES / FPS * VOCODER_RATE), 2), (rate, samples.shape)
    assert rms(samples) > 1e-4, "decoded sound is silent"


def good_prompt_runs(srv, files):
    """A cheap prompt that must still run: Empty Latent Video (vae) -> Audio Decode -> Save Video of decoded frames
    (a new prefix, so nothing is served from the cache)."""
    prompt = graph(files, f"ltx2/after-error-{uuid.uuid4().hex[:8]}")
    del prompt["6"], prompt["3"], prompt["4"], prompt["2"]
    prompt["7"]["inputs"]["latent"] = ["5", 0]
    prompt["9"]["inputs"]["latent"] = ["5", 0]
    outputs = finished(srv, prompt)
    check_av_file(saved(srv, outputs["8"]["images"][0]))


@pytest.mark.parametrize("case", ["silent wav", "two_stage size"])
def test_bad_input_is_an_execution_error_naming_it_and_the_server_lives(ltx2_server, ltx2_files, case):
    prompt = graph(ltx2_files, "ltx2/bad")
    if case == "silent wav":
        core_audio_nodes(ltx2_server, "LoadAudio")
        name = f"silence-{uuid.uuid4().hex[:8]}.wav"
        write_wav(os.path.join(ltx2_server.input_dir, name), seconds=0.5, gains=(0.0, 0.0))
        prompt["20"] = {"class_type": "LoadAudio", "inputs": {"audio": name}}
        prompt["21"] = {
            "class_type": "VideoDiTAudioToVideo",
            "inputs": {"vae": ["1", 1], "latent": ["5", 0], "audio": ["20", 0]},
        }
        prompt["6"]["inputs"]["latent"] = ["21", 0]
        node, expected = "21", ["audio", "the track is silent"]
    else:
        prompt["5"]["inputs"].update(width=96, two_stage=True)  # a multiple of 32 (passes /prompt), not of 64
        node, expected = "5", ["two_stage", "width must be a multiple of 64"]
    prompt_id, messages, _ = run(ltx2_server, prompt)
    entry = history(ltx2_server, prompt_id)
    assert entry["status"]["status_str"] == "error", entry["status"]
    errors = [data for kind, data in entry["status"]["messages"] if kind == "execution_error"]
    assert len(errors) == 1, entry["status"]["messages"]
    message = errors[0]["exception_message"]
    assert errors[0]["node_id"] == node and all(e in message for e in expected), errors[0]
    assert ltx2_server.alive()
    good_prompt_runs(ltx2_server, ltx2_files)
