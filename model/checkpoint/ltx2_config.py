"""LTX-2 configs read from a file: the transformer and text-path configs from metadata or, without metadata, from
the tensor shapes; the text-path fields written back into the official `config["transformer"]` dict.

Shapes tell the layer counts, widths, in/out channels, the 2.0/2.3/2.5 flags (caption projection, gates, 9-row
modulation tables, prompt AdaLN, feed-forward biases, keyframe embedding) and, where gates exist, the head counts.
What shapes cannot tell takes the released value (LTX-2 design notes §2.1): split RoPE in float64, theta 1e4, max
positions [20, 2048, 2048] / [20], both timestep multipliers 1000, head width 128 for ungated video attention,
connector RoPE max position 4096, Gemma width 3840.
"""

from __future__ import annotations

import re
from dataclasses import replace

from ..ltx2.config import AVTransformerConfig
from ..ltx2.text_connector import ConnectorConfig, TextPathConfig, text_path_from_metadata
from ..ltx2.text_features import FeatureConfig
from .files import CheckpointError

RELEASED_HEAD_DIM = 128  # video attention of every released model (audio: its width over the same head count)
RELEASED_GEMMA_DIM = 3840  # Gemma 3 12B and LTX's Gemma 4 12B
RELEASED_CONNECTOR_MAX_POS = 4096.0
# Not official: the Gemma geometry our saver writes so that V2 files with any Gemma width load without guessing.
TEXT_FEATURES_KEY = "text_features"


