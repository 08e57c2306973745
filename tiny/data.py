"""Synthetic world of the tiny model: one coloured shape moving on a plain background.

A clip is 25 frames of 128x128 RGB. Its content is fixed by a ClipSpec: colour, shape, motion, background, the
shape's half-size, its start position and its speed. Captions describe the spec in varied phrasing.

Rendering uses array operators only, so the same code draws with numpy (render) and, for training on a GPU, with
torch (render_torch). Shapes get a one-pixel anti-aliased edge from a signed distance.
"""

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

FRAMES = 25
SIZE = 128

COLORS = {  # name -> RGB in [0, 1]; far apart from each other and from black and white
    "red": (0.86, 0.08, 0.08),
    "orange": (1.0, 0.55, 0.0),
    "yellow": (0.94, 0.88, 0.08),
    "green": (0.08, 0.70, 0.16),
    "cyan": (0.0, 0.85, 0.90),
    "blue": (0.08, 0.16, 0.90),
    "magenta": (0.90, 0.0, 0.80),
    "grey": (0.50, 0.50, 0.50),
}
SHAPES = ("circle", "square", "triangle")
MOTIONS = ("left", "right", "up", "down", "still")
BACKGROUNDS = {"black": 0.0, "white": 1.0}

# Colour x shape x motion combinations never shown in training (every colour, shape and motion is still seen).
HELD_OUT = (
    ("red", "triangle", "up"),
    ("orange", "circle", "down"),
    ("yellow", "square", "left"),
    ("green", "triangle", "right"),
    ("cyan", "square", "still"),
    ("blue", "circle", "left"),
    ("magenta", "triangle", "down"),
    ("grey", "square", "up"),
    ("blue", "triangle", "still"),
    ("green", "circle", "up"),
)

# Direction of travel in image coordinates (x right, y down).
MOTION_VECTORS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0), "still": (0.0, 0.0)}
HALF_SIZE_RANGE = (11.0, 16.0)  # shape half-extent in pixels (bounding box side 22..32)
SPEED_RANGE = (1.5, 2.5)  # pixels per frame
MARGIN = 2.0  # pixels kept between the shape and the frame edge


@dataclass(frozen=True)
class ClipSpec:
    color: str
    shape: str
    motion: str
    background: str
    half_size: float
    x0: float  # centre at frame 0, pixels
    y0: float
    speed: float  # pixels per frame (0 for "still")

    def center(self, frame: int) -> tuple[float, float]:
        dx, dy = MOTION_VECTORS[self.motion]
        return self.x0 + dx * self.speed * frame, self.y0 + dy * self.speed * frame


def combos(split: str = "train") -> list[tuple[str, str, str]]:
    """Colour x shape x motion combinations of a split: "train" (all but HELD_OUT), "held_out" or "all"."""
    every = [(c, s, m) for c in COLORS for s in SHAPES for m in MOTIONS]
    if split == "all":
        return every
    if split == "held_out":
        return list(HELD_OUT)
    if split == "train":
        held = set(HELD_OUT)
        return [t for t in every if t not in held]
    raise ValueError(f"split must be 'train', 'held_out' or 'all', got {split!r}")


def make_spec(
    color: str,
    shape: str,
    motion: str,
    background: str,
    rng: np.random.Generator,
    frames: int = FRAMES,
    size: int = SIZE,
) -> ClipSpec:
    """A spec with random size, speed and a start position that keeps the whole shape inside every frame."""
    for name, value, valid in (
        ("color", color, COLORS),
        ("shape", shape, SHAPES),
        ("motion", motion, MOTIONS),
        ("background", background, BACKGROUNDS),
    ):
        if value not in valid:
            raise ValueError(f"{name} {value!r} is not one of {list(valid)}")
    half = float(rng.uniform(*HALF_SIZE_RANGE))
    speed = 0.0 if motion == "still" else float(rng.uniform(*SPEED_RANGE))
    travel = speed * (frames - 1)
    dx, dy = MOTION_VECTORS[motion]
    lo, hi = half + MARGIN, size - half - MARGIN

    def start(d: float) -> float:
        if d > 0:
            return float(rng.uniform(lo, hi - travel))
        if d < 0:
            return float(rng.uniform(lo + travel, hi))
        return float(rng.uniform(lo, hi))

    return ClipSpec(color, shape, motion, background, half, start(dx), start(dy), speed)


