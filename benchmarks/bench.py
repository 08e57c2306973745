"""GPU benchmark: this project against diffusers 0.42.1 on identical random bf16 weights, side by side in one run.

    python benchmarks/bench.py --out DIR [--sections attn,dit,vae,pipeline] [--models 2b,13b] [--quick]

Sections:
  attn      SDPA kernels (flash / cuDNN / efficient) on the DiT's self-attention shapes.
  dit       one DiT forward with CFG batch 2, text 128 tokens, at 768x512x121 and 1216x704x121, 2B and 13B;
            diffusers LTXVideoTransformer3DModel shares our weights (same tensors, renamed keys);
            our variants: plain, attention backends, compile, fp8; cosine of every variant against our plain path.
  vae       0.9.5 VAE decode at 768x512x121: ours (whole and chunked) against diffusers AutoencoderKLLTXVideo.
  pipeline  2B text-to-video, 768x512x121, 30 steps with CFG: T5-XXL-sized random T5 encode, sampling, decode.

Times are medians of CUDA-event timings after warm-up; TFLOP/s uses the per-layer count of
shared/design/ltxv-architecture.md §7 (28ND² + 4N²D + 4NLD + 4LD², times layers, times batch);
memory is torch.cuda.max_memory_allocated. Results go to DIR/bench.json and DIR/bench.md.
"""

import argparse
import dataclasses
import gc
import json
import math
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]

SHAPES = {"768x512x121": (768, 512, 121), "1216x704x121": (1216, 704, 121)}
TEXT_TOKENS = 128
GIB = 1024**3
DEVICE = "cuda"
TINY = False  # --tiny: small models and shapes on the CPU, to check this script without a GPU


# --------------------------------------------------------------------------------------------- measurement helpers


def latent_size(width: int, height: int, frames: int) -> tuple[int, int, int]:
    return (frames - 1) // 8 + 1, height // 32, width // 32


def dit_flops(num_layers: int, dim: int, tokens: int, text: int = TEXT_TOKENS, batch: int = 2) -> float:
    per_layer = 28 * tokens * dim**2 + 4 * tokens**2 * dim + 4 * tokens * text * dim + 4 * text * dim**2
    return per_layer * num_layers * batch


def time_cuda(fn, warmup: int, repeats: int) -> dict:
    """Median milliseconds of fn() over `repeats` CUDA-event timings after `warmup` calls; peak memory of them."""
    if DEVICE == "cpu":
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return {"ms": statistics.median(times), "ms_all": times, "peak_gib": 0.0, "act_gib": 0.0}
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    peak = torch.cuda.max_memory_allocated()
    return {
        "ms": statistics.median(times),
        "ms_all": [round(t, 3) for t in times],
        "peak_gib": peak / GIB,
        "act_gib": (peak - base) / GIB,
    }


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.double().flatten(), b.to(a.device).double().flatten(), dim=0).item()


def free():
    gc.collect()
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


class Results:
    def __init__(self, out: Path):
        self.out = out
        self.rows: list[dict] = []
        self.info: dict = {}

    def add(self, **row):
        self.rows.append(row)
        print("RESULT " + json.dumps(row), flush=True)
        self.save()

    def save(self):
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "bench.json").write_text(json.dumps({"info": self.info, "rows": self.rows}, indent=1))
        (self.out / "bench.md").write_text(markdown(self.info, self.rows))


