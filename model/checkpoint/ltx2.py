"""LTX-2 checkpoints (2.0, 2.3, 2.5) in the official layouts: the monolith single file and the 2.5 split files.

Official keys (one file or spread over several, each tensor under exactly one prefix):
  model.diffusion_model.*                              transformer (2.0: with its caption projections)
  model.diffusion_model.{video_,audio_}embeddings_connector.*   text connectors (video-only: embeddings_connector.*)
  text_embedding_projection.*                          Gemma feature extractor (2.5: in the Gemma file instead)
  vae.*  (2.5 vae/ file: bare encoder.*/decoder.*/per_channel_statistics.*)   video VAE
  audio_vae.*                                          audio VAE
  vocoder.*                                            vocoder (2.0 HiFi-GAN; 2.3+ with bandwidth extension)
Metadata: "config" JSON with "transformer" (connector_* fields included), "vae", "audio_vae", "vocoder" sections and
"model_version" ("2.3.0"). The transformer and text path configs are inferred from the tensor shapes when the file
has no config (ltx2_config.py); the VAE, audio VAE and vocoder need theirs. diffusers folders: ltx2_diffusers.py;
writing the official layout: ltx2_save.py.

Modules are built on the meta device and filled tensor by tensor. fp8-stored tensors (float8_e4m3fn, with or
without a per-tensor scale `<m>.weight_scale` (ComfyUI mixed quantisation) or `<m>.scale_weight` (ComfyUI scaled
fp8)) are converted to the compute dtype as they are read: value = fp8 value (up-cast exactly) x scale, computed in
fp32 and rounded once to the compute dtype. With keep_fp8=True the transformer's fp8 linear weights stay fp8 instead
(blocks.fp8.FP8Linear with the stored bytes and the per-tensor scale repeated per output channel; fp8_linears.py),
which halves their memory (official files only). Input scales and format markers are dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..ltx2.audio_vae import AudioVAE, AudioVAEConfig
from ..ltx2.config import AVTransformerConfig
from ..ltx2.text_connector import TextPath, TextPathConfig
from ..ltx2.transformer import LTX2Transformer
from ..ltx2.video_vae import LTX2VideoVAE, ltx2_vae_config
from ..ltx2.vocoder import Vocoder, VocoderWithBWE, build_vocoder
from .files import CheckpointError, SafetensorsFile, TensorInfo, check_dtype
from .fill import MAX_LISTED, build_on_meta, fill_module, parameters_on_meta
from .fp8_linears import keep_fp8_linears
from .keys import DIT_PREFIX, FAMILY_NAMES, IGNORED_PREFIXES, detect_family
from .ltx2_config import (
    check_pairs,
    gemma_geometry,
    infer_transformer_config,
    text_path_config,
    version_of,
)

# text path: (file prefix, our TextPath prefix), most specific first
CONNECTOR_PREFIXES = (
    (DIT_PREFIX + "video_embeddings_connector.", "video_connector."),
    (DIT_PREFIX + "audio_embeddings_connector.", "audio_connector."),
    (DIT_PREFIX + "embeddings_connector.", "video_connector."),
    ("text_embedding_projection.", "feature_extractor."),
)
COMPONENT_PREFIXES = {"audio_vae": "audio_vae.", "vocoder": "vocoder.", "vae": "vae."}
BARE_VAE = ("encoder.", "decoder.", "per_channel_statistics.")
WEIGHT_SCALES = ("weight_scale", "scale_weight")  # ComfyUI mixed fp8 / scaled fp8: multiplies <m>.weight
DROPPED_SUFFIXES = (".input_scale", ".scale_input", ".comfy_quant", ".weight_scale_2")
# latent statistics some files carry that no LTX-2 code reads (ltx-core loads mean-of-means / std-of-means only)
UNUSED_STATISTICS = tuple(
    f"per_channel_statistics.{n}" for n in ("channel", "mean-of-stds", "mean-of-stds_over_std-of-means")
)
# packed or integer weights of quantised variants (ComfyUI int8 "convrot", nvfp4, ...): refused by name
QUANTISED_DTYPES = ("I8", "U8", "F4", "F6_E2M3", "F6_E3M2", "F8_E8M0")


@dataclass(frozen=True)
class LTX2Checkpoint:
    """The LTX-2 modules of one release (None for a component the given files lack).

    text_path: feature extractor + connectors for LTX2TextEncoder; None when a part is missing (2.5: the feature
    extractor is in the Gemma file; text_path_with_gemma(checkpoint, gemma) completes it).
    The 2.0 caption projections are the transformer's (model.diffusion_model.caption_projection), not the text
    path's. metadata: the merged parsed "config" sections plus "model_version" (the files' entry, else the version
    + ".0"), as text_encoder.check_gemma_matches reads it; model_version: the files' entry or None."""

    version: str  # "2.0", "2.3", "2.5"
    transformer_config: AVTransformerConfig | None
    transformer: LTX2Transformer | None
    video_vae: LTX2VideoVAE | None
    audio_vae: AudioVAE | None
    vocoder: Vocoder | VocoderWithBWE | None
    text_path: TextPath | None
    text_path_config: TextPathConfig | None
    paths: tuple[str, ...]
    metadata: dict
    model_version: str | None = None
    distilled: bool = False  # a distilled release (file name or metadata says so): distilled sigmas, no guidance


