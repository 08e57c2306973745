"""Multimodal guidance of LTX-2: video and audio CFG, per-modality STG, modality guidance, rescale.

Up to four transformer passes per step, each giving both modalities' denoised latents:
  cond       positive text, nothing skipped
  uncond     negative text                                      (if either modality's cfg != 1)
  perturbed  positive text, self-attention skipped (STG) on each modality's STG blocks
                                                                (if either modality's stg != 0)
  isolated   positive text, audio→video and video→audio cross-attention off in every block
                                                                (if either modality's modality scale != 1)
Per modality, with c, u, p, i the cond/uncond/perturbed/isolated denoised latents (a pass that did not run counts
as 0, its scale being neutral):
  pred = c + (cfg - 1)(c - u) + stg (c - p) + (modality - 1)(c - i)
  rescale r != 0:  pred *= r · std(c) / std(pred) + (1 - r)     (std over the whole tensor, batch included)
computed in float32 (as the LTX-2 repository does; ltx-core 1.0.0 computes in the latent dtype).
"""

import math
from dataclasses import dataclass, field

import torch

from .streams import NO_SKIP, Skip

PASSES = ("cond", "uncond", "perturbed", "isolated")


def _is(value: float, neutral: float) -> bool:
    return math.isclose(value, neutral)


@dataclass(frozen=True)
class GuiderParams:
    """Guidance of one modality. stg_blocks: block indices (from 0) whose self-attention the STG pass skips, None
    for every block. skip_step k: the guided prediction is recomputed on every (k+1)-th step only, the steps in
    between reuse the last one (0: every step)."""

    cfg_scale: float = 1.0
    stg_scale: float = 0.0
    stg_blocks: tuple[int, ...] | None = ()
    rescale_scale: float = 0.0
    modality_scale: float = 1.0
    skip_step: int = 0

    def __post_init__(self):
        for name in ("cfg_scale", "stg_scale", "rescale_scale", "modality_scale"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not 0.0 <= self.rescale_scale <= 1.0:
            raise ValueError(f"rescale_scale must be in [0, 1], got {self.rescale_scale}")
        if not isinstance(self.skip_step, int) or self.skip_step < 0:
            raise ValueError(f"skip_step must be an int >= 0, got {self.skip_step!r}")
        if self.stg_blocks is not None:
            blocks = tuple(self.stg_blocks)
            if any(not isinstance(b, int) or b < 0 for b in blocks):
                raise ValueError(f"stg_blocks must be block indices >= 0 (or None for all), got {self.stg_blocks!r}")
            object.__setattr__(self, "stg_blocks", blocks)  # a list from a config becomes a tuple

    @property
    def uses_uncond(self) -> bool:
        return not _is(self.cfg_scale, 1.0)

    @property
    def uses_perturbed(self) -> bool:
        return not _is(self.stg_scale, 0.0)

    @property
    def uses_isolated(self) -> bool:
        return not _is(self.modality_scale, 1.0)

    def skips(self, step: int) -> bool:
        """True where this step reuses the last guided prediction."""
        return self.skip_step > 0 and step % (self.skip_step + 1) != 0

    def stg_skip_blocks(self, num_layers: int) -> frozenset[int]:
        """Blocks whose self-attention the perturbed pass skips for this modality (none when stg is 0)."""
        if not self.uses_perturbed:
            return frozenset()
        blocks = range(num_layers) if self.stg_blocks is None else self.stg_blocks
        if any(b >= num_layers for b in blocks):
            raise ValueError(f"stg_blocks {self.stg_blocks} out of range for a transformer of {num_layers} blocks")
        return frozenset(blocks)

    def combine(
        self,
        cond: torch.Tensor,
        uncond: torch.Tensor | None = None,
        perturbed: torch.Tensor | None = None,
        isolated: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The guided denoised latent of this modality from its passes' denoised latents (None: pass not run)."""
        c = cond.float()
        u, p, i = (0.0 if x is None else x.float() for x in (uncond, perturbed, isolated))
        pred = c + (self.cfg_scale - 1) * (c - u) + self.stg_scale * (c - p) + (self.modality_scale - 1) * (c - i)
        if self.rescale_scale != 0:
            factor = c.std() / pred.std()
            pred = pred * (self.rescale_scale * factor + (1 - self.rescale_scale))
        return pred.to(cond.dtype)


@dataclass(frozen=True)
class GuidancePass:
    """One transformer pass of a guided step: its name (PASSES), whether it reads the negative text, its skips."""

    name: str
    negative_text: bool
    skip: Skip


@dataclass(frozen=True)
class MultiModalGuidance:
    """Video and audio guidance; both modalities come out of the same passes. Both recompute on the same steps
    (equal skip_step): ltx-core would run a step where only one modality skips with that modality switched off
    inside the transformer, which a Stream cannot say."""

    video: GuiderParams = field(default_factory=GuiderParams)
    audio: GuiderParams = field(default_factory=GuiderParams)

    def __post_init__(self):
        if self.video.skip_step != self.audio.skip_step:
            raise ValueError(
                f"video and audio skip_step must be equal, got {self.video.skip_step} and {self.audio.skip_step}"
            )

    def skips(self, step: int) -> bool:
        return self.video.skips(step)

    def passes(self, num_layers: int) -> tuple[GuidancePass, ...]:
        """The passes of a guided step, in ltx-pipelines' order; num_layers: the transformer's block count."""
        plan = [GuidancePass("cond", False, NO_SKIP)]
        if self.video.uses_uncond or self.audio.uses_uncond:
            plan.append(GuidancePass("uncond", True, NO_SKIP))
        if self.video.uses_perturbed or self.audio.uses_perturbed:
            stg = Skip(
                video_self_attention=self.video.stg_skip_blocks(num_layers),
                audio_self_attention=self.audio.stg_skip_blocks(num_layers),
            )
            plan.append(GuidancePass("perturbed", False, stg))
        if self.video.uses_isolated or self.audio.uses_isolated:
            plan.append(GuidancePass("isolated", False, Skip.isolate_modalities(num_layers)))
        return tuple(plan)


def _version(stg_block: int) -> MultiModalGuidance:
    return MultiModalGuidance(
        video=GuiderParams(
            cfg_scale=3.0, stg_scale=1.0, stg_blocks=(stg_block,), rescale_scale=0.7, modality_scale=3.0
        ),
        audio=GuiderParams(
            cfg_scale=7.0, stg_scale=1.0, stg_blocks=(stg_block,), rescale_scale=0.7, modality_scale=3.0
        ),
    )


# Guided (dev) defaults per version: ltx-pipelines 1.0.0 LTX_2_PARAMS (2.0, STG on block 29) and LTX_2_3_PARAMS
# (2.3, block 28); the LTX-2 repository gives every checkpoint from 2.4 on (2.5 included) the 2.3 values.
# Distilled checkpoints and stage 2 run without guidance.
GUIDANCE = {"2.0": _version(29), "2.3": _version(28), "2.5": _version(28)}
