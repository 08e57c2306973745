"""model/parallel on the CPU: gloo process groups of 2 and 4 processes (torch.multiprocessing spawn, free port).

Each worker builds the same tiny fp32 model from the same seed, computes the single-process reference itself and
compares with the distributed result; a failed assertion in a worker fails the test with its message.
"""

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from videodit.model.blocks.attention import attention
from videodit.model.frontend import decode_latents
from videodit.model.ltx2 import guidance as ltx2_guidance
from videodit.model.ltx2 import sampling as ltx2_sampling
from videodit.model.ltx2.config import tiny as ltx2_tiny
from videodit.model.ltx2.streams import Skip, Stream
from videodit.model.ltx2.transformer import LTX2Transformer
from videodit.model.ltx2.video_vae import LTX2VideoVAE, ltx2_vae_config
from videodit.model.ltxv.dit import LTXVideoTransformer, SkipLayers, TransformerConfig
from videodit.model.ltxv.positions import video_coords
from videodit.model.ltxv.vae import CausalVideoVAE, VAEConfig
from videodit.model.ltxv.vae_tiling import decode_tiled
from videodit.model.parallel import (
    ParallelGroup,
    SplitTransformer,
    decode_distributed,
    decode_latents_distributed,
    dit_batch_split,
    dit_sequence_parallel,
    ltx2_batch_split,
    ltx2_sequence_parallel,
)
from videodit.model.parallel.attention import ShardedKeyAttention, UlyssesAttention
from videodit.model.parallel.engine import shard
from videodit.model.sampling import Guidance, TextCondition, sample

TOL = 1e-5
LATENT = (3, 3, 3)  # 27 video tokens: divisible by neither 2 nor 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, case):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        with torch.no_grad():
            case(ParallelGroup.of())
    finally:
        dist.destroy_process_group()


def spawn(case, world: int):
    mp.spawn(_worker, args=(world, _free_port(), case), nprocs=world, join=True)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


# --------------------------------------------------------------------------------------------- 0.9.x DiT


def dit_inputs(batch: int, heads: int = 4):
    torch.manual_seed(0)
    config = TransformerConfig(
        num_layers=2, num_attention_heads=heads, attention_head_dim=8, cross_attention_dim=heads * 8,
        caption_channels=12, in_channels=8, out_channels=8,
    )  # fmt: skip
    model = LTXVideoTransformer(config).eval()
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randn(batch, LATENT[0] * LATENT[1] * LATENT[2], 8, generator=gen)
    coords = video_coords(batch, *LATENT, frame_rate=24.0, causal_fix=True)
    text = torch.randn(batch, 5, 12, generator=gen)
    mask = torch.ones(batch, 5)
    mask[-1, 3:] = 0  # padded text
    timestep = torch.rand(batch, tokens.shape[1], generator=gen)  # per-token timesteps
    timestep[:, :9] = 0.0  # clean first latent frame
    perturbed = torch.zeros(batch, dtype=torch.bool)
    perturbed[-1] = True
    skip = SkipLayers((1,), "attention_values", perturbed)
    return model, (tokens, coords, text, mask, timestep, skip)


def _dit_sequence_case(pg):
    model, inputs = dit_inputs(2)
    reference = model(*inputs)
    out = dit_sequence_parallel(model, *inputs, group=pg)
    d = max_diff(out, reference)
    assert out.shape == reference.shape and d <= TOL, f"rank {pg.rank}/{pg.size}: DiT sequence parallel max diff {d}"
    print(f"DiT sequence parallel W={pg.size} rank {pg.rank}: max abs diff {d:.3g}")


@pytest.mark.parametrize("world", [2, 4])
def test_dit_sequence_parallel_equals_single_process(world):
    spawn(_dit_sequence_case, world)


