"""LoRAs (model/lora/) for both families against the references, on tiny fp32 models with random weights:

(a) diffusers/PEFT: diffusers 0.42.1 LTXVideoTransformer3DModel / LTX2VideoTransformer3DModel loaded with the same
    weights, the same LoRA state dicts injected with `load_lora_adapter` (PEFT, unmerged) and weighted with
    `set_adapters`; (b) ltx-core 1.0.0 `loader.fuse_loras.apply_loras` on ltx-core's LTXModel (LTX-2); (c) the
    ComfyUI / kohya formats against W + strength * alpha / rank * B @ A computed here. Outputs within TOL max abs.
Then the exactness claims (strength 0, remove, strength changes, stacking, audio/video strengths, fp8) and the
error messages. Run with `pytest -s` to see the measured differences.
"""

import copy
import json
import os
import subprocess
import sys

import pytest
import test_ltx2_transformer as ltx2_tests  # its ltx-core / diffusers references and inputs (skips without ltx-core)
import torch
from safetensors.torch import load_file, save_file
from videodit.model.blocks.fp8 import FP8Linear, convert_linears_to_fp8
from videodit.model.checkpoint.diffusers import diffusers_dit_key
from videodit.model.checkpoint.files import CheckpointError, SafetensorsFile
from videodit.model.lora import LoraFile, LoraMerger, LoraSidePath, LoraStrength, is_audio_layer, load_lora
from videodit.model.lora.targets import linear_layers
from videodit.model.ltx2 import config as cfgs
from videodit.model.ltx2.transformer import LTX2Transformer, diffusers_key
from videodit.model.ltxv.dit import LTXVideoTransformer, TransformerConfig

# PEFT warns when a second adapter is loaded into one model: that is what the stacking tests do
pytestmark = pytest.mark.filterwarnings("ignore:Already found a `peft_config` attribute")

TOL = 1e-5
RANK = 3


# ---------------------------------------------------------------------------------------------------- models


def ltx2_model(version: str = "2.3", seed: int = 0, bf16_values: bool = False) -> tuple[LTX2Transformer, dict]:
    """Tiny LTX-2 transformer with random weights; bf16_values: every value exactly representable in bf16."""
    model = LTX2Transformer(cfgs.tiny(version)).eval()
    gen = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=gen) * 0.15 for k, v in model.state_dict().items()}
    if bf16_values:
        state = {k: v.bfloat16().float() for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return model, state


LTXV_CONFIG = TransformerConfig(
    num_layers=2, num_attention_heads=2, attention_head_dim=16, cross_attention_dim=32, caption_channels=24
)


def ltxv_model(seed: int = 0) -> tuple[LTXVideoTransformer, dict]:
    model = LTXVideoTransformer(LTXV_CONFIG).eval()
    gen = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=gen) * 0.15 for k, v in model.state_dict().items()}
    model.load_state_dict(state, strict=True)
    return model, state


def ltxv_diffusers(state: dict) -> torch.nn.Module:
    from diffusers import LTXVideoTransformer3DModel

    c = LTXV_CONFIG
    model = LTXVideoTransformer3DModel(
        in_channels=c.in_channels,
        out_channels=c.out_channels,
        num_attention_heads=c.num_attention_heads,
        attention_head_dim=c.attention_head_dim,
        cross_attention_dim=c.cross_attention_dim,
        num_layers=c.num_layers,
        caption_channels=c.caption_channels,
        qk_norm="rms_norm_across_heads",
        norm_eps=c.norm_eps,
    ).eval()
    model.load_state_dict({diffusers_dit_key(k): v for k, v in state.items()}, strict=True)
    return model


def ltxv_inputs(seed: int = 3):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randn(2, 12, LTXV_CONFIG.in_channels, generator=gen)
    coords = torch.rand(2, 3, 12, generator=gen) * torch.tensor([2.0, 256.0, 256.0])[None, :, None]
    text = torch.randn(2, 5, LTXV_CONFIG.caption_channels, generator=gen)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    timestep = torch.tensor([[0.7], [0.3]])
    return tokens, coords, text, mask, timestep


@torch.no_grad()
def run(model) -> tuple[torch.Tensor, ...]:
    """Our forward on fixed inputs: (video, audio) for LTX-2, (velocity,) for 0.9.x."""
    if isinstance(model, LTXVideoTransformer):
        return (model(*ltxv_inputs()),)
    video, audio = ltx2_tests.make_streams(model.config)
    return model(video, audio)


def output_diff(a: tuple, b: tuple) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b, strict=True))


