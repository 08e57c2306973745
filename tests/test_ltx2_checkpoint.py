"""LTX-2 checkpoint files (model/checkpoint/ltx2.py, ltx2_diffusers.py): tiny 2.0 / 2.3 / 2.5 models with random
weights written in the official layouts (monolith, 2.5 split files) and as diffusers folders made by diffusers'
own save_pretrained, loaded back and run: every output equals the original's within TOL (fp32, CPU). fp8-stored
files, config round trips, and the errors of proof (g), each naming the file and the problem.

Run with `pytest -s` to see the measured differences.
"""

import json
import types
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file, save_file
from videodit.model.checkpoint import (
    CheckpointError,
    check_text_encoder_pair,
    load_checkpoint,
    load_ltx2_checkpoint,
    official_tensors,
    save_ltx2_checkpoint,
)
from videodit.model.ltx2 import config as cfgs
from videodit.model.ltx2 import text_connector as tc
from videodit.model.ltx2.audio_vae import AudioVAE, AudioVAEConfig
from videodit.model.ltx2.streams import NO_SKIP, Stream
from videodit.model.ltx2.text_features import FeatureConfig
from videodit.model.ltx2.transformer import LTX2Transformer
from videodit.model.ltx2.video_vae import LTX2VideoVAE, ltx2_vae_config
from videodit.model.ltx2.vocoder import build_vocoder

TOL = 1e-5
VERSIONS = ("2.0", "2.3", "2.5")
BATCH, TEXT_LEN, REGISTERS = 2, 8, 4
VIDEO_LATENT = (2, 2, 2)  # frames, height, width -> 8 tokens
AUDIO_TOKENS = 5

ENCODER = [["res_x", 1], ["compress_space_res", {"multiplier": 2}], ["res_x", 1], ["compress_time_res", {"multiplier": 2}],
           ["res_x", 1], ["compress_all_res", {"multiplier": 2}], ["res_x", 1], ["compress_all_res", {"multiplier": 2}],
           ["res_x", 1]]  # fmt: skip
DECODER_20 = [["res_x", 1], ["compress_all", {"residual": True, "multiplier": 2}], ["res_x", 1],
              ["compress_all", {"residual": True, "multiplier": 2}], ["res_x", 1],
              ["compress_all", {"residual": True, "multiplier": 2}], ["res_x", 1]]  # fmt: skip
DECODER_23 = [["res_x", 1], ["compress_space", {"multiplier": 2}], ["res_x", 1], ["compress_time", {"multiplier": 2}],
              ["res_x", 1], ["compress_all", {"residual": True, "multiplier": 1}], ["res_x", 1],
              ["compress_all", {"residual": True, "multiplier": 2}], ["res_x", 1]]  # fmt: skip
AUDIO_DD = {"ch": 16, "ch_mult": [1, 2, 4], "num_res_blocks": 1, "z_channels": 4, "resolution": 16,
            "attn_resolutions": [8], "mid_block_add_attention": True, "in_channels": 2, "out_ch": 2, "double_z": True,
            "mel_bins": 16}  # fmt: skip
HIFIGAN = {"upsample_initial_channel": 16, "upsample_rates": [3, 2], "upsample_kernel_sizes": [7, 4],
           "resblock_kernel_sizes": [3, 5], "resblock_dilation_sizes": [[1, 3, 5], [1, 2, 3]], "resblock": "1",
           "stereo": True, "output_sampling_rate": 24000}  # fmt: skip
AMP = {**HIFIGAN, "resblock": "AMP1", "activation": "snakebeta", "use_tanh_at_final": False, "use_bias_at_final": False}
BWE = {"vocoder": dict(AMP), "bwe": {**AMP, "upsample_initial_channel": 16, "upsample_rates": [3, 8],
       "upsample_kernel_sizes": [3, 16], "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]],
       "apply_final_activation": False, "input_sampling_rate": 16000, "output_sampling_rate": 48000,
       "hop_length": 8, "n_fft": 32, "num_mels": 64}}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# tiny models


def sections(version: str, log_var: str | None = None) -> dict:
    """The official vae / audio_vae / vocoder metadata sections of a tiny model of `version`."""
    vae = {"_class_name": "CausalVideoAutoencoder", "dims": 3, "latent_channels": 8, "patch_size": 4,
           "norm_layer": "pixel_norm", "latent_log_var": log_var or ("constant" if version == "2.5" else "uniform"),
           "decoder_base_channels": 4, "encoder_blocks": ENCODER,
           "decoder_blocks": DECODER_20 if version == "2.0" else DECODER_23}  # fmt: skip
    audio = {"model": {"params": {"ddconfig": AUDIO_DD, "sampling_rate": 16000}},
             "preprocessing": {"stft": {"filter_length": 1024, "hop_length": 160}}}  # fmt: skip
    return {"vae": vae, "audio_vae": audio, "vocoder": HIFIGAN if version == "2.0" else BWE}


def text_path_config(version: str) -> tc.TextPathConfig:
    if version == "2.0":  # V1: one 24-wide extractor output (= the transformer's caption_channels) for both
        connector = tc.ConnectorConfig(heads=2, head_dim=12, layers=2, registers=REGISTERS)
        return tc.TextPathConfig(FeatureConfig("v1", 24, 3, 32, 16), connector, connector)
    video = tc.ConnectorConfig(heads=2, head_dim=16, layers=2, registers=REGISTERS, gated_attention=True)
    audio = tc.ConnectorConfig(heads=2, head_dim=8, layers=2, registers=REGISTERS, gated_attention=True)
    return tc.TextPathConfig(FeatureConfig("v2", 12, 3, 32, 16), video, audio)


def randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random parameters (N(0, 0.15^2)) and statistics; buffers that the file stores get random positive values."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in module.state_dict().items():
        if not value.is_floating_point() or key.endswith(("timestep_scale_multiplier", ".channel")):
            state[key] = value
        elif key.endswith("std-of-means") or key.endswith(("mel_basis", "forward_basis", "inverse_basis")):
            state[key] = 0.5 + torch.rand(value.shape, generator=gen)
        else:
            state[key] = torch.randn(value.shape, generator=gen) * 0.15
    module.load_state_dict(state, strict=True)
    return module.eval()


def tiny_modules(version: str, seed: int = 0, log_var: str | None = None) -> dict:
    md = sections(version, log_var)
    transformer = LTX2Transformer(cfgs.tiny(version, audio_in_channels=16, audio_out_channels=16))
    return {
        "transformer": randomize(transformer, seed),
        "video_vae": randomize(LTX2VideoVAE(ltx2_vae_config(md["vae"])), seed + 1),
        "audio_vae": randomize(AudioVAE(AudioVAEConfig.from_metadata(md)), seed + 2),
        "vocoder": randomize(build_vocoder(md), seed + 3),
        "text_path": randomize(tc.TextPath(text_path_config(version)), seed + 4),
    }


def inputs(modules: dict, seed: int = 5) -> dict:
    gen = torch.Generator().manual_seed(seed)
    c = modules["transformer"].config
    f, h, w = VIDEO_LATENT
    grid = torch.stack(torch.meshgrid(torch.arange(f), torch.arange(h), torch.arange(w), indexing="ij")).flatten(1)
    video_pos = torch.stack([grid.float() * torch.tensor([[0.3], [32.0], [32.0]]), (grid + 1).float()], -1)
    audio_pos = torch.stack([torch.arange(AUDIO_TOKENS) * 0.04, torch.arange(1, AUDIO_TOKENS + 1) * 0.04], -1)
    text_width = c.caption_channels or c.cross_attention_dim
    audio_width = c.caption_channels or c.audio_cross_attention_dim
    tokens = f * h * w
    sigma = torch.tensor([0.7, 0.3])
    return {
        "video": Stream(torch.randn(BATCH, tokens, c.in_channels, generator=gen), sigma, sigma[:, None].expand(-1, tokens),
                        video_pos[None].expand(BATCH, -1, -1, -1), torch.randn(BATCH, TEXT_LEN, text_width, generator=gen),
                        keyframe_mask=torch.arange(tokens)[None].expand(BATCH, -1) < 4),
        "audio": Stream(torch.randn(BATCH, AUDIO_TOKENS, c.audio_in_channels, generator=gen), sigma,
                        sigma[:, None].expand(-1, AUDIO_TOKENS), audio_pos[None, None].expand(BATCH, 1, -1, -1),
                        torch.randn(BATCH, TEXT_LEN, audio_width, generator=gen)),
        "pixels": torch.rand(1, 3, 9, 64, 64, generator=gen) * 2 - 1,
        "mel": torch.randn(1, 2, 9, 16, generator=gen),
        "vocoder_mel": torch.randn(1, 2, 6, 64, generator=gen),
        "states": tuple(torch.randn(BATCH, TEXT_LEN, modules["text_path"].config.features.gemma_dim, generator=gen)
                        for _ in range(3)),
        "mask": torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1], [1] * TEXT_LEN]),
    }  # fmt: skip


def outputs(modules: dict, x: dict) -> dict:
    """Every module's forward output on the same inputs (None-less)."""
    out = {}
    with torch.no_grad():
        out["video velocity"], out["audio velocity"] = modules["transformer"](x["video"], x["audio"], NO_SKIP)
        vae = modules["video_vae"]
        out["video latent"] = vae.encode_normalized(x["pixels"])
        out["video decode"] = vae.decode_normalized(out["video latent"], generator=torch.Generator().manual_seed(0))
        out["audio latent"] = modules["audio_vae"].encode(x["mel"])
        out["audio decode"] = modules["audio_vae"].decode(out["audio latent"])
        out["waveform"] = modules["vocoder"](x["vocoder_mel"])
        out["video text"], out["audio text"], _ = modules["text_path"](x["states"], x["mask"])
    return out


def loaded_modules(checkpoint) -> dict:
    return {
        name: getattr(checkpoint, name) for name in ("transformer", "video_vae", "audio_vae", "vocoder", "text_path")
    }


def assert_same_outputs(original: dict, loaded: dict, label: str) -> None:
    x = inputs(original)
    expected, got = outputs(original, x), outputs(loaded, x)
    diffs = {k: (expected[k] - got[k]).abs().max().item() for k in expected}
    print(f"{label}: max abs diffs {json.dumps({k: float(f'{v:.3g}') for k, v in diffs.items()})}")
    assert all(v.abs().max() > 1e-3 for v in expected.values()), "an output is trivially zero"
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= TOL, f"{label}: {worst} differs after the file round trip: max abs diff {diffs[worst]:.3g}"


def write_split(folder, modules: dict, version: str) -> list:
    """The 2.5 split layout: diffusion_models/ (transformer + connectors), vae/ video (bare keys), vae/ audio VAE +
    vocoder, and the feature extractor alone (in the release it sits in the Gemma file)."""
    md, mv = sections(version), f"{version}.0"
    (folder / "diffusion_models").mkdir()
    (folder / "vae").mkdir()
    paths = [folder / "diffusion_models/ltx-tiny-transformer.safetensors", folder / "vae/ltx-tiny-video-vae.safetensors",
             folder / "vae/ltx-tiny-audio-vae.safetensors", folder / "ltx-tiny-projection.safetensors"]  # fmt: skip
    text = modules["text_path"]
    connectors = {k: v for k, v in official_tensors(text_path=text).items() if not k.startswith("text_embedding")}
    transformer = {**official_tensors(transformer=modules["transformer"]), **connectors}
    from videodit.model.checkpoint import ltx2_metadata

    save_file(
        transformer,
        str(paths[0]),
        metadata=ltx2_metadata({"transformer": modules["transformer"], "text_path": text}, {}, mv),
    )
    save_ltx2_checkpoint(paths[1], {"video_vae": modules["video_vae"]}, md, mv, bare_vae=True)
    save_ltx2_checkpoint(paths[2], {"audio_vae": modules["audio_vae"], "vocoder": modules["vocoder"]}, md, mv)
    projection = {k: v for k, v in official_tensors(text_path=text).items() if k.startswith("text_embedding")}
    save_file(projection, str(paths[3]), metadata={"model_version": mv})
    return paths


