"""diffusers folders of LTX-2 (diffusers 0.42.1 LTX2Pipeline components): transformer/ (LTX2VideoTransformer3DModel),
connectors/ (LTX2TextConnectors), vae/ (AutoencoderKLLTX2Video), audio_vae/ (AutoencoderKLLTX2Audio), vocoder/
(LTX2Vocoder or LTX2VocoderWithBWE), each a config.json beside diffusion_pytorch_model*.safetensors (sharded or
not). Missing subfolders give None components; text_encoder/, tokenizer/, scheduler/ are not read here.

Each diffusers config is converted to the official metadata section (so the loaded checkpoint saves as an official
file), and every key is looked up under its diffusers name: the transformer through transformer.diffusers_key, the
connectors through text_connector.diffusers_connector_key, the VAE with the diffusers block regrouping. Keys the
diffusers files hold and our modules do not expect are listed as unexpected.
"""

from __future__ import annotations

import glob
import os

import torch

from ..ltx2.audio_vae import AudioVAE, AudioVAEConfig
from ..ltx2.config import AVTransformerConfig
from ..ltx2.text_connector import ConnectorConfig, TextPath, TextPathConfig, diffusers_connector_key
from ..ltx2.text_features import FeatureConfig
from ..ltx2.transformer import LTX2Transformer, diffusers_key
from ..ltx2.video_vae import LTX2VideoVAE, ltx2_vae_config
from ..ltx2.vocoder import build_vocoder
from .files import PICKLE_SUFFIXES, CheckpointError, SafetensorsFile, TensorInfo, read_json
from .fill import build_on_meta, fill_module, merged_index, parameters_on_meta
from .ltx2 import UNUSED_STATISTICS, LTX2Checkpoint
from .ltx2_config import check_pairs, version_of

FOLDERS = ("transformer", "connectors", "vae", "audio_vae", "vocoder")
DOWN_NAMES = {"spatial": "compress_space_res", "temporal": "compress_time_res", "spatiotemporal": "compress_all_res"}
UP_NAMES = {"spatial": "compress_space", "temporal": "compress_time", "spatiotemporal": "compress_all"}
VOCODER_RENAMES = (
    ("ups.", "upsamplers."),
    ("resblocks.", "resnets."),
    ("conv_pre.", "conv_in."),
    ("conv_post.", "conv_out."),
    ("act_post.", "act_out."),
    ("downsample.lowpass.", "downsample."),
)
AUDIO_STATS = {
    "per_channel_statistics.mean-of-means": "latents_mean",
    "per_channel_statistics.std-of-means": "latents_std",
}


def _part(folder: str, name: str) -> tuple[dict, dict[str, TensorInfo], str] | None:
    """(config.json, index of the weights, subfolder) of one component, or None when the subfolder is absent."""
    where = os.path.join(folder, name)
    if not os.path.isdir(where):
        return None
    weights = sorted(glob.glob(os.path.join(where, "*.safetensors")))
    if not weights:
        pickles = [p for p in os.listdir(where) if p.endswith(PICKLE_SUFFIXES)]
        hint = f" (only pickle files: {', '.join(pickles)}; they are refused)" if pickles else ""
        raise CheckpointError(f"{where}: no .safetensors weights{hint}")
    return read_json(os.path.join(where, "config.json")), merged_index([SafetensorsFile(p) for p in weights]), where


def _require(config: dict, where: str, expected: dict) -> None:
    for key, value in expected.items():
        if config.get(key, value) != value:
            raise CheckpointError(f"{where}/config.json: {key}={config[key]!r} is not supported; expected {value!r}")


def _forward(module, index: dict[str, TensorInfo], rename) -> dict[str, TensorInfo]:
    """Our key -> the TensorInfo of its diffusers name; diffusers keys nobody asked for stay, as unexpected keys."""
    names = {k: rename(k) for k in module.state_dict()}
    found = {k: index[n] for k, n in names.items() if n in index}
    used = set(names.values())
    found.update({f"<diffusers> {k}": v for k, v in index.items() if k not in used})
    return found


