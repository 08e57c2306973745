"""Latent nodes: empty video latent, image(s) to video keyframes, VAE encode and decode.

LATENT dicts hold "samples" (B, 128, F', H', W') in the NORMALIZED latent space (per-channel statistics applied,
the same space as ComfyUI's native LTXV latents, so latents cross over both ways) plus our keys:
  "frame_rate"  float, the video's frame rate (the DiT's temporal positions depend on it)
  "width", "height", "frames"  the pixel size and frame count the latent stands for
  "keyframes"   list of model.conditioning.Keyframe (normalized latents, pixel frame, strength) from Image To Video
  "family"      "ltxv" / "ltx2": the model family whose VAE made it (when a VAE was connected); nodes check it
LTX-2 latents also hold the audio ("audio_samples", ...: the joint latent of nodes/ltx2_models.py).
Keys other nodes do not know are ignored by them; native nodes copy the dict and keep them.

Each node translates ComfyUI types to one shared step of model/frontend.py (the functions VideoPipeline calls),
run for the VAE's model family (frontend.steps_for); latent shapes and valid sizes come from the VAE's geometry.
"""

from contextlib import contextmanager
from dataclasses import replace

import torch

from ..model import frontend
from ..model.preprocess import DEFAULT_CRF
from . import host
from .common import (
    CATEGORY,
    GEOMETRY,
    MAX_FRAMES,
    MAX_RESOLUTION,
    VAE_TYPE,
    InputError,
    check_inputs,
    size_problems,
)
from .ltx2_models import audio_entries, check_family

DEFAULT_FRAME_RATE = 25.0
MAX_KEYFRAME_IMAGES = 3
STEP = GEOMETRY.pixel_step  # widget step of width/height
FRAME_STEP = GEOMETRY.temporal_factor


def latent_geometry(latent: dict, geometry=GEOMETRY) -> tuple[int, int, int, float]:
    """(width, height, frames, frame_rate) a LATENT stands for: our keys when they fit the samples' shape, else
    derived from the shape (a native LTXV latent, or one another node resized)."""
    samples = latent["samples"]
    if samples.ndim != 5 or samples.shape[1] != geometry.latent_channels:
        raise InputError(
            f"latent: expected a video latent (B, {geometry.latent_channels}, F, H, W), got shape "
            f"{tuple(samples.shape)} (is it an image latent from another model?)"
        )
    _, _, f, h, w = samples.shape
    width, height, frames = geometry.pixel_shape(f, h, w)

    def stored(key, derived, step):
        value = latent.get(key)
        return int(value) if value is not None and derived - step < int(value) <= derived else derived

    width = stored("width", width, geometry.spatial_factor)
    height = stored("height", height, geometry.spatial_factor)
    frames = stored("frames", frames, geometry.temporal_factor)
    return width, height, frames, float(latent.get("frame_rate", DEFAULT_FRAME_RATE))


def video_latent(samples: torch.Tensor, width: int, height: int, frames: int, frame_rate: float) -> dict:
    """A LATENT carrying the pixel size, length and frame rate that latent_geometry reads back."""
    return {"samples": samples, "frame_rate": float(frame_rate), "width": width, "height": height, "frames": frames}


def latent_seed(latent: dict) -> int:
    """The sampling seed VideoDiT Sampler stored in the latent; 0 for latents without one (or a non-integer)."""
    seed = latent.get("seed")
    return int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else 0


@contextmanager
def input_error(prefix: str = ""):
    """A ValueError of a shared step becomes an InputError (the node's message type), optionally prefixed."""
    try:
        yield
    except InputError:
        raise
    except ValueError as e:
        raise InputError(f"{prefix}{e}") from e


