"""LTX-2 text path: Gemma feature extractors, connectors and caption projections against ltx-core 1.0.0 and
diffusers 0.42.1; Gemma loading (single file, HF folder), tokenizer search, the prompt-length rules.

Tiny configs, fp32, random weights; the same weights go into ours and the reference.
"""

import pytest
import torch
from torch import nn
from videodit.model.ltx2 import text_connector as tc
from videodit.model.ltx2.text_features import FeatureConfig

TOL = 1e-5
TOKENS = 8  # a multiple of the registers below
REGISTERS = 4


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def _randomize(module: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)


def _layouts():
    """(name, our TextPathConfig) for the 2.0 layout (V1, caption projection after the connector) and the 2.3
    layout (V2 projections before gated connectors of different widths)."""
    v1_connector = tc.ConnectorConfig(heads=2, head_dim=8, layers=2, registers=REGISTERS)
    v20 = tc.TextPathConfig(FeatureConfig("v1", 16, 3, 24, 12), v1_connector, v1_connector, 24, 12)
    video = tc.ConnectorConfig(heads=4, head_dim=8, layers=2, registers=REGISTERS, gated_attention=True)
    audio = tc.ConnectorConfig(heads=4, head_dim=4, layers=2, registers=REGISTERS, gated_attention=True)
    v23 = tc.TextPathConfig(FeatureConfig("v2", 16, 3, 32, 16), video, audio)
    return [("2.0", v20), ("2.3", v23)]


def _hidden_states(seed: int, batch: int = 2, dim: int = 16, states: int = 3) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, TOKENS, dim, generator=gen) * (1 + i) for i in range(states))


def _left_padded_mask(lengths: list[int]) -> torch.Tensor:
    mask = torch.zeros(len(lengths), TOKENS, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, TOKENS - n :] = 1
    return mask


# ---------------------------------------------------------------------------------------------------------------
# References


def _core_processor(config: tc.TextPathConfig):
    """ltx-core 1.0.0 EmbeddingsProcessor (+ PixArt caption projections for V1) with the same config."""
    from ltx_core.model.transformer.attention import Attention, AttentionFunction
    from ltx_core.model.transformer.rope import LTXRopeType
    from ltx_core.model.transformer.text_projection import PixArtAlphaTextProjection
    from ltx_core.text_encoders.gemma.embeddings_connector import Embeddings1DConnector
    from ltx_core.text_encoders.gemma.embeddings_processor import EmbeddingsProcessor
    from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV1, FeatureExtractorV2

    f = config.features
    flat = f.gemma_dim * f.gemma_states
    if f.version == "v1":
        extractor = FeatureExtractorV1(nn.Linear(flat, f.gemma_dim, bias=False), is_av=True)
    else:
        extractor = FeatureExtractorV2(
            nn.Linear(flat, f.video_dim, bias=True), f.gemma_dim, nn.Linear(flat, f.audio_dim, bias=True)
        )

    def connector(c: tc.ConnectorConfig):
        return Embeddings1DConnector(
            attention_head_dim=c.head_dim,
            num_attention_heads=c.heads,
            num_layers=c.layers,
            positional_embedding_theta=c.rope_theta,
            positional_embedding_max_pos=[int(c.rope_max_pos)],
            num_learnable_registers=c.registers,
            rope_type=LTXRopeType.SPLIT,
            double_precision_rope=c.rope_double_precision,
            apply_gated_attention=c.gated_attention,
        )

    processor = EmbeddingsProcessor(
        feature_extractor=extractor, video_connector=connector(config.video), audio_connector=connector(config.audio)
    )
    processor.float()  # ltx-core creates the registers in bf16; fp32 here like every other weight
    for m in processor.modules():
        if isinstance(m, Attention):
            m.attention_function = AttentionFunction.PYTORCH
    captions = None
    if config.caption_video_dim:
        captions = (
            PixArtAlphaTextProjection(config.video.dim, config.caption_video_dim),
            PixArtAlphaTextProjection(config.audio.dim, config.caption_audio_dim),
        )
    return processor, captions


def _diffusers_connectors(config: tc.TextPathConfig):
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors

    f, v, a = config.features, config.video, config.audio
    return LTX2TextConnectors(
        caption_channels=f.gemma_dim,
        text_proj_in_factor=f.gemma_states,
        video_connector_num_attention_heads=v.heads,
        video_connector_attention_head_dim=v.head_dim,
        video_connector_num_layers=v.layers,
        video_connector_num_learnable_registers=v.registers,
        video_gated_attn=v.gated_attention,
        audio_connector_num_attention_heads=a.heads,
        audio_connector_attention_head_dim=a.head_dim,
        audio_connector_num_layers=a.layers,
        audio_connector_num_learnable_registers=a.registers,
        audio_gated_attn=a.gated_attention,
        connector_rope_base_seq_len=int(v.rope_max_pos),
        rope_theta=v.rope_theta,
        rope_double_precision=v.rope_double_precision,
        rope_type="split",
        per_modality_projections=f.version == "v2",
        video_hidden_dim=f.video_dim,
        audio_hidden_dim=f.audio_dim,
        proj_bias=f.version == "v2",
    ).eval()