def sample_specs(n: int, seed: int, split: str = "train", frames: int = FRAMES, size: int = SIZE) -> list[ClipSpec]:
    """n random specs drawn uniformly from the split's combinations and both backgrounds; deterministic by seed."""
    rng = np.random.default_rng(seed)
    pool = combos(split)
    backgrounds = list(BACKGROUNDS)
    specs = []
    for _ in range(n):
        c, s, m = pool[rng.integers(len(pool))]
        specs.append(make_spec(c, s, m, backgrounds[rng.integers(2)], rng, frames, size))
    return specs


# ---------------------------------------------------------------------------------------------------- rendering


def _spec_arrays(specs: list[ClipSpec], frames: int) -> dict[str, np.ndarray]:
    """Per-clip parameters as float32 arrays shaped to broadcast against (N, F, H, W) (colour: (N, 3, 1, 1, 1))."""
    t = np.arange(frames, dtype=np.float32)
    motion = np.array([MOTION_VECTORS[s.motion] for s in specs], dtype=np.float32)  # (N, 2)
    speed = np.array([s.speed for s in specs], dtype=np.float32)
    cx = np.array([s.x0 for s in specs], dtype=np.float32)[:, None] + (motion[:, 0] * speed)[:, None] * t
    cy = np.array([s.y0 for s in specs], dtype=np.float32)[:, None] + (motion[:, 1] * speed)[:, None] * t
    shape_id = np.array([SHAPES.index(s.shape) for s in specs], dtype=np.float32)
    return {
        "cx": cx[:, :, None, None],  # (N, F, 1, 1)
        "cy": cy[:, :, None, None],
        "half": np.array([s.half_size for s in specs], dtype=np.float32)[:, None, None, None],
        "shape": shape_id[:, None, None, None],
        "color": np.array([COLORS[s.color] for s in specs], dtype=np.float32)[:, :, None, None, None],  # (N,3,1,1,1)
        "bg": np.array([BACKGROUNDS[s.background] for s in specs], dtype=np.float32)[:, None, None, None],
    }


def _draw(p: dict, xs, ys, xp):
    """Coverage in [0, 1] of the shape at pixel centres xs (1,1,1,W), ys (1,1,H,1) and the composed frames.

    p holds arrays from _spec_arrays (numpy or torch); xp is the array module (numpy or torch). Signed distances
    (negative inside) of the three shapes are computed for every clip and the clip's own shape is selected.
    """
    dx = xs - p["cx"]  # (N, F, 1, W)
    dy = ys - p["cy"]  # (N, F, H, 1)
    r = p["half"]
    circle = xp.sqrt(dx * dx + dy * dy) - r
    square = xp.maximum(xp.abs(dx) - r, xp.abs(dy) - r)
    # Upright isosceles triangle: apex (0, -r), base corners (+-r, r). Side normals are (+-2, 1)/sqrt(5).
    side = xp.maximum((2.0 * xp.abs(dx) - dy - r) / math.sqrt(5.0), dy - r)
    sd = xp.where(p["shape"] == 0, circle, xp.where(p["shape"] == 1, square, side))
    coverage = (0.5 - sd).clip(0.0, 1.0)  # (N, F, H, W)
    # One channel at a time: broadcasting over a trailing RGB axis is several times slower in numpy.
    video = xp.stack([p["bg"] + coverage * (p["color"][:, c] - p["bg"]) for c in range(3)], -1)  # (N, F, H, W, 3)
    return coverage, video


