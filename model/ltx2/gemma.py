"""Gemma for LTX-2: loading the text model (transformers' own classes) and its tokenizer, running it on the GPU
only while encoding.

Families: Gemma 3 12B (LTX-2.0/2.3, config model_type "gemma3") and the LTX fine-tune of Gemma 4 12B (LTX-2.5,
"gemma4_unified"). Only the language model is built (transformers' Gemma3TextModel / Gemma4UnifiedTextModel); the
vision/audio towers and lm_head in the files are skipped: LTX-2 uses the hidden states of every layer.

Files read by `load_gemma`:
  * one safetensors file as ComfyUI users keep it in models/text_encoders: text keys under "model." (Comfy-flat
    model.layers.*, model.embed_tokens.*, model.norm.*), "model.language_model." or "language_model.model."
    (HF releases); bf16/fp16/fp32, fp8 (e4m3fn/e5m2), ComfyUI scaled fp8 (scale_weight) and ComfyUI's mixed
    quantisation (per-layer "<layer>.comfy_quant" + "<layer>.weight_scale") when the layers are fp8; other
    mixed formats (nvfp4, int8, ...) are refused with a message naming them. The config comes from the metadata
    "gemma_config" (LTX-2.5 packed files) or "config", else (Gemma 3 only) from the tensor shapes.
  * a Hugging Face folder: config.json + model*.safetensors (sharded or not).
Weights are filled tensor by tensor into a model built on the meta device (checkpoint.fill_module).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerFast

from ..checkpoint import (
    CheckpointError,
    SafetensorsFile,
    TensorInfo,
    build_index,
    check_dtype,
    fill_module,
    parameters_on_meta,
    read_json,
)
from ..streaming import module_bytes, plan_resident_blocks, stream_blocks

logger = logging.getLogger(__name__)

# text-config model_type -> (family, Hugging Face repository whose cached tokenizer is tried last)
FAMILIES = {
    "gemma3_text": ("gemma3", "google/gemma-3-12b-it"),
    "gemma4_unified_text": ("gemma4_unified", "Lightricks/LTX-2.5"),
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
PROJECTION_PREFIX = "text_embedding_projection."  # LTX feature-extractor weights some Gemma files carry
TOKENIZER_TENSORS = ("tokenizer_json", "spiece_model")
QUANT_SUFFIXES = (".comfy_quant", ".weight_scale", ".weight_scale_2", ".input_scale")
FP8_FORMATS = ("float8_e4m3fn", "float8_e5m2")
ACTIVATION_RESERVE = 2 * 2**30  # GPU bytes kept free for Gemma's activations when planning streaming
# Gemma 3 12B as LTX-2 uses it (ltx-core text_encoders/gemma/config.py); fields the tensor shapes do not give.
GEMMA3_LTX_DEFAULTS = {
    "rope_parameters": {
        "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
    },
    "sliding_window": 1024,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-6,
    "hidden_activation": "gelu_pytorch_tanh",
}
GEMMA3_SLIDING_PATTERN = 6  # five sliding-window layers, then one global


@dataclass
class Gemma:
    """A loaded Gemma text model. `projection`: the LTX feature-extractor tensors found beside Gemma in the file
    (keys without PROJECTION_PREFIX), for the text path to load."""

    model: nn.Module
    tokenizer: object
    family: str  # "gemma3" or "gemma4_unified"
    path: str
    storage: str  # how the weights were stored, e.g. "bf16", "fp8", "mixed fp8 (comfy_quant)"
    projection: dict[str, TensorInfo] = field(default_factory=dict)

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def num_states(self) -> int:
        """Hidden states per call: the embeddings plus one per layer."""
        return self.model.config.num_hidden_layers + 1

    def hidden_states(self, ids: torch.Tensor, mask: torch.Tensor, device=None, resident: int | None = None):
        """Every hidden state (embeddings + each layer), each (B, T, D), on `device`.

        The model stays on the CPU between calls. With a CUDA `device` it moves there for this call only, all at
        once when it fits in free memory, else block by block (model/streaming.py; `resident` forces streaming
        with that many blocks on the device, also on the CPU for tests)."""
        device = torch.device(device or "cpu")
        ids, mask = ids.to(device), mask.to(device)
        layers = self.model.layers
        if resident is None and device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            other = module_bytes(self.model) - sum(module_bytes(b) for b in layers)
            resident = plan_resident_blocks(layers, free, ACTIVATION_RESERVE, other)
        streamer = None
        try:
            if resident is not None:
                streamer = stream_blocks(self.model, layers, device, resident)
            elif device.type != "cpu":
                self.model.to(device)
            with torch.no_grad():
                out = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
            return out.hidden_states
        finally:
            if streamer is not None:
                streamer.remove()
            self.model.to("cpu")


# ---------------------------------------------------------------------------------------------------------------
# What a file holds


def gemma_prefix(keys) -> str | None:
    """The prefix in front of the language model's keys, or None when the keys hold no Gemma language model."""
    present = set(keys)
    for key in present:
        if key.endswith("embed_tokens.weight"):
            prefix = key[: -len("embed_tokens.weight")]
            if f"{prefix}layers.0.input_layernorm.weight" in present and (
                f"{prefix}layers.0.pre_feedforward_layernorm.weight" in present
            ):
                return prefix
    return None