def _ours(config: tc.TextPathConfig, seed: int = 0) -> tc.TextPath:
    ours = tc.TextPath(config).eval()
    _randomize(ours, seed)
    return ours


def _split_captions(state: dict) -> tuple[dict, dict, dict]:
    core = {k: v for k, v in state.items() if "caption_projection" not in k}
    video = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("caption_projection.")}
    audio = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("audio_caption_projection.")}
    return core, video, audio


# ---------------------------------------------------------------------------------------------------------------
# (b) feature extractor + connectors + projections


@pytest.mark.parametrize("name,config", _layouts(), ids=[n for n, _ in _layouts()])
def test_text_path_equals_ltx_core(name, config):
    """Batch 1 per prompt (ltx-core 1.0.0 gathers registers with one mask for the whole batch)."""
    ours = _ours(config)
    processor, captions = _core_processor(config)
    core_state, video_caption, audio_caption = _split_captions(ours.state_dict())
    processor.load_state_dict(core_state, strict=True)
    if captions:
        captions[0].load_state_dict(video_caption, strict=True)
        captions[1].load_state_dict(audio_caption, strict=True)
    states, mask = _hidden_states(1), _left_padded_mask([5, 8])
    with torch.no_grad():
        video, audio, out_mask = ours(states, mask)
        for row in range(2):
            ref = processor.process_hidden_states(tuple(s[row : row + 1] for s in states), mask[row : row + 1], "left")
            ref_video, ref_audio = ref.video_encoding, ref.audio_encoding
            if captions:
                ref_video, ref_audio = captions[0](ref_video), captions[1](ref_audio)
            dv, da = _max_diff(video[row : row + 1], ref_video), _max_diff(audio[row : row + 1], ref_audio)
            print(f"{name} ltx-core row {row}: video max abs {dv:.2e}, audio {da:.2e}")
            assert dv <= TOL and da <= TOL, f"{name} row {row}: video {dv:.2e}, audio {da:.2e} vs ltx-core"
            assert torch.equal(out_mask[row : row + 1], ref.attention_mask.to(out_mask.dtype))


@pytest.mark.parametrize("name,config", _layouts(), ids=[n for n, _ in _layouts()])
def test_text_path_equals_diffusers(name, config):
    """A padded batch of two prompts of different lengths through diffusers' LTX2TextConnectors."""
    from diffusers.models.embeddings import PixArtAlphaTextProjection

    ours = _ours(config, seed=3)
    reference = _diffusers_connectors(config)
    ref_state = reference.state_dict()
    our_state, video_caption, audio_caption = _split_captions(ours.state_dict())
    ours_of = {k: tc.diffusers_connector_key(k) for k in ref_state}
    differ = sorted(set(ours_of.values()) ^ set(our_state))
    assert not differ, f"key sets differ: {differ[:6]}"
    reference.load_state_dict({k: our_state[ours_of[k]] for k in ref_state}, strict=True)
    states, mask = _hidden_states(2), _left_padded_mask([3, 8])
    with torch.no_grad():
        video, audio, out_mask = ours(states, mask)
        ref_video, ref_audio, ref_mask = reference(torch.stack(states, dim=-1), mask, padding_side="left")
        if config.caption_video_dim:
            project_video = PixArtAlphaTextProjection(config.video.dim, config.caption_video_dim)
            project_audio = PixArtAlphaTextProjection(config.audio.dim, config.caption_audio_dim)
            project_video.load_state_dict(video_caption)
            project_audio.load_state_dict(audio_caption)
            ref_video, ref_audio = project_video(ref_video), project_audio(ref_audio)
    dv, da = _max_diff(video, ref_video), _max_diff(audio, ref_audio)
    print(f"{name} diffusers: video max abs {dv:.2e}, audio {da:.2e}")
    assert dv <= TOL and da <= TOL, f"{name}: video {dv:.2e}, audio {da:.2e} vs diffusers"
    assert torch.equal(out_mask, ref_mask.to(out_mask.dtype))


def test_padding_side_does_not_change_the_result():
    """Right-padded Gemma states of the same tokens give the left-padded result (registers go after the tokens)."""
    _, config = _layouts()[1]
    ours = _ours(config, seed=5)
    left_states, left_mask = _hidden_states(4, batch=1), _left_padded_mask([5])
    right_states = tuple(torch.roll(s, shifts=-3, dims=1) for s in left_states)
    right_mask = torch.roll(left_mask, shifts=-3, dims=1)
    with torch.no_grad():
        left, right = ours(left_states, left_mask), ours(right_states, right_mask)
    d = max(_max_diff(left[0], right[0]), _max_diff(left[1], right[1]))
    assert d <= TOL, f"left vs right padding: max abs {d:.2e}"
