"""Causal video VAE, tiled decode and latent upsampler against the official ltx_video code (CPU, fp32).

Parity: small configs of each VAE generation's block vocabulary (0.9.0 shared blocks, 0.9.1 conditioned decoder with
noise injection, 0.9.5 residual space/time-to-depth encoder), random weights with every learned scalar/statistic
randomized, one state dict loaded strictly into ours and into ltx_video's CausalVideoAutoencoder.
"""

import pytest
import torch
from videodit.model.ltxv.upsampler import LatentUpsampler, UpsamplerConfig
from videodit.model.ltxv.vae import CausalVideoVAE, VAEConfig
from videodit.model.ltxv.vae_tiling import decode_auto, decode_tiled, estimate_decode_bytes, exact_overlap

cva = pytest.importorskip("ltx_video.models.autoencoders.causal_video_autoencoder")
official_upsampler = pytest.importorskip("ltx_video.models.autoencoders.latent_upsampler")
from ltx_video.models.autoencoders.vae_encode import normalize_latents, un_normalize_latents  # noqa: E402

PARITY_TOL = 1e-4
UPSAMPLER_TOL = 1e-5
UP = ["compress_all", {"residual": True, "multiplier": 2}]

SMALL_090 = [
    ["res_x", 1],
    ["compress_all", 1],
    ["res_x_y", 1],
    ["compress_all", 1],
    ["res_x_y", 1],
    ["compress_all", 1],
    ["res_x", 2],
]
SMALL_CONFIGS = {
    # 0.9.0 layout: one legacy `blocks` list, plain decoder
    "0.9.0": {"blocks": SMALL_090},
    # 0.9.1 layout: 0.9.0 encoder, conditioned decoder, noise injection in all but the first decoder stage
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
    # 0.9.5 layout: residual space-to-depth encoder, conditioned decoder without noise
    "0.9.5": {
        "timestep_conditioning": True,
        "encoder_blocks": [
            ["res_x", 1],
            ["compress_space_res", {"multiplier": 2}],
            ["res_x", 1],
            ["compress_time_res", {"multiplier": 2}],
            ["compress_all_res", {"multiplier": 2}],
            ["res_x", 1],
            ["compress_all_res", {"multiplier": 2}],
            ["res_x", 1],
        ],
        "decoder_blocks": [["res_x", 1], UP, ["res_x", 2], UP, ["res_x", 1], UP, ["res_x", 1]],
    },
    # rest of the vocabulary: plain strided compressions, compress_all_x_y, decoder compress_time/space
    "vocabulary": {
        "encoder_blocks": [
            ["compress_space", 1],
            ["compress_time", 1],
            ["res_x_y", 1],
            ["compress_all_x_y", {"multiplier": 2}],
            ["compress_all", 1],
        ],
        "decoder_blocks": [
            ["compress_space", 1],
            ["compress_time", 1],
            ["res_x_y", 1],
            ["compress_all", {"multiplier": 2}],
            ["compress_all", 1],
        ],
    },
}


def metadata(version: str, padding: str = "zeros", base: int = 8, **extra) -> dict:
    return {
        "_class_name": "CausalVideoAutoencoder",
        "dims": 3,
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 16,
        "patch_size": 4,
        "norm_layer": "pixel_norm",
        "latent_log_var": "uniform",
        "use_quant_conv": False,
        "causal_decoder": False,
        "scaling_factor": 1.0,
        "encoder_base_channels": base,
        "decoder_base_channels": base,
        "spatial_padding_mode": padding,
        **SMALL_CONFIGS[version],
        **extra,
    }


