"""LTX-2 video VAE and latent upsamplers against ltx-core 1.0.0 and diffusers 0.42.1 (CPU, fp32).

Parity: tiny configs in the LTX-2 block layouts (2.0: three residual compress_all upsamplers; 2.3 layout from the
design doc: compress_space x2, compress_time x2, compress_all x1, compress_all x2), random weights with every
learned scalar and the per-channel statistics randomized, one state dict (official keys, `vae.` stripped) loaded
strictly into ours, into ltx-core's VideoEncoder/VideoDecoder and, renamed, into diffusers' AutoencoderKLLTX2Video.
Key sets: the full-size VAEs and upsamplers built on the meta device by each implementation.
"""

import pytest
import torch
from videodit.model.ltx2.video_vae import LTX2VideoVAE, ltx2_vae_config, upsample_normalized
from videodit.model.ltxv.upsampler import LatentUpsampler, UpsamplerConfig

core_vae = pytest.importorskip("ltx_core.model.video_vae")
core_upsampler = pytest.importorskip("ltx_core.model.upsampler.model")
dif_vae = pytest.importorskip("diffusers.models.autoencoders.autoencoder_kl_ltx2")
try:
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel
except ImportError:  # diffusers without the LTX-2 pipelines: the upsampler is then checked against ltx-core only
    LTX2LatentUpsamplerModel = None

TOL = 1e-4
UPSAMPLER_TOL = 1e-5
STATS = ("channel", "mean-of-means", "mean-of-stds", "std-of-means", "mean-of-stds_over_std-of-means")
RES_UP = {"residual": True, "multiplier": 2}
ENCODER_2_0 = [
    ["res_x", 1],
    ["compress_space_res", {"multiplier": 2}],
    ["res_x", 1],
    ["compress_time_res", {"multiplier": 2}],
    ["res_x", 1],
    ["compress_all_res", {"multiplier": 2}],
    ["res_x", 1],
    ["compress_all_res", {"multiplier": 2}],
    ["res_x", 1],
]
DECODERS = {
    "2.0": [["res_x", 1], ["compress_all", RES_UP], ["res_x", 2], ["compress_all", RES_UP], ["res_x", 1],
            ["compress_all", RES_UP], ["res_x", 1]],
    "2.3": [["res_x", 1], ["compress_space", {"multiplier": 2}], ["res_x", 1], ["compress_time", {"multiplier": 2}],
            ["res_x", 2], ["compress_all", {"residual": True, "multiplier": 1}], ["res_x", 1],
            ["compress_all", RES_UP], ["res_x", 1]],
}  # fmt: skip
UP_TYPES = {"compress_space": "spatial", "compress_time": "temporal", "compress_all": "spatiotemporal"}
DOWN_TYPES = {"compress_space_res": "spatial", "compress_time_res": "temporal", "compress_all_res": "spatiotemporal"}


def metadata(layout: str, **extra) -> dict:
    return {
        "_class_name": "CausalVideoAutoencoder",
        "dims": 3,
        "latent_channels": 16,
        "patch_size": 4,
        "norm_layer": "pixel_norm",
        "latent_log_var": "uniform",
        "decoder_base_channels": 8,
        "encoder_blocks": ENCODER_2_0,
        "decoder_blocks": DECODERS[layout],
        **extra,
    }


