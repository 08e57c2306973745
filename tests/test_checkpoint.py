"""Checkpoint loading: official single file (with and without metadata, fp16, fp8, scaled fp8), diffusers folders
written by diffusers' own classes, the latent upsampler file, family detection (LTX-Video 0.9.x, LTX-2) and the
errors for files that are not what they seem. All models are tiny and random; files go to tmp_path.

Outputs of models loaded from a file are compared with a tolerance (ROUND_TRIP_TOL), never bit for bit: the loaded
fp32 tensors are memory-mapped views that may sit at unaligned addresses, and CPU kernels then round differently
(1.3e-5 seen on VAE decodes). The stored tensors themselves are compared exactly (same dtype: exact by construction)."""

import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file
from videodit.model.checkpoint import (
    CheckpointError,
    describe_keys,
    detect_family,
    diffusers_dit_key,
    diffusers_vae_key,
    infer_vae_config,
    load_checkpoint,
    load_latent_upsampler,
    save_checkpoint,
    save_safetensors,
    vae_generation,
)
from videodit.model.ltxv.dit import LTXVideoTransformer, TransformerConfig
from videodit.model.ltxv.upsampler import LatentUpsampler, UpsamplerConfig
from videodit.model.ltxv.vae import CausalVideoVAE, VAEConfig

