"""AUDIO in the node pack: checking ComfyUI's AUDIO dicts, making them, the soundtrack of Save Video, and the
Audio Decode node (LTX-2 audio latent -> AUDIO).

ComfyUI's AUDIO (core LoadAudio / SaveAudio / CreateVideo, comfy_extras/nodes_audio.py) is a dict with exactly two
keys: "waveform", a float32 CPU tensor (batch, channels, samples), and "sample_rate", an int in Hz. What this pack
returns has that layout, so it feeds core SaveAudio and CreateVideo -> SaveVideo as well as our Save Video.

The audio VAE socket (VIDEODIT_AUDIO_VAE) carries an object with the protocol of `AudioDecoderModules`:
`audio_vae` (model.ltx2.audio_vae.AudioVAE), `vocoder` (model.ltx2.vocoder.Vocoder / VocoderWithBWE), `acquire()`
-> both modules on their compute device, `release()`. A loader builds an `AudioDecoderModules` from its modules.
"""

import logging
import numbers
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..model.ltx2.audio_io import check_waveform, decode_audio, fit_length, video_samples
from . import host
from .common import CATEGORY, InputError
from .video_io import AUDIO_CHANNELS, AUDIO_CODECS, FORMATS

logger = logging.getLogger("videodit")

AUDIO_VAE_TYPE = "VIDEODIT_AUDIO_VAE"
AUDIO_LAYOUT = '{"waveform": float tensor (batch, channels, samples), "sample_rate": int}'


def audio_dict(waveform: torch.Tensor, sample_rate: int) -> dict:
    """ComfyUI's AUDIO: exactly {"waveform": float32 contiguous CPU (B, C, T), "sample_rate": int}."""
    return {"waveform": waveform.detach().float().cpu().contiguous(), "sample_rate": int(sample_rate)}


def check_audio(audio, name: str = "audio") -> tuple[torch.Tensor, int]:
    """(waveform float32 CPU (B, C, T), sample_rate) of a ComfyUI AUDIO; InputError naming `name` and the layout
    that would work for anything else (not a dict, wrong dims, empty, non-finite, a rate that is not a positive
    int)."""
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        shown = sorted(audio) if isinstance(audio, dict) else type(audio).__name__
        raise InputError(f"{name}: expected ComfyUI AUDIO {AUDIO_LAYOUT} (e.g. from Load Audio), got {shown}")
    waveform, rate = audio["waveform"], audio["sample_rate"]
    if not isinstance(waveform, torch.Tensor):
        raise InputError(f"{name}: waveform must be a torch tensor as in {AUDIO_LAYOUT}, got {type(waveform).__name__}")
    if waveform.ndim != 3:
        raise InputError(
            f"{name}: waveform must be (batch, channels, samples) as in {AUDIO_LAYOUT}, got shape "
            f"{tuple(waveform.shape)}" + (" (add the batch dimension: waveform[None])" if waveform.ndim == 2 else "")
        )
    try:
        check_waveform(waveform, f"{name} waveform")
    except ValueError as e:
        raise InputError(str(e)) from e
    if isinstance(rate, bool) or not isinstance(rate, numbers.Integral) or rate <= 0:
        raise InputError(f"{name}: sample_rate must be a positive int (Hz, e.g. 44100), got {rate!r}")
    return waveform.detach().float().cpu(), int(rate)


def soundtrack(audio, fmt: str, num_frames: int, fps: float) -> tuple[np.ndarray, int]:
    """The audio Save Video muxes: float32 (channels, samples) at its own rate, exactly as long as the video
    (num_frames / fps s): a longer track is trimmed at the end, a shorter one padded with silence (logged). Of a
    batch of tracks the first is used (logged), as current ComfyUI's CreateVideo -> SaveVideo does
    (VideoFromComponents.save_to writes waveform[0]; 0.3.64 wrote the items end to end)."""
    waveform, rate = check_audio(audio)
    if FORMATS[fmt][1] not in AUDIO_CODECS:
        choices = [f for f, (_, muxer) in FORMATS.items() if muxer in AUDIO_CODECS]
        raise InputError(f"format {fmt!r} cannot hold audio: choose one of {choices}, or disconnect the audio input")
    batch, channels, _ = waveform.shape
    if channels not in AUDIO_CHANNELS:
        shown = ", ".join(f"{n} ({layout})" for n, layout in AUDIO_CHANNELS.items())
        raise InputError(f"audio: {channels} channels cannot be saved; Save Video writes {shown} channels")
    if batch > 1:
        logger.warning("VideoDiT Save Video: audio has a batch of %d tracks; the video gets the first one", batch)
    track, message = fit_length(waveform[0], video_samples(num_frames, fps, rate), rate)
    if message:
        logger.warning("VideoDiT Save Video: %s (%d frames at %.6g fps)", message, num_frames, fps)
    return np.ascontiguousarray(track.numpy(), dtype=np.float32), rate


