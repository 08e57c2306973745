"""Our DiT (model/dit.py, model/rope.py) against the official ltx_video Transformer3DModel.

Parity: the same random fp32 state dict loaded (strict) into both models, outputs compared to <= 1e-5 max |diff|.
Run with `pytest -s tests/test_dit.py` to see the measured differences.
"""

import pytest
import torch
from videodit.model.ltxv.dit import LTXVideoTransformer, SkipLayers, TransformerConfig, ltxv_2b, ltxv_13b
from videodit.model.ltxv.positions import patchify, unpatchify, video_coords

transformer3d = pytest.importorskip("ltx_video.models.transformers.transformer3d")
from ltx_video.models.autoencoders.vae_encode import latent_to_pixel_coords_from_factors  # noqa: E402
from ltx_video.models.transformers.symmetric_patchifier import SymmetricPatchifier  # noqa: E402
from ltx_video.utils.diffusers_config_mapping import OURS_TRANSFORMER_CONFIG  # noqa: E402
from ltx_video.utils.skip_layer_strategy import SkipLayerStrategy  # noqa: E402

TOL = 1e-5
LATENT = (3, 4, 5)  # latent frames, height, width -> 60 tokens
IN_CHANNELS, CAPTION_CHANNELS, TEXT_LEN = 8, 24, 7
OFFICIAL_STRATEGY = {
    "attention_values": SkipLayerStrategy.AttentionValues,
    "attention_skip": SkipLayerStrategy.AttentionSkip,
    "transformer_block": SkipLayerStrategy.TransformerBlock,
}


def small_config(heads: int, head_dim: int) -> TransformerConfig:
    dim = heads * head_dim
    return TransformerConfig(
        num_layers=2,
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        cross_attention_dim=dim,
        caption_channels=CAPTION_CHANNELS,
        in_channels=IN_CHANNELS,
        out_channels=IN_CHANNELS,
        causal_temporal_positioning=True,
    )


def build_pair(config: TransformerConfig, seed: int = 0):
    """Official and our model with one shared random state dict (loaded strictly into both)."""
    torch.manual_seed(seed)
    official = transformer3d.Transformer3DModel.from_config(config.to_metadata()).eval()
    # Perturb every tensor so that norm weights (ones) and biases are not at their init values.
    state = {key: value + 0.1 * torch.randn_like(value) for key, value in official.state_dict().items()}
    official.load_state_dict(state, strict=True)
    ours = LTXVideoTransformer(config).eval()
    ours.load_state_dict(state, strict=True)
    official.load_state_dict(ours.state_dict(), strict=True)  # and back: same key set both ways
    return official, ours


def official_coords(batch: int, frame_rate: float, causal: bool) -> torch.Tensor:
    """Coordinates the way the official pipeline builds them (patchifier + latent_to_pixel + / frame_rate)."""
    latents = torch.zeros(batch, IN_CHANNELS, *LATENT)
    _, latent_coords = SymmetricPatchifier(patch_size=1).patchify(latents)
    pixel = latent_to_pixel_coords_from_factors(latent_coords, (8, 32, 32), causal_fix=causal)
    coords = pixel.to(torch.float32)
    coords[:, 0] = coords[:, 0] * (1.0 / frame_rate)
    return coords


def make_inputs(batch: int, generator_seed: int = 1):
    gen = torch.Generator().manual_seed(generator_seed)
    n = LATENT[0] * LATENT[1] * LATENT[2]
    tokens = torch.randn(batch, n, IN_CHANNELS, generator=gen)
    text = torch.randn(batch, TEXT_LEN, CAPTION_CHANNELS, generator=gen)
    mask = torch.ones(batch, TEXT_LEN)
    mask[1:, 4:] = 0  # samples after the first have 3 padded text tokens
    return tokens, text, mask


def run_official(official, tokens, coords, text, mask, timestep, skip_layer_mask=None, strategy=None):
    with torch.no_grad():
        return official(
            hidden_states=tokens,
            indices_grid=coords,
            encoder_hidden_states=text,
            timestep=timestep,
            encoder_attention_mask=mask,
            skip_layer_mask=skip_layer_mask,
            skip_layer_strategy=strategy,
            return_dict=False,
        )[0]


def run_ours(ours, tokens, coords, text, mask, timestep, skip=None):
    with torch.no_grad():
        return ours(tokens, coords, text, mask, timestep, skip=skip)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# heads x head_dim: D = 32 (D mod 6 = 2 identity channels), 48 (mod 6 = 0), 28 (mod 6 = 4)
HEAD_SHAPES = [(4, 8), (4, 12), (2, 14)]