def randomized_state_dict(model, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, value in model.state_dict().items():
        if key.endswith("timestep_scale_multiplier"):
            sd[key] = torch.tensor(731.25)
        elif key.endswith("std-of-means"):
            sd[key] = 0.5 + torch.rand(value.shape, generator=gen)
        elif key.endswith("channel") or key.endswith("blur_down.kernel"):
            sd[key] = value.clone()
        else:
            scale = 1.0 if "norm3" in key or "per_channel" in key or "scale_shift" in key else 0.15
            one = 1.0 if key.endswith("norm3.weight") or key.endswith("norm.weight") else 0.0
            sd[key] = torch.randn(value.shape, generator=gen) * scale + one
    return sd


def core_pair(md: dict, sd: dict):
    """ltx-core's encoder and decoder, loaded strictly with the official keys of `sd`."""
    encoder = core_vae.VideoEncoderConfigurator.from_config({"vae": md}).eval()
    decoder = core_vae.VideoDecoderConfigurator.from_config({"vae": md}).eval()
    stats = {
        f"per_channel_statistics.{n}": sd[f"per_channel_statistics.{n}"] for n in ("mean-of-means", "std-of-means")
    }
    for half, module in (("encoder.", encoder), ("decoder.", decoder)):
        module.load_state_dict({k[len(half) :]: v for k, v in sd.items() if k.startswith(half)} | stats, strict=True)
    return encoder, decoder


def diffusers_name(key: str, encoder_blocks: int, decoder_blocks: int) -> str | None:
    """Official key -> AutoencoderKLLTX2Video key (generic form of diffusers' convert_ltx2_vae_to_diffusers)."""
    renamed = {"mean-of-means": "latents_mean", "std-of-means": "latents_std"}
    if key.startswith("per_channel_statistics."):
        return renamed.get(key.split(".", 1)[1])
    parts = key.replace(".res_blocks.", ".resnets.").split(".")
    if parts[1] == "down_blocks":
        i = int(parts[2])
        parts[1:3] = ["mid_block"] if i == encoder_blocks - 1 else ["down_blocks", str(i // 2)]
        if i % 2:
            parts[3:3] = ["downsamplers", "0"]
    elif parts[1] == "up_blocks":
        j = int(parts[2])
        parts[1:3] = ["mid_block"] if j == 0 else ["up_blocks", str((j - 1) // 2)]
        if j % 2:
            parts[3:3] = ["upsamplers", "0"]
    elif parts[1] in ("last_time_embedder", "last_scale_shift_table"):
        parts[1] = parts[1][len("last_") :]  # not in diffusers' converter table
    return ".".join(parts)


def diffusers_config(md: dict) -> dict:
    """The AutoencoderKLLTX2Video arguments of an official LTX-2 block layout (res_x / sampler alternating)."""
    enc, dec = md["encoder_blocks"], md["decoder_blocks"]
    widths, channels = [], md["latent_channels"]
    for _, params in enc[1::2]:
        channels *= params["multiplier"]
        widths.append(channels)
    running, channels = [], md["decoder_base_channels"] * 8
    for _, params in list(reversed(dec))[1::2]:
        running.append(channels)
        channels //= params.get("multiplier", 1)
    layers = lambda blocks: tuple(p if isinstance(p, int) else p["num_layers"] for _, p in blocks[::2])  # noqa: E731
    return {
        "latent_channels": md["latent_channels"],
        "block_out_channels": tuple(widths),
        "layers_per_block": layers(enc),
        "spatio_temporal_scaling": (True,) * len(widths),
        "downsample_type": tuple(DOWN_TYPES[n] for n, _ in enc[1::2]),
        "decoder_block_out_channels": tuple(reversed(running)),
        "decoder_layers_per_block": layers(dec),
        "decoder_spatio_temporal_scaling": (True,) * len(running),
        "decoder_inject_noise": (False,) * len(dec[::2]),
        "upsample_type": tuple(UP_TYPES[n] for n, _ in reversed(dec[1::2])),  # the one list diffusers does not reverse
        "upsample_residual": tuple(bool(p.get("residual", False)) and n == "compress_all" for n, p in dec[1::2]),
        "upsample_factor": tuple(p.get("multiplier", 1) for _, p in dec[1::2]),
        "timestep_conditioning": md.get("timestep_conditioning", True),
        "patch_size": md["patch_size"],
        "encoder_causal": True,
        "decoder_causal": md.get("causal_decoder", False),
        "encoder_spatial_padding_mode": md.get("spatial_padding_mode", "zeros"),
        "decoder_spatial_padding_mode": md.get("spatial_padding_mode", "reflect"),
    }


def diffusers_vae(md: dict, sd: dict | None = None):
    model = dif_vae.AutoencoderKLLTX2Video(**diffusers_config(md)).eval()
    if sd is not None:
        n_enc, n_dec = len(md["encoder_blocks"]), len(md["decoder_blocks"])
        renamed = {diffusers_name(k, n_enc, n_dec): v for k, v in sd.items()}
        model.load_state_dict({k: v for k, v in renamed.items() if k is not None}, strict=True)
    return model


def build(layout: str, seed: int = 0, **extra):
    md = metadata(layout, **extra)
    ours = LTX2VideoVAE(ltx2_vae_config(md)).eval()
    sd = randomized_state_dict(ours, seed)
    ours.load_state_dict(sd, strict=True)
    return md, sd, ours


def max_diff(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


CASES = {
    "2.0 plain": ("2.0", {"timestep_conditioning": False}),
    "2.0 conditioned causal": ("2.0", {"timestep_conditioning": True, "causal_decoder": True}),
    "2.3 plain": ("2.3", {"timestep_conditioning": False, "spatial_padding_mode": "zeros"}),
    "2.3 conditioned": ("2.3", {"timestep_conditioning": True, "causal_decoder": False}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_encode_decode_match_ltx_core(case):
    layout, extra = CASES[case]
    md, sd, ours = build(layout, **extra)
    encoder, decoder = core_pair(md, sd)
    video = torch.rand(2, 3, 17, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    timestep = torch.tensor([0.05, 0.6])
    with torch.no_grad():
        latent = ours.encode_normalized(video)
        d_enc = max_diff(latent, encoder(video))
        decoded = ours.decode_normalized(latent, timestep, generator=torch.Generator().manual_seed(5))
        ref = decoder(latent, timestep, generator=torch.Generator().manual_seed(5))
        d_dec = max_diff(decoded, ref)
        d_default = max_diff(
            ours.decode_normalized(latent, generator=torch.Generator().manual_seed(6)),
            decoder(latent, generator=torch.Generator().manual_seed(6)),
        )
    assert latent.shape == (2, 16, 3, 2, 2) and decoded.shape == video.shape
    print(f"{case}: encode {d_enc:.2e} decode {d_dec:.2e} default-timestep decode {d_default:.2e}")
    assert max(d_enc, d_dec, d_default) <= TOL, f"{case}: encode {d_enc:.2e} decode {d_dec:.2e} {d_default:.2e}"
    assert ref.abs().max() > 0.5  # non-trivial output
    if md["timestep_conditioning"]:  # the decode noise reaches the output: another seed is a different video
        with torch.no_grad():
            other = ours.decode_normalized(latent, timestep, generator=torch.Generator().manual_seed(99))
        assert max_diff(other, ref) > 1e-3


@pytest.mark.parametrize("case", list(CASES))
def test_encode_decode_match_diffusers(case):
    layout, extra = CASES[case]
    md, sd, ours = build(layout, seed=2, **extra)
    ref = diffusers_vae(md, sd)
    video = torch.rand(2, 3, 17, 64, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    timestep = torch.tensor([0.05, 0.6]) if ours.config.timestep_conditioning else None
    with torch.no_grad():
        raw = ours.encode(video)
        d_enc = max_diff(raw, ref.encode(video).latent_dist.mode())
        mean, std = ref.latents_mean.view(1, -1, 1, 1, 1), ref.latents_std.view(1, -1, 1, 1, 1)
        d_norm = max_diff(ours.normalize(raw), (raw - mean) / std)
        d_dec = max_diff(ours.decode(raw, timestep), ref.decode(raw, temb=timestep).sample)
    print(f"{case}: encode {d_enc:.2e} normalize {d_norm:.2e} decode {d_dec:.2e}")
    assert max(d_enc, d_norm, d_dec) <= TOL, f"{case}: encode {d_enc:.2e} normalize {d_norm:.2e} decode {d_dec:.2e}"


def test_res_x_y_and_constant_log_variance_match_ltx_core():
    """Blocks the released files do not use but the config vocabulary allows: res_x_y (GroupNorm shortcut),
    compress_all_x_y, decoder res_x_y; 2.5's constant log-variance (mean unchanged, log-variance -30)."""
    md = metadata(
        "2.0",
        timestep_conditioning=False,
        latent_log_var="constant",
        encoder_blocks=[["res_x_y", {"multiplier": 2}], ["compress_all_x_y", {"multiplier": 2}], ["res_x", 1],
                        ["compress_all_res", {"multiplier": 2}], ["compress_space_res", {"multiplier": 2}],
                        ["compress_all", 1]],
        decoder_blocks=[["res_x_y", {"multiplier": 2}], ["compress_all", RES_UP], ["res_x", 1],
                        ["compress_all", {"residual": True}], ["compress_space", 1], ["compress_all", RES_UP]],
    )  # fmt: skip
    ours = LTX2VideoVAE(ltx2_vae_config(md)).eval()
    sd = randomized_state_dict(ours, 4)
    ours.load_state_dict(sd, strict=True)
    assert "encoder.down_blocks.0.norm3.weight" in sd  # one-group GroupNorm keys (0.9.x: norm3.norm.weight)
    encoder, decoder = core_pair(md, sd)
    video = torch.rand(1, 3, 9, 128, 128, generator=torch.Generator().manual_seed(7)) * 2 - 1  # latent (2, 2, 2)
    with torch.no_grad():
        latent = ours.encode_normalized(video)
        d_enc = max_diff(latent, encoder(video))
        d_dec = max_diff(ours.decode_normalized(latent), decoder(latent))
        moments = ours.encoder(video)
    print(f"vocabulary: encode {d_enc:.2e} decode {d_dec:.2e}")
    assert max(d_enc, d_dec) <= TOL, f"encode {d_enc:.2e} decode {d_dec:.2e}"
    assert torch.equal(moments[:, 16:], torch.full_like(moments[:, 16:], -30.0))


def test_config_defaults_and_errors():
    md = metadata("2.0")
    config = ltx2_vae_config(md)
    # ltx-core's configurator defaults for absent keys
    assert config.timestep_conditioning and not config.causal_decoder
    assert (config.spatial_padding_mode, config.decoder_spatial_padding_mode) == ("zeros", "reflect")
    assert (config.spatial_factor, config.temporal_factor) == (32, 8)
    given = ltx2_vae_config({**md, "spatial_padding_mode": "replicate"})
    assert given.spatial_padding_mode == given.decoder_spatial_padding_mode == "replicate"
    bad = [
        ({"decoder_blocks": [["attn_res_x", {"num_layers": 1, "attention_head_dim": 8}]]}, "attn_res_x"),
        ({"decoder_blocks": DECODERS["2.0"][:-2]}, "multiply to 4"),
        ({"norm_layer": "group_norm"}, "norm_layer"),
        ({"latent_log_var": "per_channel"}, "latent_log_var"),
        ({"encoder_blocks": []}, "encoder_blocks"),
    ]
    for change, message in bad:
        with pytest.raises(ValueError, match=message):
            ltx2_vae_config({**md, **change})
    with pytest.raises(ValueError, match="decoder_blocks"):
        ltx2_vae_config({k: v for k, v in md.items() if k != "decoder_blocks"})


# ------------------------------------------------------------------------------------------ latent upsamplers

UPSAMPLERS = {
    "spatial x2": {"spatial_upsample": True, "temporal_upsample": False},
    "spatial x1.5": {"spatial_upsample": True, "temporal_upsample": False, "rational_resampler": True,
                     "spatial_scale": 1.5},
    "temporal x2": {"spatial_upsample": False, "temporal_upsample": True},
    "spatiotemporal x2": {"spatial_upsample": True, "temporal_upsample": True},
}  # fmt: skip


def upsampler_metadata(kind: str, mid: int = 64, blocks: int = 2) -> dict:
    return {"in_channels": 16, "mid_channels": mid, "num_blocks_per_stage": blocks, "dims": 3, **UPSAMPLERS[kind]}


def diffusers_upsampler(md: dict):
    return LTX2LatentUpsamplerModel(
        in_channels=md["in_channels"],
        mid_channels=md["mid_channels"],
        num_blocks_per_stage=md["num_blocks_per_stage"],
        dims=3,
        spatial_upsample=md["spatial_upsample"],
        temporal_upsample=md["temporal_upsample"],
        rational_spatial_scale=md.get("spatial_scale", 2.0),
        use_rational_resampler=md.get("rational_resampler", False),
    )


@pytest.mark.parametrize("kind", list(UPSAMPLERS))
def test_upsampler_matches_references(kind):
    md = upsampler_metadata(kind)
    ours = LatentUpsampler(UpsamplerConfig.from_metadata(md)).eval()
    sd = randomized_state_dict(ours, 8)
    ours.load_state_dict(sd, strict=True)
    core = core_upsampler.LatentUpsampler(**{k: v for k, v in md.items()}).eval()
    core.load_state_dict(sd, strict=True)
    latent = torch.randn(2, 16, 3, 6, 8, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        out = ours(latent)
        diffs = {"ltx-core": max_diff(out, core(latent))}
        if LTX2LatentUpsamplerModel is not None and not (md["spatial_upsample"] and md["temporal_upsample"]):
            dif = diffusers_upsampler(md).eval()
            dif.load_state_dict(sd, strict=True)
            diffs["diffusers"] = max_diff(out, dif(latent))
    frames = 5 if md["temporal_upsample"] else 3
    scale = md.get("spatial_scale", 2.0) if md["spatial_upsample"] else 1
    assert out.shape == (2, 16, frames, int(6 * scale), int(8 * scale))
    print(f"upsampler {kind}: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    assert max(diffs.values()) <= UPSAMPLER_TOL, f"{kind}: {diffs}"


def test_upsample_normalized_matches_ltx_core():
    md, sd, ours = build("2.0", timestep_conditioning=False)
    encoder, _ = core_pair(md, sd)
    up_md = upsampler_metadata("spatial x1.5")
    upsampler = LatentUpsampler(UpsamplerConfig.from_metadata(up_md)).eval()
    up_sd = randomized_state_dict(upsampler, 10)
    upsampler.load_state_dict(up_sd)
    core = core_upsampler.LatentUpsampler(**up_md).eval()
    core.load_state_dict(up_sd)
    latent = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        d = max_diff(upsample_normalized(latent, ours, upsampler), core_upsampler.upsample_video(latent, encoder, core))
    assert d <= UPSAMPLER_TOL, f"upsample_normalized vs upsample_video: {d:.2e}"


def test_upsampler_config_errors():
    with pytest.raises(ValueError, match="not supported by the rational"):
        UpsamplerConfig.from_metadata({"rational_resampler": True, "spatial_scale": 3.0})
    with pytest.raises(ValueError, match="needs rational_resampler"):
        UpsamplerConfig.from_metadata({"spatial_scale": 1.5})
    with pytest.raises(ValueError, match="no temporal_upsample"):
        UpsamplerConfig.from_metadata({"rational_resampler": True, "spatial_scale": 1.5, "temporal_upsample": True})


# ------------------------------------------------------------------------------------------ full-size key sets

FULL_ENCODER = [
    ["res_x", {"num_layers": 4}],
    ["compress_space_res", {"multiplier": 2}],
    ["res_x", {"num_layers": 6}],
    ["compress_time_res", {"multiplier": 2}],
    ["res_x", {"num_layers": 6}],
    ["compress_all_res", {"multiplier": 2}],
    ["res_x", {"num_layers": 2}],
    ["compress_all_res", {"multiplier": 2}],
    ["res_x", {"num_layers": 2}],
]
FULL_DECODERS = {
    # 2.0: diffusers' AutoencoderKLLTX2Video defaults (layers 5, three residual x2 spatiotemporal upsamplers)
    "2.0": [["res_x", {"num_layers": 5}], ["compress_all", RES_UP]] * 3 + [["res_x", {"num_layers": 5}]],
    # 2.3: the third-party metadata dump quoted in the design doc, section 4.1 (not read from a released file)
    "2.3": [["res_x", {"num_layers": 4}], ["compress_space", {"multiplier": 2}], ["res_x", {"num_layers": 6}],
            ["compress_time", {"multiplier": 2}], ["res_x", {"num_layers": 4}],
            ["compress_all", {"residual": True, "multiplier": 1}], ["res_x", {"num_layers": 2}],
            ["compress_all", RES_UP], ["res_x", {"num_layers": 2}]],
}  # fmt: skip


def full_metadata(version: str) -> dict:
    return {
        "dims": 3,
        "latent_channels": 128,
        "patch_size": 4,
        "decoder_base_channels": 128,
        "timestep_conditioning": False,
        "encoder_blocks": FULL_ENCODER,
        "decoder_blocks": FULL_DECODERS[version],
    }


def shapes(module) -> dict:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("version", ["2.0", "2.3"])
@pytest.mark.parametrize("conditioned", [False, True])
def test_full_size_keys_match_references(version, conditioned):
    md = full_metadata(version) | {"timestep_conditioning": conditioned}
    with torch.device("meta"):
        ours = shapes(LTX2VideoVAE(ltx2_vae_config(md)))
        core_encoder = shapes(core_vae.VideoEncoderConfigurator.from_config({"vae": md}))
        core_decoder = shapes(core_vae.VideoDecoderConfigurator.from_config({"vae": md}))
        dif = shapes(diffusers_vae(md))
    core_stats = {f"per_channel_statistics.{n}": (128,) for n in ("mean-of-means", "std-of-means")}
    for half, core in (("encoder.", core_encoder), ("decoder.", core_decoder)):
        assert {k[len(half) :]: v for k, v in ours.items() if k.startswith(half)} | core_stats == core
    assert set(ours) - {k for k in ours if k.startswith(("encoder.", "decoder."))} == {
        f"per_channel_statistics.{n}" for n in STATS
    }  # the five buffers of the files; ltx-core reads two, diffusers two (renamed)
    n_enc, n_dec = len(md["encoder_blocks"]), len(md["decoder_blocks"])
    renamed = {diffusers_name(k, n_enc, n_dec): v for k, v in ours.items()}
    assert {k: v for k, v in renamed.items() if k is not None} == dif
    params = sum(v[0] if len(v) == 1 else torch.Size(v).numel() for k, v in ours.items() if "statistics" not in k)
    print(f"LTX-{version} VAE (conditioned={conditioned}): {len(ours)} tensors, {params / 1e6:.1f} M parameters")


@pytest.mark.parametrize("kind", list(UPSAMPLERS))
def test_full_size_upsampler_keys_match_references(kind):
    md = upsampler_metadata(kind, mid=1024, blocks=4) | {"in_channels": 128}
    with torch.device("meta"):
        ours = shapes(LatentUpsampler(UpsamplerConfig.from_metadata(md)))
        assert ours == shapes(core_upsampler.LatentUpsampler(**md))
        if LTX2LatentUpsamplerModel is not None and not (md["spatial_upsample"] and md["temporal_upsample"]):
            assert ours == shapes(diffusers_upsampler(md))
    if md.get("rational_resampler"):
        assert ours["upsampler.blur_down.kernel"] == (1, 1, 5, 5)  # a buffer the files carry


def test_diffusers_default_vae_is_the_2_0_layout():
    """AutoencoderKLLTX2Video() with its own defaults expects the keys of the LTX-2.0 layout (official -> diffusers)."""
    md = full_metadata("2.0")
    with torch.device("meta"):
        ours = shapes(LTX2VideoVAE(ltx2_vae_config(md)))
        dif = shapes(dif_vae.AutoencoderKLLTX2Video())
    renamed = {diffusers_name(k, len(md["encoder_blocks"]), len(md["decoder_blocks"])): v for k, v in ours.items()}
    assert {k: v for k, v in renamed.items() if k is not None} == dif
