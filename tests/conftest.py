"""Shared fixtures: the tiny models the node/CLI/server tests run (built-in weights when present, else random ones
of the same configuration written to a temp models folder)."""

import os
from dataclasses import dataclass, field

import pytest
import torch

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
    text_encoder: str | None  # combo value for VideoDiTTextEncoderLoader; None while no text encoder exists
    checkpoint_path: str
    text_encoder_path: str
    overrides: list = field(default_factory=list)  # --set items that select these models in the tiny workflows


def write_random_checkpoint(path):
    from videodit.model.checkpoint import save_checkpoint
    from videodit.model.ltxv.dit import LTXVideoTransformer
    from videodit.model.ltxv.vae import CausalVideoVAE
    from videodit.tiny import configs

    torch.manual_seed(0)
    transformer = LTXVideoTransformer(configs.transformer_config())
    vae = CausalVideoVAE(configs.vae_config())
    save_checkpoint(
        path,
        transformer,
        vae,
        {
            "transformer": transformer.config.to_metadata(),
            "vae": vae.config.to_metadata(),
            "scheduler": configs.SCHEDULER,
        },
    )


def write_random_text_encoder(path) -> bool:
    try:
        from videodit.model import text_encoder
    except ImportError:
        return False  # the loading helper's model/text_encoder.py has not landed yet
    from transformers import T5EncoderModel
    from videodit.tiny import configs

    torch.manual_seed(0)
    text_encoder.save_text_encoder(path, T5EncoderModel(configs.t5_config()))
    return True


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for sub in ("checkpoints", "text_encoders"):
        (root / sub).mkdir()
    if os.path.isfile(BUILTIN_CHECKPOINT) and os.path.isfile(BUILTIN_TEXT_ENCODER):
        return TinyModels(
            str(root), "videodit-tiny (built-in)", "t5-tiny (built-in)", BUILTIN_CHECKPOINT, BUILTIN_TEXT_ENCODER
        )
    checkpoint = root / "checkpoints" / "random-tiny.safetensors"
    text_encoder = root / "text_encoders" / "random-t5-tiny.safetensors"
    write_random_checkpoint(str(checkpoint))
    if not write_random_text_encoder(str(text_encoder)):
        return TinyModels(str(root), checkpoint.name, None, str(checkpoint), None)
    return TinyModels(
        str(root),
        checkpoint.name,
        text_encoder.name,
        str(checkpoint),
        str(text_encoder),
        [f"1.checkpoint={checkpoint.name}", f"2.text_encoder={text_encoder.name}"],
    )


@pytest.fixture
def with_text_encoder(tiny_models):
    if tiny_models.text_encoder is None:
        pytest.skip("no text encoder yet: neither weights/t5-tiny.safetensors nor model/text_encoder.py exists")
    return tiny_models


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
