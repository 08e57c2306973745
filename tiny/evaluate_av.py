"""Evaluation of the tiny LTX-2 audio+video model through the real pipeline (model/pipeline.load_pipeline on the
saved files -> LTX2Pipeline.generate), judged by tiny/evaluate.py (picture: colour, shape, direction, background)
and tiny/evaluate_audio.py (sound: note, pan direction, glide, timbre, pan-x correlation with the tracked shape).

Runs (128x128, 25 frames at 25 fps = 1 s, 16 kHz stereo; canonical prompts "a red triangle moving up on a black
background"):
  T2AV   held-out combinations (data.HELD_OUT on both backgrounds) and training combinations, --seeds each
  A2V    the clip's rendered soundtrack given (audio-to-video), with the canonical prompt and with an empty prompt
         (then only the sound tells colour, direction and background)
  I2AV   the clip's rendered first frame given: first-frame PSNR, and whether the generated note is the image's
         colour's

    python -m videodit.tiny.evaluate_av --checkpoint weights/tiny-ltx2-av.safetensors \
        --text-encoder weights/tiny-ltx2-gemma.safetensors --seeds 2 --train-prompts 20 --device cuda
"""

import argparse
import json
import math
import time

import numpy as np
import torch

from . import av_config, data, evaluate, evaluate_audio

PICTURE = ("color", "shape", "motion", "background")
SOUND = ("note", "pan_direction", "glide", "timbre", "pan_x_correlation_median")


def load(checkpoint: str, text_encoder: str, device: str = "cpu", dtype=torch.float32):
    from ..model.pipeline import load_pipeline

    return load_pipeline(checkpoint, text_encoder, dtype=dtype, device=device)


def guidance(cfg: float, audio_cfg: float, stg: float = 0.0, stg_block: int = 1, modality: float = 1.0):
    """Plain CFG per modality, optional STG on one block and modality guidance (the released defaults name block
    28, which the 6-block tiny transformer does not have)."""
    from ..model.ltx2.guidance import GuiderParams, MultiModalGuidance

    def params(scale):
        return GuiderParams(cfg_scale=scale, stg_scale=stg, stg_blocks=(stg_block,), modality_scale=modality)

    return MultiModalGuidance(video=params(cfg), audio=params(audio_cfg))


def generate(pipeline, prompt: str, seed: int, args, image=None, audio=None):
    """-> (frames (25, 128, 128, 3) float32 numpy in [0, 1], waveform (2, 16000) float32 torch, sample rate)."""
    result = pipeline.generate(
        prompt,
        "",
        width=av_config.SIZE,
        height=av_config.SIZE,
        num_frames=av_config.FRAMES,
        fps=av_config.FRAME_RATE,
        steps=args.steps,
        guidance=guidance(args.cfg, args.audio_cfg, args.stg, args.stg_block, args.modality),
        seed=seed,
        image=None if image is None else torch.from_numpy(np.ascontiguousarray(image)),
        audio=audio,
        image_crf=0,  # the rendered frame as it is: the PSNR compares with the given image
    )
    return result.frames.float().cpu().numpy(), result.waveform.float().cpu(), result.sample_rate


def judge(frames, waveform, rate):
    track = evaluate.track(frames)
    return track, evaluate_audio.judge(waveform, len(frames), rate, x=track.centroids[:, 0])


def scores(tracks, judgements, specs) -> dict:
    cases = [(s.color, s.shape, s.motion, s.background) for s in specs]
    return {**evaluate.score(tracks, cases), **evaluate_audio.score(judgements, specs)}


def run_t2av(pipeline, cases, seeds, args) -> dict:
    rng = np.random.default_rng(0)
    tracks, judged, specs = [], [], []
    for case in cases:
        spec = data.make_spec(*case, rng)
        for seed in seeds:
            track, sound = judge(*generate(pipeline, data.canonical_caption(*case), seed, args))
            tracks.append(track), judged.append(sound), specs.append(spec)
    return scores(tracks, judged, specs)


def run_a2v(pipeline, cases, args, with_prompt: bool) -> dict:
    """The rendered soundtrack given; the pan-x correlation is that of the given sound with the generated video."""
    rng = np.random.default_rng(1)
    tracks, judged, specs = [], [], []
    for case in cases:
        spec = data.make_spec(*case, rng)
        given = (data.render_soundtrack(spec), data.SAMPLE_RATE)
        prompt = data.canonical_caption(*case) if with_prompt else ""
        frames, waveform, rate = generate(pipeline, prompt, 0, args, audio=given)
        track, sound = judge(frames, waveform, rate)
        tracks.append(track), judged.append(sound), specs.append(spec)
    return scores(tracks, judged, specs)