def _paths(paths) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    if isinstance(paths, dict):
        paths = list(paths.values())
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise CheckpointError("load_ltx2_checkpoint: no files given")
    return paths


def _scale_key(file: SafetensorsFile, key: str) -> str | None:
    if not key.endswith(".weight"):
        return None
    for name in WEIGHT_SCALES:
        scale = key[: -len("weight")] + name
        if scale in file.tensors:
            if file.tensors[scale][0] not in ((), (1,)):
                raise CheckpointError(
                    f"{file.path}: {scale} has shape {list(file.tensors[scale][0])}; only per-tensor fp8 scales "
                    "(one number) are supported"
                )
            return scale
    return None


def _is_dropped(key: str) -> bool:
    last = key.rsplit(".", 1)[-1]
    return last == "scaled_fp8" or last in WEIGHT_SCALES or key.endswith(DROPPED_SUFFIXES)


def _component_of(key: str, bare_vae: bool) -> tuple[str, str, str] | None:
    """(component, file prefix, our prefix) of a file key, or None when it belongs to no component."""
    for theirs, ours in CONNECTOR_PREFIXES:
        if key.startswith(theirs):
            return "text_path", theirs, ours
    if key.startswith(DIT_PREFIX):
        return "transformer", DIT_PREFIX, ""
    for component, prefix in COMPONENT_PREFIXES.items():
        if key.startswith(prefix):
            return component, prefix, ""
    if bare_vae and key.startswith(BARE_VAE):
        return "vae", "", ""
    return None


def _split(files: list[SafetensorsFile]) -> dict[str, dict[str, TensorInfo]]:
    """component -> {our key: TensorInfo}; CheckpointError for a component in two files or keys of none."""
    indexes: dict[str, dict[str, TensorInfo]] = {}
    owner: dict[str, str] = {}
    for file in files:
        bare_vae = not any(k.startswith((DIT_PREFIX, "vae.", "audio_vae.", "vocoder.")) for k in file.keys())
        stray = []
        for key in file.keys():
            if _is_dropped(key) or key.startswith(IGNORED_PREFIXES):
                continue
            found = _component_of(key, bare_vae)
            if found is None:
                stray.append(key)
                continue
            component, theirs, ours = found
            part = f"{component} ({theirs})" if component == "text_path" else component
            if owner.setdefault(part, file.path) != file.path:
                raise CheckpointError(
                    f"{file.path}: holds {part} weights that {owner[part]} holds already; give each component once"
                )
            shape, dtype = file.tensors[key]
            if dtype in QUANTISED_DTYPES:
                raise CheckpointError(
                    f"{file.path}: {key} is stored as {dtype}, a quantised variant (such as -comfy-int8-convrot or "
                    "-nvfp4); only bf16/fp16/fp32 and fp8 (float8_e4m3fn, per-tensor scales) LTX-2 files load here"
                )
            info = TensorInfo(file, key, shape, dtype, _scale_key(file, key))
            indexes.setdefault(component, {})[ours + key[len(theirs) :]] = info
        if stray:
            raise CheckpointError(
                f"{file.path}: {len(stray)} unexpected keys outside the LTX-2 components, e.g. "
                f"{', '.join(sorted(stray)[:MAX_LISTED])}"
            )
    return indexes


def _file_version(file: SafetensorsFile, model) -> str | None:
    """The version a file states: its model_version metadata, else what its transformer keys say."""
    stated = str(file.metadata.get("model_version") or "")
    if stated.startswith("2."):
        return ".".join(stated.split(".")[:2])
    return model.version if "transformer" in model.components else None


def _section(files: list[SafetensorsFile], owner: str | None, name: str):
    """config[name] from the file `owner` when it has one, else from the first file that has it."""
    ordered = sorted(files, key=lambda f: f.path != owner)
    for file in ordered:
        config = file.config() or {}
        if isinstance(config.get(name), dict):
            return config[name]
    return None


