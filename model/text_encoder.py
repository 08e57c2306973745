"""T5 text encoder (encoder only) for LTX-Video: loading from the files ComfyUI users keep, tokenizer lookup, encoding.

Files read by `load_text_encoder`:
  * one safetensors file in the layout ComfyUI keeps t5xxl in (models/text_encoders or models/clip): keys
    `encoder.block.N.layer...`, `encoder.final_layer_norm.weight`, `shared.weight`, possibly under a prefix such as
    `text_encoders.t5xxl.transformer.`; fp32/fp16/bf16 or fp8 (e4m3fn/e5m2, also ComfyUI's scaled fp8). The T5
    config comes from the metadata "config" (what `save_text_encoder` writes) or is inferred from the shapes.
  * a Hugging Face / diffusers folder: config.json + model*.safetensors (sharded or not), or a diffusers pipeline
    folder holding text_encoder/ and tokenizer/.
Weights are filled tensor by tensor into a model built on the meta device (checkpoint/fill.py), never unpickled.

Encoding follows the official pipeline: prompt.strip(), EOS appended, padded to max_tokens, truncated at
max_tokens, attention mask passed to T5; the output is T5's last hidden state (after the final RMSNorm).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re

import torch
from transformers import AutoTokenizer, ByT5Tokenizer, T5Config, T5EncoderModel

from .checkpoint.files import CheckpointError, SafetensorsFile, TensorInfo, check_dtype, read_json, save_safetensors
from .checkpoint.fill import build_index, fill_module, parameters_on_meta
from .checkpoint.keys import describe_keys
from .sampling import TextCondition

logger = logging.getLogger(__name__)

# Official LTX-Video pipeline: 256 tokens since 0.9.5 (LTXV@7360d94, 2025-03-03), 128 for 0.9.0/0.9.1.
DEFAULT_MAX_TOKENS = 256
HUB_TOKENIZER = "google/t5-v1_1-xxl"
TOKENIZER_FILES = ("tokenizer.json", "spiece.model")
BYTE_VOCAB_SIZE = 384  # ByT5: 3 special tokens + 256 bytes + 125 sentinel ids
T5_ANCHOR = "encoder.block.0.layer.0.SelfAttention.q.weight"
# Config fields written by save_text_encoder / read from metadata.
CONFIG_FIELDS = (
    "vocab_size",
    "d_model",
    "d_kv",
    "d_ff",
    "num_layers",
    "num_heads",
    "relative_attention_num_buckets",
    "relative_attention_max_distance",
    "layer_norm_epsilon",
    "feed_forward_proj",
    "pad_token_id",
    "eos_token_id",
)


def max_tokens_for_version(version: str | None) -> int:
    """Official prompt length: 128 tokens for 0.9.0/0.9.1 checkpoints, 256 for 0.9.5 and later."""
    return 128 if version in ("0.9.0", "0.9.1") else DEFAULT_MAX_TOKENS


class TextEncoder:
    """T5 encoder + tokenizer. encode(prompts) -> TextCondition(embeddings (B, max_tokens, d_model), mask (B, L))."""

    def __init__(self, model: T5EncoderModel, tokenizer, max_tokens: int = DEFAULT_MAX_TOKENS, path: str = ""):
        if max_tokens < 1:
            raise ValueError(f"TextEncoder: max_tokens must be >= 1, got {max_tokens}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.path = path

    @property
    def device(self) -> torch.device:
        return self.model.shared.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.shared.weight.dtype

    @property
    def width(self) -> int:
        return self.model.config.d_model

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> input ids (B, max_tokens) and attention mask (B, max_tokens), 1 = token, 0 = padding."""
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise TypeError(f"TextEncoder.encode: prompts must be a list of strings, got {prompts!r:.80}")
        prompts = [p.strip() for p in prompts]
        batch = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.max_tokens,
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
        )
        for prompt, mask in zip(prompts, batch["attention_mask"]):
            if mask[-1] and len(self.tokenizer(prompt, add_special_tokens=True)["input_ids"]) > self.max_tokens:
                logger.warning("prompt truncated to %d tokens: %r", self.max_tokens, prompt[:80])
        return batch["input_ids"], batch["attention_mask"]

    def encode(self, prompts: list[str]) -> TextCondition:
        ids, mask = self.tokenize(prompts)
        ids, mask = ids.to(self.device), mask.to(self.device)
        with torch.no_grad():
            embeddings = self.model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, d_model)
        return TextCondition(embeddings=embeddings, mask=mask)


# ---------------------------------------------------------------------------------------------------------------
# Weights


def find_t5_prefix(keys: list[str]) -> str | None:
    """The prefix in front of the T5 keys ("" for ComfyUI's t5xxl files), or None when the keys are not T5."""
    for key in keys:
        if key.endswith(T5_ANCHOR):
            return key[: -len(T5_ANCHOR)]
    return None


