"""Speed options (model/speed.py, model/attention.py, model/fp8.py): every fast path computes what the plain path
computes, and options the machine cannot honour fall back with a warning instead of failing.

Runs on the CPU with a tiny DiT; the GPU-only kernels (scaled FP8 matmuls, compiled blocks) are checked for
numbers by benchmarks/bench.py on a GPU and skipped here with the reason.
"""

import warnings

import pytest
import torch
import torch.nn.functional as F
from videodit.model.blocks.attention import BACKENDS, attention, attention_backend, resolve_backend
from videodit.model.blocks.fp8 import FP8, FP8Linear, convert_linears_to_fp8, fp8_matmul_supported, quantize_rows
from videodit.model.ltxv.dit import LTXVideoTransformer, SkipLayers, TransformerConfig
from videodit.model.ltxv.positions import video_coords
from videodit.model.speed import SpeedOptions, TextKVCache, apply_speed_options

CONFIG = TransformerConfig(
    num_layers=3,
    num_attention_heads=4,
    attention_head_dim=16,
    cross_attention_dim=64,
    caption_channels=32,
    in_channels=16,
    out_channels=16,
    causal_temporal_positioning=True,
)
PLAIN = SpeedOptions(attention="sdpa", cache_text_kv=False, fused_kernels=False)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.double().flatten(), b.double().flatten(), dim=0).item()


def make_model(seed: int = 0) -> LTXVideoTransformer:
    torch.manual_seed(seed)
    model = LTXVideoTransformer(CONFIG).eval()
    with torch.no_grad():  # move norm weights and biases away from their init values
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def make_inputs(batch: int = 2, seed: int = 1) -> dict:
    gen = torch.Generator().manual_seed(seed)
    frames, height, width = 2, 3, 4
    mask = torch.ones(batch, 7)
    mask[0, 4:] = 0  # padded text tokens in the first sample
    return dict(
        tokens=torch.randn(batch, frames * height * width, CONFIG.in_channels, generator=gen),
        coords=video_coords(batch, frames, height, width, 25.0, True),
        text=torch.randn(batch, 7, CONFIG.caption_channels, generator=gen),
        text_mask=mask,
        timestep=torch.rand(batch, 1, generator=gen),
    )


@torch.no_grad()
def run(model, inputs, skip=None):
    return model(**inputs, skip=skip)


# ------------------------------------------------------------------------------------------------------- attention


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_every_attention_backend_equals_plain_sdpa(backend):
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 9, 16, generator=gen) for _ in range(3))
    bias = torch.zeros(2, 1, 1, 9)
    bias[0, ..., 5:] = -10000.0
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    with attention_backend(backend):
        got = attention(q, k, v, bias)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_attention_backend_is_restored_after_the_block():
    import videodit.model.blocks.attention as attention_module

    with pytest.raises(RuntimeError):
        with attention_backend("math"):
            assert attention_module._current == "math"
            raise RuntimeError("boom")
    assert attention_module._current == "sdpa"


def test_resolve_backend_auto_and_unknown_names():
    assert resolve_backend("auto", "cpu") == "sdpa"
    assert resolve_backend("cudnn", "cpu") == "cudnn"  # a preference: PyTorch falls back on the CPU
    with pytest.raises(ValueError, match="'flash3'.*valid"):
        resolve_backend("flash3")
    with pytest.raises(ValueError, match="SpeedOptions.attention"):
        SpeedOptions(attention="flash3")


# --------------------------------------------------------------------------------------------------- whole model


@pytest.mark.parametrize("attention_name", ["auto", "sdpa", "cudnn", "flash", "efficient", "math"])
def test_speed_options_on_cpu_equal_the_plain_path(attention_name):
    model, inputs = make_model(), make_inputs()
    expected = run(model, inputs)
    keys = list(model.state_dict())
    apply_speed_options(model, SpeedOptions(attention=attention_name))
    got = run(model, inputs)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert list(model.state_dict()) == keys


@pytest.mark.parametrize("mode", ["attention_values", "attention_skip", "transformer_block"])
def test_speed_options_keep_stg_skip_layers(mode):
    model, inputs = make_model(), make_inputs(batch=3)
    skip = SkipLayers(blocks=(1,), mode=mode, perturbed=torch.tensor([False, False, True]))
    expected = run(model, inputs, skip)
    apply_speed_options(model, SpeedOptions())
    torch.testing.assert_close(run(model, inputs, skip), expected, rtol=1e-5, atol=1e-5)


