"""Audio: Save Video's soundtrack (AAC in MP4, Opus in WebM) decoded back with the bundled ffmpeg, bad AUDIO inputs,
nothing left behind on failure, model/ltx2/audio_io.fit_audio against resample.py, and the Audio Decode node against
the audio VAE + vocoder called by hand."""

import logging
import math
import os
import re
import subprocess

import numpy as np
import pytest
import torch
from videodit.model.ltx2.audio_io import SILENT_PEAK, fit_audio, fit_length, video_samples
from videodit.model.ltx2.audio_vae import AudioVAE, AudioVAEConfig
from videodit.model.ltx2.resample import resample
from videodit.model.ltx2.vocoder import Vocoder, VocoderConfig, build_vocoder
from videodit.model.preprocess import ffmpeg_exe
from videodit.nodes import NODE_CLASS_MAPPINGS
from videodit.nodes.audio import AudioDecoderModules, VideoDiTAudioDecode, check_audio
from videodit.nodes.common import InputError
from videodit.nodes.save import VideoDiTSaveVideo, publish
from videodit.nodes.video_io import read_metadata, read_video

FPS = 25.0
FRAMES = 50  # 2 s
BALANCE_TOL = 0.03  # |R/L RMS ratio - given| after lossy coding (measured: AAC 192k 1.6e-5, Opus 128k 5.7e-3)


# ------------------------------------------------------------------------------------------------------ helpers


def frames_tensor(frames=FRAMES, size=32):
    torch.manual_seed(0)
    return torch.rand(frames, size, size, 3)


def tone(seconds, rate, freq=440.0, gains=(0.5, 0.25), batch=1):
    t = torch.arange(round(seconds * rate), dtype=torch.float64) / rate
    wave = torch.stack([g * torch.sin(2 * math.pi * freq * t) for g in gains]).float()
    return {"waveform": wave[None].repeat(batch, 1, 1), "sample_rate": rate}


def streams(path):
    """'Video' / 'Audio' stream lines of `ffmpeg -i` (imageio-ffmpeg ships no ffprobe)."""
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", path], capture_output=True, text=True).stderr
    return [line.strip() for line in err.splitlines() if re.match(r"\s*Stream #\d+:\d+", line)]


def decoded_audio(path):
    """The file's audio decoded to float32 (samples, channels) and its rate."""
    (line,) = [s for s in streams(path) if ": Audio:" in s]
    rate = int(re.search(r"(\d+) Hz", line).group(1))
    channels = {"mono": 1, "stereo": 2, "5.1": 6}[re.search(r"Hz, ([^,]+),", line).group(1).split("(")[0]]
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", path, "-map", "0:a", "-f", "f32le", "-"], capture_output=True, check=True
    ).stdout
    return np.frombuffer(raw, "<f4").reshape(-1, channels), rate


def peak_frequency(signal, rate):
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return np.argmax(spectrum) * rate / len(signal)


def rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def saved_path(headless, audio, fmt="mp4 (h264)", prefix="av/clip", frames=FRAMES, **kwargs):
    result = VideoDiTSaveVideo().save(frames_tensor(frames), FPS, fmt, 19, prefix, audio=audio, **kwargs)
    info = result["ui"]["images"][0]
    return os.path.join(headless.output_dir, info["subfolder"], info["filename"])


def all_files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder) for f in files)


# ------------------------------------------------------------------------------------------------------ Save Video