# ---------------------------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_monolith_round_trip(tmp_path, version):
    modules = tiny_modules(version)
    path = tmp_path / f"ltx-{version}-tiny.safetensors"
    save_ltx2_checkpoint(path, modules, sections(version), f"{version}.0")
    checkpoint = load_ltx2_checkpoint(path, dtype=torch.float32)
    assert checkpoint.version == version and checkpoint.paths == (str(path),)
    assert checkpoint.transformer_config == modules["transformer"].config
    assert checkpoint.text_path_config == modules["text_path"].config
    assert_same_outputs(modules, loaded_modules(checkpoint), f"LTX-{version} monolith")


def test_video_only_round_trip(tmp_path):
    """A video-only 2.3 model (transformer without the audio stream, text path without the audio connector, video
    VAE): written with the official video-only connector name embeddings_connector.*, loaded back equal."""
    modules = tiny_modules("2.3")
    transformer = randomize(LTX2Transformer(cfgs.tiny("2.3", audio=False)), 11)
    text_config = replace(text_path_config("2.3"), audio=None)
    text_config = replace(text_config, features=replace(text_config.features, audio_dim=0))
    text = randomize(tc.TextPath(text_config), 12)
    path = tmp_path / "ltx-2.3-video-only.safetensors"
    save_ltx2_checkpoint(path, {"transformer": transformer, "text_path": text, "video_vae": modules["video_vae"]},
                         sections("2.3"), "2.3.0")  # fmt: skip
    keys = load_file(str(path)).keys()
    assert any(k.startswith("model.diffusion_model.embeddings_connector.") for k in keys)
    assert not any("audio" in k for k in keys)
    checkpoint = load_ltx2_checkpoint(path, dtype=torch.float32)
    assert (checkpoint.audio_vae, checkpoint.vocoder) == (None, None)
    assert checkpoint.transformer_config == transformer.config and checkpoint.text_path_config == text_config
    x = inputs({**modules, "transformer": transformer, "text_path": text})
    with torch.no_grad():
        expected = transformer(x["video"], None, NO_SKIP)[0], text(x["states"], x["mask"])[0]
        got = checkpoint.transformer(x["video"], None, NO_SKIP)[0], checkpoint.text_path(x["states"], x["mask"])[0]
    diff = max((a - b).abs().max().item() for a, b in zip(expected, got))
    print(f"LTX-2.3 video-only: velocity and text context, max abs diff {diff:.3g}")
    assert diff <= TOL, f"video-only round trip: max abs diff {diff:.3g}"


def test_split_files_round_trip(tmp_path):
    modules = tiny_modules("2.5")
    paths = write_split(tmp_path, modules, "2.5")
    checkpoint = load_ltx2_checkpoint({"transformer": paths[0], "vae": paths[1], "audio": paths[2], "text": paths[3]},
                                      dtype=torch.float32)  # fmt: skip
    assert checkpoint.version == "2.5" and checkpoint.metadata["model_version"] == "2.5.0"
    assert checkpoint.transformer_config == modules["transformer"].config
    assert_same_outputs(modules, loaded_modules(checkpoint), "LTX-2.5 split files")
    # as released: the feature extractor is in the Gemma file; the Gemma loader indexes it as gemma.projection
    without_projection = load_ltx2_checkpoint(paths[:3], dtype=torch.float32)
    assert without_projection.text_path is None and without_projection.text_path_config == modules["text_path"].config
    from videodit.model.checkpoint import SafetensorsFile, build_index, text_path_with_gemma

    gemma = types.SimpleNamespace(
        path=str(paths[3]), projection=build_index(SafetensorsFile(paths[3]), "text_embedding_projection.")
    )
    completed = text_path_with_gemma(without_projection, gemma, dtype=torch.float32)
    x = inputs(modules)
    with torch.no_grad():
        expected, got = modules["text_path"](x["states"], x["mask"]), completed(x["states"], x["mask"])
    diff = max((a - b).abs().max().item() for a, b in zip(expected, got))
    print(f"LTX-2.5 text path completed with the Gemma file's projection: max abs diff {diff:.3g}")
    assert diff <= TOL, f"text path completed from the Gemma projection: max abs diff {diff:.3g}"
    with pytest.raises(
        CheckpointError, match=r"feature extractor .* is neither in these files nor in the text encoder file gemma4"
    ):
        text_path_with_gemma(without_projection, types.SimpleNamespace(path="gemma4.safetensors", projection={}))


def same_text_path(a: tc.TextPathConfig, b: tc.TextPathConfig) -> bool:
    """Equal text paths; V1 features do not use video_dim/audio_dim (only audio_dim > 0: an audio stream)."""
    if a.features.version == b.features.version == "v1":
        features = replace(a.features, video_dim=b.features.video_dim, audio_dim=b.features.audio_dim)
        return replace(a, features=features) == b and (a.features.audio_dim > 0) == (b.features.audio_dim > 0)
    return a == b


def wide_20_modules() -> dict:
    """A 2.0 model whose ungated attention has the released head width 128 (the head count of ungated attention
    cannot be told from shapes otherwise)."""
    transformer = LTX2Transformer(cfgs.tiny("2.0", attention_head_dim=128, cross_attention_dim=256, caption_channels=128,
                                            audio_in_channels=16, audio_out_channels=16))  # fmt: skip
    connector = tc.ConnectorConfig(heads=1, head_dim=128, layers=1, registers=REGISTERS)
    text = tc.TextPath(tc.TextPathConfig(FeatureConfig("v1", 128, 3, 256, 16), connector, connector))
    return {**tiny_modules("2.0"), "transformer": randomize(transformer, 7), "text_path": randomize(text, 8)}


