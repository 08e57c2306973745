"""Which Linear layer of our transformer each LoRA layer patches, for both families, with the checks that make a
wrong file an error instead of a silent no-op: layers that match nothing, a LoRA of the other family, shapes.

Our module names are the official ones (LTX-Video 0.9.x `LTXVideoTransformer`, LTX-2 `LTX2Transformer`). A LoRA
layer name is looked up as written by its format: official names, diffusers names (LTX-2: the inverse of
model/ltx2/transformer.py `diffusers_key`; 0.9.x: the renames of model/checkpoint/diffusers.py), or kohya names
(either of the two with "." written as "_").

Audio layers of LTX-2 (they take the audio strength): every Linear whose input or output rows are audio tokens, or
whose output modulates audio tokens. That is the `audio_*` modules of the model and of each block
(audio_patchify_proj, audio_adaln_single, audio_prompt_adaln_single, audio_caption_projection, audio_proj_out,
audio_attn1, audio_attn2, audio_ff), the audio side of the two A<->V attentions (video_to_audio_attn.to_q / to_out /
to_gate_logits: audio queries, output added to the audio stream; audio_to_video_attn.to_k / to_v: keys and values
from audio tokens) and the AdaLN modules that modulate audio tokens in them (av_ca_audio_scale_shift_adaln_single,
av_ca_v2a_gate_adaln_single). Every other layer is video.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from ..blocks.fp8 import FP8Linear
from ..checkpoint.diffusers import diffusers_dit_key
from ..checkpoint.files import CheckpointError
from ..checkpoint.keys import FAMILY_NAMES
from ..ltx2.transformer import LTX2Transformer, diffusers_key
from ..ltxv.dit import LTXVideoTransformer
from .file import MAX_LISTED, LoraFile, LoraLayer
from .lokr import LokrLayer

# LoRA layer names only an LTX-2 transformer has (any spelling: official, diffusers, kohya)
_LTX2_ONLY = re.compile(r"audio|av_ca_|av_cross_attn|prompt_adaln|gate_logits")
_AUDIO_TOP = ("audio_", "av_ca_audio_scale_shift_adaln_single.", "av_ca_v2a_gate_adaln_single.")
_AUDIO_IN_BLOCK = re.compile(
    r"^transformer_blocks\.\d+\.(audio_(?!to_video_attn\.)|"
    r"video_to_audio_attn\.(to_q|to_out|to_gate_logits)|audio_to_video_attn\.to_[kv]$)"
)
TEXT_PATH_PREFIXES = (
    "text_embedding_projection.",
    "connectors.",
    "video_embeddings_connector.",
    "audio_embeddings_connector.",
)


@dataclass(frozen=True)
class Target:
    """A LoRA layer matched to one of our Linear layers (`name`: its official module path)."""

    name: str
    layer: LoraLayer | LokrLayer
    audio: bool  # LTX-2 audio layer (module docstring); always False for 0.9.x


def model_family(model: nn.Module) -> str:
    if isinstance(model, LTX2Transformer):
        return "ltx2"
    if isinstance(model, LTXVideoTransformer):
        return "ltxv"
    raise TypeError(
        f"LoRAs apply to an LTX2Transformer or an LTXVideoTransformer, got {type(model).__name__}; "
        "pass the transformer (e.g. pipeline.transformer)"
    )


def linear_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Official module path -> nn.Linear / FP8Linear, for every linear layer of the transformer."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (nn.Linear, FP8Linear))}


def is_audio_layer(name: str) -> bool:
    """True for the LTX-2 layers that take the audio strength (module docstring)."""
    return name.startswith(_AUDIO_TOP) or _AUDIO_IN_BLOCK.match(name) is not None


def diffusers_name(family: str, name: str) -> str:
    if family == "ltx2":
        return diffusers_key(name + ".weight")[: -len(".weight")]
    return diffusers_dit_key(name)


def name_tables(model: nn.Module) -> dict[str, dict[str, str]]:
    """naming ("official", "diffusers", "kohya", "any") -> {name as a LoRA writes it: our official name}."""
    family = model_family(model)
    official = {name: name for name in linear_layers(model)}
    diffusers = {diffusers_name(family, name): name for name in official}
    kohya: dict[str, str] = {}
    for table in (official, diffusers):
        for written, name in table.items():
            underscored = written.replace(".", "_")
            if kohya.setdefault(underscored, name) != name:
                raise ValueError(f"kohya name {underscored} is ambiguous: {kohya[underscored]} and {name}")
    return {"official": official, "diffusers": diffusers, "kohya": kohya, "any": {**diffusers, **official}}


def lora_family(lora: LoraFile) -> str | None:
    """ "ltx2" when the LoRA has layers only LTX-2 has (audio, A<->V, prompt AdaLN, attention gates), else None:
    a video-only LTX-2 LoRA and a 0.9.x LoRA use the same layer names and differ only in shapes."""
    return "ltx2" if any(_LTX2_ONLY.search(layer.name) for layer in lora.layers) else None


def match_layers(lora: LoraFile, model: nn.Module) -> list[Target]:
    """Every layer of `lora` matched to a layer of `model`, shapes checked. CheckpointError naming the file: layers
    that match nothing (how many matched, the first unmatched), an LTX-2 LoRA on a 0.9.x model, mis-shaped pairs."""
    family = model_family(model)
    tables = name_tables(model)
    layers = linear_layers(model)
    where = f"{lora.path}: "
    targets, unmatched = [], []
    for layer in lora.layers:
        name = tables[layer.naming].get(layer.name)
        if name is None:
            unmatched.append(layer)
        else:
            targets.append(Target(name, layer, family == "ltx2" and is_audio_layer(name)))
    if family == "ltxv" and lora_family(lora) == "ltx2":
        example = next(layer.name for layer in lora.layers if _LTX2_ONLY.search(layer.name))
        raise CheckpointError(
            f"{where}this is an LTX-2 LoRA (it has audio / audio-video layers, e.g. {example}); the model is "
            f"{FAMILY_NAMES['ltxv']}: load an LTX-2 model for it, or use a LoRA trained for LTX-Video 0.9.x"
        )
    other_family = ""
    if family == "ltx2" and lora_family(lora) is None:
        other_family = (
            "; it has video layers only and they do not fit this model, as an LTX-Video 0.9.x LoRA would: "
            "use it with an LTX-Video 0.9.x model"
        )
    if unmatched:
        text_path = [layer.name for layer in unmatched if layer.name.startswith(TEXT_PATH_PREFIXES)]
        note = other_family
        if text_path:
            note = (
                f"; {len(text_path)} of them are text-path layers ({text_path[0]}, ...): LoRAs on the text "
                "projection/connectors are not supported, only on the transformer"
            )
        raise CheckpointError(
            f"{where}{len(unmatched)} of {len(lora.layers)} LoRA layers match no linear layer of the "
            f"{FAMILY_NAMES[family]} transformer ({len(targets)} matched); first unmatched: "
            f"{', '.join(layer.name for layer in unmatched[:MAX_LISTED])}{note}"
        )
    wrong = []
    for target in targets:
        module = layers[target.name]
        expected = (module.out_features, module.in_features)
        got = target.layer.out_in
        if got != expected:
            wrong.append(f"{target.name}: LoRA makes (out, in) {got}, the layer is {expected}")
    if wrong:
        hint = other_family or (
            "; the names fit but the sizes do not: a LoRA trained for another model size (LTX-Video 0.9.x 2B is "
            "2048 wide, 13B 4096) or a video-only LTX-2 LoRA"
        )
        raise CheckpointError(
            f"{where}{len(wrong)} of {len(targets)} LoRA layers do not fit the model's layer shapes (first: "
            f"{'; '.join(wrong[:MAX_LISTED])}){hint}"
        )
    return targets