class VideoDiTEmptyLatentVideo:
    DESCRIPTION = (
        "An empty (all-zero) video latent of the given size and length: the start of text-to-video. "
        f"Sizes must be multiples of {STEP} and frame counts {FRAME_STEP}k+1; other values are rejected with the "
        "nearest valid ones."
    )
    CATEGORY = CATEGORY
    FUNCTION = "generate"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = (
        f"Zero latent (B, {GEOMETRY.latent_channels}, (frames-1)/{FRAME_STEP}+1, height/{GEOMETRY.spatial_factor}, "
        f"width/{GEOMETRY.spatial_factor}) carrying the frame rate and pixel size. With an LTX-2 VAE also the audio "
        "latent of the same duration: frames / frame_rate seconds (97 frames at 25 fps = 3.88 s), 25 audio latents "
        "per second.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        def side(default, name):
            tooltip = f"Video {name} in pixels, a multiple of {STEP} ({default} for the 2B model)."
            return ("INT", {"default": default, "min": STEP, "max": MAX_RESOLUTION, "step": STEP, "tooltip": tooltip})

        t = FRAME_STEP
        return {
            "required": {
                "width": side(768, "width"),
                "height": side(512, "height"),
                "frames": (
                    "INT",
                    {
                        "default": 97,
                        "min": 1,
                        "max": MAX_FRAMES,
                        "step": t,
                        "tooltip": f"Number of frames, {t}k+1 (1, {t + 1}, {2 * t + 1}, ..., 97, 121, ...).",
                    },
                ),
                "frame_rate": (
                    "FLOAT",
                    {
                        "default": DEFAULT_FRAME_RATE,
                        "min": 1.0,
                        "max": 240.0,
                        "step": 0.01,
                        "tooltip": "Frames per second the video is generated for (the model sees it); "
                        "use the same value when saving.",
                    },
                ),
                "batch_size": (
                    "INT",
                    {"default": 1, "min": 1, "max": 64, "tooltip": "How many videos to generate at once."},
                ),
            },
            "optional": {
                "vae": (
                    VAE_TYPE,
                    {
                        "tooltip": "Optional: the model's VAE (VideoDiT Model Loader). Its latent size rules are "
                        "used, and with an LTX-2 VAE the latent holds audio too: sound as long as the video "
                        "(frames / frame_rate seconds)."
                    },
                ),
                "two_stage": (
                    "BOOLEAN",
                    {
                        "default": False,
                        "tooltip": "Two-stage graphs (LTX-2): width and height are the final size and the latent is "
                        "made at half of it for stage 1 (VideoDiT Latent Upsample x2 brings it back), so both must "
                        f"be multiples of {2 * STEP}.",
                    },
                ),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, width, height, frames):
        problems = size_problems(width, height, frames)
        return "; ".join(problems) if problems else True

    def generate(self, width, height, frames, frame_rate, batch_size, vae=None, two_stage=False):
        check_inputs(
            type(self), dict(width=width, height=height, frames=frames, frame_rate=frame_rate, batch_size=batch_size)
        )
        geometry = GEOMETRY if vae is None else vae.geometry
        problems = size_problems(width, height, frames, geometry=geometry)
        if problems:
            raise InputError("; ".join(problems))
        if two_stage:
            doubled = replace(geometry, patch_size=geometry.patch_size * 2)
            problems = size_problems(width, height, frames, geometry=doubled)
            if problems:
                raise InputError(
                    f"two_stage: stage 1 runs at half the width and height, which must be multiples of "
                    f"{geometry.pixel_step} too, so width and height must be multiples of {doubled.pixel_step}: "
                    + "; ".join(problems)
                )
            width, height = width // 2, height // 2
        samples = frontend.empty_latent(geometry, width, height, frames, batch_size)
        latent = video_latent(samples, width, height, frames, frame_rate)
        if vae is not None:
            latent["family"] = vae.family
            if vae.audio is not None:
                latent.update(audio_entries(vae.audio.audio_vae, batch_size, frames, frame_rate))
        return (latent,)


class VideoDiTImageToVideo:
    DESCRIPTION = (
        "Adds images as keyframes to a video latent: image_1 at frame 0 is classic image-to-video; "
        "add image_2 at frame -1 for first-and-last-frame interpolation, or put images at any frame. "
        f"An IMAGE batch of {FRAME_STEP}k+1 frames is used as a video clip starting at its frame index "
        "(clips are never trimmed: one that does not fit is an error)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The same latent, carrying the encoded keyframes (the sampler conditions on them).",)

    @classmethod
    def INPUT_TYPES(cls):
        def slot(i, default_frame):
            return {
                f"frame_index_{i}": (
                    "INT",
                    {
                        "default": default_frame,
                        "min": -MAX_FRAMES,
                        "max": MAX_FRAMES,
                        "tooltip": f"Frame where image_{i} goes: 0 = first, -1 = last, any "
                        f"frame between (negative counts from the end). A clip "
                        f"after frame 0 must start at a multiple of {FRAME_STEP}.",
                    },
                ),
                f"strength_{i}": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": f"How strictly the video follows image_{i}: 1 = exactly, "
                        f"lower values let the model change it.",
                    },
                ),
            }

        required = {
            "vae": (VAE_TYPE, {"tooltip": "The VAE from VideoDiT Model Loader (encodes the images)."}),
            "latent": (
                "LATENT",
                {
                    "tooltip": "The video latent, e.g. from VideoDiT Empty Latent Video; it sets the "
                    "size and length the images are fitted to."
                },
            ),
            "image_1": (
                "IMAGE",
                {"tooltip": f"First keyframe image (or a {FRAME_STEP}k+1-frame clip), e.g. from Load Image."},
            ),
            **slot(1, 0),
            "crf": (
                "INT",
                {
                    "default": DEFAULT_CRF,
                    "min": 0,
                    "max": 51,
                    "tooltip": "Compress each image like a video frame (blur + H.264 at this CRF) before "
                    "encoding, as LTX-Video saw in training; this helps the image move. "
                    "0 = off. 29 is the official default, 35-40 gives more motion "
                    "(LTX-2's official value: 33 for 2.0/2.3).",
                },
            ),
        }
        optional = {}
        for i in range(2, MAX_KEYFRAME_IMAGES + 1):
            optional[f"image_{i}"] = ("IMAGE", {"tooltip": f"Optional keyframe image {i}."})
            optional.update(slot(i, -1))
        return {"required": required, "optional": optional}

    def apply(self, vae, latent, image_1, frame_index_1, strength_1, crf, **more):
        values = dict(frame_index_1=frame_index_1, strength_1=strength_1, crf=crf, **more)
        check_inputs(type(self), values)
        steps = frontend.steps_for(vae.family)
        check_family("latent", latent, vae.family, "vae")
        width, height, frames, _ = latent_geometry(latent, vae.geometry)
        samples = latent["samples"]
        _, _, _, h, w = samples.shape
        images = [(1, image_1, frame_index_1, strength_1)]
        images += [
            (i, more[f"image_{i}"], more.get(f"frame_index_{i}", -1), more.get(f"strength_{i}", 1.0))
            for i in range(2, MAX_KEYFRAME_IMAGES + 1)
            if more.get(f"image_{i}") is not None
        ]
        keyframes = list(latent.get("keyframes", ()))
        # the keyframes are fitted to the latent's full pixel size (what the sampler's tokens cover)
        full_width, full_height, full_frames = vae.geometry.pixel_shape(samples.shape[2], h, w)
        module = vae.acquire()
        try:
            for i, image, index, strength in images:
                if not isinstance(image, torch.Tensor) or image.ndim != 4:
                    raise InputError(
                        f"image_{i}: expected an IMAGE (frames, height, width, channels), got "
                        f"{getattr(image, 'shape', type(image).__name__)}"
                    )
                with input_error():
                    start = vae.geometry.keyframe_start(f"image_{i}", f"frame_index_{i}", index, image.shape[0], frames)
                    keyframe = steps.encode_keyframe(
                        module,
                        image,
                        start,
                        strength,
                        full_width,
                        full_height,
                        full_frames,
                        vae.geometry,
                        crf,
                        (f"image_{i}", f"frame_index_{i}"),
                    )
                keyframes.append(type(keyframe)(keyframe.latent.cpu(), keyframe.pixel_frame, keyframe.strength))
        finally:
            vae.release()
        out = dict(latent)
        out["keyframes"] = keyframes
        return (out,)


