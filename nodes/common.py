"""Shared pieces of the node layer: socket types, input checks with messages that name the input."""

import math

CATEGORY = "VideoDiT"

# Our own socket types (the frontend only connects sockets of equal type).
MODEL_TYPE = "VIDEODIT_MODEL"
VAE_TYPE = "VIDEODIT_VAE"
TEXT_ENCODER_TYPE = "VIDEODIT_TEXT_ENCODER"
CONDITIONING_TYPE = "VIDEODIT_CONDITIONING"

SPATIAL_FACTOR = 32  # pixels per latent voxel (height, width)
TEMPORAL_FACTOR = 8  # pixel frames per latent frame after the first
LATENT_CHANNELS = 128
MAX_RESOLUTION = 8192
MAX_FRAMES = 8 * 1024 + 1
MAX_SEED = 2**64 - 1


class InputError(ValueError):
    """A node input outside its valid range; the message names the input and what is valid."""


def nearest_multiples(value: int, step: int, offset: int = 0, minimum: int | None = None) -> list[int]:
    """The valid values (offset + k*step) just below and above `value` (only those >= minimum)."""
    lower = offset + ((value - offset) // step) * step
    candidates = [lower, lower + step]
    minimum = offset if minimum is None else minimum
    return [c for c in candidates if c >= minimum] or [minimum]


def check_pixel_size(name: str, value) -> str | None:
    """None if `value` is a valid width/height, else the message."""
    if value is None:
        return None
    value = int(value)
    if value < SPATIAL_FACTOR or value > MAX_RESOLUTION or value % SPATIAL_FACTOR:
        near = nearest_multiples(
            min(max(value, SPATIAL_FACTOR), MAX_RESOLUTION), SPATIAL_FACTOR, minimum=SPATIAL_FACTOR
        )
        near = " or ".join(str(n) for n in dict.fromkeys(near))
        return (
            f"{name} must be a multiple of {SPATIAL_FACTOR} between {SPATIAL_FACTOR} and {MAX_RESOLUTION} "
            f"(the VAE compresses {SPATIAL_FACTOR}x in space): got {value}; nearest valid: {near}"
        )
    return None


def check_frame_count(name: str, value) -> str | None:
    """None if `value` is a valid frame count 8k+1, else the message."""
    if value is None:
        return None
    value = int(value)
    if value < 1 or value > MAX_FRAMES or (value - 1) % TEMPORAL_FACTOR:
        near = nearest_multiples(min(max(value, 1), MAX_FRAMES), TEMPORAL_FACTOR, offset=1, minimum=1)
        near = " or ".join(str(n) for n in dict.fromkeys(near))
        return (
            f"{name} must be 8k+1 (1, 9, 17, ..., 97, ...; the VAE keeps the first frame and compresses 8 frames "
            f"per latent frame after it): got {value}; nearest valid: {near}"
        )
    return None


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
    raise InputError naming the node and input. Used by execute() (linked values are not seen at /prompt time)
    and by the headless runner."""
    problems = []
    for name, (kind, options) in input_spec(cls).items():
        if name not in values or values[name] is None:
            continue
        value = values[name]
        if isinstance(kind, list):
            if value not in kind:
                shown = kind if len(kind) <= 20 else f"(list of {len(kind)})"
                problems.append(f"{name}: {value!r} is not one of {shown}")
        elif kind in ("INT", "FLOAT"):
            message = check_number(name, value, options, kind)
            if message:
                problems.append(message)
    if problems:
        raise InputError(f"{cls.__name__}: " + "; ".join(problems))
