"""Shared pieces of the node layer: socket types, input checks with messages that name the input.

Error messages name the input, the value and what is valid; they do not name the node: ComfyUI shows the node with
the error, and the headless runner prefixes `node N (Class): ` (the one format both use)."""

import math

from ..model.geometry import LTXV_GEOMETRY, MAX_SIZE

CATEGORY = "VideoDiT"

# Our own socket types (the frontend only connects sockets of equal type).
MODEL_TYPE = "VIDEODIT_MODEL"
VAE_TYPE = "VIDEODIT_VAE"
TEXT_ENCODER_TYPE = "VIDEODIT_TEXT_ENCODER"
CONDITIONING_TYPE = "VIDEODIT_CONDITIONING"

MAX_SEED = 2**64 - 1
# Nodes without a model input (Empty Latent Video, widget limits) use the LTX-Video geometry (8x time, 32x space,
# 128 channels: every released VAE and the built-in one); nodes with a VAE or model use its own (VideoGeometry.of).
GEOMETRY = LTXV_GEOMETRY
MAX_RESOLUTION = MAX_SIZE
MAX_FRAMES = GEOMETRY.max_frames


class InputError(ValueError):
    """A node input outside its valid range; the message names the input and what is valid."""


def size_problems(width, height, frames, names=("width", "height", "frames"), geometry=GEOMETRY) -> list[str]:
    """The messages (input name, value, nearest valid values) of every invalid constant; None values are skipped
    (a linked input is not known at validation time)."""
    checks = (
        (geometry.size_problem, names[0], width),
        (geometry.size_problem, names[1], height),
        (geometry.frames_problem, names[2], frames),
    )
    return [m for check, name, value in checks if value is not None and (m := check(name, int(value)))]


def check_number(name: str, value, options: dict, kind: str) -> str | None:
    """None if a constant INT/FLOAT is finite and within the schema's min/max, else the message."""
    if value is None:
        return None
    try:
        number = float(value) if kind == "FLOAT" else int(value)
    except (TypeError, ValueError, OverflowError):
        return f"{name} must be a {'number' if kind == 'FLOAT' else 'whole number'}: got {value!r}"
    if kind == "FLOAT" and not math.isfinite(number):
        return f"{name} must be a finite number: got {number}"
    lo, hi = options.get("min"), options.get("max")
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        return f"{name} must be between {lo} and {hi}: got {number}"
    return None


def input_spec(cls) -> dict[str, tuple]:
    """{name: (type, options)} of the required and optional inputs, in widget order."""
    spec = {}
    types = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, entry in types.get(section, {}).items():
            spec[name] = (entry[0], entry[1] if len(entry) > 1 else {})
    return spec


def check_inputs(cls, values: dict) -> None:
    """Validate every constant input of a node as ComfyUI's server does (types, min/max, combos) plus finiteness;
    raise InputError naming the input. Used by execute() (linked values are not seen at /prompt time) and by the
    headless runner. A combo input listed in cls.MODEL_FOLDERS (input -> folder key) also says where the files
    were looked for."""
    problems = []
    for name, (kind, options) in input_spec(cls).items():
        if name not in values or values[name] is None:
            continue
        value = values[name]
        if isinstance(kind, list):
            if value not in kind:
                shown = kind if len(kind) <= 20 else f"(list of {len(kind)})"
                message = f"{name}: {value!r} is not one of {shown}"
                folder = getattr(cls, "MODEL_FOLDERS", {}).get(name)
                if folder is not None:
                    from . import host

                    message += f"; looked in {host.describe_search(folder)}"
                problems.append(message)
        elif kind in ("INT", "FLOAT"):
            message = check_number(name, value, options, kind)
            if message:
                problems.append(message)
    if problems:
        raise InputError("; ".join(problems))
