"""LoRAs for both transformer families (pure PyTorch), one job per file:

file.py       reading LoRA files: ComfyUI/official, diffusers/PEFT and kohya key formats, alpha -> scale, refusals
              (LyCORIS LoHa, OFT, DoRA, full differences, files that are not LoRAs)
lokr.py       LyCORIS LoKr layers (Kronecker products), merged only
targets.py    LoRA layer -> our Linear layer (official, diffusers and kohya names), LTX-2 audio layers, the checks
              (unmatched layers, a LoRA of the other family, shapes)
merge.py      LoraMerger: merged in place from kept base tensors of the touched layers (no drift), fp8 layers
              dequantised and requantised, stacks with per-LoRA (and LTX-2 audio) strengths
side_path.py  LoraSidePath: the same stack as forward hooks adding the low-rank products, weights untouched
"""

from .file import LoraFile, LoraLayer, load_lora
from .lokr import LokrLayer
from .merge import LoraMerger, LoraStrength
from .side_path import LoraSidePath
from .targets import is_audio_layer, match_layers

__all__ = [
    "LokrLayer",
    "LoraFile",
    "LoraLayer",
    "LoraMerger",
    "LoraSidePath",
    "LoraStrength",
    "is_audio_layer",
    "load_lora",
    "match_layers",
]
