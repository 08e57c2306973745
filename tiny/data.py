"""Synthetic world of the tiny model: one coloured shape moving on a plain background.

A clip is 25 frames of 128x128 RGB. Its content is fixed by a ClipSpec: colour, shape, motion, background, the
shape's half-size, its start position and its speed. Captions describe the spec in varied phrasing.

Rendering uses array operators only, so the same code draws with numpy (render) and, for training on a GPU, with
torch (render_torch). Shapes get a one-pixel anti-aliased edge from a signed distance.
"""

import math
from dataclasses import dataclass

import numpy as np

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


# ---------------------------------------------------------------------------------------------------- captions

_SHAPE_WORDS = {
    "circle": ("circle", "circle", "disc", "round dot"),
    "square": ("square", "square", "box"),
    "triangle": ("triangle",),
}
_MOTION_PHRASES = {
    "left": ("moving to the left", "moves left", "slides left", "drifts to the left", "travels leftward", "going left"),
    "right": (
        "moving to the right",
        "moves right",
        "slides right",
        "drifts to the right",
        "travels rightward",
        "going right",
    ),
    "up": ("moving up", "moves upward", "drifts upward", "rises", "floats up", "going up"),
    "down": ("moving down", "moves downward", "drifts downward", "falls", "sinks", "going down"),
    "still": ("staying still", "sits still", "not moving", "resting in place", "standing still", "stays put"),
}
_BACKGROUND_PHRASES = {
    "black": (
        "on a black background",
        "on black",
        "against a black backdrop",
        "on a dark background",
        "in front of a black screen",
    ),
    "white": (
        "on a white background",
        "on white",
        "against a white backdrop",
        "on a light background",
        "in front of a white screen",
    ),
}
_ADJECTIVES = ("", "", "", "small ", "little ", "single ", "flat ")


def caption(spec: ClipSpec, rng: np.random.Generator) -> str:
    """A random natural phrasing of the spec (colour, shape and motion always named; background usually)."""

    def pick(options):
        return options[rng.integers(len(options))]

    color, shape, motion = spec.color, pick(_SHAPE_WORDS[spec.shape]), pick(_MOTION_PHRASES[spec.motion])
    bg = pick(_BACKGROUND_PHRASES[spec.background])
    bg_word = spec.background
    adj = pick(_ADJECTIVES)

    def article(next_word: str) -> str:
        return "an" if next_word[0] in "aeiou" else "a"

    templates = (
        f"{article(adj or color)} {adj}{color} {shape} {motion} {bg}",
        f"{color} {shape} {motion}",
        f"{bg}, {article(adj or color)} {adj}{color} {shape} {motion}",
        f"{bg_word} background, {color} {shape}, {motion}",
        f"the {color} {shape} {motion} {bg}",
        f"{article(adj or shape)} {adj}{shape}, {color}, {motion} {bg}",
        f"{color} {shape} {motion} {bg}",
    )
    return pick(templates)


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
