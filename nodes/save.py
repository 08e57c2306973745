"""The save node: frames -> MP4 / WebM / GIF / animated WebP in ComfyUI's output folder, with the workflow inside."""

import json
import os
import uuid

import numpy as np
import torch

from . import host
from .audio import soundtrack
from .common import CATEGORY, InputError, check_inputs
from .video_io import FORMATS, write_video


def publish(partial: str, final: str) -> bool:
    """Give the finished file `partial` the name `final` unless a file has that name (False then). A hard link
    fails when `final` exists, so no check-then-rename race can overwrite a file another run saved meanwhile;
    where the file system has no hard links, rename after checking."""
    try:
        os.link(partial, final)
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system
        if os.path.exists(final):
            return False
        os.replace(partial, final)
        return True
    os.remove(partial)
    return True


class VideoDiTSaveVideo:
    DESCRIPTION = (
        "Saves frames as a video in ComfyUI's output folder (never overwriting) with the prompt and "
        "workflow embedded, so dropping the file on ComfyUI restores the graph. MP4/WebM via ffmpeg "
        "(imageio-ffmpeg), GIF/WebP via Pillow. Optional audio: AAC in MP4, Opus in WebM, cut or padded with "
        "silence to the video's length."
    )
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    OUTPUT_TOOLTIPS = ()

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Frames to save (from VideoDiT VAE Decode or any IMAGE batch)."}),
                "fps": (
                    "FLOAT",
                    {
                        "default": 25.0,
                        "min": 0.01,
                        "max": 240.0,
                        "step": 0.01,
                        "tooltip": "Playback frame rate; use the frame rate the video was generated for.",
                    },
                ),
                "format": (
                    list(FORMATS),
                    {
                        "default": "mp4 (h264)",
                        "tooltip": "mp4: H.264 yuv420p, plays everywhere, starts fast on the "
                        "web. webm: VP9. gif / animated webp: images that loop.",
                    },
                ),
                "crf": (
                    "INT",
                    {
                        "default": 19,
                        "min": 0,
                        "max": 63,
                        "tooltip": "Quality: lower = better and bigger (H.264 0-51, 19 is visually clean; "
                        "VP9 0-63; for WebP 0 = lossless, else quality 100-crf).",
                    },
                ),
                "filename_prefix": (
                    "STRING",
                    {
                        "default": "VideoDiT/video",
                        "tooltip": "File name prefix inside the output folder; a folder "
                        "part ('VideoDiT/video') makes a sub-folder. A counter "
                        "is appended.",
                    },
                ),
            },
            "optional": {
                "audio": (
                    "AUDIO",
                    {
                        "tooltip": "Soundtrack (mp4 and webm only): trimmed or padded with silence to the video's "
                        "length; mono, stereo or 5.1 kept; of a batch the first track is used.",
                    },
                ),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, filename_prefix):
        # before anything runs: a generation that cannot be saved is not started
        return host.output_folder_problem(filename_prefix) or True

    def save(self, images, fps, format, crf, filename_prefix, audio=None, prompt=None, extra_pnginfo=None):
        check_inputs(type(self), dict(fps=fps, format=format, crf=crf))
        problem = host.output_folder_problem(filename_prefix)
        if problem:
            raise InputError(problem)
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] == 0:
            raise InputError(
                f"images: expected frames (count, height, width, 3) with at least one frame, got "
                f"{getattr(images, 'shape', type(images).__name__)}"
            )
        frames = (images[..., :3].float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
        num_frames, height, width, _ = frames.shape
        if format == "mp4 (h264)" and (height < 2 or width < 2):
            raise InputError(f"images: {width}x{height} is too small for H.264 (at least 2x2)")
        track = None if audio is None else soundtrack(audio, format, num_frames, float(fps))
        metadata = {}
        if not host.metadata_disabled():
            if prompt is not None:
                metadata["prompt"] = json.dumps(prompt)
            for key, value in (extra_pnginfo or {}).items():
                metadata[key] = json.dumps(value)

        output_dir = host.output_directory()
        folder, filename, counter, subfolder = host.save_path(filename_prefix, output_dir, width, height)
        extension = FORMATS[format][0]
        # written under a hidden temporary name in the same folder, then published under the first free counter:
        # a failure leaves nothing, and an existing file is never replaced
        partial = os.path.join(folder, f".{filename}_{uuid.uuid4().hex[:12]}{extension}.partial")
        try:
            write_video(np.ascontiguousarray(frames), partial, float(fps), format, int(crf), metadata, track)
            while True:
                name = f"{filename}_{counter:05}_{extension}"
                if publish(partial, os.path.join(folder, name)):
                    break
                counter += 1  # another run took this number meanwhile
        finally:
            if os.path.exists(partial):
                os.remove(partial)
        result = {"filename": name, "subfolder": subfolder, "type": "output"}
        return {"ui": {"images": [result], "animated": [num_frames > 1 or extension in (".mp4", ".webm")]}}