def _dit_batch_case(pg):
    model, inputs = dit_inputs(3)  # 3 samples (cond, uncond, STG) over 2 ranks: one rank gets a padded chunk
    reference = model(*inputs)
    out = dit_batch_split(model, *inputs, group=pg)
    d = max_diff(out, reference)
    assert out.shape == reference.shape and d <= TOL, f"rank {pg.rank}: DiT batch split max diff {d}"


def test_dit_batch_split_equals_batched_forward():
    spawn(_dit_batch_case, 2)


def _heads_case(pg):
    model, inputs = dit_inputs(1, heads=3)
    with pytest.raises(ValueError, match=r"has 3 attention heads, which world size 2 does not divide.*\[1, 3\]"):
        dit_sequence_parallel(model, *inputs, group=pg)


def test_heads_not_divisible_by_world_size_is_refused():
    spawn(_heads_case, 2)


def _dit_sampling_case(pg):
    model, _ = dit_inputs(1)
    gen = torch.Generator().manual_seed(3)
    positive = TextCondition(torch.randn(1, 5, 12, generator=gen), torch.ones(1, 5))
    negative = TextCondition(torch.randn(1, 5, 12, generator=gen), torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0]]))
    run = dict(
        latents=torch.zeros(1, 8, *LATENT),
        positive=positive,
        negative=negative,
        timesteps=[1.0, 0.7, 0.4],
        guidance=Guidance(cfg=3.0, stg=1.0, stg_blocks=(1,), rescale=0.7),
        seed=4,
    )
    reference = sample(model, **run)
    for mode in ("sequence", "batch"):
        out = sample(SplitTransformer(model, mode, pg), **run)
        d = max_diff(out, reference)
        assert d <= TOL, f"rank {pg.rank}/{pg.size}: 0.9.x sample (CFG + STG, 3 steps) with {mode} split: max diff {d}"
        print(f"0.9.x sampling W={pg.size} {mode}: max abs diff {d:.3g}")


def test_dit_sampling_with_split_transformer_equals_single_process():
    spawn(_dit_sampling_case, 2)


# ------------------------------------------------------------------------------------------------- LTX-2


def _bounds(starts: torch.Tensor, length: float) -> torch.Tensor:
    return torch.stack((starts, starts + length), dim=-1)


def ltx2_inputs(batch: int, version: str = "2.5"):
    torch.manual_seed(0)
    config = ltx2_tiny(
        version, num_attention_heads=4, attention_head_dim=8, audio_num_attention_heads=4, audio_attention_head_dim=4
    )
    model = LTX2Transformer(config).eval()
    for p in model.parameters():  # the official zero-initialized tables would hide errors
        torch.nn.init.normal_(p, std=0.2)
    gen = torch.Generator().manual_seed(1)
    f, h, w = LATENT
    tokens = f * h * w
    grid = torch.stack(
        torch.meshgrid(torch.arange(f) / 3.0, torch.arange(h) * 32.0, torch.arange(w) * 32.0, indexing="ij")
    )
    video_pos = torch.stack([_bounds(axis.flatten(), step) for axis, step in zip(grid, (1 / 3, 32, 32))])
    audio_tokens = 7
    audio_pos = _bounds(torch.arange(audio_tokens) * 0.04, 0.04)[None]
    sigma_v, sigma_a = torch.rand(batch, generator=gen), torch.rand(batch, generator=gen)
    video_t = sigma_v[:, None] * (torch.arange(tokens) >= h * w).float()  # clean first frame
    audio_t = sigma_a[:, None] * (torch.rand(batch, audio_tokens, generator=gen) > 0.3).float()
    text_mask = torch.ones(batch, 6, dtype=torch.bool)
    text_mask[-1, 4:] = False
    weights = torch.rand(batch, tokens, tokens, generator=gen)
    weights[weights < 0.2] = 0.0  # conditioning attention mask with blocked pairs
    video = Stream(
        latent=torch.randn(batch, tokens, config.in_channels, generator=gen),
        sigma=sigma_v,
        timesteps=video_t,
        positions=video_pos[None].expand(batch, -1, -1, -1),
        context=torch.randn(batch, 6, config.caption_channels or config.cross_attention_dim, generator=gen),
        context_mask=text_mask,
        attention_mask=weights,
        keyframe_mask=torch.arange(tokens).expand(batch, -1) < h * w,
    )
    audio = Stream(
        latent=torch.randn(batch, audio_tokens, config.audio_in_channels, generator=gen),
        sigma=sigma_a,
        timesteps=audio_t,
        positions=audio_pos.expand(batch, -1, -1, -1),
        context=torch.randn(batch, 6, config.caption_channels or config.audio_cross_attention_dim, generator=gen),
        context_mask=text_mask,
    )
    skip = Skip(video_self_attention=frozenset({1}), video_to_audio=frozenset({0}))
    return model, video, audio, skip


