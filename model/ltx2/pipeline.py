"""LTX-2 text/image/audio-to-video with sound: prompt -> text contexts -> joint audio+video sampling -> video VAE
decode + audio VAE decode + vocoder -> frames and waveform.

Every step is an existing function: the sampler is sampling.generate / sampling.two_stage, the keyframe encoding
and the video decode are the shared front-end's (model/frontend.py: the same fit/crop/compress and the same decode
timestep, noise and seed rule as LTX-Video 0.9.x), the size checks model/geometry.py's, the audio in and out
model/ltx2/audio_io.py's. Defaults per version (schedules.DEFAULT_STEPS, guidance.GUIDANCE; distilled checkpoints:
the distilled sigma list without guidance).

Durations: a video of F frames at fps lasts F / fps seconds; it gets latents.audio_token_count(F, fps) =
round(F / fps * 25) audio latents, and the returned waveform has audio_io.video_samples(F, fps, rate) =
round(F * rate / fps) samples (the vocoder's (4T - 3) * hop samples trimmed or zero-padded at the end). A given
audio track (audio-to-video) goes through audio_io.fit_audio (channels, resampling to the audio VAE's rate, trimmed
or zero-padded to the video's duration; logged), is encoded, kept as clean conditioning (denoise mask 0) and
returned as given (trimmed or padded at its own rate), as ltx-pipelines' audio-to-video pipeline returns the input.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace
from typing import Sequence

import torch

from .. import frontend
from ..geometry import VideoGeometry
from ..pipeline import ImageKeyframe
from . import sampling
from .audio_io import decode_audio, fit_audio, fit_length, output_sample_rate, video_samples
from .guidance import GUIDANCE, MultiModalGuidance
from .latents import ImageCondition, audio_token_count
from .sampling import TextContext
from .schedules import DEFAULT_STEPS, VERSIONS, distilled_sigmas, ltx2_sigmas
from .video_vae import upsample_normalized

logger = logging.getLogger(__name__)

DEFAULT_FPS = 24.0  # ltx-pipelines PipelineParams.frame_rate
IMAGE_CRF = 33  # ltx-pipelines DEFAULT_IMAGE_CRF (conditioning-image H.264 compression; 0 = off)
TWO_STAGE_FACTOR = 2  # stage 1 runs at 1 / 2 of the width and height
MODULES = ("transformer", "video_vae", "audio_vae", "vocoder")


@dataclass(frozen=True)
class LTX2Result:
    frames: torch.Tensor  # (F, H, W, 3) float32 in [0, 1]
    waveform: torch.Tensor  # (C, T) float32, T = round(F / fps * sample_rate)
    sample_rate: int
    video_latent: torch.Tensor  # (1, C, f, h, w) normalized, as sampled
    audio_latent: torch.Tensor  # (1, C, t, m) normalized, as sampled (audio-to-video: the given track's)


def as_keyframes(image) -> list[ImageKeyframe]:
    """image: None, an image/clip tensor (the first frame), an ImageKeyframe, or a list of ImageKeyframe /
    (image, frame_index[, strength]) tuples -> list[ImageKeyframe]."""
    if image is None:
        return []
    if isinstance(image, (torch.Tensor, ImageKeyframe)):
        image = [image if isinstance(image, ImageKeyframe) else ImageKeyframe(image)]
    if not isinstance(image, (list, tuple)):
        raise ValueError(
            f"image: expected a tensor, an ImageKeyframe or a list of keyframes, got {type(image).__name__}"
        )
    out = []
    for i, item in enumerate(image):
        if isinstance(item, tuple) and len(item) in (2, 3) and isinstance(item[0], torch.Tensor):
            item = ImageKeyframe(*item)
        if not isinstance(item, ImageKeyframe):
            raise ValueError(
                f"image[{i}]: expected an ImageKeyframe or (image, frame_index, strength), got {item!r:.60}"
            )
        out.append(item)
    return out


@dataclass
class LTX2Pipeline:
    transformer: torch.nn.Module  # LTX2Transformer (audio + video)
    video_vae: torch.nn.Module  # LTX2VideoVAE
    audio_vae: torch.nn.Module  # AudioVAE
    vocoder: torch.nn.Module  # Vocoder / VocoderWithBWE (output_sample_rate)
    text_encoder: object  # LTX2TextEncoder or anything with encode_prompts(prompts, device) -> .video, .audio
    version: str  # "2.0", "2.3", "2.5"
    upsampler: torch.nn.Module | None = None  # latent upsampler x2 (two_stage)
    stage_2_transformer: torch.nn.Module | None = None  # two_stage's stage 2 (default: transformer)
    distilled: bool = False  # distilled checkpoint: distilled sigmas, no guidance
    tiling: str = "off"  # video decode: frontend.decode_latents

    def __post_init__(self):
        missing = [name for name in MODULES if getattr(self, name) is None]
        if missing:
            raise ValueError(f"LTX2Pipeline needs {', '.join(MODULES)}; missing: {', '.join(missing)}")
        if self.version not in VERSIONS:
            raise ValueError(f"LTX2Pipeline: version must be one of {VERSIONS}, got {self.version!r}")
        if not hasattr(self.text_encoder, "encode_prompts"):
            raise ValueError(f"LTX2Pipeline: text_encoder needs encode_prompts, got {type(self.text_encoder).__name__}")

    @classmethod
    def from_checkpoint(cls, checkpoint, text_encoder, upsampler=None, **options) -> "LTX2Pipeline":
        """An LTX2Checkpoint (checkpoint.load_ltx2_checkpoint) + a text encoder: an LTX2TextEncoder (anything with
        encode_prompts) as it is, or a loaded Gemma (ltx2.gemma.load_gemma), checked against the checkpoint's
        version and joined to its text connectors with that version's prompt rule (LTX-2.5: the feature extractor
        is read from the Gemma file). `distilled` defaults to the checkpoint's."""
        where = ", ".join(checkpoint.paths)
        missing = [name for name in MODULES if getattr(checkpoint, name) is None]
        if missing:
            from ..checkpoint import CheckpointError

            raise CheckpointError(
                f"{where}: no {' and no '.join(missing)} in these files; give every file of the release"
            )
        if not hasattr(text_encoder, "encode_prompts"):
            from ..checkpoint import check_text_encoder_pair
            from .text_encoder import LTX2TextEncoder, prompt_rule

            check_text_encoder_pair(checkpoint, text_encoder)
            text_path = checkpoint.text_path
            if text_path is None:
                text_path = cls._text_path_from_gemma(checkpoint, text_encoder, where)
            text_encoder = LTX2TextEncoder(text_encoder, text_path, prompt_rule(checkpoint.version))
        options.setdefault("distilled", checkpoint.distilled)
        modules = (getattr(checkpoint, name) for name in MODULES)
        return cls(*modules, text_encoder, checkpoint.version, upsampler, **options)

    @staticmethod
    def _text_path_from_gemma(checkpoint, gemma, where: str):
        """LTX-2.5: connectors from the checkpoint files, feature extractor from the Gemma file's projection."""
        from ..checkpoint import CheckpointError, SafetensorsFile
        from .text_encoder import load_text_path

        if checkpoint.text_path_config is None or not gemma.projection:
            raise CheckpointError(
                f"{where}: no complete LTX-2 text path: the files give no text connectors, or {gemma.path} has no "
                "LTX feature projection (text_embedding_projection.*)"
            )
        files = [SafetensorsFile(p) for p in checkpoint.paths]
        dtype = next(checkpoint.transformer.parameters()).dtype
        try:
            return load_text_path(checkpoint.text_path_config, files, dtype, gemma.projection)
        finally:
            for file in files:
                file.close()

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.transformer.parameters()).dtype

    @property
    def geometry(self) -> VideoGeometry:
        return VideoGeometry.of(self.video_vae.config, self.transformer.config)

    @property
    def sample_rate(self) -> int:
        return output_sample_rate(self.vocoder)

    # ------------------------------------------------------------------------------------------ checks and defaults

    def check_size(self, width: int, height: int, num_frames: int, two_stage: bool = False) -> None:
        """ValueError naming each bad value and its nearest valid ones. two_stage: width and height multiples of
        2 x the geometry's step (stage 1 runs at half size), as ltx-pipelines' assert_resolution."""
        geometry = self.geometry
        if not two_stage:
            return geometry.check_size(width, height, num_frames, ("width", "height", "num_frames"))
        doubled = replace(geometry, patch_size=geometry.patch_size * TWO_STAGE_FACTOR)
        problems = doubled.video_problems(width, height, num_frames, ("width", "height", "num_frames"))
        if problems:
            raise ValueError(
                f"two_stage=True runs stage 1 at half the width and height, so both must be multiples of "
                f"{doubled.pixel_step}: " + "; ".join(problems)
            )

    def sigmas(self, steps: int | None = None, sigmas=None) -> torch.Tensor:
        """Stage-1 sigmas: given ones, else ltx2_sigmas(steps), else the version's default (distilled list or
        ltx2_sigmas(DEFAULT_STEPS[version]))."""
        if sigmas is not None:
            if steps is not None:
                raise ValueError("give steps or sigmas, not both")
            values = torch.as_tensor(sigmas, dtype=torch.float32).flatten()
            if values.numel() < 2 or not (values[0] <= 1 and values[-1] >= 0 and bool((values.diff() < 0).all())):
                raise ValueError(
                    f"sigmas must be at least 2 strictly decreasing values in [0, 1] (e.g. ending with 0), "
                    f"got {values.tolist()}"
                )
            return values
        if steps is None:
            return distilled_sigmas(1) if self.distilled else ltx2_sigmas(DEFAULT_STEPS[self.version])
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        return ltx2_sigmas(steps)

    def default_guidance(self) -> MultiModalGuidance | None:
        """The version's guided defaults; None (one pass per step) for a distilled checkpoint."""
        return None if self.distilled else GUIDANCE[self.version]

    # ------------------------------------------------------------------------------------------ steps

    def encode_prompts(self, prompt: str, negative_prompt: str | None) -> tuple[TextContext, TextContext | None]:
        """Positive (and, when given, negative) prompt in one encoder call -> per-modality contexts."""
        for name, text in (("prompt", prompt), ("negative_prompt", negative_prompt)):
            if text is not None and not isinstance(text, str):
                raise ValueError(f"{name} must be a string, got {type(text).__name__}")
        prompts = [prompt] if negative_prompt is None else [prompt, negative_prompt]
        encoded = self.text_encoder.encode_prompts(prompts, device=self.device)

        def row(i: int) -> TextContext:
            pick = lambda x: None if x is None else x[i : i + 1].to(self.device, self.dtype)  # noqa: E731
            return TextContext(video=pick(encoded.video), audio=pick(encoded.audio))

        return row(0), (row(1) if negative_prompt is not None else None)

    def encode_images(
        self, keyframes: list[ImageKeyframe], width: int, height: int, num_frames: int, crf: int
    ) -> tuple[ImageCondition, ...]:
        """Keyframes -> latents at this size (frontend.encode_keyframe: fitted, compressed, posterior mean)."""
        out = []
        for i, k in enumerate(keyframes):
            names = (f"image[{i}]", f"image[{i}].pixel_frame")
            encoded = frontend.encode_keyframe(
                self.video_vae,
                k.images,
                k.pixel_frame,
                k.strength,
                width,
                height,
                num_frames,
                self.geometry,
                crf,
                names,
            )
            out.append(
                ImageCondition(encoded.latent.to(self.device, self.dtype), encoded.pixel_frame, encoded.strength)
            )
        return tuple(out)

    def encode_audio(self, audio, num_frames: int, fps: float) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(waveform (C, T), rate) -> (audio latent (1, C, round(F / fps * 25), M) for the sampler, the given
        waveform trimmed or padded to the video's duration at its own rate, that rate). audio_io.fit_audio brings
        the track to the audio VAE (channels, rate, duration; ValueError for empty, silent, non-finite tracks and
        bad rates); what it changed is logged."""
        if not isinstance(audio, (tuple, list)) or len(audio) != 2:
            raise ValueError(f"audio: expected (waveform [channels, samples], sample_rate), got {type(audio).__name__}")
        waveform, rate = audio
        if isinstance(waveform, torch.Tensor) and waveform.ndim != 2:
            raise ValueError(f"audio: expected one waveform [channels, samples], got shape {tuple(waveform.shape)}")
        vae = self.audio_vae.config
        fitted, message = fit_audio(
            waveform, rate, vae.mel.sample_rate, video_samples(num_frames, fps, vae.mel.sample_rate), vae.in_channels
        )
        if message:
            logger.info("audio-to-video: %s", message)
        vae_device = next(self.audio_vae.parameters()).device
        latent = self.audio_vae.encode_waveform(fitted[None].to(vae_device), vae.mel.sample_rate)
        latent = latent[:, :, : audio_token_count(num_frames, fps)]  # ltx-pipelines crops the encoded track
        given, _ = fit_length(waveform.float(), video_samples(num_frames, fps, rate), rate)
        return latent.to(self.device, self.dtype), given, rate

    def decode_audio(self, latent: torch.Tensor, num_frames: int, fps: float) -> tuple[torch.Tensor, int]:
        """Audio latent (1, C, t, m) -> (waveform (2, round(F / fps * rate)) float32 on the CPU, rate)."""
        waveform, rate = decode_audio(self.audio_vae, self.vocoder, latent)
        return fit_length(waveform[0], video_samples(num_frames, fps, rate), rate)[0], rate

    @torch.no_grad()
    def generate(
        self,
        prompt: str,
        negative_prompt: str = "",
        width: int = 768,
        height: int = 512,
        num_frames: int = 121,
        fps: float = DEFAULT_FPS,
        steps: int | None = None,
        sigmas: Sequence[float] | torch.Tensor | None = None,
        guidance: MultiModalGuidance | None = None,
        seed: int = 0,
        image=None,
        audio: tuple[torch.Tensor, int] | None = None,
        two_stage: bool = False,
        stage_2_sigmas: Sequence[float] | torch.Tensor | None = None,
        image_crf: int = IMAGE_CRF,
        tiling: str | None = None,
        decode_timestep: float = frontend.DECODE_TIMESTEP,
        decode_noise_scale: float = frontend.DECODE_NOISE_SCALE,
    ) -> LTX2Result:
        """One video with its sound -> LTX2Result.

        steps / sigmas: stage-1 schedule (default: the version's; see sigmas()). guidance None: the version's
        defaults (guidance.GUIDANCE; none for distilled checkpoints); MultiModalGuidance() runs without guidance.
        The negative prompt is encoded only when a cfg scale != 1 needs it. image: the first frame (tensor
        (H, W, 3) or clip (N, H, W, 3) in [0, 1]) or a list of keyframes (ImageKeyframe or (image, frame_index,
        strength)). audio: (waveform (C, T), sample_rate): audio-to-video. two_stage: stage 1 at half size, the
        latent upsampler, stage 2 (stage_2_transformer or the same one) on stage_2_sigmas (default the distilled
        stage-2 list) without guidance; needs `upsampler`. The generator is torch.Generator(device) seeded with
        `seed` (noise of both stages); the video decode draws from frontend.decode_generator(seed)."""
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a positive number of frames per second, got {fps!r}")
        fps = float(fps)
        if two_stage and self.upsampler is None:
            raise ValueError("two_stage=True needs a latent upsampler: LTX2Pipeline(upsampler=...)")
        self.check_size(width, height, num_frames, two_stage)
        stage_1_sigmas = self.sigmas(steps, sigmas).to(self.device)
        if guidance is not None and not isinstance(guidance, MultiModalGuidance):
            raise ValueError(
                f"guidance must be a ltx2.guidance.MultiModalGuidance or None, got {type(guidance).__name__}"
            )
        guidance = self.default_guidance() if guidance is None else guidance
        keyframes = as_keyframes(image)
        given = self.encode_audio(audio, num_frames, fps) if audio is not None else None
        uses_negative = guidance is not None and (guidance.video.uses_uncond or guidance.audio.uses_uncond)
        positive, negative = self.encode_prompts(prompt, (negative_prompt or "") if uses_negative else None)

        vae_audio = self.audio_vae.config
        audio_shape = (1, vae_audio.latent_channels, audio_token_count(num_frames, fps), vae_audio.latent_mel_bins)
        generator = torch.Generator(device=self.device).manual_seed(int(seed))
        common = dict(positive=positive, negative=negative, guidance=guidance, generator=generator)
        common["num_layers"] = self.transformer.config.num_layers
        if two_stage:
            half_w, half_h = width // TWO_STAGE_FACTOR, height // TWO_STAGE_FACTOR
            video_latent, audio_latent = sampling.two_stage(
                self.transformer,
                self.stage_2_transformer or self.transformer,
                lambda latent: upsample_normalized(latent, self.video_vae, self.upsampler).to(self.dtype),
                video_shape=(1, self.geometry.latent_channels, *self.geometry.latent_shape(half_w, half_h, num_frames)),
                audio_shape=audio_shape,
                fps=fps,
                stage_1_sigmas=stage_1_sigmas,
                stage_1_images=self.encode_images(keyframes, half_w, half_h, num_frames, image_crf),
                stage_2_images=self.encode_images(keyframes, width, height, num_frames, image_crf),
                given_audio=None if given is None else given[0],
                stage_2_sigmas=(
                    distilled_sigmas(2) if stage_2_sigmas is None else self.sigmas(sigmas=stage_2_sigmas)
                ).to(self.device),  # sampling.two_stage's own default stays on the CPU
                dtype=self.dtype,
                **common,
            )
        else:
            start = frontend.empty_latent(self.geometry, width, height, num_frames, device=self.device)
            video_latent, audio_latent = sampling.generate(
                self.transformer,
                video_latent=start.to(self.dtype),
                audio_latent=torch.zeros(audio_shape, dtype=self.dtype, device=self.device)
                if given is None
                else given[0],
                fps=fps,
                sigmas=stage_1_sigmas,
                images=self.encode_images(keyframes, width, height, num_frames, image_crf),
                audio_given=given is not None,
                **common,
            )
        frames = frontend.decode_latents(
            self.video_vae, video_latent, seed, decode_timestep, decode_noise_scale, tiling or self.tiling
        )[0]
        waveform, rate = self.decode_audio(audio_latent, num_frames, fps) if given is None else given[1:]
        return LTX2Result(frames, waveform, rate, video_latent, audio_latent)


def load_ltx2_pipeline(
    checkpoint_path,
    text_encoder_path,
    dtype=torch.bfloat16,
    device="cpu",
    tokenizer_dir=None,
    upsampler_path=None,
    resident="auto",
) -> LTX2Pipeline:
    """LTX-2 file(s) (checkpoint.load_ltx2_checkpoint) + a Gemma file or folder (+ an optional latent upsampler
    file for two_stage) -> LTX2Pipeline. Gemma stays on the CPU and runs on `device` only while encoding.

    The files are read into CPU memory; the VAEs, vocoder and upsampler then move to `device` (the text path moves
    there for each encode, as Gemma does), and the transformer
    goes there whole when it fits, else with its blocks streamed from pinned CPU memory (streaming.place_model;
    `resident`: "auto", "off" or the number of blocks on the device)."""
    from ..checkpoint import load_latent_upsampler, load_ltx2_checkpoint
    from ..streaming import place_model
    from .gemma import load_gemma

    single = isinstance(checkpoint_path, (str, os.PathLike))
    checkpoint = load_ltx2_checkpoint([checkpoint_path] if single else list(checkpoint_path), dtype, "cpu")
    gemma = load_gemma(text_encoder_path, dtype, tokenizer_dir)
    upsampler = None if upsampler_path is None else load_latent_upsampler(upsampler_path, dtype, device)
    for module in (checkpoint.video_vae, checkpoint.audio_vae, checkpoint.vocoder):  # the text path moves per call
        if module is not None:
            module.to(device)
    if checkpoint.transformer is not None:
        place_model(checkpoint.transformer, checkpoint.transformer.transformer_blocks, device, resident)
    return LTX2Pipeline.from_checkpoint(checkpoint, gemma, upsampler)


__all__ = ["LTX2Pipeline", "LTX2Result", "load_ltx2_pipeline", "as_keyframes"]
