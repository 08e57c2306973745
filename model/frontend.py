"""The steps every front-end shares: VideoPipeline, the ComfyUI nodes, the headless CLI (through the nodes) and the
tiny model's training all call these functions, so they cannot drift apart. A node only translates between ComfyUI
types and them.

  prompt_tokens / encode_prompt / Prompt   prompt -> TextCondition at the checkpoint version's token length
  empty_latent                             the zero latent of a video size
  encode_keyframe                          image or clip -> preprocess (model/preprocess.py) -> Keyframe latent
  encode_video                             frames -> normalized latent (no resize, no compression)
  decode_latents                           normalized latent -> frames, with the decode timestep and noise
  steps_for(family)                        the steps of a model family: the one place the nodes dispatch on

Defaults (the same for VideoPipeline.generate and the nodes' widgets):
  crf 29 (conditioning-image compression, preprocess.DEFAULT_CRF), image-conditioning noise 0.15 (hard-conditioned
  keyframe tokens reset to keyframe + 0.15 eps t^2 every step), decode timestep 0.05 and decode noise 0.025
  (0.9.1+ VAEs; official), all as in the official LTX-Video inference.
Keyframes are never trimmed: a clip must be 8k+1 frames and fit in the video (VideoGeometry.keyframe_start).

Decode-time randomness (the noise mixed into the latent, then the 0.9.1 decoder's noise injection) comes from
torch.Generator("cpu").manual_seed(seed + DECODE_SEED_OFFSET), seed = the sampling seed, so a seed fixes the whole
video (the official code uses the global RNG).
"""

import copy
from dataclasses import dataclass, field
from typing import Callable

import torch

from .conditioning import Keyframe
from .geometry import VideoGeometry
from .preprocess import DEFAULT_CRF, keyframe_pixels, rgb_frames, to_vae_input
from .sampling import TextCondition, sample

IMAGE_COND_NOISE_SCALE = 0.15
DECODE_TIMESTEP = 0.05
DECODE_NOISE_SCALE = 0.025
DECODE_SEED_OFFSET = 1_000_003
TILING = ("auto", "on", "off")


# ---------------------------------------------------------------------------------------------- prompts


def prompt_tokens(version: str | None, pinned: int | None = None) -> int:
    """Prompt length in tokens: the text-encoder file's own "max_tokens" (pinned; the built-in tiny T5 has one)
    when it has one, else the checkpoint version's: 128 for 0.9.0/0.9.1, 256 for 0.9.5 and later."""
    from .text_encoder import max_tokens_for_version

    return int(pinned) if pinned is not None else max_tokens_for_version(version)


def pinned_prompt_tokens(path) -> int | None:
    """The "max_tokens" a single-file text encoder stores in its metadata (or in its "config" JSON), else None."""
    import json
    import os

    if path is None or os.path.isdir(str(path)):
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
        config = json.loads(metadata.get("config") or "{}")
    except (OSError, ValueError):
        return None  # the loader reports an unreadable file itself
    value = metadata.get("max_tokens", config.get("max_tokens") if isinstance(config, dict) else None)
    return int(value) if value is not None else None


def encode_prompt(text_encoder, prompt: str, max_tokens: int | None = None) -> TextCondition:
    """One prompt -> TextCondition (1, max_tokens, width); max_tokens None: the encoder's own length."""
    if max_tokens is not None and max_tokens != text_encoder.max_tokens:
        text_encoder = copy.copy(text_encoder)  # same weights and tokenizer, other padding/truncation length
        text_encoder.max_tokens = int(max_tokens)
    with torch.inference_mode():
        return text_encoder.encode([prompt])


