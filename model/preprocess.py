"""Pixels in, VAE input out: the image and clip preprocessing every front-end shares.

Keyframe images and clips (ComfyUI IMAGE layout (N, H, W, C) or one (H, W, C) image, float in [0, 1]; C = 1, 3 or
4, alpha dropped) are
  1. center-cropped to the video's aspect ratio and resized bilinearly (no antialias, align_corners=False, as the
     official pipeline resizes);
  2. when crf > 0: blurred (Gaussian, kernel 3, sigma 1) and sent through a one-frame H.264 round trip at that
     CRF, frame by frame: the compression LTX-Video saw on its conditioning images in training (official
     inference.py; it helps the image move). DEFAULT_CRF = 29 is the official value; 0 switches it off;
  3. mapped to [-1, 1] in the VAE's layout (1, 3, N, height, width).
The H.264 round trip runs imageio-ffmpeg's bundled ffmpeg (libx264, yuv420p, preset veryfast).
"""

import os
import subprocess
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_CRF = 29  # official conditioning-image compression (0 = off)


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args: list[str], stdin_bytes: bytes | None, what: str) -> bytes:
    """Run the bundled ffmpeg quietly; RuntimeError with its message (saying `what` it was doing) on failure."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args],
        input=stdin_bytes,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed while {what}: {proc.stderr.decode(errors='replace').strip()[-2000:]}")
    return proc.stdout


def rgb_frames(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    """(H, W, C) or (N, H, W, C) with C = 1, 3 or 4 -> (N, H, W, 3) float32 (grey expanded, alpha dropped)."""
    if isinstance(images, torch.Tensor) and images.ndim == 3:
        images = images[None]
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"{name}: expected an image (height, width, 3) or frames (count, height, width, 3), got "
            f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"{name}: got no frames")
    rgb = images.expand(-1, -1, -1, 3) if images.shape[-1] == 1 else images[..., :3]
    return rgb.float()


def fit_to_size(images: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(N, H, W, 3) in [0, 1] -> (N, height, width, 3) in [0, 1]: center crop to the target aspect ratio, then
    bilinear resize (skipped when the size already matches)."""
    x = images.permute(0, 3, 1, 2)  # (N, 3, H, W)
    src_h, src_w = x.shape[-2:]
    if src_w * height > width * src_h:  # too wide: crop width
        crop_w = max(1, round(src_h * width / height))
        left = (src_w - crop_w) // 2
        x = x[..., left : left + crop_w]
    else:  # too tall: crop height
        crop_h = max(1, round(src_w * height / width))
        top = (src_h - crop_h) // 2
        x = x[..., top : top + crop_h, :]
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return x.clamp(0.0, 1.0).permute(0, 2, 3, 1)


def blur_3x3(images: torch.Tensor) -> torch.Tensor:
    """Gaussian blur, kernel 3, sigma 1, reflect padding: (N, H, W, 3) -> same shape."""
    k1 = torch.exp(-(torch.tensor([-1.0, 0.0, 1.0]) ** 2) / 2.0)
    k1 = k1 / k1.sum()
    kernel = (k1[:, None] * k1[None, :]).expand(3, 1, 3, 3)
    chw = images.permute(0, 3, 1, 2)
    chw = F.conv2d(F.pad(chw, (1, 1, 1, 1), mode="reflect"), kernel.to(chw), groups=3)
    return chw.permute(0, 2, 3, 1)


def h264_round_trip(image: np.ndarray, crf: int) -> np.ndarray:
    """One frame through libx264 (yuv420p, crf, preset veryfast) and back. image: uint8 (H, W, 3), even H and W."""
    height, width, _ = image.shape
    with tempfile.TemporaryDirectory() as tmp:
        clip = os.path.join(tmp, "frame.mp4")
        encode = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-i", "-"]
        encode += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf), "-preset", "veryfast"]
        encode += ["-frames:v", "1", "-f", "mp4", clip]
        run_ffmpeg(encode, np.ascontiguousarray(image).tobytes(), "compressing an image")
        decode = ["-i", clip, "-f", "rawvideo", "-pix_fmt", "rgb24", "-frames:v", "1", "-"]
        raw = run_ffmpeg(decode, None, "decompressing an image")
    return np.frombuffer(raw, np.uint8).reshape(height, width, 3).copy()


def compress_like_training(images: torch.Tensor, crf: int) -> torch.Tensor:
    """(N, H, W, 3) in [0, 1] -> blurred and H.264 round-tripped at `crf`, frame by frame; crf <= 0: unchanged.
    Frames of odd size keep their last row/column as blurred (yuv420p needs even sizes)."""
    if crf <= 0:
        return images
    images = blur_3x3(images)
    out = []
    for frame in images:
        pixels = (frame.clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
        h, w = pixels.shape[0] - pixels.shape[0] % 2, pixels.shape[1] - pixels.shape[1] % 2
        pixels[:h, :w] = h264_round_trip(pixels[:h, :w], crf)
        out.append(torch.from_numpy(pixels.astype(np.float32) / 255.0))
    return torch.stack(out).to(images.device)


def to_vae_input(frames: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) in [0, 1] -> (1, 3, N, H, W) in [-1, 1]."""
    return (frames.clamp(0.0, 1.0) * 2.0 - 1.0).permute(3, 0, 1, 2)[None]


def keyframe_pixels(
    images: torch.Tensor, width: int, height: int, crf: int = DEFAULT_CRF, name: str = "image"
) -> torch.Tensor:
    """A keyframe image (H, W, C) or clip (N, H, W, C) in [0, 1] -> VAE input (1, 3, N, height, width) in [-1, 1]:
    fitted to the video size, then compressed like training data when crf > 0."""
    frames = fit_to_size(rgb_frames(images, name), width, height)
    return to_vae_input(compress_like_training(frames, int(crf)))


__all__ = [
    "DEFAULT_CRF",
    "rgb_frames",
    "fit_to_size",
    "blur_3x3",
    "h264_round_trip",
    "compress_like_training",
    "to_vae_input",
    "keyframe_pixels",
    "run_ffmpeg",
]