def infer_t5_config(shapes: dict[str, tuple]) -> dict:
    """T5 config fields from encoder key shapes (no prefix). Gated-GELU (T5 v1.1) when wi_0/wi_1 exist, else ReLU."""
    embed = shapes.get("shared.weight") or shapes["encoder.embed_tokens.weight"]
    bias = shapes["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    heads = bias[1]
    gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in shapes
    wi = "wi_0" if gated else "wi"
    return {
        "vocab_size": embed[0],
        "d_model": embed[1],
        "d_kv": shapes["encoder.block.0.layer.0.SelfAttention.q.weight"][0] // heads,
        "d_ff": shapes[f"encoder.block.0.layer.1.DenseReluDense.{wi}.weight"][0],
        "num_layers": len({int(m.group(1)) for k in shapes if (m := re.match(r"encoder\.block\.(\d+)\.", k))}),
        "num_heads": heads,
        "relative_attention_num_buckets": bias[0],
        "relative_attention_max_distance": 128,
        "layer_norm_epsilon": 1e-6,
        "feed_forward_proj": "gated-gelu" if gated else "relu",
        "pad_token_id": 0,
        "eos_token_id": 1,
    }


def _t5_config(fields: dict) -> T5Config:
    fields = {k: v for k, v in fields.items() if k in CONFIG_FIELDS}
    return T5Config(**fields, is_encoder_decoder=False, use_cache=False)


def _fill_t5(index: dict[str, TensorInfo], config: T5Config, dtype: torch.dtype, device, where: str):
    """Build T5EncoderModel on meta and fill it; the embedding is stored once and tied (shared = embed_tokens)."""
    if "shared.weight" not in index and "encoder.embed_tokens.weight" in index:
        index["shared.weight"] = index["encoder.embed_tokens.weight"]
    index.pop("encoder.embed_tokens.weight", None)
    with parameters_on_meta():
        model = T5EncoderModel(config)
    model.encoder.embed_tokens = model.shared  # tied: one module, filled once through shared.weight
    # HF keeps the FF output projections of T5 in fp32 under fp16 (activations overflow otherwise)
    keep_fp32 = set(getattr(model, "_keep_in_fp32_modules", None) or ()) if dtype == torch.float16 else set()

    def dtype_for(key: str) -> torch.dtype:
        return torch.float32 if any(f".{name}." in f".{key}" for name in keep_fp32) else dtype

    try:
        fill_module(
            model,
            index,
            dtype,
            device,
            f"T5 text encoder ({where})",
            dtype_for=dtype_for,
            skip={"encoder.embed_tokens.weight"},
        )
    except CheckpointError as e:
        raise CheckpointError(
            str(e).replace(
                "the model built from its config",
                f"a T5 encoder with config { {k: getattr(config, k) for k in CONFIG_FIELDS[:6]} }",
            )
        ) from None
    return model.eval()


def load_t5_file(path: str, dtype, device) -> tuple[T5EncoderModel, dict]:
    """One safetensors file (ComfyUI layout) -> (model, metadata dict)."""
    file = SafetensorsFile(path)
    keys = file.keys()
    prefix = find_t5_prefix(keys)
    if prefix is None:
        raise CheckpointError(f"{path}: not a T5 text encoder file (no {T5_ANCHOR}); " + describe_keys(keys))
    index = build_index(file, prefix)
    index.pop("spiece_model", None)  # some ComfyUI files embed the sentencepiece model bytes
    config_json = file.config()
    metadata = {**(config_json or {}), **file.metadata}  # tokenizer / max_tokens may sit in either
    fields = config_json if config_json else infer_t5_config({k: v.shape for k, v in index.items()})
    model = _fill_t5(index, _t5_config(fields), dtype, device, path)
    file.close()
    return model, metadata


def load_t5_folder(folder: str, dtype, device) -> T5EncoderModel:
    """Hugging Face folder with config.json and model*.safetensors (or diffusion_pytorch_model*)."""
    fields = read_json(os.path.join(folder, "config.json"))
    index_files = [n for n in os.listdir(folder) if n.endswith(".safetensors.index.json")]
    if index_files:
        names = sorted(set(read_json(os.path.join(folder, index_files[0])).get("weight_map", {}).values()))
    else:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))
    if not names:
        others = [n for n in os.listdir(folder) if n.endswith((".bin", ".pt", ".pth", ".ckpt"))]
        hint = f" (pickle weights {others} are refused: unpickling can run arbitrary code)" if others else ""
        raise CheckpointError(f"{folder}: no .safetensors weights for the T5 text encoder{hint}")
    index: dict[str, TensorInfo] = {}
    for name in names:
        file = SafetensorsFile(os.path.join(folder, name))
        prefix = find_t5_prefix(file.keys()) or ""
        index.update(build_index(file, prefix))
    index = {k: v for k, v in index.items() if not k.startswith("decoder.") and k != "lm_head.weight"}
    return _fill_t5(index, _t5_config(fields), dtype, device, folder)


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer


def comfy_tokenizer_dir() -> str | None:
    """ComfyUI's bundled T5 tokenizer folder (comfy/text_encoders/t5_tokenizer), without importing comfy."""
    try:
        spec = importlib.util.find_spec("comfy")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "text_encoders", "t5_tokenizer")


