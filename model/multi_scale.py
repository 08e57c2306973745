"""Multi-scale generation of LTX-Video 0.9.7 / 0.9.8 (the official LTXMultiScalePipeline of ltx_video 0.1.2).

  1. first pass at the reduced size: each side int(side * downscale_factor) rounded down to a multiple of the VAE's
     spatial factor (official: downscale_factor 0.6666666 in every multi-scale config);
  2. the normalized first-pass latent is un-normalized, upsampled x2 in space by the LatentUpsampler, normalized
     again and AdaIN-matched to the first-pass latent: per sample and channel, (x - mean(x)) / std(x) * std(ref) +
     mean(ref) (unbiased std over frames, height and width), blended with lerp(x, matched, adain_factor) (the
     official pipeline fixes the factor at 1);
  3. second pass at twice the reduced size, started from that latent noised to its first timestep (the official
     skip_initial_inference_steps / fixed-timestep second pass: sampling.sample with denoise = that timestep);
  4. decode (the decode timestep and noise of frontend.decode_latents), with the second pass's tone mapping when
     its recipe has one (0.9.8 13B distilled: 0.6), then bilinear resize of the frames to the size asked for.

Keyframe images are fitted to the target size once (the shared blur + H.264 recipe, preprocess.keyframe_pixels),
then resized bilinearly to each pass's size and encoded there, as the official pipeline resizes its conditioning
media to each call's size. The prompt is encoded once for both passes.

Noise: the first pass draws from `seed` (sampling.sample's rule), the second pass from seed + SECOND_PASS_SEED_OFFSET,
each with a fresh CPU generator; the official pipeline keeps drawing from one generator across both passes.

Recipes (model/multi_scale_recipes.py) are written in the official config layout (first_pass / second_pass dicts of
LTXVideoPipeline arguments) and parsed by MultiScaleRecipe.from_official; RECIPES holds the released configs.
"""

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from . import frontend
from .conditioning import Keyframe
from .multi_scale_recipes import DOWNSCALE_FACTOR, RECIPES, MultiScaleRecipe, PassRecipe
from .preprocess import DEFAULT_CRF, keyframe_pixels
from .sampling import sample

SECOND_PASS_SEED_OFFSET = 2_000_003


def reduced_size(width: int, height: int, factor: float, step: int) -> tuple[int, int]:
    """The first pass's (width, height): int(side * factor) rounded down to a multiple of `step` (official rule);
    ValueError naming the side and the smallest valid value when it comes out 0."""
    sizes = []
    for name, side in (("width", width), ("height", height)):
        x = int(side * factor)
        reduced = x - x % step
        if reduced < step:
            smallest = next(v for v in range(step, 100 * step, step) if int(v * factor) >= step)
            raise ValueError(
                f"multi-scale: {name} {side} gives a first pass of {reduced} px (int({side} x {factor:g}) rounded down "
                f"to a multiple of {step}); {name} must be at least {smallest} (valid: {smallest}, "
                f"{smallest + step}, ...)"
            )
        sizes.append(reduced)
    return sizes[0], sizes[1]


def adain(latents: torch.Tensor, reference: torch.Tensor, factor: float = 1.0) -> torch.Tensor:
    """Match each (sample, channel) of latents (B, C, F, H, W) to the mean and unbiased std of reference's."""
    x, ref = latents.flatten(2), reference.flatten(2)  # (B, C, N)
    ref_std, ref_mean = torch.std_mean(ref, dim=2, keepdim=True)
    std, mean = torch.std_mean(x, dim=2, keepdim=True)
    matched = ((x - mean) / std * ref_std + ref_mean).view_as(latents)
    return torch.lerp(latents, matched, factor)


def tone_map(latents: torch.Tensor, compression: float) -> torch.Tensor:
    """Sigmoid range compression of normalized latents: z * (1 - 0.6 c sigmoid(3 c (|z| - 1))), c = compression
    (0: unchanged). The official tone_map_latents with its constants folded: scale 0.75 c, 4 * 0.75, 0.8 * 0.75."""
    s = compression * 0.75
    return latents * (1.0 - 0.8 * s * torch.sigmoid(4.0 * s * (latents.abs() - 1.0)))


