"""Cost of the two ways to run a LoRA (model/lora/): merged in place (LoraMerger) and the forward-hook side path
(LoraSidePath), on an LTX-2 transformer with random weights (a few blocks; full block width with --heads 32), plus
the memory formulas evaluated at full size. CPU by default; --device cuda --dtype bf16 for a GPU.

Measured: time of the first merge, of a strength change (re-merge from the kept base tensors), of remove(); bytes
kept for the base tensors; forward time of the base model, the merged model and the side path.

    python benchmarks/lora_cpu.py --threads 2 --rank 32
    python benchmarks/lora_cpu.py --device cuda --dtype bf16 --heads 32 --blocks 8 --video-tokens 6144 --rank 128
"""

import argparse
import json
import statistics
import time

import torch
from videodit.model.lora import LoraMerger, LoraSidePath, LoraStrength, load_lora
from videodit.model.lora.targets import linear_layers
from videodit.model.ltx2 import config as cfgs
from videodit.model.ltx2.streams import Stream
from videodit.model.ltx2.transformer import LTX2Transformer

AUDIO_TOKENS, TEXT_TOKENS = 64, 64
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def make_config(blocks: int, heads: int) -> cfgs.AVTransformerConfig:
    """LTX-2.3 flags; video heads x 64 wide, audio heads x 32 (--heads 32 with 128/64: the released widths)."""
    video_dim, audio_dim = (128, 64) if heads == 32 else (64, 32)
    return cfgs.AVTransformerConfig(
        num_layers=blocks,
        num_attention_heads=heads,
        attention_head_dim=video_dim,
        cross_attention_dim=heads * video_dim,
        audio_num_attention_heads=heads,
        audio_attention_head_dim=audio_dim,
        audio_cross_attention_dim=heads * audio_dim,
        apply_gated_attention=True,
        cross_attention_adaln=True,
    )


def block_lora(model: torch.nn.Module, rank: int) -> dict[str, torch.Tensor]:
    """A ComfyUI-format LoRA on every linear layer inside the blocks (the usual trainer targets and more)."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for name, m in linear_layers(model).items():
        if name.startswith("transformer_blocks."):
            state[f"diffusion_model.{name}.lora_A.weight"] = torch.randn(rank, m.in_features, generator=gen) * 0.01
            state[f"diffusion_model.{name}.lora_B.weight"] = torch.randn(m.out_features, rank, generator=gen) * 0.01
    return state


def streams(config, video_tokens: int, device, dtype) -> tuple[Stream, Stream]:
    gen = torch.Generator().manual_seed(1)
    t_video = torch.linspace(0, 4, video_tokens)
    video_pos = torch.stack([t_video, t_video % 32 * 32, t_video % 16 * 32])[None, :, :, None].repeat(1, 1, 1, 2)
    audio_pos = torch.linspace(0, 4, AUDIO_TOKENS)[None, None, :, None].repeat(1, 1, 1, 2)
    video = Stream(
        latent=torch.randn(1, video_tokens, config.in_channels, generator=gen).to(device, dtype),
        sigma=torch.tensor([0.7], device=device),
        timesteps=torch.full((1, video_tokens), 0.7, device=device),
        positions=video_pos.to(device),
        context=torch.randn(1, TEXT_TOKENS, config.cross_attention_dim, generator=gen).to(device, dtype),
    )
    audio = Stream(
        latent=torch.randn(1, AUDIO_TOKENS, config.audio_in_channels, generator=gen).to(device, dtype),
        sigma=torch.tensor([0.7], device=device),
        timesteps=torch.full((1, AUDIO_TOKENS), 0.7, device=device),
        positions=audio_pos.to(device),
        context=torch.randn(1, TEXT_TOKENS, config.audio_cross_attention_dim, generator=gen).to(device, dtype),
    )
    return video, audio


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, runs: int, device: torch.device) -> float:
    """Median seconds of `runs` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(runs):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def full_size_formulas(rank: int) -> dict:
    """Bytes of the kept base tensors (bf16) and of the side path's factors for a LoRA on every block layer of the
    released 22B (2.3) transformer, from the layer shapes on the meta device (no weights)."""
    with torch.device("meta"):
        model = LTX2Transformer(cfgs.ltx2_3_22b())
    layers = [m for name, m in linear_layers(model).items() if name.startswith("transformer_blocks.")]
    base = sum(m.out_features * m.in_features * 2 for m in layers)
    factors = sum(rank * (m.out_features + m.in_features) * 2 for m in layers)
    model_bytes = sum(p.numel() * 2 for p in model.parameters())
    return {
        "22B_model_bf16_GiB": round(model_bytes / 2**30, 2),
        "22B_block_layers": len(layers),
        "22B_merge_base_copy_GiB (sum out*in*2)": round(base / 2**30, 2),
        f"22B_side_path_factors_rank{rank}_GiB (sum r*(in+out)*2)": round(factors / 2**30, 3),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--video-tokens", type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    config = make_config(args.blocks, args.heads)
    with torch.device(device):  # built where it runs (a full-width model on a GPU would be slow to build on the CPU)
        model = LTX2Transformer(config).eval().to(dtype)
    video, audio = streams(config, args.video_tokens, device, dtype)
    lora = load_lora(block_lora(model, args.rank))

    def forward():
        with torch.no_grad():
            model(video, audio)

    result = {**vars(args), "layers": len(lora.layers), "video_width": config.inner_dim}
    result["model_MiB"] = round(sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20, 1)
    result["forward_base_s"] = timed(forward, args.runs, device)

    merger = LoraMerger(model)
    sync(device)
    t0 = time.perf_counter()
    merger.apply([LoraStrength(lora, 1.0)])
    sync(device)
    result["merge_first_s"] = time.perf_counter() - t0
    result["merge_base_copy_MiB"] = round(merger.base_bytes / 2**20, 1)
    result["merge_strength_change_s"] = timed(lambda: merger.apply([LoraStrength(lora, 0.5)]), 2, device)
    result["forward_merged_s"] = timed(forward, args.runs, device)
    sync(device)
    t0 = time.perf_counter()
    merger.remove()
    sync(device)
    result["remove_s"] = time.perf_counter() - t0

    side = LoraSidePath(model)
    side.apply([LoraStrength(lora, 1.0)])
    result["side_path_factors_MiB"] = round(side.factor_bytes / 2**20, 2)
    result["forward_side_path_s"] = timed(forward, args.runs, device)
    side.remove()
    result.update(full_size_formulas(args.rank))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