def is_gemma_file(keys) -> bool:
    """True when state-dict keys hold a Gemma (3 or 4) language model: a text encoder, not an LTX checkpoint."""
    return gemma_prefix(keys) is not None


def describe_gemma(keys) -> str:
    """What a Gemma file is, for the error a checkpoint loader raises when it is given one."""
    prefix = gemma_prefix(keys)
    family = "Gemma 4" if f"{prefix}layers.0.layer_scalar" in set(keys) else "Gemma 3"
    return (
        f"this is a {family} text encoder file (the LTX-2 text encoder), not an LTX-2 checkpoint; put it in "
        "models/text_encoders and load it with the LTX-2 text encoder loader"
    )


# ---------------------------------------------------------------------------------------------------------------
# Config


def _text_config(config_dict: dict, where: str):
    model_type = config_dict.get("model_type")
    try:
        config = AutoConfig.for_model(**config_dict)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{where}: Gemma config with model_type {model_type!r} is not usable ({e})") from None
    text = getattr(config, "text_config", None) or config
    if text.model_type not in FAMILIES:
        supported = ", ".join(FAMILIES)
        raise CheckpointError(
            f"{where}: Gemma model_type {model_type!r} (text {text.model_type!r}) is not an LTX-2 text encoder; "
            f"supported text models: {supported} (Gemma 3 12B for LTX-2.0/2.3, LTX's Gemma 4 for LTX-2.5)"
        )
    return text


def infer_gemma3_config(shapes: dict[str, tuple], where: str):
    """Gemma 3 text config from the language-model shapes (no prefix) + the LTX Gemma 3 12B constants."""
    from transformers import Gemma3TextConfig

    if "layers.0.layer_scalar" in shapes:
        raise CheckpointError(
            f"{where}: this Gemma 4 file has no 'gemma_config' metadata, and a Gemma 4 config cannot be read from "
            "the tensor shapes; use the LTX-2.5 text encoder file (it carries the config) or an HF folder"
        )
    head_dim = shapes["layers.0.self_attn.q_norm.weight"][0]
    layers = len({int(m.group(1)) for k in shapes if (m := re.match(r"layers\.(\d+)\.", k))})
    return Gemma3TextConfig(
        vocab_size=shapes["embed_tokens.weight"][0],
        hidden_size=shapes["embed_tokens.weight"][1],
        intermediate_size=shapes["layers.0.mlp.gate_proj.weight"][0],
        num_hidden_layers=layers,
        num_attention_heads=shapes["layers.0.self_attn.q_proj.weight"][0] // head_dim,
        num_key_value_heads=shapes["layers.0.self_attn.k_proj.weight"][0] // head_dim,
        head_dim=head_dim,
        query_pre_attn_scalar=head_dim,
        layer_types=[
            "full_attention" if (i + 1) % GEMMA3_SLIDING_PATTERN == 0 else "sliding_attention" for i in range(layers)
        ],
        **GEMMA3_LTX_DEFAULTS,
    )


# ---------------------------------------------------------------------------------------------------------------
# Weights


def _quant_formats(file: SafetensorsFile) -> dict[str, str]:
    """ComfyUI mixed quantisation: layer name -> format, from "<layer>.comfy_quant" tensors or the metadata."""
    formats = {}
    raw = file.metadata.get("_quantization_metadata")
    if raw:
        try:
            layers = json.loads(raw).get("layers", {})
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{file.path}: metadata '_quantization_metadata' is not valid JSON ({e})") from None
        formats.update({layer: info.get("format", "?") for layer, info in layers.items()})
    for key in file.keys():
        if key.endswith(".comfy_quant"):
            blob = bytes(file.get(key).to(torch.uint8).tolist())
            try:
                formats[key[: -len(".comfy_quant")]] = json.loads(blob).get("format", "?")
            except (json.JSONDecodeError, UnicodeDecodeError):
                formats[key[: -len(".comfy_quant")]] = "unreadable"
    return formats


