"""Writing videos with imageio-ffmpeg's bundled ffmpeg (the runner is model.preprocess.run_ffmpeg, which also does
the one-frame H.264 round trip of keyframe preprocessing).

Metadata keys follow ComfyUI's own savers so that dropping the file on the ComfyUI page restores the graph:
MP4 — QuickTime `mdta` keys `prompt` / `workflow` (movflags use_metadata_tags, +faststart so the frontend finds
`moov` near the start); WebM — Matroska tags PROMPT / WORKFLOW (ffmpeg upper-cases them); animated WebP — EXIF
tags 0x0110 "prompt:<json>" and 0x010F "workflow:<json>"; GIF — a comment with both (no ComfyUI reader).
Values are passed through an ffmetadata file, not the command line (a workflow can exceed the argument limit).

Audio (MP4 and WebM only): AAC in MP4, Opus in WebM, from float samples written to a raw file next to the
metadata file (in a temporary folder, never in the output folder). The caller fits its length to the video's.
"""

import json
import os
import tempfile

import numpy as np
from PIL import Image

from ..model.preprocess import run_ffmpeg as _run_ffmpeg

FORMATS = {
    # name: (extension, ffmpeg muxer or None for Pillow)
    "mp4 (h264)": (".mp4", "mp4"),
    "webm (vp9)": (".webm", "webm"),
    "gif": (".gif", None),
    "webp (animated)": (".webp", None),
}


AUDIO_CODECS = {
    # muxer: (ffmpeg codec arguments, sample rates the encoder takes)
    "mp4": (
        ["-c:a", "aac", "-b:a", "192k"],
        (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350),
    ),
    "webm": (["-c:a", "libopus", "-b:a", "128k"], (48000, 24000, 16000, 12000, 8000)),
}
AUDIO_CHANNELS = {1: "mono", 2: "stereo", 6: "5.1"}  # ffmpeg's default layouts; both codecs take these


def encoder_sample_rate(muxer: str, sample_rate: int) -> int:
    """The rate the audio is encoded at: its own when the codec takes it, else the next higher one the codec takes
    (the highest one above them all); ffmpeg resamples."""
    rates = sorted(AUDIO_CODECS[muxer][1])
    return next((rate for rate in rates if rate >= sample_rate), rates[-1])


def _ffmetadata_escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in "=;#\\\n":
            out.append("\\")
        out.append(ch)
    return "".join(out)


def write_video(
    frames: np.ndarray,
    path: str,
    fps: float,
    fmt: str,
    crf: int,
    metadata: dict[str, str],
    audio: tuple[np.ndarray, int] | None = None,
):
    """frames: uint8 (F, H, W, 3). Writes exactly `path` (the muxer is named explicitly, so any file name works).
    metadata: key -> JSON string. audio: (float32 samples (channels, samples), sample rate) or None; MP4/WebM only."""
    extension, muxer = FORMATS[fmt]
    if audio is not None and muxer not in AUDIO_CODECS:
        raise ValueError(f"format {fmt} cannot hold audio; choose one of {[f for f, (_, m) in FORMATS.items() if m]}")
    if muxer is None:
        _write_pillow(frames, path, fps, fmt, crf, metadata)
        return
    num_frames, height, width, _ = frames.shape
    if muxer == "mp4":
        # yuv420p needs even sizes: drop the last row/column of odd ones.
        even_h, even_w = height - height % 2, width - width % 2
        frames = np.ascontiguousarray(frames[:, :even_h, :even_w])
        height, width = even_h, even_w
        codec = [
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-crf",
            str(crf),
            "-preset",
            "medium",
            "-movflags",
            "+faststart+use_metadata_tags",
        ]
    else:
        codec = ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-crf", str(crf), "-b:v", "0"]
    with tempfile.TemporaryDirectory() as tmp:
        meta_file = os.path.join(tmp, "meta.txt")
        with open(meta_file, "w", encoding="utf-8") as f:
            f.write(";FFMETADATA1\n")
            for key, value in metadata.items():
                f.write(f"{_ffmetadata_escape(key)}={_ffmetadata_escape(value)}\n")
        audio_input, audio_output = [], []  # the audio file as input 2, and how it is mapped and encoded
        if audio is not None:
            samples, sample_rate = audio
            audio_file = os.path.join(tmp, "audio.f32")
            np.ascontiguousarray(samples.T, dtype="<f4").tofile(audio_file)  # interleaved (samples, channels)
            audio_input = ["-f", "f32le", "-ar", str(sample_rate), "-ac", str(samples.shape[0]), "-i", audio_file]
            rate = encoder_sample_rate(muxer, sample_rate)
            audio_output = ["-map", "2:a", *AUDIO_CODECS[muxer][0], "-ar", str(rate)]
        args = [
            *("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps:.6g}", "-i", "-"),
            *("-f", "ffmetadata", "-i", meta_file),
            *audio_input,
            *("-map", "0:v", *audio_output, "-map_metadata", "1"),
            *codec,
            *("-frames:v", str(num_frames), "-f", muxer, path),
        ]
        _run_ffmpeg(args, frames.tobytes(), f"writing {path}")


def _write_pillow(frames, path, fps, fmt, crf, metadata):
    images = [Image.fromarray(frame) for frame in frames]
    duration_ms = max(int(round(1000.0 / fps)), 1)
    if fmt == "gif":
        comment = json.dumps({k: json.loads(v) for k, v in metadata.items()}) if metadata else ""
        images[0].save(
            path,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=duration_ms,
            loop=0,
            comment=comment.encode("utf-8"),
        )
        return
    exif = Image.Exif()
    tag = 0x0110  # Model: "prompt:..."; then Make (0x010F) and downwards for the other keys, as ComfyUI does
    for key in sorted(metadata, key=lambda k: k != "prompt"):
        exif[tag] = f"{key}:{metadata[key]}"
        tag -= 1
    quality = max(0, min(100, 100 - int(crf)))  # crf 0 = best, like the video codecs
    images[0].save(
        path,
        format="WEBP",
        save_all=True,
        append_images=images[1:],
        duration=duration_ms,
        loop=0,
        quality=quality,
        lossless=crf == 0,
        exif=exif,
    )


def read_video(path: str) -> tuple[np.ndarray, float]:
    """Decode a video file back to uint8 (F, H, W, 3) and its frame rate (used by the tests and the CLI report)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24")
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(buf, np.uint8).reshape(height, width, 3) for buf in reader]
    return np.stack(frames), float(meta["fps"])


def read_metadata(path: str) -> dict[str, str]:
    """The container-level metadata tags (lower-cased keys) ffmpeg reads from a video file."""
    text = _run_ffmpeg(["-i", path, "-f", "ffmetadata", "-"], None, f"reading metadata of {path}").decode("utf-8")
    entries, current, i = [], [], 0
    while i < len(text):  # entries end at an unescaped newline; a backslash escapes the next character
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(("escaped", text[i + 1]))
            i += 2
            continue
        if ch == "\n":
            entries.append(current)
            current = []
        else:
            current.append(("plain", ch))
        i += 1
    entries.append(current)
    tags = {}
    for entry in entries[1:]:  # the first line is the ";FFMETADATA1" header
        if not entry or entry[0] == ("plain", ";") or entry[0] == ("plain", "["):
            continue
        split = next((n for n, item in enumerate(entry) if item == ("plain", "=")), None)
        if split is None:
            continue
        key = "".join(ch for _, ch in entry[:split]).lower()
        tags[key] = "".join(ch for _, ch in entry[split + 1 :])
    return tags
