"""Everything the nodes need from the host, with a plain fallback when ComfyUI is absent.

Inside ComfyUI the facilities come from `folder_paths`, `comfy.utils`, `comfy.model_management` and
`comfy.cli_args`, imported lazily inside the functions (the pack must import without ComfyUI: the headless runner
and the tests use it as the package `videodit`). Outside ComfyUI the folders come from `configure_headless()`
(the CLI flags) or defaults, progress goes to a terminal bar and nothing can interrupt.
"""

import os
import re
import sys
from dataclasses import dataclass, field

import torch

MODEL_EXTENSIONS = (".safetensors", ".sft")

# ComfyUI folder keys searched by our loaders.
FOLDER_KEYS = {
    "checkpoints": ("checkpoints", "diffusion_models"),
    "text_encoders": ("text_encoders", "clip"),
    "vae": ("vae",),  # LTX-2.5 split files: video VAE, audio VAE + vocoder
    "latent_upscale_models": ("latent_upscale_models",),  # LTX-2 latent upsamplers (two-stage)
    "loras": ("loras",),  # LoRA Loader
}
# Sub-folders of a headless --models-dir, per ComfyUI folder key (ComfyUI's default layout, incl. legacy names).
HEADLESS_SUBDIRS = {
    "checkpoints": ("checkpoints",),
    "diffusion_models": ("diffusion_models", "unet"),
    "text_encoders": ("text_encoders", "clip"),
    "clip": ("clip",),
    "vae": ("vae",),
    "latent_upscale_models": ("latent_upscale_models",),
    "loras": ("loras",),
}


@dataclass
class HeadlessDirs:
    """Folders used when not running inside ComfyUI (set by the CLI)."""

    models_dir: str = field(default_factory=lambda: os.path.join(os.getcwd(), "models"))
    output_dir: str = field(default_factory=lambda: os.path.join(os.getcwd(), "output"))
    input_dir: str = field(default_factory=lambda: os.path.join(os.getcwd(), "input"))
    show_progress: bool = True


HEADLESS = HeadlessDirs()


def configure_headless(models_dir=None, output_dir=None, input_dir=None, show_progress=None):
    if models_dir is not None:
        HEADLESS.models_dir = os.path.abspath(models_dir)
    if output_dir is not None:
        HEADLESS.output_dir = os.path.abspath(output_dir)
    if input_dir is not None:
        HEADLESS.input_dir = os.path.abspath(input_dir)
    if show_progress is not None:
        HEADLESS.show_progress = show_progress


def comfy_folder_paths():
    """The `folder_paths` module when running inside ComfyUI, else None."""
    if "folder_paths" not in sys.modules and "comfy" not in sys.modules:
        return None  # not inside ComfyUI: do not pick up an unrelated module of that name
    try:
        import folder_paths
    except ImportError:
        return None
    return folder_paths


# ---------------------------------------------------------------------------------------------- model folders


def list_models(folder_key: str) -> list[str]:
    """Relative file names (sorted) in the ComfyUI folders behind `folder_key` ("checkpoints"/"text_encoders")."""
    names = []
    folder_paths = comfy_folder_paths()
    for key in FOLDER_KEYS[folder_key]:
        if folder_paths is not None:
            try:
                found = folder_paths.get_filename_list(key)
            except KeyError:
                found = []
        else:
            found = _headless_list(key)
        names.extend(n for n in found if n.lower().endswith(MODEL_EXTENSIONS) and n not in names)
    return sorted(names)


def search_folders(folder_key: str) -> list[str]:
    """The folders the loaders look in for `folder_key` ("checkpoints"/"text_encoders"), in order."""
    folder_paths = comfy_folder_paths()
    folders = []
    for key in FOLDER_KEYS[folder_key]:
        if folder_paths is not None:
            try:
                folders.extend(folder_paths.get_folder_paths(key))
            except KeyError:
                pass
        else:
            folders.extend(os.path.join(HEADLESS.models_dir, d) for d in HEADLESS_SUBDIRS[key])
    return list(dict.fromkeys(folders))


def describe_search(folder_key: str) -> str:
    """Where model files of `folder_key` are looked for, as text (headless: how to point elsewhere)."""
    text = ", ".join(search_folders(folder_key))
    if comfy_folder_paths() is None:
        text += f" (the models folder is {HEADLESS.models_dir}; choose another with --models-dir DIR)"
    return text


def model_path(folder_key: str, name: str) -> str:
    """Absolute path of a model file chosen in a combo; FileNotFoundError naming the file and folders otherwise."""
    folder_paths = comfy_folder_paths()
    for key in FOLDER_KEYS[folder_key]:
        if folder_paths is not None:
            try:
                path = folder_paths.get_full_path(key, name)
            except KeyError:
                path = None
        else:
            path = _headless_full_path(key, name)
        if path is not None and os.path.isfile(path):
            return path
    if os.path.isabs(name) and os.path.isfile(name):
        return name
    raise FileNotFoundError(f"model file '{name}' not found in the {folder_key} folders: {describe_search(folder_key)}")


