"""Shared fixtures: the built-in tiny models the node/CLI/server tests run, and the headless host folders."""

import os
from dataclasses import dataclass

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILTIN_CHECKPOINT = os.path.join(REPO, "weights", "videodit-tiny.safetensors")
BUILTIN_TEXT_ENCODER = os.path.join(REPO, "weights", "t5-tiny.safetensors")


class RepoRootIsAPlainDirectory:
    """The repo root holds the pack's ComfyUI entry point (__init__.py with relative imports), so pytest would make it
    a Package and import that file as a top-level module named after the checkout folder: a second copy of the pack
    in the "main" checkout, and an ImportError in every test of a "ComfyUI-VideoDiT" checkout (not an identifier).
    A directory's collector is chosen by its parent's conftests, so this hook is registered as a global plugin."""

    @staticmethod
    def pytest_collect_directory(path, parent):
        if path == parent.config.rootpath:
            return pytest.Dir.from_parent(parent, path=path)
        return None


def pytest_configure(config):
    config.pluginmanager.register(RepoRootIsAPlainDirectory(), "videodit-repo-root-dir")


@dataclass
class TinyModels:
    models_dir: str  # ComfyUI-style folder: checkpoints/, text_encoders/
    checkpoint: str  # combo value for VideoDiTModelLoader
    text_encoder: str  # combo value for VideoDiTTextEncoderLoader
    checkpoint_path: str
    text_encoder_path: str


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """The built-in tiny model and text encoder (they ship in weights/), with an empty ComfyUI-style models folder
    whose checkpoints/ and text_encoders/ the tests fill with files of their own."""
    missing = [path for path in (BUILTIN_CHECKPOINT, BUILTIN_TEXT_ENCODER) if not os.path.isfile(path)]
    if missing:
        pytest.fail(f"built-in weights missing: {', '.join(missing)}; restore them with `git checkout -- weights/`")
    root = tmp_path_factory.mktemp("models")
    for sub in ("checkpoints", "text_encoders"):
        (root / sub).mkdir()
    return TinyModels(
        str(root), "videodit-tiny (built-in)", "t5-tiny (built-in)", BUILTIN_CHECKPOINT, BUILTIN_TEXT_ENCODER
    )


@pytest.fixture
def headless(tmp_path, tiny_models):
    """Point the node layer's headless folders at temp dirs (restored afterwards)."""
    from videodit.nodes import host

    saved = (host.HEADLESS.models_dir, host.HEADLESS.output_dir, host.HEADLESS.input_dir, host.HEADLESS.show_progress)
    host.configure_headless(
        models_dir=tiny_models.models_dir,
        output_dir=str(tmp_path / "output"),
        input_dir=str(tmp_path / "input"),
        show_progress=False,
    )
    yield host.HEADLESS
    host.configure_headless(*saved)
