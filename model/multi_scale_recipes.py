"""Multi-scale recipes of LTX-Video 0.9.7 / 0.9.8 (model/multi_scale.py runs them).

A recipe is the official config's first_pass / second_pass dicts (LTXVideoPipeline arguments, the layout of
Lightricks/LTX-Video configs/*.yaml) parsed into a schedule and a guidance table per pass: MultiScaleRecipe.
from_official. RECIPES holds the released configs.
"""

from dataclasses import dataclass
from typing import Sequence

import torch

from .sampling import Guidance, guidance_per_step
from .schedules import check_allowed

DOWNSCALE_FACTOR = 0.6666666
PASS_KEYS = frozenset(
    "num_inference_steps skip_initial_inference_steps skip_final_inference_steps timesteps guidance_scale stg_scale "
    "rescaling_scale guidance_timesteps skip_block_list cfg_star_rescale tone_map_compression_ratio".split()
)


@dataclass(frozen=True)
class PassRecipe:
    """One pass: its schedule (the checkpoint's for `steps`, cut by skip_initial / skip_final, or a fixed list of
    timesteps) and its guidance table (Guidance j for timesteps <= thresholds[j], sampling.guidance_per_step)."""

    steps: int = 20
    skip_initial: int = 0
    skip_final: int = 0
    timesteps: tuple[float, ...] | None = None
    thresholds: tuple[float, ...] = (1.0,)
    guidances: tuple[Guidance, ...] = (Guidance(cfg=1.0, stg=0.0),)
    tone_map: float = 0.0  # latent tone-mapping compression before the decode (second pass only)

    def __post_init__(self):
        if self.timesteps is None and not 0 <= self.skip_initial + self.skip_final < self.steps:
            raise ValueError(
                f"pass recipe: skip_initial {self.skip_initial} + skip_final {self.skip_final} must be >= 0 and "
                f"below steps {self.steps}"
            )
        if not 0.0 <= self.tone_map <= 1.0:
            raise ValueError(f"pass recipe: tone_map_compression_ratio must be in [0, 1], got {self.tone_map}")
        if len(self.thresholds) != len(self.guidances) or not self.guidances:
            raise ValueError(f"pass recipe: {len(self.thresholds)} thresholds for {len(self.guidances)} guidances")

    @classmethod
    def from_official(cls, d: dict, where: str = "pass") -> "PassRecipe":
        """An official first_pass / second_pass dict (LTXVideoPipeline arguments; lists of guidance values are
        indexed through guidance_timesteps, a list of block lists too, a flat block list holds for every step)."""
        unknown = set(d) - PASS_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(PASS_KEYS)}")
        values = {k: d.get(k, default) for k, default in (("guidance_scale", 4.5), ("stg_scale", 1.0))}
        values["rescaling_scale"] = d.get("rescaling_scale", 0.7)
        blocks = d.get("skip_block_list") or []
        per_entry = [k for k, v in values.items() if isinstance(v, (list, tuple))]
        nested = bool(blocks) and isinstance(blocks[0], (list, tuple))
        thresholds = tuple(float(t) for t in d.get("guidance_timesteps") or (1.0,))
        if (per_entry or nested) and not d.get("guidance_timesteps"):
            raise ValueError(f"{where}: lists of guidance values need guidance_timesteps")
        lists = {k: values[k] for k in per_entry} | ({"skip_block_list": blocks} if nested else {})
        short = {k: len(v) for k, v in lists.items() if len(v) != len(thresholds)}
        if short:
            raise ValueError(f"{where}: {short} entries for {len(thresholds)} guidance_timesteps; need one per entry")

        def entry(name, j):
            v = values[name]
            return float(v[j] if isinstance(v, (list, tuple)) else v)

        guidances = tuple(
            Guidance(
                cfg=entry("guidance_scale", j),
                stg=entry("stg_scale", j),
                stg_blocks=tuple(blocks[j] if nested else blocks),
                rescale=entry("rescaling_scale", j),
                cfg_star=bool(d.get("cfg_star_rescale", False)),
            )
            for j in range(len(thresholds))
        )
        fixed = d.get("timesteps")
        return cls(
            steps=len(fixed) if fixed else int(d.get("num_inference_steps", 20)),
            skip_initial=int(d.get("skip_initial_inference_steps", 0)),
            skip_final=int(d.get("skip_final_inference_steps", 0)),
            timesteps=tuple(float(t) for t in fixed) if fixed else None,
            thresholds=thresholds,
            guidances=guidances,
            tone_map=float(d.get("tone_map_compression_ratio", 0.0)),
        )

    def schedule(self, pipe, width: int, height: int, num_frames: int) -> list[float]:
        """The pass's timesteps for a video of this size (the checkpoint's scheduler unless fixed)."""
        if self.timesteps is None:
            return pipe.schedule(self.steps, width, height, num_frames)[
                self.skip_initial : self.steps - self.skip_final
            ]
        ts = torch.tensor(self.timesteps, dtype=torch.float32).tolist()  # float32, as the official scheduler holds them
        if pipe.allowed_inference_steps is not None:
            check_allowed(ts, pipe.allowed_inference_steps)
        return ts

    def guidance_for(self, ts: Sequence[float]) -> list[Guidance]:
        return guidance_per_step(ts, self.thresholds, self.guidances)