@pytest.mark.parametrize("version", VERSIONS)
def test_config_inferred_from_shapes_without_metadata(tmp_path, version):
    """A transformer + text-path file without metadata: the configs come from the tensor shapes (2.3/2.5: the
    connectors alone; their feature extractor's Gemma width cannot be told from a tiny flattened input)."""
    modules = wide_20_modules() if version == "2.0" else tiny_modules(version)
    text = modules["text_path"]
    path = tmp_path / "no-metadata.safetensors"
    tensors = official_tensors(transformer=modules["transformer"], text_path=text)
    save_file({k: v for k, v in tensors.items() if version == "2.0" or not k.startswith("text_embedding")}, str(path))
    checkpoint = load_ltx2_checkpoint(path, dtype=torch.float32)
    assert checkpoint.version == version and checkpoint.transformer_config == modules["transformer"].config
    assert checkpoint.text_path_config.video == text.config.video
    if version == "2.0":
        assert same_text_path(checkpoint.text_path_config, text.config)
        loaded = {**modules, "transformer": checkpoint.transformer, "text_path": checkpoint.text_path}
        assert_same_outputs(modules, loaded, "LTX-2.0 without metadata")
        narrow = tiny_modules("2.0")  # ungated attention 2 x 16: the head count is not in any shape
        save_file(official_tensors(transformer=narrow["transformer"]), str(path))
        with pytest.raises(
            CheckpointError, match=r"no-metadata\.safetensors: no metadata config, and the video head count"
        ):
            load_ltx2_checkpoint(path, dtype=torch.float32)
    else:
        assert checkpoint.text_path is None and checkpoint.text_path_config.audio == text.config.audio
        save_file(tensors, str(path))
        with pytest.raises(CheckpointError, match=r"no-metadata\.safetensors: the feature extractor takes 36 inputs"):
            load_ltx2_checkpoint(path, dtype=torch.float32)


@pytest.mark.parametrize("name", ["2.0-19b", "2.3-22b", "2.5-22b"])
def test_released_configs_inferred_from_full_size_shapes(name):
    """The full-size released architectures (built on meta, no memory): transformer and text path configs inferred
    from the shapes of their official keys equal the presets (2.0: head width 128 released; V2 Gemma width 3840)."""
    from videodit.model.checkpoint import parameters_on_meta
    from videodit.model.checkpoint.ltx2_config import gemma_geometry, infer_transformer_config, text_path_config

    preset = cfgs.PRESETS[name]()
    text = tc.ltx20_text_path() if name.startswith("2.0") else tc.ltx23_text_path()
    with parameters_on_meta():
        shapes = {k: tuple(v.shape) for k, v in LTX2Transformer(preset).state_dict().items()}
        text_shapes = {
            k: tuple(v.shape)
            for k, v in tc.TextPath(replace(text, caption_video_dim=0, caption_audio_dim=0)).state_dict().items()
        }
    assert infer_transformer_config(shapes, name) == preset
    projection = {k.split(".", 1)[1]: v for k, v in text_shapes.items() if k.startswith("feature_extractor.")}
    inferred = text_path_config(None, text_shapes, gemma_geometry({}, projection, name), name)
    assert same_text_path(inferred, replace(text, caption_video_dim=0, caption_audio_dim=0))


def test_config_round_trip(tmp_path):
    modules = tiny_modules("2.3")
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_ltx2_checkpoint(first, modules, sections("2.3"), "2.3.0")
    loaded = load_ltx2_checkpoint(first, dtype=torch.float32)
    save_ltx2_checkpoint(second, loaded)
    again = load_ltx2_checkpoint(second, dtype=torch.float32)
    assert again.metadata == loaded.metadata and again.text_path_config == loaded.text_path_config
    assert again.transformer_config == loaded.transformer_config == modules["transformer"].config
    assert load_file(str(first)).keys() == load_file(str(second)).keys()


def quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = weight.abs().max() / 448.0
    return (weight / scale).to(torch.float8_e4m3fn), scale.reshape(())


