"""The LTX-2 sampler: Euler over the video and audio latents together, guided, one or two stages.

The transformer is any `denoiser(video: Stream | None, audio: Stream | None, skip: Skip) -> (video_velocity,
audio_velocity)`. Per step and pass, each modality's tokens get timesteps = mask · σ and its denoised latent is
latent - velocity · timesteps (per token); the guider combines the passes; then, per modality,
  x0 ← x0 · mask + clean · (1 - mask)          (given tokens are pulled back to their clean value)
  x  ← x + (x - x0) / σ · (σ_next - σ)         (Euler, float32, σ of the step for every token)
as ltx-pipelines' euler_denoising_loop does. Both modalities use the same σ list.
"""

from dataclasses import dataclass, replace
from typing import Callable

import torch

from .guidance import PASSES, GuiderParams, MultiModalGuidance
from .latents import (
    ImageCondition,
    LatentState,
    add_noise,
    audio_state,
    condition_on_images,
    given,
    to_latent,
    video_state,
)
from .schedules import distilled_sigmas
from .streams import NO_SKIP, Skip, Stream

Denoiser = Callable[[Stream | None, Stream | None, Skip], tuple[torch.Tensor | None, torch.Tensor | None]]
Prediction = tuple[torch.Tensor | None, torch.Tensor | None]  # denoised (video, audio) tokens


@dataclass(frozen=True)
class TextContext:
    """Text features per modality after the connector: video (B, L, D_video), audio (B, L, D_audio)."""

    video: torch.Tensor | None = None
    audio: torch.Tensor | None = None


def _stream(state: LatentState, sigma: torch.Tensor, context: torch.Tensor) -> Stream:
    return Stream(
        latent=state.latent,
        sigma=sigma.expand(state.latent.shape[0]),
        timesteps=state.denoise_mask * sigma,  # (B, T)
        positions=state.positions,
        context=context,
    )


def _denoised(state: LatentState | None, stream: Stream | None, velocity: torch.Tensor | None) -> torch.Tensor | None:
    if state is None:
        return None
    if velocity is None or velocity.shape != state.latent.shape:
        got = None if velocity is None else tuple(velocity.shape)
        raise ValueError(f"the denoiser returned {got} for the {state.modality} tokens {tuple(state.latent.shape)}")
    per_token = stream.timesteps.unsqueeze(-1).float()  # (B, T, 1)
    return (state.latent.float() - velocity.float() * per_token).to(state.latent.dtype)


def _run_pass(
    denoiser: Denoiser,
    video: LatentState | None,
    audio: LatentState | None,
    sigma: torch.Tensor,
    text: TextContext,
    skip: Skip,
) -> Prediction:
    video_stream = _stream(video, sigma, text.video) if video is not None else None
    audio_stream = _stream(audio, sigma, text.audio) if audio is not None else None
    video_velocity, audio_velocity = denoiser(video_stream, audio_stream, skip)
    return _denoised(video, video_stream, video_velocity), _denoised(audio, audio_stream, audio_velocity)


def guided_prediction(
    denoiser: Denoiser,
    video: LatentState | None,
    audio: LatentState | None,
    sigma: torch.Tensor,
    positive: TextContext,
    negative: TextContext | None = None,
    guidance: MultiModalGuidance | None = None,
    num_layers: int = 0,
) -> Prediction:
    """Denoised (video, audio) tokens at σ: one plain pass without guidance, else the guidance's passes combined.
    The uncond pass reads each modality's negative text where given, else its positive text."""
    if guidance is None:
        return _run_pass(denoiser, video, audio, sigma, positive, NO_SKIP)
    negative = negative or TextContext()
    negative_text = TextContext(
        video=positive.video if negative.video is None else negative.video,
        audio=positive.audio if negative.audio is None else negative.audio,
    )
    passes = {
        plan.name: _run_pass(
            denoiser, video, audio, sigma, negative_text if plan.negative_text else positive, plan.skip
        )
        for plan in guidance.passes(num_layers)
    }
    guided = []
    for index, (state, params) in enumerate(((video, guidance.video), (audio, guidance.audio))):
        runs = [passes[name][index] if name in passes else None for name in PASSES]
        guided.append(None if state is None else params.combine(*runs))
    return guided[0], guided[1]


def euler_step(
    state: LatentState, denoised: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor
) -> LatentState:
    """One Euler step of a modality from σ to σ_next; `denoised` (B, T, C) before the clean blend."""
    mask = state.denoise_mask.unsqueeze(-1)  # (B, T, 1)
    x0 = (denoised * mask + state.clean.float() * (1 - mask)).to(denoised.dtype)
    velocity = ((state.latent.float() - x0.float()) / sigma.float().item()).to(state.latent.dtype)
    latent = (state.latent.float() + velocity.float() * (sigma_next - sigma)).to(state.latent.dtype)
    return replace(state, latent=latent)


def _check_inputs(video, audio, sigmas, positive, negative, guidance) -> None:
    if video is None and audio is None:
        raise ValueError("nothing to sample: video and audio states are both None")
    if sigmas.ndim != 1 or sigmas.numel() < 2 or bool((sigmas[:-1] <= 0).any()):
        raise ValueError(f"sigmas must be a 1-D list of > 0 values ending with the last σ, got {sigmas.tolist()}")
    for state, name in ((video, "video"), (audio, "audio")):
        if state is not None and getattr(positive, name) is None:
            raise ValueError(f"the {name} state needs positive.{name} text features")
        params = getattr(guidance, name, None)
        if state is not None and params is not None and params.uses_uncond:
            if negative is None or getattr(negative, name) is None:
                raise ValueError(f"{name} cfg_scale {params.cfg_scale} needs negative.{name} text features")


