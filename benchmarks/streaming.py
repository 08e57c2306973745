"""GPU benchmark of weight streaming (model/streaming.py): one transformer step fully resident against the same
step with the blocks streamed from pinned host memory under a simulated smaller card.

    python benchmarks/streaming.py --model ltx2-22b --card-gib 24 --out DIR [--fp8] [--repeats 5]

Random weights (bf16, or fp8: LTX-Video through SpeedOptions(fp8=True), LTX-2 with fp8-stored block weights and
bf16 matmuls), CFG batch 2, video 768x512x121 (6144 latent tokens) plus, for LTX-2, the clip's 121 audio tokens
and 1024 text tokens. The smaller card is simulated with torch.cuda.set_per_process_memory_fraction; the blocks
allowed on the GPU at once are planned from the memory left after the non-block weights and the activations the
resident run measured. Times are medians of CUDA-event timings after warm-up.
Results: DIR/streaming-MODEL-WEIGHTS.json and .md.
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import time_cuda  # noqa: E402  (benchmarks/ is not a package)

GIB = 1024**3
WIDTH, HEIGHT, FRAMES, FPS = 768, 512, 121, 25.0
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def random_weights(make_model, dtype: torch.dtype, device: str) -> torch.nn.Module:
    """Build on the meta device, allocate in `dtype` on `device` (no float32 copy of 22B), fill with small random
    values there (on the GPU: seconds, where the CPU takes minutes for 22B). Buffers (if any) must be recomputed by
    the model itself; none of the benchmarked models has one."""
    with torch.device("meta"):
        model = make_model().to(dtype)
    if any(True for _ in model.buffers()):
        raise ValueError("random_weights: the model has buffers, which to_empty would leave uninitialised")
    model = model.to_empty(device=device)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    return model.eval()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def build(name: str, dtype: torch.dtype):
    """-> (model on DEVICE, its blocks, make_inputs(device) -> kwargs of one CFG-batch-2 forward)."""
    if name.startswith("ltxv"):
        from videodit.model.ltxv.dit import LTXVideoTransformer, ltxv_2b, ltxv_13b
        from videodit.model.ltxv.positions import video_coords

        config = {"ltxv-2b": ltxv_2b, "ltxv-13b": ltxv_13b}[name]()
        model = random_weights(lambda: LTXVideoTransformer(config), dtype, DEVICE)
        frames, height, width = (FRAMES - 1) // 8 + 1, HEIGHT // 32, WIDTH // 32

        def make_inputs(device):
            n = frames * height * width
            return dict(
                tokens=torch.randn(2, n, config.in_channels, device=device, dtype=dtype),
                coords=video_coords(2, frames, height, width, FPS, True, device=device),
                text=torch.randn(2, 128, config.caption_channels, device=device, dtype=dtype),
                text_mask=torch.ones(2, 128, device=device),
                timestep=torch.full((2, 1), 0.5, device=device),
            )

        return model, model.transformer_blocks, make_inputs
    return build_ltx2(name, dtype)


LTX2_PRESETS = {"ltx2-19b": "ltx2_0_19b", "ltx2-22b": "ltx2_3_22b", "ltx2-2.5-22b": "ltx2_5_22b", "ltx2-tiny": "tiny"}
TEXT_TOKENS = 1024  # LTX-2 prompts are padded to 1024 Gemma tokens; the connector fills the padding with registers


def build_ltx2(name: str, dtype: torch.dtype):
    """The LTX-2 audio+video transformer of a released size, and a joint video+audio CFG-batch-2 step of the clip."""
    from videodit.model.ltx2 import config as presets
    from videodit.model.ltx2.latents import audio_positions, audio_token_count, video_positions
    from videodit.model.ltx2.streams import Stream
    from videodit.model.ltx2.transformer import LTX2Transformer

    if name not in LTX2_PRESETS:
        raise ValueError(f"--model {name!r}: choose one of ltxv-2b, ltxv-13b, {', '.join(LTX2_PRESETS)}")
    config = getattr(presets, LTX2_PRESETS[name])()
    model = random_weights(lambda: LTX2Transformer(config), dtype, DEVICE)
    frames, height, width = (FRAMES - 1) // 8 + 1, HEIGHT // 32, WIDTH // 32
    audio_tokens = audio_token_count(FRAMES, FPS)  # 121 frames at 25 fps: 121 audio latents
    video_width = config.caption_channels or config.cross_attention_dim
    audio_width = config.caption_channels or config.audio_cross_attention_dim

    def stream(tokens, channels, positions, context_width, device):
        return Stream(
            latent=torch.randn(2, tokens, channels, device=device, dtype=dtype),
            sigma=torch.full((2,), 0.5, device=device),
            timesteps=torch.full((2, tokens), 0.5, device=device),
            positions=positions,
            context=torch.randn(2, TEXT_TOKENS, context_width, device=device, dtype=dtype),
        )

    def make_inputs(device):
        video_tokens = frames * height * width  # 16 x 16 x 24 = 6144
        video_pos = video_positions(2, frames, height, width, FPS, device=device)
        audio_pos = audio_positions(2, audio_tokens, device)
        return dict(
            video=stream(video_tokens, config.in_channels, video_pos, video_width, device),
            audio=stream(audio_tokens, config.audio_in_channels, audio_pos, audio_width, device),
        )

    return model, model.transformer_blocks, make_inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ltx2-22b")
    parser.add_argument("--card-gib", type=float, default=24.0)
    parser.add_argument("--fp8", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    from videodit.model.blocks.fp8 import convert_linears_to_fp8
    from videodit.model.speed import SpeedOptions, apply_speed_options
    from videodit.model.streaming import module_bytes, plan_resident_blocks, stream_blocks

    t0 = time.perf_counter()
    model, blocks, make_inputs = build(args.model, torch.bfloat16)
    if args.model.startswith("ltxv"):
        model = apply_speed_options(model, SpeedOptions(fp8=args.fp8, attention="auto"))
    elif args.fp8:
        convert_linears_to_fp8(blocks)  # LTX-2: fp8-stored block weights, matmuls dequantised to bf16
    build_s = time.perf_counter() - t0
    log(f"built {args.model} ({'fp8' if args.fp8 else 'bf16'}) on {DEVICE} in {build_s:.1f} s")
    weights = module_bytes(model)
    block_bytes = sum(module_bytes(b) for b in blocks)
    inputs = make_inputs("cuda")

    def step():
        with torch.no_grad():
            model(**inputs)

    row = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "model": args.model,
        "weights": "fp8" if args.fp8 else "bf16",
        "weights_gib": weights / GIB,
        "build_s": build_s,
        "card_gib": args.card_gib,
        "width": WIDTH,
        "height": HEIGHT,
        "frames": FRAMES,
        "batch": 2,
    }

    resident = time_cuda(step, 2, args.repeats)
    log(f"resident step {resident['ms']:.1f} ms, peak {resident['peak_gib']:.1f} GiB")
    activations = resident["peak_gib"] * GIB - weights
    row.update(
        resident_ms=resident["ms"],
        resident_all=resident["ms_all"],
        resident_peak_gib=resident["peak_gib"],
        activation_gib=activations / GIB,
    )
    other = weights - block_bytes
    n_resident = plan_resident_blocks(blocks, int(args.card_gib * GIB), int(activations * 1.1) + GIB, other)
    n_resident = n_resident or len(blocks)
    t0 = time.perf_counter()
    streamer = stream_blocks(model, blocks, "cuda", n_resident)  # block weights: GPU -> pinned host memory
    torch.cuda.empty_cache()
    row["pin_s"] = time.perf_counter() - t0
    log(
        f"{len(blocks) - len(streamer.kept)} streamed blocks in pinned host memory in {row['pin_s']:.1f} s; "
        f"{len(streamer.kept)} kept on the GPU, {streamer.window} streaming slots"
    )
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(args.card_gib * GIB / total)
    try:
        streamed = time_cuda(step, 2, args.repeats)
        log(f"streamed step {streamed['ms']:.1f} ms, peak {streamed['peak_gib']:.1f} GiB")
        row.update(
            resident_blocks=n_resident,
            kept_blocks=len(streamer.kept),
            window=streamer.window,
            blocks=len(blocks),
            streamed_ms=streamed["ms"],
            streamed_all=streamed["ms_all"],
            streamed_peak_gib=streamed["peak_gib"],
            ratio=streamed["ms"] / resident["ms"],
            host_to_device_gbs=block_bytes / (streamed["ms"] / 1e3) / 1e9,
        )
        streamer.remove()
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"streaming-{args.model}-{row['weights']}"
    (out / f"{name}.json").write_text(json.dumps(row, indent=1))
    md = (
        f"| model | weights | card | resident step | streamed step ({row.get('kept_blocks')} of {len(blocks)} blocks "
        f"kept, {row.get('window')} slots) | ratio | streamed peak |\n|---|---|---|---|---|---|---|\n"
        f"| {args.model} | {row['weights']} ({row['weights_gib']:.1f} GiB) | {args.card_gib:.0f} GiB simulated "
        f"| {row['resident_ms']:.1f} ms | {row['streamed_ms']:.1f} ms | {row['ratio']:.3f} | "
        f"{row['streamed_peak_gib']:.2f} GiB |\n"
    )
    (out / f"{name}.md").write_text(md)
    print(json.dumps(row))
    print(md)


if __name__ == "__main__":
    main()