@pytest.mark.parametrize(
    "fmt,rate,gains",
    [
        ("mp4 (h264)", 44100, (0.5, 0.25)),
        ("mp4 (h264)", 16000, (0.4,)),
        ("webm (vp9)", 48000, (0.2, 0.6)),
        ("webm (vp9)", 44100, (0.5,)),
    ],
    ids=["mp4-stereo-44k", "mp4-mono-16k", "webm-stereo-48k", "webm-mono-44k"],
)
def test_video_with_audio_decodes_to_the_same_tone_length_and_balance(headless, fmt, rate, gains):
    prompt, workflow = {"1": {"class_type": "X"}}, {"nodes": [1]}
    path = saved_path(
        headless, tone(FRAMES / FPS, rate, gains=gains), fmt, prompt=prompt, extra_pnginfo={"workflow": workflow}
    )
    lines = streams(path)
    video_lines, audio_lines = [s for s in lines if ": Video:" in s], [s for s in lines if ": Audio:" in s]
    assert len(lines) == 2 and len(video_lines) == 1 and len(audio_lines) == 1, lines
    assert ("aac" if fmt.startswith("mp4") else "opus") in audio_lines[0]
    frames, fps = read_video(path)
    assert frames.shape[0] == FRAMES and fps == FPS
    samples, file_rate = decoded_audio(path)
    assert samples.shape[1] == len(gains), f"channel count changed: {audio_lines[0]}"
    expected = round(FRAMES / FPS * file_rate)
    assert abs(samples.shape[0] - expected) <= 1024, f"audio {samples.shape[0]} samples, video {expected}"
    assert abs(samples.shape[0] / file_rate - FRAMES / FPS) <= 1 / FPS
    middle = samples[file_rate // 4 : -file_rate // 4]  # away from codec start-up and end
    for channel in range(len(gains)):
        found = peak_frequency(middle[:, channel], file_rate)
        assert abs(found - 440.0) <= 2.0, f"channel {channel}: FFT peak at {found:.2f} Hz, given 440 Hz"
    if len(gains) == 2:
        ratio = rms(middle[:, 1]) / rms(middle[:, 0])
        assert abs(ratio - gains[1] / gains[0]) <= BALANCE_TOL, f"R/L {ratio:.4f}, given {gains[1] / gains[0]:.4f}"
    level = rms(middle[:, 0]) * math.sqrt(2)
    assert abs(level - gains[0]) <= 0.03, f"left amplitude {level:.4f}, given {gains[0]}"
    metadata = read_metadata(path)
    assert metadata["prompt"] == '{"1": {"class_type": "X"}}' and metadata["workflow"] == '{"nodes": [1]}'
    if fmt.startswith("mp4"):
        boxes = top_level_boxes(path)
        assert boxes.index("moov") < boxes.index("mdat"), f"faststart lost with audio: {boxes}"


def top_level_boxes(path):
    """The kinds of an MP4's top-level boxes, in file order."""
    with open(path, "rb") as f:
        data = f.read()
    kinds, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        kinds.append(data[offset + 4 : offset + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        if size < 8:
            break
        offset += size
    return kinds


def test_five_one_audio_keeps_its_six_channels(headless):
    gains = (0.5, 0.4, 0.3, 0.2, 0.15, 0.1)
    path = saved_path(headless, tone(FRAMES / FPS, 48000, gains=gains))
    (line,) = [s for s in streams(path) if ": Audio:" in s]
    assert "5.1" in line, line
    samples, rate = decoded_audio(path)
    middle = samples[rate // 4 : -rate // 4]
    for channel in (0, 1, 2, 4, 5):  # channel 3 is the LFE: AAC keeps only low frequencies there
        found = peak_frequency(middle[:, channel], rate)
        assert abs(found - 440.0) <= 2.0, f"channel {channel}: FFT peak at {found:.2f} Hz, given 440 Hz"


@pytest.mark.parametrize(
    "seconds,expected",
    [(3.0, "audio is 3.000 s, the video 2.000 s: trimmed the last 1.000 s"),
     (1.5, "audio is 1.500 s, the video 2.000 s: padded 0.500 s of silence at the end")],
    ids=["trim", "pad"],
)  # fmt: skip
def test_longer_audio_is_trimmed_shorter_padded_and_logged(headless, caplog, seconds, expected):
    rate = 24000
    with caplog.at_level(logging.WARNING, logger="videodit"):
        path = saved_path(headless, tone(seconds, rate))
    assert any(expected in record.getMessage() for record in caplog.records), [r.getMessage() for r in caplog.records]
    samples, file_rate = decoded_audio(path)
    assert file_rate == rate and abs(samples.shape[0] - 2 * rate) <= 1024, samples.shape
    if seconds < 2:
        tail, body = samples[round(1.6 * rate) :, 0], samples[rate // 4 : rate, 0]
        assert rms(tail) < 2e-3 and rms(body) > 0.3, f"padding not silent: tail RMS {rms(tail):.2g}"


def test_fitting_audio_is_not_logged(headless, caplog):
    with caplog.at_level(logging.WARNING, logger="videodit"):
        saved_path(headless, tone(2.0, 16000))
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def test_batch_of_tracks_saves_the_first_as_comfyui_does(headless, caplog):
    audio = tone(2.0, 16000, gains=(0.5,), batch=2)
    audio["waveform"][1] = tone(2.0, 16000, freq=1000.0, gains=(0.5,))["waveform"][0]
    with caplog.at_level(logging.WARNING, logger="videodit"):
        path = saved_path(headless, audio)
    assert any("batch of 2 tracks; the video gets the first" in r.getMessage() for r in caplog.records)
    samples, rate = decoded_audio(path)
    found = peak_frequency(samples[4000:-4000, 0], rate)
    assert abs(found - 440.0) <= 2.0, f"FFT peak {found:.1f} Hz: not the first track (440 Hz)"


def waveform_audio(waveform, rate=16000):
    return {"waveform": waveform, "sample_rate": rate}


BAD_AUDIO = {
    "not a dict": (torch.zeros(1, 2, 100), "expected ComfyUI AUDIO"),
    "no sample_rate": ({"waveform": torch.zeros(1, 2, 100)}, "expected ComfyUI AUDIO"),
    "numpy waveform": (waveform_audio(np.zeros((1, 2, 100), np.float32)), "waveform must be a torch tensor"),
    "2-D waveform": (waveform_audio(torch.rand(2, 100)), r"add the batch dimension"),
    "4-D waveform": (waveform_audio(torch.rand(1, 1, 2, 100)), r"\(batch, channels, samples\)"),
    "no samples": (waveform_audio(torch.rand(1, 2, 0)), "empty"),
    "no channels": (waveform_audio(torch.rand(1, 0, 100)), "empty"),
    "no batch": (waveform_audio(torch.rand(0, 2, 100)), "empty"),
    "NaN": (waveform_audio(torch.tensor([[[0.1, float("nan"), 0.2]]])), "NaN or infinite"),
    "inf": (waveform_audio(torch.tensor([[[0.1, float("inf"), 0.2]]])), "NaN or infinite"),
    "int samples": (waveform_audio(torch.zeros(1, 2, 100, dtype=torch.int16)), "float samples"),
    "rate 0": (waveform_audio(torch.rand(1, 2, 100), 0), "positive int"),
    "rate -1": (waveform_audio(torch.rand(1, 2, 100), -1), "positive int"),
    "float rate": (waveform_audio(torch.rand(1, 2, 100), 44100.0), "positive int"),
    "str rate": (waveform_audio(torch.rand(1, 2, 100), "44100"), "positive int"),
    "bool rate": (waveform_audio(torch.rand(1, 2, 100), True), "positive int"),
    "3 channels": (waveform_audio(torch.rand(1, 3, 16000)), r"3 channels cannot be saved.*1 \(mono\), 2 \(stereo\)"),
}


@pytest.mark.parametrize("case", sorted(BAD_AUDIO))
def test_bad_audio_is_rejected_naming_the_input_and_nothing_is_written(headless, case):
    audio, pattern = BAD_AUDIO[case]
    with pytest.raises(InputError, match=pattern) as error:
        saved_path(headless, audio)
    assert isinstance(error.value, ValueError) and str(error.value).startswith("audio")
    assert not os.path.exists(headless.output_dir) or all_files(headless.output_dir) == []


def test_audio_with_a_format_without_sound_is_rejected(headless):
    for fmt in ("gif", "webp (animated)"):
        with pytest.raises(InputError, match=r"cannot hold audio: choose one of \['mp4 \(h264\)', 'webm \(vp9\)'\]"):
            saved_path(headless, tone(2.0, 16000), fmt)
    assert not os.path.exists(headless.output_dir) or all_files(headless.output_dir) == []


def test_output_folder_that_is_a_file_fails_before_writing(headless):
    os.makedirs(headless.output_dir)
    with open(os.path.join(headless.output_dir, "blocked"), "w") as f:
        f.write("a file where the sub-folder should be")
    with pytest.raises(InputError, match="is a file"):
        saved_path(headless, tone(2.0, 16000), prefix="blocked/clip")
    assert all_files(headless.output_dir) == ["blocked"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write to read-only folders")
def test_read_only_output_folder_fails_before_writing(headless):
    os.makedirs(headless.output_dir)
    os.chmod(headless.output_dir, 0o555)
    try:
        with pytest.raises(InputError, match="not writable"):
            saved_path(headless, tone(2.0, 16000))
        assert all_files(headless.output_dir) == []
    finally:
        os.chmod(headless.output_dir, 0o755)


def test_ffmpeg_failure_with_audio_leaves_no_file(headless, monkeypatch):
    from videodit.nodes import video_io

    def half_written(args, stdin_bytes, what):
        audio_file = args[args.index("f32le") + 6]
        assert os.path.getsize(audio_file) == 4 * 2 * 32000, "the raw audio input is not all there"
        with open(args[-1], "wb") as f:  # the output path
            f.write(b"half a video")
        raise RuntimeError("ffmpeg failed while writing: disk full")

    monkeypatch.setattr(video_io, "_run_ffmpeg", half_written)
    with pytest.raises(RuntimeError, match="disk full"):
        saved_path(headless, tone(2.0, 16000))
    assert all_files(headless.output_dir) == [], "a partial file was left behind"


def test_existing_file_is_never_overwritten(headless, monkeypatch):
    from videodit.nodes import save as save_module

    folder = os.path.join(headless.output_dir, "av")
    os.makedirs(folder)
    taken = os.path.join(folder, "clip_00001_.mp4")
    with open(taken, "wb") as f:
        f.write(b"an earlier video")
    real_save_path = save_module.host.save_path
    # another run saved clip_00001_ after this one picked its counter
    monkeypatch.setattr(save_module.host, "save_path", lambda *a: (*real_save_path(*a)[:2], 1, real_save_path(*a)[3]))
    path = saved_path(headless, tone(2.0, 16000))
    assert os.path.basename(path) == "clip_00002_.mp4"
    with open(taken, "rb") as f:
        assert f.read() == b"an earlier video"
    assert all_files(headless.output_dir) == ["av/clip_00001_.mp4", "av/clip_00002_.mp4"]
    assert publish(path, taken) is False and os.path.exists(path)


# ------------------------------------------------------------------------------------------------------ fit_audio


def random_track(channels, samples, batch=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shape = (channels, samples) if batch is None else (batch, channels, samples)
    return 0.5 * torch.randn(shape, generator=gen).clamp(-2, 2)


def max_diff(a, b):
    assert a.shape == b.shape, f"{tuple(a.shape)} vs {tuple(b.shape)}"
    return (a - b).abs().max().item()


@pytest.mark.parametrize("rates", [(44100, 16000), (48000, 16000), (22050, 16000), (8000, 16000)])
def test_fit_audio_resamples_exactly_like_resample_py(rates):
    orig, new = rates
    track = random_track(2, orig)  # 1 s
    fitted, message = fit_audio(track, orig, new, new, 2)
    reference = resample(track, orig, new)[..., :new]
    diff = max_diff(fitted, reference)
    assert diff <= 1e-6, f"fit_audio vs resample.py {orig} -> {new}: max abs diff {diff:.3g}"
    assert message == f"resampled {orig} -> {new} Hz"


def test_fit_audio_channel_rules_and_messages():
    mono, stereo = random_track(1, 44100), random_track(2, 44100, seed=1)
    up, message = fit_audio(mono, 44100, 16000, 16000, 2)
    reference = resample(mono, 44100, 16000)
    assert up.shape == (2, 16000) and max_diff(up[0:1], reference) <= 1e-6 and max_diff(up[1:2], reference) <= 1e-6
    assert "mono -> stereo (the one channel copied to each)" in message
    down, message = fit_audio(stereo[:, :16000], 16000, 16000, 16000, 1)
    diff = max_diff(down, stereo[:, :16000].mean(0, keepdim=True))
    assert down.shape == (1, 16000) and diff <= 1e-7 and message == "stereo -> mono (the channels averaged)"
    batch, _ = fit_audio(random_track(1, 32000, batch=3), 32000, 16000, 8000, 2)
    assert batch.shape == (3, 2, 8000), "the batch dimension is kept"
    same, message = fit_audio(stereo[:, :16000], 16000, 16000, 16000, 2)
    assert message == "" and torch.equal(same, stereo[:, :16000])
    with pytest.raises(ValueError, match="6 channels and 2 are needed.*mix the track down"):
        fit_audio(random_track(6, 16000), 16000, 16000, 16000, 2)


def test_fit_audio_trims_and_pads_to_the_video_duration():
    rate = 16000
    target = video_samples(49, 24.0, rate)  # 49 frames at 24 fps = 2.0417 s
    assert target == round(49 / 24 * rate)
    long, message = fit_audio(random_track(2, 3 * rate), rate, rate, target, 2)
    assert long.shape == (2, target) and "audio is 3.000 s, the video 2.042 s: trimmed the last 0.958 s" in message
    short, message = fit_audio(random_track(2, rate), rate, rate, target, 2)
    assert short.shape == (2, target) and not short[:, rate:].any()
    assert "audio is 1.000 s, the video 2.042 s: padded 1.042 s of silence at the end" in message
    _, message = fit_length(torch.zeros(1, 100), 100, 100)
    assert message == ""


@pytest.mark.parametrize(
    "args,pattern",
    [
        ((torch.zeros(2, 16000), 16000, 16000, 16000, 2), r"the track is silent"),
        ((torch.zeros(2, 0), 16000, 16000, 16000, 2), r"empty"),
        ((torch.full((2, 10), float("nan")), 16000, 16000, 10, 2), r"NaN or infinite"),
        ((torch.zeros(16000), 16000, 16000, 16000, 2), r"\(channels, samples\) or \(batch, channels, samples\)"),
        ((torch.ones(2, 16000), 16000.0, 16000, 16000, 2), r"sample_rate must be a positive whole number"),
        ((torch.ones(2, 16000), 16000, 0, 16000, 2), r"target_rate must be a positive whole number"),
        ((torch.ones(2, 16000), 16000, 16000, 0, 2), r"target_samples must be a positive whole number"),
        ((torch.ones(2, 16000), 16000, 16000, 16000, 0), r"channels must be a positive whole number"),
    ],
    ids=["silent", "empty", "nan", "1-D", "float rate", "zero target rate", "zero samples", "zero channels"],
)
def test_fit_audio_rejects_bad_tracks(args, pattern):
    with pytest.raises(ValueError, match=pattern):
        fit_audio(*args)


def test_fit_audio_rejects_a_track_silent_where_it_meets_the_video():
    track = torch.zeros(2, 48000)
    track[:, 40000:] = 0.5  # sound only after 2.5 s: the 2 s that fit are silent
    with pytest.raises(ValueError, match=r"the first 2.000 s \(the part that fits the video\) is silent"):
        fit_audio(track, 16000, 16000, 32000, 2)
    batch = torch.stack([random_track(2, 16000), torch.full((2, 16000), SILENT_PEAK / 2)])
    with pytest.raises(ValueError, match=r"\(batch item \[1\]\) is silent"):
        fit_audio(batch, 16000, 16000, 16000, 2)


# ------------------------------------------------------------------------------------------------------ Audio Decode

SMALL_VOCODER = {"upsample_initial_channel": 16, "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]]}


def tiny_vocoder(kind):
    if kind == "hifigan":
        return Vocoder(VocoderConfig(upsample_rates=(4, 4), upsample_kernel_sizes=(8, 8), **SMALL_VOCODER))
    generator = {**SMALL_VOCODER, "resblock": "AMP1", "activation": "snakebeta"}
    bwe = {"n_fft": 32, "hop_length": 8, "num_mels": 64, "input_sampling_rate": 16000, "output_sampling_rate": 48000}
    return build_vocoder({"vocoder": {
        "vocoder": {**generator, "upsample_rates": [4, 2], "upsample_kernel_sizes": [8, 4]},
        "bwe": {**generator, **bwe, "upsample_rates": [4, 3, 2], "upsample_kernel_sizes": [8, 5, 4]}}})  # fmt: skip


def tiny_audio_modules(kind, seed=0):
    torch.manual_seed(seed)
    vae = AudioVAE(AudioVAEConfig(channels=32, latent_channels=2, res_blocks=1)).eval()
    stats = vae.per_channel_statistics
    stats.get_buffer("std-of-means").copy_(torch.rand(32) + 0.5)
    stats.get_buffer("mean-of-means").copy_(0.1 * torch.randn(32))
    return vae, tiny_vocoder(kind).eval()


@pytest.mark.parametrize("kind", ["hifigan", "bwe"])
def test_audio_decode_node_equals_the_modules_by_hand_in_the_audio_layout(headless, kind):
    vae, vocoder = tiny_audio_modules(kind)
    latent = torch.randn(2, 2, 6, 16, generator=torch.Generator().manual_seed(1))
    (audio,) = VideoDiTAudioDecode().decode(AudioDecoderModules(vae, vocoder), {"samples": latent, "type": "audio"})
    with torch.no_grad():
        by_hand = vocoder(vae.decode(latent))
    assert set(audio) == {"waveform", "sample_rate"}, "ComfyUI's AUDIO has exactly these keys"
    waveform = audio["waveform"]
    assert waveform.dtype == torch.float32 and waveform.device.type == "cpu" and waveform.is_contiguous()
    assert waveform.ndim == 3 and waveform.shape[:2] == (2, 2), "(batch, channels, samples)"
    assert type(audio["sample_rate"]) is int and audio["sample_rate"] == vocoder.output_sample_rate
    assert audio["sample_rate"] == (24000 if kind == "hifigan" else 48000)
    assert waveform.abs().max() > 1e-3, "decoded audio is silent: the comparison would mean nothing"
    diff = max_diff(waveform, by_hand)
    assert diff <= 1e-6, f"Audio Decode vs vocoder(audio_vae.decode(latent)) by hand: max abs diff {diff:.3g}"
    assert check_audio(audio)[1] == audio["sample_rate"], "our Save Video takes what Audio Decode gives"


def test_audio_decode_output_feeds_save_video(headless):
    vae, vocoder = tiny_audio_modules("hifigan")
    latent = torch.randn(1, 2, 51, 16, generator=torch.Generator().manual_seed(2))  # 201 mel frames, ~0.13 s
    (audio,) = VideoDiTAudioDecode().decode(AudioDecoderModules(vae, vocoder), {"samples": latent})
    path = saved_path(headless, audio, frames=5)
    assert len([s for s in streams(path) if ": Audio:" in s]) == 1
    samples, rate = decoded_audio(path)
    assert rate == 24000 and samples.shape[1] == 2 and abs(samples.shape[0] - round(5 / FPS * rate)) <= 1024


def test_audio_decode_rejects_what_it_cannot_decode():
    vae, vocoder = tiny_audio_modules("hifigan")
    modules = AudioDecoderModules(vae, vocoder)
    node = VideoDiTAudioDecode()
    with pytest.raises(InputError, match=r"expected an LTX-2 audio latent \(batch, 2, frames, 16\).*video latent"):
        node.decode(modules, {"samples": torch.zeros(1, 128, 2, 4, 4)})
    with pytest.raises(InputError, match=r"decodes \(batch, 2, frames, 16\) latents, got shape \(1, 8, 5, 16\)"):
        node.decode(modules, {"samples": torch.zeros(1, 8, 5, 16)})
    with pytest.raises(InputError, match="audio_vae: expected an LTX-2 audio VAE with a vocoder"):
        node.decode(object(), {"samples": torch.zeros(1, 2, 5, 16)})
    assert NODE_CLASS_MAPPINGS["VideoDiTAudioDecode"] is VideoDiTAudioDecode
