"""Prompts -> LTX-2 text contexts: tokenizer (each version's prompt-length rule), Gemma's hidden states, the text
path (feature extractor, connectors, 2.0 caption projections).

Prompt-length rules (every version pads to 1024 tokens on the left and truncates at 1024; prompt.strip(), no chat
template, no EOS appended):
  LTX-2.0/2.3 (ltx-core 1.0.0 LTXVGemmaTokenizer): the tokenizer's own special tokens (Gemma 3 adds BOS).
  LTX-2.5 (LTX-2 HEAD LTXGemmaTokenizer): tokenised unpadded and truncated, BOS prepended when the tokenizer did
          not add it (Gemma 4's does not), cut to 1024 again, then padded.
The text contexts go to the transformer without a mask: the connectors' registers replace the padding, so the
returned mask is all ones (as in both references).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..checkpoint import CheckpointError, SafetensorsFile, TensorInfo, build_index, fill_module, parameters_on_meta
from .gemma import Gemma
from .text_connector import TextPath, TextPathConfig, official_key

MAX_TOKENS = 1024
GEMMA4_SINCE = (2, 4, 0)  # model_version from which LTX checkpoints need LTX's Gemma 4 (HEAD encoder_configurator)


@dataclass(frozen=True)
class PromptRule:
    max_tokens: int = MAX_TOKENS
    ensure_bos: bool = False  # prepend BOS when the tokenizer does not add it (LTX-2.5)

    def __post_init__(self):
        if self.max_tokens < 1:
            raise ValueError(f"PromptRule.max_tokens must be >= 1, got {self.max_tokens}")


def prompt_rule(version: str, max_tokens: int = MAX_TOKENS) -> PromptRule:
    """The prompt rule of an LTX-2 version ("2.0", "2.3", "2.5"; any later 2.x uses the 2.5 rule)."""
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if len(parts) != 2 or parts[0] != 2:
        raise ValueError(f"prompt_rule: {version!r} is not an LTX-2 version; expected '2.0', '2.3' or '2.5'")
    return PromptRule(max_tokens, ensure_bos=parts >= GEMMA4_SINCE[:2])


def tokenize(tokenizer, prompts: list[str], rule: PromptRule) -> tuple[torch.Tensor, torch.Tensor]:
    """-> ids (B, max_tokens), mask (B, max_tokens) with 1 = token, left-padded."""
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"prompts must be a list of strings, got {prompts!r:.80}")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    prompts = [p.strip() for p in prompts]
    if not rule.ensure_bos:
        batch = tokenizer(
            prompts, padding="max_length", max_length=rule.max_tokens, truncation=True, return_tensors="pt"
        )
        return batch["input_ids"], batch["attention_mask"]
    bos = tokenizer.bos_token_id
    if bos is None:
        raise ValueError(
            "tokenize: this tokenizer has no BOS token; the LTX-2.5 prompt rule starts every prompt with it"
        )
    rows = []
    for ids in tokenizer(prompts, padding=False, truncation=True, max_length=rule.max_tokens)["input_ids"]:
        rows.append(ids if ids and ids[0] == bos else [bos, *ids][: rule.max_tokens])
    batch = tokenizer.pad({"input_ids": rows}, padding="max_length", max_length=rule.max_tokens, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


@dataclass
class TextContext:
    video: torch.Tensor  # (B, T, Dv)
    audio: torch.Tensor | None  # (B, T, Da), None for a video-only text path
    mask: torch.Tensor  # (B, T), all ones after the registers


class LTX2TextEncoder:
    """Gemma + the text path. encode_prompts runs on `device` only for the call; both stay on the CPU between."""

    def __init__(self, gemma: Gemma, text_path: TextPath, rule: PromptRule):
        features = text_path.config.features
        if (features.gemma_dim, features.gemma_states) != (gemma.hidden_size, gemma.num_states):
            raise ValueError(
                f"LTX2TextEncoder: the text path expects {features.gemma_states} Gemma states of width "
                f"{features.gemma_dim}; {gemma.path} gives {gemma.num_states} of width {gemma.hidden_size}"
            )
        self.gemma = gemma
        self.text_path = text_path.eval()
        self.rule = rule

    def encode_prompts(self, prompts: list[str], device=None, resident: int | None = None) -> TextContext:
        """prompts -> TextContext on `device` (default CPU); `resident`: see Gemma.hidden_states."""
        ids, mask = tokenize(self.gemma.tokenizer, prompts, self.rule)
        states = self.gemma.hidden_states(ids, mask, device, resident)
        device = states[0].device
        mask = mask.to(device)
        try:
            self.text_path.to(device)
            with torch.no_grad():
                video, audio, out_mask = self.text_path(states, mask)
        finally:
            self.text_path.to("cpu")
        return TextContext(video, audio, out_mask)


def check_gemma_matches(metadata: dict, gemma: Gemma, where: str) -> None:
    """The Gemma family an LTX checkpoint needs (its metadata: model_version, gemma_source_checkpoint) against the
    one loaded: Gemma 4 for 2.5 (>= 2.4.0 or gemma_source_checkpoint), Gemma 3 before. CheckpointError if not."""
    version = str(metadata.get("model_version") or "")
    parts = tuple(int(p) for p in version.split(".") if p.isdigit())
    needs_gemma4 = metadata.get("gemma_source_checkpoint") is not None or parts >= GEMMA4_SINCE
    need = "gemma4_unified" if needs_gemma4 else "gemma3"
    if gemma.family != need:
        names = {"gemma4_unified": "the LTX-2.5 Gemma 4 text encoder", "gemma3": "the Gemma 3 12B text encoder"}
        raise CheckpointError(
            f"{where}: this LTX-{version or '2.0/2.3'} transformer needs {names[need]}, got "
            f"{'Gemma 4' if gemma.family == 'gemma4_unified' else 'Gemma 3'} from {gemma.path}"
        )


def load_text_path(
    config: TextPathConfig,
    files: list[SafetensorsFile],
    dtype: torch.dtype,
    projection: dict[str, TensorInfo] | None = None,
    device="cpu",
) -> TextPath:
    """Build the text path on meta and fill it from the official LTX-2 files (connectors and caption projections
    under model.diffusion_model.*, the feature extractor under text_embedding_projection.*). `projection`: the
    feature-extractor tensors found in the Gemma file (LTX-2.5 text encoder files carry them), used when the
    checkpoint files lack them."""
    with parameters_on_meta():
        path = TextPath(config)
    available: dict[str, TensorInfo] = {}
    for file in files:
        available.update(build_index(file, ""))
    index = {}
    for key in path.state_dict():
        theirs = official_key(key)
        if theirs in available:
            index[key] = available[theirs]
        elif projection and key.startswith("feature_extractor.") and key[len("feature_extractor.") :] in projection:
            index[key] = projection[key[len("feature_extractor.") :]]
    where = ", ".join(f.path for f in files) or "no files"
    return fill_module(path, index, dtype, device, f"LTX-2 text connectors ({where})")