def run_i2av(pipeline, cases, args) -> dict:
    rng = np.random.default_rng(2)
    tracks, judged, specs, psnrs = [], [], [], []
    for case in cases:
        spec = data.make_spec(*case, rng)
        image = data.first_frame(spec)
        frames, waveform, rate = generate(pipeline, data.canonical_caption(*case), 0, args, image=image)
        psnrs.append(evaluate.psnr(frames[0], image))
        track, sound = judge(frames, waveform, rate)
        tracks.append(track), judged.append(sound), specs.append(spec)
    return {**scores(tracks, judged, specs), "psnr_mean": float(np.mean(psnrs)), "psnr_min": float(np.min(psnrs))}


def _percent(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def table(rows: dict[str, dict]) -> str:
    lines = [
        "| run | videos | colour | shape | direction | background | note | pan direction | glide | timbre | "
        "pan-x corr. (median) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in rows.items():
        correlation = s["pan_x_correlation_median"]
        cells = [_percent(s[k]) for k in PICTURE] + [_percent(s[k]) for k in SOUND[:4]]
        cells.append("n/a" if math.isnan(correlation) else f"{correlation:.2f}")
        lines.append(f"| {name} | {s['count']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="weights/tiny-ltx2-av.safetensors")
    p.add_argument("--text-encoder", default="weights/tiny-ltx2-gemma.safetensors")
    p.add_argument("--seeds", type=int, default=2, help="seeds per T2AV prompt")
    p.add_argument("--train-prompts", type=int, default=20, help="training combinations scored as well")
    p.add_argument("--held-out", type=int, default=0, help="only the first N held-out cases (0: all 20)")
    p.add_argument("--steps", type=int, default=av_config.DEFAULTS["steps"])
    p.add_argument("--cfg", type=float, default=3.0, help="video CFG scale")
    p.add_argument("--audio-cfg", type=float, default=3.0, help="audio CFG scale")
    p.add_argument("--stg", type=float, default=0.0, help="STG scale (both modalities, on --stg-block)")
    p.add_argument("--stg-block", type=int, default=1)
    p.add_argument("--modality", type=float, default=1.0, help="modality guidance scale (1: off)")
    p.add_argument("--runs", default="t2av,a2v,i2av", help="comma-separated subset of t2av, a2v, i2av")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave)")
    p.add_argument("--json", default=None, help="write the numbers to this file")
    p.add_argument("--notes", default=None, help="append the markdown table to this file")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    pipeline = load(args.checkpoint, args.text_encoder, args.device)
    held = evaluate.eval_cases(held_out_only=True)
    held = held[: args.held_out] if args.held_out else held
    train = evaluate.eval_cases(train_count=args.train_prompts)[len(evaluate.eval_cases(held_out_only=True)) :]
    seeds, runs, rows = tuple(range(args.seeds)), set(args.runs.split(",")), {}
    if "t2av" in runs:
        rows["T2AV held-out combinations"] = run_t2av(pipeline, held, seeds, args)
        if train:
            rows["T2AV training combinations"] = run_t2av(pipeline, train, seeds, args)
    if "a2v" in runs:
        rows["A2V held-out, prompt + given sound"] = run_a2v(pipeline, held, args, with_prompt=True)
        rows["A2V held-out, empty prompt + given sound"] = run_a2v(pipeline, held, args, with_prompt=False)
    if "i2av" in runs:
        rows["I2AV held-out, first frame given"] = run_i2av(pipeline, held, args)
    lines = [
        f"{args.steps} steps, CFG video {args.cfg} / audio {args.audio_cfg}, STG {args.stg}, modality "
        f"{args.modality}; accuracy in % (direction: tracked motion; pan direction on left/right clips, glide on "
        "up/down clips; for A2V the sound columns judge the given track, the pan-x correlation is the given pan "
        "against the generated shape's x):",
        "",
        table(rows),
    ]
    if "I2AV held-out, first frame given" in rows:
        i2av = rows["I2AV held-out, first frame given"]
        lines.append(
            f"\nI2AV first-frame PSNR mean {i2av['psnr_mean']:.2f} dB, min {i2av['psnr_min']:.2f} dB; the note matches "
            f"the image's colour in {_percent(i2av['note'])} %."
        )
    lines.append(f"(evaluation took {time.time() - t0:.0f} s on {args.device})")
    text = "\n".join(lines)
    print(text, flush=True)
    if args.notes:
        with open(args.notes, "a") as f:
            f.write("\n" + text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
