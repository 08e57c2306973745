"""Evaluation of the tiny model: generate videos through the real pipeline, track the shape, score the prompts.

Tracker (no model needed): background = median of the border pixels; shape colour = median of the pixels far from
the background, snapped to the nearest palette colour; per frame, pixels more than half-way from the background to
that colour form the mask; centroid per frame; shape from two measures of the mask inside its bounding box: the
vertical asymmetry (area of the lower half minus the upper half, over the area: an upright triangle 0.5, circle
and square 0) and the fill ratio (circle pi/4, square 1), each split at the midpoint of the ideal values; motion
from the displacement between the first and the last frames. Rendered shapes never touch the frame edge, so a mask
touching it in most frames gives no shape (a wrong answer).

    python -m videodit.tiny.evaluate --checkpoint weights/videodit-tiny.safetensors \
        --text-encoder weights/t5-tiny.safetensors --seeds 2 --steps 20 --notes tiny/NOTES.md
"""

import argparse
import json
import math
import time
from dataclasses import dataclass

import numpy as np

from . import configs, data

# Midpoints between the ideal values of the shape measures: asymmetry triangle 0.5 vs circle/square 0; fill ratio
# circle pi/4 vs square 1.
TRIANGLE_ASYMMETRY = 0.25
CIRCLE_SQUARE_FILL = (math.pi / 4 + 1.0) / 2
STILL_PIXELS = 10.0  # a displacement below this (first to last frames) counts as "still"
MIN_AREA = 12  # pixels; frames with a smaller mask are not tracked


@dataclass
class Track:
    color: str | None
    shape: str | None
    motion: str | None
    background: str
    centroids: np.ndarray  # (F, 2) x, y in pixels; NaN where the shape was not found
    fill_ratio: float
    asymmetry: float
    displacement: tuple[float, float]


def _nearest(value: np.ndarray, table: dict) -> str:
    names = list(table)
    ref = np.array([np.broadcast_to(np.asarray(table[n], dtype=np.float32), value.shape) for n in names])
    return names[int(np.argmin(((ref - value) ** 2).sum(axis=-1)))]