def test_plain_options_undo_the_fast_paths():
    model, inputs = make_model(), make_inputs()
    expected = run(model, inputs)
    apply_speed_options(model, SpeedOptions())
    apply_speed_options(model, PLAIN)
    assert model.text_kv_cache is None
    assert not any(block.ff.net[0].fused_gelu for block in model.transformer_blocks)
    assert len(model._forward_pre_hooks) == 1  # hooks of the first call were replaced, not stacked
    torch.testing.assert_close(run(model, inputs), expected, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------- text K/V cache


def count_caption_projections(model) -> list:
    calls = []
    model.caption_projection.register_forward_hook(lambda *args: calls.append(1))
    return calls


def test_text_kv_cache_reuses_the_projection_while_text_and_weights_stay():
    model, inputs = make_model(), make_inputs()
    expected = run(model, inputs)
    apply_speed_options(model, SpeedOptions(cache_text_kv=True))
    assert isinstance(model.text_kv_cache, TextKVCache)
    calls = count_caption_projections(model)
    first = run(model, inputs)
    # a new tensor with the same content (the sampler rebuilds the CFG text batch at every step): cache hit
    second = run(model, dict(inputs, text=inputs["text"].clone(), timestep=inputs["timestep"] * 0.5))
    assert len(calls) == 1
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    plain_second = make_model()
    torch.testing.assert_close(
        second, run(plain_second, dict(inputs, timestep=inputs["timestep"] * 0.5)), rtol=0, atol=0
    )


def test_text_kv_cache_recomputes_for_new_text_or_patched_weights():
    model, inputs = make_model(), make_inputs()
    apply_speed_options(model, SpeedOptions(cache_text_kv=True))
    calls = count_caption_projections(model)
    run(model, inputs)
    new_text = dict(inputs, text=inputs["text"] + 1.0)
    got = run(model, new_text)
    assert len(calls) == 2
    torch.testing.assert_close(got, run(make_model(), new_text), rtol=0, atol=0)

    with torch.no_grad():  # an in-place weight patch (as LoRA loaders do) must invalidate the cache
        model.transformer_blocks[1].attn2.to_v.weight.mul_(1.5)
    got = run(model, new_text)
    assert len(calls) == 3
    apply_speed_options(model, PLAIN)
    torch.testing.assert_close(got, run(model, new_text), rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------------------- FP8


def test_quantize_rows_round_trip_and_zero_rows():
    x = torch.randn(5, 64) * torch.tensor([1e-3, 1.0, 30.0, 1e3, 0.0])[:, None]
    x_fp8, scale = quantize_rows(x)
    assert x_fp8.dtype == FP8 and scale.shape == (5, 1)
    restored = x_fp8.float() * scale
    assert torch.isfinite(restored).all()
    assert (restored[4] == 0).all()
    # e4m3 keeps 3 mantissa bits: relative error <= 2^-4 per element (of the row's largest magnitude for tiny ones)
    assert ((restored - x).abs() <= x.abs() * 2**-4 + scale * 2**-6).all()


def test_fp8_linear_stores_float8_and_matches_the_dequantised_matmul():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32)
    fp8 = FP8Linear.from_linear(linear)
    assert fp8.weight.dtype == FP8 and fp8.weight_scale.shape == (32,)
    assert set(fp8.state_dict()) == {"weight", "bias"}  # same keys as nn.Linear; the scale is not persistent
    x = torch.randn(3, 5, 64)
    expected = F.linear(x, fp8.dequantized_weight(torch.float32), linear.bias)
    torch.testing.assert_close(fp8(x), expected, rtol=0, atol=0)  # the CPU path is this emulation
    assert cosine(fp8(x), linear(x)) > 0.998
    fp8.to(torch.bfloat16)  # a dtype cast of the model must not turn the float8 storage into bf16
    assert fp8.weight.dtype == FP8 and fp8.weight_scale.dtype == torch.float32


def test_convert_linears_skips_sizes_scaled_mm_cannot_take():
    module = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.Linear(48, 10))
    assert convert_linears_to_fp8(module) == 1
    assert isinstance(module[0], FP8Linear) and type(module[1]) is torch.nn.Linear


def test_fp8_option_without_fp8_gpu_warns_and_stays_close_to_bf16():
    if torch.cuda.is_available() and fp8_matmul_supported("cuda"):
        pytest.skip("this machine has FP8 matmuls: the fallback warning does not apply")
    model, inputs = make_model(), make_inputs()
    expected = run(model, inputs)
    keys = list(model.state_dict())
    with pytest.warns(UserWarning, match="FP8.*dequantised"):
        apply_speed_options(model, SpeedOptions(fp8=True))
    assert model.speed_state["fp8_layers"] == 10 * CONFIG.num_layers  # 4 + 4 attention, 2 feed-forward
    assert model.speed_state["fp8_matmuls"] is False
    assert list(model.state_dict()) == keys
    assert cosine(run(model, inputs), expected) > 0.995


