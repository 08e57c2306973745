"""Joint audio+video latent state of the LTX-2 sampler: tokens, positions, per-token denoise masks, conditioning.

Video latents (B, C, F, H, W) become tokens (B, F·H·W, C) in (f h w) order (patch size 1); audio latents
(B, C, T, M) (M mel bins) become (B, T, C·M). Each token has [start, end) position bounds, float32:
  video (B, 3, T, 2): latent index × (8, 32, 32) → pixels; time gets the causal first-frame fix
        t → max(t + 1 - 8, 0) and is then divided by fps (seconds); height and width stay in pixels.
  audio (B, 1, T, 2): latent i covers mel frames [max(4i - 3, 0), max(4i + 1, 0)); seconds = mel · 160 / 16000.
The denoise mask (B, T) is 1 where a token is generated, 0 where it is given (clean conditioning), 1 - strength in
between; the transformer sees timesteps = mask · σ. `clean` holds what masked tokens are pulled back to.

Conditioning as ltx-pipelines does it: an image at frame 0 replaces the tokens of latent frame 0; an image at any
other frame is appended as extra tokens (time offset by its pixel frame index, no causal fix) and dropped after
sampling; a given audio track (audio-to-video) or video (video-to-audio) is a state whose mask is 0.
"""

from dataclasses import dataclass, replace

import torch

VIDEO_SCALE = (8, 32, 32)  # pixels per latent step: time, height, width
AUDIO_SAMPLE_RATE, AUDIO_HOP, AUDIO_DOWNSAMPLE = 16000, 160, 4  # mel frames of 10 ms, 4 per latent
AUDIO_LATENTS_PER_SECOND = AUDIO_SAMPLE_RATE / AUDIO_HOP / AUDIO_DOWNSAMPLE  # 25
MODALITIES = ("video", "audio")


def patchify_video(latent: torch.Tensor) -> torch.Tensor:
    """(B, C, F, H, W) -> (B, F·H·W, C)."""
    return latent.flatten(2).transpose(1, 2)


