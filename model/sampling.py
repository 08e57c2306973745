"""Rectified-flow sampling loop with CFG, STG, rescale, CFG* and keyframe conditioning.

Formulation (official LTX-Video): x_t = (1 - t) x0 + t eps, the DiT predicts the velocity v = eps - x0 at timestep t,
and an Euler step moves to the next scheduled timestep t' (0 after the last): x_t' = x_t - (t - t') v.

Guidance per step (batch of copies, in this order, run as one forward):
  uncond (if cfg > 1), cond, cond-perturbed (if stg > 0; STG skips self-attention in `stg_blocks`).
  CFG*:    v_u <- (<v_c, v_u> / (|v_u|^2 + 1e-8)) v_u per sample
  CFG:     v = v_u + cfg (v_c - v_u)            (else v = v_c)
  STG:     v = v + stg (v_c - v_p)
  rescale: only with STG and rescale != 1: v <- v (rescale std(v_c)/std(v) + 1 - rescale), std per sample.
The perturbed copy of every sample is marked for STG (SkipLayers.perturbed); the official skip mask indexing is
right for batch 1 only, so batch > 1 with STG differs from the official pipeline (ours is the intended behaviour).
Guidance arithmetic and the latents are float32 (the official pipeline does the guidance on bf16 model outputs);
the model input is cast to the transformer's dtype.

Seeded noise: torch.Generator("cpu").manual_seed(seed), float32, drawn on the CPU and then moved to the device, so
CPU and GPU runs start from identical noise. Draw order and layouts (chosen equal to the official pipeline's):
  1. initial noise in TOKEN layout (B, F*H*W, C), tokens ordered (f h w), then rearranged to (B, C, F, H, W);
  2. one tensor per extra-token keyframe, shaped like its latent prefix (b, C, f', h, w) (see conditioning.py);
  3. per step, when image_cond_noise_scale > 0 and keyframes exist: (B, N_total, C) for the conditioning noise;
  4. per step, when stochastic: (B, N_total, C) for the re-noising.
The official pipeline draws 1-3 from its generator the same way (on CPU in float32 that is bit-identical), but
draws 4 from the global RNG.
"""

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .conditioning import Keyframe, apply_keyframes
from .geometry import LTXV_GEOMETRY, VideoGeometry
from .ltxv.dit import SKIP_MODES as STG_MODES
from .ltxv.dit import SkipLayers
from .ltxv.positions import unpatchify

T_EPS = 1e-6


@dataclass
class TextCondition:
    """embeddings: (B, L, C) T5 output; mask: (B, L) 1 = real token, 0 = padding."""

    embeddings: torch.Tensor
    mask: torch.Tensor


@dataclass
class Guidance:
    cfg: float = 3.0  # classifier-free guidance scale; <= 1 disables the uncond copy
    stg: float = 0.0  # spatio-temporal skip guidance scale; 0 disables the perturbed copy
    stg_blocks: tuple[int, ...] = (19,)  # blocks whose self-attention is skipped in the perturbed copy
    stg_mode: str = "attention_values"  # "attention_values" | "attention_skip" | "transformer_block"
    rescale: float = 0.7  # std rescale towards the cond prediction, only with STG; 1 disables
    cfg_star: bool = False  # CFG* projection of the uncond prediction


__all__ = ["TextCondition", "Guidance", "Keyframe", "sample", "guidance_per_step"]


def guidance_per_step(
    timesteps: Sequence[float], thresholds: Sequence[float], guidances: Sequence[Guidance]
) -> list[Guidance]:
    """Expand a guidance table (official `guidance_timesteps`, ComfyUI-LTXVideo STG preset `sigmas`) to one Guidance
    per timestep: step t uses guidances[j] for the first j with thresholds[j] <= t, else the last entry."""
    if len(thresholds) != len(guidances) or not guidances:
        raise ValueError(
            f"guidance table: {len(thresholds)} thresholds for {len(guidances)} Guidance values; "
            f"need the same non-zero number"
        )
    out = []
    for t in timesteps:
        j = next((j for j, threshold in enumerate(thresholds) if threshold <= t), len(guidances) - 1)
        out.append(guidances[j])
    return out


def kept_steps(timesteps: Sequence[float], denoise: float) -> list[int]:
    """Indices of the scheduled timesteps sample() runs: all with denoise = 1, else those <= denoise (+1e-6)."""
    return [i for i, t in enumerate(timesteps) if denoise >= 1.0 or float(t) <= denoise + T_EPS]