def _short_sequence_attention(pg):
    """5 tokens: on 4 ranks the last shard is padding only (no real query or key)."""
    gen = torch.Generator().manual_seed(8)
    q, k, v = (torch.randn(2, 4, 5, 8, generator=gen) for _ in range(3))
    audio_q = torch.randn(2, 4, 3, 8, generator=gen)
    bias = torch.randn(2, 1, 5, 5, generator=gen)
    reference = attention(q, k, v, bias)
    out = UlyssesAttention(pg, 5, bias)(*(shard(t, 2, pg) for t in (q, k, v)))
    d = max_diff(out, shard(reference, 2, pg))
    assert d <= TOL, f"rank {pg.rank}/{pg.size}: Ulysses on 5 tokens max diff {d}"
    out = ShardedKeyAttention(pg, 5)(audio_q, shard(k, 2, pg), shard(v, 2, pg))
    d = max_diff(out, attention(audio_q, k, v))
    assert d <= TOL, f"rank {pg.rank}/{pg.size}: sharded-key attention on 5 keys max diff {d}"


def _ltx2_sequence_case(pg):
    _short_sequence_attention(pg)
    model, video, audio, skip = ltx2_inputs(2)
    model_2_0, video_2_0, audio_2_0, _ = ltx2_inputs(2, version="2.0")
    for name, run_model, streams, run_skip in (
        ("2.5 audio+video", model, (video, audio), skip),
        ("2.5 audio+video, all A<->V on", model, (video, audio), Skip()),
        ("2.5 video only", model, (video, None), Skip()),
        ("2.5 audio only", model, (None, audio), Skip()),
        ("2.0 audio+video", model_2_0, (video_2_0, audio_2_0), skip),
    ):
        reference = run_model(*streams, run_skip)
        out = ltx2_sequence_parallel(run_model, *streams, run_skip, group=pg)
        for modality, a, b in zip(("video", "audio"), out, reference):
            if b is None:
                assert a is None
                continue
            d = max_diff(a, b)
            assert a.shape == b.shape and d <= TOL, f"rank {pg.rank}/{pg.size} {name}: {modality} max diff {d}"
            print(f"LTX-2 sequence parallel W={pg.size} rank {pg.rank} {name}: {modality} max abs diff {d:.3g}")


@pytest.mark.parametrize("world", [2, 4])
def test_ltx2_sequence_parallel_equals_single_process(world):
    spawn(_ltx2_sequence_case, world)


def _ltx2_batch_case(pg):
    model, video, audio, skip = ltx2_inputs(3, version="2.3")
    reference = model(video, audio, skip)
    out = ltx2_batch_split(model, video, audio, skip, group=pg)
    for modality, a, b in zip(("video", "audio"), out, reference):
        d = max_diff(a, b)
        assert a.shape == b.shape and d <= TOL, f"rank {pg.rank}: LTX-2 batch split {modality} max diff {d}"


def test_ltx2_batch_split_equals_batched_forward():
    spawn(_ltx2_batch_case, 2)


