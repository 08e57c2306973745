"""What a model file is, told from its tensor keys and metadata alone (nothing is read but the header).

`detect_family(path_or_header)` -> ModelFile: family ("ltxv" for LTX-Video 0.9.x, "ltx2" for LTX-2.x), version
where the file tells it, and the component kinds it holds. Files that are not LTX model weights (a latent
upsampler, a T5 or Gemma text encoder, a LoRA, another model family, a truncated file) raise CheckpointError naming
the file and what it is. `describe_keys(keys)` is the same judgement as one sentence, for error messages.

LTX-2 layouts (monolith 2.0/2.3: transformer under model.diffusion_model., video VAE under vae., audio VAE under
audio_vae., vocoder under vocoder., Gemma projection under text_embedding_projection.; 2.5: one file per
component) are told apart from LTX-Video 0.9.x by the audio/audio-video transformer keys, the audio VAE, the
vocoder and the text connectors, and by the metadata "model_version" / "config" entries when present.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .files import CheckpointError, SafetensorsFile, parse_config
from .ltxv_config import vae_generation, version_string

DIT_PREFIX = "model.diffusion_model."
VAE_PREFIX = "vae."
# ComfyUI's checkpoint saver also stores the text encoder; it is not part of our checkpoint and is skipped.
IGNORED_PREFIXES = ("text_encoders.", "cond_stage_model.", "conditioner.")
COMPONENTS = ("transformer", "vae", "audio_vae", "vocoder", "text_connectors")
FAMILY_NAMES = {"ltxv": "LTX-Video 0.9.x", "ltx2": "LTX-2"}

# LTX-2 transformer keys (prefix stripped): audio stream, audio-video cross attention, prompt AdaLN, 2.5 keyframes;
# official names and their diffusers spellings.
_LTX2_TRANSFORMER = re.compile(
    r"^(audio_adaln_single|audio_patchify_proj|audio_time_embed|audio_proj_in|av_ca_|av_cross_attn_|"
    r"prompt_adaln_single|keyframes_abs_pos_embedding|"
    r"transformer_blocks\.\d+\.(audio_attn1|audio_to_video_attn|video_to_audio_attn)\.)"
)
# Text connectors and Gemma feature projection, in the monolith (or beside the DiT)
_LTX2_CONNECTORS = re.compile(
    r"^(model\.diffusion_model\.)?((video_|audio_)?embeddings_connector\.|text_embedding_projection\.)"
)
_T5 = re.compile(r"(^|\.)encoder\.block\.\d+\.layer\.0\.SelfAttention\.q\.weight$")
_GEMMA = re.compile(r"(^|\.)(model\.|language_model\.)*layers\.\d+\.(self_attn\.q_proj|mlp\.gate_proj)\.weight$")


@dataclass(frozen=True)
class ModelFile:
    """What `detect_family` found. components: subset of COMPONENTS, in that order."""

    path: str
    family: str  # "ltxv" or "ltx2"
    version: str | None  # "0.9.0"/"0.9.1"/"0.9.5"/"0.9.7", "2.0"/"2.3"/"2.5"; None when the file does not tell
    components: tuple[str, ...]
    description: str  # one sentence: "this is an LTX-Video 0.9.5 checkpoint (transformer, vae)"

    def require(self, family: str | None = None, components: tuple[str, ...] = (), reader: str = "this loader"):
        """CheckpointError naming the file and what it is unless it is of `family` and holds `components`."""
        if family is not None and self.family != family:
            raise CheckpointError(f"{self.path}: {self.description}; {reader} reads {FAMILY_NAMES[family]} files")
        missing = [c for c in components if c not in self.components]
        if missing:
            raise CheckpointError(
                f"{self.path}: {self.description}; {reader} needs {' and '.join(missing)} weights in the file"
            )


@dataclass(frozen=True)
class _Kind:
    description: str
    family: str | None = None  # None: not LTX model weights (detect_family raises)
    version: str | None = None
    components: tuple[str, ...] = ()


def detect_family(source, name: str | None = None) -> ModelFile:
    """Family, version and components of a model file, from its header alone.

    source: a path, a SafetensorsFile, or a parsed safetensors header ({key: {"shape", "dtype", ...}} with an optional
    "__metadata__" entry; `name` then names it in messages). Raises CheckpointError naming the file for files that
    are not LTX model weights, truncated or corrupt files, pickles and GGUF files."""
    if isinstance(source, SafetensorsFile):
        where, keys, metadata = source.path, source.keys(), source.metadata
    elif isinstance(source, dict):
        where = name or "<safetensors header>"
        metadata = source.get("__metadata__") or {}
        keys = [k for k in source if k != "__metadata__"]
    else:
        file = SafetensorsFile(os.fspath(source))
        where, keys, metadata = file.path, file.keys(), file.metadata
    kind = classify(keys, metadata, where)
    if kind.family is None:
        raise CheckpointError(f"{where}: {kind.description}")
    return ModelFile(where, kind.family, kind.version, kind.components, kind.description)


def describe_keys(keys: list[str], metadata: dict | None = None) -> str:
    """A short human description of what kind of model a list of state-dict keys belongs to."""
    return classify(keys, metadata or {}, "the file").description


def classify(keys: list[str], metadata: dict, where: str) -> _Kind:
    keys = [k for k in keys if not k.startswith(IGNORED_PREFIXES)] or list(keys)
    joined = "\n".join(keys)

    def has(pattern: str) -> bool:
        return re.search(pattern, joined, re.M) is not None

    if any(_T5.search(k) for k in keys) or has(r"^(.*\.)?shared\.weight$") and has(r"encoder\.block\.\d+\."):
        return _Kind(
            "this is a T5 text encoder file, not an LTX-Video checkpoint; put it in models/text_encoders "
            "and load it with the VideoDiT Text Encoder Loader node"
        )
    if any(_GEMMA.search(k) for k in keys) and not has(r"^model\.diffusion_model\."):
        projection = " with the LTX-2.5 text projection" if has(r"^text_embedding_projection\.") else ""
        return _Kind(
            f"this is a Gemma text encoder file{projection} (the LTX-2 text encoder), not a checkpoint; "
            "put it in models/text_encoders"
        )
    if has(r"^initial_conv\.weight$") and has(r"^upsampler\.(0|conv)\.weight$"):
        return _Kind(
            "this is an LTX latent upsampler file, not a checkpoint; put it in models/latent_upscale_models for the "
            "VideoDiT Latent Upsample node (from Python: videodit.model.checkpoint.load_latent_upsampler(path))"
        )
    if has(r"\.(lora_A|lora_B|lora_down|lora_up)\.weight$") or has(r"\.(lokr_w1|lokr_w1_a|hada_w1_a)$"):
        return _Kind("this is a LoRA file (lora_A/lora_B, lora_down/lora_up or LyCORIS keys), not a checkpoint")
    ltx2 = _ltx2_kind(keys, metadata, has, where)
    if ltx2 is not None:
        return ltx2
    ltxv = _ltxv_kind(keys, has)
    if ltxv is not None:
        return ltxv
    if has(r"double_blocks\.\d+\."):
        return _Kind("this is a Flux/HunyuanVideo-style checkpoint (double_blocks.*), not LTX-Video")
    if has(r"joint_blocks\.\d+\."):
        return _Kind("this is a Stable Diffusion 3 checkpoint (joint_blocks.*), not LTX-Video")
    if has(r"input_blocks\.\d+\.") or has(r"^first_stage_model\."):
        return _Kind("this is a Stable Diffusion (1.x/2.x/XL UNet) checkpoint, not LTX-Video")
    if has(r"^blocks\.\d+\.(self_attn|cross_attn)\."):
        return _Kind("this is a Wan-style video model, not LTX-Video")
    return _Kind(
        f"not an LTX-Video or LTX-2 model file: unrecognised keys ({len(keys)} tensors, first keys: "
        f"{', '.join(sorted(keys)[:3])})"
    )


# ---------------------------------------------------------------------------------------------------------------
# LTX-2


def _ltx2_kind(keys: list[str], metadata: dict, has, where: str) -> _Kind | None:
    config = parse_config(metadata, where) or {}
    model_version = str(metadata.get("model_version", ""))
    vae_class = (config.get("vae") or {}).get("_class_name") if isinstance(config.get("vae"), dict) else None
    dit = [k[len(DIT_PREFIX) :] if k.startswith(DIT_PREFIX) else k for k in keys]
    transformer = any(_LTX2_TRANSFORMER.match(k) for k in dit)
    components = {
        "transformer": transformer,
        "vae": has(r"^vae\.(encoder|decoder)\."),
        "audio_vae": has(r"^audio_vae\."),
        "vocoder": has(r"^vocoder\."),
        "text_connectors": any(_LTX2_CONNECTORS.match(k) for k in keys),
    }
    by_metadata = model_version.startswith("2.") or "audio_vae" in config or vae_class == "CausalDiffusionVAE"
    by_keys = transformer or components["audio_vae"] or components["vocoder"] or components["text_connectors"]
    if not (by_metadata or by_keys):
        return None  # the video VAE alone is the same layout in both families
    if by_metadata and not any(components.values()) and has(r"^(encoder|decoder)\."):
        components["vae"] = True  # 2.5 split video VAE: bare encoder.*/decoder.* keys
    present = tuple(c for c in COMPONENTS if components[c])
    version = _ltx2_version(dit, keys, config, model_version, vae_class)
    name = f"LTX-{version}" if version else "LTX-2 (version not told by its keys or metadata)"
    if present == ("transformer",):
        split = " (a split release's diffusion_models/ file)" if version == "2.5" else ""
        what = f"a transformer-only {name} file{split}"
    elif "transformer" in present:
        what = f"an {name} checkpoint"
    else:
        what = f"an {name} component file"
    return _Kind(f"this is {what} ({', '.join(present) or 'no known components'})", "ltx2", version, present)


def _ltx2_version(dit: list[str], keys: list[str], config: dict, model_version: str, vae_class) -> str | None:
    """2.0 / 2.3 / 2.5 from metadata "model_version", then the transformer config, then the keys."""
    found = re.match(r"2\.(\d+)", model_version)
    if found:
        return f"2.{found.group(1)}"
    transformer = config.get("transformer") if isinstance(config.get("transformer"), dict) else {}
    if transformer.get("use_keyframes_abs_pos_embedding") or vae_class == "CausalDiffusionVAE":
        return "2.5"
    if any(k == "keyframes_abs_pos_embedding" for k in dit):
        return "2.5"
    joined = "\n".join(keys)
    if transformer.get("apply_gated_attention") or transformer.get("cross_attention_adaln"):
        return "2.3"
    v2_markers = (
        r"^text_embedding_projection\.(video|audio)_aggregate_embed\.",
        r"\.to_gate_logits\.weight$",
        r"(^|\.)prompt_scale_shift_table$",
    )
    if any(re.search(p, joined, re.M) for p in v2_markers):
        return "2.3"  # 22B without the 2.5 keyframe embedding (the 2.3+ vocoder alone does not tell 2.3 from 2.5)
    v1_markers = (r"^text_embedding_projection\.aggregate_embed\.", r"^vocoder\.conv_pre\.")
    if any(re.search(p, joined, re.M) for p in v1_markers) or any(k.startswith("caption_projection.") for k in dit):
        return "2.0"  # 19B: Gemma features projected once, caption projection in the transformer, HiFi-GAN vocoder
    return None


# ---------------------------------------------------------------------------------------------------------------
# LTX-Video 0.9.x


def _ltxv_kind(keys: list[str], has) -> _Kind | None:
    dit = has(r"^model\.diffusion_model\.transformer_blocks\.\d+\.attn1\.to_q\.weight$")
    vae = has(r"^vae\.decoder\.")
    layers = {
        int(m.group(1)) for k in keys if (m := re.match(r"model\.diffusion_model\.transformer_blocks\.(\d+)\.", k))
    }
    vae_keys = {k[len(VAE_PREFIX) :]: () for k in keys if k.startswith(VAE_PREFIX)}
    if dit and vae:
        version = version_string(vae_generation(vae_keys), len(layers))
        return _Kind(
            f"this is an LTX-Video {version} checkpoint (model.diffusion_model.* and vae.* keys)",
            "ltxv",
            version,
            ("transformer", "vae"),
        )
    if dit:
        version = "0.9.7" if len(layers) == 48 else None  # the 13B; the 2B versions differ in their VAE only
        return _Kind(
            "this is a transformer-only LTX-Video file (model.diffusion_model.* keys, no vae.* keys)",
            "ltxv",
            version,
            ("transformer",),
        )
    bare_vae = has(r"^decoder\.up_blocks\.\d+\.") and has(r"^encoder\.down_blocks\.\d+\.")
    if vae or bare_vae:
        if bare_vae and not vae:
            vae_keys = dict.fromkeys(keys, ())
        generation = vae_generation(vae_keys)
        label = ("0.9.0", "0.9.1", "0.9.5 or later")[generation]
        return _Kind(
            f"this is a VAE-only LTX-Video file (the VAE of LTX-Video {label}; no transformer keys "
            "model.diffusion_model.*)",
            "ltxv",
            ("0.9.0", "0.9.1", "0.9.5")[generation],
            ("vae",),
        )
    if has(r"^(transformer\.)?proj_in\.weight$") and has(r"^(transformer\.)?time_embed\."):
        return _Kind(
            "this is a diffusers-format LTX-Video transformer file (proj_in.*, time_embed.* keys) without its VAE "
            "and config; point the loader at the diffusers folder that holds transformer/ and vae/, or use the "
            "official single-file checkpoint",
            "ltxv",
            None,
            ("transformer",),
        )
    if has(r"^transformer_blocks\.\d+\.attn1\.to_q\.weight$") and has(r"^patchify_proj\.weight$"):
        return _Kind(
            "this is a transformer-only LTX-Video file without prefixes (a diffusion_models/ file, no VAE); "
            "the full single-file checkpoint with model.diffusion_model.* and vae.* keys is needed",
            "ltxv",
            None,
            ("transformer",),
        )
    return None