def load_ltx2_checkpoint(
    paths, dtype: torch.dtype = torch.bfloat16, device="cpu", keep_fp8: bool = False
) -> LTX2Checkpoint:
    """Load LTX-2 weights: one monolith file (2.0/2.3), a diffusers folder, or a list/dict of split files (2.5:
    transformer, video VAE, audio VAE + vocoder, connectors). CheckpointError naming the file for anything else.
    keep_fp8: the transformer's fp8-stored linear weights stay fp8 (blocks.fp8.FP8Linear, the file's bytes with
    its per-tensor scale); default: every tensor is converted to `dtype` (see the module docstring)."""
    check_dtype(dtype, paths)
    names = _paths(paths)
    if len(names) == 1 and os.path.isdir(names[0]):
        from .ltx2_diffusers import load_ltx2_diffusers_folder

        return load_ltx2_diffusers_folder(names[0], dtype, device)
    files = [SafetensorsFile(p) for p in names]
    models = [detect_family(f) for f in files]
    for model in models:
        if model.family != "ltx2":
            hint = "; load it with load_checkpoint" if model.family == "ltxv" else ""
            raise CheckpointError(
                f"{model.path}: {model.description}; load_ltx2_checkpoint reads {FAMILY_NAMES['ltx2']} files{hint}"
            )
    versions = {m.path: v for f, m in zip(files, models) if (v := _file_version(f, m))}
    if len(set(versions.values())) > 1:
        listed = ", ".join(f"{p} is LTX-{v}" for p, v in versions.items())
        raise CheckpointError(f"mismatched LTX-2 files: {listed}; all files must come from one release")
    indexes = _split(files)
    owners = {c: next(iter(ix.values())).file.path for c, ix in indexes.items()}
    connectors = [v.file.path for k, v in indexes.get("text_path", {}).items() if k.startswith("video_connector.")]
    if connectors:
        owners["text_path"] = connectors[0]  # the file whose config["transformer"] describes the connectors
    model_version = next((str(f.metadata["model_version"]) for f in files if f.metadata.get("model_version")), None)

    def configured(component: str, what: str, make):
        """The config of a component the files hold (None if they do not), ValueErrors named."""
        if component not in indexes:
            return None
        try:
            return make(owners[component])
        except ValueError as e:
            if isinstance(e, CheckpointError):
                raise
            raise CheckpointError(f"{owners[component]}: the {what} config is not usable: {e}") from None

    transformer_file = next((f for f in files if f.path == owners.get("transformer")), None)
    transformer_section = ((transformer_file.config() or {}) if transformer_file else {}).get("transformer")
    transformer_config = configured("transformer", "LTX-2 transformer", lambda w: _transformer_config(
        transformer_section, {k: v.shape for k, v in indexes["transformer"].items()}, w))  # fmt: skip
    version = next(iter(set(versions.values())), None) or version_of(transformer_config)
    if version is None:
        raise CheckpointError(
            f"{', '.join(names)}: the LTX-2 version is told neither by a model_version metadata entry nor by "
            "transformer keys; give the transformer file too"
        )
    sections = {name: _section(files, owners.get(name), name) for name in ("vae", "audio_vae", "vocoder")}
    vae_config = configured("vae", "LTX-2 video VAE", lambda w: _vae_config(sections["vae"], w))
    audio_config = configured(
        "audio_vae", "LTX-2 audio VAE", lambda w: AudioVAEConfig.from_metadata(_need(sections, "audio_vae", w))
    )
    vocoder_config = configured("vocoder", "LTX-2 vocoder", lambda w: _need(sections, "vocoder", w))
    text_config = configured("text_path", "LTX-2 text connectors", lambda w: _text_config(files, indexes, w))
    check_pairs(owners, transformer_config, vae_config, audio_config, text_config)

    def filled(component: str, what: str, module, skip=frozenset(), defaults=None):
        index = {k: v for k, v in indexes[component].items() if k not in skip}
        return fill_module(module, index, dtype, device, f"{what} ({owners[component]})", defaults, skip=skip)

    transformer = video_vae = audio_vae = vocoder = text_path = None
    if transformer_config is not None:
        module = build_on_meta(LTX2Transformer, transformer_config)
        kept = keep_fp8_linears(module, indexes["transformer"], dtype, device) if keep_fp8 else set()
        transformer = filled("transformer", "LTX-2 transformer", module, kept)
    if vae_config is not None:
        module = build_on_meta(LTX2VideoVAE, vae_config)
        defaults = {k: v for k, v in module.state_dict().items() if k in UNUSED_STATISTICS}  # as built: unused
        video_vae = filled("vae", "LTX-2 video VAE", module, defaults=defaults)
    if audio_config is not None:
        unused = {k for k in indexes["audio_vae"] if k in UNUSED_STATISTICS}  # not in our (or ltx-core's) module
        indexes["audio_vae"] = {k: v for k, v in indexes["audio_vae"].items() if k not in unused}
        audio_vae = filled("audio_vae", "LTX-2 audio VAE", build_on_meta(AudioVAE, audio_config))
    if vocoder_config is not None:
        with parameters_on_meta():
            module = build_vocoder(vocoder_config)
        vocoder = filled("vocoder", "LTX-2 vocoder", module)
    text_keys = indexes.get("text_path", {})
    if text_config is not None and any(k.startswith("feature_extractor.") for k in text_keys):
        if any(k.startswith("video_connector.") for k in text_keys):  # else: the Gemma file completes it
            text_path = filled("text_path", "LTX-2 text connectors", build_on_meta(TextPath, text_config))
    for f in files:
        f.close()
    metadata = {k: v for k, v in (("transformer", transformer_section), *sections.items()) if v is not None}
    metadata["model_version"] = model_version or version + ".0"
    distilled = any("distilled" in os.path.basename(n).lower() for n in names)
    return LTX2Checkpoint(
        version, transformer_config, transformer, video_vae, audio_vae, vocoder, text_path, text_config,
        tuple(names), metadata, model_version, distilled,
    )  # fmt: skip