def _ltx2_sampling_case(pg):
    model, *_ = ltx2_inputs(1)
    gen = torch.Generator().manual_seed(5)
    positive, negative = (
        ltx2_sampling.TextContext(torch.randn(1, 6, 32, generator=gen), torch.randn(1, 6, 16, generator=gen))
        for _ in range(2)
    )
    params = ltx2_guidance.GuiderParams(
        cfg_scale=3.0, stg_scale=1.0, stg_blocks=(1,), rescale_scale=0.7, modality_scale=2.0
    )
    run = dict(
        video_latent=torch.zeros(1, 8, *LATENT),
        audio_latent=torch.zeros(1, 2, 17, 3),  # 17 audio tokens of 2 x 3 = audio_in_channels 6
        fps=25.0,
        sigmas=torch.tensor([1.0, 0.6, 0.3, 0.0]),
        positive=positive,
        negative=negative,
        guidance=ltx2_guidance.MultiModalGuidance(video=params, audio=params),
        num_layers=2,
    )
    reference = ltx2_sampling.generate(model, generator=torch.Generator().manual_seed(11), **run)
    out = ltx2_sampling.generate(
        SplitTransformer(model, "sequence", pg), generator=torch.Generator().manual_seed(11), **run
    )
    for modality, a, b in zip(("video", "audio"), out, reference):
        d = max_diff(a, b)
        assert a.shape == b.shape and d <= TOL, (
            f"rank {pg.rank}: LTX-2 sampling (4 passes, 3 steps) {modality} max diff {d}"
        )
        print(f"LTX-2 sampling W={pg.size} sequence: {modality} max abs diff {d:.3g}")


def test_ltx2_sampling_with_split_transformer_equals_single_process():
    spawn(_ltx2_sampling_case, 2)


# ---------------------------------------------------------------------------------------------------- VAE

UP = ["compress_all", {"residual": True, "multiplier": 2}]


def small_vae() -> CausalVideoVAE:
    """0.9.1 layout (timestep-conditioned decoder with noise injection), 8 base channels."""
    torch.manual_seed(0)
    config = VAEConfig.from_metadata(
        {
            "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3,
            "latent_channels": 16, "patch_size": 4, "norm_layer": "pixel_norm", "latent_log_var": "uniform",
            "use_quant_conv": False, "causal_decoder": False, "scaling_factor": 1.0, "encoder_base_channels": 8,
            "decoder_base_channels": 8, "spatial_padding_mode": "zeros", "timestep_conditioning": True,
            "encoder_blocks": [["res_x", 1], ["compress_all", 1], ["compress_all", 1], ["compress_all", 1]],
            "decoder_blocks": [["res_x", {"num_layers": 1, "inject_noise": True}], UP, UP, UP],
        }
    )  # fmt: skip
    vae = CausalVideoVAE(config).eval()
    for name, p in vae.decoder.named_parameters():
        if "per_channel_scale" in name:  # zero-initialized: make the noise matter
            torch.nn.init.normal_(p, std=0.5)
    return vae


def _decode_case(pg):
    vae = small_vae()
    raw = torch.randn(1, 16, 5, 3, 3, generator=torch.Generator().manual_seed(2))
    tiling = dict(temporal_chunk=2, temporal_overlap=1, blend=0.5)
    for spatial in ({}, {"spatial_tile": 2, "spatial_overlap": 1}):
        reference = decode_tiled(
            vae,
            raw,
            0.05,
            generator=torch.Generator().manual_seed(9),
            **tiling,
            **(spatial or {"spatial_tile": 4, "spatial_overlap": 0}),
        )
        seed = 9 if pg.rank == 0 else 100 + pg.rank  # the other ranks' generators take rank 0's state
        out = decode_distributed(vae, raw, 0.05, generator=torch.Generator().manual_seed(seed), **tiling, **spatial)
        if pg.rank != 0:
            assert out is None
            continue
        d = max_diff(out, reference)
        assert out.shape == reference.shape and d <= TOL, f"W={pg.size} tiles {spatial}: decode max diff {d}"
        print(f"distributed decode W={pg.size} tiles {spatial}: max abs diff {d:.3g}")
    with pytest.raises(ValueError, match="injects noise; pass generator="):
        decode_distributed(vae, raw, 0.05, **tiling)


