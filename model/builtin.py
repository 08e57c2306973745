"""The built-in tiny model: where its weights are, the words it knows, and what to do when a file is damaged.

    from videodit.model import builtin_weights, load_pipeline
    tiny = builtin_weights()          # works from any working directory
    pipe = load_pipeline(tiny.checkpoint, tiny.text_encoder)

The tiny model was trained on a synthetic world (tiny/data.py): one shape of 8 colours x 3 shapes x 5 motions on
2 backgrounds. Prompts outside that vocabulary give arbitrary videos; check_prompt says which kind of word is
missing, warn_prompt logs that once per prompt.
"""

import logging
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass

from ..tiny import data

logger = logging.getLogger("videodit")

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")
CHECKPOINT_FILE = "videodit-tiny.safetensors"
TEXT_ENCODER_FILE = "t5-tiny.safetensors"
RESTORE_HINT = "this file ships with the pack: restore it with `git checkout -- weights/` in the pack's folder"

# Words of the training captions (tiny/data.py), by kind; a prompt needs one of each of the first three.
VOCABULARY = {
    "colour": tuple(data.COLORS),
    "shape": ("circle", "disc", "disk", "ball", "round dot", "square", "box", "block", "triangle", "wedge"),
    "motion": ("left", "leftward", "right", "rightward", "up", "upward", "rises", "down", "downward", "falls")
    + ("sinks", "still", "not moving", "in place", "stays put")
    + ("rising", "climbing", "climbs", "ascends", "falling", "sinking", "dropping", "drops", "descends")
    + ("motionless", "stationary", "staying put", "does not move"),
    "background": tuple(data.BACKGROUNDS) + ("dark", "light"),
}
VOCABULARY_TEXT = (
    f"colours {', '.join(data.COLORS)}; shapes {', '.join(data.SHAPES)}; motions moving to the left / right, "
    f"moving up / down, staying still; backgrounds {' or '.join(data.BACKGROUNDS)} "
    f'(e.g. "{data.canonical_caption("red", "circle", "right", "black")}")'
)
_warned: set[str] = set()


@dataclass(frozen=True)
class BuiltinWeights:
    checkpoint: str  # DiT + VAE, official single-file layout
    text_encoder: str  # byte-level T5


def builtin_weights() -> BuiltinWeights:
    """Absolute paths of the built-in tiny model's files (inside the installed pack, any working directory)."""
    return BuiltinWeights(os.path.join(WEIGHTS_DIR, CHECKPOINT_FILE), os.path.join(WEIGHTS_DIR, TEXT_ENCODER_FILE))


def is_builtin(path) -> bool:
    """True when `path` is one of the built-in weight files."""
    if path is None:
        return False
    real = os.path.realpath(str(path))
    return any(real == os.path.realpath(p) for p in (builtin_weights().checkpoint, builtin_weights().text_encoder))


def restore_message(path, error: Exception) -> str:
    """The loader's message for a damaged built-in file, pointing at git instead of a download."""
    text = re.sub(r"[,;]? re-download it\.?", "", str(error))
    return f"{text}; {RESTORE_HINT} (the built-in model {os.path.basename(str(path))})"


@contextmanager
def restore_hint(path):
    """Re-raise a CheckpointError about a built-in file with restore_message (other files: unchanged)."""
    from .checkpoint import CheckpointError

    try:
        yield
    except CheckpointError as e:
        if not is_builtin(path):
            raise
        raise CheckpointError(restore_message(path, e)) from e


def missing_kinds(prompt: str) -> list[str]:
    """The kinds of word ("colour", "shape", "motion") the tiny model needs that `prompt` has none of."""
    text = f" {re.sub(r'[^a-z]+', ' ', prompt.lower())} "
    return [kind for kind in ("colour", "shape", "motion") if not any(f" {w} " in text for w in VOCABULARY[kind])]


def check_prompt(prompt: str) -> str | None:
    """None when `prompt` names a colour, a shape and a motion the tiny model knows, else the warning text."""
    missing = missing_kinds(prompt)
    if not missing:
        return None
    return (
        f"the built-in tiny model knows no {' / '.join(missing)} word in the prompt {prompt.strip()[:80]!r}; "
        f"it only knows {VOCABULARY_TEXT}"
    )


def warn_prompt(prompt: str) -> None:
    """Log check_prompt's warning, once per prompt text per process."""
    message = check_prompt(prompt)
    if message and prompt not in _warned:
        _warned.add(prompt)
        logger.warning(message)


__all__ = [
    "BuiltinWeights",
    "builtin_weights",
    "is_builtin",
    "restore_message",
    "restore_hint",
    "VOCABULARY",
    "VOCABULARY_TEXT",
    "check_prompt",
    "warn_prompt",
]