def denoise(
    denoiser: Denoiser,
    video: LatentState | None,
    audio: LatentState | None,
    sigmas: torch.Tensor,
    positive: TextContext,
    negative: TextContext | None = None,
    guidance: MultiModalGuidance | None = None,
    num_layers: int = 0,
) -> tuple[LatentState | None, LatentState | None]:
    """Run the Euler loop over sigmas (float32, ending with the last σ, usually 0) from the noised states.
    guidance None: one pass per step (distilled models, stage 2). num_layers: the transformer's block count
    (the isolation pass and stg_blocks=None skip every block)."""
    _check_inputs(video, audio, sigmas, positive, negative, guidance)
    last: Prediction | None = None
    for step in range(sigmas.numel() - 1):
        sigma, sigma_next = sigmas[step], sigmas[step + 1]
        if guidance is None or not guidance.skips(step):
            last = guided_prediction(denoiser, video, audio, sigma, positive, negative, guidance, num_layers)
        video = euler_step(video, last[0], sigma, sigma_next) if video is not None else None
        audio = euler_step(audio, last[1], sigma, sigma_next) if audio is not None else None
    return video, audio


def generate(
    denoiser: Denoiser,
    *,
    video_latent: torch.Tensor | None,
    audio_latent: torch.Tensor | None,
    fps: float,
    sigmas: torch.Tensor,
    positive: TextContext,
    negative: TextContext | None = None,
    guidance: MultiModalGuidance | None = None,
    num_layers: int = 0,
    generator: torch.Generator | None = None,
    noise_scale: float | torch.Tensor = 1.0,
    images: tuple[ImageCondition, ...] = (),
    video_given: bool = False,
    audio_given: bool = False,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """One stage: states from the start latents (B, C, F, H, W) / (B, C, T, M) (zeros for text-to-video), images
    applied to the video, noise drawn video first then audio at noise_scale, the loop run; returns the latents.

    A given modality (video_given: video-to-audio, audio_given: audio-to-video, lip-sync) keeps its latent (mask 0)
    and is not guided: its guidance is neutral and its uncond pass reads its positive text, as ltx-pipelines'
    audio-to-video pipeline does."""
    if video_given and audio_given:
        raise ValueError("video_given and audio_given together leave nothing to generate")
    video = audio = None
    if video_latent is not None:
        video = video_state(video_latent, fps)
        video = given(video) if video_given else condition_on_images(video, list(images), fps)
    if audio_latent is not None:
        audio = audio_state(audio_latent)
        audio = given(audio) if audio_given else audio
    for name, is_given in (("video", video_given), ("audio", audio_given)):
        if is_given and guidance is not None:
            guidance = replace(guidance, **{name: GuiderParams(skip_step=guidance.video.skip_step)})
        if is_given and negative is not None:
            negative = replace(negative, **{name: None})
    video = add_noise(video, generator, noise_scale) if video is not None else None
    audio = add_noise(audio, generator, noise_scale) if audio is not None else None
    video, audio = denoise(denoiser, video, audio, sigmas, positive, negative, guidance, num_layers)
    return (to_latent(video) if video is not None else None), (to_latent(audio) if audio is not None else None)


def two_stage(
    stage_1: Denoiser,
    stage_2: Denoiser,
    upsample: Callable[[torch.Tensor], torch.Tensor],
    *,
    video_shape: tuple[int, int, int, int, int],
    audio_shape: tuple[int, int, int, int] | None,
    fps: float,
    stage_1_sigmas: torch.Tensor,
    positive: TextContext,
    negative: TextContext | None = None,
    guidance: MultiModalGuidance | None = None,
    num_layers: int = 0,
    generator: torch.Generator | None = None,
    stage_1_images: tuple[ImageCondition, ...] = (),
    stage_2_images: tuple[ImageCondition, ...] = (),
    given_audio: torch.Tensor | None = None,
    stage_2_sigmas: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """ltx-pipelines' two-stage flow. Stage 1 from zeros at the reduced size video_shape (B, C, F, H, W) with the
    stage-1 model, sigmas and guidance; `upsample` maps its video latent to the full size (normalised latents in and
    out: the caller wraps the latent upsampler with the VAE statistics); stage 2 starts from the upsampled video and
    the stage-1 audio, re-noised at stage_2_sigmas[0] (default the distilled stage-2 list) with fresh draws from the
    same generator, no guidance. Images are latents at each stage's size. given_audio (B, C, T, M): audio-to-video,
    the track is kept in both stages. Returns the final (video, audio) latents."""
    stage_2_sigmas = distilled_sigmas(2) if stage_2_sigmas is None else stage_2_sigmas
    audio_given = given_audio is not None
    if audio_given:
        start_audio = given_audio
    else:
        start_audio = (
            None if audio_shape is None else torch.zeros(audio_shape, dtype=dtype, device=stage_1_sigmas.device)
        )
    video_1, audio_1 = generate(
        stage_1,
        video_latent=torch.zeros(video_shape, dtype=dtype, device=stage_1_sigmas.device),
        audio_latent=start_audio,
        fps=fps,
        sigmas=stage_1_sigmas,
        positive=positive,
        negative=negative,
        guidance=guidance,
        num_layers=num_layers,
        generator=generator,
        images=stage_1_images,
        audio_given=audio_given,
    )
    return generate(
        stage_2,
        video_latent=upsample(video_1),
        audio_latent=given_audio if audio_given else audio_1,
        fps=fps,
        sigmas=stage_2_sigmas,
        positive=positive,
        generator=generator,
        noise_scale=stage_2_sigmas[0],
        images=stage_2_images,
        audio_given=audio_given,
    )
