"""VideoDiT's ComfyUI nodes.

The nodes use ComfyUI's classic V1 node contract (INPUT_TYPES / RETURN_TYPES / FUNCTION on plain classes) rather
than the V3 `comfy_api.latest` schema, for three reasons:
  * no ComfyUI import is needed at import time, so the same classes run in the headless runner (`videodit run`)
    and in the tests without a ComfyUI install;
  * V1 works on every ComfyUI version, including installs older than 0.3.48 where V3 does not exist;
  * ComfyUI validates V1 list combos on the server (a wrong value is rejected at /prompt time with
    "value_not_in_list"), while V3 combos are not validated there, and the V3 API is still marked unstable
    (`STABLE = False` in comfy_api/version_list.py).
ComfyUI-only facilities (model folders, progress bar, previews, interrupt, devices) are imported lazily inside
functions, with plain fallbacks outside ComfyUI (see host.py).

Sizes that the model cannot make (width/height not a multiple of 32, frame counts that are not 8k+1) are rejected
at validation time with the nearest valid values, never silently changed: a node's output is always exactly the
size asked for.
"""

from .audio import VideoDiTAudioDecode
from .latents import VideoDiTEmptyLatentVideo, VideoDiTImageToVideo, VideoDiTVAEDecode, VideoDiTVAEEncode
from .loaders import VideoDiTModelLoader, VideoDiTTextEncode, VideoDiTTextEncoderLoader
from .lora import VideoDiTLoraLoader
from .ltx2_nodes import VideoDiTAudioToVideo, VideoDiTLatentUpsample
from .sampler import VideoDiTSampler
from .save import VideoDiTSaveVideo

NODE_CLASS_MAPPINGS = {
    "VideoDiTModelLoader": VideoDiTModelLoader,
    "VideoDiTTextEncoderLoader": VideoDiTTextEncoderLoader,
    "VideoDiTTextEncode": VideoDiTTextEncode,
    "VideoDiTEmptyLatentVideo": VideoDiTEmptyLatentVideo,
    "VideoDiTImageToVideo": VideoDiTImageToVideo,
    "VideoDiTSampler": VideoDiTSampler,
    "VideoDiTVAEDecode": VideoDiTVAEDecode,
    "VideoDiTVAEEncode": VideoDiTVAEEncode,
    "VideoDiTSaveVideo": VideoDiTSaveVideo,
    "VideoDiTAudioDecode": VideoDiTAudioDecode,
    "VideoDiTAudioToVideo": VideoDiTAudioToVideo,
    "VideoDiTLatentUpsample": VideoDiTLatentUpsample,
    "VideoDiTLoraLoader": VideoDiTLoraLoader,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "VideoDiTModelLoader": "VideoDiT Model Loader",
    "VideoDiTTextEncoderLoader": "VideoDiT Text Encoder Loader",
    "VideoDiTTextEncode": "VideoDiT Text Encode",
    "VideoDiTEmptyLatentVideo": "VideoDiT Empty Latent Video",
    "VideoDiTImageToVideo": "VideoDiT Image To Video",
    "VideoDiTSampler": "VideoDiT Sampler",
    "VideoDiTVAEDecode": "VideoDiT VAE Decode",
    "VideoDiTVAEEncode": "VideoDiT VAE Encode",
    "VideoDiTSaveVideo": "VideoDiT Save Video",
    "VideoDiTAudioDecode": "VideoDiT Audio Decode",
    "VideoDiTAudioToVideo": "VideoDiT Audio To Video",
    "VideoDiTLatentUpsample": "VideoDiT Latent Upsample",
    "VideoDiTLoraLoader": "VideoDiT LoRA Loader",
}