def markdown(info: dict, rows: list[dict]) -> str:
    lines = ["# Benchmark results", "", "```", json.dumps(info, indent=1), "```", ""]
    head = [
        "section",
        "model",
        "shape",
        "impl",
        "variant",
        "ms",
        "TFLOP/s",
        "peak GiB",
        "act GiB",
        "ours/diffusers",
        "cos vs plain",
        "cos vs diffusers",
        "note",
    ]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def fmt(v, digits):
        return "" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))

    for r in rows:
        lines.append(
            "| "
            + " | ".join(
                [
                    r.get("section", ""),
                    r.get("model", ""),
                    r.get("shape", ""),
                    r.get("impl", ""),
                    r.get("variant", ""),
                    fmt(r.get("ms"), 1),
                    fmt(r.get("tflops"), 0),
                    fmt(r.get("peak_gib"), 2),
                    fmt(r.get("act_gib"), 2),
                    fmt(r.get("ratio"), 3),
                    fmt(r.get("cos_plain"), 5),
                    fmt(r.get("cos_diffusers"), 5),
                    r.get("note", ""),
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ attention kernels


def bench_attention(res: Results, args):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    kernels = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
    }
    for head_dim, model in ((64, "2b"), (128, "13b")):
        for shape_name, (w, h, f) in SHAPES.items():
            n = math.prod(latent_size(w, h, f))
            q, k, v = (torch.randn(2, 32, n, head_dim, device=DEVICE, dtype=torch.bfloat16) for _ in range(3))
            ref = F.scaled_dot_product_attention(q, k, v)
            for name, kernel in kernels.items():
                try:
                    with sdpa_kernel([kernel]):
                        out = F.scaled_dot_product_attention(q, k, v)
                        t = time_cuda(lambda: F.scaled_dot_product_attention(q, k, v), 3, 10)
                    flops = 4 * 2 * 32 * n * n * head_dim
                    res.add(
                        section="attn",
                        model=model,
                        shape=shape_name,
                        impl="sdpa",
                        variant=name,
                        ms=t["ms"],
                        tflops=flops / t["ms"] / 1e9,
                        cos_plain=cosine(out, ref),
                    )
                except RuntimeError as e:
                    res.add(
                        section="attn",
                        model=model,
                        shape=shape_name,
                        impl="sdpa",
                        variant=name,
                        note=f"unsupported: {str(e)[:80]}",
                    )
            # cross-attention to 128 text tokens with the padding bias
            k, v = (torch.randn(2, 32, TEXT_TOKENS, head_dim, device=DEVICE, dtype=torch.bfloat16) for _ in range(2))
            bias = torch.zeros(2, 1, 1, TEXT_TOKENS, device=DEVICE, dtype=torch.bfloat16)
            bias[0, ..., 40:] = -10000.0
            bias[1, ..., 90:] = -10000.0
            ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=bias.float())
            for name, kernel in dict(kernels, math=SDPBackend.MATH).items():
                try:
                    with sdpa_kernel([kernel]):
                        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
                        t = time_cuda(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bias), 3, 10)
                    res.add(
                        section="attn",
                        model=model,
                        shape=shape_name,
                        impl="sdpa cross+bias",
                        variant=name,
                        ms=t["ms"],
                        cos_plain=cosine(out, ref),
                    )
                except RuntimeError as e:
                    res.add(
                        section="attn",
                        model=model,
                        shape=shape_name,
                        impl="sdpa cross+bias",
                        variant=name,
                        note=f"unsupported: {str(e)[:80]}",
                    )
            q = k = v = ref = bias = None  # free the memory before the next case
            free()


# ------------------------------------------------------------------------------------------------------------- DiT


def plain_options():
    from videodit.model.speed import SpeedOptions

    return SpeedOptions(attention="sdpa", cache_text_kv=False, fused_kernels=False)


def build_ours(model: str):
    from videodit.model.ltxv.dit import LTXVideoTransformer, ltxv_2b, ltxv_13b

    config = ltxv_2b() if model == "2b" else ltxv_13b()
    if TINY:
        config = dataclasses.replace(
            config,
            num_layers=2,
            num_attention_heads=4,
            cross_attention_dim=4 * config.attention_head_dim,
            caption_channels=64,
        )
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(DEVICE):  # random init directly in bf16 on the GPU (no fp32 copy)
            transformer = LTXVideoTransformer(config).eval()
    finally:
        torch.set_default_dtype(previous)
    with torch.no_grad():  # q/k norm weights start at 1: give them spread so they matter
        for name, p in transformer.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return transformer


def diffusers_sharing(ours):
    """diffusers LTXVideoTransformer3DModel holding the same weight tensors as `ours` (keys renamed)."""
    from diffusers import LTXVideoTransformer3DModel

    c = ours.config
    with torch.device("meta"):
        dif = LTXVideoTransformer3DModel(
            in_channels=c.in_channels,
            out_channels=c.out_channels,
            num_attention_heads=c.num_attention_heads,
            attention_head_dim=c.attention_head_dim,
            cross_attention_dim=c.cross_attention_dim,
            num_layers=c.num_layers,
            caption_channels=c.caption_channels,
            norm_eps=c.norm_eps,
        )
    rename = (("patchify_proj", "proj_in"), ("adaln_single", "time_embed"), ("q_norm", "norm_q"), ("k_norm", "norm_k"))
    state = {}
    for key, value in ours.state_dict().items():
        for old, new in rename:
            key = key.replace(old, new)
        state[key] = value
    dif.load_state_dict(state, strict=True, assign=True)
    return dif.eval()


