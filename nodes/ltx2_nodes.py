"""Nodes for jobs only LTX-2 has: Audio To Video (a given soundtrack conditions the video) and Latent Upsample (the
latent upsamplers of the two-stage pipeline).

Two-stage graph (= LTX2Pipeline.generate(two_stage=True)): Empty Latent Video (two_stage on: the latent is made at
half the size) -> [Image To Video] -> Sampler -> Latent Upsample (x2 spatial) -> [Image To Video again, at the new
size] -> Sampler with schedule distilled_stage_2 and the same seed -> VAE Decode + Audio Decode.
"""

import logging
import os

import torch

from ..model.ltx2.audio_io import fit_audio, fit_length, video_samples
from .audio import audio_dict, check_audio
from .common import CATEGORY, VAE_TYPE, InputError
from .latents import latent_geometry
from .loaders import cached, resolve_file
from .ltx2_models import check_family

logger = logging.getLogger("videodit")


def _ltx2_vae(vae, what: str):
    if getattr(vae, "family", None) != "ltx2" or vae.audio is None:
        raise InputError(
            f"vae: {what} needs the VAE of an LTX-2 checkpoint (VideoDiT Model Loader with an LTX-2 file); got the "
            f"{getattr(vae, 'family', type(vae).__name__)} VAE of {getattr(vae, 'path', '?')}"
        )


class VideoDiTAudioToVideo:
    DESCRIPTION = (
        "LTX-2 audio-to-video: a soundtrack (ComfyUI AUDIO, e.g. from Load Audio) conditions the video. The track is "
        "resampled to the audio VAE's rate and trimmed or padded with silence to the video's duration (the console "
        "says which), encoded, and kept as it is while the sampler makes the picture."
    )
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("LATENT", "AUDIO")
    RETURN_NAMES = ("latent", "audio")
    OUTPUT_TOOLTIPS = (
        "The latent with the encoded track as its (given) audio.",
        "The track trimmed or padded to the video's duration at its own rate: connect it to Save Video (the "
        "pipeline returns the given track, not a decoded copy).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": (VAE_TYPE, {"tooltip": "The VAE of the LTX-2 Model Loader (it carries the audio VAE)."}),
                "latent": ("LATENT", {"tooltip": "The video latent (Empty Latent Video, Image To Video)."}),
                "audio": ("AUDIO", {"tooltip": "The soundtrack, e.g. from Load Audio; the first of a batch is used."}),
            }
        }

    def apply(self, vae, latent, audio):
        from ..model.ltx2.latents import audio_token_count

        _ltx2_vae(vae, "Audio To Video")
        check_family("latent", latent, "ltx2", "vae")
        waveform, rate = check_audio(audio)
        if waveform.shape[0] > 1:
            logger.warning("VideoDiT Audio To Video: audio has a batch of %d tracks; the first is used", len(waveform))
        track = waveform[0]
        _, _, frames, fps = latent_geometry(latent, vae.geometry)
        config = vae.audio.audio_vae.config
        vae_rate = config.mel.sample_rate
        try:
            fitted, message = fit_audio(track, rate, vae_rate, video_samples(frames, fps, vae_rate), config.in_channels)
        except ValueError as e:
            raise InputError(str(e)) from e
        if message:
            logger.warning("VideoDiT Audio To Video: %s (%d frames at %.6g fps)", message, frames, fps)
        audio_vae, _ = vae.audio.acquire()
        try:
            with torch.inference_mode():
                device = next(audio_vae.parameters()).device
                encoded = audio_vae.encode_waveform(fitted[None].to(device), vae_rate)
        finally:
            vae.audio.release()
        encoded = encoded[:, :, : audio_token_count(frames, fps)]  # as the pipeline: the encoded track cropped
        given, _ = fit_length(track, video_samples(frames, fps, rate), rate)
        out = dict(latent, audio_samples=encoded.float().cpu(), audio_given=True, family="ltx2")
        out["audio_seconds"] = frames / fps
        return out, audio_dict(given[None], rate)


NO_UPSCALER = "(none found in models/latent_upscale_models)"


def upscale_model_choices() -> list[str]:
    from . import host

    return host.list_models("latent_upscale_models") or [NO_UPSCALER]


class VideoDiTLatentUpsample:
    DESCRIPTION = (
        "Upsamples a video latent with an LTX latent upsampler from models/latent_upscale_models (spatial x2 or x1.5, "
        "temporal x2): the step between the two stages of the two-stage pipeline. The audio is kept; keyframes are "
        "dropped (add Image To Video again for keyframes at the new size)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "upsample"
    MODEL_FOLDERS = {"upscale_model": "latent_upscale_models"}
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The latent at the upsampler's size (frame rate doubled by a temporal upsampler).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": (VAE_TYPE, {"tooltip": "The VAE of the same checkpoint (its latent statistics are used)."}),
                "latent": ("LATENT", {"tooltip": "The stage-1 latent from VideoDiT Sampler."}),
                "upscale_model": (
                    upscale_model_choices(),
                    {
                        "tooltip": "Latent upsampler from models/latent_upscale_models, e.g. "
                        "ltx-2.3-spatial-upscaler-x2-1.0.safetensors (x1.5 and temporal x2 files work too)."
                    },
                ),
            }
        }

    def upsample(self, vae, latent, upscale_model):
        from ..model.checkpoint import CheckpointError, load_latent_upsampler
        from ..model.ltx2.video_vae import upsample_normalized
        from . import host

        check_family("latent", latent, vae.family, "vae")
        if upscale_model == NO_UPSCALER:
            raise InputError(
                "upscale_model: no latent upsampler file was found; put one (e.g. "
                f"ltx-2.3-spatial-upscaler-x2-1.0.safetensors) in {host.describe_search('latent_upscale_models')}"
            )
        path = resolve_file("latent_upscale_models", upscale_model)
        key = (os.path.realpath(path), os.path.getmtime(path), str(vae.dtype))
        try:
            upsampler = cached("latent_upsampler", key, lambda: load_latent_upsampler(path, vae.dtype).eval())
        except CheckpointError as e:
            raise InputError(f"upscale_model: {e}") from e
        config = upsampler.config
        width, height, frames, fps = latent_geometry(latent, vae.geometry)
        samples = latent["samples"]
        if config.in_channels != samples.shape[1]:
            raise InputError(
                f"upscale_model: {upscale_model} upsamples {config.in_channels}-channel latents, this latent has "
                f"{samples.shape[1]}; use the upsampler of the same model family"
            )
        scale = config.spatial_scale if config.spatial_upsample else 1.0
        rows, columns = samples.shape[3] * scale, samples.shape[4] * scale
        if rows != int(rows) or columns != int(columns):
            raise InputError(
                f"latent: {samples.shape[3]} x {samples.shape[4]} latent rows x columns times {scale:g} is not whole; "
                f"with a x{scale:g} upsampler use a width and height whose latent sides are even (multiples of 64 px)"
            )
        module = vae.acquire()
        try:
            upsampler.to(vae.device)
            with torch.inference_mode():
                out = upsample_normalized(samples.to(vae.device, vae.dtype), module, upsampler).float().cpu()
        finally:
            upsampler.to("cpu")
            vae.release()
        width = round(width * scale) if config.spatial_upsample else width
        height = round(height * scale) if config.spatial_upsample else height
        if config.temporal_upsample:
            frames, fps = vae.geometry.pixel_shape(*out.shape[2:])[2], fps * 2
        result = {k: v for k, v in latent.items() if k != "keyframes"}
        result.update(samples=out, width=width, height=height, frames=frames, frame_rate=fps)
        return (result,)
