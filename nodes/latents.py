"""Latent nodes: empty video latent, image(s) to video keyframes, VAE encode and decode.

LATENT dicts hold "samples" (B, 128, F', H', W') in the NORMALIZED latent space (per-channel statistics applied,
the same space as ComfyUI's native LTXV latents, so latents cross over both ways) plus our keys:
  "frame_rate"  float, the video's frame rate (the DiT's temporal positions depend on it)
  "width", "height", "frames"  the pixel size and frame count the latent stands for
  "keyframes"   list of model.conditioning.Keyframe (normalized latents, pixel frame, strength) from Image To Video
Keys other nodes do not know are ignored by them; native nodes copy the dict and keep them.
"""

import numpy as np
import torch
import torch.nn.functional as F

from . import host
from .common import (
    CATEGORY,
    LATENT_CHANNELS,
    MAX_FRAMES,
    MAX_RESOLUTION,
    SPATIAL_FACTOR,
    TEMPORAL_FACTOR,
    VAE_TYPE,
    InputError,
    check_frame_count,
    check_inputs,
    check_pixel_size,
)
from .video_io import h264_round_trip

DEFAULT_FRAME_RATE = 25.0
TILING = ["auto", "on", "off"]
MAX_KEYFRAME_IMAGES = 3


def latent_geometry(latent: dict) -> tuple[int, int, int, float]:
    """(width, height, frames, frame_rate) a LATENT stands for: our keys when they fit the samples' shape, else
    derived from the shape (a native LTXV latent, or one another node resized)."""
    samples = latent["samples"]
    if samples.ndim != 5 or samples.shape[1] != LATENT_CHANNELS:
        raise InputError(
            f"latent: expected a video latent (B, {LATENT_CHANNELS}, F, H, W), got shape "
            f"{tuple(samples.shape)} (is it an image latent from another model?)"
        )
    _, _, f, h, w = samples.shape

    def stored(key, derived, step):
        value = latent.get(key)
        return int(value) if value is not None and derived - step < int(value) <= derived else derived

    width = stored("width", w * SPATIAL_FACTOR, SPATIAL_FACTOR)
    height = stored("height", h * SPATIAL_FACTOR, SPATIAL_FACTOR)
    frames = stored("frames", (f - 1) * TEMPORAL_FACTOR + 1, TEMPORAL_FACTOR)
    return width, height, frames, float(latent.get("frame_rate", DEFAULT_FRAME_RATE))


def video_latent(samples: torch.Tensor, width: int, height: int, frames: int, frame_rate: float) -> dict:
    """A LATENT carrying the pixel size, length and frame rate that latent_geometry reads back."""
    return {"samples": samples, "frame_rate": float(frame_rate), "width": width, "height": height, "frames": frames}


def latent_seed(latent: dict) -> int:
    """The sampling seed VideoDiT Sampler stored in the latent; 0 for latents without one (or a non-integer)."""
    seed = latent.get("seed")
    return int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else 0