def render(specs: list[ClipSpec], frames: int = FRAMES, size: int = SIZE) -> np.ndarray:
    """(N, F, H, W, 3) float32 in [0, 1]."""
    p = _spec_arrays(specs, frames)
    grid = np.arange(size, dtype=np.float32) + 0.5
    _, video = _draw(p, grid[None, None, None, :], grid[None, None, :, None], np)
    return video.astype(np.float32)


def render_torch(specs: list[ClipSpec], frames: int = FRAMES, size: int = SIZE, device="cpu"):
    """(N, 3, F, H, W) float32 in [-1, 1] on `device` (the VAE's input layout), plus the (N, 1, F, H, W) coverage."""
    import torch

    p = {k: torch.from_numpy(v).to(device) for k, v in _spec_arrays(specs, frames).items()}
    grid = torch.arange(size, dtype=torch.float32, device=device) + 0.5
    coverage, video = _draw(p, grid[None, None, None, :], grid[None, None, :, None], torch)
    video = video.permute(0, 4, 1, 2, 3) * 2.0 - 1.0  # (N, F, H, W, 3) -> (N, 3, F, H, W)
    return video.contiguous(), coverage[:, None]


# ---------------------------------------------------------------------------------------------------- soundtrack

# Every clip has a stereo soundtrack of its whole duration (frames / fps), one held note:
#   pitch  from the colour: the C major scale C4..C5 in the order of COLORS;
#   glide  from the vertical motion: "up" glides the note up GLIDE_SEMITONES over the clip, "down" down (an
#          exponential frequency sweep, so linear in semitones and phase-continuous); other motions hold it;
#   pan    from the x position: constant-power pan (left gain cos(pi/2 p), right sin(pi/2 p), p = x / size),
#          frame k's x placed at the middle of its audio span ((k + 0.5) / fps) and linearly interpolated;
#   timbre from the background: black a sine, white a band-limited square (odd harmonics n with weight 1/n, up
#          to a quarter of the sample rate).
SAMPLE_RATE = 16000  # the tiny LTX-2 audio VAE's rate (16 kHz mel front end)
FRAME_RATE = 25.0  # same as tiny/configs.py FRAME_RATE
NOTES = {"red": "C4", "orange": "D4", "yellow": "E4", "green": "F4", "cyan": "G4", "blue": "A4"}
NOTES |= {"magenta": "B4", "grey": "C5"}
SCALE = {"C4": 0, "D4": 2, "E4": 4, "F4": 5, "G4": 7, "A4": 9, "B4": 11, "C5": 12}  # semitones above C4
C4_HZ = 440.0 * 2.0 ** (-9 / 12)
GLIDE_SEMITONES = 3.0
GLIDES = {"up": GLIDE_SEMITONES, "down": -GLIDE_SEMITONES}  # semitones over the clip; other motions: 0
TIMBRES = {"black": "sine", "white": "square"}
AMPLITUDE = 0.5  # peak of the note before panning
FADE_SECONDS = 0.005  # raised-cosine fade in and out (no clicks at the clip's ends)


def note_hz(note: str) -> float:
    return C4_HZ * 2.0 ** (SCALE[note] / 12)


def soundtrack_length(num_frames: int, fps: float = FRAME_RATE, sample_rate: int = SAMPLE_RATE) -> int:
    """Samples of a clip's soundtrack: round(num_frames / fps * sample_rate)."""
    if num_frames < 1 or fps <= 0 or sample_rate <= 0:
        raise ValueError(
            f"num_frames ({num_frames}), fps ({fps}) and sample_rate ({sample_rate}) must be positive, e.g. 25, 25.0 "
            f"and {SAMPLE_RATE}"
        )
    return round(num_frames / fps * sample_rate)