def track(video: np.ndarray) -> Track:
    """video: (F, H, W, 3) float in [0, 1]."""
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"video must be (F, H, W, 3), got shape {video.shape}")
    video = np.asarray(video, dtype=np.float32)
    f, h, w, _ = video.shape
    border = np.concatenate([video[:, 0], video[:, -1], video[:, :, 0], video[:, :, -1]], axis=1)  # (F, 2H+2W, 3)
    bg = np.median(border.reshape(-1, 3), axis=0)
    background = _nearest(bg, {k: (v, v, v) for k, v in data.BACKGROUNDS.items()})

    distance = np.linalg.norm(video - bg, axis=-1)  # (F, H, W)
    strong = distance > 0.5 * distance.max() if distance.max() > 0.2 else np.zeros_like(distance, dtype=bool)
    if strong.sum() < MIN_AREA:
        return Track(None, None, None, background, np.full((f, 2), np.nan), float("nan"), float("nan"), (0.0, 0.0))
    color_rgb = np.median(video[strong], axis=0)
    color = _nearest(color_rgb, data.COLORS)

    # Coverage estimate: projection of (pixel - bg) onto (colour - bg); the mask is coverage > 0.5.
    direction = color_rgb - bg
    coverage = ((video - bg) @ direction) / max(float(direction @ direction), 1e-6)
    mask = coverage > 0.5
    ys, xs = np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32)
    centroids = np.full((f, 2), np.nan, dtype=np.float32)
    fills, asymmetries, touching = [], [], 0
    for i in range(f):
        m = mask[i]
        area = int(m.sum())
        if area < MIN_AREA:
            continue
        touching += bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
        rows, cols = np.any(m, axis=1), np.any(m, axis=0)
        centroids[i] = (float((m.sum(axis=0) * xs).sum() / area), float((m.sum(axis=1) * ys).sum() / area))
        r0, r1 = np.argmax(rows), h - np.argmax(rows[::-1])
        c0, c1 = np.argmax(cols), w - np.argmax(cols[::-1])
        box = m[r0:r1, c0:c1]
        half = (r1 - r0) // 2  # rows above / below the middle (the middle row of an odd height counts for neither)
        fills.append(area / float(box.size))
        asymmetries.append(float(box[-half:].sum() - box[:half].sum()) / area if half else 0.0)
    if not fills:
        return Track(color, None, None, background, centroids, float("nan"), float("nan"), (0.0, 0.0))
    fill, asymmetry = float(np.median(fills)), float(np.median(asymmetries))
    shape = "triangle" if asymmetry > TRIANGLE_ASYMMETRY else "circle" if fill < CIRCLE_SQUARE_FILL else "square"
    if touching > len(fills) // 2:
        shape = None

    found = np.nonzero(~np.isnan(centroids[:, 0]))[0]
    k = max(1, min(4, len(found) // 4))
    start, end = centroids[found[:k]].mean(axis=0), centroids[found[-k:]].mean(axis=0)
    dx, dy = float(end[0] - start[0]), float(end[1] - start[1])
    if max(abs(dx), abs(dy)) < STILL_PIXELS:
        motion = "still"
    elif abs(dx) >= abs(dy):
        motion = "right" if dx > 0 else "left"
    else:
        motion = "down" if dy > 0 else "up"
    return Track(color, shape, motion, background, centroids, fill, asymmetry, (dx, dy))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images in [0, 1]."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


# ---------------------------------------------------------------------------------------------------- prompts


def eval_cases(held_out_only: bool = False, train_count: int = 0, seed: int = 0) -> list[tuple[str, str, str, str]]:
    """(colour, shape, motion, background) cases: every held-out combination on both backgrounds, plus
    `train_count` training combinations drawn with `seed` (alternating backgrounds)."""
    cases = [(c, s, m, bg) for (c, s, m) in data.HELD_OUT for bg in data.BACKGROUNDS]
    if not held_out_only and train_count:
        rng = np.random.default_rng(seed)
        pool = data.combos("train")
        picks = rng.choice(len(pool), size=train_count, replace=False)
        cases += [(*pool[i], list(data.BACKGROUNDS)[j % 2]) for j, i in enumerate(picks)]
    return cases


def score(tracks: list[Track], cases: list[tuple[str, str, str, str]]) -> dict:
    """Accuracy of colour, shape, motion and background of tracks against their cases."""
    n = len(cases)
    if n == 0:
        raise ValueError("score: no cases")
    result = {}
    for i, key in enumerate(("color", "shape", "motion", "background")):
        result[key] = sum(getattr(t, key) == c[i] for t, c in zip(tracks, cases)) / n
    result["all"] = (
        sum(
            all(getattr(t, k) == c[i] for i, k in enumerate(("color", "shape", "motion", "background")))
            for t, c in zip(tracks, cases)
        )
        / n
    )
    result["count"] = n
    return result


# ---------------------------------------------------------------------------------------------------- generation

DEFAULT_STEPS = configs.DEFAULTS["steps"]
DEFAULT_CFG = configs.DEFAULTS["cfg"]


def load(checkpoint: str, text_encoder: str, dtype=None, device: str = "cpu"):
    """The real pipeline for the tiny weights (model/pipeline.py load_pipeline)."""
    import torch

    from ..model.pipeline import load_pipeline

    return load_pipeline(checkpoint, text_encoder, dtype=dtype or torch.float32, device=device)


def generate(
    pipeline,
    prompt: str,
    seed: int,
    steps: int = DEFAULT_STEPS,
    cfg: float = DEFAULT_CFG,
    image: np.ndarray | None = None,
    last_image: np.ndarray | None = None,
) -> np.ndarray:
    """(25, 128, 128, 3) float in [0, 1] through VideoPipeline.generate; image: optional (128, 128, 3) first frame
    in [0, 1] (I2V: a hard keyframe at frame 0); last_image: optional last frame (a keyframe at frame 24)."""
    import torch

    from ..model.pipeline import ImageKeyframe
    from ..model.sampling import Guidance

    keyframes = [
        ImageKeyframe(torch.from_numpy(np.ascontiguousarray(picture)), frame)
        for picture, frame in ((image, 0), (last_image, data.FRAMES - 1))
        if picture is not None
    ]
    frames = pipeline.generate(
        prompt=prompt,
        negative_prompt="",
        width=data.SIZE,
        height=data.SIZE,
        num_frames=data.FRAMES,
        frame_rate=25.0,
        steps=steps,
        guidance=Guidance(cfg=cfg),
        seed=seed,
        keyframes=keyframes,
        image_crf=0,  # rendered frames as they are: the measured first-frame PSNRs compare with the input image
    )
    return frames.float().cpu().numpy()


def evaluate_t2v(pipeline, cases, seeds=(0,), steps=DEFAULT_STEPS, cfg=DEFAULT_CFG) -> tuple[dict, list]:
    tracks, scored = [], []
    for case in cases:
        prompt = data.canonical_caption(*case)
        for seed in seeds:
            tracks.append(track(generate(pipeline, prompt, seed, steps, cfg)))
            scored.append(case)
    return score(tracks, scored), tracks


def evaluate_i2v(pipeline, cases, seed=0, steps=DEFAULT_STEPS, cfg=DEFAULT_CFG) -> tuple[list[float], dict, dict]:
    """I2V (keyframe at frame 0 = the rendered first frame of a clip): first-frame PSNRs and the track score; and
    the distance in pixels of the tracked end position from the clip's rendered one, with the first frame only
    and with the rendered last frame as a second keyframe (first-last): {"i2v": [...], "first_last": [...]}."""
    rng = np.random.default_rng(seed)
    psnrs, tracks, end_errors = [], [], {"i2v": [], "first_last": []}
    for case in cases:
        spec = data.make_spec(*case, rng)
        image, last = data.render([spec])[0][[0, -1]]
        end = np.array(spec.center(data.FRAMES - 1))
        video = generate(pipeline, data.canonical_caption(*case), seed, steps, cfg, image=image)
        psnrs.append(psnr(video[0], image))
        tracks.append(track(video))
        both = generate(pipeline, data.canonical_caption(*case), seed, steps, cfg, image=image, last_image=last)
        for name, result in (("i2v", tracks[-1]), ("first_last", track(both))):
            end_errors[name].append(float(np.linalg.norm(result.centroids[-1] - end)))
    return psnrs, score(tracks, cases), end_errors


def _row(name, s):
    return (
        f"| {name} | {s['count']} | {100 * s['color']:.1f} | {100 * s['shape']:.1f} | {100 * s['motion']:.1f} | "
        f"{100 * s['background']:.1f} | {100 * s['all']:.1f} |"
    )


def _pixels(errors: list[float]) -> str:
    """Mean and max of end-position errors; NaN (shape not found in the last frame) counts as a miss."""
    found = [e for e in errors if not math.isnan(e)]
    missed = len(errors) - len(found)
    text = f"mean {np.mean(found):.1f} px, max {np.max(found):.1f} px" if found else "no shape found"
    return text + (f" ({missed} of {len(errors)} without a shape in the last frame)" if missed else "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="weights/videodit-tiny.safetensors")
    parser.add_argument("--text-encoder", default="weights/t5-tiny.safetensors")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per prompt")
    parser.add_argument("--train-prompts", type=int, default=20, help="training combinations to score as well")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--cfg", type=float, default=DEFAULT_CFG)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--notes", default=None, help="append the markdown table to this file")
    parser.add_argument("--json", default=None, help="write the numbers to this file")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    pipeline = load(args.checkpoint, args.text_encoder, device=args.device)
    seeds = tuple(range(args.seeds))
    held = eval_cases(held_out_only=True)
    train = eval_cases(train_count=args.train_prompts)[len(held) :]
    held_score, _ = evaluate_t2v(pipeline, held, seeds, args.steps, args.cfg)
    train_score, _ = evaluate_t2v(pipeline, train, seeds, args.steps, args.cfg) if train else (None, None)
    psnrs, i2v_score, end_errors = evaluate_i2v(pipeline, held, seed=0, steps=args.steps, cfg=args.cfg)
    elapsed = time.time() - t0
    lines = [
        f"T2V, {args.steps} steps, CFG {args.cfg}, seeds {list(seeds)}, canonical prompts "
        f'("a red triangle moving up on a black background"); accuracy in %:',
        "",
        "| prompts | videos | colour | shape | direction | background | all four |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        _row("held-out combinations", held_score),
    ]
    if train_score:
        lines.append(_row("training combinations", train_score))
    lines += [
        "",
        f"I2V (frame-0 keyframe = rendered first frame, held-out combinations, {len(psnrs)} videos): first-frame "
        f"PSNR mean {np.mean(psnrs):.2f} dB, min {np.min(psnrs):.2f} dB; tracking accuracy colour "
        f"{100 * i2v_score['color']:.1f}%, shape {100 * i2v_score['shape']:.1f}%, direction "
        f"{100 * i2v_score['motion']:.1f}%.",
        f"End position (frame {data.FRAMES - 1}) vs the rendered clip's: first frame only {_pixels(end_errors['i2v'])};"
        f" with the last frame as a second keyframe {_pixels(end_errors['first_last'])}.",
        f"(evaluation took {elapsed:.0f} s on {args.device})",
    ]
    text = "\n".join(lines)
    print(text)
    if args.notes:
        with open(args.notes, "a") as f:
            f.write("\n" + text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "held_out": held_score,
                    "train": train_score,
                    "i2v_psnr": psnrs,
                    "i2v": i2v_score,
                    "end_error_px": end_errors,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