def _text_index(file: SafetensorsFile, prefix: str, top_level: set[str]) -> tuple[dict, dict, str]:
    """-> (language-model index, LTX projection index, storage description) for one file."""
    formats = _quant_formats(file)
    unsupported = sorted({f for f in formats.values() if f not in FP8_FORMATS})
    if unsupported:
        raise CheckpointError(
            f"{file.path}: this Gemma file uses ComfyUI's mixed quantisation with format(s) {', '.join(unsupported)} "
            f"(a variant such as gemma_3_12B_it_fp4_mixed); only its fp8 variant ({', '.join(FP8_FORMATS)}) is "
            "supported here. Use the bf16 or fp8 Gemma file"
        )
    index = {}
    for key, info in build_index(file, prefix).items():
        if key.split(".", 1)[0] not in top_level or key.endswith(QUANT_SUFFIXES):
            continue
        layer = prefix + key[: -len(".weight")] if key.endswith(".weight") else None
        if layer in formats:
            scale = layer + ".weight_scale"
            if scale not in file.tensors or len([d for d in file.tensors[scale][0] if d != 1]) > 0:
                raise CheckpointError(f"{file.path}: {layer} is fp8 without a per-tensor {scale}")
            info.scale_key = scale
        index[key] = info
    projection = build_index(file, PROJECTION_PREFIX)  # keys without the prefix
    dtypes = sorted({info.dtype for info in index.values()})
    if formats:
        storage = "mixed fp8 (comfy_quant)"
    elif any(info.scale_key for info in index.values()):
        storage = "scaled fp8"
    else:
        storage = "+".join(d.lower() for d in dtypes)
    return index, projection, storage


def _empty_model(text_config) -> nn.Module:
    """transformers' language model for `text_config`, parameters on meta (buffers computed as usual)."""
    with parameters_on_meta():
        return AutoModel.from_config(text_config)


def _top_level(model: nn.Module) -> set[str]:
    """Names of the model's top-level children that hold tensors (embed_tokens, layers, norm, ...)."""
    return {k.split(".", 1)[0] for k in model.state_dict()}


def load_gemma_file(path: str, dtype, device) -> tuple[nn.Module, str, dict, SafetensorsFile]:
    file = SafetensorsFile(path)
    prefix = gemma_prefix(file.keys())
    if prefix is None:
        raise CheckpointError(f"{path}: no Gemma language model in this file (no embed_tokens + layers.N keys)")
    raw = file.metadata.get("gemma_config") or file.metadata.get("config")
    if raw:
        try:
            text_config = _text_config(json.loads(raw), path)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{path}: metadata Gemma config is not valid JSON ({e})") from None
    else:
        shapes = {k[len(prefix) :]: v[0] for k, v in file.tensors.items() if k.startswith(prefix)}
        text_config = infer_gemma3_config(shapes, path)
    model = _empty_model(text_config)
    index, projection, storage = _text_index(file, prefix, _top_level(model))
    fill_module(model, index, dtype, device, f"Gemma language model ({path})")
    return model, storage, projection, file


def load_gemma_folder(folder: str, dtype, device) -> tuple[nn.Module, str, dict]:
    text_config = _text_config(read_json(os.path.join(folder, "config.json")), folder)
    names = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))
    if not names:
        raise CheckpointError(f"{folder}: no .safetensors weights for Gemma (pickle weights are refused)")
    model = _empty_model(text_config)
    top_level = _top_level(model)
    index, projection, storages = {}, {}, set()
    for name in names:
        file = SafetensorsFile(os.path.join(folder, name))
        prefix = gemma_prefix(file.keys())
        if prefix is None:  # a shard without the embedding: find the prefix from its layer keys
            prefix = next((k.split("layers.")[0] for k in file.keys() if ".layers." in f".{k}"), "")
        part, proj, storage = _text_index(file, prefix, top_level)
        index.update(part)
        projection.update(proj)
        storages.add(storage)
    fill_module(model, index, dtype, device, f"Gemma language model ({folder})")
    return model, "+".join(sorted(storages)), projection


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer


def _embedded_tokenizer(file: SafetensorsFile):
    """A tokenizer stored inside the file: LTX-2.5 packs (tokenizer_json + hf_asset__tokenizer_config.json) or
    ComfyUI files (spiece_model, the sentencepiece model). None when the file holds neither."""
    from tokenizers import Tokenizer

    if "tokenizer_json" in file.tensors:
        blob = bytes(file.get("tokenizer_json").to(torch.uint8).tolist())
        kwargs = {}
        if "hf_asset__tokenizer_config.json" in file.tensors:
            raw = bytes(file.get("hf_asset__tokenizer_config.json").to(torch.uint8).tolist())
            skip = {"tokenizer_class", "auto_map", "model_max_length", "added_tokens_decoder", "processor_class"}
            kwargs = {k: v for k, v in json.loads(raw).items() if k not in skip}
        return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(blob.decode()), **kwargs)
    if "spiece_model" in file.tensors:
        from transformers import GemmaTokenizer

        try:
            has_protobuf = importlib.util.find_spec("google.protobuf") is not None
        except ModuleNotFoundError:
            has_protobuf = False
        if not has_protobuf:
            # without protobuf, transformers cannot read a sentencepiece model and silently builds an empty one
            raise ImportError(
                "its spiece_model (a sentencepiece model) needs the protobuf package: pip install protobuf"
            )

        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "tokenizer.model"), "wb") as f:
                f.write(bytes(file.get("spiece_model").to(torch.uint8).tolist()))
            return GemmaTokenizer.from_pretrained(folder)
    return None


