"""VideoDiT LoRA Loader (nodes/lora.py) on the built-in tiny model: listing, chain = LoraMerger by hand, strength
changes = a fresh load, the upstream model untouched (a branch without the node = the base result bit for bit),
stacks, the other family's LoRA named. Run `pytest -s tests/test_lora_node.py` to see the numbers."""

import os

import pytest
import torch
from safetensors.torch import save_file
from test_ltx2_nodes import files  # noqa: F401 - its tiny LTX-2 files, a module fixture
from videodit.model.lora import LoraMerger, LoraStrength, load_lora
from videodit.model.lora.targets import linear_layers
from videodit.nodes import loaders
from videodit.nodes.common import InputError
from videodit.nodes.latents import VideoDiTEmptyLatentVideo
from videodit.nodes.loaders import VideoDiTModelLoader
from videodit.nodes.lora import LoraModel, VideoDiTLoraLoader
from videodit.nodes.sampler import VideoDiTSampler

TOL = 1e-6
RANK = 2


def lora_file(path, transformer, seed: int, pattern: str = "attn1.to_q") -> str:
    """A random ComfyUI-format LoRA (lora_A / lora_B, alpha = rank) on every layer whose name contains pattern."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, layer in linear_layers(transformer).items():
        if pattern in name:
            state[f"diffusion_model.{name}.lora_A.weight"] = 0.3 * torch.randn(RANK, layer.in_features, generator=gen)
            state[f"diffusion_model.{name}.lora_B.weight"] = 0.3 * torch.randn(layer.out_features, RANK, generator=gen)
            state[f"diffusion_model.{name}.alpha"] = torch.tensor(float(RANK))
    assert state, f"no layer matches {pattern}"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(state, path)
    return path


def condition(seed):
    from videodit.model.sampling import TextCondition

    g = torch.Generator().manual_seed(seed)
    return TextCondition(embeddings=torch.randn(1, 12, 256, generator=g), mask=torch.ones(1, 12))


def run(model):
    """One Sampler run: 64 x 64 x 9, 3 steps, CFG 3 + STG on block 1."""
    (latent,) = VideoDiTEmptyLatentVideo().generate(64, 64, 9, 25.0, 1)
    args = (condition(1), condition(2), latent, 7, 3, 3.0, 1.0, "1", 0.7, "auto", 1.0, 0.0)
    (out,) = VideoDiTSampler().sample(model, *args)
    return out["samples"]


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


@pytest.fixture
def setup(headless, tiny_models):
    loaders._CACHE.clear()
    model, _, _ = VideoDiTModelLoader().load(tiny_models.checkpoint, "fp32", "gpu")
    loras = os.path.join(tiny_models.models_dir, "loras")
    style = lora_file(os.path.join(loras, "style.safetensors"), model.transformer, 1)
    motion = lora_file(os.path.join(loras, "sub", "motion.safetensors"), model.transformer, 2, "ff.net")
    yield model, style, motion
    loaders._CACHE.clear()


@pytest.fixture
def ltx2_models(files, tmp_path):  # noqa: F811 - the imported fixture, requested by name
    """test_ltx2_nodes' tiny LTX-2 models folder (its `files` fixture), with loras/, as the headless folder."""
    from videodit.nodes import host

    root, names = files
    os.makedirs(os.path.join(root, "loras"), exist_ok=True)
    saved = dict(models_dir=host.HEADLESS.models_dir, output_dir=host.HEADLESS.output_dir)
    host.configure_headless(models_dir=str(root), output_dir=str(tmp_path / "output"), show_progress=False)
    yield root, names
    host.configure_headless(**saved)


def weights(transformer) -> dict:
    return {k: v.clone() for k, v in transformer.state_dict().items()}


def same_weights(saved: dict, transformer) -> bool:
    now = transformer.state_dict()
    return saved.keys() == now.keys() and all(torch.equal(v, now[k]) for k, v in saved.items())


def test_lora_files_are_listed(setup):
    choices, options = VideoDiTLoraLoader.INPUT_TYPES()["required"]["lora_name"]
    assert choices == ["none", "style.safetensors", "sub/motion.safetensors"]
    assert options["default"] == "style.safetensors"
    model, _, _ = setup
    assert VideoDiTLoraLoader().load(model, "none", 1.0) == (model,)