def dit_inputs(config, shape_name: str):
    from videodit.model.ltxv.positions import video_coords

    w, h, f = SHAPES[shape_name]
    lf, lh, lw = latent_size(w, h, f)
    n = lf * lh * lw
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randn(2, n, config.in_channels, generator=gen).to(DEVICE, torch.bfloat16)
    text = torch.randn(2, TEXT_TOKENS, config.caption_channels, generator=gen).to(DEVICE, torch.bfloat16)
    mask = torch.zeros(2, TEXT_TOKENS, device=DEVICE)
    mask[0, :40] = 1  # negative prompt: 40 tokens, prompt: 90 tokens (T5 pads to 128)
    mask[1, :90] = 1
    coords = video_coords(2, lf, lh, lw, 25.0, True, device=DEVICE)
    timestep = torch.full((2, 1), 0.7, device=DEVICE)
    return dict(tokens=tokens, coords=coords, text=text, text_mask=mask, timestep=timestep), n


def bench_dit(res: Results, args):
    from videodit.model.speed import SpeedOptions, apply_speed_options

    PLAIN = plain_options()
    for model in args.models:
        ours = build_ours(model)
        cfg = ours.config
        weights_gib = torch.cuda.memory_allocated() / GIB
        dif = diffusers_sharing(ours)
        res.info[f"dit_{model}_weights_gib"] = weights_gib
        reps = 3 if model == "13b" else 5
        plain_out, dif_ms = {}, {}
        for shape_name in args.shapes:
            inp, n = dit_inputs(cfg, shape_name)
            flops = dit_flops(cfg.num_layers, cfg.inner_dim, n)
            common = dict(section="dit", model=model, shape=shape_name)
            with torch.inference_mode():
                apply_speed_options(ours, PLAIN)
                plain = ours(**inp).float()
                plain_out[shape_name] = plain.cpu()

                def run_dif():
                    return dif(
                        hidden_states=inp["tokens"],
                        encoder_hidden_states=inp["text"],
                        timestep=inp["timestep"].flatten() * 1000,
                        encoder_attention_mask=inp["text_mask"],
                        video_coords=inp["coords"],
                        return_dict=False,
                    )[0]

                dout = run_dif().float()
                t = time_cuda(run_dif, 2, reps)
                dif_ms[shape_name] = t["ms"]
                res.add(
                    **common,
                    impl="diffusers",
                    variant="eager sdpa",
                    tflops=flops / t["ms"] / 1e9,
                    cos_plain=cosine(dout, plain),
                    **t,
                )
                dout = None  # free the memory before the next case
                for variant, opts in (
                    ("plain", PLAIN),
                    ("flash", dataclasses.replace(PLAIN, attention="flash")),
                    ("efficient", dataclasses.replace(PLAIN, attention="efficient")),
                    ("cudnn", dataclasses.replace(PLAIN, attention="cudnn")),
                    ("auto", SpeedOptions()),
                ):
                    if variant not in args.variants or (model == "13b" and variant in ("flash", "efficient")):
                        continue
                    apply_speed_options(ours, opts)
                    out = ours(**inp).float()
                    t = time_cuda(lambda: ours(**inp), 2, reps)
                    res.add(
                        **common,
                        impl="ours",
                        variant=variant,
                        tflops=flops / t["ms"] / 1e9,
                        ratio=t["ms"] / dif_ms[shape_name],
                        cos_plain=cosine(out, plain),
                        cos_diffusers=None,
                        **t,
                    )
                    out = None  # free the memory before the next case
                free()

            def time_compiled(variant, prepare):
                """One compiled variant: `prepare` sets our model up after a dynamo reset; the first call (which
                compiles) is timed apart."""
                with torch.inference_mode():
                    torch._dynamo.reset()
                    prepare()
                    t0 = time.perf_counter()
                    out = ours(**inp).float()
                    compile_s = time.perf_counter() - t0
                    t = time_cuda(lambda: ours(**inp), 2, reps)
                    res.add(
                        **common,
                        impl="ours",
                        variant=variant,
                        tflops=flops / t["ms"] / 1e9,
                        ratio=t["ms"] / dif_ms[shape_name],
                        cos_plain=cosine(out, plain_out[shape_name]),
                        note=f"first call {compile_s:.0f} s",
                        **t,
                    )

            def compile_blocks_max_autotune():  # Triton GEMM templates with fused epilogues (slow to compile)
                apply_speed_options(ours, SpeedOptions())
                for block in ours.transformer_blocks:
                    block.compile(mode="max-autotune-no-cudagraphs")

            if "compile" in args.variants:
                time_compiled(
                    "auto+compile", lambda: apply_speed_options(ours, SpeedOptions(attention="auto", compile=True))
                )
                free()
            if "max-autotune" in args.variants:
                time_compiled("auto+compile max-autotune", compile_blocks_max_autotune)
                apply_speed_options(ours, PLAIN)
                free()
            inp = None  # free the memory before the next case
            free()
        dif = None  # free the memory before the next case
        free()
        # fp8 (converts our blocks in place: last)
        if "fp8" in args.variants:
            from videodit.model.blocks import fp8 as fp8_module

            for shape_name in args.shapes:
                if model == "13b" and shape_name != "768x512x121" and not args.all_fp8:
                    continue
                inp, n = dit_inputs(cfg, shape_name)
                flops = dit_flops(cfg.num_layers, cfg.inner_dim, n)
                common = dict(section="dit", model=model, shape=shape_name)
                plain = plain_out[shape_name].to(DEVICE)
                with torch.inference_mode():
                    for variant, compile_, fast in (
                        ("fp8+compile", True, True),
                        ("fp8 eager", False, True),
                        ("fp8+compile exact-accum", True, False),
                    ):
                        if variant != "fp8+compile" and (model == "13b" or shape_name != "768x512x121"):
                            continue
                        fp8_module.FAST_ACCUM = fast
                        torch._dynamo.reset()
                        apply_speed_options(ours, SpeedOptions(attention="auto", compile=compile_, fp8=True))
                        res.info[f"dit_{model}_fp8_weights_gib"] = torch.cuda.memory_allocated() / GIB
                        out = ours(**inp).float()
                        t = time_cuda(lambda: ours(**inp), 2, reps)
                        res.add(
                            **common,
                            impl="ours",
                            variant=variant,
                            tflops=flops / t["ms"] / 1e9,
                            ratio=t["ms"] / dif_ms[shape_name],
                            cos_plain=cosine(out, plain),
                            **t,
                        )
                        out = None  # free the memory before the next case
                        free()
                    fp8_module.FAST_ACCUM = True
                inp = plain = None  # free the memory before the next case
                free()
        ours = None  # free the memory before the next case
        torch._dynamo.reset()
        free()