def transformer_config_from_diffusers(c: dict, where: str) -> AVTransformerConfig:
    fixed = {"patch_size": 1, "patch_size_t": 1, "audio_patch_size": 1, "audio_patch_size_t": 1,
             "qk_norm": "rms_norm_across_heads", "activation_fn": "gelu-approximate", "norm_elementwise_affine": False,
             "attention_bias": True, "attention_out_bias": True}  # fmt: skip
    _require(c, where, fixed)
    for ours, theirs in (("gated_attn", "audio_gated_attn"), ("cross_attn_mod", "audio_cross_attn_mod")):
        if c.get(ours, False) != c.get(theirs, False):
            raise CheckpointError(f"{where}/config.json: {ours} and {theirs} differ; the LTX-2 releases set both alike")
    try:
        return AVTransformerConfig(
            num_layers=c.get("num_layers", 48),
            num_attention_heads=c.get("num_attention_heads", 32),
            attention_head_dim=c.get("attention_head_dim", 128),
            cross_attention_dim=c.get("cross_attention_dim", 4096),
            in_channels=c.get("in_channels", 128),
            out_channels=c.get("out_channels") or c.get("in_channels", 128),
            audio_num_attention_heads=c.get("audio_num_attention_heads", 32),
            audio_attention_head_dim=c.get("audio_attention_head_dim", 64),
            audio_cross_attention_dim=c.get("audio_cross_attention_dim", 2048),
            audio_in_channels=c.get("audio_in_channels", 128),
            audio_out_channels=c.get("audio_out_channels") or c.get("audio_in_channels", 128),
            caption_channels=c.get("caption_channels", 3840) if c.get("use_prompt_embeddings", True) else None,
            norm_eps=float(c.get("norm_eps", 1e-6)),
            positional_embedding_theta=float(c.get("rope_theta", 10000.0)),
            positional_embedding_max_pos=(
                c.get("pos_embed_max_pos", 20),
                c.get("base_height", 2048),
                c.get("base_width", 2048),
            ),
            audio_positional_embedding_max_pos=(c.get("audio_pos_embed_max_pos", 20),),
            timestep_scale_multiplier=float(c.get("timestep_scale_multiplier", 1000)),
            av_ca_timestep_scale_multiplier=float(c.get("cross_attn_timestep_scale_multiplier", 1000)),
            rope_type=c.get("rope_type", "interleaved"),
            rope_float64=bool(c.get("rope_double_precision", True)),
            apply_gated_attention=bool(c.get("gated_attn", False)),
            cross_attention_adaln=bool(c.get("cross_attn_mod", False)),
            use_prompt_adaln_single=bool(c.get("use_prompt_adaln_single", True)),
            ff_bias=bool(c.get("ff_bias", True)),
            audio_ff_bias=bool(c.get("audio_ff_bias", True)),
            use_keyframes_abs_pos_embedding=bool(c.get("use_keyframes_abs_pos_embedding", False)),
        )
    except ValueError as e:
        raise CheckpointError(f"{where}/config.json: not a usable LTX-2 transformer config: {e}") from None


def text_path_from_diffusers(c: dict, where: str) -> TextPathConfig:
    _require(c, where, {"causal_temporal_positioning": False})
    v2 = bool(c.get("per_modality_projections", False))
    if bool(c.get("proj_bias", False)) != v2:
        raise CheckpointError(f"{where}/config.json: proj_bias must be {v2} with per_modality_projections={v2}")

    def connector(prefix: str) -> ConnectorConfig:
        return ConnectorConfig(
            heads=c.get(f"{prefix}_connector_num_attention_heads", 30),
            head_dim=c.get(f"{prefix}_connector_attention_head_dim", 128),
            layers=c.get(f"{prefix}_connector_num_layers", 2),
            registers=c.get(f"{prefix}_connector_num_learnable_registers", 128),
            rope_type=c.get("rope_type", "interleaved"),
            rope_theta=float(c.get("rope_theta", 10000.0)),
            rope_max_pos=float(c.get("connector_rope_base_seq_len", 4096)),
            rope_double_precision=bool(c.get("rope_double_precision", True)),
            gated_attention=bool(c.get(f"{prefix}_gated_attn", False)),
        )

    try:
        features = FeatureConfig(
            "v2" if v2 else "v1",
            c.get("caption_channels", 3840),
            c.get("text_proj_in_factor", 49),
            c.get("video_hidden_dim", 4096),
            c.get("audio_hidden_dim", 2048),
        )
        return TextPathConfig(features, connector("video"), connector("audio"))
    except ValueError as e:
        raise CheckpointError(f"{where}/config.json: not a usable LTX-2 text connector config: {e}") from None


