"""Text/image-to-video pipeline: prompt -> T5 -> sample -> un-normalize -> VAE decode -> frames.

Every step is a shared front-end function (model/frontend.py), the same ones the nodes call, with the same
defaults: prompt length by checkpoint version (128 tokens for 0.9.0/0.9.1, 256 later, unless the T5 file fixes
its own), keyframe images center-cropped and resized, blurred and H.264-compressed at crf 29 (`image_crf`, 0 = off)
and encoded to the posterior mean, image-conditioning noise 0.15, decode timestep 0.05 / noise 0.025 with the
decode randomness drawn from the seed. Sizes and keyframes that do not fit are rejected with the nearest valid
values, never trimmed or resized (model/geometry.py).
"""

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from . import frontend
from .geometry import LTXV_GEOMETRY, VideoGeometry
from .preprocess import DEFAULT_CRF
from .sampling import Guidance, TextCondition
from .schedules import SchedulerConfig, timesteps


def check_video_size(width: int, height: int, num_frames: int, geometry: VideoGeometry = LTXV_GEOMETRY) -> None:
    """ValueError unless the size is one the model can make (sides multiples of 32, 8k+1 frames for LTX-Video),
    naming each bad value and its nearest valid ones."""
    geometry.check_size(width, height, num_frames, ("width", "height", "num_frames"))


def latent_shape(width: int, height: int, num_frames: int, geometry: VideoGeometry = LTXV_GEOMETRY):
    """(F, H, W) latent frames/height/width of a video (after check_video_size)."""
    return geometry.latent_shape(width, height, num_frames)


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
    decode_timestep: float = frontend.DECODE_TIMESTEP
    decode_noise_scale: float = frontend.DECODE_NOISE_SCALE
    version: str | None = None
    tiling: str = "off"  # VAE decode: "off" whole, "on" overlapping pieces, "auto" pieces when memory is short
    family: str = "ltxv"  # model family: which front-end steps run (frontend.steps_for)
    builtin_text_encoder: bool = False  # the built-in tiny T5: prompts without its words are warned about once

    def __post_init__(self):
        if isinstance(self.scheduler_config, dict):
            self.scheduler_config = SchedulerConfig.from_metadata(self.scheduler_config)

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def geometry(self) -> VideoGeometry:
        """Latent shapes and valid sizes, from the VAE's factors and the DiT's patch size."""
        if self.vae is None:
            return LTXV_GEOMETRY
        return VideoGeometry.of(self.vae.config, getattr(self.transformer, "config", None))

    @property
    def steps(self) -> frontend.FamilySteps:
        return frontend.steps_for(self.family)

    def encode_prompt(self, prompt: str, negative_prompt: str | None) -> tuple[TextCondition, TextCondition | None]:
        """At the text encoder's length (load_pipeline sets it from the file or the checkpoint version)."""
        positive = frontend.encode_prompt(self.text_encoder, prompt)
        negative = None if negative_prompt is None else frontend.encode_prompt(self.text_encoder, negative_prompt)
        return positive, negative

    def schedule(self, steps: int, width: int, height: int, num_frames: int, kind: str = "auto") -> list[float]:
        """Timesteps for this video size; checked against the checkpoint's allowed_inference_steps if any."""
        return timesteps(
            kind,
            steps,
            self.geometry.latent_shape(width, height, num_frames),
            self.scheduler_config,
            self.allowed_inference_steps,
        )

    def encode_keyframe(
        self, keyframe: ImageKeyframe, width: int, height: int, num_frames: int, crf: int = DEFAULT_CRF, index=0
    ):
        """Pixels -> normalized latent Keyframe (frontend.encode_keyframe: a clip that does not fit is an error)."""
        return self.steps.encode_keyframe(
            self.vae,
            keyframe.images,
            keyframe.pixel_frame,
            keyframe.strength,
            width,
            height,
            num_frames,
            self.geometry,
            crf,
            (f"keyframes[{index}]", f"keyframes[{index}].pixel_frame"),
        )

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
        return self.steps.decode(self.vae, latents, seed, t, s, self.tiling)

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
        image_cond_noise_scale: float = frontend.IMAGE_COND_NOISE_SCALE,
        stochastic: bool = False,
        decode_timestep: float | None = None,
        decode_noise_scale: float | None = None,
        callback: Callable[[int, int, torch.Tensor], None] | None = None,
        image_crf: int = DEFAULT_CRF,
    ) -> torch.Tensor:
        """Generate one video -> frames (num_frames, height, width, 3) float32 in [0, 1].

        guidance: one Guidance, or one per step (sampling.guidance_per_step); default Guidance() (cfg 3, no STG).
        schedule: a schedules.timesteps kind ("auto" = the checkpoint's scheduler). The negative prompt is encoded
        only when some step uses cfg > 1. image_crf: the keyframes' blur + H.264 compression (0 = off)."""
        geometry = self.geometry
        check_video_size(width, height, num_frames, geometry)
        if self.builtin_text_encoder:
            from .builtin import warn_prompt

            warn_prompt(prompt)
        guidance = Guidance() if guidance is None else guidance
        ts = self.schedule(steps, width, height, num_frames, schedule)
        per_step = [guidance] if isinstance(guidance, Guidance) else list(guidance)
        use_negative = any(g.cfg > 1.0 for g in per_step)
        positive, negative = self.encode_prompt(prompt, negative_prompt if use_negative else None)
        latent_keyframes = [
            self.encode_keyframe(k, width, height, num_frames, image_crf, i) for i, k in enumerate(keyframes)
        ]
        start = frontend.empty_latent(geometry, width, height, num_frames, device=self.device)
        latents = self.steps.sample(
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
            geometry=geometry,
        )
        return self.decode(latents, seed, decode_timestep, decode_noise_scale)[0]