def test_scaled_fp8_matmul_matches_the_emulation_on_gpu():
    if not (torch.cuda.is_available() and fp8_matmul_supported("cuda")):
        pytest.skip("needs a CUDA GPU with FP8 matmuls (compute capability >= 8.9); measured by benchmarks/bench.py")
    torch.manual_seed(0)
    fp8 = FP8Linear.from_linear(torch.nn.Linear(256, 128)).cuda().to(torch.bfloat16)
    x = torch.randn(64, 256, device="cuda", dtype=torch.bfloat16)
    emulated = F.linear(x.float(), fp8.dequantized_weight(torch.float32), fp8.bias.float())
    assert cosine(fp8(x), emulated) > 0.999


# ---------------------------------------------------------------------------------------------------------- compile


def test_compile_option_without_gpu_warns_and_runs_uncompiled():
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: compile is used there (measured by benchmarks/bench.py)")
    model, inputs = make_model(), make_inputs()
    expected = run(model, inputs)
    with pytest.warns(UserWarning, match="compile=True.*no CUDA GPU"):
        apply_speed_options(model, SpeedOptions(compile=True))
    assert model.speed_state["compiled"] is False
    torch.testing.assert_close(run(model, inputs), expected, rtol=1e-5, atol=1e-5)


def test_default_options_on_cpu_do_not_warn():
    model = make_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        apply_speed_options(model, SpeedOptions())


def test_text_kv_cache_clear_drops_the_tensors():
    model, inputs = make_model(), make_inputs()
    apply_speed_options(model, SpeedOptions(cache_text_kv=True))
    run(model, inputs)
    assert len(model.text_kv_cache.kv) == CONFIG.num_layers
    model.text_kv_cache.clear()
    assert model.text_kv_cache.kv == [] and model.text_kv_cache.text is None
    torch.testing.assert_close(run(model, inputs), run(make_model(), inputs), rtol=0, atol=0)


def test_text_kv_cache_notices_in_place_changes_of_the_same_text_tensor():
    model, inputs = make_model(), make_inputs()
    apply_speed_options(model, SpeedOptions(cache_text_kv=True))
    calls = count_caption_projections(model)
    text = inputs["text"].clone()
    run(model, dict(inputs, text=text))
    run(model, dict(inputs, text=text))  # same tensor, same version: reused
    assert len(calls) == 1
    text.add_(1.0)  # modified in place: recomputed
    got = run(model, dict(inputs, text=text))
    assert len(calls) == 2
    torch.testing.assert_close(got, run(make_model(), dict(inputs, text=text)), rtol=0, atol=0)


# -------------------------------------------------------------------------------------------------------------- VAE


def test_vae_speed_options_on_cpu_equal_the_plain_decode():
    from videodit.model.ltxv.vae import CausalVideoVAE, VAEConfig
    from videodit.model.speed import apply_vae_speed_options

    torch.manual_seed(0)
    config = VAEConfig.v0_9_5(decoder_base_channels=8, encoder_base_channels=8)  # small widths, 0.9.5 structure
    vae = CausalVideoVAE(config).eval()
    raw = torch.randn(1, config.latent_channels, 2, 2, 2)
    with torch.no_grad():
        expected = vae.decode(raw, timestep=0.05)
        context = (
            pytest.warns(UserWarning, match="VAE decoder uncompiled")
            if not torch.cuda.is_available()
            else warnings.catch_warnings()
        )
        with context:
            apply_vae_speed_options(vae, SpeedOptions(compile=True))
        torch.testing.assert_close(vae.decode(raw, timestep=0.05), expected, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------ GPU-only checks


def gpu_model_and_inputs(batch: int = 3):
    model = make_model().to("cuda", torch.bfloat16)
    inputs = {
        k: (v.to("cuda", torch.bfloat16) if k in ("tokens", "text") else v.to("cuda"))
        for k, v in make_inputs(batch).items()
    }
    return model, inputs


@pytest.mark.parametrize("fp8", [False, True])
def test_compiled_fast_path_matches_plain_on_gpu(fp8):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (compiled blocks); CPU fallback is tested above")
    if fp8 and not fp8_matmul_supported("cuda"):
        pytest.skip("needs a GPU with FP8 matmuls (compute capability >= 8.9)")
    torch._dynamo.reset()
    model, inputs = gpu_model_and_inputs()
    per_token = dict(inputs, timestep=torch.rand(3, inputs["tokens"].shape[1], device="cuda"))
    skip = SkipLayers(blocks=(1,), mode="attention_values", perturbed=torch.tensor([False, False, True]))
    expected = [run(model, inputs), run(model, per_token), run(model, inputs, skip)]
    apply_speed_options(model, SpeedOptions(compile=True, fp8=fp8))
    assert model.speed_state["compiled"] and model.speed_state["fp8_matmuls"] == fp8
    got = [run(model, inputs), run(model, per_token), run(model, inputs, skip)]
    for g, e in zip(got, expected):
        assert cosine(g.float(), e.float()) > (0.99 if fp8 else 0.999)