class VideoDiTVAEEncode:
    DESCRIPTION = (
        f"Encodes a video (IMAGE batch of {FRAME_STEP}k+1 frames, sides multiples of {STEP}) to a video latent, "
        "as it is (no resize, no compression)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = (
        f"Normalized video latent (B=1, {GEOMETRY.latent_channels}, (frames-1)/{FRAME_STEP}+1, "
        f"height/{GEOMETRY.spatial_factor}, width/{GEOMETRY.spatial_factor}).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": (VAE_TYPE, {"tooltip": "The VAE from VideoDiT Model Loader."}),
                "images": (
                    "IMAGE",
                    {"tooltip": f"Frames to encode: {FRAME_STEP}k+1 of them, width and height multiples of {STEP}."},
                ),
                "frame_rate": (
                    "FLOAT",
                    {
                        "default": DEFAULT_FRAME_RATE,
                        "min": 1.0,
                        "max": 240.0,
                        "step": 0.01,
                        "tooltip": "Frame rate of these frames (kept with the latent).",
                    },
                ),
            }
        }

    def encode(self, vae, images, frame_rate):
        check_inputs(type(self), dict(frame_rate=frame_rate))
        module = vae.acquire()
        try:
            with input_error():
                samples = frontend.encode_frames(module, images, vae.geometry).cpu()
        finally:
            vae.release()
        frames, height, width = images.shape[0], images.shape[1], images.shape[2]
        return (dict(video_latent(samples, width, height, frames, frame_rate), family=vae.family),)