def model_family(checkpoint_path) -> str:
    """The model family of checkpoint_path: "ltx2" for LTX-2 weights (one file, or a list of split files whose first
    one says so, or a diffusers folder of LTX2VideoTransformer3DModel), else "ltxv" (LTX-Video 0.9.x single files
    and diffusers folders). Files that are no LTX weights raise CheckpointError."""
    from .checkpoint import detect_family, diffusers_root, read_json

    single = isinstance(checkpoint_path, (str, os.PathLike))
    first = os.fspath(checkpoint_path if single else next(iter(checkpoint_path)))
    if os.path.isdir(first):  # a diffusers folder: its transformer's class tells
        config = os.path.join(first, "transformer", "config.json")
        ltx2 = os.path.isfile(config) and read_json(config).get("_class_name") == "LTX2VideoTransformer3DModel"
        return "ltx2" if ltx2 else "ltxv"
    if diffusers_root(first) is not None:
        return "ltxv"
    return detect_family(first).family


def load_pipeline(
    checkpoint_path,
    text_encoder_path,
    dtype: torch.dtype = torch.bfloat16,
    device="cpu",
    tokenizer_dir=None,
    upsampler_path=None,
):
    """Official single-file (or diffusers-folder) checkpoint + T5 file -> VideoPipeline. The prompt length is
    frontend.prompt_tokens: the T5 file's "max_tokens" metadata when it has one (the built-in tiny model), else the
    checkpoint version's (128 tokens for 0.9.0/0.9.1, 256 later); the schedule follows the checkpoint's
    "scheduler" metadata. builtin.builtin_weights() gives the built-in tiny model's two paths.

    LTX-2 weights (model_family "ltx2": a 2.0/2.3 file, or the list of 2.5 split files) + a Gemma file or folder
    -> ltx2.pipeline.LTX2Pipeline (frames and sound); upsampler_path: its latent upsampler for two_stage."""
    from . import builtin
    from .checkpoint import load_checkpoint
    from .text_encoder import load_text_encoder

    with builtin.restore_hint(checkpoint_path):
        family = model_family(checkpoint_path)
    if family == "ltx2":
        from .ltx2.pipeline import load_ltx2_pipeline

        return load_ltx2_pipeline(checkpoint_path, text_encoder_path, dtype, device, tokenizer_dir, upsampler_path)
    if upsampler_path is not None:
        raise ValueError("upsampler_path is for LTX-2 checkpoints; VideoPipeline (LTX-Video 0.9.x) has no two-stage")
    with builtin.restore_hint(checkpoint_path):
        ckpt = load_checkpoint(checkpoint_path, dtype=dtype, device=device)
    max_tokens = frontend.steps_for(family).prompt_tokens(
        ckpt.version, frontend.pinned_prompt_tokens(text_encoder_path)
    )
    with builtin.restore_hint(text_encoder_path):
        text_encoder = load_text_encoder(
            text_encoder_path, dtype=dtype, device=device, tokenizer_dir=tokenizer_dir, max_tokens=max_tokens
        )
    return VideoPipeline(
        ckpt.transformer,
        ckpt.vae,
        text_encoder,
        ckpt.scheduler_config,
        ckpt.allowed_inference_steps,
        version=ckpt.version,
        family=family,
        builtin_text_encoder=builtin.is_builtin(text_encoder_path),
    )


__all__ = ["VideoPipeline", "ImageKeyframe", "load_pipeline", "model_family", "check_video_size", "latent_shape"]
