"""The Sampler node's LTX-2 path: joint audio+video sampling with multimodal guidance, as LTX2Pipeline.generate.

Node inputs -> the pipeline's arguments:
  schedule auto        distilled checkpoints: the distilled list (8 steps); others ltx2_sigmas(steps)
           shifted     ltx2_sigmas(steps) (LTX-2's token-shifted, stretched schedule)
           distilled   the distilled stage-1 list;  distilled_stage_2: the stage-2 list (0.909375, 0.725, 0.421875, 0)
  denoise < 1          only the last round(steps * denoise) steps; the input latent re-noised at their first sigma
  guidance default     the version's GUIDANCE (video cfg 3, audio cfg 7, STG 1 on block 28 (2.0: 29), rescale 0.7,
                       modality 3); none for distilled checkpoints and the stage-2 schedule (one pass per step)
           custom      cfg / audio_cfg / stg on stg_blocks / rescale / modality_scale from the widgets
The run starts from the latent: zeros from Empty Latent Video (pure noise, as generate), an upsampled stage-1 latent
for stage 2 (re-noised at the schedule's first sigma, as generate(two_stage=True)). The noise generator is
torch.Generator(model device) seeded with `seed`, or the one the previous sampler left in the latent when the seed
is the same (stage 2 of a two-stage graph then draws what generate's stage 2 draws).
"""

from __future__ import annotations

import torch

from . import host
from .common import InputError
from .ltx2_models import audio_entries


def _sigmas(model, schedule: str, steps: int, denoise: float) -> tuple[torch.Tensor, bool]:
    """(sigmas, starts from noise): the schedule's list, cut to its last steps for denoise < 1."""
    from ..model.ltx2.schedules import distilled_sigmas, ltx2_sigmas

    if schedule == "linear_quadratic":
        raise InputError(
            "schedule: linear_quadratic is the LTX-Video 0.9.5+ schedule; LTX-2 uses auto, shifted, distilled or "
            "distilled_stage_2"
        )
    if schedule == "distilled_stage_2":
        sigmas = distilled_sigmas(2)
    elif schedule == "distilled" or (schedule == "auto" and model.distilled):
        sigmas = distilled_sigmas(1)
    else:
        sigmas = ltx2_sigmas(int(steps))
    full = schedule != "distilled_stage_2"
    if denoise < 1.0:
        kept = max(1, round((sigmas.numel() - 1) * float(denoise)))
        sigmas, full = sigmas[-(kept + 1) :], False
    return sigmas.to(model.device), full


def _guidance(model, schedule, mode, cfg, audio_cfg, stg, blocks, rescale, modality_scale):
    from ..model.ltx2.guidance import GUIDANCE, GuiderParams, MultiModalGuidance

    if mode == "default":
        return None if model.distilled or schedule == "distilled_stage_2" else GUIDANCE[model.version]
    common = dict(stg_scale=float(stg), stg_blocks=blocks, rescale_scale=float(rescale))
    common["modality_scale"] = float(modality_scale)
    try:
        return MultiModalGuidance(
            video=GuiderParams(cfg_scale=float(cfg), **common), audio=GuiderParams(cfg_scale=float(audio_cfg), **common)
        )
    except ValueError as e:
        raise InputError(f"guidance: {e}") from e


def _generator(model, latent: dict, seed: int) -> torch.Generator:
    generator = torch.Generator(device=model.device)
    state = latent.get("noise_state")
    if (
        isinstance(state, torch.Tensor)
        and latent.get("seed") == seed
        and latent.get("noise_device") == str(model.device)
    ):
        generator.set_state(state)
    else:
        generator.manual_seed(int(seed))
    return generator