# ---------------------------------------------------------------------------------------------------- LoRA files


def random_factors(model, seed: int, names=None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """official layer name -> (down (r, in), up (out, r)) for every linear layer (or `names`)."""
    gen = torch.Generator().manual_seed(seed)
    layers = linear_layers(model)
    return {
        name: (
            torch.randn(RANK, m.in_features, generator=gen) * 0.2,
            torch.randn(m.out_features, RANK, generator=gen) * 0.2,
        )
        for name, m in layers.items()
        if names is None or name in names
    }


def family(model) -> str:
    return "ltx2" if isinstance(model, LTX2Transformer) else "ltxv"


def to_diffusers(model, name: str) -> str:
    return diffusers_key(name + ".weight")[:-7] if family(model) == "ltx2" else diffusers_dit_key(name)


def lora_state(model, factors, fmt: str, alpha: float | None = None) -> dict[str, torch.Tensor]:
    """The factors written in one of the key formats (optional `.alpha` per layer)."""
    names = {
        "comfy": lambda n: f"diffusion_model.{n}",
        "comfy_updown": lambda n: f"diffusion_model.{n}",
        "peft": lambda n: f"transformer.{to_diffusers(model, n)}",
        "kohya": lambda n: "lora_unet_" + n.replace(".", "_"),
        "kohya_diffusers": lambda n: "lora_unet_" + to_diffusers(model, n).replace(".", "_"),
        "bare": lambda n: n,
    }[fmt]
    down_up = ("lora_down", "lora_up") if fmt in ("comfy_updown", "kohya", "kohya_diffusers") else ("lora_A", "lora_B")
    state = {}
    for name, (down, up) in factors.items():
        stem = names(name)
        state[f"{stem}.{down_up[0]}.weight"] = down
        state[f"{stem}.{down_up[1]}.weight"] = up
        if alpha is not None:
            state[f"{stem}.alpha"] = torch.tensor(alpha)
    return state


def hand_merge(model, stack: list[tuple[dict, float]]) -> torch.nn.Module:
    """A copy of `model` with W + sum coef * up @ down written in by hand (coef includes alpha / rank)."""
    merged = copy.deepcopy(model)
    layers = linear_layers(merged)
    with torch.no_grad():
        for factors, coef in stack:
            for name, (down, up) in factors.items():
                layers[name].weight += coef * (up @ down)
    return merged


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> list[str]:
    """Names of parameters/buffers that differ (torch.equal)."""
    sb = b.state_dict()
    return [k for k, v in a.state_dict().items() if not torch.equal(v, sb[k])]


# ---------------------------------------------------------------------------------------------------- (a) PEFT


def inject_peft(reference, lora_states: list[dict], strengths: list[float], alphas: list[float | None]):
    """diffusers' own LoRA loading: load_lora_adapter (PEFT layers, not merged) + set_adapters weights."""
    pytest.importorskip("peft", reason="the diffusers LoRA reference needs peft (pyproject test extra)")
    names = []
    for index, (state, alpha) in enumerate(zip(lora_states, alphas, strict=True)):
        state = {k: v for k, v in state.items() if not k.endswith(".alpha")}
        network_alphas = None
        if alpha is not None:  # one alpha for every layer: PEFT's lora_alpha
            network_alphas = {k.replace(".lora_A.weight", ".alpha"): alpha for k in state if "lora_A" in k}
        reference.load_lora_adapter(
            state, prefix="transformer", adapter_name=f"l{index}", network_alphas=network_alphas
        )
        names.append(f"l{index}")
    reference.set_adapters(names, strengths)


@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_ltx2_equals_diffusers_peft(version):
    model, state = ltx2_model(version)
    reference = ltx2_tests.diffusers_reference(model.config, state)
    f1, f2 = random_factors(model, 1), random_factors(model, 2)
    s1, s2 = lora_state(model, f1, "peft"), lora_state(model, f2, "peft", alpha=6.0)
    inject_peft(reference, [s1, s2], [0.7, -0.4], [None, 6.0])
    video, audio = ltx2_tests.make_streams(model.config)
    with torch.no_grad():
        expected = ltx2_tests.diffusers_forward(reference, video, audio, [], False)[:2]
    base = run(model)
    stack = [LoraStrength(load_lora(s1), 0.7), LoraStrength(load_lora(s2), -0.4)]
    side = LoraSidePath(model)
    side.apply(stack)
    side_diff = output_diff(run(model), expected)
    side.remove()
    LoraMerger(model).apply(stack)
    merged_diff = output_diff(run(model), expected)
    effect = output_diff(base, expected)
    print(
        f"LTX-{version} vs diffusers PEFT: merged {merged_diff:.2e}, side path {side_diff:.2e} (LoRA effect {effect:.2f})"
    )
    assert effect > 0.05, f"the LoRAs barely change the output ({effect:.3e}): the test would not see a wrong merge"
    assert merged_diff <= TOL and side_diff <= TOL, f"max |ours - PEFT| merged {merged_diff:.3e}, side {side_diff:.3e}"


def test_ltxv_equals_diffusers_peft():
    model, state = ltxv_model()
    reference = ltxv_diffusers(state)
    f1, f2 = random_factors(model, 1), random_factors(model, 2)
    s1, s2 = lora_state(model, f1, "peft"), lora_state(model, f2, "peft", alpha=6.0)
    inject_peft(reference, [s1, s2], [0.7, -0.4], [None, 6.0])
    tokens, coords, text, mask, timestep = ltxv_inputs()
    with torch.no_grad():
        expected = reference(
            hidden_states=tokens,
            encoder_hidden_states=text,
            timestep=timestep[:, 0] * 1000,
            encoder_attention_mask=mask,
            video_coords=coords,
            return_dict=False,
        )[:1]
    base = run(model)
    stack = [LoraStrength(load_lora(s1), 0.7), LoraStrength(load_lora(s2), -0.4)]
    side = LoraSidePath(model)
    side.apply(stack)
    side_diff = output_diff(run(model), expected)
    side.remove()
    LoraMerger(model).apply(stack)
    merged_diff = output_diff(run(model), expected)
    effect = output_diff(base, expected)
    print(f"0.9.x vs diffusers PEFT: merged {merged_diff:.2e}, side path {side_diff:.2e} (LoRA effect {effect:.2f})")
    assert effect > 0.05, f"the LoRAs barely change the output ({effect:.3e})"
    assert merged_diff <= TOL and side_diff <= TOL, f"max |ours - PEFT| merged {merged_diff:.3e}, side {side_diff:.3e}"


# ---------------------------------------------------------------------------------------------------- (b) ltx-core


@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_ltx2_equals_ltx_core_fuse(version):
    """ltx-core fuses into bf16 weights only; with bf16-exact base values and target dtype fp32 its sum
    W + (strength * B) @ A is in fp32, as ours."""
    from ltx_core.loader.fuse_loras import apply_loras
    from ltx_core.loader.primitives import LoraStateDictWithStrength, StateDict
    from ltx_core.loader.sd_ops import LTXV_LORA_COMFY_RENAMING_MAP

    model, state = ltx2_model(version, bf16_values=True)
    f1, f2 = random_factors(model, 1), random_factors(model, 2)
    s1, s2 = lora_state(model, f1, "comfy"), lora_state(model, f2, "comfy")

    def core_sd(sd: dict) -> StateDict:
        return StateDict(sd, torch.device("cpu"), sum(v.nbytes for v in sd.values()), {v.dtype for v in sd.values()})

    def core_lora(sd: dict, strength: float) -> LoraStateDictWithStrength:
        return LoraStateDictWithStrength(
            core_sd({LTXV_LORA_COMFY_RENAMING_MAP.apply_to_key(k): v for k, v in sd.items()}), strength
        )

    fused = apply_loras(
        core_sd({k: v.bfloat16() for k, v in state.items()}), [core_lora(s1, 0.8), core_lora(s2, 0.5)], torch.float32
    )
    reference = ltx2_tests.core_reference(model.config, fused.sd)
    video, audio = ltx2_tests.make_streams(model.config)
    from ltx_core.guidance.perturbations import BatchedPerturbationConfig

    with torch.no_grad():
        expected = reference(
            ltx2_tests.to_modality(video),
            ltx2_tests.to_modality(audio),
            BatchedPerturbationConfig.empty(video.latent.shape[0]),
        )
    base = run(model)
    LoraMerger(model).apply([LoraStrength(load_lora(s1), 0.8), LoraStrength(load_lora(s2), 0.5)])
    diff, effect = output_diff(run(model), expected), output_diff(base, expected)
    print(f"LTX-{version} vs ltx-core apply_loras: {diff:.2e} (LoRA effect {effect:.2f})")
    assert effect > 0.05, f"the LoRAs barely change the output ({effect:.3e})"
    assert diff <= TOL, f"max |ours - ltx-core fused| {diff:.3e} (tol {TOL})"


# ---------------------------------------------------------------------------------------------------- (c) by hand


@pytest.mark.parametrize("fmt", ["comfy", "comfy_updown", "kohya", "kohya_diffusers", "bare", "peft"])
@pytest.mark.parametrize("fam", ["ltx2", "ltxv"])
def test_formats_equal_hand_merge(fmt, fam, tmp_path):
    model, _ = ltx2_model() if fam == "ltx2" else ltxv_model()
    factors = random_factors(model, 4)
    alpha = None if fmt in ("bare", "peft") else 2.0  # ComfyUI's rule: alpha / rank when stored, else 1
    state = lora_state(model, factors, fmt, alpha)
    path = tmp_path / "lora.safetensors"
    save_file(state, str(path))
    strength = 0.6
    expected = run(hand_merge(model, [(factors, strength * (alpha / RANK if alpha else 1.0))]))
    base = run(model)
    LoraMerger(model).apply([LoraStrength(load_lora(path), strength)])
    diff, effect = output_diff(run(model), expected), output_diff(base, expected)
    print(f"{fam} {fmt}: {diff:.2e} vs W + s*a/r*B@A by hand (effect {effect:.2f})")
    assert effect > 0.05
    assert diff <= TOL, f"{fam} {fmt}: max |ours - hand merge| {diff:.3e} (tol {TOL})"


def test_peft_metadata_alpha():
    """A diffusers file whose metadata carries PEFT's lora_alpha and r: scale lora_alpha / r on every layer."""
    model, _ = ltxv_model()
    factors = random_factors(model, 5)
    metadata = {"lora_adapter_metadata": '{"transformer.lora_alpha": 6, "transformer.r": 3}'}
    lora = LoraFile(lora_state(model, factors, "peft"), "peft file", metadata)
    assert all(layer.scale == 2.0 for layer in lora.layers)
    expected = run(hand_merge(model, [(factors, 2.0)]))
    LoraMerger(model).apply([LoraStrength(lora, 1.0)])
    diff = output_diff(run(model), expected)
    assert diff <= TOL, f"max |ours - hand| {diff:.3e}"


def lokr_state(model, seed: int, alpha: float | None, low_rank_w1: bool) -> tuple[dict, dict]:
    """kohya-named LoKr layers on every linear layer whose sizes divide by 4: w1 (4, 4), w2 (out/4, in/4) always of
    rank 2, w1 whole or of rank 2 -> (state, {name: kron(w1, w2) computed here})."""
    gen = torch.Generator().manual_seed(seed)
    state, deltas = {}, {}
    for name, m in linear_layers(model).items():
        if m.out_features % 4 or m.in_features % 4:
            continue
        stem = "lora_unet_" + name.replace(".", "_")
        w1 = torch.randn(4, 4, generator=gen) * 0.3
        if low_rank_w1:
            state[f"{stem}.lokr_w1_a"] = torch.randn(4, 2, generator=gen) * 0.5
            state[f"{stem}.lokr_w1_b"] = torch.randn(2, 4, generator=gen) * 0.5
            w1 = state[f"{stem}.lokr_w1_a"] @ state[f"{stem}.lokr_w1_b"]
        else:
            state[f"{stem}.lokr_w1"] = w1
        state[f"{stem}.lokr_w2_a"] = torch.randn(m.out_features // 4, 2, generator=gen) * 0.3
        state[f"{stem}.lokr_w2_b"] = torch.randn(2, m.in_features // 4, generator=gen) * 0.3
        if alpha is not None:
            state[f"{stem}.alpha"] = torch.tensor(alpha)
        deltas[name] = torch.kron(w1, state[f"{stem}.lokr_w2_a"] @ state[f"{stem}.lokr_w2_b"])
    return state, deltas


@pytest.mark.parametrize("alpha, low_rank_w1", [(4.0, False), (None, True)])
@pytest.mark.parametrize("fam", ["ltx2", "ltxv"])
def test_lokr_equals_hand_merge(fam, alpha, low_rank_w1):
    """LoKr: W + strength * alpha / dim * kron(w1, w2), dim = rank of w2 (2); no alpha: scale 1 (ComfyUI's rule)."""
    model, _ = ltx2_model() if fam == "ltx2" else ltxv_model()
    state, deltas = lokr_state(model, 20, alpha, low_rank_w1)
    coef = 0.8 * (alpha / 2 if alpha is not None else 1.0)
    expected_model = copy.deepcopy(model)
    with torch.no_grad():
        for name, delta in deltas.items():
            linear_layers(expected_model)[name].weight += coef * delta
    expected, base = run(expected_model), run(model)
    lora = load_lora(state)
    LoraMerger(model).apply([LoraStrength(lora, 0.8)])
    diff, effect = output_diff(run(model), expected), output_diff(base, expected)
    print(f"{fam} LoKr alpha {alpha}: {diff:.2e} vs hand kron merge (effect {effect:.2f})")
    assert effect > 0.05
    assert diff <= TOL, f"{fam} LoKr: max |ours - hand| {diff:.3e}"
    with pytest.raises(ValueError, match="LoKr layers .* have no side path"):
        LoraSidePath(model).apply([LoraStrength(lora)])


@pytest.mark.parametrize("fam", ["ltx2", "ltxv"])
def test_equals_comfyui_lora_loader(fam, tmp_path):
    """ComfyUI's own LoRA code (comfy.lora.load_lora + calculate_weight with the generic LTX key map) on the same
    weights: same layers patched, weights and outputs within TOL. Needs COMFYUI_DIR (and COMFYUI_PYTHON, the
    interpreter of its environment), like tests/test_comfyui_server.py."""
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if not comfy_dir:
        reason = "COMFYUI_DIR is not set (point it at a ComfyUI source tree to compare with ComfyUI's LoRA code)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    model, state = ltx2_model() if fam == "ltx2" else ltxv_model()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "base.safetensors"))
    files = {
        "comfy_alpha": lora_state(model, random_factors(model, 21), "comfy", alpha=2.0),
        "updown": lora_state(model, random_factors(model, 22), "comfy_updown"),
        "kohya_alpha": lora_state(model, random_factors(model, 23, list(linear_layers(model))[::3]), "kohya", 1.0),
        "lokr_alpha": lokr_state(model, 24, 4.0, False)[0],
        "lokr": lokr_state(model, 25, None, True)[0],
    }
    for name, lora_sd in files.items():
        save_file(lora_sd, str(tmp_path / f"{name}.safetensors"))
    cases = {name: [[name, 0.6]] for name in files}
    cases["stack"] = [["comfy_alpha", 0.5], ["kohya_alpha", -1.2], ["lokr", 0.3]]
    with open(tmp_path / "cases.json", "w") as f:
        json.dump({c: [[str(tmp_path / f"{n}.safetensors"), s] for n, s in stack] for c, stack in cases.items()}, f)
    script = os.path.join(os.path.dirname(__file__), "comfyui_lora_merge.py")
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    args = [str(tmp_path / n) for n in ("base.safetensors", "cases.json", "comfy.safetensors")]
    done = subprocess.run([python, script, comfy_dir, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"ComfyUI LoRA script failed:\n{done.stderr[-3000:]}"
    comfy = load_file(str(tmp_path / "comfy.safetensors"))
    for case, stack in cases.items():
        ours = copy.deepcopy(model)
        merger = LoraMerger(ours)
        merger.apply([LoraStrength(load_lora(tmp_path / f"{n}.safetensors"), s) for n, s in stack])
        theirs = {k.split("/", 1)[1]: v for k, v in comfy.items() if k.startswith(case + "/")}
        assert {k[: -len(".weight")] for k in theirs} == set(merger.touched), f"{case}: other layers patched"
        ours_state = ours.state_dict()
        weight_diff = max((ours_state[k] - v).abs().max().item() for k, v in theirs.items())
        reference = copy.deepcopy(model)
        reference.load_state_dict({**state, **theirs}, strict=True)
        diff, effect = output_diff(run(ours), run(reference)), output_diff(run(model), run(reference))
        print(f"{fam} {case} vs ComfyUI: weights {weight_diff:.2e}, outputs {diff:.2e} (effect {effect:.2f})")
        assert effect > 0.05, f"{case}: the LoRA barely changes the output ({effect:.3e})"
        assert weight_diff <= TOL and diff <= TOL, (
            f"{case}: max |ours - ComfyUI| weights {weight_diff:.3e}, out {diff:.3e}"
        )


# ---------------------------------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, "fp8"])
def test_strength_zero_remove_and_changes_are_exact(dtype):
    model, _ = ltx2_model()
    if dtype == "fp8":
        assert convert_linears_to_fp8(model) > 0
    else:
        model.to(dtype)
    base = copy.deepcopy(model)
    lora = load_lora(lora_state(model, random_factors(model, 6), "comfy"))
    merger = LoraMerger(model)
    merger.apply([LoraStrength(lora, 0.0)])
    assert not same_weights(model, base), "strength 0 changed weights"
    assert merger.touched == []
    merger.apply([LoraStrength(lora, 0.9)])
    changed = same_weights(model, base)
    assert len(changed) >= len(linear_layers(model)), f"only {len(changed)} tensors changed"
    merger.apply([LoraStrength(lora, -0.3)])
    merger.apply([LoraStrength(lora, 0.5)])
    fresh = copy.deepcopy(base)
    LoraMerger(fresh).apply([LoraStrength(lora, 0.5)])
    differ = same_weights(model, fresh)
    assert not differ, f"strength 0.9 -> -0.3 -> 0.5 differs from a fresh 0.5 merge in {differ[:3]}"
    merger.apply([LoraStrength(lora, 0.0)])
    assert not same_weights(model, base), "strength back to 0 is not the base"
    merger.apply([LoraStrength(lora, 0.5)])
    merger.remove()
    differ = same_weights(model, base)
    assert not differ, f"remove() did not restore {differ[:3]}"
    assert merger.base_bytes == 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, "fp8"])
def test_base_weights_read_back_from_the_file(dtype, tmp_path):
    """base_weights= (read from the saved checkpoint, nothing kept): same weights as the kept-base merger, bit for
    bit, and remove() gives the loaded model back."""
    model, state = ltxv_model()
    path = tmp_path / "dit.safetensors"
    save_file({k: v.bfloat16().contiguous() for k, v in state.items()}, str(path))
    file = SafetensorsFile(path)

    def loaded():
        m = LTXVideoTransformer(LTXV_CONFIG).eval().bfloat16()
        m.load_state_dict({k: file.get(k) for k in state}, strict=True)
        if dtype == "fp8":
            convert_linears_to_fp8(m)
        return m

    lora = load_lora(lora_state(model, random_factors(model, 19), "comfy", alpha=2.0))
    reading, keeping, base = loaded(), loaded(), loaded()
    reader = LoraMerger(reading, base_weights=lambda name: file.get(name + ".weight"))
    LoraMerger(keeping).apply([LoraStrength(lora, 0.7)])
    reader.apply([LoraStrength(lora, -0.2)])
    reader.apply([LoraStrength(lora, 0.7)])
    assert reader.base_bytes == 0 and len(reader.touched) == len(lora.layers)
    differ = same_weights(reading, keeping)
    assert not differ, f"read-back base differs from the kept base in {differ[:3]}"
    reader.remove()
    differ = same_weights(reading, base)
    assert not differ, f"remove() with read-back base differs from the loaded model in {differ[:3]}"


def test_fp8_merge_within_quantisation_error():
    """fp8 layers: dequantise, merge in fp32, quantise per row again: within e4m3 rounding of the exact sum."""
    model, _ = ltx2_model()
    convert_linears_to_fp8(model)
    factors = random_factors(model, 7)
    exact = {}
    for name, m in linear_layers(model).items():
        down, up = factors[name]
        w = m.dequantized_weight(torch.float32) if isinstance(m, FP8Linear) else m.weight.float()
        exact[name] = w + 0.8 * (up @ down)
    LoraMerger(model).apply([LoraStrength(load_lora(lora_state(model, factors, "comfy")), 0.8)])
    worst = 0.0
    for name, m in linear_layers(model).items():
        if not isinstance(m, FP8Linear):
            continue
        got = m.dequantized_weight(torch.float32)
        # e4m3 has 3 mantissa bits: rounding error <= 2^-4 relative, or half the row's smallest subnormal step
        bound = exact[name].abs() * 2**-4 + m.weight_scale[:, None] * 2**-10
        assert ((got - exact[name]).abs() <= bound).all(), f"{name}: fp8 merge error beyond e4m3 rounding"
        worst = max(worst, ((got - exact[name]).abs() / bound).max().item())
    print(f"fp8 merge: worst error / e4m3 rounding bound = {worst:.3f}")


def test_stack_equals_sum():
    model, _ = ltxv_model()
    f1, f2 = random_factors(model, 8), random_factors(model, 9, names=list(linear_layers(model))[:10])
    expected = run(hand_merge(model, [(f1, 0.7 * 2.0 / RANK), (f2, -1.2)]))
    l1, l2 = load_lora(lora_state(model, f1, "kohya", alpha=2.0)), load_lora(lora_state(model, f2, "comfy"))
    LoraMerger(model).apply([LoraStrength(l1, 0.7), LoraStrength(l2, -1.2)])
    diff = output_diff(run(model), expected)
    assert diff <= TOL, f"two LoRAs stacked: max |ours - W + d1 + d2| {diff:.3e}"


def test_audio_and_video_strengths_touch_only_their_layers():
    model, _ = ltx2_model()
    base = copy.deepcopy(model)
    layers = list(linear_layers(model))
    audio = {n for n in layers if is_audio_layer(n)}
    assert {
        "audio_patchify_proj",
        "transformer_blocks.0.audio_ff.net.2",
        "transformer_blocks.1.video_to_audio_attn.to_q",
        "transformer_blocks.1.video_to_audio_attn.to_out.0",
        "transformer_blocks.0.audio_to_video_attn.to_k",
        "transformer_blocks.0.audio_to_video_attn.to_v",
        "av_ca_v2a_gate_adaln_single.linear",
        "av_ca_audio_scale_shift_adaln_single.linear",
    } <= audio
    assert not audio & {
        "patchify_proj",
        "transformer_blocks.0.audio_to_video_attn.to_q",
        "transformer_blocks.0.audio_to_video_attn.to_out.0",
        "transformer_blocks.0.video_to_audio_attn.to_k",
        "av_ca_a2v_gate_adaln_single.linear",
        "transformer_blocks.0.attn2.to_v",
    }
    lora = load_lora(lora_state(model, random_factors(model, 10), "comfy"))
    merger = LoraMerger(model)
    for strength, audio_strength, untouched in ((1.0, 0.0, audio), (0.0, 1.0, set(layers) - audio)):
        merger.apply([LoraStrength(lora, strength, audio_strength)])
        changed = {k.rsplit(".", 1)[0] for k in same_weights(model, base)}
        assert changed == set(layers) - untouched, f"changed {sorted(changed ^ (set(layers) - untouched))[:4]}"
    # video 1.0 and audio 0.5 at once: each layer gets its own stream's strength
    factors = random_factors(model, 10)
    video_factors = {n: f for n, f in factors.items() if n not in audio}
    audio_factors = {n: f for n, f in factors.items() if n in audio}
    merger.apply([LoraStrength(lora, 1.0, 0.5)])
    diff = output_diff(run(model), run(hand_merge(base, [(video_factors, 1.0), (audio_factors, 0.5)])))
    assert diff <= TOL, f"video 1.0 / audio 0.5: max |ours - hand| {diff:.3e}"


def test_side_path_leaves_weights_alone():
    model, _ = ltx2_model()
    base = copy.deepcopy(model)
    lora = load_lora(lora_state(model, random_factors(model, 11), "comfy", alpha=1.5))
    stack = [LoraStrength(lora, 0.8, 0.3)]
    side = LoraSidePath(model)
    side.apply(stack)
    hooked = run(model)
    assert not same_weights(model, base)
    side.remove()
    assert output_diff(run(model), run(base)) == 0.0
    LoraMerger(model).apply(stack)
    diff = output_diff(run(model), hooked)
    assert diff <= TOL, f"side path vs merge: {diff:.3e}"


def test_text_kv_cache_sees_the_merge():
    """The 0.9.x text key/value cache (model/speed.py) is recomputed after a merge and after remove()."""
    from videodit.model.speed import TextKVCache

    model, _ = ltxv_model()
    plain = copy.deepcopy(model)
    model.text_kv_cache = TextKVCache()
    names = [n for n in linear_layers(model) if ".attn2.to_" in n or n.startswith("caption_projection.")]
    lora = load_lora(lora_state(model, random_factors(model, 26, names), "comfy"))
    base = run(model)  # fills the cache
    merger = LoraMerger(model)
    merger.apply([LoraStrength(lora, 0.9)])
    LoraMerger(plain).apply([LoraStrength(lora, 0.9)])
    diff = output_diff(run(model), run(plain))
    assert output_diff(base, run(plain)) > 0.05, "the LoRA on attn2 / caption projection barely matters"
    assert diff <= TOL, f"cached keys/values after the merge: max |cached - uncached| {diff:.3e}"
    merger.remove()
    assert output_diff(run(model), base) == 0.0, "cache not recomputed after remove()"


# ---------------------------------------------------------------------------------------------------- errors


def test_unmatched_keys_are_listed():
    model, _ = ltxv_model()
    state = lora_state(model, random_factors(model, 12, names=["proj_out", "transformer_blocks.0.attn1.to_q"]), "comfy")
    state["diffusion_model.transformer_blocks.0.attn1.to_w.lora_A.weight"] = torch.zeros(RANK, 32)
    state["diffusion_model.transformer_blocks.0.attn1.to_w.lora_B.weight"] = torch.zeros(32, RANK)
    with pytest.raises(
        CheckpointError,
        match=r"1 of 3 LoRA layers match no linear layer .*\(2 matched\); first unmatched: transformer_blocks\.0\.attn1\.to_w",
    ):
        LoraMerger(model).apply([LoraStrength(load_lora(state, "odd.safetensors"))])


def test_other_family_is_named():
    ltx2, _ = ltx2_model()
    ltxv, _ = ltxv_model()
    ltx2_lora = load_lora(lora_state(ltx2, random_factors(ltx2, 13), "comfy"), "ltx2_lora.safetensors")
    with pytest.raises(CheckpointError, match="this is an LTX-2 LoRA .*the model is LTX-Video 0.9.x"):
        LoraMerger(ltxv).apply([LoraStrength(ltx2_lora)])
    ltxv_lora = load_lora(lora_state(ltxv, random_factors(ltxv, 14), "comfy"), "ltxv_lora.safetensors")
    with pytest.raises(CheckpointError, match="as an LTX-Video 0.9.x LoRA would"):
        LoraMerger(ltx2).apply([LoraStrength(ltxv_lora)])
    # a video-only LoRA whose names fit the LTX-2 model but whose sizes do not (a 0.9.x 2B LoRA on a 4096-wide model)
    wide = {"transformer_blocks.0.attn1.to_q": (torch.zeros(RANK, 64), torch.zeros(64, RANK))}
    with pytest.raises(
        CheckpointError,
        match=r"1 of 1 LoRA layers do not fit .*attn1\.to_q: LoRA makes \(out, in\) "
        r"\(64, 64\), the layer is \(32, 32\).*as an LTX-Video 0.9.x LoRA would",
    ):
        LoraMerger(ltx2).apply([LoraStrength(load_lora(lora_state(ltx2, wide, "comfy")))])


def test_wrong_shape_names_the_layer():
    model, _ = ltxv_model()
    state = lora_state(model, random_factors(model, 16, names=["transformer_blocks.1.ff.net.2"]), "comfy")
    state["diffusion_model.transformer_blocks.1.ff.net.2.lora_B.weight"] = torch.zeros(7, RANK)
    with pytest.raises(
        CheckpointError,
        match=r"transformer_blocks\.1\.ff\.net\.2: LoRA makes \(out, in\) \(7, 128\), the layer is \(32, 128\)",
    ):
        LoraMerger(model).apply([LoraStrength(load_lora(state))])


def test_files_that_are_not_plain_loras(tmp_path):
    model, state = ltxv_model()
    checkpoint = tmp_path / "ckpt.safetensors"
    save_file({"model.diffusion_model." + k: v.contiguous() for k, v in state.items()}, str(checkpoint))
    with pytest.raises(CheckpointError, match="not a LoRA file .*transformer-only LTX-Video file"):
        load_lora(checkpoint)
    for key, fmt in (("hada_w1_a", "LoHa"), ("oft_blocks", "OFT"), ("dora_scale", "DoRA"), ("diff", "full weight")):
        with pytest.raises(CheckpointError, match=fmt):
            load_lora({f"lora_unet_transformer_blocks_0_attn1_to_q.{key}": torch.zeros(2, 2)})
    with pytest.raises(CheckpointError, match="LoKr layer lora_unet_proj_out has no usable factor 2"):
        load_lora({"lora_unet_proj_out.lokr_w1": torch.zeros(2, 2)})
    with pytest.raises(CheckpointError, match="has no matching .*lora_B.weight"):
        load_lora({"diffusion_model.proj_out.lora_A.weight": torch.zeros(RANK, 32)})
    with pytest.raises(CheckpointError, match="not parts of a LoRA pair .*first: diffusion_model.proj_out.bias"):
        load_lora(
            {
                **lora_state(model, random_factors(model, 17, ["proj_out"]), "comfy"),
                "diffusion_model.proj_out.bias": torch.zeros(8),
            }
        )
    with pytest.raises(ValueError, match="audio_strength is for LTX-2 models"):
        LoraMerger(model).apply(
            [LoraStrength(load_lora(lora_state(model, random_factors(model, 18, ["proj_out"]), "comfy")), 1.0, 0.5)]
        )
    with pytest.raises(TypeError, match="LTX2Transformer or an LTXVideoTransformer"):
        LoraMerger(torch.nn.Linear(2, 2))
