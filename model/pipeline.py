"""Text/image-to-video pipeline: prompt -> T5 -> sample -> un-normalize -> VAE decode -> frames.

Image keyframes (I2V): each image or clip (ComfyUI layout, float in [0, 1]) is center-cropped to the video's aspect
ratio, resized bilinearly (no antialias, align_corners=False, as the official pipeline resizes), mapped to [-1, 1],
VAE-encoded to the posterior MEAN (the official code samples the posterior with the global RNG; ComfyUI uses the
mean) and normalized. We do not apply the official Gaussian blur + H.264 CRF-29 round trip of inference.py.

Decoding (timestep-conditioned 0.9.1+ decoders): z <- (1 - s) z + s eps on the normalized latents, then decode at
timestep t (defaults t = 0.05, s = 0.025: the current official configs). eps and the 0.9.1 decoder noise come
from torch.Generator("cpu").manual_seed(seed + DECODE_SEED_OFFSET) (the official code uses the global RNG), so a
seed fixes the whole video.
"""

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .conditioning import Keyframe
from .sampling import Guidance, TextCondition, sample
from .schedules import SchedulerConfig, timesteps

SPATIAL_MULTIPLE = 32
TEMPORAL_MULTIPLE = 8
DECODE_SEED_OFFSET = 1_000_003


def decode_generator(seed: int) -> torch.Generator:
    """The CPU generator of a video's decode-time randomness (the noise mixed into the latent, then the 0.9.1
    decoder's noise injection): derived from the sampling seed, so a seed fixes the whole video."""
    return torch.Generator("cpu").manual_seed(int(seed) + DECODE_SEED_OFFSET)


def mix_decode_noise(latents: torch.Tensor, scale: float, generator: torch.Generator) -> torch.Tensor:
    """(1 - scale) z + scale eps on normalized latents (B, C, f, h, w) float32, eps drawn first from generator."""
    eps = torch.randn(latents.shape, generator=generator, dtype=torch.float32).to(latents.device)
    return latents * (1.0 - scale) + eps * scale