def render_soundtracks(
    specs: list[ClipSpec],
    num_frames: int = FRAMES,
    fps: float = FRAME_RATE,
    sample_rate: int = SAMPLE_RATE,
    size: int = SIZE,
    device="cpu",
):
    """(N, 2, T) float32 in [-1, 1] on `device`, T = soundtrack_length(num_frames, fps, sample_rate)."""
    import torch

    n_samples = soundtrack_length(num_frames, fps, sample_rate)
    duration = num_frames / fps
    f64 = {"dtype": torch.float64, "device": device}
    t = torch.arange(n_samples, **f64) / sample_rate  # (T,)
    f0 = torch.tensor([note_hz(NOTES[s.color]) for s in specs], **f64)[:, None]  # (N, 1)
    rate = torch.tensor([GLIDES.get(s.motion, 0.0) for s in specs], **f64)[:, None] * math.log(2) / 12 / duration
    # f(t) = f0 exp(rate t), so the phase is 2 pi f0 (exp(rate t) - 1) / rate (2 pi f0 t for rate 0)
    steady = rate == 0
    phase = 2 * math.pi * f0 * torch.where(steady, t, torch.expm1(rate * t) / torch.where(steady, 1.0, rate))
    top = f0 * torch.exp(rate.clamp(min=0) * duration)  # highest frequency of each clip (N, 1)
    square = torch.tensor([TIMBRES[s.background] == "square" for s in specs], device=device)[:, None]
    wave = torch.zeros_like(phase)  # (N, T)
    for harmonic in range(1, max(2, int(sample_rate / 4 / top.min().item()) + 1), 2):
        keep = (harmonic == 1) | (square & (harmonic * top <= sample_rate / 4))  # (N, 1)
        wave += torch.where(keep, torch.sin(torch.remainder(harmonic * phase, 2 * math.pi)) / harmonic, 0.0)
    wave = AMPLITUDE * wave / wave.abs().amax(-1, keepdim=True)
    fade = torch.clamp(torch.minimum(t, duration - t) / FADE_SECONDS, 0.0, 1.0)
    wave = wave * (0.5 - 0.5 * torch.cos(math.pi * fade))

    x = torch.from_numpy(_spec_arrays(specs, num_frames)["cx"][:, :, 0, 0]).to(**f64)  # (N, F) pixels
    u = (t * fps - 0.5).clamp(0, num_frames - 1)  # frame position of every sample
    i0 = u.floor().long().clamp(max=max(num_frames - 2, 0))
    i1 = (i0 + 1).clamp(max=num_frames - 1)
    w = u - i0
    x_t = x[:, i0] * (1 - w) + x[:, i1] * w  # (N, T)
    angle = (x_t / size).clamp(0.0, 1.0) * (math.pi / 2)
    return torch.stack([wave * torch.cos(angle), wave * torch.sin(angle)], 1).float()  # (N, 2, T)


def render_soundtrack(
    spec: ClipSpec, num_frames: int = FRAMES, fps: float = FRAME_RATE, sample_rate: int = SAMPLE_RATE, size=SIZE
):
    """[2, T] float32 in [-1, 1]: the soundtrack of one clip (rules above), T = round(num_frames / fps * rate)."""
    return render_soundtracks([spec], num_frames, fps, sample_rate, size)[0]


@dataclass(frozen=True)
class AVClip:
    video: np.ndarray  # (F, H, W, 3) float32 in [0, 1], as render
    audio: "torch.Tensor"  # (2, T) float32 in [-1, 1], as render_soundtrack
    fps: float
    sample_rate: int


def render_av_clip(
    spec: ClipSpec, num_frames: int = FRAMES, fps: float = FRAME_RATE, sample_rate: int = SAMPLE_RATE, size=SIZE
) -> AVClip:
    """The clip's frames and its soundtrack."""
    video = render([spec], num_frames, size)[0]
    return AVClip(video, render_soundtracks([spec], num_frames, fps, sample_rate, size)[0], fps, sample_rate)


# ---------------------------------------------------------------------------------------------------- captions

