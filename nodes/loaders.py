"""Loader nodes: the video model (DiT + VAE from one checkpoint, or the LTX-2 parts) and the text encoder (T5 or
Gemma); text encoding.

The model and VAE objects say their family ("ltxv": LTX-Video 0.9.x, "ltx2": LTX-2) and geometry; the sampler,
Image To Video and VAE Decode nodes run the family's steps (model.frontend.steps_for). LTX-2 files are recognised
by their keys (single files 2.0/2.3; the 2.5 split files: transformer from diffusion_models plus vae_file and
audio_vae_file from models/vae); their objects are in ltx2_models.py.
"""

import logging
import os
import warnings
from dataclasses import dataclass, field

import torch

from ..model import builtin, speed
from ..model.frontend import Prompt, encode_prompt, pinned_prompt_tokens
from ..model.geometry import VideoGeometry
from . import host
from .audio import AUDIO_VAE_TYPE
from .common import CATEGORY, CONDITIONING_TYPE, MODEL_TYPE, TEXT_ENCODER_TYPE, VAE_TYPE, InputError, check_inputs
from .ltx2_models import MEMORY_MODES, NoAudioVAE, is_gemma, load_gemma_encoder

logger = logging.getLogger("videodit")

BUILTIN_MODEL = "videodit-tiny (built-in)"
BUILTIN_TEXT_ENCODER = "t5-tiny (built-in)"
BUILTIN_FILES = {
    BUILTIN_MODEL: builtin.builtin_weights().checkpoint,
    BUILTIN_TEXT_ENCODER: builtin.builtin_weights().text_encoder,
}
DEFAULT_PROMPT_TOKENS = 256  # what Text Encode encodes at first (0.9.5+); the sampler re-encodes for 0.9.0/0.9.1
DTYPES = ["auto", "bf16", "fp16", "fp32"]
TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
PLACEMENTS = ["gpu", "offload to cpu between runs"]
NO_FILE = "none"


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """ "auto": bf16 on a GPU that supports it, fp16 on older GPUs, fp32 on CPU."""
    if name != "auto":
        return TORCH_DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _to_device(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move `module` to `device`, first asking ComfyUI to make room for it when it is not there yet."""
    current = next(module.parameters()).device
    if current.type != device.type or (device.index is not None and current.index != device.index):
        host.free_memory_for(host.module_bytes(module), device)
    return module.to(device)


@dataclass
class VideoVAE:
    """VIDEODIT_VAE: the causal video VAE, where it runs, its family and geometry."""

    vae: torch.nn.Module
    device: torch.device
    dtype: torch.dtype
    offload: bool
    path: str
    family: str = "ltxv"
    geometry: VideoGeometry = field(default_factory=VideoGeometry)
    audio: object = None  # LTX-2: the audio VAE + vocoder (audio.AudioDecoderModules) of the same release

    def acquire(self) -> torch.nn.Module:
        """The VAE on its compute device (moved there if it was offloaded)."""
        return _to_device(self.vae, self.device)

    def release(self):
        if self.offload:
            self.vae.to(host.offload_device())


@dataclass
class VideoModel:
    """VIDEODIT_MODEL: the DiT plus everything sampling needs from its checkpoint."""

    transformer: torch.nn.Module
    scheduler_config: dict
    allowed_inference_steps: list | None
    version: str
    path: str
    device: torch.device
    dtype: torch.dtype
    offload: bool
    vae: VideoVAE  # the checkpoint's VAE (latent previews are fitted to it)
    family: str = "ltxv"  # which front-end steps sample it (model.frontend.steps_for)
    geometry: VideoGeometry = field(default_factory=VideoGeometry)
    preview_factors: tuple | None = field(default=None, repr=False)  # (128x3 matrix, bias), fitted on first use

    def acquire(self) -> torch.nn.Module:
        return _to_device(self.transformer, self.device)

    def release(self):
        if self.offload:
            if self.transformer.text_kv_cache is not None:  # cached text keys/values live on the GPU
                self.transformer.text_kv_cache.clear()
            self.transformer.to(host.offload_device())


@dataclass
class VideoTextEncoder:
    """VIDEODIT_TEXT_ENCODER: the T5 encoder, kept in CPU RAM and moved to its compute device only while it
    encodes (T5-XXL is about 9.5 GB in bf16: resident on the GPU it would crowd out the DiT)."""

    encoder: object  # model.text_encoder.TextEncoder
    device: torch.device
    pinned_tokens: int | None = None  # the file's own prompt length (the built-in T5), else by checkpoint version
    builtin: bool = False

    def encode(self, text: str, max_tokens: int):
        """One prompt -> TextCondition on the CPU, at max_tokens tokens (model.frontend.encode_prompt)."""
        _to_device(self.encoder.model, self.device)
        try:
            cond = encode_prompt(self.encoder, text, max_tokens)
            return type(cond)(embeddings=cond.embeddings.detach().cpu(), mask=cond.mask.detach().cpu())
        finally:
            self.encoder.model.to(host.offload_device())

    def prompt(self, text: str) -> Prompt:
        """The conditioning of Text Encode: encoded now at the pinned or the 0.9.5+ length; the sampler re-encodes
        it for a checkpoint that wants another length (model.frontend.Prompt)."""
        tokens = self.pinned_tokens or DEFAULT_PROMPT_TOKENS
        return Prompt(
            text, self.encode(text, tokens), tokens, self.pinned_tokens is not None, self.encode, self.builtin
        )


# One cached model per loader kind: a new choice replaces the old one (two 2B models rarely fit together).
_CACHE: dict[str, tuple] = {}


def cached(kind: str, key: tuple, load):
    entry = _CACHE.get(kind)
    if entry is not None and entry[0] == key:
        return entry[1]
    _CACHE.pop(kind, None)
    value = load()
    _CACHE[kind] = (key, value)
    return value


def checkpoint_choices() -> list[str]:
    return [BUILTIN_MODEL] + host.list_models("checkpoints")


def text_encoder_choices() -> list[str]:
    return [BUILTIN_TEXT_ENCODER] + host.list_models("text_encoders")


def resolve_file(folder_key: str, name: str) -> str:
    if name in BUILTIN_FILES:
        path = BUILTIN_FILES[name]
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"the built-in model '{name}' is missing: {path} does not exist; {builtin.RESTORE_HINT}"
            )
        return path
    return host.model_path(folder_key, name)


_said_no_gpu = []


def say_no_gpu_once(placement: str, device: torch.device):
    """placement "gpu" on a machine without one: one log line per process (the model runs on the CPU)."""
    if placement == "gpu" and device.type == "cpu" and not _said_no_gpu:
        _said_no_gpu.append(True)
        logger.warning("VideoDiT Model Loader: placement 'gpu' but no GPU was found; the model runs on the CPU")


def apply_speed(transformer, vae_module, options):
    """Speed options on the DiT and VAE; their fallbacks on this machine (no CUDA, no Triton, no fp8 matmuls)
    become one log line instead of Python warnings with source paths."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        transformer = speed.apply_speed_options(transformer, options)
        vae_module = speed.apply_vae_speed_options(vae_module, options)
    reasons = list(dict.fromkeys(str(w.message) for w in caught))
    if reasons:
        logger.warning("VideoDiT Model Loader: speed options fall back on this machine: %s", " | ".join(reasons))
    return transformer, vae_module


class VideoDiTModelLoader:
    DESCRIPTION = (
        "Loads an LTX-Video 0.9.x checkpoint (official single file: DiT + VAE; config from its metadata), the "
        "built-in tiny model, or LTX-2: a single-file LTX-2.0/2.3 checkpoint (transformer, video VAE, audio VAE, "
        "vocoder, text connectors), or the LTX-2.5 split files (transformer from diffusion_models + vae_file + "
        "audio_vae_file from models/vae). Models stay cached between runs."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    # where a missing file was looked for (check_inputs)
    MODEL_FOLDERS = {"checkpoint": "checkpoints", "vae_file": "vae", "audio_vae_file": "vae"}
    RETURN_TYPES = (MODEL_TYPE, VAE_TYPE, AUDIO_VAE_TYPE)
    RETURN_NAMES = ("model", "vae", "audio_vae")
    OUTPUT_TOOLTIPS = (
        "The video diffusion transformer with its scheduler settings and version (LTX-2: audio + video).",
        "The causal video VAE of the same checkpoint (encode images, decode latents); for LTX-2 it also carries the "
        "audio VAE (Empty Latent Video, Audio To Video).",
        "LTX-2: the audio VAE + vocoder for VideoDiT Audio Decode (LTX-Video 0.9.x checkpoints have none).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        required = {
            "checkpoint": (
                checkpoint_choices(),
                {
                    "default": BUILTIN_MODEL,
                    "tooltip": "LTX-Video checkpoint from models/checkpoints or models/diffusion_models "
                    "(e.g. ltx-video-2b-v0.9.5.safetensors), or the tiny built-in model.",
                },
            ),
            "dtype": (
                DTYPES,
                {
                    "default": "auto",
                    "tooltip": "Weight and compute precision. auto: bf16 on GPUs that support it, "
                    "fp16 on older GPUs, fp32 on CPU.",
                },
            ),
            "placement": (
                PLACEMENTS,
                {
                    "default": "gpu",
                    "tooltip": "gpu: keep the weights on the GPU between runs (fastest). "
                    "offload: move them to CPU RAM after each run to free VRAM.",
                },
            ),
            "attention": (
                list(speed.ATTENTION_CHOICES),
                {
                    "default": "auto",
                    "tooltip": "Attention kernel: auto = cuDNN attention on Hopper and newer GPUs, "
                    "PyTorch's choice elsewhere; the others prefer that SDPA kernel.",
                },
            ),
            "compile": (
                "BOOLEAN",
                {
                    "default": False,
                    "tooltip": "torch.compile the transformer blocks and the VAE decoder (CUDA with "
                    "Triton; the first run of each size compiles for a while, later runs "
                    "are faster). Ignored with a warning where it cannot work.",
                },
            ),
            "fp8": (
                "BOOLEAN",
                {
                    "default": False,
                    "tooltip": "Store the large linear layers in fp8 (halves their weight memory on "
                    "any device). The matmuls themselves run in fp8 only in bf16 on GPUs "
                    "of compute capability >= 8.9 (Ada, Hopper); elsewhere the weights "
                    "are dequantised per layer, which is slower. Pair it with compile "
                    "for speed. LTX-2: keeps the linears an fp8 file stores as fp8 "
                    "(bf16 files are not converted).",
                },
            ),
        }
        parts = [NO_FILE] + host.list_models("vae")
        optional = {
            "vae_file": (
                parts,
                {
                    "default": NO_FILE,
                    "tooltip": "LTX-2.5 split files: the video VAE from models/vae (ltx-2.5-video-vae-conv-bf16). "
                    "none for single-file checkpoints (their VAE is inside).",
                },
            ),
            "audio_vae_file": (
                parts,
                {
                    "default": NO_FILE,
                    "tooltip": "LTX-2.5 split files: the audio VAE + vocoder from models/vae "
                    "(ltx-2.5-audio-vae-bf16). none for single-file checkpoints.",
                },
            ),
            "memory": (
                MEMORY_MODES,
                {
                    "default": "auto",
                    "tooltip": "LTX-2 transformer on the GPU: auto = all of it when it fits in free memory, else "
                    "its blocks streamed from CPU RAM (slower, but a 22B model runs on a 24 GB GPU); resident = "
                    "always all of it; stream blocks = always streamed. LTX-Video 0.9.x: ignored.",
                },
            ),
        }
        return {"required": required, "optional": optional}

    def load(
        self,
        checkpoint,
        dtype,
        placement,
        attention="auto",
        compile=False,
        fp8=False,
        vae_file=NO_FILE,
        audio_vae_file=NO_FILE,
        memory="auto",
    ):
        values = dict(dtype=dtype, placement=placement, vae_file=vae_file, audio_vae_file=audio_vae_file)
        check_inputs(type(self), dict(values, memory=memory))  # a missing file: FileNotFoundError below
        from ..model.checkpoint import load_checkpoint
        from ..model.pipeline import model_family

        path = resolve_file("checkpoints", checkpoint)
        device = host.torch_device()
        torch_dtype = resolve_dtype(dtype, device)
        offload = placement != "gpu"
        say_no_gpu_once(placement, device)
        try:
            family = model_family(path)
        except Exception:  # noqa: BLE001 - not readable as LTX weights: load_checkpoint below says why
            family = "ltxv"
        parts = {name: resolve_file("vae", value) for name, value in (("vae_file", vae_file),
                 ("audio_vae_file", audio_vae_file)) if value not in (None, NO_FILE)}  # fmt: skip
        if family == "ltx2":
            return self.load_ltx2(path, parts, torch_dtype, device, offload, memory, attention, compile, fp8)
        if parts:
            raise InputError(
                f"{', '.join(parts)}: {checkpoint} is an LTX-Video 0.9.x checkpoint with its VAE inside; these inputs "
                "are for the LTX-2.5 split files: set them to none"
            )
        key = (
            os.path.realpath(path),
            os.path.getmtime(path),
            str(torch_dtype),
            str(device),
            offload,
            attention,
            bool(compile),
            bool(fp8),
        )

        def load():
            with builtin.restore_hint(path):
                loaded = load_checkpoint(path, dtype=torch_dtype, device="cpu")
            family = getattr(loaded, "family", "ltxv")
            transformer = loaded.transformer.eval().requires_grad_(False)
            vae_module = loaded.vae.eval().requires_grad_(False)
            options = speed.SpeedOptions(attention=attention, compile=bool(compile), fp8=bool(fp8))
            transformer, vae_module = apply_speed(transformer, vae_module, options)
            geometry = VideoGeometry.of(vae_module.config, transformer.config)
            vae = VideoVAE(vae_module, device, torch_dtype, offload, path, family, geometry)
            model = VideoModel(
                transformer,
                loaded.scheduler_config,
                loaded.allowed_inference_steps,
                loaded.version,
                path,
                device,
                torch_dtype,
                offload,
                vae,
                family,
                geometry,
            )
            if not offload:
                model.acquire()
                vae.acquire()
            return model, vae, NoAudioVAE(path)

        return cached("checkpoint", key, load)

    def load_ltx2(self, path, parts, dtype, device, offload, memory, attention, compile, fp8):
        """LTX-2 file(s) -> (model, vae, audio_vae); fp8 keeps the file's fp8 linears as fp8 (keep_fp8)."""
        from .ltx2_models import load_ltx2_files

        if attention != "auto" or compile:
            logger.warning("VideoDiT Model Loader: attention and compile are not applied to LTX-2 models yet")
        paths = [path, *parts.values()]
        names = {path: "checkpoint", **{p: name for name, p in parts.items()}}
        key = (
            tuple((os.path.realpath(p), os.path.getmtime(p)) for p in paths),
            str(dtype),
            str(device),
            offload,
            memory,
            bool(fp8),
        )
        return cached(
            "checkpoint", key, lambda: load_ltx2_files(paths, names, dtype, device, offload, memory, bool(fp8))
        )


class VideoDiTTextEncoderLoader:
    DESCRIPTION = (
        "Loads the text encoder: T5 for LTX-Video 0.9.x (ComfyUI's t5xxl single-file layout, or the tiny built-in "
        "one), or Gemma for LTX-2 (Gemma 3 12B for 2.0/2.3, LTX's Gemma 4 file for 2.5), told apart by the file's keys."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    MODEL_FOLDERS = {"text_encoder": "text_encoders"}
    RETURN_TYPES = (TEXT_ENCODER_TYPE,)
    RETURN_NAMES = ("text_encoder",)
    OUTPUT_TOOLTIPS = ("The T5 or Gemma encoder and its tokenizer; connect it to VideoDiT Text Encode.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text_encoder": (
                    text_encoder_choices(),
                    {
                        "default": BUILTIN_TEXT_ENCODER,
                        "tooltip": "T5 file from models/text_encoders (or the legacy models/clip), e.g. "
                        "t5xxl_fp16.safetensors, or the tiny built-in encoder; for LTX-2 a Gemma file, e.g. "
                        "gemma_3_12B_it.safetensors (2.0/2.3) or gemma4-12b-with-proj-ltx-2.5-bf16 (2.5).",
                    },
                ),
                "dtype": (
                    DTYPES,
                    {"default": "auto", "tooltip": "Precision of the T5 weights (auto: bf16 on GPU, fp32 on CPU)."},
                ),
                "device": (
                    ["default", "cpu"],
                    {
                        "default": "default",
                        "tooltip": "Where T5 encodes. default: the GPU ComfyUI uses, moved "
                        "there only while encoding and back to system RAM after, "
                        "so it never competes with the DiT for VRAM. cpu: encode on "
                        "the CPU (slower; no transfer).",
                    },
                ),
            }
        }

    def load(self, text_encoder, dtype, device):
        check_inputs(type(self), dict(dtype=dtype, device=device))
        from ..model.text_encoder import load_text_encoder

        path = resolve_file("text_encoders", text_encoder)
        torch_device = host.torch_device() if device == "default" else torch.device("cpu")
        torch_dtype = resolve_dtype(dtype, torch_device)
        key = (os.path.realpath(path), os.path.getmtime(path), str(torch_dtype), str(torch_device))

        if is_gemma(path):
            return (cached("text_encoder", key, lambda: load_gemma_encoder(path, torch_dtype, torch_device)),)

        def load():
            pinned = pinned_prompt_tokens(path)
            with builtin.restore_hint(path):
                encoder = load_text_encoder(
                    path, dtype=torch_dtype, device=host.offload_device(), max_tokens=pinned or DEFAULT_PROMPT_TOKENS
                )
            return VideoTextEncoder(encoder, torch_device, pinned, builtin.is_builtin(path))

        return (cached("text_encoder", key, load),)


class VideoDiTTextEncode:
    DESCRIPTION = (
        "Encodes a prompt: with T5 for LTX-Video 0.9.x, with Gemma for LTX-2 (the sampler finishes it with its "
        "checkpoint's text connectors). Use it twice: once for the positive and once for the negative prompt."
    )
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = (CONDITIONING_TYPE,)
    RETURN_NAMES = ("conditioning",)
    OUTPUT_TOOLTIPS = (
        "T5 embeddings and attention mask of the prompt (re-encoded by the sampler at the checkpoint's prompt "
        "length when that differs: 128 tokens for 0.9.0/0.9.1). Gemma: the prompt, encoded by the sampler with the "
        "checkpoint's text path (1024 tokens; positive and negative in one Gemma call).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text_encoder": (TEXT_ENCODER_TYPE, {"tooltip": "From VideoDiT Text Encoder Loader."}),
                "text": (
                    "STRING",
                    {
                        "multiline": True,
                        "dynamicPrompts": True,
                        "default": "",
                        "tooltip": "The prompt. LTX-Video likes long, literal descriptions of the scene, "
                        "the motion and the camera. The built-in tiny model knows only "
                        + builtin.VOCABULARY_TEXT
                        + ".",
                    },
                ),
            }
        }

    def encode(self, text_encoder, text):
        return (text_encoder.prompt(text),)