def _transformer_config(section: dict | None, shapes: dict, where: str) -> AVTransformerConfig:
    if section is None:
        return infer_transformer_config(shapes, where)
    try:
        video, audio = "patchify_proj.weight" in shapes, "audio_patchify_proj.weight" in shapes
        return AVTransformerConfig.from_metadata(section, video=video, audio=audio)
    except ValueError as e:
        raise CheckpointError(f"{where}: metadata config['transformer'] is not usable: {e}") from None


def _text_config(files: list[SafetensorsFile], indexes: dict, where: str) -> TextPathConfig:
    """The text path's config; connector fields only from the file holding the connectors (another file's config
    may describe another release)."""
    shapes = {k: v.shape for k, v in indexes["text_path"].items()}
    section = (next(f for f in files if f.path == where).config() or {}).get("transformer")
    projection = {k.split(".", 1)[1]: v for k, v in shapes.items() if k.startswith("feature_extractor.")}
    merged = {k: v for f in files for k, v in (f.config() or {}).items()}
    return text_path_config(section, shapes, gemma_geometry(merged, projection, where), where)


def _need(config: dict, name: str, where: str) -> dict:
    if config.get(name) is None:
        raise CheckpointError(
            f"{where}: holds {name} weights but no file gives metadata config['{name}'] (its architecture cannot be "
            "told from the tensor shapes); use the release's file, which carries the config"
        )
    return {name: config[name]}


def _vae_config(section: dict | None, where: str):
    section = _need({"vae": section}, "vae", where)["vae"]
    if section.get("_class_name") == "CausalDiffusionVAE":
        raise CheckpointError(
            f"{where}: this is the LTX-2.5 diffusion-decoder video VAE (CausalDiffusionVAE), which is not supported; "
            "use ltx-2.5-video-vae-conv (the convolutional decoder)"
        )
    return ltx2_vae_config(section)


def text_path_with_gemma(checkpoint: LTX2Checkpoint, gemma, dtype: torch.dtype = torch.bfloat16, device="cpu"):
    """The checkpoint's text path, completed for LTX-2.5 (and any release whose feature extractor sits in the
    Gemma file) with the text_embedding_projection.* tensors `gemma` (gemma.Gemma) carries."""
    if checkpoint.text_path is not None:
        return checkpoint.text_path
    if checkpoint.text_path_config is None:
        raise CheckpointError(f"{', '.join(checkpoint.paths)}: no text connectors in these files")
    if not getattr(gemma, "projection", None):
        raise CheckpointError(
            f"{', '.join(checkpoint.paths)}: the feature extractor (text_embedding_projection.*) is neither in these "
            f"files nor in the text encoder file {gemma.path}; use the LTX text encoder file that carries it"
        )
    from ..ltx2.text_encoder import load_text_path  # text_encoder imports this package

    files = [SafetensorsFile(p) for p in checkpoint.paths]
    return load_text_path(checkpoint.text_path_config, files, dtype, gemma.projection, device)


def check_text_encoder_pair(checkpoint: LTX2Checkpoint, gemma) -> None:
    """CheckpointError unless `gemma` (a loaded gemma.Gemma: family, path) is the text encoder the checkpoint's
    version needs: LTX-2.5 needs LTX's Gemma 4, 2.0/2.3 need Gemma 3 12B."""
    from ..ltx2.text_encoder import check_gemma_matches  # text_encoder imports this package

    check_gemma_matches({"model_version": checkpoint.version}, gemma, ", ".join(checkpoint.paths))