def tokenizer_candidates(path: str, tokenizer_dir: str | None) -> list[str]:
    """Folders to try, in order: the argument, beside the weights, ComfyUI's bundled T5 tokenizer."""
    places = [tokenizer_dir] if tokenizer_dir else []
    if os.path.isdir(path):
        places += [os.path.join(path, "tokenizer"), path, os.path.join(os.path.dirname(path.rstrip("/")), "tokenizer")]
    else:
        stem = path[: -len(".safetensors")] if path.endswith(".safetensors") else path
        places += [path + ".tokenizer", stem + ".tokenizer", os.path.join(os.path.dirname(path), "tokenizer")]
    comfy = comfy_tokenizer_dir()
    if comfy:
        places.append(comfy)
    return list(dict.fromkeys(places))


def load_tokenizer(path: str, tokenizer_dir: str | None = None, allow_download: bool = False):
    """First folder that holds a usable T5 tokenizer; then the Hugging Face cache (and, only when allow_download,
    the hub) for google/t5-v1_1-xxl. Raises FileNotFoundError listing every place tried and why it failed."""
    tried = []
    for place in tokenizer_candidates(path, tokenizer_dir):
        if not os.path.isdir(place):
            tried.append(f"{place} (no such folder)")
            continue
        if not any(os.path.isfile(os.path.join(place, n)) for n in TOKENIZER_FILES):
            tried.append(f"{place} (has no {' or '.join(TOKENIZER_FILES)})")
            continue
        try:
            return AutoTokenizer.from_pretrained(place, local_files_only=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported below
            tried.append(f"{place} ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})")
    for online in [False, True] if allow_download else [False]:
        try:
            return AutoTokenizer.from_pretrained(HUB_TOKENIZER, local_files_only=not online)
        except Exception as e:  # noqa: BLE001
            where = "Hugging Face hub" if online else "Hugging Face cache"
            tried.append(f"{HUB_TOKENIZER} from the {where} ({type(e).__name__})")
    if not allow_download:
        tried.append(f"{HUB_TOKENIZER} from the Hugging Face hub (not tried: downloads are off)")
    raise FileNotFoundError(
        f"{path}: no T5 tokenizer found. Looked in:\n  "
        + "\n  ".join(tried)
        + "\nPass tokenizer_dir=<folder with tokenizer.json or spiece.model>, or put such a folder "
        f"beside the weights as {os.path.basename(path)}.tokenizer/"
    )


def is_byte_level(metadata: dict, vocab_size: int) -> bool:
    return metadata.get("tokenizer") in ("byte", "byt5") or vocab_size == BYTE_VOCAB_SIZE


# ---------------------------------------------------------------------------------------------------------------
# Public loader / saver


def load_text_encoder(
    path,
    dtype: torch.dtype = torch.bfloat16,
    device="cpu",
    tokenizer_dir=None,
    max_tokens: int | None = None,
    allow_download: bool = False,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
) -> TextEncoder:
    """T5 encoder weights (single file or folder) + tokenizer -> TextEncoder.

    max_tokens: prompt length in tokens (padding and truncation); when None, the file's metadata "max_tokens"
    if any, else default_max_tokens: DEFAULT_MAX_TOKENS = 256, the official value for 0.9.5+ (128 for
    0.9.0/0.9.1: pass max_tokens_for_version(checkpoint version)). Byte-level models (metadata "tokenizer": "byte"/"byt5" or a 384 vocabulary) use
    ByT5Tokenizer, which needs no files. allow_download: try the hub for google/t5-v1_1-xxl's tokenizer last.
    """
    check_dtype(dtype, path)
    path = str(path)
    if os.path.isdir(path):
        weights = os.path.join(path, "text_encoder") if os.path.isdir(os.path.join(path, "text_encoder")) else path
        model = load_t5_folder(weights, dtype, device)
        metadata: dict = {}
    else:
        model, metadata = load_t5_file(path, dtype, device)
    if is_byte_level(metadata, model.config.vocab_size):
        tokenizer = ByT5Tokenizer()
    else:
        tokenizer = load_tokenizer(path, tokenizer_dir, allow_download)
    if len(tokenizer) > model.config.vocab_size:
        raise CheckpointError(
            f"{path}: the tokenizer has {len(tokenizer)} tokens but the T5 embedding only "
            f"{model.config.vocab_size}; wrong tokenizer for these weights"
        )
    if max_tokens is None:
        max_tokens = int(metadata.get("max_tokens", default_max_tokens))
    return TextEncoder(model, tokenizer, max_tokens=max_tokens, path=path)


def save_text_encoder(path, t5_model: T5EncoderModel, metadata: dict | None = None) -> None:
    """Write the ComfyUI single-file T5 layout (encoder.* and shared.weight, embedding once) with the T5 config
    as JSON in metadata["config"]; extra `metadata` entries (e.g. {"tokenizer": "byte"}) are stored as strings."""
    config = {k: getattr(t5_model.config, k) for k in CONFIG_FIELDS}
    tensors = {k: v for k, v in t5_model.state_dict().items() if k != "encoder.embed_tokens.weight"}
    entries = {k: str(v) for k, v in (metadata or {}).items()}
    entries["config"] = json.dumps(config)
    save_safetensors(path, tensors, entries)