@pytest.mark.parametrize("heads,head_dim", HEAD_SHAPES)
@pytest.mark.parametrize("per_token", [False, True])
def test_forward_matches_official(heads, head_dim, per_token):
    official, ours = build_pair(small_config(heads, head_dim))
    batch = 2
    tokens, text, mask = make_inputs(batch)
    n = tokens.shape[1]
    if per_token:
        timestep = torch.rand(batch, n, generator=torch.Generator().manual_seed(2))
        timestep[:, :20] = 0.0  # conditioning tokens
    else:
        timestep = torch.tensor([[0.93], [0.41]])
    for frame_rate in (8, 24, 30, 25.0):
        for causal in (False, True):
            coords = video_coords(batch, *LATENT, frame_rate=frame_rate, causal_fix=causal)
            ref_coords = official_coords(batch, frame_rate, causal)
            assert torch.equal(coords, ref_coords), f"coords differ (fps {frame_rate}, causal {causal})"
            ref = run_official(official, tokens, ref_coords, text, mask, timestep)
            out = run_ours(ours, tokens, coords, text, mask, timestep)
            diff = max_diff(out, ref)
            print(
                f"D={heads * head_dim} per_token={per_token} fps={frame_rate} causal={causal}: "
                f"max|diff|={diff:.3e} (output max |x| {ref.abs().max():.2f})"
            )
            assert diff <= TOL


@pytest.mark.parametrize("per_token", [False, True])
def test_bf16_matches_official(per_token):
    """Same precision map as the reference in bf16 (RoPE angles fp32, rotation and residual stream bf16)."""
    official, ours = build_pair(small_config(2, 14))
    official.to(torch.bfloat16)
    ours.to(torch.bfloat16)
    tokens, text, mask = make_inputs(2)
    tokens, text = tokens.bfloat16(), text.bfloat16()
    timestep = torch.rand(2, tokens.shape[1]) if per_token else torch.tensor([[0.93], [0.41]])
    coords = video_coords(2, *LATENT, frame_rate=25, causal_fix=True)
    ref = run_official(official, tokens, coords, text, mask, timestep).float()
    out = run_ours(ours, tokens, coords, text, mask, timestep).float()
    diff = max_diff(out, ref)
    ulp = 2.0 ** (torch.log2(ref.abs().max()).floor().item() - 7)  # bf16 spacing at the largest output
    print(f"bf16 per_token={per_token}: max|diff|={diff:.3e} (bf16 ulp at output max: {ulp:.3e})")
    assert diff <= 2 * ulp


def test_padding_mask_changes_output_and_single_coords_broadcast():
    """The masked text tokens are really excluded; (1, 3, N) coords equal (B, 3, N) coords."""
    _, ours = build_pair(small_config(4, 8))
    tokens, text, mask = make_inputs(2)
    timestep = torch.tensor([[0.5], [0.5]])
    coords = video_coords(2, *LATENT, frame_rate=25, causal_fix=True)
    out = run_ours(ours, tokens, coords, text, mask, timestep)
    assert torch.equal(out, run_ours(ours, tokens, coords[:1], text, mask, timestep))
    changed_padding = text.clone()
    changed_padding[1, 4:] = torch.randn(3, CAPTION_CHANNELS)
    out_changed = run_ours(ours, tokens, coords, changed_padding, mask, timestep)
    assert max_diff(out, out_changed) < 1e-4  # padded tokens carry weight ~exp(-10000): no influence
    assert max_diff(out, run_ours(ours, tokens, coords, text, torch.ones_like(mask), timestep)) > 1e-3


@pytest.mark.parametrize("mode", ["attention_values", "attention_skip", "transformer_block"])
def test_stg_matches_official(mode):
    official, ours = build_pair(small_config(4, 8), seed=3)
    tokens, text, mask = make_inputs(3)
    timestep = torch.tensor([[0.7], [0.7], [0.7]])
    coords = video_coords(3, *LATENT, frame_rate=25, causal_fix=True)
    skip_block = 1

    # B = 1 against the official mask path (its mask indexing is right for B = 1).
    official_mask = official.create_skip_layer_mask(1, 1, 0, [skip_block])
    ref = run_official(
        official, tokens[:1], coords[:1], text[:1], mask[:1], timestep[:1], official_mask, OFFICIAL_STRATEGY[mode]
    )
    skip = SkipLayers(blocks=(skip_block,), mode=mode, perturbed=torch.tensor([True]))
    out = run_ours(ours, tokens[:1], coords[:1], text[:1], mask[:1], timestep[:1], skip)
    diff = max_diff(out, ref)
    plain = run_ours(ours, tokens[:1], coords[:1], text[:1], mask[:1], timestep[:1])
    print(
        f"STG {mode} B=1: max|diff|={diff:.3e} (perturbation itself changes the output by {max_diff(out, plain):.3e})"
    )
    assert diff <= TOL
    assert max_diff(out, plain) > 1e-3

    # B = 3 with only the last sample perturbed: each sample equals its own B = 1 official run.
    perturbed = torch.tensor([False, True, False])
    skip = SkipLayers(blocks=(skip_block,), mode=mode, perturbed=perturbed)
    out = run_ours(ours, tokens, coords, text, mask, timestep, skip)
    for b in range(3):
        kwargs = dict(skip_layer_mask=official_mask, strategy=OFFICIAL_STRATEGY[mode]) if perturbed[b] else {}
        ref = run_official(
            official,
            tokens[b : b + 1],
            coords[b : b + 1],
            text[b : b + 1],
            mask[b : b + 1],
            timestep[b : b + 1],
            **kwargs,
        )
        diff = max_diff(out[b : b + 1], ref)
        print(f"STG {mode} B=3 sample {b} (perturbed={bool(perturbed[b])}): max|diff|={diff:.3e}")
        assert diff <= TOL