def tokenizer_places(path: str, tokenizer_dir: str | None) -> list[str]:
    """Folders to try, in order: the argument, then beside the weights."""
    places = [tokenizer_dir] if tokenizer_dir else []
    if os.path.isdir(path):
        parent = os.path.dirname(path.rstrip("/"))
        places += [os.path.join(path, "tokenizer"), path, os.path.join(parent, "tokenizer")]
    else:
        stem = path[: -len(".safetensors")] if path.endswith(".safetensors") else path
        places += [path + ".tokenizer", stem + ".tokenizer", os.path.join(os.path.dirname(path), "tokenizer")]
    return list(dict.fromkeys(places))


def load_tokenizer(path: str, family: str, file: SafetensorsFile | None, tokenizer_dir: str | None = None):
    """First tokenizer found in: tokenizer_dir, the file itself, the folders beside the weights, the Hugging Face
    cache (never downloaded). Left padding, pad = eos when the tokenizer has no pad token. Raises
    FileNotFoundError listing every place looked and why it did not serve."""
    tried = []

    def finish(tokenizer):
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    places = tokenizer_places(path, tokenizer_dir)
    if tokenizer_dir:
        places = places[:1] + ["<file>"] + places[1:]
    else:
        places = ["<file>"] + places
    for place in places:
        if place == "<file>":
            if file is None:
                continue
            try:
                tokenizer = _embedded_tokenizer(file)
            except Exception as e:  # noqa: BLE001 - reported below
                tried.append(f"inside {path} ({type(e).__name__}: {str(e)[:120]})")
                continue
            if tokenizer is not None:
                return finish(tokenizer)
            tried.append(f"inside {path} (no tokenizer_json or spiece_model tensor)")
            continue
        if not os.path.isdir(place):
            tried.append(f"{place} (no such folder)")
        elif not any(os.path.isfile(os.path.join(place, n)) for n in TOKENIZER_FILES):
            tried.append(f"{place} (has no {' or '.join(TOKENIZER_FILES)})")
        else:
            try:
                return finish(AutoTokenizer.from_pretrained(place, local_files_only=True))
            except Exception as e:  # noqa: BLE001
                tried.append(f"{place} ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})")
    hub = dict(FAMILIES.values())[family]
    try:
        return finish(AutoTokenizer.from_pretrained(hub, local_files_only=True))
    except Exception as e:  # noqa: BLE001
        tried.append(f"{hub} in the Hugging Face cache ({type(e).__name__})")
    raise FileNotFoundError(
        f"{path}: no Gemma tokenizer found. Looked in:\n  "
        + "\n  ".join(tried)
        + "\nPass tokenizer_dir=<folder with tokenizer.json or tokenizer.model>, or put such a folder beside the "
        f"weights as {os.path.basename(path.rstrip('/'))}.tokenizer/"
    )


def load_gemma(path, dtype: torch.dtype = torch.bfloat16, tokenizer_dir: str | None = None) -> Gemma:
    """Gemma weights (single file or HF folder) + tokenizer -> Gemma, on the CPU (see Gemma.hidden_states)."""
    check_dtype(dtype, path)
    path = str(path)
    file = None
    if os.path.isdir(path):
        weights = os.path.join(path, "text_encoder") if os.path.isdir(os.path.join(path, "text_encoder")) else path
        model, storage, projection = load_gemma_folder(weights, dtype, "cpu")
    else:
        model, storage, projection, file = load_gemma_file(path, dtype, "cpu")
    family = FAMILIES[model.config.model_type][0]
    tokenizer = load_tokenizer(path, family, file, tokenizer_dir)
    if file is not None:
        file.close()
    if len(tokenizer) > model.config.vocab_size:
        raise CheckpointError(
            f"{path}: the tokenizer has {len(tokenizer)} tokens but the Gemma embedding only "
            f"{model.config.vocab_size}; wrong tokenizer for these weights"
        )
    logger.info("Gemma %s from %s (%s)", family, path, storage)
    return Gemma(model, tokenizer, family, path, storage, projection)