LATENT = 16
# fp32 outputs of a model loaded from a file vs the model that was saved: max |diff| / max(1, max |expected|)
ROUND_TRIP_TOL = 1e-5
UP = ["compress_all", {"residual": True, "multiplier": 2}]
# Tiny versions of the three VAE generations (same block vocabulary and order as the released files).
SMALL_090 = [
    ["res_x", 1],
    ["compress_all", 1],
    ["res_x_y", 1],
    ["compress_all", 1],
    ["res_x_y", 1],
    ["compress_all", 1],
    ["res_x", 1],
    ["res_x", 1],
]
VAE_BLOCKS = {
    "0.9.0": {"blocks": SMALL_090},
    "0.9.1": {
        "encoder_blocks": SMALL_090,
        "timestep_conditioning": True,
        "decoder_blocks": [
            ["res_x", {"num_layers": 1, "inject_noise": True}],
            UP,
            ["res_x", {"num_layers": 2, "inject_noise": True}],
            UP,
            ["res_x", {"num_layers": 1, "inject_noise": True}],
            UP,
            ["res_x", {"num_layers": 1}],
        ],
    },
    "0.9.5": {
        "timestep_conditioning": True,
        "encoder_blocks": [
            ["res_x", {"num_layers": 1}],
            ["compress_space_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 1}],
            ["compress_time_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 1}],
            ["compress_all_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 1}],
            ["compress_all_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 1}],
        ],
        "decoder_blocks": [
            ["res_x", {"num_layers": 1}],
            UP,
            ["res_x", {"num_layers": 1}],
            UP,
            ["res_x", {"num_layers": 1}],
            UP,
            ["res_x", {"num_layers": 1}],
        ],
    },
}


def vae_metadata(version: str) -> dict:
    return {
        "_class_name": "CausalVideoAutoencoder",
        "dims": 3,
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": LATENT,
        "patch_size": 4,
        "norm_layer": "pixel_norm",
        "latent_log_var": "uniform",
        "use_quant_conv": False,
        "causal_decoder": False,
        "scaling_factor": 1.0,
        "encoder_base_channels": 8,
        "decoder_base_channels": 8,
        **VAE_BLOCKS[version],
    }


def transformer_metadata(causal: bool) -> dict:
    # 32 heads like every official model, so that shape-based inference (which assumes 32) applies
    return TransformerConfig(
        num_layers=2,
        num_attention_heads=32,
        attention_head_dim=2,
        cross_attention_dim=64,
        caption_channels=24,
        in_channels=LATENT,
        out_channels=LATENT,
        causal_temporal_positioning=causal,
    ).to_metadata()


def randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter and float buffer random (zero-initialised layers would hide swapped keys)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if name.endswith("per_channel_statistics.channel"):
                continue
            noise = torch.randn(tensor.shape, generator=gen) * 0.2
            if name.endswith("std-of-means") or name.endswith("timestep_scale_multiplier"):
                noise = noise.abs() + 0.5
            tensor.copy_(noise)
    return module.eval()


def tiny_models(version: str = "0.9.5", seed: int = 0):
    config = {
        "transformer": transformer_metadata(causal=version == "0.9.5"),
        "vae": vae_metadata(version),
        "scheduler": {"sampler": "LinearQuadratic", "shifting": None},
        "allowed_inference_steps": [1.0, 0.9937, 0.9875],
    }
    transformer = randomize(LTXVideoTransformer(TransformerConfig.from_metadata(config["transformer"])), seed)
    vae = randomize(CausalVideoVAE(VAEConfig.from_metadata(config["vae"])), seed + 1)
    return transformer, vae, config


def same_structure(a: VAEConfig, b: VAEConfig) -> bool:
    """Same block names, flags and tensor shapes (block params may be spelled differently: 1 vs {multiplier: 2})."""

    def names(blocks):
        return [(n, p.get("residual", False), p.get("inject_noise", False)) for n, p in blocks]

    with torch.device("meta"):
        shapes_a = {k: v.shape for k, v in CausalVideoVAE(a).state_dict().items()}
        shapes_b = {k: v.shape for k, v in CausalVideoVAE(b).state_dict().items()}
    return (
        names(a.encoder_blocks) == names(b.encoder_blocks)
        and names(a.decoder_blocks) == names(b.decoder_blocks)
        and a.timestep_conditioning == b.timestep_conditioning
        and shapes_a == shapes_b
    )


def dit_inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randn(2, 12, LATENT, generator=gen)
    coords = torch.rand(2, 3, 12, generator=gen) * torch.tensor([2.0, 256.0, 256.0])[None, :, None]
    text = torch.randn(2, 5, 24, generator=gen)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    timestep = torch.tensor([[0.7], [0.3]])
    return tokens, coords, text, mask, timestep


def dit_out(model, inputs):
    dtype = model.patchify_proj.weight.dtype
    tokens, coords, text, mask, timestep = inputs
    with torch.no_grad():
        return model(tokens.to(dtype), coords, text.to(dtype), mask, timestep).float()


def vae_out(vae, seed: int = 1):
    raw = torch.randn(1, LATENT, 2, 2, 2, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return vae.decode(raw.to(vae.dtype), timestep=0.05, generator=torch.Generator().manual_seed(3)).float()


def assert_close(got: torch.Tensor, expected: torch.Tensor, what: str, tol: float = ROUND_TRIP_TOL) -> float:
    """max |got - expected| within tol * max(1, max |expected|); returns the max abs diff (printed on failure)."""
    diff = (got.float() - expected.float()).abs().max().item()
    scale = max(1.0, expected.abs().max().item())
    assert diff <= tol * scale, f"{what}: max|diff| {diff:.3e} > {tol:.0e} * {scale:.2f}"
    return diff


def assert_same_state(loaded: torch.nn.Module, source: torch.nn.Module, dtype=torch.float32):
    src = source.state_dict()
    got = loaded.state_dict()
    assert set(got) == set(src)
    for key, value in src.items():
        assert got[key].dtype == (dtype if value.is_floating_point() else value.dtype), key
        assert torch.equal(got[key], value.to(got[key].dtype)), key


# ---------------------------------------------------------------------------------------------------------------
# Official single-file layout


def test_round_trip_official_layout(tmp_path):
    transformer, vae, config = tiny_models("0.9.5")
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(path, transformer, vae, config)
    assert not os.path.exists(str(path) + ".tmp")

    ckpt = load_checkpoint(path, dtype=torch.float32)
    assert ckpt.version == "0.9.5"
    assert ckpt.scheduler_config == config["scheduler"]
    assert ckpt.allowed_inference_steps == config["allowed_inference_steps"]
    assert ckpt.transformer_config == transformer.config and ckpt.vae_config == vae.config
    assert_same_state(ckpt.transformer, transformer)
    assert_same_state(ckpt.vae, vae)
    assert not any(p.requires_grad for p in ckpt.transformer.parameters())
    inputs = dit_inputs()
    dit_diff = assert_close(dit_out(ckpt.transformer, inputs), dit_out(transformer, inputs), "DiT")
    vae_diff = assert_close(vae_out(ckpt.vae), vae_out(vae), "VAE decode")
    print(f"official layout round trip: DiT max|diff| {dit_diff:.2e}, VAE decode max|diff| {vae_diff:.2e}")


@pytest.mark.parametrize("version", ["0.9.0", "0.9.1", "0.9.5"])
def test_config_inferred_without_metadata(tmp_path, version):
    transformer, vae, config = tiny_models(version)
    tensors = {"model.diffusion_model." + k: v for k, v in transformer.state_dict().items()}
    tensors.update({"vae." + k: v for k, v in vae.state_dict().items()})
    path = tmp_path / "nometa.safetensors"
    save_file(tensors, str(path))  # no metadata at all

    ckpt = load_checkpoint(path, dtype=torch.float32)
    assert ckpt.version == version
    assert ckpt.transformer_config == transformer.config  # incl. causal positioning: on for 0.9.5+ only
    assert same_structure(ckpt.vae_config, vae.config)
    expected_sampler = "LinearQuadratic" if version == "0.9.5" else "Uniform"
    assert ckpt.scheduler_config["sampler"] == expected_sampler
    assert_same_state(ckpt.vae, vae)
    inputs = dit_inputs()
    dit_diff = assert_close(dit_out(ckpt.transformer, inputs), dit_out(transformer, inputs), "DiT")
    vae_diff = assert_close(vae_out(ckpt.vae), vae_out(vae), "VAE decode")
    print(f"{version} without metadata: DiT max|diff| {dit_diff:.2e}, VAE decode max|diff| {vae_diff:.2e}")


@pytest.mark.parametrize(
    "version,preset", [("0.9.0", VAEConfig.v0_9_0), ("0.9.1", VAEConfig.v0_9_1), ("0.9.5", VAEConfig.v0_9_5)]
)
def test_vae_inference_on_full_size_shapes(version, preset):
    """Full-size released VAE layouts (built on meta: shapes only) are recognised and re-inferred exactly."""
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in CausalVideoVAE(preset()).state_dict().items()}
    assert vae_generation(shapes) == {"0.9.0": 0, "0.9.1": 1, "0.9.5": 2}[version]
    inferred = VAEConfig.from_metadata(infer_vae_config(shapes))
    assert same_structure(inferred, preset())


def test_fp16_and_fp8_files_load(tmp_path):
    transformer, vae, config = tiny_models("0.9.5")
    state = {"model.diffusion_model." + k: v for k, v in transformer.state_dict().items()}
    state.update({"vae." + k: v for k, v in vae.state_dict().items()})
    meta = {"config": json.dumps(config)}
    inputs = dit_inputs()
    reference = dit_out(transformer, inputs)

    save_safetensors(tmp_path / "fp16.safetensors", {k: v.half() for k, v in state.items()}, meta)
    for dtype in (torch.float32, torch.bfloat16):
        ckpt = load_checkpoint(tmp_path / "fp16.safetensors", dtype=dtype)
        for part, prefix in ((ckpt.transformer, "model.diffusion_model."), (ckpt.vae, "vae.")):
            for key, value in part.state_dict().items():
                assert value.dtype == dtype and torch.equal(value, state[prefix + key].half().to(dtype)), key
    relative = ((dit_out(ckpt.transformer, inputs) - reference).abs().max() / reference.abs().max()).item()
    assert relative < 0.05, relative  # bf16 compute

    for fp8_dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        fp8 = {k: (v.to(fp8_dtype) if v.ndim >= 2 else v) for k, v in state.items()}
        save_safetensors(tmp_path / "fp8.safetensors", fp8, meta)
        ckpt = load_checkpoint(tmp_path / "fp8.safetensors", dtype=torch.float32)
        for key in transformer.state_dict():
            expected = fp8["model.diffusion_model." + key].to(torch.float32)
            assert torch.equal(ckpt.transformer.state_dict()[key], expected), key
        relative = ((dit_out(ckpt.transformer, inputs) - reference).abs().max() / reference.abs().max()).item()
        assert relative < 0.3, (fp8_dtype, relative)  # e4m3 keeps 3 mantissa bits, e5m2 2

    # ComfyUI scaled fp8: weight stored as w / s in fp8, scale_weight s, a scaled_fp8 marker, scale_input ignored
    scaled = dict(state)
    name = "model.diffusion_model.transformer_blocks.0.attn1.to_q.weight"
    scale = torch.tensor(0.01)
    scaled[name] = (state[name] / scale).to(torch.float8_e4m3fn)
    scaled[name.replace(".weight", ".scale_weight")] = scale
    scaled[name.replace(".weight", ".scale_input")] = torch.tensor(1.0)
    scaled["model.diffusion_model.scaled_fp8"] = torch.zeros(0, dtype=torch.float8_e4m3fn)
    save_safetensors(tmp_path / "scaled.safetensors", scaled, meta)
    ckpt = load_checkpoint(tmp_path / "scaled.safetensors", dtype=torch.float32)
    loaded = ckpt.transformer.transformer_blocks[0].attn1.to_q.weight
    expected = scaled[name].to(torch.float32) * scale
    assert torch.equal(loaded, expected)
    assert (loaded - state[name]).abs().max() <= 0.07 * state[name].abs().max()


# ---------------------------------------------------------------------------------------------------------------
# diffusers layouts, written by diffusers' own classes


def diffusers_configs():
    transformer = {
        "in_channels": LATENT,
        "out_channels": LATENT,
        "patch_size": 1,
        "patch_size_t": 1,
        "num_attention_heads": 32,
        "attention_head_dim": 2,
        "cross_attention_dim": 64,
        "num_layers": 2,
        "caption_channels": 24,
        "qk_norm": "rms_norm_across_heads",
        "norm_eps": 1e-6,
    }
    # the 0.9.5 layout (LTXVideo095DownBlock3D encoder, residual x2 upsamplers, conditioned decoder), narrow
    vae = {
        "latent_channels": LATENT,
        "block_out_channels": (8, 16, 32, 64, 128),
        "down_block_types": ("LTXVideo095DownBlock3D",) * 4,
        "layers_per_block": (1, 1, 1, 1, 1),
        "spatio_temporal_scaling": (True, True, True, True),
        "downsample_type": ("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        "decoder_block_out_channels": (16, 32, 64),
        "decoder_layers_per_block": (1, 1, 1, 1),
        "decoder_spatio_temporal_scaling": (True, True, True),
        "decoder_inject_noise": (False,) * 4,
        "upsample_residual": (True, True, True),
        "upsample_factor": (2, 2, 2),
        "timestep_conditioning": True,
    }
    return transformer, vae


@pytest.mark.parametrize("sharded", [False, True])
def test_diffusers_folder(tmp_path, sharded):
    diffusers = pytest.importorskip("diffusers")
    dit_cfg, vae_cfg = diffusers_configs()
    torch.manual_seed(0)
    d_dit = randomize(diffusers.LTXVideoTransformer3DModel(**dit_cfg), 10)
    d_vae = randomize(diffusers.AutoencoderKLLTXVideo(**vae_cfg), 11)
    d_dit.save_pretrained(tmp_path / "transformer", max_shard_size="40KB" if sharded else "10GB")
    d_vae.save_pretrained(tmp_path / "vae", max_shard_size="200KB" if sharded else "10GB")
    if sharded:
        assert any(n.endswith(".index.json") for n in os.listdir(tmp_path / "transformer"))

    ckpt = load_checkpoint(tmp_path, dtype=torch.float32)
    assert ckpt.version == "0.9.5"
    assert ckpt.transformer_config.causal_temporal_positioning
    # every tensor is the diffusers tensor under the mapped name
    d_state = {
        **{"dit." + k: v for k, v in d_dit.state_dict().items()},
        **{"vae." + k: v for k, v in d_vae.state_dict().items()},
    }
    for key, value in ckpt.transformer.state_dict().items():
        assert torch.equal(value, d_state["dit." + diffusers_dit_key(key)]), key
    for key, value in ckpt.vae.state_dict().items():
        if key in (
            "per_channel_statistics.channel",
            "per_channel_statistics.mean-of-stds",
            "per_channel_statistics.mean-of-stds_over_std-of-means",
        ):
            continue
        assert torch.equal(value, d_state["vae." + diffusers_vae_key(key, 2)]), key

    # outputs against diffusers' own forward passes
    tokens, coords, text, mask, timestep = dit_inputs()
    with torch.no_grad():
        expected = d_dit(
            hidden_states=tokens,
            encoder_hidden_states=text,
            timestep=(timestep[:, 0] * 1000),
            encoder_attention_mask=mask,
            video_coords=coords,
            return_dict=False,
        )[0]
    dit_diff = (dit_out(ckpt.transformer, (tokens, coords, text, mask, timestep)) - expected).abs().max().item()
    assert dit_diff <= 1e-5, dit_diff  # fp32
    raw = torch.randn(1, LATENT, 2, 2, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = d_vae.decode(raw, temb=torch.tensor([0.05]), return_dict=False)[0]
        got = ckpt.vae.decode(raw, timestep=0.05)
    vae_diff = ((got - expected).abs().max() / expected.abs().max()).item()
    print(
        f"diffusers folder: DiT max|diff| {dit_diff:.2e}, VAE decode max|diff|/max|out| {vae_diff:.2e} "
        f"(max|out| {expected.abs().max().item():.1f})"
    )
    assert vae_diff <= 1e-6, vae_diff  # fp32; diffusers' PixelNorm uses rsqrt, ours a division by sqrt

    # a weight file of the folder's transformer/ (what a file picker shows) loads the same folder
    weight_file = sorted(f for f in os.listdir(tmp_path / "transformer") if f.endswith(".safetensors"))[0]
    from_file = load_checkpoint(tmp_path / "transformer" / weight_file, dtype=torch.float32)
    for (key, value), other in zip(ckpt.transformer.state_dict().items(), from_file.transformer.state_dict().values()):
        assert torch.equal(value, other), key


# diffusers configs of the released VAEs (diffusers' conversion script), full size: checked on meta, shapes only
DIFFUSERS_RELEASED_VAES = {
    0: ({}, VAEConfig.v0_9_0),
    1: (
        {
            "decoder_block_out_channels": (256, 512, 1024),
            "decoder_layers_per_block": (5, 6, 7, 8),
            "decoder_spatio_temporal_scaling": (True, True, True),
            "decoder_inject_noise": (True, True, True, False),
            "upsample_residual": (True, True, True),
            "upsample_factor": (2, 2, 2),
            "timestep_conditioning": True,
        },
        VAEConfig.v0_9_1,
    ),
    2: (
        {
            "block_out_channels": (128, 256, 512, 1024, 2048),
            "down_block_types": ("LTXVideo095DownBlock3D",) * 4,
            "layers_per_block": (4, 6, 6, 2, 2),
            "spatio_temporal_scaling": (True,) * 4,
            "downsample_type": ("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
            "decoder_block_out_channels": (256, 512, 1024),
            "decoder_layers_per_block": (5, 5, 5, 5),
            "decoder_spatio_temporal_scaling": (True,) * 3,
            "decoder_inject_noise": (False,) * 4,
            "upsample_residual": (True,) * 3,
            "upsample_factor": (2, 2, 2),
            "timestep_conditioning": True,
        },
        VAEConfig.v0_9_5,
    ),
}


@pytest.mark.parametrize("generation", [0, 1, 2])
def test_diffusers_vae_mapping_full_size(generation):
    """Released VAE generations: diffusers config -> our config equals the preset, and every one of our keys maps
    onto exactly the diffusers key of the same shape (latents_mean/std being the two used statistics)."""
    diffusers = pytest.importorskip("diffusers")
    from videodit.model.checkpoint import vae_metadata_from_diffusers

    overrides, preset = DIFFUSERS_RELEASED_VAES[generation]
    with torch.device("meta"):
        theirs = {k: v.shape for k, v in diffusers.AutoencoderKLLTXVideo(**overrides).state_dict().items()}
        config = VAEConfig.from_metadata(
            vae_metadata_from_diffusers(dict(diffusers.AutoencoderKLLTXVideo(**overrides).config), "test")
        )
        ours = {k: v.shape for k, v in CausalVideoVAE(config).state_dict().items()}
    assert same_structure(config, preset())
    dropped = {
        "per_channel_statistics.channel",
        "per_channel_statistics.mean-of-stds",
        "per_channel_statistics.mean-of-stds_over_std-of-means",
    }
    mapped = {diffusers_vae_key(k, generation): shape for k, shape in ours.items() if k not in dropped}
    assert mapped == theirs


# ---------------------------------------------------------------------------------------------------------------
# Latent upsampler


@pytest.mark.parametrize("with_metadata", [True, False])
@pytest.mark.parametrize(
    "kind",
    [{}, {"rational_resampler": True, "spatial_scale": 1.5}, {"spatial_upsample": False, "temporal_upsample": True}],
)
def test_latent_upsampler_file(tmp_path, with_metadata, kind):
    """x2 spatial, x1.5 spatial (rational resampler: upsampler.conv keys) and x2 temporal files."""
    config = UpsamplerConfig(in_channels=LATENT, mid_channels=32, num_blocks_per_stage=2, **kind)
    source = randomize(LatentUpsampler(config), 5)
    path = tmp_path / "upsampler.safetensors"
    meta = {"config": json.dumps(config.to_metadata())} if with_metadata else {}
    save_safetensors(path, source.state_dict(), meta)
    if config.rational_resampler and not with_metadata:  # x1.5 and x0.75 have the same weights: metadata tells
        with pytest.raises(CheckpointError, match="cannot be told from the shapes alone.*needs its metadata config"):
            load_latent_upsampler(path, dtype=torch.float32)
        return
    loaded = load_latent_upsampler(path, dtype=torch.float32)
    assert loaded.config == config
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.randn(1, LATENT, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = assert_close(loaded(x), source(x), "latent upsampler")
    print(f"latent upsampler round trip (metadata {with_metadata}): max|diff| {diff:.2e}")
    with pytest.raises(CheckpointError, match="latent upsampler"):
        load_checkpoint(path)


# ---------------------------------------------------------------------------------------------------------------
# Files that are not what they seem


@pytest.fixture(scope="module")
def official_file(tmp_path_factory):
    transformer, vae, config = tiny_models("0.9.5")
    path = tmp_path_factory.mktemp("official") / "ltxv.safetensors"
    save_checkpoint(path, transformer, vae, config)
    return path


def test_truncated_file(tmp_path, official_file):
    data = official_file.read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value) and "truncated" in str(err.value) and "re-download" in str(err.value)
    path.write_bytes(data[:20])  # the header itself is cut
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_t5_file_given_as_checkpoint(tmp_path):
    t5 = {
        "encoder.block.0.layer.0.SelfAttention.q.weight": torch.zeros(8, 8),
        "shared.weight": torch.zeros(4, 8),
        "encoder.final_layer_norm.weight": torch.ones(8),
    }
    path = tmp_path / "t5xxl_fp16.safetensors"
    save_file(t5, str(path))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)
    assert "T5 text encoder file, not an LTX-Video checkpoint; put it in models/text_encoders" in str(err.value)
    assert "VideoDiT Text Encoder Loader node" in str(err.value)


def test_renamed_key(tmp_path, official_file):
    from safetensors import safe_open

    with safe_open(str(official_file), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    old = "model.diffusion_model.transformer_blocks.1.attn2.to_k.weight"
    tensors[old.replace("to_k", "to_key")] = tensors.pop(old)
    path = tmp_path / "renamed.safetensors"
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert str(path) in message
    assert "missing keys" in message and "transformer_blocks.1.attn2.to_k.weight" in message
    assert "unexpected keys" in message and "transformer_blocks.1.attn2.to_key.weight" in message


def test_wrong_shape_named_with_both_shapes(tmp_path, official_file):
    from safetensors import safe_open

    with safe_open(str(official_file), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    tensors["vae.decoder.conv_out.conv.bias"] = torch.zeros(7)
    path = tmp_path / "shape.safetensors"
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match=r"decoder.conv_out.conv.bias expected \[48\] found \[7\]"):
        load_checkpoint(path)


def test_partial_and_foreign_files(tmp_path, official_file):
    from safetensors import safe_open

    with safe_open(str(official_file), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    cases = {
        "vae_only": ({k: v for k, v in tensors.items() if k.startswith("vae.")}, "VAE-only"),
        "dit_only": ({k: v for k, v in tensors.items() if k.startswith("model.")}, "transformer-only"),
        "flux": ({"double_blocks.0.img_attn.qkv.weight": torch.zeros(2, 2)}, "Flux"),
        "sd": ({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 2)}, "Stable Diffusion"),
    }
    for name, (state, words) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        save_file(state, str(path))
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        assert str(path) in str(err.value) and words in str(err.value), (name, str(err.value))


def test_gguf_is_named(tmp_path):
    path = tmp_path / "ltxv-Q8.gguf"
    path.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(CheckpointError, match="ltxv-Q8.gguf: this is a GGUF"):
        load_checkpoint(path)


class Boom:
    def __reduce__(self):
        return (os.system, ("touch UNPICKLED",))


def test_pickle_is_refused_without_unpickling(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("model.ckpt", "model.safetensors"):  # the extension does not matter: the bytes are a pickle
        path = tmp_path / name
        path.write_bytes(pickle.dumps(Boom()))
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        assert str(path) in str(err.value) and "pickle" in str(err.value)
    assert not (tmp_path / "UNPICKLED").exists()


# ---------------------------------------------------------------------------------------------------------------
# Family detection from the header alone (keys and metadata; every tensor a placeholder of one element)

LTX2_TRANSFORMER = [
    "patchify_proj.weight",
    "adaln_single.linear.weight",
    "audio_patchify_proj.weight",
    "audio_adaln_single.linear.weight",
    "av_ca_a2v_gate_adaln_single.emb.timestep_embedder.linear_1.weight",
    "transformer_blocks.0.attn1.to_q.weight",
    "transformer_blocks.0.audio_attn1.to_q.weight",
    "transformer_blocks.0.audio_to_video_attn.to_q.weight",
]
LTX2_22B = ["transformer_blocks.0.attn1.to_gate_logits.weight", "transformer_blocks.0.prompt_scale_shift_table"]
VIDEO_VAE = ["encoder.conv_in.conv.weight", "decoder.conv_in.conv.weight", "per_channel_statistics.mean-of-means"]
AUDIO_VAE = ["audio_vae.encoder.conv_in.conv.weight", "audio_vae.per_channel_statistics.mean-of-means"]


def write_header_file(path, keys, metadata=None):
    save_file({k: torch.zeros(1) for k in keys}, str(path), metadata=metadata)
    return path


def ltx2_monolith_keys(version: str) -> list[str]:
    dit = LTX2_TRANSFORMER + (LTX2_22B if version == "2.3" else ["caption_projection.linear_1.weight"])
    projection = "video_aggregate_embed" if version == "2.3" else "aggregate_embed"
    vocoder = ["vocoder.vocoder.conv_pre.weight", "vocoder.bwe_generator.conv_pre.weight"]
    return (
        ["model.diffusion_model." + k for k in dit]
        + ["model.diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q.weight"]
        + [f"text_embedding_projection.{projection}.weight"]
        + ["vae." + k for k in VIDEO_VAE]
        + AUDIO_VAE
        + (vocoder if version == "2.3" else ["vocoder.conv_pre.weight"])
    )


@pytest.mark.parametrize("version", ["0.9.0", "0.9.1", "0.9.5"])
def test_detect_ltxv_checkpoint(tmp_path, version):
    transformer, vae, config = tiny_models(version)
    keys = ["model.diffusion_model." + k for k in transformer.state_dict()] + ["vae." + k for k in vae.state_dict()]
    path = write_header_file(tmp_path / "ltxv.safetensors", keys)
    found = detect_family(path)
    assert (found.family, found.version, found.components) == ("ltxv", version, ("transformer", "vae"))
    assert found.path == str(path) and f"LTX-Video {version} checkpoint" in found.description
    # a parsed header gives the same answer without a file
    header = {k: {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]} for k in keys}
    assert detect_family(header, name="in memory").description == found.description
    with pytest.raises(CheckpointError, match=f"{path}: this is an LTX-Video {version} checkpoint.*reads LTX-2"):
        found.require("ltx2")


@pytest.mark.parametrize("version", ["2.0", "2.3"])
@pytest.mark.parametrize("with_metadata", [True, False])
def test_detect_ltx2_monolith(tmp_path, version, with_metadata):
    metadata = None
    if with_metadata:  # the metadata alone tells the version; the keys of the other version must not matter
        metadata = {"model_version": f"{version}.0", "config": json.dumps({"transformer": {}, "audio_vae": {}})}
    keys = ltx2_monolith_keys(version if not with_metadata else {"2.0": "2.3", "2.3": "2.0"}[version])
    path = write_header_file(tmp_path / "ltx-2.safetensors", keys, metadata)
    found = detect_family(path)
    assert (found.family, found.version) == ("ltx2", version)
    assert found.components == ("transformer", "vae", "audio_vae", "vocoder", "text_connectors")
    assert f"this is an LTX-{version} checkpoint" in found.description
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert f"{path}: this is an LTX-{version} checkpoint" in str(err.value)
    assert "LTX-Video 0.9.x checkpoint loader reads LTX-Video 0.9.x files" in str(err.value)


def test_detect_ltx25_split_files(tmp_path):
    dit = LTX2_TRANSFORMER + LTX2_22B + ["keyframes_abs_pos_embedding"]
    path = write_header_file(
        tmp_path / "ltx-2.5-22b-dev-transformer-bf16.safetensors", ["model.diffusion_model." + k for k in dit]
    )
    found = detect_family(path)
    assert (found.family, found.version, found.components) == ("ltx2", "2.5", ("transformer",))
    assert "transformer-only LTX-2.5 file" in found.description
    with pytest.raises(CheckpointError, match="needs vae weights"):
        found.require("ltx2", ("transformer", "vae"))
    # the split video VAE: bare keys, told from a 0.9.x VAE by its metadata only
    config = json.dumps({"vae": {"_class_name": "CausalDiffusionVAE"}})
    vae = write_header_file(tmp_path / "ltx-2.5-video-vae-bf16.safetensors", VIDEO_VAE, {"config": config})
    found = detect_family(vae)
    assert (found.family, found.version, found.components) == ("ltx2", "2.5", ("vae",))
    audio = write_header_file(
        tmp_path / "ltx-2.5-audio-vae-bf16.safetensors", AUDIO_VAE + ["vocoder.vocoder.conv_pre.weight"]
    )
    assert detect_family(audio).components == ("audio_vae", "vocoder")
    assert detect_family(audio).version is None  # a 2.3+ vocoder: 2.3 and 2.5 share it, the keys cannot tell
    assert "LTX-2 (version not told by its keys or metadata) component file" in detect_family(audio).description


def test_detect_vae_only(tmp_path, official_file):
    from safetensors import safe_open

    with safe_open(str(official_file), "pt") as f:
        keys = [k for k in f.keys() if k.startswith("vae.")]
    path = write_header_file(tmp_path / "vae.safetensors", keys)
    found = detect_family(path)
    assert (found.family, found.version, found.components) == ("ltxv", "0.9.5", ("vae",))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert f"{path}: this is a VAE-only LTX-Video file" in str(err.value) and "needs transformer weights" in str(
        err.value
    )


def test_detect_upsampler_and_text_encoders_are_not_checkpoints(tmp_path):
    cases = {
        "upsampler": (
            ["initial_conv.weight", "upsampler.0.weight", "res_blocks.0.conv1.weight", "final_conv.weight"],
            ["latent upsampler file, not a checkpoint", "load_latent_upsampler(path)"],
        ),
        "t5xxl": (
            ["encoder.block.0.layer.0.SelfAttention.q.weight", "shared.weight", "encoder.final_layer_norm.weight"],
            ["T5 text encoder file", "models/text_encoders"],
        ),
        "gemma3": (  # Hugging Face Gemma-3 release layout
            ["language_model.model.layers.0.self_attn.q_proj.weight", "language_model.model.embed_tokens.weight"],
            ["Gemma text encoder file (the LTX-2 text encoder), not a checkpoint"],
        ),
        "gemma4-with-proj": (  # the LTX-2.5 text encoder file: Comfy-flat Gemma plus the LTX projection
            [
                "model.layers.0.self_attn.q_proj.weight",
                "model.layers.0.mlp.gate_proj.weight",
                "text_embedding_projection.video_aggregate_embed.weight",
            ],
            ["Gemma text encoder file with the LTX-2.5 text projection", "not a checkpoint"],
        ),
    }
    for name, (keys, words) in cases.items():
        path = write_header_file(tmp_path / f"{name}.safetensors", keys)
        for read in (detect_family, load_checkpoint):
            with pytest.raises(CheckpointError) as err:
                read(path)
            assert str(err.value).startswith(f"{path}: this is a"), (name, str(err.value))
            assert all(w in str(err.value) for w in words), (name, str(err.value))
    assert "Gemma text encoder" in describe_keys(cases["gemma3"][0])


def test_detect_truncated_file(tmp_path, official_file):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(official_file.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match=f"{path}: the header describes .* truncated or corrupt"):
        detect_family(path)