def _layers(shapes: dict, prefix: str) -> int:
    found = {int(m.group(1)) for k in shapes if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(found) + 1 if found else 0


def _heads(shapes: dict, gate_key: str, dim: int, where: str, what: str) -> int:
    if gate_key in shapes:
        return shapes[gate_key][0]  # to_gate_logits: Linear(dim -> heads)
    if dim % RELEASED_HEAD_DIM:
        raise CheckpointError(
            f"{where}: no metadata config, and the {what} head count cannot be told from ungated attention of width "
            f"{dim} (not a multiple of the released head width {RELEASED_HEAD_DIM}); use a file with metadata"
        )
    return dim // RELEASED_HEAD_DIM


def infer_transformer_config(shapes: dict[str, tuple], where: str) -> AVTransformerConfig:
    """The transformer config of official keys (prefix stripped) -> shapes, for files without metadata."""
    video, audio = "patchify_proj.weight" in shapes, "audio_patchify_proj.weight" in shapes
    layers = _layers(shapes, "transformer_blocks.")
    if not (video or audio) or not layers:
        raise CheckpointError(f"{where}: no metadata config, and no patchify_proj/transformer_blocks keys to infer it")
    block = "transformer_blocks.0."
    fields: dict = dict(num_layers=layers, video=video, audio=audio, rope_type="split", rope_float64=True)
    fields["av_ca_timestep_scale_multiplier"] = 1000.0
    dim = shapes["patchify_proj.weight"][0] if video else None
    if video:
        heads = _heads(shapes, block + "attn1.to_gate_logits.weight", dim, where, "video")
        fields.update(
            num_attention_heads=heads,
            attention_head_dim=dim // heads,
            in_channels=shapes["patchify_proj.weight"][1],
            out_channels=shapes["proj_out.weight"][0],
            cross_attention_dim=shapes[block + "attn2.to_k.weight"][1],
            ff_bias=block + "ff.net.0.proj.bias" in shapes,
            use_keyframes_abs_pos_embedding="keyframes_abs_pos_embedding" in shapes,
        )
    if audio:
        audio_dim = shapes["audio_patchify_proj.weight"][0]
        gate = block + "audio_attn1.to_gate_logits.weight"
        heads = fields.get("num_attention_heads") if gate not in shapes and video else None
        heads = heads or _heads(shapes, gate, audio_dim, where, "audio")
        fields.update(
            audio_num_attention_heads=heads,
            audio_attention_head_dim=audio_dim // heads,
            audio_in_channels=shapes["audio_patchify_proj.weight"][1],
            audio_out_channels=shapes["audio_proj_out.weight"][0],
            audio_cross_attention_dim=shapes[block + "audio_attn2.to_k.weight"][1],
            audio_ff_bias=block + "audio_ff.net.0.proj.bias" in shapes,
        )
    prefix = "" if video else "audio_"
    table_rows = shapes[block + prefix + "scale_shift_table"][0]
    fields["cross_attention_adaln"] = table_rows == 9
    fields["apply_gated_attention"] = block + prefix + "attn1.to_gate_logits.weight" in shapes
    prompt_adaln = prefix + "prompt_adaln_single.linear.weight" in shapes
    fields["use_prompt_adaln_single"] = prompt_adaln or not fields["cross_attention_adaln"]  # without: unused
    if prefix + "caption_projection.linear_1.weight" in shapes:
        fields["caption_channels"] = shapes[prefix + "caption_projection.linear_1.weight"][1]
    try:
        return AVTransformerConfig(**fields)
    except ValueError as e:
        raise CheckpointError(
            f"{where}: the transformer config inferred from the tensor shapes is not usable: {e}"
        ) from None


def gemma_geometry(config: dict, projection: dict[str, tuple], where: str) -> tuple[int, int] | None:
    """(Gemma width, hidden states) the feature extractor expects, from our metadata entry, else the shapes
    (keys of text_embedding_projection.* without the prefix); None when the file has no feature extractor."""
    entry = config.get(TEXT_FEATURES_KEY)
    if isinstance(entry, dict) and "gemma_dim" in entry and "gemma_states" in entry:
        return int(entry["gemma_dim"]), int(entry["gemma_states"])
    if "aggregate_embed.weight" in projection:  # V1: Linear(D * L -> D)
        dim, flat = projection["aggregate_embed.weight"]
        return dim, flat // dim
    if "video_aggregate_embed.weight" in projection:
        flat = projection["video_aggregate_embed.weight"][1]
        if flat % RELEASED_GEMMA_DIM:
            raise CheckpointError(
                f"{where}: the feature extractor takes {flat} inputs, not a multiple of Gemma's width "
                f"{RELEASED_GEMMA_DIM}, and the metadata has no '{TEXT_FEATURES_KEY}' entry saying the Gemma geometry"
            )
        return RELEASED_GEMMA_DIM, flat // RELEASED_GEMMA_DIM
    return None


def _connector_from_shapes(shapes: dict, prefix: str, where: str, rope_type: str, precision: bool) -> ConnectorConfig:
    layers = _layers(shapes, prefix + "transformer_1d_blocks.")
    if not layers:
        raise CheckpointError(f"{where}: no {prefix}transformer_1d_blocks.* keys for the text connector")
    dim = shapes[prefix + "transformer_1d_blocks.0.attn1.to_q.weight"][0]
    gate = prefix + "transformer_1d_blocks.0.attn1.to_gate_logits.weight"
    heads = _heads(shapes, gate, dim, where, f"text connector {prefix.rstrip('.')}")
    registers = shapes.get(prefix + "learnable_registers", (None,))[0]
    return ConnectorConfig(
        heads=heads,
        head_dim=dim // heads,
        layers=layers,
        registers=registers,
        rope_type=rope_type,
        rope_max_pos=RELEASED_CONNECTOR_MAX_POS,
        rope_double_precision=precision,
        gated_attention=gate in shapes,
    )


def text_path_config(
    transformer: dict | None, shapes: dict[str, tuple], geometry: tuple[int, int] | None, where: str
) -> TextPathConfig:
    """The text path (feature extractor + connectors; the 2.0 caption projections stay the transformer's) from
    config["transformer"] when present, else the shapes. shapes: our TextPath keys (feature_extractor.*,
    video_connector.*, audio_connector.*). geometry: gemma_geometry(); None takes the released Gemma (3840 x 49)."""
    gemma_dim, gemma_states = geometry or (RELEASED_GEMMA_DIM, 49)
    audio = any(k.startswith("audio_connector.") for k in shapes)
    try:
        if transformer:
            if not audio:  # video only: let the (then dropped) audio side mirror the video side so it validates
                transformer = {k: v for k, v in transformer.items() if not k.startswith("audio_connector_")}
                transformer["audio_num_attention_heads"] = transformer.get("num_attention_heads", 32)
                transformer["audio_attention_head_dim"] = transformer.get("attention_head_dim", 128)
            config = text_path_from_metadata(transformer, gemma_dim, gemma_states)
            registers = transformer.get("connector_num_learnable_registers", 128)
            video_registers = shapes.get("video_connector.learnable_registers", (registers,))[0]
            audio_registers = shapes.get("audio_connector.learnable_registers", (registers,))[0]
            config = replace(
                config,
                video=replace(config.video, registers=video_registers),
                audio=replace(config.audio, registers=audio_registers) if audio else None,
                features=replace(config.features, audio_dim=config.features.audio_dim if audio else 0),
            )
        else:
            video = _connector_from_shapes(shapes, "video_connector.", where, "split", True)
            audio_c = _connector_from_shapes(shapes, "audio_connector.", where, "split", True) if audio else None
            v2 = "feature_extractor.video_aggregate_embed.weight" in shapes or video.gated_attention
            version = "v2" if v2 else "v1"
            audio_dim = audio_c.dim if audio_c else 0
            config = TextPathConfig(
                FeatureConfig(version, gemma_dim, gemma_states, video.dim, audio_dim), video, audio_c
            )
        return replace(config, caption_video_dim=0, caption_audio_dim=0)
    except ValueError as e:
        raise CheckpointError(f"{where}: the text connector config is not usable: {e}") from None


def text_path_metadata(config: TextPathConfig, transformer: AVTransformerConfig | None) -> dict:
    """The official connector_* fields of config["transformer"] for `config` (text_path_config reads them back).
    ValueError for a text path the official fields cannot describe."""
    video, audio = config.video, config.audio
    if transformer is not None:
        for connector in (video, audio):
            if connector is None:
                continue
            if (
                connector.rope_type != transformer.rope_type
                or connector.rope_double_precision != transformer.rope_float64
            ):
                raise ValueError(
                    "the official metadata shares rope_type and frequencies_precision between the transformer and "
                    f"the connectors; the connector has {connector.rope_type}/{connector.rope_double_precision}, the "
                    f"transformer {transformer.rope_type}/{transformer.rope_float64}"
                )
    if audio is not None and (audio.rope_max_pos, audio.gated_attention) != (video.rope_max_pos, video.gated_attention):
        raise ValueError("the official metadata has one connector RoPE max position and gate flag for both connectors")
    if audio is not None and audio.registers != video.registers:
        raise ValueError("the official metadata has one register count for both connectors")
    d = {
        "caption_proj_before_connector": config.features.version == "v2",
        "connector_num_attention_heads": video.heads,
        "connector_attention_head_dim": video.head_dim,
        "connector_num_layers": video.layers,
        "connector_positional_embedding_max_pos": [video.rope_max_pos],
        "connector_apply_gated_attention": video.gated_attention,
        "connector_num_learnable_registers": video.registers,
    }
    if audio is not None:
        d.update(
            audio_connector_num_attention_heads=audio.heads,
            audio_connector_attention_head_dim=audio.head_dim,
            audio_connector_num_layers=audio.layers,
        )
    return d


def version_of(config: AVTransformerConfig | None) -> str | None:
    """2.0 / 2.3 / 2.5 from the transformer's flags (keyframe embedding: 2.5; cross-attention AdaLN: 2.3)."""
    if config is None:
        return None
    if config.use_keyframes_abs_pos_embedding:
        return "2.5"
    return "2.3" if config.cross_attention_adaln else "2.0"


def check_pairs(owners: dict, transformer: AVTransformerConfig | None, video_vae, audio_vae, text) -> None:
    """Components of different releases that would load but cannot work together: their widths must meet.
    video_vae: VAEConfig, audio_vae: AudioVAEConfig, text: TextPathConfig, each None when absent."""
    if transformer is None:
        return
    t = owners["transformer"]
    pairs = []
    if video_vae is not None and transformer.video:
        pairs.append(("vae", "video latent channels", video_vae.latent_channels, transformer.in_channels))
    if audio_vae is not None and transformer.audio:
        width = audio_vae.latent_channels * audio_vae.latent_mel_bins
        pairs.append(("audio_vae", "audio latent width", width, transformer.audio_in_channels))
    if text is not None:
        video_out = text.features.video_dim if text.features.version == "v2" else text.video.dim
        need = transformer.caption_channels or transformer.cross_attention_dim
        pairs.append(("text_path", "video text context width", video_out, need))
        if text.audio is not None and transformer.audio:
            audio_out = text.features.audio_dim if text.features.version == "v2" else text.audio.dim
            need = transformer.caption_channels or transformer.audio_cross_attention_dim
            pairs.append(("text_path", "audio text context width", audio_out, need))
    for component, what, theirs, ours in pairs:
        if theirs != ours:
            raise CheckpointError(
                f"mismatched LTX-2 files: {owners[component]} gives a {what} of {theirs}, the LTX-"
                f"{version_of(transformer)} transformer in {t} needs {ours}; all files must come from one release"
            )
