"""Video geometry: how pixel sizes and frame counts map to latent shapes, and which sizes a model can make.

One source for every front-end (VideoPipeline, the nodes, the CLI, tiny training): the VAE config's temporal and
spatial compression factors and the DiT's patch size decide it. A video of F = t*k + 1 frames and H x W pixels
(H, W multiples of s*p) becomes a latent (C, k + 1, H / s, W / s); the DiT cuts it into p x p patches.
  t = vae_config.temporal_factor (8 for every released LTX-Video VAE)
  s = vae_config.spatial_factor (32), p = the DiT's patch size (1 for LTX-Video 0.9.x)
Sizes a model cannot make are rejected with the input's name, the value and the nearest valid values, never
silently changed.
"""

from dataclasses import dataclass

MAX_SIZE = 8192  # pixels per side accepted by the size checks and the node widgets
MAX_LATENT_FRAMES = 1025  # latent frames accepted (8193 pixel frames for the LTX-Video VAEs)


@dataclass(frozen=True)
class VideoGeometry:
    temporal_factor: int = 8  # pixel frames per latent frame after the first
    spatial_factor: int = 32  # pixels per latent voxel along height and width
    patch_size: int = 1  # latent voxels per DiT token along height and width
    latent_channels: int = 128

    def __post_init__(self):
        for name in ("temporal_factor", "spatial_factor", "patch_size", "latent_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"VideoGeometry.{name} must be an integer >= 1, got {value!r}")

    @classmethod
    def of(cls, vae_config, transformer_config=None) -> "VideoGeometry":
        """The geometry of a VAE config (its temporal_factor, spatial_factor, latent_channels) and, when given,
        the DiT config's patch_size (LTX-Video 0.9.x configs have none: patch size 1)."""
        return cls(
            temporal_factor=vae_config.temporal_factor,
            spatial_factor=vae_config.spatial_factor,
            patch_size=int(getattr(transformer_config, "patch_size", 1) or 1),
            latent_channels=vae_config.latent_channels,
        )

    @property
    def pixel_step(self) -> int:
        """Width and height must be multiples of this."""
        return self.spatial_factor * self.patch_size

    @property
    def max_frames(self) -> int:
        return self.temporal_factor * (MAX_LATENT_FRAMES - 1) + 1

    @property
    def scale_factors(self) -> tuple[int, int, int]:
        """(time, y, x) pixels per latent voxel: the DiT's token coordinates (positions.video_coords)."""
        return self.temporal_factor, self.spatial_factor, self.spatial_factor

    # ------------------------------------------------------------------------------------------ shapes

    def latent_frames(self, num_frames: int) -> int:
        return (num_frames - 1) // self.temporal_factor + 1

    def pixel_frames(self, latent_frames: int) -> int:
        return (latent_frames - 1) * self.temporal_factor + 1

    def latent_shape(self, width: int, height: int, num_frames: int) -> tuple[int, int, int]:
        """(F, H, W) latent frames/height/width of a video of a valid size (check_size)."""
        return self.latent_frames(num_frames), height // self.spatial_factor, width // self.spatial_factor

    def pixel_shape(self, latent_frames: int, latent_height: int, latent_width: int) -> tuple[int, int, int]:
        """(width, height, frames) a latent of (F, H, W) decodes to."""
        return latent_width * self.spatial_factor, latent_height * self.spatial_factor, self.pixel_frames(latent_frames)

    # ------------------------------------------------------------------------------------------ checks

    def size_problem(self, name: str, value: int) -> str | None:
        """None when `value` is a valid width/height, else the message (input name, value, nearest valid)."""
        step = self.pixel_step
        if step <= value <= MAX_SIZE and value % step == 0:
            return None
        near = nearest_valid(min(max(value, step), MAX_SIZE), step, step)
        return (
            f"{name} must be a multiple of {step} between {step} and {MAX_SIZE} (the VAE compresses "
            f"{self.spatial_factor}x in space): got {value}; nearest valid: {near}"
        )

    def frames_problem(self, name: str, value: int) -> str | None:
        """None when `value` is a valid frame count t*k + 1, else the message."""
        t = self.temporal_factor
        if 1 <= value <= self.max_frames and (value - 1) % t == 0:
            return None
        near = nearest_valid(min(max(value, 1), self.max_frames), t, 1)
        return (
            f"{name} must be {t}k+1 (1, {t + 1}, {2 * t + 1}, ...; the VAE keeps the first frame and compresses "
            f"{t} frames per latent frame after it): got {value}; nearest valid: {near}"
        )

    def video_problems(self, width: int, height: int, num_frames: int, names=("width", "height", "frames")):
        """The messages of every invalid value of a video size (empty when it is valid)."""
        found = (
            self.size_problem(names[0], int(width)),
            self.size_problem(names[1], int(height)),
            self.frames_problem(names[2], int(num_frames)),
        )
        return [m for m in found if m]

    def check_size(self, width: int, height: int, num_frames: int, names=("width", "height", "frames")) -> None:
        """ValueError naming every invalid value with its nearest valid ones."""
        problems = self.video_problems(width, height, num_frames, names)
        if problems:
            raise ValueError("; ".join(problems))

    def keyframe_start(self, image: str, index_name: str, index: int, count: int, num_frames: int) -> int:
        """The first pixel frame of a keyframe of `count` frames given at frame `index` (negative: counted from the
        end) in a video of num_frames frames. Keyframes are never trimmed: a clip must have t*k + 1 frames, fit in
        the video and start at frame 0 or a multiple of t, else ValueError naming `image` / `index_name`."""
        t = self.temporal_factor
        if self.frames_problem(image, count):
            raise ValueError(
                f"{image} has {count} frames: give one image, or a clip of {t}k+1 frames (1, {t + 1}, "
                f"{2 * t + 1}, ...) to condition on a video (clips are never trimmed)"
            )
        start = index if index >= 0 else num_frames + index
        if start < 0 or start + count > num_frames:
            raise ValueError(
                f"{index_name} = {index} puts {image} ({count} frame(s)) outside the video's {num_frames} frames "
                f"(valid: {-num_frames} to {num_frames - count})"
            )
        if count > 1 and start % t:
            lower, last = start // t * t, (num_frames - count) // t * t
            near = f"{lower} or {lower + t}" if lower + t <= last else f"{lower}"
            raise ValueError(
                f"{index_name} = {index}: a clip after frame 0 must start at a multiple of {t}; nearest valid: {near}"
            )
        return start


LTXV_GEOMETRY = VideoGeometry()  # every released LTX-Video 0.9.x VAE + DiT (also the built-in tiny model)


def nearest_valid(value: int, step: int, first: int) -> str:
    """The valid values first + k*step (k >= 0) just below and above value, as text ("96 or 128", "32")."""
    lower = first + max((value - first) // step, 0) * step
    upper = first + max(-(-(value - first) // step), 0) * step
    return f"{lower}" if lower == upper else f"{lower} or {upper}"


__all__ = ["VideoGeometry", "LTXV_GEOMETRY", "MAX_SIZE", "nearest_valid"]