def _pad_text(text: TextCondition, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad to `length` tokens with mask 0 (masked keys get bias -10000: no contribution)."""
    emb, mask = text.embeddings, text.mask.float()
    pad = length - emb.shape[1]
    if pad > 0:
        emb = torch.nn.functional.pad(emb, (0, 0, 0, pad))
        mask = torch.nn.functional.pad(mask, (0, pad))
    return emb, mask


def _text_batch(
    positive: TextCondition,
    negative: TextCondition | None,
    use_uncond: bool,
    use_perturbed: bool,
    batch: int,
    device,
    dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Text for the copies (uncond?, cond, perturbed?) stacked along the batch, each copy `batch` samples."""
    texts = ([negative] if use_uncond else []) + [positive] + ([positive] if use_perturbed else [])
    length = max(t.embeddings.shape[1] for t in texts)
    embs, masks = [], []
    for t in texts:
        if t.embeddings.shape[0] not in (1, batch) or t.mask.shape != t.embeddings.shape[:2]:
            raise ValueError(
                f"text condition embeddings {tuple(t.embeddings.shape)} / mask {tuple(t.mask.shape)} "
                f"do not fit batch {batch}: need (1 or {batch}, L, C) and (same, L)"
            )
        emb, mask = _pad_text(t, length)
        embs.append(emb.expand(batch, -1, -1))
        masks.append(mask.expand(batch, -1))
    return torch.cat(embs).to(device=device, dtype=dtype), torch.cat(masks).to(device)


def _combine(pred: torch.Tensor, guidance: Guidance, use_uncond: bool, use_perturbed: bool, batch: int) -> torch.Tensor:
    """pred: (num_copies*B, N, C) float32 velocities -> guided (B, N, C)."""
    copies = list(pred.split(batch))
    v_uncond = copies.pop(0) if use_uncond else None
    v_cond = copies.pop(0)
    v_perturbed = copies.pop(0) if use_perturbed else None
    v = v_cond
    if use_uncond:
        if guidance.cfg_star:
            dot = (v_cond * v_uncond).flatten(1).sum(1)
            alpha = dot / (v_uncond.flatten(1).pow(2).sum(1) + 1e-8)
            v_uncond = alpha[:, None, None] * v_uncond
        v = v_uncond + guidance.cfg * (v_cond - v_uncond)
    if use_perturbed:
        v = v + guidance.stg * (v_cond - v_perturbed)
        if guidance.rescale != 1.0:
            factor = v_cond.flatten(1).std(1) / v.flatten(1).std(1)
            factor = guidance.rescale * factor + (1.0 - guidance.rescale)
            v = v * factor[:, None, None]
    return v


def _guided_velocity(
    transformer,
    tokens: torch.Tensor,
    coords: torch.Tensor,
    tau: torch.Tensor,
    positive: TextCondition,
    negative: TextCondition | None,
    guidance: Guidance,
    model_dtype: torch.dtype,
    text_batches: dict,
) -> torch.Tensor:
    """One batched forward over the guidance copies (uncond?, cond, perturbed?) -> guided velocity (B, N, C) fp32.
    `text_batches` keeps the stacked text per copy layout for the whole run: the same tensors at every step, so
    the transformer's text K/V cache hits by identity."""
    b = tokens.shape[0]
    use_uncond, use_perturbed = guidance.cfg > 1.0, guidance.stg > 0.0
    num_copies = 1 + int(use_uncond) + int(use_perturbed)
    layout = (use_uncond, use_perturbed)
    if layout not in text_batches:
        text_batches[layout] = _text_batch(positive, negative, use_uncond, use_perturbed, b, tokens.device, model_dtype)
    text, text_mask = text_batches[layout]
    skip = None
    if use_perturbed:
        perturbed = torch.zeros(num_copies * b, dtype=torch.bool, device=tokens.device)
        perturbed[-b:] = True
        skip = SkipLayers(blocks=tuple(guidance.stg_blocks), mode=guidance.stg_mode, perturbed=perturbed)
    pred = transformer(
        tokens.repeat(num_copies, 1, 1).to(model_dtype),
        coords.repeat(num_copies, 1, 1),
        text,
        text_mask,
        tau.repeat(num_copies, 1),
        skip=skip,
    )
    return _combine(pred.float(), guidance, use_uncond, use_perturbed, b)


def _next_timesteps(tau: torch.Tensor, schedule: torch.Tensor) -> torch.Tensor:
    """For each entry of tau (any shape), the largest scheduled value (0 appended) below tau - 1e-6."""
    padded = torch.cat([schedule, schedule.new_zeros(1)]).view(-1, *([1] * tau.ndim))
    below = padded < tau[None] - T_EPS
    return (below * padded).amax(0)


def _randn(shape, generator: torch.Generator, device) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device)


