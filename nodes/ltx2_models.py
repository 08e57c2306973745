"""LTX-2 in the node layer: what the Model Loader and Text Encoder Loader return for LTX-2 files, prompts that are
encoded with the checkpoint's text path, and the joint audio+video LATENT.

Joint LATENT (LTX-2; the 0.9.x keys of nodes/latents.py stay as they are):
  "samples"        the video latent (B, 128, F', H', W'), normalized, as for LTX-Video 0.9.x
  "audio_samples"  the audio latent (B, 8, T, 16), normalized, T = round(frames / frame_rate * 25) (25 per second)
  "audio_given"    True when Audio To Video put an encoded track there (kept clean, not generated)
  "audio_seconds"  frames / frame_rate: how long video and sound last
  "family"         "ltx2" or "ltxv": which model family made the latent (checked by the nodes that read it)
  "seed", "noise_state"  the sampler's seed and its noise generator's state after sampling: a later sampler with
                   the same seed continues that generator (what one two-stage LTX2Pipeline.generate call does)
ComfyUI core keeps LTX-2 audio in a separate LATENT or a NestedTensor "samples"; Audio Decode reads those too
(nodes/audio.py), and a plain "samples" video latent without audio gets a silent start in the sampler.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from ..model.geometry import VideoGeometry
from . import host
from .audio import AudioDecoderModules
from .common import InputError

logger = logging.getLogger("videodit")

MEMORY_MODES = ["auto", "resident", "stream blocks"]
ACTIVATION_RESERVE = 6 * 2**30  # bytes left free for activations when planning resident blocks (auto)
MODULE_INPUTS = {  # which Model Loader input gives each part of a split release
    "transformer": "checkpoint (the LTX-2 transformer, e.g. from models/diffusion_models)",
    "video_vae": "vae_file (the LTX-2 video VAE from models/vae, e.g. ltx-2.5-video-vae-conv-bf16.safetensors)",
    "audio_vae": "audio_vae_file (the LTX-2 audio VAE + vocoder from models/vae, e.g. ltx-2.5-audio-vae-bf16)",
    "vocoder": "audio_vae_file (the LTX-2 audio VAE + vocoder from models/vae, e.g. ltx-2.5-audio-vae-bf16)",
}


@dataclass
class LTX2Prompt:
    """VIDEODIT_CONDITIONING of a Gemma text encoder: the prompt text and the Gemma it is encoded with. The
    sampler encodes it with its checkpoint's text path (connectors and, for 2.5, the Gemma file's projection),
    positive and negative in one Gemma call, as LTX2Pipeline.generate does."""

    text: str
    encoder: "GemmaTextEncoder" = field(repr=False)


@dataclass
class GemmaTextEncoder:
    """VIDEODIT_TEXT_ENCODER for LTX-2: a loaded Gemma (model/ltx2/gemma.py), kept in CPU RAM and run on `device`
    only while it encodes (block by block when it does not fit)."""

    gemma: object  # model.ltx2.gemma.Gemma
    device: torch.device
    family: str = "ltx2"

    def prompt(self, text: str) -> LTX2Prompt:
        return LTX2Prompt(text, self)


@dataclass
class LTX2Model:
    """VIDEODIT_MODEL of an LTX-2 release: the audio+video transformer and what sampling needs from its files."""

    checkpoint: object  # model.checkpoint.LTX2Checkpoint
    path: str  # the files, comma separated
    device: torch.device
    dtype: torch.dtype
    offload: bool
    memory: str  # MEMORY_MODES
    vae: object  # loaders.VideoVAE (family "ltx2", carries the audio VAE)
    audio: AudioDecoderModules
    family: str = "ltx2"
    geometry: VideoGeometry = field(default_factory=VideoGeometry)
    preview_factors: tuple | None = field(default=None, repr=False)
    _streamer: object = field(default=None, repr=False)
    _encoders: dict = field(default_factory=dict, repr=False)
    _contexts: tuple | None = field(default=None, repr=False)  # (key, contexts) of the last prompts encoded

    @property
    def transformer(self) -> torch.nn.Module:
        return self.checkpoint.transformer

    @property
    def version(self) -> str:
        return self.checkpoint.version

    @property
    def distilled(self) -> bool:
        return self.checkpoint.distilled

    def acquire(self) -> torch.nn.Module:
        """The transformer ready to run on `device`: all of it there, or (memory "stream blocks", or "auto" on a GPU
        whose free memory it does not fit) its blocks streamed through the device (model/streaming.py; "stream
        blocks" keeps half of them resident when all would fit, and also works on the CPU)."""
        from ..model.streaming import module_bytes, plan_resident_blocks, stream_blocks

        transformer = self.transformer
        if self._streamer is not None:
            return transformer
        cuda = self.device.type == "cuda"
        if self.memory == "resident" or (self.memory == "auto" and not cuda):
            host.free_memory_for(host.module_bytes(transformer), self.device)
            return transformer.to(self.device)
        blocks = transformer.transformer_blocks
        resident = None
        if cuda:
            free, _ = torch.cuda.mem_get_info(self.device)
            other = module_bytes(transformer) - sum(module_bytes(b) for b in blocks)
            try:
                resident = plan_resident_blocks(blocks, free, ACTIVATION_RESERVE, other)
            except ValueError as e:
                raise InputError(f"memory: {e}") from e
        if resident is None and self.memory == "stream blocks":
            resident = max(2, len(blocks) // 2)
        if resident is None:
            return transformer.to(self.device)
        logger.info("VideoDiT: streaming %d of %d LTX-2 blocks through the GPU", len(blocks) - resident, len(blocks))
        self._streamer = stream_blocks(transformer, blocks, self.device, resident)
        return transformer

    def release(self):
        if self._streamer is not None:
            self._streamer.remove()
            self._streamer = None
            self.transformer.to(host.offload_device())
        elif self.offload:
            self.transformer.to(host.offload_device())

    def text_encoder(self, encoder: GemmaTextEncoder):
        """The LTX2TextEncoder of this checkpoint's text path and that Gemma (checked as a pair first)."""
        from ..model.checkpoint import CheckpointError, check_text_encoder_pair, text_path_with_gemma
        from ..model.ltx2.text_encoder import LTX2TextEncoder, prompt_rule

        key = id(encoder.gemma)
        if key not in self._encoders:
            try:
                check_text_encoder_pair(self.checkpoint, encoder.gemma)
                text_path = text_path_with_gemma(self.checkpoint, encoder.gemma, self.dtype)
                self._encoders = {key: LTX2TextEncoder(encoder.gemma, text_path, prompt_rule(self.version))}
            except (CheckpointError, ValueError) as e:
                raise InputError(f"text encoder {encoder.gemma.path} and model {self.path} do not pair: {e}") from e
        return self._encoders[key]

    def encode(self, prompts: list[LTX2Prompt]):
        """Prompts (same Gemma) -> one sampling.TextContext per prompt on the model's device and dtype, in one
        encoder call (the last result is kept: a new seed does not run Gemma again)."""
        from ..model.ltx2.sampling import TextContext

        encoder = prompts[0].encoder
        key = (id(encoder.gemma), tuple(p.text for p in prompts), str(self.device), str(self.dtype))
        if self._contexts is not None and self._contexts[0] == key:
            return self._contexts[1]
        text_encoder = self.text_encoder(encoder)
        with torch.inference_mode():
            encoded = text_encoder.encode_prompts([p.text for p in prompts], device=encoder.device)

        def row(x, i):
            return None if x is None else x[i : i + 1].to(self.device, self.dtype)

        contexts = [TextContext(video=row(encoded.video, i), audio=row(encoded.audio, i)) for i in range(len(prompts))]
        self._contexts = (key, contexts)
        return contexts


class NoAudioVAE:
    """The audio_vae output of an LTX-Video 0.9.x checkpoint, which has no audio: Audio Decode names why."""

    def __init__(self, path: str):
        self.missing = f"audio_vae: {path} is an LTX-Video 0.9.x checkpoint, which has no audio VAE (LTX-2 has one)"


def is_gemma(path: str) -> bool:
    """True for a Gemma text encoder file (LTX-2), False for T5 and anything else (load_text_encoder says why)."""
    from ..model.ltx2.gemma import is_gemma_file

    try:
        from safetensors import safe_open

        with safe_open(path, "pt") as f:
            return is_gemma_file(f.keys())
    except Exception:  # noqa: BLE001 - unreadable: the T5 loader reports it
        return False


def load_gemma_encoder(path: str, dtype: torch.dtype, device: torch.device) -> GemmaTextEncoder:
    """A Gemma file (its tokenizer inside or in a sidecar folder, model/ltx2/gemma.py) -> GemmaTextEncoder."""
    from ..model.checkpoint import CheckpointError
    from ..model.ltx2.gemma import load_gemma

    try:
        return GemmaTextEncoder(load_gemma(path, dtype), device)
    except CheckpointError as e:
        raise InputError(f"text_encoder: {e}") from e


def check_prompt(name: str, value, family: str) -> None:
    """InputError when a conditioning was made by the other family's text encoder."""
    is_ltx2 = isinstance(value, LTX2Prompt)
    if family == "ltx2" and not is_ltx2:
        raise InputError(
            f"{name}: this conditioning comes from a T5 text encoder (LTX-Video 0.9.x); the LTX-2 model needs a Gemma "
            "text encoder: choose a Gemma file (e.g. gemma_3_12B_it.safetensors; LTX-2.5: its Gemma 4 file) in VideoDiT "
            "Text Encoder Loader"
        )
    if family != "ltx2" and is_ltx2:
        raise InputError(
            f"{name}: this conditioning comes from the Gemma text encoder {value.encoder.gemma.path} (LTX-2); the "
            "LTX-Video 0.9.x model needs a T5 text encoder (e.g. t5xxl_fp16.safetensors)"
        )


def check_family(name: str, latent: dict, family: str, what: str) -> None:
    """InputError when a LATENT says another model family made it."""
    made = latent.get("family") if isinstance(latent, dict) else None
    if made is not None and made != family:
        names = {"ltx2": "LTX-2", "ltxv": "LTX-Video 0.9.x"}
        raise InputError(
            f"{name}: this latent was made for an {names.get(made, made)} model, but the {what} is "
            f"{names.get(family, family)}; use the model, VAE and latents of one checkpoint"
        )


def audio_entries(audio_vae, batch: int, frames: int, frame_rate: float) -> dict:
    """The audio keys of an empty joint latent: a zero audio latent of the video's duration."""
    from ..model.ltx2.latents import audio_token_count

    config = audio_vae.config
    tokens = audio_token_count(frames, frame_rate)
    return {
        "audio_samples": torch.zeros(batch, config.latent_channels, tokens, config.latent_mel_bins),
        "audio_given": False,
        "audio_seconds": frames / frame_rate,
    }


def load_ltx2_files(paths: list[str], names: dict, dtype, device, offload: bool, memory: str, keep_fp8: bool):
    """LTX-2 file(s) -> (LTX2Model, VideoVAE, AudioDecoderModules). `names`: {path: input name} for messages."""
    from ..model.checkpoint import CheckpointError, load_ltx2_checkpoint
    from ..model.pipeline import model_family
    from .loaders import VideoVAE

    for path in paths[1:]:
        try:
            family = model_family(path)
        except CheckpointError as e:
            raise InputError(f"{names[path]}: {e}") from e
        if family != "ltx2":
            raise InputError(
                f"{names[path]}: {path} is an LTX-Video 0.9.x checkpoint; the LTX-2 transformer {paths[0]} needs "
                "LTX-2 parts (e.g. ltx-2.5-video-vae-conv-bf16.safetensors / ltx-2.5-audio-vae-bf16.safetensors "
                "from models/vae), or none for a single-file LTX-2.0/2.3 checkpoint"
            )
    try:
        checkpoint = load_ltx2_checkpoint(paths, dtype, "cpu", keep_fp8=keep_fp8)
    except CheckpointError as e:
        raise InputError(str(e)) from e
    missing = [name for name in MODULE_INPUTS if getattr(checkpoint, name) is None]
    if missing:
        inputs = list(dict.fromkeys(MODULE_INPUTS[m] for m in missing))
        raise InputError(
            f"{', '.join(paths)}: no {' and no '.join(m.replace('_', ' ') for m in missing)} in these files; give "
            f"{'; '.join(inputs)}"
        )
    for module in (checkpoint.transformer, checkpoint.video_vae, checkpoint.audio_vae, checkpoint.vocoder):
        module.eval().requires_grad_(False)
    where = ", ".join(paths)
    geometry = VideoGeometry.of(checkpoint.video_vae.config, checkpoint.transformer.config)
    audio = AudioDecoderModules(checkpoint.audio_vae, checkpoint.vocoder, device, offload, where)
    vae = VideoVAE(checkpoint.video_vae, device, dtype, offload, where, "ltx2", geometry)
    vae.audio = audio
    model = LTX2Model(checkpoint, where, device, dtype, offload, memory, vae, audio, geometry=geometry)
    if not offload:
        model.acquire()
        vae.acquire()
        audio.acquire()
    return model, vae, audio