def test_chain_equals_merger_by_hand_and_leaves_the_model_alone(setup):
    model, style, _ = setup
    base_weights = weights(model.transformer)
    base = run(model)
    (with_lora,) = VideoDiTLoraLoader().load(model, "style.safetensors", 0.7)
    assert isinstance(with_lora, LoraModel) and with_lora.base is model
    got = run(with_lora)
    # the upstream model: the same weights bit for bit, and a branch without the node gives the base result
    assert same_weights(base_weights, model.transformer)
    again = run(model)
    assert torch.equal(again, base)

    merger = LoraMerger(model.transformer)
    merger.apply([LoraStrength(load_lora(style), 0.7)])
    by_hand = run(model)
    merger.remove()
    d, effect = max_diff(got, by_hand), max_diff(got, base)
    print(f"\nLoRA node chain vs LoraMerger by hand: max diff {d:.3e} (LoRA effect {effect:.3e})")
    assert d <= TOL and effect > 1e-3


def test_strength_change_equals_a_fresh_load(setup, tiny_models):
    model, _, _ = setup
    (strong,) = VideoDiTLoraLoader().load(model, "style.safetensors", 0.9)
    run(strong)
    (weak,) = VideoDiTLoraLoader().load(model, "style.safetensors", 0.3)
    changed = run(weak)

    loaders._CACHE.clear()  # a fresh Model Loader output: new weights from the file
    fresh_model, _, _ = VideoDiTModelLoader().load(tiny_models.checkpoint, "fp32", "gpu")
    assert fresh_model is not model
    (fresh_weak,) = VideoDiTLoraLoader().load(fresh_model, "style.safetensors", 0.3)
    fresh = run(fresh_weak)
    d = max_diff(changed, fresh)
    print(f"\nstrength 0.9 -> 0.3 vs a fresh load at 0.3: max diff {d:.3e}")
    assert d <= TOL and max_diff(changed, run(strong)) > 1e-3


def test_chained_nodes_stack(setup):
    model, style, motion = setup
    (one,) = VideoDiTLoraLoader().load(model, "style.safetensors", 0.5)
    (two,) = VideoDiTLoraLoader().load(one, "sub/motion.safetensors", -0.8)
    assert two.base is model and len(two.loras) == 2 and len(one.loras) == 1  # the first node's output unchanged
    got = run(two)
    merger = LoraMerger(model.transformer)
    merger.apply([LoraStrength(load_lora(style), 0.5), LoraStrength(load_lora(motion), -0.8)])
    by_hand = run(model)
    merger.remove()
    d = max_diff(got, by_hand)
    print(f"\ntwo chained LoRA nodes vs the stack merged by hand: max diff {d:.3e}")
    assert d <= TOL and max_diff(got, run(one)) > 1e-3


def test_wrapper_reads_and_writes_through_to_the_base(setup):
    import copy

    model, _, _ = setup
    (with_lora,) = VideoDiTLoraLoader().load(model, "style.safetensors", 0.5)
    assert with_lora.family == model.family and with_lora.vae is model.vae and with_lora.version == model.version
    with_lora.preview_factors = ("fitted",)  # the sampler's preview cache lands on the shared model
    assert model.preview_factors == ("fitted",)
    model.preview_factors = None
    clone = copy.copy(with_lora)
    assert clone.base is model and clone.loras == with_lora.loras


def test_strength_zero_is_the_base_result(setup):
    model, _, _ = setup
    (off,) = VideoDiTLoraLoader().load(model, "style.safetensors", 0.0)
    assert torch.equal(run(off), run(model))


def test_other_family_and_bad_inputs(setup, tiny_models):
    model, _, _ = setup
    name = "transformer_blocks.0.audio_attn1.to_q"  # a layer only LTX-2 has
    ltx2 = {
        f"diffusion_model.{name}.lora_A.weight": torch.randn(RANK, 64),
        f"diffusion_model.{name}.lora_B.weight": torch.randn(64, RANK),
    }
    save_file(ltx2, os.path.join(tiny_models.models_dir, "loras", "ltx2_audio.safetensors"))
    with pytest.raises(InputError, match=r"lora_name: .*ltx2_audio.safetensors: this is an LTX-2 LoRA"):
        VideoDiTLoraLoader().load(model, "ltx2_audio.safetensors", 1.0)
    with pytest.raises(InputError, match="lora_name: 'missing.safetensors' is not one of"):
        VideoDiTLoraLoader().load(model, "missing.safetensors", 1.0)
    with pytest.raises(InputError, match="strength must be between -10.0 and 10.0"):
        VideoDiTLoraLoader().load(model, "style.safetensors", 11.0)


class FakeLTX2Model:
    """What the LoRA node and LoraModel use of an LTX2Model: the transformer, the family, acquire/release."""

    family = "ltx2"

    def __init__(self, transformer):
        self.transformer, self.calls = transformer, []

    def acquire(self):
        self.calls.append("acquire")
        return self.transformer

    def release(self):
        self.calls.append("release")