@dataclass
class Prompt:
    """An encoded prompt that can re-encode itself at another token length (the node layer's conditioning: the
    Text Encode node does not know the checkpoint, the sampler does). encode(text, max_tokens) -> TextCondition."""

    text: str
    condition: TextCondition
    max_tokens: int
    pinned: bool  # the encoder file fixes the length: never re-encoded
    encode: Callable[[str, int], TextCondition] = field(repr=False)
    builtin: bool = False  # from the built-in tiny T5 (builtin.warn_prompt checks its words)

    def for_version(self, version: str | None) -> TextCondition:
        tokens = self.max_tokens if self.pinned else prompt_tokens(version)
        if tokens != self.max_tokens:
            self.condition, self.max_tokens = self.encode(self.text, tokens), tokens
        return self.condition


# ---------------------------------------------------------------------------------------------- latents


def empty_latent(
    geometry: VideoGeometry, width: int, height: int, num_frames: int, batch: int = 1, device="cpu"
) -> torch.Tensor:
    """(batch, C, F, H, W) zeros for a video of a valid size (ValueError naming the nearest valid values)."""
    geometry.check_size(width, height, num_frames)
    shape = (batch, geometry.latent_channels, *geometry.latent_shape(width, height, num_frames))
    return torch.zeros(shape, device=device)


@torch.no_grad()
def encode_video(vae, video: torch.Tensor) -> torch.Tensor:
    """VAE input (B, 3, F, H, W) in [-1, 1] -> normalized latent, float32, on the VAE's device (posterior mean)."""
    device = next(vae.parameters()).device
    return vae.normalize(vae.encode(video.to(device)).float())


def encode_frames(vae, images: torch.Tensor, geometry: VideoGeometry, name: str = "images") -> torch.Tensor:
    """Frames (N, H, W, C) in [0, 1], N = 8k+1, sides multiples of 32, used as they are -> normalized latent."""
    frames = rgb_frames(images, name)
    problems = geometry.video_problems(
        frames.shape[2], frames.shape[1], frames.shape[0], ("image width", "image height", "number of images")
    )
    if problems:
        raise ValueError(f"{name}: " + "; ".join(problems))
    return encode_video(vae, to_vae_input(frames))


def encode_keyframe(
    vae,
    images: torch.Tensor,
    frame_index: int,
    strength: float,
    width: int,
    height: int,
    num_frames: int,
    geometry: VideoGeometry,
    crf: int = DEFAULT_CRF,
    names: tuple[str, str] = ("image", "frame_index"),
) -> Keyframe:
    """An image (H, W, C) or clip (N, H, W, C) in [0, 1] at `frame_index` (negative: from the end) of a video of
    width x height x num_frames -> Keyframe (normalized posterior-mean latent, start frame, strength).
    names: (image, index) input names the messages use. ValueError for clips that do not fit (never trimmed)."""
    if not 0.0 <= float(strength) <= 1.0:
        raise ValueError(f"{names[0]}: strength must be in [0, 1], got {strength}")
    count = images.shape[0] if isinstance(images, torch.Tensor) and images.ndim == 4 else 1
    start = geometry.keyframe_start(names[0], names[1], int(frame_index), count, num_frames)
    latent = encode_video(vae, keyframe_pixels(images, width, height, crf, names[0]))
    return Keyframe(latent, start, float(strength))


# ---------------------------------------------------------------------------------------------- decoding


def decode_generator(seed: int) -> torch.Generator:
    """The CPU generator of a video's decode-time randomness, derived from the sampling seed."""
    return torch.Generator("cpu").manual_seed(int(seed) + DECODE_SEED_OFFSET)


def mix_decode_noise(latents: torch.Tensor, scale: float, generator: torch.Generator) -> torch.Tensor:
    """(1 - scale) z + scale eps on normalized latents (B, C, f, h, w) float32, eps drawn first from generator."""
    eps = torch.randn(latents.shape, generator=generator, dtype=torch.float32).to(latents.device)
    return latents * (1.0 - scale) + eps * scale