def check_upsampler(upsampler, latent_channels: int) -> None:
    """ValueError unless upsampler is a spatial x2 LatentUpsampler for latent_channels channels."""
    config = upsampler.config
    if config.temporal_upsample or config.rational_resampler or latent_channels != config.in_channels:
        raise ValueError(
            f"multi-scale needs a spatial x2 latent upsampler for {latent_channels} latent channels; got one with "
            f"{config.in_channels} channels, spatial_scale {config.spatial_scale}, temporal {config.temporal_upsample}"
        )


def upsample_latent(vae, upsampler, latents: torch.Tensor, adain_factor: float = 1.0) -> torch.Tensor:
    """Normalized latents (B, C, F, h, w) -> normalized (B, C, F, 2h, 2w) for the second pass, AdaIN to latents."""
    check_upsampler(upsampler, latents.shape[1])
    up = vae.normalize(upsampler(vae.denormalize(latents)).float())
    return adain(up, latents, adain_factor)


def _pass_keyframes(vae, prepared, width: int, height: int) -> list[Keyframe]:
    """(pixels (1, 3, N, H, W) at the target size, start, strength) -> Keyframes encoded at a pass's size."""
    out = []
    for pixels, start, strength in prepared:
        frames = pixels[0].transpose(0, 1)  # (N, 3, H, W)
        if frames.shape[-2:] != (height, width):
            frames = F.interpolate(frames, size=(height, width), mode="bilinear", align_corners=False)
        out.append(Keyframe(frontend.encode_video(vae, frames.transpose(0, 1)[None]), start, strength))
    return out


def _offset_callback(callback, offset: int, total: int):
    """A pass's step callback (i, n, x0) -> callback(offset + i, total steps of both passes, x0)."""
    return None if callback is None else lambda i, n, x0: callback(offset + i, total, x0)


