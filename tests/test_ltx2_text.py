"""LTX-2 text path: Gemma feature extractors, connectors and caption projections against ltx-core 1.0.0 and
diffusers 0.42.1; Gemma loading (single file, HF folder), tokenizer search, the prompt-length rules.

Tiny configs, fp32, random weights; the same weights go into ours and the reference.
"""

import json

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


# ---------------------------------------------------------------------------------------------------------------
# Tiny Gemma 3 / Gemma 4 and tokenizer

WORDS = "a cat dog runs jumps over the red blue ball in park slowly fast green".split()


def _tokenizer(add_bos: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if add_bos:
        backend.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def _gemma3(seed: int = 0, layers: int = 6):
    """Tiny Gemma3ForConditionalGeneration with the LTX Gemma 3 constants (what a file without config implies)."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration
    from videodit.model.ltx2 import gemma as g

    text = dict(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        query_pre_attn_scalar=8,
        layer_types=["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(layers)],
        **g.GEMMA3_LTX_DEFAULTS,
    )
    vision = dict(hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=28)
    config = Gemma3Config(text_config=text, vision_config=dict(vision, patch_size=14), mm_tokens_per_image=4)
    model = Gemma3ForConditionalGeneration(config).eval()
    _randomize(model, seed)
    return model


def _gemma4(seed: int = 0):
    from transformers import Gemma4UnifiedConfig, Gemma4UnifiedForConditionalGeneration

    text = dict(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        global_head_dim=16,
        attention_k_eq_v=True,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
    )
    model = Gemma4UnifiedForConditionalGeneration(Gemma4UnifiedConfig(text_config=text)).eval()
    _randomize(model, seed)
    return model


def _comfy_file(path, model, extra=None, metadata=None):
    """The ComfyUI text_encoders layout: language model flat under model.*, vision keys beside it."""
    from safetensors.torch import save_file

    tensors = {}
    for key, value in model.state_dict().items():
        if key.startswith("model.language_model."):
            tensors["model." + key[len("model.language_model.") :]] = value
        elif key.startswith("model.vision_tower."):
            tensors["vision_model." + key[len("model.vision_tower.") :]] = value
        elif key.startswith("model.multi_modal_projector."):
            tensors[key[len("model.") :]] = value
    tensors.update(extra or {})
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)


def _text_path_for(model, version: str, seed: int = 7) -> tc.TextPath:
    text = model.config.text_config
    states = text.num_hidden_layers + 1
    if version == "2.0":
        connector = tc.ConnectorConfig(heads=2, head_dim=8, layers=1, registers=REGISTERS)
        config = tc.TextPathConfig(FeatureConfig("v1", text.hidden_size, states, 24, 12), connector, connector, 24, 12)
    else:
        video = tc.ConnectorConfig(heads=2, head_dim=8, layers=1, registers=REGISTERS, gated_attention=True)
        audio = tc.ConnectorConfig(heads=2, head_dim=4, layers=1, registers=REGISTERS, gated_attention=True)
        config = tc.TextPathConfig(FeatureConfig("v2", text.hidden_size, states, 16, 8), video, audio)
    return _ours(config, seed)


def _encoder(gemma, text_path, version="2.3"):
    from videodit.model.ltx2.text_encoder import LTX2TextEncoder, prompt_rule

    return LTX2TextEncoder(gemma, text_path, prompt_rule(version, max_tokens=TOKENS))


PROMPTS = ["a red ball jumps", "  the green dog runs over a blue cat in the park slowly  "]


def _diffusers_gemma_embeds(model, tokenizer, prompts):
    """diffusers' LTX2Pipeline._get_gemma_prompt_embeds on our tiny Gemma (stacked states, flattened, + mask)."""
    from types import SimpleNamespace

    from diffusers.pipelines.ltx2.pipeline_ltx2 import LTX2Pipeline

    pipe = SimpleNamespace(tokenizer=tokenizer, text_encoder=model)
    with torch.no_grad():
        return LTX2Pipeline._get_gemma_prompt_embeds(
            pipe, prompts, max_sequence_length=TOKENS, device=torch.device("cpu"), dtype=torch.float32
        )


def _diffusers_text(model, tokenizer, text_path, prompts):
    embeds, mask = _diffusers_gemma_embeds(model, tokenizer, prompts)
    connectors = _diffusers_connectors(text_path.config)
    our_state, video_caption, audio_caption = _split_captions(text_path.state_dict())
    connectors.load_state_dict({k: our_state[tc.diffusers_connector_key(k)] for k in connectors.state_dict()})
    with torch.no_grad():
        video, audio, _ = connectors(embeds, mask, padding_side="left")
    return video, audio


@pytest.fixture
def gemma3_files(tmp_path):
    """A tiny Gemma 3 as an HF folder (save_pretrained) and as a ComfyUI-style single file + tokenizer beside it."""
    model, tokenizer = _gemma3(), _tokenizer(add_bos=True)
    folder = tmp_path / "gemma-3-tiny"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    file = tmp_path / "text_encoders" / "gemma_3_tiny.safetensors"
    file.parent.mkdir()
    _comfy_file(file, model)
    tokenizer.save_pretrained(str(file) + ".tokenizer")
    return model, tokenizer, str(folder), str(file)


def test_gemma3_text_path_equals_references(gemma3_files):
    """Whole text path (tokenizer, Gemma 3 from the ComfyUI file, features, connectors) against diffusers'
    pipeline encoding and ltx-core's GemmaTextEncoder + EmbeddingsProcessor on the same weights."""
    from ltx_core.text_encoders.gemma.encoders.base_encoder import GemmaTextEncoder
    from ltx_core.text_encoders.gemma.tokenizer import LTXVGemmaTokenizer
    from videodit.model.ltx2.gemma import load_gemma

    model, tokenizer, folder, file = gemma3_files
    gemma = load_gemma(file, dtype=torch.float32)
    assert gemma.family == "gemma3" and gemma.storage == "f32"
    for version in ("2.0", "2.3"):
        text_path = _text_path_for(model, version)
        ours = _encoder(gemma, text_path, version).encode_prompts(PROMPTS)
        ref_video, ref_audio = _diffusers_text(model, tokenizer, text_path, PROMPTS)
        if version == "2.0":  # diffusers keeps the 2.0 caption projections in the transformer
            ref_video = text_path.caption_projection(ref_video)
            ref_audio = text_path.audio_caption_projection(ref_audio)
        dv, da = _max_diff(ours.video, ref_video), _max_diff(ours.audio, ref_audio)
        print(f"Gemma 3 whole path {version} vs diffusers: video {dv:.2e}, audio {da:.2e}")
        assert dv <= TOL and da <= TOL, f"{version}: video {dv:.2e}, audio {da:.2e} vs diffusers"
        assert ours.mask.shape == (2, TOKENS) and bool(ours.mask.all())

        processor, captions = _core_processor(text_path.config)
        core_state, video_caption, audio_caption = _split_captions(text_path.state_dict())
        processor.load_state_dict(core_state)
        core_encoder = GemmaTextEncoder(model=model, tokenizer=LTXVGemmaTokenizer(folder, TOKENS))
        with torch.no_grad():
            for row, prompt in enumerate(PROMPTS):
                states, mask = core_encoder.encode(prompt)
                ref = processor.process_hidden_states(states, mask, "left")
                ref_video, ref_audio = ref.video_encoding, ref.audio_encoding
                if version == "2.0":
                    ref_video = text_path.caption_projection(ref_video)
                    ref_audio = text_path.audio_caption_projection(ref_audio)
                dv = _max_diff(ours.video[row : row + 1], ref_video)
                da = _max_diff(ours.audio[row : row + 1], ref_audio)
                print(f"Gemma 3 whole path {version} vs ltx-core, prompt {row}: video {dv:.2e}, audio {da:.2e}")
                assert dv <= TOL and da <= TOL, f"{version} prompt {row}: {dv:.2e}, {da:.2e} vs ltx-core"


def test_gemma3_file_and_folder_give_the_same_features(gemma3_files):
    from videodit.model.ltx2.gemma import load_gemma

    model, _, folder, file = gemma3_files
    text_path = _text_path_for(model, "2.3")
    from_file = _encoder(load_gemma(file, dtype=torch.float32), text_path).encode_prompts(PROMPTS)
    from_folder = _encoder(load_gemma(folder, dtype=torch.float32), text_path).encode_prompts(PROMPTS)
    d = max(_max_diff(from_file.video, from_folder.video), _max_diff(from_file.audio, from_folder.audio))
    assert d <= 1e-6, f"single file vs HF folder: max abs {d:.2e}"


def test_streamed_gemma_equals_resident(gemma3_files):
    """Gemma run block by block (model/streaming.py, 2 blocks resident) gives the resident hidden states."""
    from videodit.model.ltx2.gemma import load_gemma
    from videodit.model.ltx2.text_encoder import prompt_rule, tokenize

    _, _, folder, _ = gemma3_files
    gemma = load_gemma(folder, dtype=torch.float32)
    ids, mask = tokenize(gemma.tokenizer, PROMPTS, prompt_rule("2.3", TOKENS))
    resident = gemma.hidden_states(ids, mask)
    streamed = gemma.hidden_states(ids, mask, resident=2)
    d = max(_max_diff(a, b) for a, b in zip(resident, streamed))
    assert len(streamed) == gemma.num_states and d <= 1e-6, f"streamed vs resident: max abs {d:.2e}"
    assert all(p.device.type == "cpu" for p in gemma.model.parameters())


def _bytes_tensor(data: bytes) -> torch.Tensor:
    return torch.tensor(list(data), dtype=torch.uint8)


def test_gemma4_packed_file_and_folder_equal_diffusers(tmp_path):
    """A tiny LTX-2.5-style packed Gemma 4 file (gemma_config metadata, tokenizer_json, the feature projection
    text_embedding_projection.*) and the same model as an HF folder; the 2.5 path equals diffusers'."""
    from videodit.model.ltx2.gemma import load_gemma
    from videodit.model.ltx2.text_encoder import load_text_path

    model, tokenizer = _gemma4(seed=1), _tokenizer(add_bos=True)
    text_path = _text_path_for(model, "2.5")
    projection = {
        "text_embedding_projection." + k[len("feature_extractor.") :]: v
        for k, v in text_path.state_dict().items()
        if k.startswith("feature_extractor.")
    }
    folder = tmp_path / "gemma-4-tiny"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    tokenizer_config = (folder / "tokenizer_config.json").read_bytes()
    packed = tmp_path / "gemma4-tiny-with-proj.safetensors"
    extra = {
        **projection,
        "tokenizer_json": _bytes_tensor(tokenizer.backend_tokenizer.to_str().encode()),
        "hf_asset__tokenizer_config.json": _bytes_tensor(tokenizer_config),
    }
    _comfy_file(packed, model, extra, metadata={"gemma_config": json.dumps(model.config.to_dict())})

    gemma_file, gemma_folder = load_gemma(packed, dtype=torch.float32), load_gemma(folder, dtype=torch.float32)
    assert gemma_file.family == "gemma4_unified" and set(gemma_file.projection) == {
        k[len("text_embedding_projection.") :] for k in projection
    }
    # connectors from an "LTX-2.5 transformer file", feature projection from the Gemma file
    from safetensors.torch import save_file
    from videodit.model.checkpoint import SafetensorsFile

    dit = tmp_path / "ltx-2.5-tiny-transformer.safetensors"
    save_file({tc.official_key(k): v for k, v in text_path.state_dict().items() if "connector" in k}, str(dit))
    loaded = load_text_path(text_path.config, [SafetensorsFile(str(dit))], torch.float32, gemma_file.projection)

    ours = _encoder(gemma_file, loaded, "2.5").encode_prompts(PROMPTS)
    other = _encoder(gemma_folder, text_path, "2.5").encode_prompts(PROMPTS)
    ref_video, ref_audio = _diffusers_text(model, tokenizer, text_path, PROMPTS)
    dv, da = _max_diff(ours.video, ref_video), _max_diff(ours.audio, ref_audio)
    print(f"Gemma 4 whole path 2.5 vs diffusers: video {dv:.2e}, audio {da:.2e}")
    assert dv <= TOL and da <= TOL, f"Gemma 4: video {dv:.2e}, audio {da:.2e} vs diffusers"
    d = max(_max_diff(ours.video, other.video), _max_diff(ours.audio, other.audio))
    assert d <= 1e-6, f"packed file vs HF folder: max abs {d:.2e}"


def test_ltx25_prompt_rule_prepends_bos():
    """Gemma 4's tokenizer adds no BOS: the 2.5 rule (LTX-2 HEAD) prepends it; the 2.3 rule (ltx-core 1.0.0)
    does not. Both pad on the left to max_tokens and truncate there."""
    from videodit.model.ltx2.text_encoder import prompt_rule, tokenize

    tokenizer = _tokenizer(add_bos=False)
    plain = tokenizer(["a red ball", " ".join(WORDS)])["input_ids"]
    ids25, mask25 = tokenize(tokenizer, ["a red ball", " ".join(WORDS)], prompt_rule("2.5", TOKENS))
    ids23, mask23 = tokenize(tokenizer, ["a red ball", " ".join(WORDS)], prompt_rule("2.3", TOKENS))
    bos, pad = tokenizer.bos_token_id, tokenizer.pad_token_id
    assert ids25[0].tolist() == [pad] * (TOKENS - 4) + [bos] + plain[0]
    assert ids25[1].tolist() == ([bos] + plain[1])[:TOKENS] and bool(mask25[1].all())
    assert ids23[0].tolist() == [pad] * (TOKENS - 3) + plain[0] and mask23[0].sum() == 3
    assert ids23[1].tolist() == plain[1][:TOKENS]


def test_missing_tokenizer_lists_every_place(tmp_path, monkeypatch):
    from videodit.model.ltx2.gemma import load_gemma

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    file = tmp_path / "text_encoders" / "gemma_3_tiny.safetensors"
    file.parent.mkdir()
    _comfy_file(file, _gemma3(layers=1))
    with pytest.raises(FileNotFoundError) as error:
        load_gemma(file, dtype=torch.float32, tokenizer_dir=str(tmp_path / "my-tokenizer"))
    message = str(error.value)
    for place in (
        str(tmp_path / "my-tokenizer"),
        f"inside {file}",
        f"{file}.tokenizer",
        str(tmp_path / "text_encoders" / "gemma_3_tiny.tokenizer"),
        str(tmp_path / "text_encoders" / "tokenizer"),
        "google/gemma-3-12b-it in the Hugging Face cache",
    ):
        assert place in message, f"{place!r} missing from:\n{message}"


def test_gemma_file_is_named_as_a_text_encoder(tmp_path):
    """(g) a Gemma file given to the LTX checkpoint detection is recognised and named as the text encoder."""
    from videodit.model.checkpoint import SafetensorsFile
    from videodit.model.ltx2.gemma import describe_gemma, is_gemma_file

    file = tmp_path / "gemma_3_12B_it.safetensors"
    _comfy_file(file, _gemma3(layers=1))
    keys = SafetensorsFile(str(file)).keys()
    assert is_gemma_file(keys)
    assert "Gemma 3 text encoder" in describe_gemma(keys) and "models/text_encoders" in describe_gemma(keys)
    hf_keys = [f"model.language_model.{k}" for k in _gemma4().model.language_model.state_dict()]
    assert is_gemma_file(hf_keys) and "Gemma 4 text encoder" in describe_gemma(hf_keys)
    ltx_keys = [f"model.diffusion_model.{k}" for k in _ours(_layouts()[1][1]).state_dict()] + ["vae.decoder.x"]
    assert not is_gemma_file(ltx_keys)


def _quantize_fp8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = weight.abs().max() / 448.0
    return (weight / scale).to(torch.float8_e4m3fn), scale.reshape(())


def test_mixed_fp8_file_loads_and_other_mixed_formats_are_refused(tmp_path):
    """ComfyUI mixed quantisation: fp8 layers (comfy_quant + weight_scale) load as fp8 x scale; an nvfp4 file is
    refused with a message naming the format."""
    from safetensors.torch import load_file, save_file
    from videodit.model.checkpoint import CheckpointError
    from videodit.model.ltx2.gemma import load_gemma

    plain = tmp_path / "gemma_3_tiny_bf16.safetensors"
    _comfy_file(plain, _gemma3(layers=1))
    tensors = load_file(str(plain))
    layer = "model.layers.0.mlp.down_proj"
    tensors[layer + ".weight"], tensors[layer + ".weight_scale"] = _quantize_fp8(tensors[layer + ".weight"])
    tensors[layer + ".comfy_quant"] = _bytes_tensor(json.dumps({"format": "float8_e4m3fn"}).encode())
    mixed = tmp_path / "gemma_3_tiny_fp8_mixed.safetensors"
    save_file(tensors, str(mixed))
    _tokenizer(add_bos=True).save_pretrained(str(mixed) + ".tokenizer")
    gemma = load_gemma(mixed, dtype=torch.float32)
    expected = tensors[layer + ".weight"].to(torch.float32) * tensors[layer + ".weight_scale"]
    loaded = gemma.model.layers[0].mlp.down_proj.weight
    assert gemma.storage == "mixed fp8 (comfy_quant)" and _max_diff(loaded, expected) == 0.0

    tensors[layer + ".comfy_quant"] = _bytes_tensor(json.dumps({"format": "nvfp4"}).encode())
    fp4 = tmp_path / "gemma_3_tiny_fp4_mixed.safetensors"
    save_file(tensors, str(fp4))
    with pytest.raises(CheckpointError, match=r"gemma_3_tiny_fp4_mixed.*mixed quantisation with format\(s\) nvfp4"):
        load_gemma(fp4, dtype=torch.float32)


def test_wrong_gemma_family_for_the_checkpoint_is_named(gemma3_files):
    from videodit.model.checkpoint import CheckpointError
    from videodit.model.ltx2.gemma import load_gemma
    from videodit.model.ltx2.text_encoder import check_gemma_matches

    gemma = load_gemma(gemma3_files[3], dtype=torch.float32)
    check_gemma_matches({"model_version": "2.3.0"}, gemma, "ltx-2.3.safetensors")
    with pytest.raises(
        CheckpointError, match="LTX-2.5.0 transformer needs the LTX-2.5 Gemma 4 text encoder, got Gemma 3"
    ):
        check_gemma_matches({"model_version": "2.5.0"}, gemma, "ltx-2.5-transformer.safetensors")


# ---------------------------------------------------------------------------------------------------------------
# (f) full-size key sets


LTX20_TRANSFORMER = {  # the text-side fields of the LTX-2.0 19B metadata config["transformer"]
    "num_attention_heads": 32,
    "attention_head_dim": 128,
    "audio_num_attention_heads": 32,
    "audio_attention_head_dim": 64,
    "caption_channels": 3840,
    "connector_num_attention_heads": 30,
    "connector_attention_head_dim": 128,
    "connector_num_layers": 2,
    "connector_positional_embedding_max_pos": [4096],
    "rope_type": "split",
    "frequencies_precision": "float64",
}
LTX23_TRANSFORMER = {
    **LTX20_TRANSFORMER,
    "caption_proj_before_connector": True,
    "caption_projection_first_linear": False,
    "caption_proj_input_norm": False,
    "caption_projection_second_linear": False,
    "connector_num_attention_heads": 32,
    "connector_num_layers": 8,
    "audio_connector_num_attention_heads": 32,
    "audio_connector_attention_head_dim": 64,
    "audio_connector_num_layers": 8,
    "connector_apply_gated_attention": True,
}


@pytest.mark.parametrize("name,transformer", [("2.0", LTX20_TRANSFORMER), ("2.3", LTX23_TRANSFORMER)])
def test_full_size_connector_keys_equal_ltx_core(name, transformer):
    from ltx_core.model.transformer.model_configurator import _build_caption_projections
    from ltx_core.text_encoders.gemma.encoders.encoder_configurator import EmbeddingsProcessorConfigurator

    with torch.device("meta"):
        core = EmbeddingsProcessorConfigurator.from_config({"transformer": transformer})
        ours = tc.TextPath(tc.text_path_from_metadata(transformer, 3840, 49))
    captions = _build_caption_projections({"transformer": transformer}, is_av=True)
    expected = {k: tuple(v.shape) for k, v in core.state_dict().items()}
    for prefix, module in zip(("caption_projection.", "audio_caption_projection."), captions):
        if module is not None:
            expected.update({prefix + k: tuple(v.shape) for k, v in module.state_dict().items()})
    got = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert got == expected, f"{name}: differing keys {sorted(set(got) ^ set(expected))[:5]}, shapes " + str(
        [(k, got[k], expected[k]) for k in got.keys() & expected.keys() if got[k] != expected[k]][:5]
    )
    preset = tc.ltx20_text_path() if name == "2.0" else tc.ltx23_text_path()
    assert tc.text_path_from_metadata(transformer, 3840, 49) == preset


def test_comfy_embedded_sentencepiece_needs_protobuf(tmp_path, monkeypatch):
    """A ComfyUI file's spiece_model is used when protobuf can read it; without protobuf the search says so
    (transformers would otherwise build an empty tokenizer from it) and goes on to the next place."""
    import importlib.util

    from videodit.model.ltx2.gemma import load_gemma

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name.startswith("google") else real(name, *a)
    )
    file = tmp_path / "gemma_3_tiny.safetensors"
    _comfy_file(file, _gemma3(layers=1), {"spiece_model": _bytes_tensor(b"not read")})
    _tokenizer(add_bos=True).save_pretrained(tmp_path / "tokenizer")
    gemma = load_gemma(file, dtype=torch.float32)  # found in the tokenizer/ folder beside the file instead
    assert len(gemma.tokenizer) == len(WORDS) + 4
    (tmp_path / "tokenizer" / "tokenizer.json").unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    with pytest.raises(FileNotFoundError, match="spiece_model .* needs the protobuf package"):
        load_gemma(file, dtype=torch.float32)