def _counting(model, denoiser, total_steps: int, passes: int, grid: tuple[int, int, int]):
    """The transformer, counting its calls for the progress bar (with a live preview of the first pass's denoised
    video when ComfyUI shows previews) and checking for interrupts between them. grid: latent (F, H, W)."""
    from .sampler import fit_preview_factors, latent_to_preview

    progress = host.Progress(total_steps, "VideoDiT sampling")
    want_previews = host.previews_enabled()
    if want_previews and model.preview_factors is None:
        model.preview_factors = fit_preview_factors(model.vae)
    calls, preview = [0], [None]

    def run(video, audio, skip):
        host.check_interrupt()
        out = denoiser(video, audio, skip)
        if want_previews and calls[0] % passes == 0 and video is not None:
            tokens = grid[0] * grid[1] * grid[2]  # the generated ones (appended keyframe tokens follow)
            x0 = video.latent[:, :tokens].float() - out[0][:, :tokens].float() * video.timesteps[:, :tokens, None]
            frames = x0[:1].transpose(1, 2).unflatten(2, grid)  # (1, C, F, H, W)
            preview[0] = latent_to_preview(frames, *model.preview_factors)
        calls[0] += 1
        if calls[0] % passes == 0:
            progress.update(min(calls[0] // passes, total_steps), preview[0])
        return out

    return run


def sample_ltx2(model, steps_of_family, positive, negative, latent, seed, steps, schedule, denoise, frame_rate, guided):
    """The Sampler node on an LTX-2 model -> the output joint LATENT. guided: (mode, cfg, audio_cfg, stg, blocks,
    rescale, modality_scale) from the widgets."""
    from ..model.ltx2.latents import ImageCondition
    from .latents import latent_geometry

    if positive.encoder is not negative.encoder:
        raise InputError("negative: encoded with another text encoder than positive; use one Text Encoder Loader")
    samples = latent["samples"]
    width, height, frames, latent_rate = latent_geometry(latent, model.geometry)
    if samples.shape[0] != 1:
        raise InputError(
            f"latent: LTX-2 samples one video at a time; this latent holds a batch of {samples.shape[0]} "
            "(set batch_size to 1 in Empty Latent Video)"
        )
    fps = float(frame_rate) if frame_rate > 0 else latent_rate
    sigmas, from_noise = _sigmas(model, schedule, steps, denoise)
    guidance = _guidance(model, schedule, *guided)
    uses_negative = guidance is not None and (guidance.video.uses_uncond or guidance.audio.uses_uncond)
    # both prompts in one Gemma call, before the transformer takes the GPU; the same call (kept) serves stage 2
    contexts = model.encode([positive, negative])
    audio = latent.get("audio_samples")
    if audio is None:  # a plain video latent: LTX-2 still makes its sound
        audio = audio_entries(model.audio.audio_vae, 1, frames, fps)["audio_samples"]
    audio_given = bool(latent.get("audio_given", False))
    images = tuple(
        ImageCondition(k.latent.to(model.device, model.dtype), k.pixel_frame, k.strength)
        for k in latent.get("keyframes", ())
    )
    generator = _generator(model, latent, int(seed))
    passes = 1 if guidance is None else len(guidance.passes(model.transformer.config.num_layers))
    transformer = model.acquire()
    try:
        with torch.inference_mode():
            video_out, audio_out = steps_of_family.sample(
                _counting(model, transformer, sigmas.numel() - 1, passes, tuple(samples.shape[2:])),
                video_latent=samples.to(model.device, model.dtype),
                audio_latent=audio.to(model.device, model.dtype),
                fps=fps,
                sigmas=sigmas,
                positive=contexts[0],
                negative=contexts[1] if uses_negative else None,
                guidance=guidance,
                num_layers=model.transformer.config.num_layers,
                generator=generator,
                noise_scale=1.0 if from_noise else sigmas[0],
                images=images,
                audio_given=audio_given,
            )
    except ValueError as e:
        raise InputError(str(e)) from e
    finally:
        model.release()
    result = dict(latent)
    result.update(
        samples=video_out.float().cpu(),
        audio_samples=audio_out.float().cpu(),
        audio_given=audio_given,
        audio_seconds=frames / fps,
        frame_rate=fps,
        family="ltx2",
        seed=int(seed),
        noise_state=generator.get_state(),
        noise_device=str(model.device),
    )
    return (result,)
