"""VideoDiT LoRA Loader: a LoRA from ComfyUI's `loras` folder on a VIDEODIT_MODEL, for both families.

ComfyUI shares a node's output object between the runs and the branches of a graph (the Model Loader's model is
cached), so the node never changes the model it gets. It returns a LoraModel: the same model with a LoRA stack
attached (several LoRA Loader nodes in a row add to one stack). The stack goes into the transformer's weights only
while a sampler runs it: LoraModel.acquire() merges it (model/lora/merge.py: always from the kept base weights,
one LoraMerger per transformer) before the model moves to its device, and release() puts the base weights back,
bit for bit. So a branch without the LoRA, a changed strength or another LoRA in the next run each give exactly
what a fresh load would give. The samplers need no change: they call model.acquire() and model.release() around
sampling already. Cost: the touched layers are merged and restored once per sampler run (model/lora/merge.py
gives measured times); the base copies of the touched layers stay in CPU RAM while the model is loaded.
"""

import os

from ..model.checkpoint.files import CheckpointError
from . import host
from .common import CATEGORY, MODEL_TYPE, InputError, check_inputs

FOLDER = "loras"
NO_LORA = "none"  # passes the model through unchanged (and keeps the combo non-empty without LoRA files)
MERGER_ATTRIBUTE = "videodit_lora_merger"  # the one LoraMerger of a transformer, kept on the transformer object
_FILES: dict[tuple, object] = {}  # (real path, mtime) -> LoraFile (opened once; a few LoRAs per graph)
MAX_FILES = 16


def lora_choices() -> list[str]:
    return [NO_LORA, *host.list_models(FOLDER)]


def read_lora(path: str):
    """The LoraFile of path, opened once per (path, modification time)."""
    from ..model.lora import load_lora

    key = (os.path.realpath(path), os.path.getmtime(path))
    if key not in _FILES:
        if len(_FILES) >= MAX_FILES:
            _FILES.pop(next(iter(_FILES)))
        _FILES[key] = load_lora(path)
    return _FILES[key]


def merger_of(transformer):
    """The transformer's LoraMerger (made on first use; it keeps the base tensors of the layers LoRAs touch)."""
    from ..model.lora import LoraMerger

    merger = getattr(transformer, MERGER_ATTRIBUTE, None)
    if merger is None:
        merger = LoraMerger(transformer)
        setattr(transformer, MERGER_ATTRIBUTE, merger)
    return merger


class LoraModel:
    """A VIDEODIT_MODEL with a LoRA stack: every attribute is the base model's (VideoModel or LTX2Model); the
    stack is in the transformer's weights between acquire() and release() only."""

    def __init__(self, base, loras: tuple):
        self._base = base  # the model as the Model Loader made it, never a LoraModel
        self.loras = loras  # (LoraStrength, ...) in node order

    OWN = ("_base", "loras")

    def __getattr__(self, name):  # only called for attributes the wrapper does not have itself
        if name in LoraModel.OWN:  # not set yet (copy.copy): no recursion into _base
            raise AttributeError(name)
        return getattr(self._base, name)

    def __setattr__(self, name, value):  # e.g. the sampler's preview_factors cache: kept on the base model
        if name in LoraModel.OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._base, name, value)

    @property
    def base(self):
        return self._base

    def acquire(self):
        merger = merger_of(self._base.transformer)
        merger.apply(self.loras)  # before the base moves or streams its blocks (they copy the merged weights)
        try:
            return self._base.acquire()
        except BaseException:
            merger.apply([])
            raise

    def release(self):
        try:
            self._base.release()
        finally:
            merger_of(self._base.transformer).apply([])  # the base weights again, bit for bit


class VideoDiTLoraLoader:
    DESCRIPTION = (
        "Adds a LoRA from models/loras to the model (LTX-Video 0.9.x or LTX-2; ComfyUI, diffusers/PEFT, kohya and "
        "LyCORIS LoKr files). Chain several for a stack. The model that comes in is not changed: the LoRA is merged "
        "into the weights only while the sampler runs, so other branches, and the next run with other LoRAs or "
        "strengths, get exactly what a fresh load gives."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    MODEL_FOLDERS = {"lora_name": FOLDER}
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The model with this LoRA added to the LoRAs it already had.",)

    @classmethod
    def INPUT_TYPES(cls):
        strength = {"min": -10.0, "max": 10.0, "step": 0.01}
        choices = lora_choices()
        return {
            "required": {
                "model": (MODEL_TYPE, {"tooltip": "The model from the Model Loader or another LoRA Loader."}),
                "lora_name": (
                    choices,
                    {
                        "default": choices[min(1, len(choices) - 1)],
                        "tooltip": "LoRA file from models/loras; none passes the model through unchanged.",
                    },
                ),
                "strength": (
                    "FLOAT",
                    {**strength, "default": 1.0, "tooltip": "How strongly the LoRA acts (0: not at all)."},
                ),
            },
            "optional": {
                "audio_strength": (
                    "FLOAT",
                    {
                        **strength,
                        "default": 1.0,
                        "tooltip": "LTX-2: the strength on the audio layers (strength acts on the video layers); "
                        "LTX-Video 0.9.x has no audio: ignored.",
                    },
                ),
            },
        }

    def load(self, model, lora_name, strength, audio_strength=1.0):
        check_inputs(type(self), dict(lora_name=lora_name, strength=strength, audio_strength=audio_strength))
        from ..model.lora import LoraStrength, match_layers

        if lora_name == NO_LORA:
            return (model,)
        base = model.base if isinstance(model, LoraModel) else model
        earlier = model.loras if isinstance(model, LoraModel) else ()
        path = host.model_path(FOLDER, lora_name)
        try:
            lora = read_lora(path)
            match_layers(lora, base.transformer)  # a LoRA of the other family, unmatched layers: said now
        except CheckpointError as e:
            raise InputError(f"lora_name: {e}") from e
        audio = float(audio_strength) if base.family == "ltx2" else None
        return (LoraModel(base, (*earlier, LoraStrength(lora, float(strength), audio))),)


__all__ = ["VideoDiTLoraLoader", "LoraModel", "merger_of", "read_lora", "lora_choices"]
