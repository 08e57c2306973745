"""Timestep schedules of the LTX-Video rectified-flow sampler.

A schedule is a descending list of timesteps t in (0, 1], first 1.0 (unless steps are skipped), without the final 0
(the sampler appends it). t is both the noise level and the model timestep (the DiT multiplies it by 1000).

Kinds:
  "shifted"           Uniform linspace(1, 1/n, n), SD3 token-count shift, stretched so the last value is the
                      terminal (0.1): the 0.9.0 / 0.9.1 checkpoints.
  "linear_quadratic"  n//2 linear steps from 1 down to 0.975, then a quadratic towards 0: 0.9.5 and later.
  "distilled"         the fixed lists of the distilled checkpoints: 8 steps = 0.9.6-distilled (linear-quadratic(8)),
                      7 steps = first pass and 3 steps = second pass of the 0.9.7 / 0.9.8 distilled multi-scale recipe.
  "auto"              what the checkpoint's "scheduler" metadata says (sampler + shifting).

The arithmetic is float32 torch in the official scheduler's order of operations: near t = 1 the float32
cancellation in the terminal stretch moves values by up to ~1e-3 from the exact formula, and the official
checkpoints were run with those float32 values, so we reproduce them. Returned as Python floats.
"""

import math
from dataclasses import dataclass
from typing import Sequence

import torch

SAMPLERS = ("Uniform", "LinearQuadratic", "Constant")
SHIFTINGS = ("SD3", "SimpleDiffusion", None)
KINDS = ("auto", "shifted", "linear_quadratic", "distilled")

# SD3-style resolution shift: mu grows linearly with the latent token count (not clamped).
SHIFT_MIN_TOKENS, SHIFT_MAX_TOKENS = 1024, 4096
SHIFT_MIN, SHIFT_MAX = 0.95, 2.05
DEFAULT_TERMINAL = 0.1

# Fixed lists of the distilled multi-scale checkpoints (13B 0.9.7/0.9.8 distilled, 2B 0.9.8 distilled).
DISTILLED_FIRST_PASS = (1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725)
DISTILLED_SECOND_PASS = (0.9094, 0.725, 0.4219)


@dataclass
class SchedulerConfig:
    """The official "scheduler" metadata dict (RectifiedFlowScheduler arguments)."""

    sampler: str = "Uniform"
    shifting: str | None = None
    base_resolution: int = 32 * 32
    target_shift_terminal: float | None = None
    shift: float | None = None
    num_train_timesteps: int = 1000

    @classmethod
    def from_metadata(cls, d: dict | None) -> "SchedulerConfig":
        """d: metadata["config"]["scheduler"]; unknown keys (e.g. "_class_name") are ignored, missing ones default."""
        d = dict(d or {})
        config = cls(
            sampler=d.get("sampler") or "Uniform",
            shifting=d.get("shifting"),
            base_resolution=d.get("base_resolution") or 32 * 32,
            target_shift_terminal=d.get("target_shift_terminal"),
            shift=d.get("shift"),
            num_train_timesteps=int(d.get("num_train_timesteps") or 1000),
        )
        if config.sampler not in SAMPLERS:
            raise ValueError(f"scheduler config: sampler {config.sampler!r} is not one of {SAMPLERS}")
        if config.shifting not in SHIFTINGS:
            raise ValueError(f"scheduler config: shifting {config.shifting!r} is not one of {SHIFTINGS}")
        if config.sampler == "Constant" and config.shift is None:
            raise ValueError("scheduler config: sampler 'Constant' needs a 'shift' value, found none")
        return config


def uniform(steps: int) -> torch.Tensor:
    """linspace(1, 1/steps, steps)."""
    return torch.linspace(1.0, 1.0 / steps, steps, dtype=torch.float32)


def linear_quadratic(steps: int, threshold_noise: float = 0.025, linear_steps: int | None = None) -> torch.Tensor:
    """steps//2 noise levels rising linearly to threshold_noise, then a quadratic reaching 1 after the last step
    (continuous in value and slope at the joint). Returned as timesteps t = 1 - noise level."""
    if steps == 1:
        return torch.tensor([1.0])
    linear_steps = steps // 2 if linear_steps is None else linear_steps
    quadratic_steps = steps - linear_steps
    # Quadratic a*i^2 + b*i + c on i in [linear_steps, steps]: value threshold_noise and slope
    # threshold_noise/linear_steps at i = linear_steps, value 1 at i = steps.
    excess = linear_steps - threshold_noise * steps
    a = excess / (linear_steps * quadratic_steps**2)
    b = threshold_noise / linear_steps - 2 * excess / quadratic_steps**2
    c = a * linear_steps**2
    noise = [i * threshold_noise / linear_steps for i in range(linear_steps)]
    noise += [a * i * i + b * i + c for i in range(linear_steps, steps)]
    return torch.tensor([1.0 - x for x in noise], dtype=torch.float32)


def time_shift(mu: float, t: torch.Tensor) -> torch.Tensor:
    """Flux/SD3 shift e^mu / (e^mu + (1/t - 1)); t = 1 stays 1."""
    return math.exp(mu) / (math.exp(mu) + (1.0 / t - 1.0))


def token_shift(num_tokens: int) -> float:
    """mu for a latent of num_tokens tokens: 0.95 at 1024 tokens, 2.05 at 4096, linear (extrapolated) elsewhere."""
    slope = (SHIFT_MAX - SHIFT_MIN) / (SHIFT_MAX_TOKENS - SHIFT_MIN_TOKENS)
    return slope * num_tokens + (SHIFT_MIN - slope * SHIFT_MIN_TOKENS)


