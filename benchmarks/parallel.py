"""GPU benchmark of model/parallel: one transformer step (CFG batch 2) at 1, 2, 4, 8 GPUs, and the scaling
efficiency t_1 / (n * t_n), for the 13B LTX-Video 0.9.x DiT and the 22B LTX-2.3 at 1216x704x121.

    NCCL_NVLS_ENABLE=0 python benchmarks/parallel.py --model ltxv-13b --gpus 1,2,4,8 --out DIR [--mode sequence]

The launcher starts `torchrun --standalone --nproc-per-node n` of this file per GPU count (workers: --worker).
Mode "sequence": the video tokens are split over the GPUs (Ulysses all-to-all); "batch": the CFG batch is split
(n <= 2 useful). Random bf16 weights, the same on every rank (seeded); video 1216x704x121 = 16 x 22 x 38 = 13376
latent tokens (plus, for LTX-2, 121 audio tokens and 1024 text tokens; 0.9.x: 128 text tokens). Times are medians
of CUDA-event timings after warm-up, taken between barriers (the slowest rank sets the step time).
NVLink multicast (NVLS) must stay off: the script refuses to run unless NCCL_NVLS_ENABLE=0 is set.
Results: DIR/parallel-MODEL-MODE.json and .md. Not run yet (no multi-GPU machine was lent).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist

WIDTH, HEIGHT, FRAMES, FPS = 1216, 704, 121, 25.0
LATENT = ((FRAMES - 1) // 8 + 1, HEIGHT // 32, WIDTH // 32)  # 16, 22, 38
MODELS = ("ltxv-13b", "ltx2-22b")


def check_environment() -> None:
    if os.environ.get("NCCL_NVLS_ENABLE") != "0":
        sys.exit("benchmarks/parallel.py: set NCCL_NVLS_ENABLE=0 (NVLink multicast must stay off) and run again")


def random_model(make_model, device: torch.device) -> torch.nn.Module:
    """Built on the meta device, allocated in bf16 on the GPU, filled with seeded small random values there."""
    with torch.device("meta"):
        model = make_model().to(torch.bfloat16)
    model = model.to_empty(device=device)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    return model.eval()


def build(name: str, mode: str, device: torch.device):
    """-> step() running one CFG-batch-2 forward the way `mode` splits it."""
    from videodit.model import parallel

    bf16 = torch.bfloat16
    frames, height, width = LATENT
    tokens = frames * height * width
    torch.manual_seed(1)
    if name == "ltxv-13b":
        from videodit.model.ltxv.dit import LTXVideoTransformer, ltxv_13b
        from videodit.model.ltxv.positions import video_coords

        config = ltxv_13b()
        model = random_model(lambda: LTXVideoTransformer(config), device)
        args = (
            torch.randn(2, tokens, config.in_channels, device=device, dtype=bf16),
            video_coords(2, frames, height, width, FPS, True, device=device),
            torch.randn(2, 128, config.caption_channels, device=device, dtype=bf16),
            torch.ones(2, 128, device=device),
            torch.full((2, 1), 0.5, device=device),
        )
        run = {"sequence": parallel.dit_sequence_parallel, "batch": parallel.dit_batch_split}[mode]
    else:
        from videodit.model.ltx2.config import ltx2_3_22b
        from videodit.model.ltx2.latents import audio_positions, audio_token_count, video_positions
        from videodit.model.ltx2.streams import Stream
        from videodit.model.ltx2.transformer import LTX2Transformer

        config = ltx2_3_22b()
        model = random_model(lambda: LTX2Transformer(config), device)
        audio_tokens = audio_token_count(FRAMES, FPS)

        def stream(count, channels, positions, context_width):
            return Stream(
                latent=torch.randn(2, count, channels, device=device, dtype=bf16),
                sigma=torch.full((2,), 0.5, device=device),
                timesteps=torch.full((2, count), 0.5, device=device),
                positions=positions,
                context=torch.randn(2, 1024, context_width, device=device, dtype=bf16),
            )

        args = (
            stream(tokens, config.in_channels, video_positions(2, frames, height, width, FPS, device=device),
                   config.cross_attention_dim),
            stream(audio_tokens, config.audio_in_channels, audio_positions(2, audio_tokens, device),
                   config.audio_cross_attention_dim),
        )  # fmt: skip
        run = {"sequence": parallel.ltx2_sequence_parallel, "batch": parallel.ltx2_batch_split}[mode]

    if dist.get_world_size() == 1:
        return lambda: model(*args)
    return lambda: run(model, *args)


def worker(name: str, mode: str, warmup: int, repeats: int, result: Path) -> None:
    check_environment()
    from videodit.model.parallel import init_from_env

    pg = init_from_env("nccl")
    device = torch.device("cuda", torch.cuda.current_device())
    step = build(name, mode, device)
    with torch.inference_mode():
        for _ in range(warmup):
            step()
        times = []
        for _ in range(repeats):
            dist.barrier()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            elapsed = torch.tensor([start.elapsed_time(end)], device=device)
            dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)  # the slowest rank sets the step time
            times.append(elapsed.item())
    if pg.rank == 0:
        row = {
            "gpus": pg.size,
            "ms": statistics.median(times),
            "ms_all": times,
            "peak_gib": torch.cuda.max_memory_allocated() / 1024**3,
            "gpu": torch.cuda.get_device_name(),
        }
        result.write_text(json.dumps(row))
    dist.destroy_process_group()


def launch(args) -> None:
    check_environment()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for gpus in (int(n) for n in args.gpus.split(",")):
        result = out / f".parallel-{args.model}-{args.mode}-{gpus}.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}"]
        command += [__file__, "--worker", "--model", args.model, "--mode", args.mode, "--out", str(result)]
        command += ["--warmup", str(args.warmup), "--repeats", str(args.repeats)]
        print(" ".join(command), flush=True)
        subprocess.run(command, check=True)
        rows.append(json.loads(result.read_text()))
        print(rows[-1], flush=True)
    base = next((row["ms"] for row in rows if row["gpus"] == 1), None)
    for row in rows:
        row["speedup"] = None if base is None else base / row["ms"]
        row["efficiency"] = None if base is None else base / (row["gpus"] * row["ms"])
    stem = out / f"parallel-{args.model}-{args.mode}"
    stem.with_suffix(".json").write_text(json.dumps({"model": args.model, "mode": args.mode, "rows": rows}, indent=1))
    lines = [
        f"{args.model}, {args.mode} split, {WIDTH}x{HEIGHT}x{FRAMES}, CFG batch 2, bf16",
        "",
        "| GPUs | step ms | speedup | efficiency | peak GiB |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        speedup = "-" if row["speedup"] is None else f"{row['speedup']:.2f}x"
        efficiency = "-" if row["efficiency"] is None else f"{100 * row['efficiency']:.0f} %"
        lines.append(f"| {row['gpus']} | {row['ms']:.1f} | {speedup} | {efficiency} | {row['peak_gib']:.1f} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=MODELS, default="ltxv-13b")
    parser.add_argument("--mode", choices=("sequence", "batch"), default="sequence")
    parser.add_argument("--gpus", default="1,2,4,8")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/parallel")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.model, args.mode, args.warmup, args.repeats, Path(args.out))
    else:
        launch(args)


if __name__ == "__main__":
    main()