def images_to_video(images: torch.Tensor, name: str) -> torch.Tensor:
    """IMAGE (T, H, W, C) in [0, 1] -> (1, 3, T, H, W) in [-1, 1] (alpha dropped)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise InputError(
            f"{name}: expected an IMAGE tensor (frames, height, width, 3), got "
            f"{getattr(images, 'shape', type(images).__name__)}"
        )
    rgb = images[..., :3] if images.shape[-1] != 1 else images.expand(-1, -1, -1, 3)
    return (rgb.float().permute(3, 0, 1, 2)[None] * 2.0 - 1.0).clamp(-1.0, 1.0)


class VideoDiTEmptyLatentVideo:
    DESCRIPTION = (
        "An empty (all-zero) video latent of the given size and length: the start of text-to-video. "
        "Sizes must be multiples of 32 and frame counts 8k+1; other values are rejected with the "
        "nearest valid ones."
    )
    CATEGORY = CATEGORY
    FUNCTION = "generate"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = (
        "Zero latent (B, 128, (frames-1)/8+1, height/32, width/32) carrying the frame rate and pixel size.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "width": (
                    "INT",
                    {
                        "default": 768,
                        "min": SPATIAL_FACTOR,
                        "max": MAX_RESOLUTION,
                        "step": SPATIAL_FACTOR,
                        "tooltip": "Video width in pixels, a multiple of 32 (768 for the 2B model).",
                    },
                ),
                "height": (
                    "INT",
                    {
                        "default": 512,
                        "min": SPATIAL_FACTOR,
                        "max": MAX_RESOLUTION,
                        "step": SPATIAL_FACTOR,
                        "tooltip": "Video height in pixels, a multiple of 32 (512 for the 2B model).",
                    },
                ),
                "frames": (
                    "INT",
                    {
                        "default": 97,
                        "min": 1,
                        "max": MAX_FRAMES,
                        "step": TEMPORAL_FACTOR,
                        "tooltip": "Number of frames, 8k+1 (1, 9, 17, ..., 97, 121, ...).",
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
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, width, height, frames):
        problems = [
            m
            for m in (
                check_pixel_size("width", width),
                check_pixel_size("height", height),
                check_frame_count("frames", frames),
            )
            if m
        ]
        return "; ".join(problems) if problems else True

    def generate(self, width, height, frames, frame_rate, batch_size):
        check_inputs(
            type(self), dict(width=width, height=height, frames=frames, frame_rate=frame_rate, batch_size=batch_size)
        )
        message = type(self).VALIDATE_INPUTS(width, height, frames)
        if message is not True:
            raise InputError(message)
        shape = (
            batch_size,
            LATENT_CHANNELS,
            (frames - 1) // TEMPORAL_FACTOR + 1,
            height // SPATIAL_FACTOR,
            width // SPATIAL_FACTOR,
        )
        return (video_latent(torch.zeros(shape), width, height, frames, frame_rate),)


def center_crop_resize(images: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """IMAGE (T, H, W, C) -> (T, height, width, C): the pipeline's keyframe preprocessing (center crop to the target
    aspect ratio, bilinear resize), so nodes and model.pipeline prepare the same image."""
    from ..model.pipeline import preprocess_images

    video = preprocess_images(images[..., :3], width, height)  # (1, 3, T, height, width) in [-1, 1]
    return (video[0].permute(1, 2, 3, 0) + 1.0) / 2.0


def gaussian_blur_3x3(images: torch.Tensor) -> torch.Tensor:
    """Gaussian blur, kernel 3, sigma 1 (the official conditioning-image preprocessing), IMAGE layout."""
    k1 = torch.exp(-(torch.tensor([-1.0, 0.0, 1.0]) ** 2) / 2.0)
    k1 = k1 / k1.sum()
    kernel = (k1[:, None] * k1[None, :]).expand(3, 1, 3, 3)
    chw = images.permute(0, 3, 1, 2)
    chw = F.conv2d(F.pad(chw, (1, 1, 1, 1), mode="reflect"), kernel.to(chw), groups=3)
    return chw.permute(0, 2, 3, 1)


def compress_like_training(images: torch.Tensor, crf: int) -> torch.Tensor:
    """Blur + one-frame H.264 round trip at `crf` per frame (0 = off)."""
    if crf <= 0:
        return images
    images = gaussian_blur_3x3(images)
    out = []
    for frame in images:
        pixels = (frame.clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
        h, w = pixels.shape[0] - pixels.shape[0] % 2, pixels.shape[1] - pixels.shape[1] % 2
        pixels[:h, :w] = h264_round_trip(pixels[:h, :w], crf)
        out.append(torch.from_numpy(pixels.astype(np.float32) / 255.0))
    return torch.stack(out)


class VideoDiTImageToVideo:
    DESCRIPTION = (
        "Adds images as keyframes to a video latent: image_1 at frame 0 is classic image-to-video; "
        "add image_2 at frame -1 for first-and-last-frame interpolation, or put images at any frame. "
        "An IMAGE batch of 8k+1 frames is used as a video clip starting at its frame index."
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
                        f"after frame 0 must start at a multiple of 8.",
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
            "image_1": ("IMAGE", {"tooltip": "First keyframe image (or an 8k+1-frame clip), e.g. from Load Image."}),
            **slot(1, 0),
            "crf": (
                "INT",
                {
                    "default": 29,
                    "min": 0,
                    "max": 51,
                    "tooltip": "Compress each image like a video frame (blur + H.264 at this CRF) before "
                    "encoding, as LTX-Video saw in training; this helps the image move. "
                    "0 = off. 29 is the official default, 35-40 gives more motion.",
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
        from ..model.conditioning import Keyframe, validate_keyframe

        _, _, frames, _ = latent_geometry(latent)
        samples = latent["samples"]
        _, _, _, h, w = samples.shape
        images = [(1, image_1, frame_index_1, strength_1)]
        images += [
            (i, more[f"image_{i}"], more.get(f"frame_index_{i}", -1), more.get(f"strength_{i}", 1.0))
            for i in range(2, MAX_KEYFRAME_IMAGES + 1)
            if more.get(f"image_{i}") is not None
        ]
        keyframes = list(latent.get("keyframes", ()))
        module = vae.acquire()
        try:
            for i, image, index, strength in images:
                count = image.shape[0] if isinstance(image, torch.Tensor) else 0
                if check_frame_count(f"image_{i}", count):
                    raise InputError(
                        f"image_{i} has {count} frames: give one image, or a clip of 8k+1 frames "
                        f"(1, 9, 17, ...) to condition on a video"
                    )
                pixel_frame = index if index >= 0 else frames + index
                if pixel_frame < 0 or pixel_frame + count > frames:
                    raise InputError(
                        f"frame_index_{i} = {index} puts image_{i} ({count} frame(s)) outside the "
                        f"video's {frames} frames (valid: {-frames} to {frames - count})"
                    )
                if count > 1 and pixel_frame % TEMPORAL_FACTOR:
                    raise InputError(
                        f"frame_index_{i} = {index}: a clip after frame 0 must start at a multiple "
                        f"of 8 (nearest: {pixel_frame // 8 * 8} or {pixel_frame // 8 * 8 + 8})"
                    )
                prepared = compress_like_training(
                    center_crop_resize(image, w * SPATIAL_FACTOR, h * SPATIAL_FACTOR), crf
                )
                video = images_to_video(prepared, f"image_{i}").to(vae.device, vae.dtype)
                with torch.inference_mode():
                    encoded = module.normalize(module.encode(video)).float().cpu()
                keyframe = Keyframe(latent=encoded, pixel_frame=int(pixel_frame), strength=float(strength))
                try:
                    validate_keyframe(keyframe, samples.shape)
                except ValueError as e:
                    raise InputError(f"image_{i}: {e}") from e
                keyframes.append(keyframe)
        finally:
            vae.release()
        out = dict(latent)
        out["keyframes"] = keyframes
        return (out,)


class VideoDiTVAEEncode:
    DESCRIPTION = "Encodes a video (IMAGE batch of 8k+1 frames, sides multiples of 32) to a video latent."
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("Normalized video latent (B=1, 128, (frames-1)/8+1, height/32, width/32).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": (VAE_TYPE, {"tooltip": "The VAE from VideoDiT Model Loader."}),
                "images": ("IMAGE", {"tooltip": "Frames to encode: 8k+1 of them, width and height multiples of 32."}),
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
        frames, height, width = images.shape[0], images.shape[1], images.shape[2]
        problems = [
            m
            for m in (
                check_pixel_size("image width", width),
                check_pixel_size("image height", height),
                check_frame_count("number of images", frames),
            )
            if m
        ]
        if problems:
            raise InputError("images: " + "; ".join(problems))
        module = vae.acquire()
        try:
            with torch.inference_mode():
                video = images_to_video(images, "images").to(vae.device, vae.dtype)
                samples = module.normalize(module.encode(video)).float().cpu()
        finally:
            vae.release()
        return (video_latent(samples, width, height, frames, frame_rate),)


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
                        "default": 0.05,
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
                        "default": 0.025,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.001,
                        "tooltip": "Noise mixed into the latent before that last denoising "
                        "step, drawn from the seed VideoDiT Sampler used (official "
                        "0.025; ignored by VAEs without timestep conditioning).",
                    },
                ),
                "tiling": (
                    TILING,
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
        width, height, frames, _ = latent_geometry(latent)
        samples = latent["samples"].float()
        from ..model.pipeline import decode_generator, mix_decode_noise

        # decode-time noise (0.9.1+ VAEs) from the sampling seed the sampler left in the latent (0 for latents
        # from elsewhere): the same video as model.pipeline for the same seed
        generator = decode_generator(latent_seed(latent))
        module = vae.acquire()
        try:
            timestep = None
            if getattr(module.config, "timestep_conditioning", False):
                timestep = float(decode_timestep)
                samples = mix_decode_noise(samples, float(decode_noise_scale), generator)
            with torch.inference_mode():
                raw = module.denormalize(samples.to(vae.device, vae.dtype))
                host.check_interrupt()
                if tiling == "off":
                    video = module.decode(raw, timestep, generator)
                else:
                    from ..model.ltxv.vae_tiling import decode_auto, decode_tiled

                    decode = decode_tiled if tiling == "on" else decode_auto
                    video = decode(module, raw, timestep, generator=generator, out_device="cpu")
        finally:
            vae.release()
        video = video[:, :, :frames, :height, :width]  # (B, 3, F, H, W) in about [-1, 1]
        images = ((video.float().clamp(-1.0, 1.0) + 1.0) / 2.0).permute(0, 2, 3, 4, 1).reshape(-1, *video.shape[3:], 3)
        return (images.cpu().contiguous(),)