# --------------------------------------------------------------------------------------------------------- profile


def bench_profile(res: Results, args):
    """Top CUDA kernels of one forward of the compiled 2B (bf16 and fp8) at 768x512x121, written to profile.txt."""
    from torch.profiler import ProfilerActivity, profile
    from videodit.model.speed import SpeedOptions, apply_speed_options

    shape_name = "768x512x121"
    report = []
    for model in args.models:
        ours = build_ours(model)
        inp, n = dit_inputs(ours.config, shape_name)
        for variant, opts in (
            ("auto+compile", SpeedOptions(compile=True)),
            ("fp8+compile", SpeedOptions(compile=True, fp8=True)),
        ):
            torch._dynamo.reset()
            apply_speed_options(ours, opts)
            with torch.inference_mode():
                for _ in range(3):
                    ours(**inp)
                activity, sort = (
                    (ProfilerActivity.CUDA, "cuda_time_total")
                    if DEVICE == "cuda"
                    else (ProfilerActivity.CPU, "cpu_time_total")
                )
                with profile(activities=[activity]) as prof:
                    ours(**inp)
                    if DEVICE == "cuda":
                        torch.cuda.synchronize()
            table = prof.key_averages().table(sort_by=sort, row_limit=40, max_name_column_width=90)
            report.append(f"=== {model} {shape_name} {variant}\n{table}")
            print(report[-1], flush=True)
        ours = inp = None  # free the memory before the next case
        torch._dynamo.reset()
        free()
    (res.out / "profile.txt").write_text("\n".join(report))


# ------------------------------------------------------------------------------------------------------------- VAE