# Words and phrases of the training captions; model/builtin.py VOCABULARY must recognise every one of them.
SHAPE_WORDS = {
    "circle": ("circle", "circle", "disc", "round dot", "ball", "disk"),
    "square": ("square", "square", "box", "block"),
    "triangle": ("triangle", "triangle", "wedge"),
}
# Each motion as a participle ("a red ball drifting to the left") and as a verb ("a red ball that drifts ...").
MOTION_PARTICIPLES = {
    "left": ("moving to the left", "going left", "drifting to the left", "heading left", "sliding leftward")
    + ("gliding to the left", "moving leftward"),
    "right": ("moving to the right", "going right", "drifting to the right", "heading right", "sliding rightward")
    + ("gliding to the right", "moving rightward"),
    "up": ("moving up", "going up", "rising", "climbing", "floating up", "drifting upward", "heading up"),
    "down": ("moving down", "going down", "falling", "sinking", "dropping", "drifting downward", "heading down"),
    "still": ("staying still", "not moving", "resting in place", "standing still", "sitting motionless")
    + ("holding still", "staying put"),
}
MOTION_VERBS = {
    "left": ("moves left", "slides left", "drifts to the left", "travels leftward", "heads left", "slides leftward")
    + ("goes left", "glides to the left"),
    "right": ("moves right", "slides right", "drifts to the right", "travels rightward", "heads right")
    + ("slides rightward", "goes right", "glides to the right"),
    "up": ("moves upward", "drifts upward", "rises", "floats up", "goes up", "climbs", "ascends", "moves up"),
    "down": ("moves downward", "drifts downward", "falls", "sinks", "goes down", "drops", "descends", "moves down"),
    "still": ("sits still", "stays put", "stays still", "does not move", "is motionless", "is stationary")
    + ("rests in place", "holds still"),
}
BACKGROUND_PHRASES = {
    "black": ("on a black background", "on black", "against a black backdrop", "on a dark background")
    + ("in front of a black screen", "on a black backdrop", "against a dark background", "over a black background")
    + ("set against black", "with a black background", "on a dark backdrop"),
    "white": ("on a white background", "on white", "against a white backdrop", "on a light background")
    + ("in front of a white screen", "on a white backdrop", "against a light background", "over a white background")
    + ("set against white", "with a white background", "on a light backdrop"),
}
BACKGROUND_WORDS = {"black": ("black", "dark"), "white": ("white", "light")}
CAPTION_MAX_BYTES = 127  # the tiny byte-level T5 reads 128 tokens: 127 bytes and the end token
_ADJECTIVES = ("", "", "", "small ", "little ", "single ", "flat ", "tiny ", "lone ", "solid ")
# Adverbs never contradict the clip: "slowly" / "quickly" only for the slowest / fastest third of SPEED_RANGE
# (train.py captions a combination with speed 0, which gets the neutral ones).
_NEUTRAL_ADVERBS = ("steadily", "smoothly")
_SLOW_ADVERBS = ("slowly", "gently")
_FAST_ADVERBS = ("quickly", "swiftly")
# Optional sound mentions, true to render_soundtrack: register from the colour's note, tone from the background,
# glide from the vertical motion.
_REGISTERS = {"low": ("low", "deep"), "middle": ("middle", "medium"), "high": ("high", "high pitched")}
_TONES = {
    "black": ("pure tone", "clean tone", "humming tone", "sine tone", "soft whistle"),
    "white": ("buzzing tone", "buzzy tone", "reedy buzz", "buzzing hum", "rough tone"),
}
_GLIDE_WORDS = {"up": ("rising",), "down": ("falling",)}


def register(color: str) -> str:
    """ "low" (C4..E4), "middle" (F4, G4) or "high" (A4..C5): the pitch range of the colour's note."""
    degree = list(COLORS).index(color)
    return "low" if degree < 3 else "middle" if degree < 5 else "high"


def _article(next_word: str) -> str:
    return "an" if next_word[0] in "aeiou" else "a"


def _adverb(spec: ClipSpec, rng: np.random.Generator) -> str:
    """An adverb true to the clip's speed, or "" (most of the time and always for still clips)."""
    if spec.motion == "still" or rng.random() < 0.7:
        return ""
    lo, hi = SPEED_RANGE
    options = _NEUTRAL_ADVERBS
    if 0 < spec.speed < lo + (hi - lo) / 3:
        options = options + _SLOW_ADVERBS
    elif spec.speed > hi - (hi - lo) / 3:
        options = options + _FAST_ADVERBS
    return options[rng.integers(len(options))]