def stretch_to_terminal(ts: torch.Tensor, terminal: float) -> torch.Tensor:
    """Scale (1 - t) so the last value becomes `terminal` (the first stays 1)."""
    if not 0.0 < terminal < 1.0:
        raise ValueError(f"target_shift_terminal must be in (0, 1), got {terminal}")
    if ts[-1] >= 1.0:  # a single step [1.0] has nothing to stretch
        return ts
    one_minus = 1.0 - ts
    scale = one_minus[-1] / (1.0 - terminal)
    return 1.0 - one_minus / scale


def sd3_shift(ts: torch.Tensor, num_tokens: int, terminal: float | None) -> torch.Tensor:
    shifted = time_shift(token_shift(num_tokens), ts)
    return stretch_to_terminal(shifted, terminal) if terminal is not None else shifted


def simple_diffusion_shift(ts: torch.Tensor, num_tokens: int, base_resolution: int) -> torch.Tensor:
    """Shift the log-SNR by 2*log(tokens/base_resolution): t' = sigmoid(log(t/(1-t)) + log(tokens/base))."""
    log_snr = torch.log((ts / (1.0 - ts)) ** 2) + 2.0 * math.log(num_tokens / base_resolution)
    return torch.sigmoid(0.5 * log_snr)


def _num_tokens(latent_shape: Sequence[int]) -> int:
    """latent_shape: (F, H, W) latent frames/height/width; a (B, C, F, H, W) shape is accepted too."""
    if len(latent_shape) not in (3, 5):
        raise ValueError(f"latent_shape must be (F, H, W) or (B, C, F, H, W), got {tuple(latent_shape)}")
    f, h, w = latent_shape[-3:]
    return int(f) * int(h) * int(w)


def from_config(config: SchedulerConfig, steps: int, latent_shape: Sequence[int]) -> list[float]:
    """The schedule the official RectifiedFlowScheduler produces for this config."""
    steps = min(steps, config.num_train_timesteps)
    if config.sampler == "Uniform":
        ts = uniform(steps)
    elif config.sampler == "LinearQuadratic":
        ts = linear_quadratic(steps)
    else:  # Constant
        ts = time_shift(config.shift, uniform(steps))
    num_tokens = _num_tokens(latent_shape)
    if config.shifting == "SD3":
        ts = sd3_shift(ts, num_tokens, config.target_shift_terminal)
    elif config.shifting == "SimpleDiffusion":
        ts = simple_diffusion_shift(ts, num_tokens, config.base_resolution)
    return ts.tolist()


def distilled(steps: int) -> list[float]:
    if steps == 8:
        return linear_quadratic(8).tolist()
    if steps in (7, 3):  # float32, as set_timesteps(timesteps=list) holds them
        return torch.tensor(DISTILLED_FIRST_PASS if steps == 7 else DISTILLED_SECOND_PASS).tolist()
    raise ValueError(
        f"distilled schedule: steps must be 8 (0.9.6 distilled), 7 (0.9.7/0.9.8 distilled first pass) "
        f"or 3 (second pass), got {steps}"
    )


def timesteps(
    kind: str,
    steps: int,
    latent_shape: Sequence[int],
    scheduler_config: SchedulerConfig | dict | None = None,
    allowed_inference_steps: Sequence[float] | None = None,
) -> list[float]:
    """Descending timesteps (no trailing 0) for `steps` sampling steps.

    kind: "auto" | "shifted" | "linear_quadratic" | "distilled" (see the module docstring).
    latent_shape: (F, H, W) of the video latent (extra conditioning tokens are not counted), used by the shift.
    scheduler_config: the checkpoint's SchedulerConfig (or its metadata dict); required for "auto".
    allowed_inference_steps: the checkpoint's list (distilled models); every timestep rounded to 4 decimals must
    be in it, else ValueError.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if isinstance(scheduler_config, dict):
        scheduler_config = SchedulerConfig.from_metadata(scheduler_config)
    if kind == "auto":
        if scheduler_config is None:
            raise ValueError("timesteps(kind='auto') needs the checkpoint's scheduler_config, got None")
        ts = from_config(scheduler_config, steps, latent_shape)
    elif kind == "shifted":
        ts = sd3_shift(uniform(steps), _num_tokens(latent_shape), DEFAULT_TERMINAL).tolist()
    elif kind == "linear_quadratic":
        ts = linear_quadratic(steps).tolist()
    elif kind == "distilled":
        ts = distilled(steps)
    else:
        raise ValueError(f"schedule kind {kind!r} is not one of {KINDS}")
    if allowed_inference_steps is not None:
        check_allowed(ts, allowed_inference_steps)
    return ts


def check_allowed(ts: Sequence[float], allowed_inference_steps: Sequence[float]) -> None:
    """Raise ValueError unless every timestep (rounded to 4 decimals) is one the checkpoint allows."""
    allowed = [round(float(a), 4) for a in allowed_inference_steps]
    bad = [round(t, 4) for t in ts if round(t, 4) not in allowed]
    if bad:
        raise ValueError(
            f"timesteps {bad} are not allowed by this checkpoint; its allowed_inference_steps are "
            f"{allowed} (distilled checkpoints: use the 'distilled' schedule with 8, 7 or 3 steps)"
        )