@dataclass(frozen=True)
class MultiScaleRecipe:
    first: PassRecipe
    second: PassRecipe
    downscale_factor: float = DOWNSCALE_FACTOR
    adain_factor: float = 1.0

    def __post_init__(self):
        if not 0.0 < self.downscale_factor <= 1.0:
            raise ValueError(f"multi-scale recipe: downscale_factor must be in (0, 1], got {self.downscale_factor}")

    @classmethod
    def from_official(cls, config: dict, adain_factor: float = 1.0) -> "MultiScaleRecipe":
        """An official multi-scale config (its downscale_factor, first_pass and second_pass)."""
        return cls(
            PassRecipe.from_official(config["first_pass"], "first_pass"),
            PassRecipe.from_official(config["second_pass"], "second_pass"),
            float(config.get("downscale_factor", DOWNSCALE_FACTOR)),
            adain_factor,
        )


# The released multi-scale configs (Lightricks/LTX-Video configs/*.yaml; 0.9.7 dev as last changed in 93af686).
_DEV = {
    "first_pass": {
        "guidance_scale": [1, 1, 6, 8, 6, 1, 1],
        "stg_scale": [0, 0, 4, 4, 4, 2, 1],
        "rescaling_scale": [1, 1, 0.5, 0.5, 1, 1, 1],
        "guidance_timesteps": [1.0, 0.996, 0.9933, 0.9850, 0.9767, 0.9008, 0.6180],
        "skip_block_list": [[], [11, 25, 35, 39], [22, 35, 39], [28], [28], [28], [28]],
        "num_inference_steps": 30,
        "skip_final_inference_steps": 3,
        "cfg_star_rescale": True,
    },
    "second_pass": {
        "guidance_scale": [1],
        "stg_scale": [1],
        "rescaling_scale": [1],
        "guidance_timesteps": [1.0],
        "skip_block_list": [27],
        "num_inference_steps": 30,
        "skip_initial_inference_steps": 17,
        "cfg_star_rescale": True,
    },
}
_DISTILLED_PASS = {"guidance_scale": 1, "stg_scale": 0, "rescaling_scale": 1, "skip_block_list": [42]}
_DISTILLED = {
    "first_pass": {"timesteps": [1.0, 0.9937, 0.9875, 0.9812, 0.9750, 0.9094, 0.7250], **_DISTILLED_PASS},
    "second_pass": {"timesteps": [0.9094, 0.7250, 0.4219], **_DISTILLED_PASS},
}
_DISTILLED_TONE_MAPPED = {**_DISTILLED, "second_pass": {**_DISTILLED["second_pass"], "tone_map_compression_ratio": 0.6}}
RECIPES = {
    "13b-0.9.7-dev": MultiScaleRecipe.from_official(_DEV),
    "13b-0.9.8-dev": MultiScaleRecipe.from_official(_DEV),
    "13b-0.9.7-distilled": MultiScaleRecipe.from_official(_DISTILLED),
    "13b-0.9.8-distilled": MultiScaleRecipe.from_official(_DISTILLED_TONE_MAPPED),
    "2b-0.9.8-distilled": MultiScaleRecipe.from_official(_DISTILLED),
}


__all__ = ["DOWNSCALE_FACTOR", "PassRecipe", "MultiScaleRecipe", "RECIPES"]