def test_ltx2_audio_strength_reaches_the_merger(headless, tiny_models):
    """LTX-2: strength on the video layers, audio_strength on the audio layers, merged only while acquired."""
    import copy

    from videodit.model.lora.targets import is_audio_layer
    from videodit.model.ltx2 import config as cfgs
    from videodit.model.ltx2.transformer import LTX2Transformer

    transformer = LTX2Transformer(cfgs.tiny("2.3")).eval().requires_grad_(False)
    reference = copy.deepcopy(transformer)
    base_weights = weights(transformer)
    loras = os.path.join(tiny_models.models_dir, "loras")
    path = lora_file(os.path.join(loras, "av.safetensors"), transformer, 3, "attn1.to_q")  # video + audio attn1
    assert any(is_audio_layer(n) for n in linear_layers(transformer) if "attn1.to_q" in n)
    model = FakeLTX2Model(transformer)
    (with_lora,) = VideoDiTLoraLoader().load(model, "av.safetensors", 0.6, 0.2)
    assert with_lora.loras[0].audio_strength == 0.2 and model.calls == []  # nothing merged at load

    LoraMerger(reference).apply([LoraStrength(load_lora(path), 0.6, 0.2)])
    reference_state = reference.state_dict()
    acquired = with_lora.acquire()
    assert acquired is transformer and model.calls == ["acquire"]
    d = max(max_diff(v, reference_state[k]) for k, v in transformer.state_dict().items())
    print(f"\nLTX-2 LoRA node, video 0.6 / audio 0.2, acquired vs LoraMerger by hand: max weight diff {d:.3e}")
    assert d <= TOL
    now = transformer.state_dict()
    changed = {k for k, v in base_weights.items() if not torch.equal(v, now[k])}
    assert any("audio_attn1" in k for k in changed) and any(".attn1.to_q" in k for k in changed)
    with_lora.release()
    assert model.calls == ["acquire", "release"]
    assert same_weights(base_weights, transformer)


def test_ltx2_chain_with_streamed_blocks_equals_the_merge_by_hand(ltx2_models, caplog):
    """LTX-2 through the nodes, memory "stream blocks" (the blocks are copied to device buffers while sampling):
    the LoRA node (video 0.6, audio 0.3) = the same stack merged by hand into a resident model; base restored."""
    import logging

    from test_ltx2_nodes import CHECKPOINT, GEMMA, PROMPT, SIZE, defaults
    from videodit.nodes.loaders import VideoDiTTextEncode, VideoDiTTextEncoderLoader

    caplog.set_level(logging.INFO, logger="videodit")
    root, _ = ltx2_models

    def chain(memory, lora=None):
        model, vae, _ = VideoDiTModelLoader().load(
            **defaults(VideoDiTModelLoader, checkpoint=CHECKPOINT, memory=memory)
        )
        (encoder,) = VideoDiTTextEncoderLoader().load(**defaults(VideoDiTTextEncoderLoader, text_encoder=GEMMA))
        (positive,) = VideoDiTTextEncode().encode(encoder, PROMPT)
        (latent,) = VideoDiTEmptyLatentVideo().generate(**defaults(VideoDiTEmptyLatentVideo, **SIZE, vae=vae))
        sampler = defaults(VideoDiTSampler, steps=2, guidance="custom", cfg=1.0, stg=0.0, audio_cfg=1.0)
        used = model if lora is None else lora(model)
        (out,) = VideoDiTSampler().sample(used, positive, positive, latent, **sampler)
        return model, out

    loaders._CACHE.clear()
    probe, _, _ = VideoDiTModelLoader().load(**defaults(VideoDiTModelLoader, checkpoint=CHECKPOINT))
    path = lora_file(os.path.join(root, "loras", "ltx2_av.safetensors"), probe.transformer, 4, "attn1.to_q")
    loaders._CACHE.clear()
    streamed, got = chain("stream blocks", lambda m: VideoDiTLoraLoader().load(m, "ltx2_av.safetensors", 0.6, 0.3)[0])
    assert streamed._streamer is None and "streaming 15 of 29 LTX-2 blocks" in caplog.text
    base = weights(streamed.transformer)

    loaders._CACHE.clear()
    stack = [LoraStrength(load_lora(path), 0.6, 0.3)]

    def by_hand(model):
        LoraMerger(model.transformer).apply(stack)
        return model

    _, expected = chain("resident", by_hand)
    diffs = [max_diff(got[k], expected[k]) for k in ("samples", "audio_samples")]
    print(
        f"\nLTX-2 LoRA node, streamed blocks vs merged by hand, resident: max diffs video {diffs[0]}, audio {diffs[1]}"
    )
    assert max(diffs) <= TOL
    assert same_weights(base, streamed.transformer)
    loaders._CACHE.clear()