DIFFUSERS_VAE_095 = dict(
    block_out_channels=(128, 256, 512, 1024, 2048),
    down_block_types=("LTXVideo095DownBlock3D",) * 4,
    decoder_block_out_channels=(256, 512, 1024),
    layers_per_block=(4, 6, 6, 2, 2),
    decoder_layers_per_block=(5, 5, 5, 5),
    spatio_temporal_scaling=(True,) * 4,
    decoder_spatio_temporal_scaling=(True,) * 3,
    decoder_inject_noise=(False,) * 4,
    downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    upsample_residual=(True,) * 3,
    upsample_factor=(2, 2, 2),
    timestep_conditioning=True,
    spatial_compression_ratio=32,
    temporal_compression_ratio=8,
)


def build_vae_pair():
    from diffusers import AutoencoderKLLTXVideo
    from diffusers.loaders.single_file_utils import convert_ltx_vae_checkpoint_to_diffusers
    from videodit.model.ltxv.vae import CausalVideoVAE, VAEConfig

    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(DEVICE):
            ours = CausalVideoVAE(VAEConfig.v0_9_5()).eval()
    finally:
        torch.set_default_dtype(previous)
    with torch.no_grad():  # default inits leave some tensors at 0/1: randomise them a little
        for name, p in ours.named_parameters():
            if p.ndim <= 1 or "scale_shift_table" in name:
                p.add_(0.05 * torch.randn_like(p))
    with torch.device("meta"):
        dif = AutoencoderKLLTXVideo(**DIFFUSERS_VAE_095)
    converted = convert_ltx_vae_checkpoint_to_diffusers({"vae." + k: v for k, v in ours.state_dict().items()})
    dif.load_state_dict(converted, strict=True, assign=True)
    return ours, dif.eval()


def bench_vae(res: Results, args):
    ours, dif = build_vae_pair()
    decoder_gib = sum(p.numel() * p.element_size() for p in ours.decoder.parameters()) / GIB
    res.info["vae_decoder_weights_gib"] = decoder_gib
    w, h, f = SHAPES["768x512x121"]
    lf, lh, lw = latent_size(w, h, f)
    gen = torch.Generator().manual_seed(2)
    raw = torch.randn(1, 128, lf, lh, lw, generator=gen).to(DEVICE, torch.bfloat16)
    decode_t = 0.05
    common = dict(section="vae", model="0.9.5", shape="768x512x121")
    with torch.inference_mode():

        def run_dif():
            return dif.decode(raw, temb=torch.full((1,), decode_t, device=DEVICE), return_dict=False)[0]

        ref = run_dif().float()
        t = time_cuda(run_dif, 1, 3)
        dif_ms = t["ms"]
        res.add(**common, impl="diffusers", variant="decode", **t)
        dif.enable_tiling()
        t = time_cuda(run_dif, 1, 3)
        res.add(**common, impl="diffusers", variant="decode tiled", ratio=None, **t)
        dif.disable_tiling()
        dif = None  # free the memory before the next case
        free()
        from videodit.model.ltxv.vae_tiling import decode_tiled

        def tiled(chunk, t_overlap, tile, s_overlap):
            return lambda: decode_tiled(
                ours,
                raw,
                timestep=decode_t,
                temporal_chunk=chunk,
                temporal_overlap=t_overlap,
                spatial_tile=tile,
                spatial_overlap=s_overlap,
            )

        variants = []
        for mode in args.vae_modes:
            variants.append((f"decode, {mode}", lambda: ours.decode(raw, timestep=decode_t), mode))
            for chunk, t_overlap, tile, s_overlap in args.vae_tiles:
                variants.append(
                    (
                        f"decode_tiled chunk {chunk}/{t_overlap} tile {tile}/{s_overlap}, {mode}",
                        tiled(chunk, t_overlap, tile, s_overlap),
                        mode,
                    )
                )
        whole = None
        from videodit.model.speed import SpeedOptions, apply_vae_speed_options

        applied = None
        for variant, fn, mode in variants:
            if mode != applied and mode != "plain":
                t0 = time.perf_counter()
                apply_vae_speed_options(ours, SpeedOptions(compile=mode == "compile"))
                applied = mode
            try:
                t0 = time.perf_counter()
                out = fn().float()
                first_s = time.perf_counter() - t0
                t = time_cuda(fn, 1, 3)
                whole = out if whole is None else whole
                mse = (out - whole).pow(2).mean().item()
                psnr = 10 * math.log10(4.0 / mse) if mse > 0 else float("inf")
                res.add(
                    **common,
                    impl="ours",
                    variant=variant,
                    ratio=t["ms"] / dif_ms,
                    cos_diffusers=cosine(out, ref),
                    note=f"PSNR vs our plain whole decode {psnr:.1f} dB; first call {first_s:.1f} s",
                    **t,
                )
                out = None  # free the memory before the next case
            except Exception as e:  # keep the rest of the benchmark going
                traceback.print_exc()
                res.add(**common, impl="ours", variant=variant, note=f"failed: {type(e).__name__}: {str(e)[:100]}")
            free()
        whole = None  # free the memory before the next case
    ours = raw = ref = None  # free the memory before the next case
    free()