def sound_phrase(spec: ClipSpec, rng: np.random.Generator) -> str:
    """A clause about the clip's soundtrack ("with a high humming tone", "while a low rising buzzing tone plays")."""

    def pick(options):
        return options[rng.integers(len(options))]

    glide = pick(_GLIDE_WORDS[spec.motion]) + " " if spec.motion in _GLIDE_WORDS and rng.random() < 0.5 else ""
    tone = f"{pick(_REGISTERS[register(spec.color)])} {glide}{pick(_TONES[spec.background])}"
    return pick(
        (
            f"with {_article(tone)} {tone}",
            f"while {_article(tone)} {tone} plays",
            f"to the sound of {_article(tone)} {tone}",
            f"and {_article(tone)} {tone} sounds",
        )
    )


def caption(spec: ClipSpec, rng: np.random.Generator, sound: float = 0.25) -> str:
    """A random natural phrasing of the spec (colour, shape and motion always named; background usually); with
    probability `sound` a clause about the soundtrack is added when the caption stays within CAPTION_MAX_BYTES."""

    def pick(options):
        return options[rng.integers(len(options))]

    color, shape = spec.color, pick(SHAPE_WORDS[spec.shape])
    adverb = _adverb(spec, rng)
    participle = pick(MOTION_PARTICIPLES[spec.motion])
    verb = pick(MOTION_VERBS[spec.motion])
    participle = f"{adverb} {participle}" if adverb else participle
    verb = pick((f"{verb} {adverb}", f"{adverb} {verb}")) if adverb else verb
    motion = pick((participle, verb))
    bg = pick(BACKGROUND_PHRASES[spec.background])
    bg_word = pick(BACKGROUND_WORDS[spec.background])
    adj = pick(_ADJECTIVES)
    a = _article(adj or color)

    templates = (
        # the first seven are the templates the committed weights were trained with
        f"{a} {adj}{color} {shape} {motion} {bg}",
        f"{color} {shape} {motion}",
        f"{bg}, {a} {adj}{color} {shape} {motion}",
        f"{bg_word} background, {color} {shape}, {motion}",
        f"the {color} {shape} {motion} {bg}",
        f"{_article(adj or shape)} {adj}{shape}, {color}, {motion} {bg}",
        f"{color} {shape} {motion} {bg}",
        f"{a} {adj}{color} {shape} that {verb} {bg}",
        f"there is {a} {adj}{color} {shape} {participle} {bg}",
        f"{bg}: {a} {adj}{color} {shape} {participle}",
        f"{_article(adj or shape)} {adj}{shape}, {color} in colour, {participle} {bg}",
        f"{participle} {bg}, {a} {adj}{color} {shape}",
        f"{a} {adj}{color} {shape} {bg} {verb}",
        f"{a} {adj}{color} {shape} {verb}; the background is {bg_word}",
        f"we see {a} {adj}{color} {shape} {participle} {bg}",
        f"{_article(adj or shape)} {adj}{shape} in {color} {participle} {bg}",
    )
    text = pick(templates)
    if rng.random() < sound:
        longer = text + pick((" ", ", ")) + sound_phrase(spec, rng)
        text = longer if len(longer.encode()) <= CAPTION_MAX_BYTES else text  # a clause is never cut off
    return text


def canonical_caption(color: str, shape: str, motion: str, background: str) -> str:
    """The fixed phrasing used by the evaluation prompts."""
    movement = (
        "staying still"
        if motion == "still"
        else (f"moving to the {motion}" if motion in ("left", "right") else f"moving {motion}")
    )
    return f"a {color} {shape} {movement} on a {background} background"


def first_frame(spec: ClipSpec, size: int = SIZE) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]: the clip's frame 0 (the I2V conditioning image)."""
    return render([spec], frames=1, size=size)[0, 0]
