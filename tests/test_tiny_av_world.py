"""The tiny world's soundtrack (tiny/data.py render_soundtrack), its judge (tiny/evaluate_audio.py) and the widened
captions: the rules checked on the waveform with plain spectra, the judge at 100 % on every colour / motion /
background clean, at 20 dB SNR, low-passed and quantised, and through a real AAC-in-MP4 round trip."""

import math
import os
import re
import tempfile

import numpy as np
import pytest
import torch
from scipy import signal
from videodit.model import builtin
from videodit.model.preprocess import run_ffmpeg
from videodit.tiny import configs, data, evaluate, evaluate_audio

SR = data.SAMPLE_RATE


def every_combination(seed=0):
    """One spec for each colour x shape x motion x background (240)."""
    rng = np.random.default_rng(seed)
    return [data.make_spec(c, s, m, bg, rng) for (c, s, m) in data.combos("all") for bg in data.BACKGROUNDS]


def true_x(spec, frames=data.FRAMES):
    return np.array([spec.center(k)[0] for k in range(frames)])


def judge_all(specs, audio):
    return [evaluate_audio.judge(a, x=true_x(s)) for s, a in zip(specs, audio)]


def assert_perfect(judgements, specs, what, min_correlation=0.95):
    result = evaluate_audio.score(judgements, specs)
    glide_error = max(abs(j.glide_semitones - data.GLIDES.get(s.motion, 0.0)) for j, s in zip(judgements, specs))
    start_error = max(abs(j.start_semitones - data.SCALE[data.NOTES[s.color]]) for j, s in zip(judgements, specs))
    print(f"{what}: {result}, max glide error {glide_error:.3f} st, max start-pitch error {start_error:.3f} st")
    fields = {"note": "color", "pan_direction": "pan_direction", "no_pan": "pan_direction", "glide": "glide"}
    for key, field in (fields | {"steady": "glide", "timbre": "background"}).items():
        wrong = [
            (s, getattr(j, field))
            for j, s in zip(judgements, specs)
            if getattr(j, field) != evaluate_audio.expected(s)[field]
        ]
        assert result[key] == 1.0, (what, key, result, wrong[:5])
    assert glide_error <= 0.3, (what, glide_error)
    assert result["pan_x_correlation_median"] >= min_correlation, (what, result)
    return result


# ---------------------------------------------------------------------------------------------------- the rules


@pytest.mark.parametrize("frames,fps,rate", [(25, 25.0, 16000), (9, 24.0, 16000), (25, 30.0, 24000), (7, 25.0, 22050)])
def test_duration_is_exactly_frames_over_fps(frames, fps, rate):
    spec = data.make_spec("red", "circle", "right", "white", np.random.default_rng(0), frames=frames)
    audio = data.render_soundtrack(spec, frames, fps, rate)
    assert audio.shape == (2, round(frames / fps * rate)) and audio.dtype == torch.float32
    assert torch.isfinite(audio).all() and audio.abs().max() <= 1.0


def test_av_clip_is_the_rendered_video_and_its_soundtrack():
    spec = data.make_spec("cyan", "square", "left", "black", np.random.default_rng(1))
    clip = data.render_av_clip(spec)
    assert np.array_equal(clip.video, data.render([spec])[0])
    assert torch.equal(clip.audio, data.render_soundtrack(spec)) and clip.audio.shape == (2, SR)


