"""Our LTX-2 audio+video transformer (model/ltx2/) against ltx-core 1.0.0 `LTXModel` (2.0 and 2.3 flags) and
diffusers 0.42.1 `LTX2VideoTransformer3DModel` (also the 2.5 flags: video FF without bias, keyframe embedding,
static prompt modulation), and the full-size key sets of the released models.

Parity: one random fp32 state dict loaded (strict) into ours and the reference; velocities compared to <= 1e-5
max |diff|. Positions are built with ltx-core's VideoLatentTools / AudioLatentTools. Run with `pytest -s` to see
the measured differences.
"""

from dataclasses import replace

import pytest
import torch
from videodit.model.ltx2 import config as cfgs
from videodit.model.ltx2.config import AVTransformerConfig
from videodit.model.ltx2.streams import NO_SKIP, Skip, Stream
from videodit.model.ltx2.transformer import LTX2Transformer, diffusers_key

core_model = pytest.importorskip("ltx_core.model.transformer.model")
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier  # noqa: E402
from ltx_core.guidance.perturbations import (  # noqa: E402
    BatchedPerturbationConfig,
    Perturbation,
    PerturbationConfig,
    PerturbationType,
)
from ltx_core.model.transformer.attention import AttentionFunction  # noqa: E402
from ltx_core.model.transformer.modality import Modality  # noqa: E402
from ltx_core.model.transformer.model_configurator import (  # noqa: E402
    LTXModelConfigurator,
    LTXVideoOnlyModelConfigurator,
)
from ltx_core.model.transformer.rope import LTXRopeType  # noqa: E402
from ltx_core.model.transformer.text_projection import PixArtAlphaTextProjection  # noqa: E402
from ltx_core.tools import AudioLatentTools, VideoLatentTools  # noqa: E402
from ltx_core.types import AudioLatentShape, VideoLatentShape  # noqa: E402

TOL = 1e-5
BATCH, TEXT_LEN = 2, 6
VIDEO_LATENT = (3, 2, 4)  # latent frames, height, width -> 24 tokens
AUDIO_FRAMES, AUDIO_MEL = 9, 2  # 9 audio tokens; channels * mel bins = audio_in_channels


# ---------------------------------------------------------------------------------------------------- helpers


def randomize(model: torch.nn.Module, seed: int = 0) -> dict:
    """Every parameter drawn from N(0, 0.15^2) (scale-shift tables included): a state dict both sides load."""
    gen = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=gen) * 0.15 for k, v in model.state_dict().items()}
    model.load_state_dict(state, strict=True)
    return state


def ours(config: AVTransformerConfig) -> tuple[LTX2Transformer, dict]:
    model = LTX2Transformer(config).eval()
    return model, randomize(model)


def core_reference(config: AVTransformerConfig, state: dict) -> torch.nn.Module:
    """ltx-core's LTXModel with every argument explicit (its defaults differ from the released metadata)."""
    c = config
    model_type = {
        (True, True): core_model.LTXModelType.AudioVideo,
        (True, False): core_model.LTXModelType.VideoOnly,
        (False, True): core_model.LTXModelType.AudioOnly,
    }[(c.video, c.audio)]
    captions = {}
    if c.caption_channels is not None:
        captions = dict(
            caption_projection=PixArtAlphaTextProjection(c.caption_channels, c.inner_dim) if c.video else None,
            audio_caption_projection=PixArtAlphaTextProjection(c.caption_channels, c.audio_inner_dim)
            if c.audio
            else None,
        )
    model = core_model.LTXModel(
        model_type=model_type,
        num_attention_heads=c.num_attention_heads,
        attention_head_dim=c.attention_head_dim,
        in_channels=c.in_channels,
        out_channels=c.out_channels,
        num_layers=c.num_layers,
        cross_attention_dim=c.cross_attention_dim,
        norm_eps=c.norm_eps,
        attention_type=AttentionFunction.PYTORCH,
        positional_embedding_theta=c.positional_embedding_theta,
        positional_embedding_max_pos=list(c.positional_embedding_max_pos),
        timestep_scale_multiplier=c.timestep_scale_multiplier,
        use_middle_indices_grid=True,
        audio_num_attention_heads=c.audio_num_attention_heads,
        audio_attention_head_dim=c.audio_attention_head_dim,
        audio_in_channels=c.audio_in_channels,
        audio_out_channels=c.audio_out_channels,
        audio_cross_attention_dim=c.audio_cross_attention_dim,
        audio_positional_embedding_max_pos=list(c.audio_positional_embedding_max_pos),
        av_ca_timestep_scale_multiplier=c.av_ca_timestep_scale_multiplier,
        rope_type=LTXRopeType(c.rope_type),
        double_precision_rope=c.rope_float64,
        apply_gated_attention=c.apply_gated_attention,
        cross_attention_adaln=c.cross_attention_adaln,
        **captions,
    ).eval()
    model.load_state_dict(state, strict=True)
    return model