def _headless_list(key):
    names = []
    for sub in HEADLESS_SUBDIRS[key]:
        root = os.path.join(HEADLESS.models_dir, sub)
        for dirpath, _, files in os.walk(root, followlinks=True):
            names.extend(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/") for f in files)
    return names


def _headless_full_path(key, name):
    for sub in HEADLESS_SUBDIRS[key]:
        path = os.path.join(HEADLESS.models_dir, sub, name)
        if os.path.isfile(path):
            return path
    return None


# ---------------------------------------------------------------------------------------------- input / output


def output_directory() -> str:
    folder_paths = comfy_folder_paths()
    return folder_paths.get_output_directory() if folder_paths is not None else HEADLESS.output_dir


def output_folder_problem(filename_prefix: str) -> str | None:
    """None when a file can be saved under `filename_prefix` in the output folder, else why not (the folder or
    one above it is a file, or it is not writable). Checked before anything runs, so a long generation does not
    end in a failed save."""
    output_dir = os.path.abspath(output_directory())
    target = os.path.abspath(os.path.join(output_dir, os.path.dirname(os.path.normpath(str(filename_prefix)))))
    if os.path.commonpath((output_dir, target)) != output_dir:
        return f"filename_prefix '{filename_prefix}' would save outside the output folder {output_dir}"
    folder = target
    while not os.path.exists(folder):  # the nearest existing folder is where the sub-folders get created
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        return f"the output folder {target} cannot be created: {folder} is a file"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the output folder {folder} is not writable"
    return None


def input_directory() -> str:
    folder_paths = comfy_folder_paths()
    return folder_paths.get_input_directory() if folder_paths is not None else HEADLESS.input_dir


def save_path(filename_prefix: str, output_dir: str, width: int, height: int):
    """(folder, filename, counter, subfolder) like ComfyUI's folder_paths.get_save_image_path: the counter is the
    next free number among '<filename>_<NNNNN>_*' files, so nothing is overwritten."""
    folder_paths = comfy_folder_paths()
    if folder_paths is not None:
        folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, output_dir, width, height
        )
        return folder, filename, counter, subfolder
    prefix = filename_prefix.replace("%width%", str(width)).replace("%height%", str(height))
    subfolder, filename = os.path.split(os.path.normpath(prefix))
    folder = os.path.join(output_dir, subfolder)
    if os.path.commonpath((os.path.abspath(output_dir), os.path.abspath(folder))) != os.path.abspath(output_dir):
        raise ValueError(f"filename_prefix '{filename_prefix}' would save outside the output folder {output_dir}")
    os.makedirs(folder, exist_ok=True)
    pattern = re.compile(re.escape(filename) + r"_(\d{5,})_")
    numbers = [int(m.group(1)) for f in os.listdir(folder) if (m := pattern.match(f))]
    return folder, filename, max(numbers, default=0) + 1, subfolder


def metadata_disabled() -> bool:
    """ComfyUI's --disable-metadata flag (False outside ComfyUI)."""
    if comfy_folder_paths() is None:
        return False
    try:
        from comfy.cli_args import args
    except ImportError:
        return False
    return bool(getattr(args, "disable_metadata", False))


# ---------------------------------------------------------------------------------------------- devices


def torch_device() -> torch.device:
    """The device models run on: ComfyUI's choice (honours --cpu), else CUDA when available."""
    if comfy_folder_paths() is not None:
        try:
            import comfy.model_management as mm

            return mm.get_torch_device()
        except ImportError:
            pass
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def offload_device() -> torch.device:
    return torch.device("cpu")


def free_memory_for(num_bytes: int, device: torch.device):
    """Ask ComfyUI to unload its own models so that `num_bytes` fit on `device` (no-op outside ComfyUI / on CPU)."""
    if device.type == "cpu" or comfy_folder_paths() is None:
        return
    try:
        import comfy.model_management as mm
    except ImportError:
        return
    mm.free_memory(num_bytes, device)


def module_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


# ---------------------------------------------------------------------------------------------- progress


def check_interrupt():
    """Raise ComfyUI's InterruptProcessingException when the user pressed Cancel (no-op outside ComfyUI)."""
    if comfy_folder_paths() is None:
        return
    try:
        import comfy.model_management as mm
    except ImportError:
        return
    mm.throw_exception_if_processing_interrupted()


def previews_enabled() -> bool:
    """True when ComfyUI was started with a --preview-method other than none."""
    if comfy_folder_paths() is None:
        return False
    try:
        from comfy.cli_args import LatentPreviewMethod, args
    except ImportError:
        return False
    return args.preview_method != LatentPreviewMethod.NoPreviews


def preview_size() -> int:
    try:
        from comfy.cli_args import args

        return int(args.preview_size)
    except (ImportError, AttributeError):
        return 512


class Progress:
    """ComfyUI's ProgressBar (websocket progress + previews, an interruption point) or a terminal bar."""

    def __init__(self, total: int, label: str):
        self.total = total
        self.label = label
        self.comfy_bar = None
        if comfy_folder_paths() is not None:
            try:
                import comfy.utils

                self.comfy_bar = comfy.utils.ProgressBar(total)
            except ImportError:
                pass

    def update(self, value: int, preview_image=None):
        """value: steps done; preview_image: a PIL image or None."""
        if self.comfy_bar is not None:
            preview = ("JPEG", preview_image, preview_size()) if preview_image is not None else None
            self.comfy_bar.update_absolute(value, self.total, preview)
            return
        if HEADLESS.show_progress:
            width = 30
            done = int(width * value / max(self.total, 1))
            sys.stderr.write(f"\r{self.label} [{'#' * done}{'.' * (width - done)}] {value}/{self.total}")
            if value >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()