def test_pitch_is_the_colours_note_and_timbre_follows_the_background():
    for color, note in data.NOTES.items():
        for background in data.BACKGROUNDS:
            spec = data.ClipSpec(color, "circle", "still", background, 12.0, 64.0, 64.0, 0.0)
            mono = data.render_soundtrack(spec).sum(0).double().numpy()
            spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono)), 16 * len(mono)))
            freqs = np.fft.rfftfreq(16 * len(mono), 1 / SR)
            peak = freqs[np.argmax(spectrum)]
            assert abs(peak - data.note_hz(note)) < 0.5, (color, note, peak)

            def amplitude(n, spectrum=spectrum, freqs=freqs, f0=peak):  # harmonic n over the fundamental
                return spectrum[np.abs(freqs - n * f0) < 5].max() / spectrum.max()

            if background == "white":  # odd harmonics 1/n, no even ones
                assert abs(amplitude(3) - 1 / 3) < 0.01 and abs(amplitude(5) - 1 / 5) < 0.01, (color, amplitude(3))
                assert amplitude(2) < 1e-3 and amplitude(4) < 1e-3
            else:
                assert max(amplitude(n) for n in (2, 3, 4, 5)) < 1e-3, color
    assert data.note_hz("A4") == pytest.approx(440.0) and data.note_hz("C5") == pytest.approx(2 * data.C4_HZ)


def test_glide_is_three_semitones_and_phase_continuous():
    for motion, semitones in (("up", 3.0), ("down", -3.0), ("left", 0.0)):
        spec = data.ClipSpec("green", "circle", motion, "black", 12.0, 100.0, 100.0, 2.0)
        mono = data.render_soundtrack(spec).sum(0).double().numpy()
        phase = np.unwrap(np.angle(signal.hilbert(mono)))
        inst = np.diff(phase) * SR / (2 * math.pi)  # instantaneous frequency (Hz)
        for share in (0.1, 0.5, 0.9):
            i = int(share * len(mono))
            measured = 12 * math.log2(np.median(inst[i - 200 : i + 200]) / data.note_hz("F4"))
            assert abs(measured - semitones * share) < 0.05, (motion, share, measured)
        # no jump anywhere: a sample never moves further than the steepest slope of the tone allows
        top = data.note_hz("F4") * 2 ** (max(semitones, 0) / 12)
        assert np.abs(np.diff(mono)).max() <= 2 * math.pi * top / SR * np.abs(mono).max() * 1.01


def test_pan_is_constant_power_and_follows_x():
    rng = np.random.default_rng(2)
    for x in (20.0, 64.0, 100.0):
        audio = data.render_soundtrack(data.ClipSpec("blue", "square", "still", "black", 12.0, x, 64.0, 0.0))
        left, right = audio.double().pow(2).mean(1).sqrt()
        assert float(right / left) == pytest.approx(math.tan(math.pi / 2 * x / data.SIZE), rel=1e-6)
    for motion in ("left", "right"):
        spec = data.make_spec("red", "triangle", motion, "white", rng)
        pan = evaluate_audio.pan_trajectory(data.render_soundtrack(spec).double().numpy(), data.FRAMES)
        # frame k's x sits at the middle of its span; before frame 0's middle and after the last one's the pan
        # holds, so the two end spans read an eighth of a frame's step (about 0.002) towards the middle
        expected = true_x(spec) / data.SIZE
        np.testing.assert_allclose(pan[1:-1], expected[1:-1], atol=2e-4)
        np.testing.assert_allclose(pan[[0, -1]], expected[[0, -1]], atol=4e-3)
        assert np.all(np.sign(np.diff(pan)) == (1 if motion == "right" else -1)), (motion, pan)


# ---------------------------------------------------------------------------------------------------- the judge


def test_judge_every_colour_motion_and_background():
    specs = every_combination()
    assert_perfect(judge_all(specs, data.render_soundtracks(specs)), specs, "clean, 240 clips")


def test_judge_at_20_db_snr_and_after_low_pass_and_quantising():
    specs = every_combination(seed=1)
    audio = data.render_soundtracks(specs)
    generator = torch.Generator().manual_seed(0)
    power = audio.pow(2).mean(dim=(1, 2), keepdim=True)
    noisy = audio + torch.randn(audio.shape, generator=generator) * (power / 10**2).sqrt()  # 20 dB SNR
    assert_perfect(judge_all(specs, noisy), specs, "20 dB SNR")
    sos = signal.butter(8, 3500, "low", fs=SR, output="sos")
    degraded = np.round(signal.sosfiltfilt(sos, audio.numpy(), axis=-1) * 127) / 127  # 3.5 kHz low-pass, 8 bits
    assert_perfect(judge_all(specs, degraded), specs, "3.5 kHz low-pass + 8-bit")


