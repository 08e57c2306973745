"""Sigma lists of the LTX-2 sampler: the token-count shifted schedule with terminal stretch and the distilled lists.

A sigma list is descending, starts at (or below) 1, ends with the final 0, float32: the Euler loop steps from
sigmas[i] to sigmas[i + 1]. The arithmetic is float32 torch in the order of ltx-core's LTX2Scheduler, so the lists
are bit-identical to the official ones (the LTX-2 checkpoints were sampled with those float32 values).
"""

import torch

from ..schedules import stretch_to_terminal, time_shift

VERSIONS = ("2.0", "2.3", "2.5")

# The shift rises linearly with the token count, through (1024, base_shift) and (4096, max_shift), not clamped.
SHIFT_ANCHOR_TOKENS = (1024, 4096)
DEFAULT_MAX_SHIFT, DEFAULT_BASE_SHIFT = 2.05, 0.95
DEFAULT_TERMINAL = 0.1
# The official pipelines call the scheduler without a latent: the shift is then the one of 4096 tokens (2.05).
PIPELINE_TOKENS = 4096

# Distilled checkpoints (and stage 2 of every two-stage pipeline): fixed lists, the final 0 included.
DISTILLED_SIGMAS = (1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0)
STAGE_2_DISTILLED_SIGMAS = (0.909375, 0.725, 0.421875, 0.0)

# Steps of the guided (dev) stage 1 per version (ltx-pipelines LTX_2_PARAMS / LTX_2_3_PARAMS; 2.5 takes the 2.4
# params of the LTX-2 repository, which keep the 2.3 value).
DEFAULT_STEPS = {"2.0": 40, "2.3": 30, "2.5": 30}


def token_shift(tokens: int, max_shift: float = DEFAULT_MAX_SHIFT, base_shift: float = DEFAULT_BASE_SHIFT) -> float:
    """The shift mu of a latent of `tokens` tokens (F·H·W for video)."""
    low, high = SHIFT_ANCHOR_TOKENS
    slope = (max_shift - base_shift) / (high - low)
    return tokens * slope + (base_shift - slope * low)


def ltx2_sigmas(
    steps: int,
    tokens: int = PIPELINE_TOKENS,
    max_shift: float = DEFAULT_MAX_SHIFT,
    base_shift: float = DEFAULT_BASE_SHIFT,
    terminal: float | None = DEFAULT_TERMINAL,
) -> torch.Tensor:
    """(steps + 1,) float32: linspace(1, 0) shifted by e^mu / (e^mu + 1/σ - 1), then (unless terminal is None) the
    non-zero values stretched so that the last one is `terminal`; the final 0 stays.

    With one step the shifted first value is 1 or 1 - 6e-8 (float32 rounding, depends on the shift): the stretch
    makes the latter 0.1 like ltx-core, and leaves an exact 1 alone where ltx-core divides 0 by 0 (NaN)."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if tokens < 1:
        raise ValueError(f"tokens must be >= 1, got {tokens}")
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    shifted = time_shift(token_shift(tokens, max_shift, base_shift), sigmas[:-1])  # (steps,), all non-zero
    if terminal is not None:
        shifted = stretch_to_terminal(shifted, terminal)
    return torch.cat([shifted, sigmas[-1:]]).to(torch.float32)


def distilled_sigmas(stage: int) -> torch.Tensor:
    """The distilled list of stage 1 (8 steps from 1.0) or stage 2 (3 steps from 0.909375), float32."""
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage!r}")
    return torch.tensor(DISTILLED_SIGMAS if stage == 1 else STAGE_2_DISTILLED_SIGMAS, dtype=torch.float32)