@torch.no_grad()
def decode_latents(
    vae,
    latents: torch.Tensor,
    seed: int,
    decode_timestep: float = DECODE_TIMESTEP,
    decode_noise_scale: float = DECODE_NOISE_SCALE,
    tiling: str = "off",
    out_device=None,
) -> torch.Tensor:
    """Normalized latents (B, C, f, h, w) -> frames (B, F, H, W, 3) float32 in [0, 1].

    Timestep-conditioned (0.9.1+) decoders: z <- (1 - s) z + s eps, then decode at timestep t (s, t: the decode
    noise scale and timestep; ignored by other VAEs). tiling: "off" (whole), "on" (overlapping pieces,
    vae_tiling.decode_tiled), "auto" (pieces only when the whole decode would not fit in free memory)."""
    if tiling not in TILING:
        raise ValueError(f"tiling must be one of {TILING}, got {tiling!r}")
    device = next(vae.parameters()).device
    generator = decode_generator(seed)
    z = latents.float().to(device)
    timestep = None
    if vae.config.timestep_conditioning:
        z = mix_decode_noise(z, float(decode_noise_scale), generator)
        timestep = float(decode_timestep)
    raw = vae.denormalize(z)
    if tiling == "off":
        video = vae.decode(raw, timestep, generator)
    else:
        from .ltxv.vae_tiling import decode_auto, decode_tiled

        decode = decode_tiled if tiling == "on" else decode_auto
        video = decode(vae, raw, timestep, generator=generator, out_device=out_device)
    video = video if out_device is None else video.to(out_device)
    return ((video.float().clamp(-1.0, 1.0) + 1.0) / 2.0).permute(0, 2, 3, 4, 1)


# ---------------------------------------------------------------------------------------------- families


@dataclass(frozen=True)
class FamilySteps:
    """What a model family provides to the front-ends. The loader's model object names its family; the nodes
    (sampler, Image To Video, VAE Decode) and VideoPipeline get these through steps_for(family)."""

    family: str
    prompt_tokens: Callable  # (version, pinned) -> int
    encode_keyframe: Callable  # see encode_keyframe
    sample: Callable  # see sampling.sample
    decode: Callable  # see decode_latents


LTXV_STEPS = FamilySteps("ltxv", prompt_tokens, encode_keyframe, sample, decode_latents)


def ltx2_prompt_tokens(version: str | None = None, pinned: int | None = None) -> int:
    """LTX-2 prompts are always 1024 Gemma tokens (model/ltx2/text_encoder.py: every version's rule)."""
    from .ltx2.text_encoder import MAX_TOKENS

    return MAX_TOKENS


def _ltx2_sample(*args, **kwargs):
    """model.ltx2.sampling.generate (imported on use: the LTX-2 modules load only for LTX-2 models)."""
    from .ltx2.sampling import generate

    return generate(*args, **kwargs)


# LTX-2 shares the keyframe encoding and the video decode with 0.9.x (the same fit/crop/compress, decode timestep,
# noise and seed rule: model/ltx2/pipeline.py calls the same functions); its sampler is the audio+video one.
LTX2_STEPS = FamilySteps("ltx2", ltx2_prompt_tokens, encode_keyframe, _ltx2_sample, decode_latents)
FAMILIES = {"ltxv": LTXV_STEPS, "ltx2": LTX2_STEPS}
PLANNED: dict[str, str] = {}  # family -> what is missing, for a family announced but not wired in yet


def steps_for(family: str) -> FamilySteps:
    """The front-end steps of a model family ("ltxv": LTX-Video 0.9.x, "ltx2": LTX-2). NotImplementedError for a family that is
    planned but not there yet, ValueError for an unknown one."""
    if family in FAMILIES:
        return FAMILIES[family]
    if family in PLANNED:
        raise NotImplementedError(f"model family '{family}' is not supported yet: {PLANNED[family]}")
    raise ValueError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")


__all__ = [
    "IMAGE_COND_NOISE_SCALE",
    "DECODE_TIMESTEP",
    "DECODE_NOISE_SCALE",
    "TILING",
    "prompt_tokens",
    "pinned_prompt_tokens",
    "encode_prompt",
    "Prompt",
    "empty_latent",
    "encode_video",
    "encode_frames",
    "encode_keyframe",
    "decode_generator",
    "mix_decode_noise",
    "decode_latents",
    "FamilySteps",
    "steps_for",
]