@pytest.mark.parametrize("world", [2, 4])
def test_distributed_decode_equals_chunked_decode(world):
    spawn(_decode_case, world)


def ltx2_vae() -> LTX2VideoVAE:
    """LTX-2.3 decoder layout (compress_space / compress_time with channel multipliers, group-norm shortcut)."""
    torch.manual_seed(0)
    res_up = {"residual": True, "multiplier": 2}
    config = ltx2_vae_config(
        {
            "latent_channels": 16, "patch_size": 4, "decoder_base_channels": 8,
            "encoder_blocks": [["res_x", 1], ["compress_space_res", {"multiplier": 2}],
                               ["compress_time_res", {"multiplier": 2}], ["compress_all_res", {"multiplier": 2}]],
            "decoder_blocks": [["res_x", 1], ["compress_space", {"multiplier": 2}], ["res_x", 1],
                               ["compress_time", {"multiplier": 2}], ["compress_all", res_up], ["res_x", 1]],
        }
    )  # fmt: skip
    return LTX2VideoVAE(config).eval()


def _pipeline_decode_case(pg):
    latents = torch.randn(1, 16, 20, 2, 2, generator=torch.Generator().manual_seed(3))  # 2 chunks of 16 (overlap 3)
    for name, vae in (("0.9.1", small_vae()), ("LTX-2.3", ltx2_vae())):
        reference = decode_latents(vae, latents, seed=5, tiling="on")
        out = decode_latents_distributed(vae, latents, seed=5, group=pg)
        if pg.rank != 0:
            assert out is None
            continue
        d = max_diff(out, reference)
        assert out.shape == reference.shape and d <= TOL, f"W={pg.size} {name}: decode_latents max diff {d}"
        print(f"decode_latents_distributed W={pg.size} {name}: max abs diff {d:.3g}")


def test_distributed_decode_equals_the_pipelines_tiled_decode():
    spawn(_pipeline_decode_case, 2)


def _subgroup_case(pg):
    """4 processes as two groups of 2 (e.g. sequence parallel inside, one sample per group): group ranks, the
    gather destination and the broadcast source are the group's first process, not global rank 0."""
    groups = [dist.new_group([0, 1]), dist.new_group([2, 3])]
    sub = ParallelGroup.of(groups[pg.rank // 2])
    assert (sub.rank, sub.size) == (pg.rank % 2, 2)
    model, inputs = dit_inputs(2)
    out = dit_sequence_parallel(model, *inputs, group=sub)
    d = max_diff(out, model(*inputs))
    assert d <= TOL, f"rank {pg.rank} (group rank {sub.rank}): DiT sequence parallel in a subgroup max diff {d}"
    vae = small_vae()
    raw = torch.randn(1, 16, 5, 3, 3, generator=torch.Generator().manual_seed(2))
    tiling = dict(temporal_chunk=2, temporal_overlap=1, spatial_tile=4, spatial_overlap=0)
    reference = decode_tiled(vae, raw, 0.05, generator=torch.Generator().manual_seed(9), **tiling)
    seed = 9 if sub.rank == 0 else 50 + pg.rank
    out = decode_distributed(vae, raw, 0.05, generator=torch.Generator().manual_seed(seed), **tiling, group=sub)
    if sub.rank != 0:
        assert out is None
        return
    d = max_diff(out, reference)
    assert d <= TOL, f"rank {pg.rank} (group rank 0): distributed decode in a subgroup max diff {d}"


def test_subgroups_of_the_default_group():
    spawn(_subgroup_case, 4)