def video_positions(fps: float) -> torch.Tensor:
    """(B, 3, T, 2) float32 bounds from ltx-core's VideoLatentTools (time in seconds, causal first frame)."""
    frames, height, width = VIDEO_LATENT
    tools = VideoLatentTools(VideoLatentPatchifier(1), VideoLatentShape(BATCH, 8, frames, height, width), fps)
    return tools.create_initial_state("cpu", torch.float32).positions


def audio_positions() -> torch.Tensor:
    """(B, 1, T, 2) float32 bounds in seconds from ltx-core's AudioPatchifier (16 kHz, hop 160, 4x downsample)."""
    tools = AudioLatentTools(AudioPatchifier(1), AudioLatentShape(BATCH, 3, AUDIO_FRAMES, AUDIO_MEL))
    return tools.create_initial_state("cpu", torch.float32).positions


def text(width: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random text features and a padded mask (sample 1 has 2 padding tokens)."""
    mask = torch.ones(BATCH, TEXT_LEN, dtype=torch.bool)
    mask[1, -2:] = False
    return torch.randn(BATCH, TEXT_LEN, width, generator=gen), mask


def make_streams(config: AVTransformerConfig, fps: float = 24.0, seed: int = 1, per_token: bool = True):
    """Video and audio streams with per-sample sigmas and per-token timesteps (clean first video frame, random
    clean audio tokens); None for a stream the config does not build."""
    c = config
    gen = torch.Generator().manual_seed(seed)
    video = audio = None
    if c.video:
        tokens = VIDEO_LATENT[0] * VIDEO_LATENT[1] * VIDEO_LATENT[2]
        sigma = torch.tensor([0.8, 0.35])
        mask = torch.ones(BATCH, tokens)
        if per_token:
            mask[:, : VIDEO_LATENT[1] * VIDEO_LATENT[2]] = 0.0  # first latent frame is conditioning
        context, context_mask = text(c.caption_channels or c.cross_attention_dim, gen)
        video = Stream(
            latent=torch.randn(BATCH, tokens, c.in_channels, generator=gen),
            sigma=sigma,
            timesteps=mask * sigma[:, None],
            positions=video_positions(fps),
            context=context,
            context_mask=context_mask,
        )
    if c.audio:
        sigma = torch.tensor([0.55, 0.9])
        mask = (torch.rand(BATCH, AUDIO_FRAMES, generator=gen) > 0.3).float() if per_token else torch.ones(BATCH, 9)
        context, context_mask = text(c.caption_channels or c.audio_cross_attention_dim, gen)
        audio = Stream(
            latent=torch.randn(BATCH, AUDIO_FRAMES, c.audio_in_channels, generator=gen),
            sigma=sigma,
            timesteps=mask * sigma[:, None],
            positions=audio_positions(),
            context=context,
            context_mask=context_mask,
        )
    return video, audio


def to_modality(stream: Stream | None) -> Modality | None:
    if stream is None:
        return None
    return Modality(
        latent=stream.latent,
        sigma=stream.sigma,
        timesteps=stream.timesteps,
        positions=stream.positions,
        context=stream.context,
        context_mask=None if stream.context_mask is None else stream.context_mask.long(),
        attention_mask=stream.attention_mask,
    )


def core_perturbations(skip: Skip) -> BatchedPerturbationConfig:
    kinds = (
        (PerturbationType.SKIP_VIDEO_SELF_ATTN, skip.video_self_attention),
        (PerturbationType.SKIP_AUDIO_SELF_ATTN, skip.audio_self_attention),
        (PerturbationType.SKIP_A2V_CROSS_ATTN, skip.audio_to_video),
        (PerturbationType.SKIP_V2A_CROSS_ATTN, skip.video_to_audio),
    )
    sample = PerturbationConfig([Perturbation(kind, sorted(blocks)) for kind, blocks in kinds if blocks])
    return BatchedPerturbationConfig([sample] * BATCH)


def max_diff(a: torch.Tensor | None, b: torch.Tensor | None) -> float:
    assert (a is None) == (b is None), "one side returned None"
    return 0.0 if a is None else (a - b).abs().max().item()


def compare_core(config: AVTransformerConfig, skip: Skip = NO_SKIP, label: str = "", **stream_kwargs):
    model, state = ours(config)
    reference = core_reference(config, state)
    video, audio = make_streams(config, **stream_kwargs)
    with torch.no_grad():
        ours_v, ours_a = model(video, audio, skip)
        ref_v, ref_a = reference(to_modality(video), to_modality(audio), core_perturbations(skip))
    dv, da = max_diff(ours_v, ref_v), max_diff(ours_a, ref_a)
    print(f"core {label}: video {dv:.2e}, audio {da:.2e}")
    assert dv <= TOL and da <= TOL, f"{label}: max |ours - ltx-core| video {dv:.3e}, audio {da:.3e} (tol {TOL})"
    return ours_v, ours_a


# ---------------------------------------------------------------------------------------------------- (a) ltx-core


@pytest.mark.parametrize("version", ["2.0", "2.3"])
@pytest.mark.parametrize("fps", [24.0, 25.0])
def test_equals_ltx_core(version, fps):
    compare_core(cfgs.tiny(version), label=f"{version} fps {fps}", fps=fps)


@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_equals_ltx_core_stg_and_isolation(version):
    config = cfgs.tiny(version)
    base_v, base_a = compare_core(config, label=f"{version} no skip")
    stg = Skip(video_self_attention=frozenset({1}), audio_self_attention=frozenset({0}))
    stg_v, stg_a = compare_core(config, stg, label=f"{version} STG")
    iso_v, iso_a = compare_core(config, Skip.isolate_modalities(config.num_layers), label=f"{version} isolated")
    # the skips change the result (they are not no-ops that the reference happens to share)
    assert (stg_v - base_v).abs().max() > 1e-3 and (stg_a - base_a).abs().max() > 1e-3
    assert (iso_v - base_v).abs().max() > 1e-3 and (iso_a - base_a).abs().max() > 1e-3


def test_equals_ltx_core_one_direction_skipped():
    compare_core(cfgs.tiny("2.3"), Skip(audio_to_video=frozenset({0})), label="A2V off in block 0")


@pytest.mark.parametrize("version", ["2.0", "2.3"])
@pytest.mark.parametrize("streams", [(True, False), (False, True)])
def test_equals_ltx_core_single_stream_config(version, streams):
    video, audio = streams
    config = cfgs.tiny(version, video=video, audio=audio)
    compare_core(config, label=f"{version} {'video' if video else 'audio'}-only model")


def test_equals_ltx_core_av_model_one_stream_given():
    """The audio+video model called with one stream (the other None): no A<->V attention runs."""
    config = cfgs.tiny("2.3")
    model, state = ours(config)
    reference = core_reference(config, state)
    video, audio = make_streams(config)
    with torch.no_grad():
        for v, a, name in ((video, None, "video"), (None, audio, "audio")):
            ours_out = model(v, a)
            ref_out = reference(to_modality(v), to_modality(a), BatchedPerturbationConfig.empty(BATCH))
            diffs = [max_diff(o, r) for o, r in zip(ours_out, ref_out, strict=True)]
            print(f"core AV model, {name} only: {diffs}")
            assert max(diffs) <= TOL, f"AV model with only {name}: max |ours - ltx-core| {max(diffs):.3e}"


def test_equals_ltx_core_self_attention_mask_and_interleaved_rope():
    """Soft self-attention weights (log bias, both streams) and the interleaved RoPE layout."""
    config = cfgs.tiny("2.3", rope_type="interleaved", rope_float64=False)
    model, state = ours(config)
    reference = core_reference(config, state)
    video, audio = make_streams(config)
    gen = torch.Generator().manual_seed(5)
    weights = {}
    for name, stream in (("video", video), ("audio", audio)):
        t = stream.latent.shape[1]
        w = torch.rand(BATCH, t, t, generator=gen)
        w[w < 0.2] = 0.0  # fully masked pairs
        w[:, torch.arange(t), torch.arange(t)] = 1.0
        weights[name] = w
    video = replace(video, attention_mask=weights["video"])
    audio = replace(audio, attention_mask=weights["audio"])
    with torch.no_grad():
        ours_out = model(video, audio)
        ref_out = reference(to_modality(video), to_modality(audio), BatchedPerturbationConfig.empty(BATCH))
    diffs = [max_diff(o, r) for o, r in zip(ours_out, ref_out, strict=True)]
    print(f"core attention mask + interleaved: {diffs}")
    assert max(diffs) <= TOL, f"attention mask / interleaved RoPE: max |ours - ltx-core| {diffs} (tol {TOL})"


# ---------------------------------------------------------------------------------------------------- (a) diffusers


def diffusers_reference(config: AVTransformerConfig, state: dict) -> torch.nn.Module:
    """diffusers' LTX2VideoTransformer3DModel with every argument explicit, loaded through our rename table."""
    module = pytest.importorskip("diffusers.models.transformers.transformer_ltx2")
    c = config
    model = module.LTX2VideoTransformer3DModel(
        in_channels=c.in_channels,
        out_channels=c.out_channels,
        num_attention_heads=c.num_attention_heads,
        attention_head_dim=c.attention_head_dim,
        cross_attention_dim=c.cross_attention_dim,
        pos_embed_max_pos=c.positional_embedding_max_pos[0],
        base_height=c.positional_embedding_max_pos[1],
        base_width=c.positional_embedding_max_pos[2],
        gated_attn=c.apply_gated_attention,
        cross_attn_mod=c.cross_attention_adaln,
        audio_in_channels=c.audio_in_channels,
        audio_out_channels=c.audio_out_channels,
        audio_num_attention_heads=c.audio_num_attention_heads,
        audio_attention_head_dim=c.audio_attention_head_dim,
        audio_cross_attention_dim=c.audio_cross_attention_dim,
        audio_pos_embed_max_pos=c.audio_positional_embedding_max_pos[0],
        audio_gated_attn=c.apply_gated_attention,
        audio_cross_attn_mod=c.cross_attention_adaln,
        num_layers=c.num_layers,
        norm_eps=c.norm_eps,
        caption_channels=c.caption_channels or 1,
        rope_theta=c.positional_embedding_theta,
        rope_double_precision=c.rope_float64,
        timestep_scale_multiplier=c.timestep_scale_multiplier,
        cross_attn_timestep_scale_multiplier=c.av_ca_timestep_scale_multiplier,
        rope_type=c.rope_type,
        use_prompt_embeddings=c.caption_channels is not None,
        perturbed_attn=True,
        ff_bias=c.ff_bias,
        audio_ff_bias=c.audio_ff_bias,
        use_prompt_adaln_single=c.use_prompt_adaln_single,
        use_keyframes_abs_pos_embedding=c.use_keyframes_abs_pos_embedding,
    ).eval()
    model.load_state_dict({diffusers_key(k): v for k, v in state.items()}, strict=True)
    return model


def diffusers_forward(model, video: Stream, audio: Stream, stg_blocks: list[int], isolate: bool):
    """diffusers takes timesteps and sigmas already scaled by 1000 and float text masks; STG acts on both streams'
    self-attention in `stg_blocks`."""
    keyframes = None if video.keyframe_mask is None else video.keyframe_mask[..., None].float()
    return model(
        hidden_states=video.latent,
        audio_hidden_states=audio.latent,
        encoder_hidden_states=video.context,
        audio_encoder_hidden_states=audio.context,
        timestep=video.timesteps * 1000,
        audio_timestep=audio.timesteps * 1000,
        sigma=video.sigma * 1000,
        audio_sigma=audio.sigma * 1000,
        encoder_attention_mask=video.context_mask.float(),
        audio_encoder_attention_mask=audio.context_mask.float(),
        video_coords=video.positions,
        audio_coords=audio.positions,
        isolate_modalities=isolate,
        spatio_temporal_guidance_blocks=stg_blocks,
        use_cross_timestep=True,
        video_keyframes_mask=keyframes,
        return_dict=False,
    )


def keyframe_mask() -> torch.Tensor:
    """Sample 0: the first latent frame's tokens; sample 1: the last frame's."""
    frame = VIDEO_LATENT[1] * VIDEO_LATENT[2]
    mask = torch.zeros(BATCH, VIDEO_LATENT[0] * frame, dtype=torch.bool)
    mask[0, :frame] = True
    mask[1, -frame:] = True
    return mask


DIFFUSERS_CASES = {
    "2.0": cfgs.tiny("2.0"),
    "2.3": cfgs.tiny("2.3"),
    "2.5": cfgs.tiny("2.5"),
    "2.5 static prompt modulation": cfgs.tiny("2.5", use_prompt_adaln_single=False),
}


@pytest.mark.parametrize("case", list(DIFFUSERS_CASES))
def test_equals_diffusers(case):
    config = DIFFUSERS_CASES[case]
    model, state = ours(config)
    reference = diffusers_reference(config, state)
    results = {}
    stg = Skip(video_self_attention=frozenset({1}), audio_self_attention=frozenset({1}))
    for fps, label, skip, stg_blocks, isolate in (
        (24.0, "plain", NO_SKIP, [], False),
        (30.0, "plain", NO_SKIP, [], False),
        (24.0, "STG block 1", stg, [1], False),
        (24.0, "isolated", Skip.isolate_modalities(config.num_layers), [], True),
    ):
        video, audio = make_streams(config, fps=fps)
        if config.use_keyframes_abs_pos_embedding:
            video = replace(video, keyframe_mask=keyframe_mask())
        with torch.no_grad():
            ours_v, ours_a = model(video, audio, skip)
            ref_v, ref_a = diffusers_forward(reference, video, audio, stg_blocks, isolate)
        results[f"fps {fps} {label}"] = (max_diff(ours_v, ref_v), max_diff(ours_a, ref_a))
    print(f"diffusers {case}: " + ", ".join(f"{k}: {v[0]:.1e}/{v[1]:.1e}" for k, v in results.items()))
    worst = max(max(v) for v in results.values())
    assert worst <= TOL, f"{case}: max |ours - diffusers| (video/audio) {results} (tol {TOL})"


def test_keyframe_embedding_is_applied():
    """The 2.5 keyframe embedding is a real input: with it the output differs from the unmarked call."""
    config = cfgs.tiny("2.5")
    model, _ = ours(config)
    video, audio = make_streams(config)
    with torch.no_grad():
        plain, _ = model(video, audio)
        marked, _ = model(replace(video, keyframe_mask=keyframe_mask()), audio)
    assert (plain - marked).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------------- (f) key sets


def shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def key_difference(ours_shapes: dict, reference_shapes: dict) -> str:
    only_ours = sorted(set(ours_shapes) - set(reference_shapes))[:5]
    only_ref = sorted(set(reference_shapes) - set(ours_shapes))[:5]
    shape = [(k, ours_shapes[k], reference_shapes[k]) for k in ours_shapes.keys() & reference_shapes.keys()]
    shape = [s for s in shape if s[1] != s[2]][:5]
    return f"only ours {only_ours}, only reference {only_ref}, shape differs {shape}"


@pytest.mark.parametrize("preset", ["2.0-19b", "2.3-22b"])
def test_full_size_keys_equal_ltx_core(preset):
    """The official configurator fed with our to_metadata() builds the same keys and shapes as ours."""
    config = cfgs.PRESETS[preset]()
    metadata = config.to_metadata()
    assert AVTransformerConfig.from_metadata(metadata) == config
    with torch.device("meta"):
        reference = LTXModelConfigurator.from_config({"transformer": metadata})
        model = LTX2Transformer(config)
    ours_shapes, ref_shapes = shapes(model), shapes(reference)
    count = sum(v.numel() for v in model.parameters())
    print(f"{preset}: {len(ours_shapes)} keys, {count / 1e9:.2f} B parameters")
    assert ours_shapes == ref_shapes, key_difference(ours_shapes, ref_shapes)


def test_full_size_keys_equal_diffusers_2_5():
    """LTX-2.5 flags at full size: ours, renamed with diffusers_key, against diffusers' model."""
    module = pytest.importorskip("diffusers.models.transformers.transformer_ltx2")
    c = cfgs.ltx2_5_22b()
    with torch.device("meta"):
        model = LTX2Transformer(c)
        reference = module.LTX2VideoTransformer3DModel(
            gated_attn=True,
            cross_attn_mod=True,
            audio_gated_attn=True,
            audio_cross_attn_mod=True,
            num_layers=c.num_layers,
            rope_type="split",
            use_prompt_embeddings=False,
            ff_bias=False,
            audio_ff_bias=True,
            use_keyframes_abs_pos_embedding=True,
        )
    ours_shapes = {diffusers_key(k): v for k, v in shapes(model).items()}
    ref_shapes = shapes(reference)
    print(f"2.5-22b vs diffusers: {len(ours_shapes)} keys")
    assert ours_shapes == ref_shapes, key_difference(ours_shapes, ref_shapes)


def test_full_size_video_only_keys_equal_ltx_core():
    """A video-only 2.3 model (official LTXVideoOnlyModelConfigurator) has exactly our video-only keys."""
    config = replace(cfgs.ltx2_3_22b(), audio=False)
    with torch.device("meta"):
        reference = LTXVideoOnlyModelConfigurator.from_config({"transformer": config.to_metadata()})
        model = LTX2Transformer(config)
    assert shapes(model) == shapes(reference), key_difference(shapes(model), shapes(reference))


# ---------------------------------------------------------------------------------------------------- config


def test_presets_round_trip_and_flags():
    for name, preset in cfgs.PRESETS.items():
        config = preset()
        assert AVTransformerConfig.from_metadata(config.to_metadata()) == config, name
    v20, v23, v25 = cfgs.ltx2_0_19b(), cfgs.ltx2_3_22b(), cfgs.ltx2_5_22b()
    assert (v20.caption_channels, v20.apply_gated_attention, v20.cross_attention_adaln) == (3840, False, False)
    assert (v23.caption_channels, v23.apply_gated_attention, v23.cross_attention_adaln) == (None, True, True)
    assert (v25.ff_bias, v25.audio_ff_bias, v25.use_keyframes_abs_pos_embedding) == (False, True, True)


def test_from_metadata_reads_official_keys_and_defaults():
    """Absent keys take ltx-core's loader defaults (interleaved RoPE, float32 grid, A/V gate multiplier 1);
    text-side keys are ignored."""
    config = AVTransformerConfig.from_metadata(
        {"num_layers": 2, "caption_channels": 3840, "connector_num_layers": 8, "text_encoder_norm_type": "x"}
    )
    assert (config.rope_type, config.rope_float64, config.av_ca_timestep_scale_multiplier) == ("interleaved", False, 1)
    assert config.caption_channels == 3840 and config.num_layers == 2
    v23 = AVTransformerConfig.from_metadata(
        {
            "num_layers": 48,
            "caption_proj_before_connector": True,
            "caption_channels": None,
            "rope_type": "split",
            "frequencies_precision": "float64",
            "apply_gated_attention": True,
            "cross_attention_adaln": True,
            "av_ca_timestep_scale_multiplier": 1000.0,
        }
    )
    assert v23 == cfgs.ltx2_3_22b()


@pytest.mark.parametrize(
    "metadata, message",
    [
        ({"qk_norm": "layer_norm", "caption_channels": 8}, "qk_norm must be 'rms_norm'"),
        ({"num_layers": 2}, "caption_channels is missing"),
        ({"caption_channels": 8, "frequencies_precision": "bf16"}, "frequencies_precision"),
        ({"caption_channels": 8, "rope_type": "rotary"}, "rope_type must be one of"),
    ],
)
def test_from_metadata_errors_name_the_key(metadata, message):
    with pytest.raises(ValueError, match=message):
        AVTransformerConfig.from_metadata(metadata)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(num_layers=0), "num_layers must be an integer >= 1"),
        (dict(video=False, audio=False), "build at least one stream"),
        (dict(audio_num_attention_heads=4, audio_attention_head_dim=4), "must equal num_attention_heads"),
        (dict(audio_cross_attention_dim=32), "audio_cross_attention_dim must equal"),
        (dict(positional_embedding_max_pos=(20, 2048)), "video positional max_pos must be 3"),
        (dict(attention_head_dim=15), "must be even"),
    ],
)
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        cfgs.tiny("2.3", **overrides)


def test_forward_input_errors():
    config = cfgs.tiny("2.3", audio=False)
    model = LTX2Transformer(config)
    video, _ = make_streams(cfgs.tiny("2.3"))
    _, audio = make_streams(cfgs.tiny("2.3"))
    with pytest.raises(ValueError, match="builds no audio stream"):
        model(video, audio)
    with pytest.raises(ValueError, match="both None"):
        model(None, None)
    with pytest.raises(ValueError, match="outside 0..1"):
        model(video, None, Skip(video_self_attention=frozenset({2})))
    with pytest.raises(ValueError, match="channels"):
        model(replace(video, latent=video.latent[..., :4]), None)