def unpatchify_video(tokens: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    """(B, F·H·W, C) -> (B, C, F, H, W)."""
    return tokens.transpose(1, 2).unflatten(2, (frames, height, width))


def patchify_audio(latent: torch.Tensor) -> torch.Tensor:
    """(B, C, T, M) -> (B, T, C·M), channel-major."""
    return latent.permute(0, 2, 1, 3).flatten(2)


def unpatchify_audio(tokens: torch.Tensor, channels: int, mel_bins: int) -> torch.Tensor:
    """(B, T, C·M) -> (B, C, T, M)."""
    return tokens.unflatten(2, (channels, mel_bins)).permute(0, 2, 1, 3)


def audio_token_count(num_frames: int, fps: float) -> int:
    """Audio latents of a video of num_frames frames at fps: round(duration · 25)."""
    return round(float(num_frames) / float(fps) * AUDIO_LATENTS_PER_SECOND)


def video_positions(
    batch: int,
    frames: int,
    height: int,
    width: int,
    fps: float,
    frame_offset: int = 0,
    causal_fix: bool = True,
    device: torch.device | None = None,
) -> torch.Tensor:
    """(B, 3, F·H·W, 2) float32 bounds of a latent grid, time in seconds, height/width in pixels.
    frame_offset: pixel frames added to time after the causal fix (appended keyframes)."""
    grid = torch.meshgrid(
        *(torch.arange(n, device=device) for n in (frames, height, width)), indexing="ij"
    )  # 3 × (F, H, W) latent indices
    starts = torch.stack([g.flatten() for g in grid])  # (3, T)
    scale = torch.tensor(VIDEO_SCALE, device=device)[:, None]
    bounds = torch.stack([starts, starts + 1], dim=-1) * scale[..., None]  # (3, T, 2) integer pixels
    if causal_fix:
        bounds[0] = (bounds[0] + 1 - VIDEO_SCALE[0]).clamp(min=0)
    bounds[0] += frame_offset
    bounds = bounds.float()
    bounds[0] = bounds[0] / fps
    return bounds.unsqueeze(0).expand(batch, -1, -1, -1).clone()


def audio_positions(batch: int, tokens: int, device: torch.device | None = None) -> torch.Tensor:
    """(B, 1, T, 2) float32 bounds in seconds of T audio latents."""

    def seconds(first: int) -> torch.Tensor:
        mel = torch.arange(first, first + tokens, dtype=torch.float32, device=device) * AUDIO_DOWNSAMPLE
        mel = (mel + 1 - AUDIO_DOWNSAMPLE).clip(min=0)  # causal: a latent covers the mel frames up to its last
        return mel * AUDIO_HOP / AUDIO_SAMPLE_RATE

    bounds = torch.stack([seconds(0), seconds(1)], dim=-1)  # (T, 2)
    return bounds[None, None].expand(batch, 1, -1, -1).clone()


@dataclass(frozen=True)
class LatentState:
    """One modality during sampling. latent, clean: (B, T, C) tokens, the first `target_tokens` are the generated
    latent (shape `grid` = (C, F, H, W) video or (C, T, M) audio), the rest appended conditioning.
    denoise_mask: (B, T) float32. positions: (B, 3 or 1, T, 2) float32."""

    modality: str
    latent: torch.Tensor
    clean: torch.Tensor
    denoise_mask: torch.Tensor
    positions: torch.Tensor
    grid: tuple[int, ...]

    def __post_init__(self):
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        batch, tokens = self.latent.shape[:2]
        if self.clean.shape != self.latent.shape:
            raise ValueError(f"clean {tuple(self.clean.shape)} must have the latent's shape {tuple(self.latent.shape)}")
        if self.denoise_mask.shape != (batch, tokens):
            raise ValueError(f"denoise_mask must be (B, T) = {(batch, tokens)}, got {tuple(self.denoise_mask.shape)}")
        if self.positions.shape[0] != batch or self.positions.shape[2:] != (tokens, 2):
            raise ValueError(f"positions must be (B, axes, {tokens}, 2), got {tuple(self.positions.shape)}")
        if tokens < self.target_tokens:
            raise ValueError(f"{tokens} tokens, fewer than the {self.target_tokens} of the latent grid {self.grid}")

    @property
    def target_tokens(self) -> int:
        """Tokens of the generated latent: F·H·W (video) or T (audio)."""
        return self.grid[1] * self.grid[2] * self.grid[3] if self.modality == "video" else self.grid[1]


def video_state(latent: torch.Tensor, fps: float) -> LatentState:
    """State of a video latent (B, C, F, H, W) to generate (mask 1); `latent` is the start (zeros, or an upsampled
    stage-1 latent before it is re-noised)."""
    if latent.ndim != 5:
        raise ValueError(f"video latent must be (B, C, F, H, W), got {tuple(latent.shape)}")
    batch, channels, frames, height, width = latent.shape
    tokens = patchify_video(latent)
    return LatentState(
        modality="video",
        latent=tokens,
        clean=tokens.clone(),
        denoise_mask=torch.ones(tokens.shape[:2], dtype=torch.float32, device=latent.device),
        positions=video_positions(batch, frames, height, width, fps, device=latent.device),
        grid=(channels, frames, height, width),
    )


def audio_state(latent: torch.Tensor) -> LatentState:
    """State of an audio latent (B, C, T, M) to generate (mask 1)."""
    if latent.ndim != 4:
        raise ValueError(f"audio latent must be (B, C, T, M), got {tuple(latent.shape)}")
    batch, channels, frames, mel_bins = latent.shape
    tokens = patchify_audio(latent)
    return LatentState(
        modality="audio",
        latent=tokens,
        clean=tokens.clone(),
        denoise_mask=torch.ones(tokens.shape[:2], dtype=torch.float32, device=latent.device),
        positions=audio_positions(batch, frames, device=latent.device),
        grid=(channels, frames, mel_bins),
    )


def given(state: LatentState) -> LatentState:
    """The state as clean conditioning (mask 0): an audio track for audio-to-video, a video for video-to-audio."""
    return replace(state, denoise_mask=torch.zeros_like(state.denoise_mask))


def _check_video_condition(state: LatentState, latent: torch.Tensor, strength: float) -> None:
    if state.modality != "video":
        raise ValueError(f"image conditioning applies to the video state, got the {state.modality} state")
    if latent.ndim != 5 or latent.shape[0] != state.latent.shape[0] or latent.shape[1] != state.grid[0]:
        raise ValueError(
            f"conditioning latent must be (B, C, F, H, W) with B={state.latent.shape[0]}, C={state.grid[0]}, "
            f"got {tuple(latent.shape)}"
        )
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1] (1 = kept clean), got {strength}")


