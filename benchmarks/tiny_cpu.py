"""CPU main-job timing of the built-in tiny model: load + text-to-video sample + decode + save MP4.

Each run is a fresh process-level job in this process: load both weight files through the real loaders
(model/pipeline.load_pipeline), generate 25 frames of 128x128 with the checkpoint's default steps and CFG, write an
H.264 MP4 (nodes/video_io.write_video). Prints every run and the median last.

    python benchmarks/tiny_cpu.py --threads 2 --runs 5
"""

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
import torch
from videodit.model.pipeline import load_pipeline
from videodit.model.sampling import Guidance
from videodit.nodes.video_io import write_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT = os.path.join(ROOT, "weights", "videodit-tiny.safetensors")
TEXT_ENCODER = os.path.join(ROOT, "weights", "t5-tiny.safetensors")
PROMPT = "a red circle moving to the right on a black background"


def one_run(out_dir: str, seed: int, dtype: torch.dtype) -> dict:
    times = {}
    t0 = time.perf_counter()
    pipeline = load_pipeline(CHECKPOINT, TEXT_ENCODER, dtype=dtype, device="cpu")
    with open(CHECKPOINT, "rb") as f:  # defaults stored by the trainer (tiny/configs.py DEFAULTS)
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    defaults = json.loads(header["__metadata__"]["config"])["videodit"]
    times["load"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    frames = pipeline.generate(
        prompt=PROMPT,
        negative_prompt=defaults["negative_prompt"],
        width=defaults["width"],
        height=defaults["height"],
        num_frames=defaults["num_frames"],
        frame_rate=defaults["frame_rate"],
        steps=defaults["steps"],
        guidance=Guidance(cfg=defaults["cfg"]),
        seed=seed,
    )
    times["generate"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    video = (frames.float().clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
    path = os.path.join(out_dir, f"tiny_{seed}.mp4")
    write_video(video, path, defaults["frame_rate"], "mp4 (h264)", 19, {})
    times["save"] = time.perf_counter() - t2
    times["total"] = time.perf_counter() - t0
    times["bytes"] = os.path.getsize(path)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    with tempfile.TemporaryDirectory() as out_dir:
        one_run(out_dir, seed=-1 % 1000, dtype=dtype)  # warm-up: imports, ffmpeg binary, allocator
        totals = []
        for i in range(args.runs):
            t = one_run(out_dir, seed=i, dtype=dtype)
            totals.append(t["total"])
            print(
                f"run {i}: load {t['load']:.2f} s, generate (T5 + {args.threads}-thread sampling + decode) "
                f"{t['generate']:.2f} s, save MP4 {t['save']:.2f} s ({t['bytes']} bytes), total {t['total']:.2f} s",
                flush=True,
            )
    print(
        f"median total over {args.runs} runs ({args.threads} threads, {args.dtype}): {statistics.median(totals):.2f} s"
    )


if __name__ == "__main__":
    main()