@pytest.mark.parametrize("rate", [24000, 48000])
def test_judge_at_the_vocoders_output_rates(rate):
    # LTX-2 2.0's vocoder writes 24 kHz, 2.3's bandwidth extension 48 kHz: the 16 kHz soundtrack resampled to them
    from videodit.model.ltx2.resample import resample

    specs = data.sample_specs(20, seed=8, split="all")
    audio = resample(data.render_soundtracks(specs), SR, rate)
    assert audio.shape[-1] == round(data.FRAMES / data.FRAME_RATE * rate), audio.shape
    judgements = [evaluate_audio.judge(a, sample_rate=rate, x=true_x(s)) for s, a in zip(specs, audio)]
    assert_perfect(judgements, specs, f"resampled to {rate} Hz")


def aac_round_trip(audio, kbps):
    """(2, T) through ffmpeg's AAC encoder into an .m4a file and back (the MP4 edit list removes the priming)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "clip.m4a")
        raw = audio.T.contiguous().numpy().astype("<f4").tobytes()
        pcm = ["-f", "f32le", "-ar", str(SR), "-ac", "2"]
        run_ffmpeg([*pcm, "-i", "pipe:0", "-c:a", "aac", "-b:a", f"{kbps}k", path], raw, "encoding AAC")
        decoded = run_ffmpeg(["-i", path, *pcm, "pipe:1"], None, "decoding AAC")
    return torch.from_numpy(np.frombuffer(decoded, "<f4").copy()).view(-1, 2).T


def test_judge_after_aac_in_mp4():
    specs = data.sample_specs(30, seed=4, split="all")
    decoded = [aac_round_trip(a, 96) for a in data.render_soundtracks(specs)]
    assert all(d.shape == (2, SR) for d in decoded), [d.shape for d in decoded]
    assert_perfect(judge_all(specs, decoded), specs, "AAC 96 kb/s in MP4")


def mel_round_trip(audio, nmf_steps=20, griffin_lim_steps=16):
    """(N, 2, T) -> the LTX-2 audio VAE's log-mel (64 Slaney bands, n_fft 1024, hop 160) -> back to a waveform:
    magnitudes by non-negative least squares on the filterbank (multiplicative updates from the clamped
    pseudo-inverse), phases by Griffin-Lim. What survives this survives the representation the audio VAE sees."""
    from videodit.model.ltx2.mel import LogMelSpectrogram

    mel = LogMelSpectrogram()
    target = mel(audio).exp().flatten(0, 1)  # (N * 2, frames, 64)
    bank = mel.filterbank  # (513, 64)
    magnitude = (target @ torch.linalg.pinv(bank)).clamp(min=0)  # (N * 2, frames, 513)
    for _ in range(nmf_steps):
        magnitude = magnitude * (target @ bank.T) / ((magnitude @ bank) @ bank.T).clamp(min=1e-10)
    magnitude = magnitude.transpose(1, 2)  # (N * 2, 513, frames)
    stft = {"n_fft": 1024, "hop_length": 160, "window": torch.hann_window(1024)}
    phase = torch.exp(2j * math.pi * torch.rand(magnitude.shape, generator=torch.Generator().manual_seed(0)))
    for _ in range(griffin_lim_steps):
        wave = torch.istft(magnitude * phase, **stft, length=audio.shape[-1])
        spectrum = torch.stft(wave, **stft, pad_mode="reflect", return_complex=True)
        phase = spectrum / spectrum.abs().clamp(min=1e-8)
    return torch.istft(magnitude * phase, **stft, length=audio.shape[-1]).unflatten(0, audio.shape[:2])


def test_judge_after_the_ltx2_mel_front_end_and_back():
    # every colour, every motion on both backgrounds
    rng, colors, backgrounds = np.random.default_rng(6), list(data.COLORS), list(data.BACKGROUNDS)
    specs = [data.make_spec(colors[i % 8], "circle", data.MOTIONS[i // 2], backgrounds[i % 2], rng) for i in range(10)]
    judgements = judge_all(specs, mel_round_trip(data.render_soundtracks(specs)))
    result = evaluate_audio.score(judgements, specs)
    errors = [abs(j.glide_semitones - data.GLIDES.get(s.motion, 0.0)) for j, s in zip(judgements, specs)]
    print(f"log-mel and back (Griffin-Lim): {result}, max glide error {max(errors):.2f} st")
    assert all(result[k] == 1.0 for k in ("note", "pan_direction", "glide", "timbre", "no_pan", "steady")), result
    assert result["pan_x_correlation_median"] >= 0.95, result


def test_pan_x_correlation_tells_synced_from_reversed_and_swapped():
    rng = np.random.default_rng(5)
    for motion in ("left", "right"):
        spec = data.make_spec("orange", "circle", motion, "black", rng)
        clip = data.render_av_clip(spec)
        synced = evaluate_audio.judge(clip.audio, x=true_x(spec)).pan_x_correlation
        reversed_x = evaluate_audio.judge(clip.audio, x=true_x(spec)[::-1]).pan_x_correlation
        track, tracked = evaluate_audio.judge_av(clip.video, clip.audio)
        other = data.make_spec("orange", "circle", "right" if motion == "left" else "left", "black", rng)
        _, swapped = evaluate_audio.judge_av(clip.video, data.render_soundtrack(other))
        print(f"{motion}: true x {synced:.4f}, reversed {reversed_x:.4f}, tracked {tracked.pan_x_correlation:.4f}")
        assert synced >= 0.95 and reversed_x <= -0.9 and tracked.pan_x_correlation >= 0.95, (synced, reversed_x)
        assert swapped.pan_x_correlation <= -0.9 and track.motion == motion
    still = data.make_spec("grey", "square", "still", "white", rng)
    assert math.isnan(evaluate_audio.judge(data.render_soundtrack(still), x=true_x(still)).pan_x_correlation)


def test_judge_rejects_bad_input_and_silence_gives_no_colour():
    with pytest.raises(ValueError, match="stereo"):
        evaluate_audio.judge(torch.zeros(1, SR))
    with pytest.raises(ValueError, match="too short"):
        evaluate_audio.judge(torch.zeros(2, 100))
    with pytest.raises(ValueError, match="num_frames"):
        data.soundtrack_length(0)
    silent = evaluate_audio.judge(torch.zeros(2, SR))
    assert silent.color is None and silent.pan_direction == "none"


# ---------------------------------------------------------------------------------------------------- captions

# Class words, written out here independently of tiny/data.py: every caption must name its own class of each kind
# and no other one.
WORDS = {
    "colour": {c: (c,) for c in data.COLORS},
    "shape": {
        "circle": ("circle", "disc", "disk", "ball", "round dot"),
        "square": ("square", "box", "block"),
        "triangle": ("triangle", "wedge"),
    },
    "motion": {
        "left": ("left", "leftward"),
        "right": ("right", "rightward"),
        "up": ("up", "upward", "rises", "rising", "climbs", "climbing", "ascends"),
        "down": ("down", "downward", "falls", "falling", "sinks", "sinking", "drops", "dropping", "descends"),
        "still": ("still", "not moving", "in place", "stays put", "staying put", "motionless", "stationary")
        + ("does not move",),
    },
    "background": {"black": ("black", "dark"), "white": ("white", "light")},
}
SOUND = re.compile(r"(with|while|to the sound of|and) an? (low|deep|middle|medium|high|high pitched) ")
REGISTER_WORDS = {"low": ("low", "deep"), "middle": ("middle", "medium"), "high": ("high", "high pitched")}


def named(text, kind):
    padded = f" {re.sub(r'[^a-z]+', ' ', text.lower())} "
    return {name for name, words in WORDS[kind].items() if any(f" {w} " in padded for w in words)}


def test_captions_are_varied_true_and_in_the_vocabulary():
    rng = np.random.default_rng(0)
    counts, sounds = [], 0
    for color, shape, motion in data.combos("all"):
        for background in data.BACKGROUNDS:
            spec = data.ClipSpec(color, shape, motion, background, 12.0, 64.0, 64.0, 2.0 if motion != "still" else 0)
            texts = [data.caption(spec, rng) for _ in range(200)]
            counts.append(len(set(texts)))
            for text in texts:
                assert builtin.check_prompt(text) is None, text
                assert len(text.encode()) < configs.MAX_TEXT_TOKENS, text  # the tiny T5 reads all of it
                sound = SOUND.search(text)
                sounds += bool(sound)
                body = text[: sound.start()] if sound else text
                assert named(body, "colour") == {color} and named(body, "shape") == {shape}, text
                assert named(body, "motion") == {motion}, text
                assert named(body, "background") <= {background}, text
                if sound:  # the soundtrack clause tells the truth about the sound
                    assert sound.group(2) in REGISTER_WORDS[data.register(color)], text
                    assert ("buzz" in text or "rough" in text) == (background == "white"), text
                    assert ("rising" in text[sound.start() :]) <= (motion == "up"), text
                    assert ("falling" in text[sound.start() :]) <= (motion == "down"), text
    print(f"distinct captions of 200 per combination: min {min(counts)}, median {np.median(counts)}; sound {sounds}")
    assert min(counts) >= 100, min(counts)
    assert 0.2 < sounds / (200 * len(counts)) < 0.3
    assert data.register("red") == "low" and data.register("cyan") == "middle" and data.register("grey") == "high"


def test_captions_are_deterministic_and_keep_the_old_templates():
    spec = data.make_spec("yellow", "triangle", "down", "white", np.random.default_rng(0))

    def draw(seed, n):
        rng = np.random.default_rng(seed)
        return [data.caption(spec, rng) for _ in range(n)]

    assert draw(7, 50) == draw(7, 50) and draw(7, 50) != draw(8, 50)
    many = set(draw(9, 20000))
    assert "yellow triangle falls" in many  # "{color} {shape} {motion}", one of the seven original templates
    assert any(t.startswith("white background, yellow triangle, ") for t in many)  # another one
    assert not any("an yellow" in t or "a orange" in t for t in many)


def test_training_captions_never_describe_a_held_out_combination():
    held = set(data.HELD_OUT)
    rng = np.random.default_rng(1)
    specs = data.sample_specs(3000, seed=9, split="train")
    assert not any((s.color, s.shape, s.motion) in held for s in specs)
    for spec in specs[:1500]:
        text = data.caption(spec, rng)
        body = text[: m.start()] if (m := SOUND.search(text)) else text
        (color,), (shape,), (motion,) = (named(body, k) for k in ("colour", "shape", "motion"))
        assert (color, shape, motion) not in held and (color, shape, motion) == (spec.color, spec.shape, spec.motion)


def test_speed_adverbs_are_true():
    rng = np.random.default_rng(3)
    lo, hi = data.SPEED_RANGE
    for speed, wrong in ((lo + 0.01, ("quickly", "swiftly")), (hi - 0.01, ("slowly", "gently")), (0.0, ())):
        spec = data.ClipSpec("red", "circle", "right", "black", 12.0, 30.0, 64.0, speed)
        texts = [data.caption(spec, rng) for _ in range(400)]
        assert not any(w in t.split() for t in texts for w in wrong), speed
        if speed == 0.0:  # train.py's per-combination captions: only the neutral adverbs
            assert not any(w in t.split() for t in texts for w in ("slowly", "gently", "quickly", "swiftly"))
    still = data.ClipSpec("red", "circle", "still", "black", 12.0, 30.0, 64.0, 0.0)
    assert not any(w in data.caption(still, rng).split() for _ in range(200) for w in ("steadily", "smoothly"))


def test_tracker_still_reads_the_av_clips_video():
    specs = data.sample_specs(10, seed=6, split="all")
    tracks = [evaluate.track(data.render_av_clip(s).video) for s in specs]
    assert evaluate.score(tracks, [(s.color, s.shape, s.motion, s.background) for s in specs])["all"] == 1.0