@torch.no_grad()
def sample_multi_scale(
    pipe,
    upsampler,
    prompt: str,
    negative_prompt: str = "",
    width: int = 768,
    height: int = 512,
    num_frames: int = 121,
    frame_rate: float = 25.0,
    recipe: MultiScaleRecipe | str = "13b-0.9.8-dev",
    seed: int = 0,
    keyframes: Sequence = (),
    image_cond_noise_scale: float = frontend.IMAGE_COND_NOISE_SCALE,
    image_crf: int = DEFAULT_CRF,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Both passes -> the second pass's normalized latent (1, C, F, 2h, 2w), (w, h) = reduced_size(width, height).

    pipe: VideoPipeline (LTX-Video 0.9.x); upsampler: LatentUpsampler (spatial x2, e.g. load_latent_upsampler);
    recipe: a MultiScaleRecipe or a RECIPES name; keyframes: pipeline.ImageKeyframe list at pixel frames of the
    video; width, height, num_frames: the video asked for (multiples of 32 and 8k+1 frames)."""
    recipe = RECIPES[recipe] if isinstance(recipe, str) else recipe
    geometry = pipe.geometry
    geometry.check_size(width, height, num_frames)
    check_upsampler(upsampler, geometry.latent_channels)
    w1, h1 = reduced_size(width, height, recipe.downscale_factor, geometry.spatial_factor)
    w2, h2 = 2 * w1, 2 * h1
    ts1, ts2 = recipe.first.schedule(pipe, w1, h1, num_frames), recipe.second.schedule(pipe, w2, h2, num_frames)
    if ts2[0] >= 1.0:
        raise ValueError(
            f"multi-scale: the second pass starts at timestep {ts2[0]}, which would discard the upsampled latent; "
            "skip some initial steps or give it timesteps below 1"
        )
    g1, g2 = recipe.first.guidance_for(ts1), recipe.second.guidance_for(ts2)
    use_negative = any(g.cfg > 1.0 for g in g1 + g2)
    positive, negative = pipe.encode_prompt(prompt, negative_prompt if use_negative else None)
    prepared = []
    for i, k in enumerate(keyframes):
        count = k.images.shape[0] if k.images.ndim == 4 else 1
        name = f"keyframes[{i}]"
        at = geometry.keyframe_start(name, f"{name}.pixel_frame", int(k.pixel_frame), count, num_frames)
        prepared.append((keyframe_pixels(k.images, width, height, image_crf, name), at, float(k.strength)))
    total = len(ts1) + len(ts2)
    common = dict(frame_rate=frame_rate, image_cond_noise_scale=image_cond_noise_scale, geometry=geometry)

    start = frontend.empty_latent(geometry, w1, h1, num_frames, device=pipe.device)
    first = sample(
        pipe.transformer, start, positive, negative, ts1, g1, seed,
        keyframes=_pass_keyframes(pipe.vae, prepared, w1, h1), callback=_offset_callback(callback, 0, total), **common,
    )  # fmt: skip
    upsampled = upsample_latent(pipe.vae, upsampler, first, recipe.adain_factor)  # (1, C, F, 2h, 2w)
    return sample(
        pipe.transformer, upsampled, positive, negative, ts2, g2, int(seed) + SECOND_PASS_SEED_OFFSET,
        keyframes=_pass_keyframes(pipe.vae, prepared, w2, h2), denoise=ts2[0],
        callback=_offset_callback(callback, len(ts1), total), **common,
    )  # fmt: skip


def decode_multi_scale(
    pipe,
    latents: torch.Tensor,
    width: int,
    height: int,
    seed: int,
    tone_map_compression: float = 0.0,
    decode_timestep: float | None = None,
    decode_noise_scale: float | None = None,
) -> torch.Tensor:
    """Second-pass latents -> frames (B, F, height, width, 3) in [0, 1]: decode noise, tone mapping, VAE decode,
    bilinear resize. With tone mapping the decode noise is mixed here from the same decode generator and
    decode_latents gets scale 0 (its own draw of that noise is then unused), so the decoder sees the same noise."""
    t = pipe.decode_timestep if decode_timestep is None else decode_timestep
    s = pipe.decode_noise_scale if decode_noise_scale is None else decode_noise_scale
    if tone_map_compression > 0.0:
        z = latents.float()
        if pipe.vae.config.timestep_conditioning:
            z, s = frontend.mix_decode_noise(z, float(s), frontend.decode_generator(seed)), 0.0
        latents = tone_map(z, tone_map_compression)
    frames = pipe.decode(latents, seed, t, s)  # (B, F, H2, W2, 3)
    b, f = frames.shape[:2]
    chw = frames.flatten(0, 1).permute(0, 3, 1, 2)
    chw = F.interpolate(chw, size=(height, width), mode="bilinear", align_corners=False)
    return chw.permute(0, 2, 3, 1).reshape(b, f, height, width, 3)


def generate_multi_scale(
    pipe,
    upsampler,
    prompt: str,
    negative_prompt: str = "",
    width: int = 768,
    height: int = 512,
    num_frames: int = 121,
    frame_rate: float = 25.0,
    recipe: MultiScaleRecipe | str = "13b-0.9.8-dev",
    seed: int = 0,
    keyframes: Sequence = (),
    image_cond_noise_scale: float = frontend.IMAGE_COND_NOISE_SCALE,
    image_crf: int = DEFAULT_CRF,
    decode_timestep: float | None = None,
    decode_noise_scale: float | None = None,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """One video by the multi-scale recipe -> frames (num_frames, height, width, 3) float32 in [0, 1]."""
    recipe = RECIPES[recipe] if isinstance(recipe, str) else recipe
    latents = sample_multi_scale(
        pipe, upsampler, prompt, negative_prompt, width, height, num_frames, frame_rate, recipe, seed, keyframes,
        image_cond_noise_scale, image_crf, callback,
    )  # fmt: skip
    return decode_multi_scale(
        pipe, latents, width, height, seed, recipe.second.tone_map, decode_timestep, decode_noise_scale
    )[0]


__all__ = [
    "DOWNSCALE_FACTOR",
    "PassRecipe",
    "MultiScaleRecipe",
    "RECIPES",
    "reduced_size",
    "adain",
    "tone_map",
    "check_upsampler",
    "upsample_latent",
    "sample_multi_scale",
    "decode_multi_scale",
    "generate_multi_scale",
]