class VideoDiTVAEDecode:
    DESCRIPTION = (
        "Decodes a video latent to frames (IMAGE batch), with the timestep-conditioned decoder's "
        "last denoising step when the VAE has one."
    )
    CATEGORY = CATEGORY
    FUNCTION = "decode"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = (
        "Frames (frames x height x width x 3, values 0-1): exactly the size and length the latent "
        "was made for. Batches are concatenated along the frames.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": (VAE_TYPE, {"tooltip": "The VAE from VideoDiT Model Loader."}),
                "latent": ("LATENT", {"tooltip": "Video latent from VideoDiT Sampler (or a native LTXV sampler)."}),
                "decode_timestep": (
                    "FLOAT",
                    {
                        "default": frontend.DECODE_TIMESTEP,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.001,
                        "tooltip": "Timestep the decoder denoises at (0.9.1+ VAEs; ignored by "
                        "others). 0.05 is the official default.",
                    },
                ),
                "decode_noise_scale": (
                    "FLOAT",
                    {
                        "default": frontend.DECODE_NOISE_SCALE,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.001,
                        "tooltip": "Noise mixed into the latent before that last denoising "
                        "step, drawn from the seed VideoDiT Sampler used (official "
                        "0.025; ignored by VAEs without timestep conditioning).",
                    },
                ),
                "tiling": (
                    list(frontend.TILING),
                    {
                        "default": "auto",
                        "tooltip": "Decode in overlapping tiles (blended seams) to save memory. auto: "
                        "only when the whole decode would not fit in free memory.",
                    },
                ),
            }
        }

    def decode(self, vae, latent, decode_timestep, decode_noise_scale, tiling):
        check_inputs(
            type(self), dict(decode_timestep=decode_timestep, decode_noise_scale=decode_noise_scale, tiling=tiling)
        )
        steps = frontend.steps_for(vae.family)
        check_family("latent", latent, vae.family, "vae")
        width, height, frames, _ = latent_geometry(latent, vae.geometry)
        module = vae.acquire()
        try:
            host.check_interrupt()
            # decode-time noise (0.9.1+ VAEs) from the sampling seed the sampler left in the latent (0 for latents
            # from elsewhere): the same video as VideoPipeline for the same seed
            with torch.inference_mode():
                video = steps.decode(
                    module, latent["samples"], latent_seed(latent), decode_timestep, decode_noise_scale, tiling, "cpu"
                )
        finally:
            vae.release()
        video = video[:, :frames, :height, :width]  # (B, F, H, W, 3): exactly the size the latent was made for
        return (video.reshape(-1, *video.shape[2:]).contiguous(),)
