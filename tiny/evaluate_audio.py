"""Judging a tiny-world soundtrack (tiny/data.py render_soundtrack) from the waveform alone.

Per video frame k the soundtrack is cut into its span [k T / F, (k + 1) T / F) of samples. From the spans:
  pan     the right share of the energy, b = (E_R - E_L) / (E_R + E_L), turned back into the constant-power pan
          position p = arccos(-b) / pi in [0, 1] (0 left, 1 right); direction from the mean of the last quarter
          of the frames minus the first quarter (beyond +-PAN_THRESHOLD: "right" / "left", else "none");
  pitch   the fundamental of the mid signal (L + R) by YIN (cumulative-mean-normalised difference, first dip
          below YIN_THRESHOLD, parabolic refinement); an odd-harmonic square has its strongest self-similarity at
          the full period, so the timbre causes no octave errors. Semitones above C4 per frame, folded by octaves
          onto their median, fitted by a line over the clip: the value at t = 0 gives the nearest note of the
          scale and so the colour, the change over the clip the glide ("up" / "down" beyond +-GLIDE_THRESHOLD
          semitones, else "steady");
  timbre  energy of harmonics 2..8 over the fundamental's (bands of +-f0/4 in a Hann-windowed spectrum), median
          over the frames: above HARMONIC_THRESHOLD a square ("white" background), else a sine ("black");
  sync    Pearson correlation of the pan trajectory with a per-frame x position (e.g. evaluate.track's
          centroids): NaN when either does not vary.

    from videodit.tiny import data, evaluate_audio
    j = evaluate_audio.judge(data.render_soundtrack(spec), x=[spec.center(k)[0] for k in range(data.FRAMES)])
"""

import math
from dataclasses import dataclass

import numpy as np

from . import data

F_MIN, F_MAX = 150.0, 1000.0  # Hz searched for the fundamental (scale C4..C5, glides to A3 / D#5)
YIN_THRESHOLD = 0.2
CONFIDENT = 0.35  # frames with a YIN dip above this are left out of the pitch fit (unless all are)
GLIDE_THRESHOLD = 1.5  # semitones over the clip
PAN_THRESHOLD = 0.1  # pan position change (of 0..1) between the first and the last quarter of the frames
HARMONIC_THRESHOLD = 0.05  # harmonic / fundamental energy: the square gives >= 0.15, a sine 0
HARMONICS = range(2, 9)


@dataclass(frozen=True)
class AudioJudgement:
    color: str | None  # colour of the nearest scale note (None: pitch not found or off the scale)
    note: str | None
    start_semitones: float  # fitted pitch at t = 0, semitones above C4
    glide_semitones: float  # fitted pitch change over the clip
    glide: str  # "up", "down" or "steady"
    pan: tuple[float, ...]  # per-frame pan position, 0 (left) .. 1 (right); NaN for silent frames
    pan_direction: str  # "left", "right" or "none"
    harmonic_ratio: float
    background: str  # "black" (sine) or "white" (square)
    pan_x_correlation: float  # with the x given to judge; NaN without one or when nothing varies


def _spans(n_samples: int, num_frames: int) -> np.ndarray:
    return np.round(np.arange(num_frames + 1) * n_samples / num_frames).astype(int)


def pan_trajectory(audio: np.ndarray, num_frames: int) -> np.ndarray:
    """(F,) pan position per frame from the L/R energy balance of its span of samples (audio: (2, T))."""
    bounds = _spans(audio.shape[1], num_frames)
    energy = np.stack([np.square(audio[:, a:b]).sum(axis=1) for a, b in zip(bounds[:-1], bounds[1:])])  # (F, 2)
    total = energy.sum(axis=1)
    balance = (energy[:, 1] - energy[:, 0]) / np.where(total > 0, total, 1.0)
    return np.where(total > 1e-12, np.arccos(np.clip(-balance, -1.0, 1.0)) / math.pi, np.nan)