def replace_frames(state: LatentState, latent: torch.Tensor, latent_index: int, strength: float) -> LatentState:
    """Write `latent` (B, C, f, H, W) over the generated latent frames [latent_index, latent_index + f): those
    tokens start from it, are pulled back to it, and get mask 1 - strength."""
    _check_video_condition(state, latent, strength)
    _, frames, height, width = state.grid
    if latent.shape[3:] != (height, width) or not 0 <= latent_index <= frames - latent.shape[2]:
        raise ValueError(
            f"latent {tuple(latent.shape)} at latent frame {latent_index} does not fit the latent grid "
            f"(F, H, W) = {(frames, height, width)}"
        )
    tokens = patchify_video(latent).to(state.latent.dtype)
    start = latent_index * height * width
    stop = start + tokens.shape[1]
    new_latent, new_clean, mask = state.latent.clone(), state.clean.clone(), state.denoise_mask.clone()
    new_latent[:, start:stop] = tokens
    new_clean[:, start:stop] = tokens
    mask[:, start:stop] = 1.0 - strength
    return replace(state, latent=new_latent, clean=new_clean, denoise_mask=mask)


def append_keyframe(
    state: LatentState, latent: torch.Tensor, frame_index: int, strength: float, fps: float
) -> LatentState:
    """Append `latent` (B, C, f, h, w) as conditioning tokens at pixel frame `frame_index` (mask 1 - strength);
    their time bounds are the latent's own shifted by frame_index (causal fix only at frame 0)."""
    _check_video_condition(state, latent, strength)
    batch, _, frames, height, width = latent.shape
    tokens = patchify_video(latent).to(state.latent.dtype)
    positions = video_positions(
        batch, frames, height, width, fps, frame_offset=frame_index, causal_fix=frame_index == 0, device=latent.device
    )
    mask = torch.full(tokens.shape[:2], 1.0 - strength, dtype=state.denoise_mask.dtype, device=latent.device)
    return replace(
        state,
        latent=torch.cat([state.latent, tokens], dim=1),
        clean=torch.cat([state.clean, tokens], dim=1),
        denoise_mask=torch.cat([state.denoise_mask, mask], dim=1),
        positions=torch.cat([state.positions, positions], dim=2),
    )


@dataclass(frozen=True)
class ImageCondition:
    """An encoded image (or short clip) latent (B, C, f, H, W) to keep at pixel frame `frame_index`."""

    latent: torch.Tensor
    frame_index: int = 0
    strength: float = 1.0

    def __post_init__(self):
        if not isinstance(self.frame_index, int) or self.frame_index < 0:
            raise ValueError(f"frame_index must be a pixel frame index >= 0, got {self.frame_index!r}")


def condition_on_images(state: LatentState, images: list[ImageCondition], fps: float) -> LatentState:
    """ltx-pipelines' rule (combined_image_conditionings): frame 0 replaces latent frame 0, any other frame is an
    appended keyframe. Applied in order."""
    for image in images:
        if image.frame_index == 0:
            state = replace_frames(state, image.latent, 0, image.strength)
        else:
            state = append_keyframe(state, image.latent, image.frame_index, image.strength, fps)
    return state


def add_noise(state: LatentState, generator: torch.Generator | None, scale: float | torch.Tensor = 1.0) -> LatentState:
    """latent ← noise · (mask·scale) + latent · (1 - mask·scale), noise drawn over all tokens (appended ones too) in
    the latent dtype: the same draws from the same generator as ltx-core's GaussianNoiser. Given tokens (mask 0)
    stay as they are but still consume their draws."""
    noise = torch.randn(
        state.latent.shape, generator=generator, dtype=state.latent.dtype, device=state.latent.device
    )  # (B, T, C)
    weight = (state.denoise_mask * scale).unsqueeze(-1)
    return replace(state, latent=(noise * weight + state.latent * (1 - weight)).to(state.latent.dtype))


def to_latent(state: LatentState) -> torch.Tensor:
    """The generated latent, appended conditioning tokens dropped: (B, C, F, H, W) or (B, C, T, M)."""
    tokens = state.latent[:, : state.target_tokens]
    if state.modality == "video":
        return unpatchify_video(tokens, *state.grid[1:])
    return unpatchify_audio(tokens, state.grid[0], state.grid[2])