# -------------------------------------------------------------------------------------------------------- pipeline

PROMPT = (
    "A red fox walks through fresh snow in a quiet birch forest at dawn, soft golden light between the trees, "
    "its breath visible in the cold air, the camera slowly tracking alongside at ground level"
)
NEGATIVE = "worst quality, inconsistent motion, blurry, jittery, distorted"
T5_XXL = dict(
    vocab_size=32128,
    d_model=4096,
    d_kv=64,
    d_ff=10240,
    num_layers=24,
    num_heads=64,
    feed_forward_proj="gated-gelu",
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
)


def build_t5():
    from transformers import T5Config, T5EncoderModel

    fields = dict(T5_XXL)
    if TINY:
        fields.update(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4)
    torch.manual_seed(3)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(DEVICE):
            t5 = T5EncoderModel(T5Config(**fields)).eval()
    finally:
        torch.set_default_dtype(previous)
    return t5


class StreamedBlocks:
    """Keep `blocks` in pinned CPU memory and copy each one to the GPU only while it runs (T5 off the GPU outside
    its encoder calls; peak GPU memory one block instead of the whole encoder)."""

    def __init__(self, blocks, device):
        self.device = device
        self.hooks = []
        for block in blocks:
            for p in block.parameters():
                p.data = p.data.cpu().pin_memory() if DEVICE == "cuda" else p.data.cpu()
            self.hooks.append(block.register_forward_pre_hook(self.load))
            self.hooks.append(block.register_forward_hook(self.unload))
        free()

    def load(self, block, args):
        for p in block.parameters():
            p.host = p.data
            p.data = p.data.to(self.device, non_blocking=True)

    def unload(self, block, args, output):
        for p in block.parameters():
            p.data = p.host