@pytest.mark.parametrize("scale_name", [None, "weight_scale", "scale_weight"])
def test_fp8_stored_weights_are_upcast_exactly(tmp_path, scale_name):
    modules = tiny_modules("2.3")
    path = tmp_path / "ltx-2.3-tiny.safetensors"
    save_ltx2_checkpoint(path, modules, sections("2.3"), "2.3.0")
    tensors = load_file(str(path))
    quantized = [
        k for k in tensors if k.startswith("model.diffusion_model.transformer_blocks.") and k.endswith("to_q.weight")
    ]
    for key in quantized:
        if scale_name is None:
            tensors[key] = tensors[key].to(torch.float8_e4m3fn)
        else:
            tensors[key], tensors[key[: -len("weight")] + scale_name] = quantize(tensors[key])
            tensors[key[: -len("weight")] + "input_scale"] = torch.tensor(1.0)
    if scale_name == "scale_weight":  # ComfyUI scaled fp8 marks the file with an empty tensor
        tensors["model.diffusion_model.scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    fp8 = tmp_path / "ltx-2.3-tiny-fp8.safetensors"
    save_file(tensors, str(fp8), metadata={k: v for k, v in load_metadata(path).items()})
    loaded = load_ltx2_checkpoint(fp8, dtype=torch.float32).transformer.state_dict()
    worst = 0.0
    for key in quantized:
        expected = tensors[key].to(torch.float32)
        if scale_name is not None:
            expected = expected * tensors[key[: -len("weight")] + scale_name]
        worst = max(worst, (loaded[key[len("model.diffusion_model.") :]] - expected).abs().max().item())
    print(f"fp8 ({scale_name}): {len(quantized)} weights, max abs diff to fp8 x scale {worst:.3g}")
    assert quantized and worst == 0.0, f"fp8 weights not up-cast exactly: max abs diff {worst:.3g}"


def test_fp8_weights_kept_as_fp8_linears(tmp_path):
    """keep_fp8: the stored fp8 bytes stay in FP8Linear (scale per output channel = the per-tensor scale); the
    transformer then gives the up-cast model's velocities (the same dequantised weights) within TOL."""
    from videodit.model.blocks.fp8 import FP8Linear

    modules = tiny_modules("2.3")
    path = tmp_path / "ltx-2.3-tiny.safetensors"
    save_ltx2_checkpoint(path, modules, sections("2.3"), "2.3.0")
    tensors = load_file(str(path))
    quantized = [k for k in tensors if ".transformer_blocks." in k and k.endswith(("to_q.weight", "ff.net.2.weight"))]
    for key in quantized:
        tensors[key], tensors[key[: -len("weight")] + "weight_scale"] = quantize(tensors[key])
    fp8 = tmp_path / "ltx-2.3-tiny-fp8.safetensors"
    save_file(tensors, str(fp8), metadata=load_metadata(path))
    upcast = load_ltx2_checkpoint(fp8, dtype=torch.float32)
    kept = load_ltx2_checkpoint(fp8, dtype=torch.float32, keep_fp8=True)
    linears = {n: m for n, m in kept.transformer.named_modules() if isinstance(m, FP8Linear)}
    assert len(linears) == len(quantized)
    for name, linear in linears.items():
        stored = tensors[f"model.diffusion_model.{name}.weight"]
        assert linear.weight.dtype == torch.float8_e4m3fn and torch.equal(
            linear.weight.view(torch.uint8), stored.view(torch.uint8)
        )
        assert torch.equal(
            linear.weight_scale, tensors[f"model.diffusion_model.{name}.weight_scale"].expand(linear.out_features)
        )
    x = inputs(modules)
    with torch.no_grad():
        expected = upcast.transformer(x["video"], x["audio"], NO_SKIP)
        got = kept.transformer(x["video"], x["audio"], NO_SKIP)
    diff = max((a - b).abs().max().item() for a, b in zip(expected, got))
    print(f"keep_fp8: {len(linears)} FP8Linear, velocities vs the up-cast model: max abs diff {diff:.3g}")
    assert diff <= TOL, f"keep_fp8 velocities differ from the up-cast model: max abs diff {diff:.3g}"


def load_metadata(path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.metadata()


# ---------------------------------------------------------------------------------------------------------------
# proof (g): errors name the file and the problem


@pytest.fixture(scope="module")
def monolith(tmp_path_factory):
    path = tmp_path_factory.mktemp("ltx2") / "ltx-2.3-tiny.safetensors"
    save_ltx2_checkpoint(path, tiny_modules("2.3"), sections("2.3"), "2.3.0")
    return path


def rewrite(source, target, edit) -> str:
    tensors = load_file(str(source))
    edit(tensors)
    save_file(tensors, str(target), metadata=load_metadata(source))
    return str(target)


def test_ltxv_0_9_file_is_named(tmp_path):
    path = tmp_path / "ltxv-0.9.5-tiny.safetensors"
    keys = ["model.diffusion_model.transformer_blocks.0.attn1.to_q.weight", "model.diffusion_model.patchify_proj.weight",
            "vae.decoder.up_blocks.0.res_blocks.0.conv1.conv.weight", "vae.encoder.down_blocks.0.res_blocks.0.conv1.conv.weight"]  # fmt: skip
    save_file({k: torch.zeros(2, 2) for k in keys}, str(path))
    with pytest.raises(
        CheckpointError,
        match=r"ltxv-0\.9\.5-tiny\.safetensors: this is an LTX-Video 0\.9\.\d checkpoint.*load_checkpoint",
    ):
        load_ltx2_checkpoint(path, dtype=torch.float32)


def test_text_encoder_files_are_named(tmp_path):
    gemma = tmp_path / "gemma_3_12B_it.safetensors"
    save_file(
        {"model.layers.0.self_attn.q_proj.weight": torch.zeros(4, 4), "model.embed_tokens.weight": torch.zeros(8, 4)},
        str(gemma),
    )
    with pytest.raises(CheckpointError, match=r"gemma_3_12B_it\.safetensors: this is a Gemma text encoder file"):
        load_ltx2_checkpoint(gemma)
    t5 = tmp_path / "t5xxl_fp16.safetensors"
    save_file(
        {"encoder.block.0.layer.0.SelfAttention.q.weight": torch.zeros(4, 4), "shared.weight": torch.zeros(8, 4)},
        str(t5),
    )
    with pytest.raises(CheckpointError, match=r"t5xxl_fp16\.safetensors: this is a T5 text encoder file"):
        load_ltx2_checkpoint(t5)


def test_truncated_file_is_named(tmp_path, monolith):
    cut = tmp_path / "ltx-2.3-truncated.safetensors"
    cut.write_bytes(monolith.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match=r"ltx-2\.3-truncated\.safetensors: .*truncated or corrupt"):
        load_ltx2_checkpoint(cut)


def test_renamed_missing_and_unexpected_keys_are_listed(tmp_path, monolith):
    block = "model.diffusion_model.transformer_blocks.1."

    def rename(t):
        t[block + "attn1.to_q.weightX"] = t.pop(block + "attn1.to_q.weight")

    path = rewrite(monolith, tmp_path / "renamed.safetensors", rename)
    with pytest.raises(
        CheckpointError,
        match=r"(?s)renamed\.safetensors.*1 missing keys, e\.g\. transformer_blocks\.1\.attn1\.to_q\.weight.*1 unexpected keys, e\.g\. transformer_blocks\.1\.attn1\.to_q\.weightX",
    ):
        load_ltx2_checkpoint(path, dtype=torch.float32)
    path = rewrite(
        monolith, tmp_path / "stray.safetensors", lambda t: t.update({"something_else.weight": torch.zeros(2)})
    )
    with pytest.raises(
        CheckpointError,
        match=r"stray\.safetensors: 1 unexpected keys outside the LTX-2 components, e\.g\. something_else\.weight",
    ):
        load_ltx2_checkpoint(path, dtype=torch.float32)
    path = rewrite(monolith, tmp_path / "no-vae-key.safetensors", lambda t: t.pop("vae.decoder.conv_out.conv.weight"))
    with pytest.raises(
        CheckpointError,
        match=r"(?s)no-vae-key\.safetensors.*LTX-2 video VAE.*missing keys, e\.g\. decoder\.conv_out\.conv\.weight",
    ):
        load_ltx2_checkpoint(path, dtype=torch.float32)


def test_unused_latent_statistics_may_be_absent_or_present(tmp_path, monolith):
    """ltx-core reads mean-of-means / std-of-means only: a video VAE without the other three statistics and an
    audio VAE with them both load."""
    stats = ("channel", "mean-of-stds", "mean-of-stds_over_std-of-means")

    def edit(t):
        for name in stats:
            t.pop(f"vae.per_channel_statistics.{name}")
            t[f"audio_vae.per_channel_statistics.{name}"] = torch.ones(16)

    path = rewrite(monolith, tmp_path / "statistics.safetensors", edit)
    loaded = load_ltx2_checkpoint(path, dtype=torch.float32)
    reference = load_ltx2_checkpoint(monolith, dtype=torch.float32)
    for key in ("per_channel_statistics.mean-of-means", "per_channel_statistics.std-of-means"):
        assert torch.equal(loaded.video_vae.state_dict()[key], reference.video_vae.state_dict()[key])
        assert torch.equal(loaded.audio_vae.state_dict()[key], reference.audio_vae.state_dict()[key])


def test_wrong_shapes_are_listed(tmp_path, monolith):
    key = "model.diffusion_model.proj_out.weight"
    path = rewrite(monolith, tmp_path / "wrong-shape.safetensors", lambda t: t.update({key: torch.zeros(9, 32)}))
    with pytest.raises(
        CheckpointError, match=r"(?s)wrong-shape\.safetensors.*proj_out\.weight expected \[8, 32\] found \[9, 32\]"
    ):
        load_ltx2_checkpoint(path, dtype=torch.float32)


def test_quantised_variants_and_the_diffusion_decoder_vae_are_named(tmp_path, monolith):
    key = "model.diffusion_model.transformer_blocks.0.attn1.to_q.weight"
    path = rewrite(monolith, tmp_path / "ltx-2.3-int8-convrot.safetensors",
                   lambda t: t.update({key: t[key].to(torch.int8)}))  # fmt: skip
    with pytest.raises(
        CheckpointError, match=r"int8-convrot\.safetensors: .*to_q\.weight is stored as I8, a quantised variant"
    ):
        load_ltx2_checkpoint(path, dtype=torch.float32)
    modules = tiny_modules("2.5")
    vae = tmp_path / "ltx-2.5-video-vae.safetensors"
    md = sections("2.5")
    md["vae"]["_class_name"] = "CausalDiffusionVAE"
    save_ltx2_checkpoint(vae, {"video_vae": modules["video_vae"]}, md, "2.5.0", bare_vae=True)
    with pytest.raises(
        CheckpointError, match=r"ltx-2\.5-video-vae\.safetensors: this is the LTX-2\.5 diffusion-decoder video VAE"
    ):
        load_ltx2_checkpoint(vae, dtype=torch.float32)
    connectors = tmp_path / "connectors-only.safetensors"  # no model_version, no transformer keys
    save_file(official_tensors(text_path=modules["text_path"]), str(connectors))
    with pytest.raises(CheckpointError, match=r"connectors-only\.safetensors: the LTX-2 version is told neither"):
        load_ltx2_checkpoint(connectors, dtype=torch.float32)


def test_mismatched_release_pair_is_named(tmp_path):
    modules = tiny_modules("2.5")
    paths = write_split(tmp_path, modules, "2.5")
    old_vae = tmp_path / "ltx-2.3-video-vae.safetensors"
    save_ltx2_checkpoint(old_vae, {"video_vae": modules["video_vae"]}, sections("2.5"), "2.3.0", bare_vae=True)
    with pytest.raises(
        CheckpointError,
        match=r"mismatched LTX-2 files: .*ltx-tiny-transformer\.safetensors is LTX-2\.5, .*ltx-2\.3-video-vae\.safetensors is LTX-2\.3",
    ):
        load_ltx2_checkpoint([paths[0], old_vae, paths[2]], dtype=torch.float32)
    # connectors of a 2.0 file (no version metadata) beside a 2.5 transformer: the widths do not meet
    old = tmp_path / "ltx-2.0-connectors.safetensors"
    save_file(official_tensors(text_path=wide_20_modules()["text_path"]), str(old))
    transformer_only = tmp_path / "ltx-2.5-transformer-only.safetensors"
    save_ltx2_checkpoint(transformer_only, {"transformer": modules["transformer"]}, {}, "2.5.0")
    with pytest.raises(
        CheckpointError,
        match=r"mismatched LTX-2 files: .*ltx-2\.0-connectors\.safetensors gives a video text context width of 128, the LTX-2\.5 transformer in .*ltx-2\.5-transformer-only\.safetensors needs 32",
    ):
        load_ltx2_checkpoint([transformer_only, old], dtype=torch.float32)


def test_text_encoder_pair_is_checked(tmp_path, monolith):
    checkpoint = load_ltx2_checkpoint(monolith, dtype=torch.float32)
    gemma3 = types.SimpleNamespace(family="gemma3", path="gemma_3_12B_it.safetensors")
    gemma4 = types.SimpleNamespace(family="gemma4_unified", path="gemma4-12b-with-proj-ltx-2.5.safetensors")
    check_text_encoder_pair(checkpoint, gemma3)
    with pytest.raises(CheckpointError, match="LTX-2.3 transformer needs the Gemma 3 12B text encoder, got Gemma 4"):
        check_text_encoder_pair(checkpoint, gemma4)
    split = load_ltx2_checkpoint(write_split(tmp_path, tiny_modules("2.5"), "2.5")[:1], dtype=torch.float32)
    check_text_encoder_pair(split, gemma4)
    with pytest.raises(
        CheckpointError,
        match=r"ltx-tiny-transformer\.safetensors: this LTX-2\.5 transformer needs the LTX-2\.5 Gemma 4 text encoder, got Gemma 3",
    ):
        check_text_encoder_pair(split, gemma3)


def test_load_checkpoint_names_the_ltx2_loader(monolith):
    with pytest.raises(
        CheckpointError, match=r"ltx-2\.3-tiny\.safetensors: this is an LTX-2\.3 checkpoint.*load_ltx2_checkpoint"
    ):
        load_checkpoint(monolith, dtype=torch.float32)


# ---------------------------------------------------------------------------------------------------------------
# diffusers folders, written by diffusers' own save_pretrained


def diffusers_folder(folder, modules: dict, md: dict) -> None:
    """Our weights in diffusers 0.42.1 models (strict load through the diffusers names), saved by save_pretrained."""
    from diffusers.models.autoencoders.autoencoder_kl_ltx2 import AutoencoderKLLTX2Video
    from diffusers.models.autoencoders.autoencoder_kl_ltx2_audio import AutoencoderKLLTX2Audio
    from diffusers.models.transformers.transformer_ltx2 import LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE
    from videodit.model.checkpoint.ltx2_diffusers import _vocoder_key, video_vae_diffusers_key
    from videodit.model.ltx2.transformer import diffusers_key

    c = modules["transformer"].config
    transformer = LTX2VideoTransformer3DModel(
        in_channels=c.in_channels, out_channels=c.out_channels, num_attention_heads=c.num_attention_heads,
        attention_head_dim=c.attention_head_dim, cross_attention_dim=c.cross_attention_dim,
        pos_embed_max_pos=c.positional_embedding_max_pos[0], base_height=c.positional_embedding_max_pos[1],
        base_width=c.positional_embedding_max_pos[2], gated_attn=c.apply_gated_attention,
        cross_attn_mod=c.cross_attention_adaln, audio_in_channels=c.audio_in_channels,
        audio_out_channels=c.audio_out_channels, audio_num_attention_heads=c.audio_num_attention_heads,
        audio_attention_head_dim=c.audio_attention_head_dim, audio_cross_attention_dim=c.audio_cross_attention_dim,
        audio_pos_embed_max_pos=c.audio_positional_embedding_max_pos[0], audio_gated_attn=c.apply_gated_attention,
        audio_cross_attn_mod=c.cross_attention_adaln, num_layers=c.num_layers, norm_eps=c.norm_eps,
        caption_channels=c.caption_channels or 1, rope_theta=c.positional_embedding_theta,
        rope_double_precision=c.rope_float64, timestep_scale_multiplier=c.timestep_scale_multiplier,
        cross_attn_timestep_scale_multiplier=c.av_ca_timestep_scale_multiplier, rope_type=c.rope_type,
        use_prompt_embeddings=c.caption_channels is not None, ff_bias=c.ff_bias, audio_ff_bias=c.audio_ff_bias,
        use_prompt_adaln_single=c.use_prompt_adaln_single,
        use_keyframes_abs_pos_embedding=c.use_keyframes_abs_pos_embedding,
    )  # fmt: skip
    transformer.load_state_dict(
        {diffusers_key(k): v for k, v in modules["transformer"].state_dict().items()}, strict=True
    )

    t = modules["text_path"].config
    f, v, a = t.features, t.video, t.audio
    connectors = LTX2TextConnectors(
        caption_channels=f.gemma_dim, text_proj_in_factor=f.gemma_states, video_connector_num_attention_heads=v.heads,
        video_connector_attention_head_dim=v.head_dim, video_connector_num_layers=v.layers,
        video_connector_num_learnable_registers=v.registers, video_gated_attn=v.gated_attention,
        audio_connector_num_attention_heads=a.heads, audio_connector_attention_head_dim=a.head_dim,
        audio_connector_num_layers=a.layers, audio_connector_num_learnable_registers=a.registers,
        audio_gated_attn=a.gated_attention, connector_rope_base_seq_len=int(v.rope_max_pos), rope_theta=v.rope_theta,
        rope_double_precision=v.rope_double_precision, rope_type=v.rope_type, per_modality_projections=f.version == "v2",
        video_hidden_dim=f.video_dim, audio_hidden_dim=f.audio_dim, proj_bias=f.version == "v2",
    )  # fmt: skip
    ours = modules["text_path"].state_dict()
    connectors.load_state_dict({k: ours[tc.diffusers_connector_key(k)] for k in connectors.state_dict()}, strict=True)

    enc, dec = md["vae"]["encoder_blocks"], md["vae"]["decoder_blocks"]
    widths, width = [], md["vae"]["latent_channels"]
    for _, params in enc[1::2]:
        width *= params["multiplier"]
        widths.append(width)
    running, width = [], md["vae"]["decoder_base_channels"] * 8
    for _, params in list(reversed(dec))[1::2]:
        running.append(width)
        width //= params.get("multiplier", 1)
    up = {"compress_space": "spatial", "compress_time": "temporal", "compress_all": "spatiotemporal"}
    down = {"compress_space_res": "spatial", "compress_time_res": "temporal", "compress_all_res": "spatiotemporal"}
    vae = AutoencoderKLLTX2Video(
        latent_channels=md["vae"]["latent_channels"], block_out_channels=tuple(widths),
        layers_per_block=tuple(p for _, p in enc[::2]), spatio_temporal_scaling=(True,) * len(widths),
        downsample_type=tuple(down[n] for n, _ in enc[1::2]), decoder_block_out_channels=tuple(reversed(running)),
        decoder_layers_per_block=tuple(p for _, p in dec[::2]), decoder_spatio_temporal_scaling=(True,) * len(running),
        decoder_inject_noise=(False,) * len(dec[::2]), upsample_type=tuple(up[n] for n, _ in reversed(dec[1::2])),
        upsample_residual=tuple(bool(p.get("residual")) and n == "compress_all" for n, p in dec[1::2]),
        upsample_factor=tuple(p.get("multiplier", 1) for _, p in dec[1::2]), timestep_conditioning=True,
        patch_size=md["vae"]["patch_size"], decoder_causal=False,
    )  # fmt: skip
    state = {video_vae_diffusers_key(k, len(enc)): v for k, v in modules["video_vae"].state_dict().items()}
    vae.load_state_dict({k: v for k, v in state.items() if k in vae.state_dict()}, strict=True)

    dd = AUDIO_DD
    audio = AutoencoderKLLTX2Audio(
        base_channels=dd["ch"], output_channels=dd["out_ch"], ch_mult=tuple(dd["ch_mult"]),
        num_res_blocks=dd["num_res_blocks"], attn_resolutions=tuple(dd["attn_resolutions"]), in_channels=dd["in_channels"],
        resolution=dd["resolution"], latent_channels=dd["z_channels"], norm_type="pixel", causality_axis="height",
        mid_block_add_attention=dd["mid_block_add_attention"], mel_bins=dd["mel_bins"], double_z=dd["double_z"],
    )  # fmt: skip
    renames = {
        "per_channel_statistics.mean-of-means": "latents_mean",
        "per_channel_statistics.std-of-means": "latents_std",
    }
    audio.load_state_dict({renames.get(k, k): v for k, v in modules["audio_vae"].state_dict().items()}, strict=True)

    def generator(section: dict, prefix: str = "") -> dict:
        amp = section["resblock"] == "AMP1"
        final = None if section.get("apply_final_activation", True) is False else (
            "tanh" if section.get("use_tanh_at_final", True) else "clamp")  # fmt: skip
        kwargs = dict(hidden_channels=section["upsample_initial_channel"], upsample_kernel_sizes=section["upsample_kernel_sizes"],
                      upsample_factors=section["upsample_rates"], resnet_kernel_sizes=section["resblock_kernel_sizes"],
                      resnet_dilations=section["resblock_dilation_sizes"], act_fn="snakebeta" if amp else "leaky_relu",
                      antialias=amp, final_act_fn=final, final_bias=section.get("use_bias_at_final", True))  # fmt: skip
        return {prefix + k: v for k, v in kwargs.items()}

    section = md["vocoder"]
    if "bwe" in section:
        bwe = section["bwe"]
        vocoder = LTX2VocoderWithBWE(
            **generator(section["vocoder"]), **generator(bwe, "bwe_"), filter_length=bwe["n_fft"],
            hop_length=bwe["hop_length"], window_length=bwe["n_fft"], num_mel_channels=bwe["num_mels"],
            input_sampling_rate=bwe["input_sampling_rate"], output_sampling_rate=bwe["output_sampling_rate"],
        )  # fmt: skip
    else:
        vocoder = LTX2Vocoder(in_channels=128, out_channels=2, output_sampling_rate=24000, **generator(section))
    vocoder.load_state_dict({_vocoder_key(k): v for k, v in modules["vocoder"].state_dict().items()}, strict=True)

    for name, model in (("transformer", transformer), ("connectors", connectors), ("vae", vae), ("audio_vae", audio),
                        ("vocoder", vocoder)):  # fmt: skip
        model.save_pretrained(str(folder / name), safe_serialization=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_diffusers_folder_round_trip(tmp_path, version):
    modules = tiny_modules(version, log_var="uniform")  # diffusers' LTX-2 VAE has the uniform log-variance only
    folder = tmp_path / f"LTX-{version}-tiny-diffusers"
    diffusers_folder(folder, modules, sections(version, "uniform"))
    assert (folder / "transformer" / "diffusion_pytorch_model.safetensors").exists()
    checkpoint = load_ltx2_checkpoint(folder, dtype=torch.float32)
    assert checkpoint.version == version and checkpoint.paths == (str(folder),)
    if version == "2.3":
        with pytest.raises(
            CheckpointError, match=r"LTX-2\.3-tiny-diffusers: this is a diffusers LTX-2 folder.*load_ltx2_checkpoint"
        ):
            load_checkpoint(folder)
    assert checkpoint.transformer_config == modules["transformer"].config
    assert checkpoint.text_path_config == modules["text_path"].config
    assert_same_outputs(modules, loaded_modules(checkpoint), f"LTX-{version} diffusers folder")
    if version == "2.3":  # a renamed diffusers key: missing under its diffusers name, the new name unexpected
        weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
        rewrite(weights, weights, lambda t: t.update({"proj_out.weightX": t.pop("proj_out.weight")}))
        with pytest.raises(
            CheckpointError,
            match=r"(?s)LTX-2\.3-tiny-diffusers/transformer.*1 missing keys, e\.g\. proj_out\.weight.*1 unexpected keys, e\.g\. <diffusers> proj_out\.weightX",
        ):
            load_ltx2_checkpoint(folder, dtype=torch.float32)
        rewrite(weights, weights, lambda t: t.update({"proj_out.weight": t.pop("proj_out.weightX")}))
    official = tmp_path / "from-diffusers.safetensors"  # the diffusers configs convert to the official metadata
    save_ltx2_checkpoint(official, checkpoint)
    assert_same_outputs(modules, loaded_modules(load_ltx2_checkpoint(official, dtype=torch.float32)),
                        f"LTX-{version} diffusers -> official file")  # fmt: skip