def _nearest_valid(value: int, step: int, first: int) -> str:
    """The valid values first + k*step (k >= 0) just below and above value, as text."""
    lower = first + max((value - first) // step, 0) * step
    upper = first + max(-(-(value - first) // step), 0) * step
    return f"{lower}" if lower == upper else f"{lower} or {upper}"


def check_video_size(width: int, height: int, num_frames: int) -> None:
    """Raise ValueError unless width/height are multiples of 32 and num_frames = 8k + 1 (naming the nearest)."""
    for name, value in (("width", width), ("height", height)):
        if value < SPATIAL_MULTIPLE or value % SPATIAL_MULTIPLE:
            raise ValueError(
                f"{name} {value} must be a positive multiple of 32; nearest valid: "
                f"{_nearest_valid(value, SPATIAL_MULTIPLE, SPATIAL_MULTIPLE)}"
            )
    if num_frames < 1 or (num_frames - 1) % TEMPORAL_MULTIPLE:
        raise ValueError(
            f"num_frames {num_frames} must be 8k+1 (1, 9, 17, ..., 121, ...); nearest valid: "
            f"{_nearest_valid(num_frames, TEMPORAL_MULTIPLE, 1)}"
        )


def latent_shape(width: int, height: int, num_frames: int) -> tuple[int, int, int]:
    """(F, H, W) latent frames/height/width of a video (after check_video_size)."""
    return (num_frames - 1) // TEMPORAL_MULTIPLE + 1, height // SPATIAL_MULTIPLE, width // SPATIAL_MULTIPLE


def preprocess_images(images: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(H, W, 3) image or (N, H, W, 3) frames, float in [0, 1] -> (1, 3, N, height, width) in [-1, 1]:
    center-crop to the target aspect ratio, then bilinear resize."""
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"keyframe image must be (H, W, 3) or (N, H, W, 3) RGB, got shape {tuple(images.shape)}")
    x = images.permute(0, 3, 1, 2).float()  # (N, 3, H, W)
    src_h, src_w = x.shape[-2:]
    if src_w * height > width * src_h:  # too wide: crop width
        crop_w = max(1, round(src_h * width / height))
        left = (src_w - crop_w) // 2
        x = x[..., left : left + crop_w]
    else:  # too tall: crop height
        crop_h = max(1, round(src_w * height / width))
        top = (src_h - crop_h) // 2
        x = x[..., top : top + crop_h, :]
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    x = x.clamp(0.0, 1.0) * 2.0 - 1.0
    return x.permute(1, 0, 2, 3)[None]  # (1, 3, N, H, W)


@dataclass
class ImageKeyframe:
    """Pixel keyframe for generate(): an image (H, W, 3) or clip (N, H, W, 3) in [0, 1] placed at pixel_frame."""

    images: torch.Tensor
    pixel_frame: int = 0
    strength: float = 1.0


@dataclass
class VideoPipeline:
    transformer: torch.nn.Module  # LTXVideoTransformer
    vae: torch.nn.Module  # CausalVideoVAE
    text_encoder: object  # TextEncoder: encode(list[str]) -> TextCondition
    scheduler_config: SchedulerConfig | dict | None = None
    allowed_inference_steps: list[float] | None = None
    decode_timestep: float = 0.05
    decode_noise_scale: float = 0.025
    version: str | None = None
    tiled_decode: bool = False  # decode in overlapping pieces (vae_tiling.decode_tiled) to bound VAE memory

    def __post_init__(self):
        if isinstance(self.scheduler_config, dict):
            self.scheduler_config = SchedulerConfig.from_metadata(self.scheduler_config)

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    def encode_prompt(self, prompt: str, negative_prompt: str | None) -> tuple[TextCondition, TextCondition | None]:
        positive = self.text_encoder.encode([prompt])
        negative = None if negative_prompt is None else self.text_encoder.encode([negative_prompt])
        return positive, negative

    def schedule(self, steps: int, width: int, height: int, num_frames: int, kind: str = "auto") -> list[float]:
        """Timesteps for this video size; checked against the checkpoint's allowed_inference_steps if any."""
        return timesteps(
            kind, steps, latent_shape(width, height, num_frames), self.scheduler_config, self.allowed_inference_steps
        )

    @torch.no_grad()
    def encode_keyframe(self, keyframe: ImageKeyframe, width: int, height: int, num_frames: int) -> Keyframe:
        """Pixels -> normalized latent Keyframe. A clip is trimmed to fit the video and to 8k+1 frames."""
        video = preprocess_images(keyframe.images, width, height)  # (1, 3, N, H, W)
        if not 0 <= keyframe.pixel_frame < num_frames:
            raise ValueError(f"keyframe pixel_frame {keyframe.pixel_frame} must be in [0, {num_frames - 1}]")
        n = min(video.shape[2], num_frames - keyframe.pixel_frame)
        n = (n - 1) // TEMPORAL_MULTIPLE * TEMPORAL_MULTIPLE + 1
        video = video[:, :, :n].to(self.device)
        latent = self.vae.normalize(self.vae.encode(video).float())
        return Keyframe(latent, keyframe.pixel_frame, keyframe.strength)

    @torch.no_grad()
    def decode(
        self,
        latents: torch.Tensor,
        seed: int,
        decode_timestep: float | None = None,
        decode_noise_scale: float | None = None,
    ) -> torch.Tensor:
        """Normalized latents (B, C, f, h, w) -> frames (B, F, H, W, 3) float32 in [0, 1]."""
        t = self.decode_timestep if decode_timestep is None else decode_timestep
        s = self.decode_noise_scale if decode_noise_scale is None else decode_noise_scale
        generator = decode_generator(seed)
        z = latents.float()
        if self.vae.config.timestep_conditioning:
            z = mix_decode_noise(z, s, generator)
        raw = self.vae.denormalize(z)
        t = t if self.vae.config.timestep_conditioning else None
        if self.tiled_decode:
            from .ltxv.vae_tiling import decode_tiled

            video = decode_tiled(self.vae, raw, timestep=t, generator=generator)
        else:
            video = self.vae.decode(raw, timestep=t, generator=generator)
        return ((video.float() + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 4, 1)

    @torch.no_grad()
    def generate(
        self,
        prompt: str,
        negative_prompt: str = "",
        width: int = 768,
        height: int = 512,
        num_frames: int = 121,
        frame_rate: float = 25.0,
        steps: int = 40,
        guidance: Guidance | Sequence[Guidance] | None = None,
        seed: int = 0,
        keyframes: Sequence[ImageKeyframe] = (),
        schedule: str = "auto",
        image_cond_noise_scale: float = 0.15,
        stochastic: bool = False,
        decode_timestep: float | None = None,
        decode_noise_scale: float | None = None,
        callback: Callable[[int, int, torch.Tensor], None] | None = None,
    ) -> torch.Tensor:
        """Generate one video -> frames (num_frames, height, width, 3) float32 in [0, 1].

        guidance: one Guidance, or one per step (sampling.guidance_per_step); default Guidance() (cfg 3, no STG).
        schedule: a schedules.timesteps kind ("auto" = the checkpoint's scheduler). The negative prompt is encoded
        only when some step uses cfg > 1."""
        check_video_size(width, height, num_frames)
        guidance = Guidance() if guidance is None else guidance
        ts = self.schedule(steps, width, height, num_frames, schedule)
        per_step = [guidance] if isinstance(guidance, Guidance) else list(guidance)
        use_negative = any(g.cfg > 1.0 for g in per_step)
        positive, negative = self.encode_prompt(prompt, negative_prompt if use_negative else None)
        latent_keyframes = [self.encode_keyframe(k, width, height, num_frames) for k in keyframes]
        channels = self.transformer.config.in_channels
        start = torch.zeros(1, channels, *latent_shape(width, height, num_frames), device=self.device)
        latents = sample(
            self.transformer,
            start,
            positive,
            negative,
            ts,
            guidance,
            seed,
            keyframes=latent_keyframes,
            frame_rate=frame_rate,
            image_cond_noise_scale=image_cond_noise_scale,
            stochastic=stochastic,
            callback=callback,
        )
        return self.decode(latents, seed, decode_timestep, decode_noise_scale)[0]


def load_pipeline(
    checkpoint_path, text_encoder_path, dtype: torch.dtype = torch.bfloat16, device="cpu", tokenizer_dir=None
) -> VideoPipeline:
    """Official single-file (or diffusers-folder) checkpoint + T5 file -> VideoPipeline. The prompt length is the
    T5 file's "max_tokens" metadata when it has one (the built-in tiny model), else follows the checkpoint version
    (128 tokens for 0.9.0/0.9.1, 256 later); the schedule follows the checkpoint's "scheduler" metadata."""
    from .checkpoint import load_checkpoint
    from .text_encoder import load_text_encoder, max_tokens_for_version

    ckpt = load_checkpoint(checkpoint_path, dtype=dtype, device=device)
    text_encoder = load_text_encoder(
        text_encoder_path,
        dtype=dtype,
        device=device,
        tokenizer_dir=tokenizer_dir,
        default_max_tokens=max_tokens_for_version(ckpt.version),
    )
    return VideoPipeline(
        ckpt.transformer,
        ckpt.vae,
        text_encoder,
        ckpt.scheduler_config,
        ckpt.allowed_inference_steps,
        version=ckpt.version,
    )


__all__ = ["VideoPipeline", "ImageKeyframe", "load_pipeline", "check_video_size", "latent_shape", "preprocess_images"]