def vae_section_from_diffusers(c: dict, where: str) -> dict:
    """The official "vae" section of an AutoencoderKLLTX2Video config (res_x blocks alternating with samplers)."""
    _require(c, where, {"patch_size_t": 1, "encoder_causal": True, "in_channels": 3, "out_channels": 3})
    inject = c.get("decoder_inject_noise", False)
    if any(inject if isinstance(inject, (list, tuple)) else [inject]):
        raise CheckpointError(f"{where}/config.json: decoder_inject_noise is not supported")
    widths, layers = c["block_out_channels"], c["layers_per_block"]
    encoder, channels = [], c["latent_channels"]
    try:
        for i, width in enumerate(widths):
            encoder += [["res_x", layers[i]], [DOWN_NAMES[c["downsample_type"][i]], {"multiplier": width // channels}]]
            channels = width
        encoder.append(["res_x", layers[len(widths)]])
        dec_widths, dec_layers = c["decoder_block_out_channels"], c["decoder_layers_per_block"]
        ups, residual, factor = c["upsample_type"], c["upsample_residual"], c["upsample_factor"]
        n = len(dec_widths)
        residual = residual if isinstance(residual, list) else [residual] * n
        decoder = []
        for j in range(n):
            params = {"multiplier": factor[j]}
            name = UP_NAMES[ups[n - 1 - j]]
            if name == "compress_all":
                params["residual"] = bool(residual[j])
            decoder += [["res_x", dec_layers[j]], [name, params]]
        decoder.append(["res_x", dec_layers[n]])
    except (KeyError, IndexError) as e:
        raise CheckpointError(f"{where}/config.json: not an LTX-2 video VAE layout ({e!r})") from None
    return {
        "_class_name": "CausalVideoAutoencoder",
        "dims": 3,
        "latent_channels": c["latent_channels"],
        "patch_size": c.get("patch_size", 4),
        "norm_layer": "pixel_norm",
        "latent_log_var": "uniform",
        "decoder_base_channels": dec_widths[-1] // 8,
        "encoder_blocks": encoder,
        "decoder_blocks": decoder,
        "timestep_conditioning": bool(c.get("timestep_conditioning", False)),
        "causal_decoder": bool(c.get("decoder_causal", True)),
        **_padding(c, where),
    }


def _padding(c: dict, where: str) -> dict:
    enc, dec = c.get("encoder_spatial_padding_mode", "zeros"), c.get("decoder_spatial_padding_mode", "reflect")
    if (enc, dec) == ("zeros", "reflect"):
        return {}
    if enc != dec:
        raise CheckpointError(f"{where}/config.json: encoder/decoder padding {enc}/{dec}: the official config has one")
    return {"spatial_padding_mode": enc}


def video_vae_diffusers_key(key: str, encoder_blocks: int) -> str:
    """Our LTX-2 video VAE key -> the AutoencoderKLLTX2Video key (blocks regrouped: samplers inside the blocks)."""
    if key.startswith("per_channel_statistics."):
        return {"mean-of-means": "latents_mean", "std-of-means": "latents_std"}.get(key.split(".", 1)[1], key)
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
        parts[1] = parts[1][len("last_") :]
    return ".".join(parts)


def audio_section_from_diffusers(c: dict) -> dict:
    dd = {
        "ch": c.get("base_channels", 128), "ch_mult": list(c.get("ch_mult", (1, 2, 4))),
        "num_res_blocks": c.get("num_res_blocks", 2), "attn_resolutions": list(c.get("attn_resolutions") or []),
        "resolution": c.get("resolution", 256), "z_channels": c.get("latent_channels", 8),
        "double_z": c.get("double_z", True), "in_channels": c.get("in_channels", 2),
        "out_ch": c.get("output_channels", 2),
        "norm_type": c.get("norm_type", "pixel"), "causality_axis": c.get("causality_axis", "height"),
        "mid_block_add_attention": c.get("mid_block_add_attention", False), "mel_bins": c.get("mel_bins", 64),
    }  # fmt: skip
    return {
        "model": {"params": {"ddconfig": dd, "sampling_rate": c.get("sample_rate", 16000)}},
        "preprocessing": {"stft": {"filter_length": 1024, "hop_length": c.get("mel_hop_length", 160)}},
    }


def _generator(c: dict, prefix: str, where: str, final: bool) -> dict:
    g = lambda name, default=None: c.get(prefix + name, default)  # noqa: E731
    amp = bool(g("antialias", False))
    act = g("act_fn", "leaky_relu")
    if amp != (act == "snakebeta") or (not amp and act != "leaky_relu"):
        raise CheckpointError(
            f"{where}/config.json: {prefix}act_fn={act!r} with antialias={amp} is not an LTX-2 vocoder"
        )
    section = {
        "upsample_initial_channel": g("hidden_channels"), "upsample_rates": list(g("upsample_factors")),
        "upsample_kernel_sizes": list(g("upsample_kernel_sizes")),
        "resblock_kernel_sizes": list(g("resnet_kernel_sizes")),
        "resblock_dilation_sizes": [list(d) for d in g("resnet_dilations")], "resblock": "AMP1" if amp else "1",
        "activation": "snakebeta" if amp else "snake", "stereo": g("out_channels", 2) == 2,
        "use_bias_at_final": bool(g("final_bias", True)),
    }  # fmt: skip
    act_final = g("final_act_fn", "tanh")
    if final == (act_final is None) or act_final not in ("tanh", "clamp", None):
        raise CheckpointError(f"{where}/config.json: {prefix}final_act_fn={act_final!r} is not supported here")
    section["use_tanh_at_final"] = act_final == "tanh"
    return section


def vocoder_section_from_diffusers(c: dict, where: str) -> dict:
    if "bwe_hidden_channels" not in c:
        return {**_generator(c, "", where, True), "output_sampling_rate": c.get("output_sampling_rate", 24000)}
    if c.get("window_length", c.get("filter_length")) != c.get("filter_length"):
        raise CheckpointError(f"{where}/config.json: window_length must equal filter_length")
    bwe = {
        **_generator(c, "bwe_", where, False),
        "apply_final_activation": False,
        "n_fft": c["filter_length"],
        "hop_length": c["hop_length"],
        "num_mels": c["num_mel_channels"],
        "input_sampling_rate": c["input_sampling_rate"],
        "output_sampling_rate": c["output_sampling_rate"],
    }
    return {"vocoder": _generator(c, "", where, c.get("final_act_fn") is not None), "bwe": bwe}


def _vocoder_key(key: str) -> str:
    for old, new in VOCODER_RENAMES:
        key = key.replace(old, new)
    return key


def load_ltx2_diffusers_folder(folder: str, dtype: torch.dtype, device) -> LTX2Checkpoint:
    """An LTX2Checkpoint from a diffusers LTX-2 folder (see the module docstring). Every config is converted and
    the components' widths checked against each other before any tensor is read."""
    parts = {name: _part(folder, name) for name in FOLDERS}
    if parts["transformer"] is None:
        raise CheckpointError(f"{folder}: not a diffusers LTX-2 folder, or one without its transformer/ subfolder")
    where = {name: part[2] for name, part in parts.items() if part is not None}
    config = {name: part[0] for name, part in parts.items() if part is not None}
    transformer_config = transformer_config_from_diffusers(config["transformer"], where["transformer"])
    sections = {"transformer": transformer_config.to_metadata()}
    text_config = text_path_from_diffusers(config["connectors"], where["connectors"]) if parts["connectors"] else None
    vae_config = audio_config = None
    try:
        if parts["vae"]:
            sections["vae"] = vae_section_from_diffusers(config["vae"], where["vae"])
            vae_config = ltx2_vae_config(sections["vae"])
        if parts["audio_vae"]:
            sections["audio_vae"] = audio_section_from_diffusers(config["audio_vae"])
            audio_config = AudioVAEConfig.from_metadata(sections)
        if parts["vocoder"]:
            sections["vocoder"] = vocoder_section_from_diffusers(config["vocoder"], where["vocoder"])
    except ValueError as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{folder}: a component config is not usable: {e}") from None
    owners = {"text_path": where.get("connectors"), **where}
    check_pairs(owners, transformer_config, vae_config, audio_config, text_config)

    def filled(name: str, module, rename, defaults=None):
        index = parts[name][1]
        found = {rename(k): v for k, v in index.items()} if name == "connectors" else _forward(module, index, rename)
        return fill_module(module, found, dtype, device, f"diffusers LTX-2 {name} ({where[name]})", defaults)

    transformer = filled("transformer", build_on_meta(LTX2Transformer, transformer_config), diffusers_key)
    text_path = video_vae = audio_vae = vocoder = None
    if text_config is not None:
        text_path = filled("connectors", build_on_meta(TextPath, text_config), diffusers_connector_key)
    if vae_config is not None:
        module = build_on_meta(LTX2VideoVAE, vae_config)
        blocks = len(sections["vae"]["encoder_blocks"])
        defaults = {k: v for k, v in module.state_dict().items() if k in UNUSED_STATISTICS}  # not in diffusers' files
        video_vae = filled("vae", module, lambda k: video_vae_diffusers_key(k, blocks), defaults)
    if audio_config is not None:
        audio_vae = filled("audio_vae", build_on_meta(AudioVAE, audio_config), lambda k: AUDIO_STATS.get(k, k))
    if parts["vocoder"]:
        with parameters_on_meta():
            module = build_vocoder(sections)
        vocoder = filled("vocoder", module, _vocoder_key)
    version = version_of(transformer_config)
    sections["model_version"] = version + ".0"
    distilled = "distilled" in os.path.basename(os.path.normpath(folder)).lower()
    return LTX2Checkpoint(
        version, transformer_config, transformer, video_vae, audio_vae, vocoder, text_path, text_config, (folder,),
        sections, None, distilled,
    )  # fmt: skip