def randomized_state_dict(model: CausalVideoVAE, seed: int) -> dict:
    """Our model's state dict with every tensor random (statistics, noise scales, LayerNorms, multiplier)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, value in model.state_dict().items():
        if key == "decoder.timestep_scale_multiplier":
            sd[key] = torch.tensor(731.25)
        elif key == "per_channel_statistics.std-of-means":
            sd[key] = 0.5 + torch.rand(value.shape, generator=gen)
        elif key == "per_channel_statistics.channel":
            sd[key] = value.clone()
        else:
            scale = 1.0 if "norm3" in key or "per_channel" in key or "scale_shift" in key else 0.15
            sd[key] = torch.randn(value.shape, generator=gen) * scale + (1.0 if key.endswith("norm.weight") else 0)
    return sd


def build_pair(version: str, padding: str = "zeros", seed: int = 0, **extra):
    md = metadata(version, padding, **extra)
    ours = CausalVideoVAE(VAEConfig.from_metadata(md)).eval()
    sd = randomized_state_dict(ours, seed)
    ours.load_state_dict(sd, strict=True)
    ref = cva.CausalVideoAutoencoder.from_config(dict(md)).eval()
    ref.load_state_dict(sd, strict=True)
    return ours, ref


def max_diff(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.mark.parametrize("padding", ["zeros", "reflect"])
@pytest.mark.parametrize("version", ["0.9.0", "0.9.1", "0.9.5", "vocabulary"])
def test_encode_decode_match_official(version, padding):
    ours, ref = build_pair(version, padding)
    video = torch.rand(2, 3, 17, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        latent = ours.encode(video)
        ref_latent = ref.encode(video).latent_dist.mode()
        assert latent.shape == (2, 16, 3, 2, 2)
        d_enc = max_diff(latent, ref_latent)
        d_norm = max_diff(ours.normalize(latent), normalize_latents(ref_latent, ref, True))
        d_denorm = max_diff(ours.denormalize(latent), un_normalize_latents(ref_latent, ref, True))
        timestep = torch.tensor([0.05, 0.7]) if ours.config.timestep_conditioning else None
        torch.manual_seed(5)  # 0.9.1 noise injection: same global RNG stream for both
        decoded = ours.decode(latent, timestep=timestep)
        torch.manual_seed(5)
        ref_decoded = ref.decode(latent, target_shape=video.shape, timestep=timestep).sample
        d_dec = max_diff(decoded, ref_decoded)
    print(
        f"{version} {padding}: encode {d_enc:.2e} normalize {d_norm:.2e} denormalize {d_denorm:.2e} "
        f"decode {d_dec:.2e} (|decoded| max {decoded.abs().max():.2f})"
    )
    assert max(d_enc, d_norm, d_denorm, d_dec) <= PARITY_TOL


def test_bf16_matches_official_bf16():
    """Both cast to bf16 (the reference's inference precision): same arithmetic order, so (near-)identical."""
    ours, ref = build_pair("0.9.1")
    ours.to(torch.bfloat16)
    ref.to(torch.bfloat16)
    video = (torch.rand(1, 3, 9, 64, 64, generator=torch.Generator().manual_seed(6)) * 2 - 1).bfloat16()
    with torch.no_grad():
        latent = ours.encode(video)
        ref_latent = ref.encode(video).latent_dist.mode()
        torch.manual_seed(8)
        decoded = ours.decode(latent, torch.tensor([0.05]))
        torch.manual_seed(8)
        ref_decoded = ref.decode(latent, target_shape=video.shape, timestep=torch.tensor([0.05])).sample
    assert latent.dtype == decoded.dtype == torch.bfloat16
    d_enc, d_dec = max_diff(latent.float(), ref_latent.float()), max_diff(decoded.float(), ref_decoded.float())
    print(f"bf16 0.9.1: encode {d_enc:.2e} decode {d_dec:.2e}")
    assert d_enc <= 1e-2 * ref_latent.float().abs().max() and d_dec <= 1e-2 * ref_decoded.float().abs().max()


def test_posterior_sample_matches_official():
    ours, ref = build_pair("0.9.5")
    video = torch.rand(1, 3, 9, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        torch.manual_seed(11)
        sampled = ours.encode(video, sample=True)
        torch.manual_seed(11)
        ref_sampled = ref.encode(video).latent_dist.sample()
        mean = ours.encode(video)
        gen_a = ours.encode(video, sample=True, generator=torch.Generator().manual_seed(3))
        gen_b = ours.encode(video, sample=True, generator=torch.Generator().manual_seed(3))
    assert max_diff(sampled, ref_sampled) <= PARITY_TOL
    assert torch.equal(gen_a, gen_b)
    assert (gen_a - mean).abs().max() > 1e-3  # a sample is not the mean


def test_decoder_noise_injection():
    ours, _ = build_pair("0.9.1")
    latent = torch.randn(1, 16, 2, 2, 2, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a = ours.decode(latent, timestep=0.05, generator=torch.Generator().manual_seed(1))
        b = ours.decode(latent, timestep=0.05, generator=torch.Generator().manual_seed(1))
        c = ours.decode(latent, timestep=0.05, generator=torch.Generator().manual_seed(2))
        for name, p in ours.named_parameters():
            if "per_channel_scale" in name:
                p.zero_()
        d = ours.decode(latent, timestep=0.05, generator=torch.Generator().manual_seed(1))
        e = ours.decode(latent, timestep=0.05, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-2  # the noise reaches the output
    assert torch.equal(d, e)  # zero per-channel scales: no noise at all
    assert (a - d).abs().max() > 1e-2


def test_decode_timestep_matters_and_is_required():
    ours, _ = build_pair("0.9.5")
    latent = torch.randn(1, 16, 2, 2, 2)
    with torch.no_grad():
        assert (ours.decode(latent, 0.05) - ours.decode(latent, 0.5)).abs().max() > 1e-3
    with pytest.raises(ValueError, match="timestep-conditioned"):
        ours.decode(latent)
    with pytest.raises(ValueError, match="one per sample"):
        ours.decode(torch.randn(2, 16, 2, 2, 2), timestep=torch.tensor([0.1, 0.2, 0.3]))


def test_shape_errors_name_the_problem():
    ours, _ = build_pair("0.9.0")
    with pytest.raises(ValueError, match=r"F = 8k\+1"):
        ours.encode(torch.zeros(1, 3, 8, 64, 64))
    with pytest.raises(ValueError, match="multiples of 32"):
        ours.encode(torch.zeros(1, 3, 9, 48, 64))
    with pytest.raises(ValueError, match=r"\(B, 16, f, h, w\)"):
        ours.decode(torch.zeros(1, 8, 2, 2, 2))


def test_config_from_metadata():
    legacy = VAEConfig.from_metadata(metadata("0.9.0"))
    assert legacy.encoder_blocks == legacy.decoder_blocks
    assert (legacy.spatial_factor, legacy.temporal_factor, legacy.latent_channels) == (32, 8, 16)
    assert VAEConfig.from_metadata(legacy.to_metadata()) == legacy
    for preset in (VAEConfig.v0_9_0(), VAEConfig.v0_9_1(), VAEConfig.v0_9_5()):
        assert (preset.spatial_factor, preset.temporal_factor, preset.latent_channels) == (32, 8, 128)
        assert VAEConfig.from_metadata(preset.to_metadata()) == preset
    bad = [
        ({"norm_layer": "group_norm"}, "norm_layer"),
        ({"latent_log_var": "per_channel"}, "latent_log_var"),
        ({"use_quant_conv": True}, "use_quant_conv"),
        ({"dims": 2}, "dims"),
        ({"spatial_padding_mode": "circular"}, "spatial_padding_mode"),
        ({"_class_name": "VideoAutoencoder"}, "_class_name"),
        ({"blocks": [["attn_res_x", 1]]}, "attn_res_x"),
        ({"blocks": [["res_x", {"foo": 1}]]}, "foo"),
    ]
    for change, message in bad:
        with pytest.raises(ValueError, match=message):
            VAEConfig.from_metadata({**metadata("0.9.0"), **change})
    with pytest.raises(ValueError, match="decoder expands"):
        VAEConfig.from_metadata({**metadata("0.9.5"), "decoder_blocks": [["res_x", 1], UP]})


# ------------------------------------------------------------------------------------------ tiled decode

TILED_TOL = 5e-5  # decode_tiled vs decode with exact_overlap: float rounding only (fp32, |video| up to ~10)


def tiling_vae(factors: str = "32x8"):
    """A 0.9.1-style conditioned decoder with noise injection at the last stage; real 32x/8x factors, or 2x/2x
    (patch 1, one compression) for a cheap test that tiles all three axes at once."""
    if factors == "32x8":
        md = metadata(
            "0.9.1", "reflect", base=4, decoder_blocks=[["res_x", {"num_layers": 1, "inject_noise": True}], UP, UP, UP]
        )
    else:
        md = metadata(
            "0.9.1",
            "reflect",
            base=4,
            patch_size=1,
            encoder_blocks=[["res_x", 1], ["compress_all", 1]],
            decoder_blocks=[["res_x", {"num_layers": 1, "inject_noise": True}], UP],
        )
    vae = CausalVideoVAE(VAEConfig.from_metadata(md)).eval()
    vae.load_state_dict(randomized_state_dict(vae, 3))
    return vae


def record_pieces(vae):
    shapes = []
    handle = vae.decoder.register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape[2:])))
    return shapes, handle


def plain_and_tiled(vae, latent_shape, seed=0, **tiling):
    raw = torch.randn(1, 16, *latent_shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        plain = vae.decode(raw, 0.05, generator=torch.Generator().manual_seed(9))
    shapes, handle = record_pieces(vae)
    tiled = decode_tiled(vae, raw, 0.05, generator=torch.Generator().manual_seed(9), **tiling)
    handle.remove()
    return plain, tiled, shapes


@pytest.mark.parametrize("case", ["temporal", "spatial", "all axes"])
def test_tiled_decode_equals_plain_with_exact_overlap(case):
    vae = tiling_vae("2x2" if case == "all axes" else "32x8")
    blend = 0.5 if case == "temporal" else 0.0
    overlap_t, overlap_s = exact_overlap(vae.config, blend)
    chunk, tile = overlap_t + 2, overlap_s + 2
    latent_shape = {
        "temporal": (chunk + 3, 2, 2),
        "spatial": (1, tile + 4, tile + 3),
        "all axes": (chunk + 3, tile + 4, tile + 3),
    }[case]
    plain, tiled, shapes = plain_and_tiled(
        vae,
        latent_shape,
        temporal_chunk=chunk,
        temporal_overlap=overlap_t,
        spatial_tile=tile,
        spatial_overlap=overlap_s,
        blend=blend,
    )
    expected_pieces = {"temporal": 3, "spatial": 9, "all axes": 27}[case]
    assert len(shapes) == expected_pieces
    assert all(f <= chunk and h <= tile and w <= tile for f, h, w in shapes)  # memory bounded by the piece
    d = max_diff(tiled, plain)
    print(
        f"tiled ({case}, overlap t={overlap_t} s={overlap_s}, blend {blend}, {len(shapes)} pieces, video "
        f"{tuple(plain.shape)}): max diff {d:.2e}"
    )
    assert d <= TILED_TOL
    # one latent voxel less overlap than exact_overlap asks for is visible: the bound is tight
    if case == "all axes":
        return
    smaller = {"temporal_overlap": overlap_t - 1} if case == "temporal" else {"spatial_overlap": overlap_s - 1}
    _, tiled_short, _ = plain_and_tiled(
        vae,
        latent_shape,
        temporal_chunk=chunk,
        spatial_tile=tile,
        blend=blend,
        **{"temporal_overlap": overlap_t, "spatial_overlap": overlap_s, **smaller},
    )
    assert max_diff(tiled_short, plain) > 1e-4


def test_tiled_decode_default_settings():
    vae = tiling_vae()
    plain, tiled, shapes = plain_and_tiled(vae, (9, 8, 7), temporal_chunk=6, spatial_tile=6)
    assert tiled.shape == plain.shape == (1, 3, 65, 256, 224)
    assert tiled.dtype == plain.dtype
    assert len(shapes) == 2 * 2 * 2
    d = max_diff(tiled, plain)
    print(f"tiled (overlap t=3 s=4, blend 0.5, random weights): max diff {d:.2e}, |plain| max {plain.abs().max():.2f}")


def test_decode_auto_picks_plain_or_tiled():
    vae = tiling_vae()
    overlap_t, overlap_s = exact_overlap(vae.config, 0.5)
    raw = torch.randn(1, 16, overlap_t + 3, 2, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = vae.decode(raw, 0.05, generator=torch.Generator().manual_seed(2))
    full = estimate_decode_bytes(vae, (1, *raw.shape[2:]))
    for budget, pieces in ((full, 1), (full // 3, None)):
        shapes, handle = record_pieces(vae)
        out = decode_auto(
            vae,
            raw,
            0.05,
            generator=torch.Generator().manual_seed(2),
            memory_budget=budget,
            temporal_overlap=overlap_t,
            spatial_overlap=overlap_s,
        )
        handle.remove()
        assert out.shape == plain.shape
        assert max_diff(out, plain) <= TILED_TOL
        if pieces == 1:
            assert len(shapes) == 1
        else:
            assert len(shapes) > 1
            assert all(estimate_decode_bytes(vae, (1, *s)) < full for s in shapes)
        # out_device is honoured by both paths ("meta": a device other than raw's that a CPU machine has)
        moved = decode_auto(
            vae,
            raw,
            0.05,
            generator=torch.Generator().manual_seed(2),
            memory_budget=budget,
            temporal_overlap=overlap_t,
            spatial_overlap=overlap_s,
            out_device="meta",
        )
        assert moved.device.type == "meta" and moved.shape == plain.shape


def test_tiling_argument_errors():
    vae = tiling_vae()
    raw = torch.zeros(1, 16, 3, 2, 2)
    with pytest.raises(ValueError, match="temporal_overlap"):
        decode_tiled(vae, raw, 0.05, temporal_overlap=0)
    with pytest.raises(ValueError, match="spatial_overlap < spatial_tile"):
        decode_tiled(vae, raw, 0.05, spatial_tile=4, spatial_overlap=4)
    with pytest.raises(ValueError, match="blend"):
        exact_overlap(vae.config, 1.0)


# ------------------------------------------------------------------------------------------ full-size key sets


def official_full(md: dict):
    with torch.device("meta"):
        return cva.CausalVideoAutoencoder.from_config(dict(md))


@pytest.mark.parametrize("preset", ["v0_9_0", "v0_9_1", "v0_9_5"])
def test_full_size_state_dict_matches_official(preset):
    config = getattr(VAEConfig, preset)()
    official_md = {
        # the official metadata of each generation: legacy `blocks` for 0.9.0, encoder/decoder_blocks later
        "v0_9_0": {k: v for k, v in config.to_metadata().items() if not k.endswith("_blocks")}
        | {"blocks": [list(b) for b in config.encoder_blocks]},
        "v0_9_1": config.to_metadata(),
        "v0_9_5": config.to_metadata(),
    }[preset]
    with torch.device("meta"):
        ours = CausalVideoVAE(VAEConfig.from_metadata(official_md))
    ref = official_full(official_md)
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    stats = {
        f"per_channel_statistics.{n}": (128,)
        for n in ("channel", "mean-of-means", "mean-of-stds", "std-of-means", "mean-of-stds_over_std-of-means")
    }
    assert ours_shapes == ref_shapes | stats
    params = sum(v.numel() for v in ours.parameters())
    expected = {"v0_9_0": 419.2e6, "v0_9_1": 935.0e6, "v0_9_5": 1246.9e6}[preset]  # the released VAEs
    assert abs(params - expected) < 0.1e6, params


def test_full_size_upsampler_state_dict_matches_official():
    md = {
        "_class_name": "LatentUpsampler",
        "in_channels": 128,
        "mid_channels": 512,
        "num_blocks_per_stage": 4,
        "dims": 3,
        "spatial_upsample": True,
        "temporal_upsample": False,
    }
    with torch.device("meta"):
        ours = LatentUpsampler(UpsamplerConfig.from_metadata(md))
        ref = official_upsampler.LatentUpsampler.from_config(md)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    assert sum(v.numel() for v in ours.parameters()) == 126_250_624


# ------------------------------------------------------------------------------------------ latent upsampler


@pytest.mark.parametrize("mode", [(True, False), (False, True), (True, True)])
def test_upsampler_matches_official(mode):
    spatial, temporal = mode
    md = {
        "in_channels": 16,
        "mid_channels": 64,
        "num_blocks_per_stage": 2,
        "dims": 3,
        "spatial_upsample": spatial,
        "temporal_upsample": temporal,
    }
    ours = LatentUpsampler(UpsamplerConfig.from_metadata(md)).eval()
    gen = torch.Generator().manual_seed(7)
    sd = {
        k: torch.randn(v.shape, generator=gen) * 0.1 + (1.0 if "norm" in k and k.endswith("weight") else 0)
        for k, v in ours.state_dict().items()
    }
    ours.load_state_dict(sd, strict=True)
    ref = official_upsampler.LatentUpsampler.from_config(md).eval()
    ref.load_state_dict(sd, strict=True)
    latent = torch.randn(2, 16, 3, 4, 6, generator=gen)
    with torch.no_grad():
        out, ref_out = ours(latent), ref(latent)
    assert out.shape == (2, 16, 5 if temporal else 3, 8 if spatial else 4, 12 if spatial else 6)
    d = max_diff(out, ref_out)
    print(f"upsampler spatial={spatial} temporal={temporal}: max diff {d:.2e}")
    assert d <= UPSAMPLER_TOL


def test_upsampler_config_errors():
    with pytest.raises(ValueError, match="spatial_upsample or temporal_upsample"):
        UpsamplerConfig.from_metadata({"spatial_upsample": False, "temporal_upsample": False})
    with pytest.raises(ValueError, match="dims"):
        UpsamplerConfig.from_metadata({"dims": 2})
    with pytest.raises(ValueError, match="multiple of 32"):
        UpsamplerConfig.from_metadata({"mid_channels": 48})