def bench_pipeline(res: Results, args):
    """2B text-to-video, 768x512x121, 30 steps, CFG 3: diffusers LTXPipeline (everything resident) against our
    VideoPipeline.generate (compiled DiT, T5 blocks streamed from pinned CPU memory, VAE encoder off the GPU)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, LTXPipeline
    from transformers import ByT5Tokenizer
    from videodit.model.pipeline import VideoPipeline
    from videodit.model.speed import SpeedOptions, apply_speed_options
    from videodit.model.text_encoder import TextEncoder

    w, h, f = SHAPES["768x512x121"]
    steps = 2 if TINY else args.steps
    common = dict(section="pipeline", model="2b", shape=f"768x512x121, {steps} steps CFG")
    dit = build_ours("2b")
    vae, dif_vae = build_vae_pair()
    t5 = build_t5()
    dif_dit = diffusers_sharing(dit)
    res.info["pipeline_resident_weights_gib"] = torch.cuda.memory_allocated() / GIB if DEVICE == "cuda" else 0.0
    tokenizer = ByT5Tokenizer()

    with torch.inference_mode():
        dif_pipe = LTXPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(),
            vae=dif_vae,
            text_encoder=t5,
            tokenizer=tokenizer,
            transformer=dif_dit,
        )

        def run_dif(n_steps):
            return dif_pipe(
                prompt=PROMPT,
                negative_prompt=NEGATIVE,
                width=w,
                height=h,
                num_frames=f,
                num_inference_steps=n_steps,
                guidance_scale=3.0,
                decode_timestep=0.05,
                decode_noise_scale=0.025,
                max_sequence_length=TEXT_TOKENS,
                output_type="pt",
                generator=torch.Generator().manual_seed(0),
            ).frames[0]

        run_dif(2)  # warm-up
        t = time_cuda(lambda: run_dif(steps), 0, 1)
        dif_ms = t["ms"]
        res.add(**common, impl="diffusers", variant="LTXPipeline, all resident", note="T5+DiT+VAE on GPU", **t)
        dif_pipe = dif_dit = dif_vae = None  # free the memory before the next case
        free()

        # ours: compiled DiT; T5 blocks streamed; only the VAE decoder on the GPU (text-to-video never encodes)
        apply_speed_options(dit, SpeedOptions(compile=args.compile_pipeline))
        vae.encoder.to("cpu")
        stream = StreamedBlocks(t5.encoder.block, DEVICE)
        encoder = TextEncoder(t5, tokenizer, max_tokens=TEXT_TOKENS)
        pipe = VideoPipeline(dit, vae, encoder, decode_timestep=0.05, decode_noise_scale=0.025)

        def run_ours(n_steps):
            return pipe.generate(
                PROMPT, NEGATIVE, width=w, height=h, num_frames=f, steps=n_steps, seed=0, schedule="linear_quadratic"
            )

        run_ours(2)  # warm-up (compiles)
        t = time_cuda(lambda: run_ours(steps), 0, 1)
        res.add(
            **common,
            impl="ours",
            variant="generate, T5 streamed",
            ratio=t["ms"] / dif_ms,
            note="compiled DiT + VAE decoder resident, T5 blocks copied in per encode",
            **t,
        )
        for hook in stream.hooks:
            hook.remove()
    pipe = encoder = t5 = dit = vae = None  # free the memory before the next case
    torch._dynamo.reset()
    free()


# -------------------------------------------------------------------------------------------------------- main

SECTIONS = {
    "attn": bench_attention,
    "dit": bench_dit,
    "vae": bench_vae,
    "profile": bench_profile,
    "pipeline": bench_pipeline,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--sections", default="attn,dit,vae")
    parser.add_argument("--models", default="2b,13b")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--variants", default="plain,cudnn,flash,efficient,compile,fp8")
    parser.add_argument("--all-fp8", action="store_true", help="fp8 also for 13B at the large shape")
    parser.add_argument("--tiny", action="store_true", help="small models and shapes on the CPU (script check)")
    parser.add_argument("--steps", type=int, default=30, help="pipeline sampling steps")
    parser.add_argument(
        "--vae-modes",
        default="plain,compile",
        help="plain: as loaded; compile: apply_vae_speed_options(SpeedOptions(compile=True))",
    )
    parser.add_argument(
        "--vae-tiles",
        default="6/1/32/0,5/2/32/0,8/3/32/0,16/3/12/2",
        help="chunked decode settings: temporal_chunk/temporal_overlap/spatial_tile/spatial_overlap",
    )
    parser.add_argument("--compile-pipeline", type=int, default=1, help="compile the DiT in the pipeline (0/1)")
    args = parser.parse_args()
    args.models = args.models.split(",")
    args.shapes = args.shapes.split(",")
    args.variants = args.variants.split(",")
    args.vae_modes = args.vae_modes.split(",")
    args.vae_tiles = [tuple(int(v) for v in item.split("/")) for item in args.vae_tiles.split(",") if item]
    global DEVICE, TINY
    if args.tiny:
        DEVICE, TINY = "cpu", True
        SHAPES.update({name: (64 * (1 + i), 64, 9) for i, name in enumerate(SHAPES)})
    elif not torch.cuda.is_available():
        sys.exit("benchmarks/bench.py needs a CUDA GPU (or --tiny for a CPU check of the script)")
    import diffusers

    res = Results(args.out)
    res.info = {
        "gpu": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (--tiny)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if DEVICE == "cuda" else None,
        "diffusers": diffusers.__version__,
        "python": platform.python_version(),
        "text_tokens": TEXT_TOKENS,
        "cfg_batch": 2,
    }
    torch.backends.cuda.matmul.allow_tf32 = True
    torch._dynamo.config.cache_size_limit = 64
    for section in args.sections.split(","):
        t0 = time.perf_counter()
        try:
            SECTIONS[section](res, args)
        except Exception as e:
            traceback.print_exc()
            res.add(section=section, note=f"section failed: {type(e).__name__}: {str(e)[:200]}")
        res.info[f"{section}_seconds"] = round(time.perf_counter() - t0, 1)
        res.save()
    print(markdown(res.info, res.rows))


if __name__ == "__main__":
    main()