@pytest.mark.parametrize(
    "name,preset,overrides,params",
    [
        ("2b", ltxv_2b, {}, 1_923_385_472),
        ("13b", ltxv_13b, {"num_layers": 48, "attention_head_dim": 128, "cross_attention_dim": 4096}, 13_042_569_344),
    ],
)
def test_full_size_keys_and_shapes(name, preset, overrides, params):
    official_config = {**OURS_TRANSFORMER_CONFIG, **overrides}
    with torch.device("meta"):
        official = transformer3d.Transformer3DModel.from_config(official_config)
        ours = LTXVideoTransformer(preset())
    official_shapes = {key: tuple(value.shape) for key, value in official.state_dict().items()}
    our_shapes = {key: tuple(value.shape) for key, value in ours.state_dict().items()}
    assert our_shapes == official_shapes
    assert sum(value.numel() for value in ours.parameters()) == params
    from_metadata = TransformerConfig.from_metadata(official_config)
    assert from_metadata == preset(causal_temporal_positioning=False)  # the mapping config has no causal flag


def test_patchify_roundtrip_matches_official():
    latents = torch.randn(2, IN_CHANNELS, *LATENT)
    tokens = patchify(latents)
    ref_tokens, _ = SymmetricPatchifier(patch_size=1).patchify(latents)
    assert torch.equal(tokens, ref_tokens)
    assert torch.equal(unpatchify(tokens, *LATENT), latents)


@pytest.mark.parametrize("causal", [False, True])
def test_video_coords_frame_offset_matches_official_keyframe_coords(causal):
    """Keyframe tokens: the official pipeline adds the target pixel frame after latent_to_pixel (causal fix)."""
    latents = torch.zeros(1, IN_CHANNELS, 2, 3, 4)
    _, latent_coords = SymmetricPatchifier(patch_size=1).patchify(latents)
    pixel = latent_to_pixel_coords_from_factors(latent_coords, (8, 32, 32), causal_fix=causal)
    pixel[:, 0] += 40
    ref = pixel.to(torch.float32)
    ref[:, 0] = ref[:, 0] * (1.0 / 24)
    assert torch.equal(video_coords(1, 2, 3, 4, frame_rate=24, causal_fix=causal, frame_offset=40), ref)


def test_video_coords_causal_values():
    coords = video_coords(1, 4, 1, 2, frame_rate=1.0, causal_fix=True)
    assert coords[0, 0].tolist() == [0, 0, 1, 1, 9, 9, 17, 17]
    assert coords[0, 2].tolist() == [0, 32] * 4
    shifted = video_coords(1, 2, 1, 1, frame_rate=1.0, causal_fix=True, frame_offset=16)
    assert shifted[0, 0].tolist() == [16, 17]


def test_from_metadata_rejects_unsupported_values():
    base = dict(OURS_TRANSFORMER_CONFIG)
    for key, value in [
        ("positional_embedding_type", "absolute"),
        ("qk_norm", "layer_norm"),
        ("standardization_norm", "layer_norm"),
        ("adaptive_norm", "single_scale"),
    ]:
        with pytest.raises(ValueError, match=key):
            TransformerConfig.from_metadata({**base, key: value})
    without_qk_norm = {k: v for k, v in base.items() if k != "qk_norm"}
    with pytest.raises(ValueError, match="qk_norm.*absent"):
        TransformerConfig.from_metadata(without_qk_norm)
    with pytest.raises(ValueError, match="unsupported keys.*new_feature"):
        TransformerConfig.from_metadata({**base, "new_feature": 1})
    with pytest.raises(ValueError, match="cross_attention_dim"):
        TransformerConfig.from_metadata({**base, "cross_attention_dim": 4096})
    config = TransformerConfig.from_metadata({**base, "causal_temporal_positioning": True})
    assert TransformerConfig.from_metadata(config.to_metadata()) == config
    # one block-norm eps: a config without norm_eps builds what the released configs (norm_eps 1e-6) build
    without_eps = {k: v for k, v in base.items() if k != "norm_eps"}
    assert base["norm_eps"] == 1e-6
    assert TransformerConfig.from_metadata(without_eps) == TransformerConfig.from_metadata(base)
    assert TransformerConfig.from_metadata(without_eps).norm_eps == small_config(4, 8).norm_eps


def test_forward_rejects_bad_shapes():
    _, ours = build_pair(small_config(4, 8))
    tokens, text, mask = make_inputs(2)
    coords = video_coords(2, *LATENT, frame_rate=25, causal_fix=True)
    with pytest.raises(ValueError, match="timestep"):
        ours(tokens, coords, text, mask, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="blocks"):
        ours(
            tokens,
            coords,
            text,
            mask,
            torch.zeros(2, 1),
            SkipLayers(blocks=(2,), mode="attention_values", perturbed=torch.tensor([True, False])),
        )
    with pytest.raises(ValueError, match="mode"):
        SkipLayers(blocks=(0,), mode="residual", perturbed=torch.tensor([True]))