def _yin(windows: np.ndarray, width: int, lag_min: int, lag_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Period in samples (fractional) and dip depth of each row of windows (R, width + lag_max)."""
    diff = np.stack(
        [np.square(windows[:, :width] - windows[:, lag : lag + width]).sum(axis=1) for lag in range(1, lag_max + 1)], 1
    )
    lags = np.arange(1, lag_max + 1)
    cmnd = diff * lags / np.maximum(np.cumsum(diff, axis=1), 1e-20)  # (R, lag_max): index i is lag i + 1
    periods, depths = np.full(len(windows), np.nan), np.full(len(windows), np.inf)
    for r, row in enumerate(cmnd):
        search = row[lag_min - 1 :]
        below = np.nonzero(search < YIN_THRESHOLD)[0]
        if len(below):
            i = below[0]
            while i + 1 < len(search) and search[i + 1] < search[i]:  # walk down to the bottom of the first dip
                i += 1
        else:
            i = int(np.argmin(search))
        i += lag_min - 1
        shift = 0.0
        if 0 < i < lag_max - 1:  # parabola through the dip and its neighbours
            a, b, c = row[i - 1], row[i], row[i + 1]
            shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) > 0 else 0.0
        periods[r], depths[r] = lags[i] + shift, row[i]
    return periods, depths


def pitch_track(mono: np.ndarray, num_frames: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(F,) fundamental in Hz and YIN dip depth (lower: clearer) at the middle of every frame's span."""
    lag_min, lag_max = int(sample_rate / F_MAX), int(math.ceil(sample_rate / F_MIN))
    bounds = _spans(len(mono), num_frames)
    width = max(int(np.diff(bounds).max()), 2 * lag_max)
    length = width + lag_max
    if len(mono) < length:
        raise ValueError(
            f"soundtrack of {len(mono)} samples is too short to find pitches down to {F_MIN} Hz at {sample_rate} Hz "
            f"(needs {length})"
        )
    centres = (bounds[:-1] + bounds[1:]) // 2
    starts = np.clip(centres - length // 2, 0, len(mono) - length)
    windows = mono[starts[:, None] + np.arange(length)]  # (F, length)
    periods, depths = _yin(windows, width, lag_min, lag_max)
    silent = np.square(windows).mean(axis=1) < 1e-10
    return np.where(silent, np.nan, sample_rate / periods), np.where(silent, np.inf, depths)


def harmonic_ratio(mono: np.ndarray, f0: float, sample_rate: int) -> float:
    """Energy in harmonics 2..8 of f0 over the energy of f0 itself (bands of +-f0/4)."""
    n_fft = 1 << int(math.ceil(math.log2(4 * len(mono))))
    power = np.square(np.abs(np.fft.rfft(mono * np.hanning(len(mono)), n_fft)))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)

    def band(centre):
        return power[np.abs(freqs - centre) <= f0 / 4].sum()

    harmonics = sum(band(h * f0) for h in HARMONICS if h * f0 + f0 / 4 < sample_rate / 2)
    return float(harmonics / max(band(f0), 1e-20))


def correlation(a, b) -> float:
    """Pearson correlation over the entries finite in both; NaN when either is constant there."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    norm = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / norm) if ok.sum() > 2 and norm > 1e-12 else float("nan")


def _direction(values: np.ndarray, threshold: float, names: tuple[str, str, str]) -> tuple[str, float]:
    k = max(1, len(values) // 4)
    head, tail = values[:k][np.isfinite(values[:k])], values[-k:][np.isfinite(values[-k:])]
    if not len(head) or not len(tail):
        return names[2], float("nan")
    change = float(tail.mean() - head.mean())
    return (names[0] if change > threshold else names[1] if change < -threshold else names[2]), change


def judge(audio, num_frames: int = data.FRAMES, sample_rate: int = data.SAMPLE_RATE, x=None) -> AudioJudgement:
    """Judge one soundtrack: audio (2, T) (torch or numpy, any float) of a clip of num_frames video frames (its
    duration is T / sample_rate, so the frame rate needs no mention); x: optional (F,) x position per frame."""
    audio = np.asarray(audio.detach().cpu() if hasattr(audio, "detach") else audio, dtype=np.float64)
    if audio.ndim != 2 or audio.shape[0] != 2:
        raise ValueError(f"audio must be stereo (2, T), got shape {audio.shape}")
    pan = pan_trajectory(audio, num_frames)
    pan_direction, _ = _direction(pan, PAN_THRESHOLD, ("right", "left", "none"))

    mono = audio[0] + audio[1]
    f0, depths = pitch_track(mono, num_frames, sample_rate)
    semis = 12 * np.log2(f0 / data.C4_HZ)
    use = np.isfinite(semis) & (depths < CONFIDENT)
    if use.sum() < 2:
        use = np.isfinite(semis)
    times = (np.arange(num_frames) + 0.5) / num_frames  # middle of every span, as a share of the clip
    if use.sum() >= 2:
        semis = semis + 12 * np.round((np.median(semis[use]) - semis) / 12)  # fold octave slips onto the median
        glide_semitones, start = (float(v) for v in np.polyfit(times[use], semis[use], 1))
    elif use.sum() == 1:
        glide_semitones, start = 0.0, float(semis[use][0])
    else:
        glide_semitones, start = 0.0, float("nan")
    note = min(data.SCALE, key=lambda n: abs(data.SCALE[n] - start)) if -1.0 <= start <= 13.0 else None
    color = next((c for c, n in data.NOTES.items() if n == note), None)
    glide = "up" if glide_semitones > GLIDE_THRESHOLD else "down" if glide_semitones < -GLIDE_THRESHOLD else "steady"

    bounds = _spans(audio.shape[1], num_frames)
    ratios = [harmonic_ratio(mono[bounds[k] : bounds[k + 1]], f0[k], sample_rate) for k in np.nonzero(use)[0]] or [0.0]
    ratio = float(np.median(ratios))
    sync = correlation(pan, x) if x is not None else float("nan")
    return AudioJudgement(
        color,
        note,
        start,
        glide_semitones,
        glide,
        tuple(float(p) for p in pan),
        pan_direction,
        ratio,
        "white" if ratio > HARMONIC_THRESHOLD else "black",
        sync,
    )


def judge_av(video: np.ndarray, audio, sample_rate: int = data.SAMPLE_RATE):
    """Track the video's shape (evaluate.track, video (F, H, W, 3) in [0, 1]) and judge the soundtrack against its
    x trajectory: (Track, AudioJudgement)."""
    from . import evaluate

    track = evaluate.track(video)
    return track, judge(audio, len(video), sample_rate, x=track.centroids[:, 0])


def expected(spec: data.ClipSpec) -> dict[str, str]:
    """What judge should say about the spec's soundtrack."""
    return {
        "color": spec.color,
        "pan_direction": spec.motion if spec.motion in ("left", "right") else "none",
        "glide": spec.motion if spec.motion in ("up", "down") else "steady",
        "background": spec.background,
    }


def score(judgements: list[AudioJudgement], specs: list[data.ClipSpec]) -> dict:
    """The issue's audio metrics: note (colour) accuracy on all clips, pan direction accuracy on left/right clips,
    glide accuracy on up/down clips, timbre (background) accuracy, and the median pan-x correlation (over the
    clips where it is defined); plus "no pan" / "steady" accuracy on the other clips and the counts."""
    if not specs or len(judgements) != len(specs):
        raise ValueError(f"score: {len(judgements)} judgements for {len(specs)} specs (need as many, at least one)")
    want = [expected(s) for s in specs]

    def accuracy(key, rows):
        return float(np.mean([getattr(judgements[i], key) == want[i][key] for i in rows])) if rows else float("nan")

    horizontal = [i for i, s in enumerate(specs) if s.motion in ("left", "right")]
    vertical = [i for i, s in enumerate(specs) if s.motion in ("up", "down")]
    everything = range(len(specs))
    sync = [j.pan_x_correlation for j in judgements if math.isfinite(j.pan_x_correlation)]
    return {
        "note": accuracy("color", everything),
        "pan_direction": accuracy("pan_direction", horizontal),
        "glide": accuracy("glide", vertical),
        "timbre": accuracy("background", everything),
        "pan_x_correlation_median": float(np.median(sync)) if sync else float("nan"),
        "no_pan": accuracy("pan_direction", [i for i in everything if i not in horizontal]),
        "steady": accuracy("glide", [i for i in everything if i not in vertical]),
        "count": len(specs),
        "horizontal": len(horizontal),
        "vertical": len(vertical),
        "synced": len(sync),
    }