@dataclass
class AudioDecoderModules:
    """VIDEODIT_AUDIO_VAE: the LTX-2 audio VAE and vocoder, where they run, and whether they leave the GPU after
    each use."""

    audio_vae: nn.Module
    vocoder: nn.Module
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    offload: bool = False
    path: str = ""

    def acquire(self) -> tuple[nn.Module, nn.Module]:
        modules = []
        for module in (self.audio_vae, self.vocoder):
            if next(module.parameters()).device != self.device:
                host.free_memory_for(host.module_bytes(module), self.device)
            modules.append(module.to(self.device))
        return modules[0], modules[1]

    def release(self):
        if self.offload:
            self.audio_vae.to(host.offload_device())
            self.vocoder.to(host.offload_device())


def audio_latent_samples(latent, audio_vae: nn.Module) -> torch.Tensor:
    """The (B, C, T', F') audio latent in a LATENT: the "audio_samples" of our joint audio+video latent
    (nodes/ltx2_models.py), its "samples", or the 4-D part of ComfyUI's combined audio+video latent (a nested tensor
    of [video, audio]); InputError when it does not fit the audio VAE."""
    samples = None
    if isinstance(latent, dict):
        samples = latent["audio_samples"] if latent.get("audio_samples") is not None else latent.get("samples")
    parts = getattr(samples, "tensors", None)  # comfy's NestedTensor
    if parts is not None:
        samples = next((part for part in parts if isinstance(part, torch.Tensor) and part.ndim == 4), None)
    config = getattr(audio_vae, "config", None)
    channels = getattr(config, "latent_channels", None)
    bins = getattr(config, "latent_mel_bins", None)
    expected = f"(batch, {channels or 'C'}, frames, {bins or 'mel bins'})"
    if not isinstance(samples, torch.Tensor) or samples.ndim != 4:
        shown = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise InputError(f"latent: expected an LTX-2 audio latent {expected}, got {shown} (is it a video latent?)")
    if (channels is not None and samples.shape[1] != channels) or (bins is not None and samples.shape[3] != bins):
        raise InputError(f"latent: this audio VAE decodes {expected} latents, got shape {tuple(samples.shape)}")
    if samples.shape[0] == 0 or samples.shape[2] == 0:
        raise InputError(f"latent: the audio latent is empty (shape {tuple(samples.shape)})")
    return samples


class VideoDiTAudioDecode:
    DESCRIPTION = (
        "Decodes an LTX-2 audio latent to AUDIO: the audio VAE's decoder gives a stereo mel spectrogram, the "
        "vocoder the waveform at its output rate (24 kHz for LTX-2.0, 48 kHz for 2.3+). The result plugs into "
        "VideoDiT Save Video, core SaveAudio or CreateVideo."
    )
    CATEGORY = CATEGORY
    FUNCTION = "decode"
    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("audio",)
    OUTPUT_TOOLTIPS = ("Stereo waveform (batch, 2, samples) at the vocoder's rate, in ComfyUI's AUDIO layout.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "audio_vae": (AUDIO_VAE_TYPE, {"tooltip": "The LTX-2 audio VAE and vocoder from the model loader."}),
                "latent": (
                    "LATENT",
                    {
                        "tooltip": "The audio+video latent of VideoDiT Sampler (its audio part, trimmed to the "
                        "video's duration), or an audio latent (batch, 8, frames, 16)."
                    },
                ),
            }
        }

    def decode(self, audio_vae, latent):
        if getattr(audio_vae, "missing", None):
            raise InputError(audio_vae.missing)
        for attribute in ("audio_vae", "vocoder", "acquire", "release"):
            if not hasattr(audio_vae, attribute):
                raise InputError(
                    f"audio_vae: expected an LTX-2 audio VAE with a vocoder ({AUDIO_VAE_TYPE}), got "
                    f"{type(audio_vae).__name__} without '{attribute}'"
                )
        samples = audio_latent_samples(latent, audio_vae.audio_vae)
        vae_module, vocoder = audio_vae.acquire()
        try:
            host.check_interrupt()
            with torch.inference_mode():
                waveform, rate = decode_audio(vae_module, vocoder, samples)
        finally:
            audio_vae.release()
        frames, fps = latent.get("frames"), latent.get("frame_rate")
        if latent.get("audio_samples") is not None and frames and fps:
            # a joint latent: exactly as long as its video (the vocoder's (4T - 3) * hop samples trimmed or padded
            # at the end), as LTX2Pipeline.decode_audio does
            waveform, _ = fit_length(waveform, video_samples(int(frames), float(fps), rate), rate)
        return (audio_dict(waveform, rate),)