@torch.no_grad()
def sample(
    transformer,
    latents: torch.Tensor,
    positive: TextCondition,
    negative: TextCondition | None,
    timesteps: Sequence[float],
    guidance: Guidance | Sequence[Guidance],
    seed: int,
    keyframes: Sequence[Keyframe] = (),
    frame_rate: float = 25.0,
    denoise: float = 1.0,
    image_cond_noise_scale: float = 0.0,
    stochastic: bool = False,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
    geometry: VideoGeometry = LTXV_GEOMETRY,
) -> torch.Tensor:
    """Denoise and return (B, C, F, H, W) float32 NORMALIZED latents.

    transformer: LTXVideoTransformer (its config's causal_temporal_positioning selects the temporal coordinates).
    latents: (B, C, F, H, W) normalized; only the shape is used when denoise = 1 (pure noise start); with
        denoise < 1 it is the start latent, noised to the first kept timestep t0: t0 eps + (1 - t0) latents.
    timesteps: descending schedule without the final 0 (schedules.timesteps). With denoise < 1 only the scheduled
        values <= denoise (+1e-6) are run (the official skip_initial_inference_steps behaviour).
    guidance: one Guidance for all steps, or one per timestep (e.g. the 13B dev recipe that changes cfg/stg/blocks
        along the schedule); the copies of each step run as one batched forward.
    keyframes: conditioning latents (conditioning.py). image_cond_noise_scale: before each model call, hard-
        conditioned tokens (strength 1) are reset to keyframe + scale * eps * t^2.
    stochastic: after each step re-noise the x0 estimate to the next timestep with fresh noise (distilled models).
    callback(step_index, total_steps, x0_estimate): called after each step with the current x0 estimate of the video
        tokens as (B, C, F, H, W) normalized latents; it may raise to interrupt sampling.
    geometry: the VAE's factors (geometry.VideoGeometry.of(vae.config, transformer.config)): where keyframes sit in
        time and the pixel coordinates of the tokens.
    """
    if not 0.0 < denoise <= 1.0:
        raise ValueError(f"denoise must be in (0, 1], got {denoise}")
    ts = [float(t) for t in timesteps]
    if not ts or not all(0.0 < t <= 1.0 for t in ts) or any(a <= b for a, b in zip(ts, ts[1:])):
        raise ValueError(
            f"timesteps must be a non-empty, strictly descending list in (0, 1] without the final 0, got {ts}"
        )
    per_step = [guidance] * len(timesteps) if isinstance(guidance, Guidance) else list(guidance)
    if len(per_step) != len(timesteps):
        raise ValueError(
            f"guidance: got a list of {len(per_step)} Guidance values for {len(timesteps)} timesteps; "
            f"pass one Guidance or one per timestep"
        )
    kept = kept_steps(timesteps, denoise)
    if not kept:
        raise ValueError(
            f"no timestep of the schedule {list(timesteps)} is <= denoise {denoise}; use a larger denoise or more steps"
        )
    schedule = [float(timesteps[i]) for i in kept]
    per_step = [per_step[i] for i in kept]
    for g in per_step:
        if g.stg_mode not in STG_MODES:
            raise ValueError(f"guidance.stg_mode {g.stg_mode!r} is not one of {STG_MODES}")
        if g.cfg > 1.0 and negative is None:
            raise ValueError(f"guidance.cfg = {g.cfg} > 1 needs a negative TextCondition, got None")

    b, c, frames, h, w = latents.shape
    device = latents.device
    model_dtype = next(transformer.parameters()).dtype
    causal_fix = bool(getattr(transformer.config, "causal_temporal_positioning", False))
    generator = torch.Generator("cpu").manual_seed(int(seed))
    schedule_t = torch.tensor(schedule, dtype=torch.float32, device=device)

    noise = _randn((b, frames * h * w, c), generator, device)  # token layout (f h w), like the official pipeline
    noise = unpatchify(noise, frames, h, w)
    t0 = schedule_t[0]
    x = noise if denoise >= 1.0 else t0 * noise + (1.0 - t0) * latents.to(device, torch.float32)

    cond = apply_keyframes(x, keyframes, generator, causal_fix, frame_rate, geometry)
    tokens, mask = cond.tokens, cond.mask
    init_tokens = tokens.clone()
    text_batches = {}  # copy layout (uncond?, perturbed?) -> stacked text and mask

    for i, t in enumerate(schedule_t):
        if mask is not None and image_cond_noise_scale > 0.0:
            eps = _randn(tokens.shape, generator, device)
            hard = (mask > 1.0 - T_EPS)[..., None]
            tokens = torch.where(hard, init_tokens + image_cond_noise_scale * eps * t**2, tokens)

        # per-token timestep: conditioning tokens sit at noise level 1 - strength until t drops below it
        tau = t.expand(b, 1) if mask is None else torch.minimum(t, 1.0 - mask)  # (B, 1) or (B, N)
        v = _guided_velocity(
            transformer, tokens, cond.coords, tau, positive, negative, per_step[i], model_dtype, text_batches
        )

        tau_next = _next_timesteps(tau, schedule_t)[..., None]  # (B, 1 or N, 1)
        x0 = tokens - tau[..., None] * v
        if stochastic:
            stepped = torch.lerp(x0, _randn(tokens.shape, generator, device), tau_next)
        else:
            stepped = tokens - (tau[..., None] - tau_next) * v
        if mask is None:
            tokens = stepped
        else:  # conditioning tokens are updated only once t is below their noise level 1 - strength
            update = (t - T_EPS < 1.0 - mask)[..., None]
            tokens = torch.where(update, stepped, tokens)

        if callback is not None:
            callback(i, len(schedule), unpatchify(x0[:, cond.num_extra :], frames, h, w))

    return unpatchify(tokens[:, cond.num_extra :], frames, h, w)
