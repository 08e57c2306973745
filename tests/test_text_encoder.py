"""T5 text encoder loading (ComfyUI single-file layout, fp8, Hugging Face folder), tokenizers and encoding rules.
Tiny random T5 models; tokenizers are built locally (byte-level ByT5, or a small unigram tokenizer): no downloads.

Embeddings of an encoder loaded from a file are compared with the in-memory model within ROUND_TRIP_TOL (fp32):
loaded tensors may be memory-mapped views at unaligned addresses, for which CPU kernels round differently."""

import json
import string

import pytest
import torch
from safetensors.torch import save_file
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel
from videodit.model.checkpoint import CheckpointError
from videodit.model.text_encoder import (
    DEFAULT_MAX_TOKENS,
    TextEncoder,
    load_text_encoder,
    max_tokens_for_version,
    save_text_encoder,
)

COMFY_PREFIX = "text_encoders.t5xxl.transformer."
ROUND_TRIP_TOL = 1e-5  # max |diff| / max(1, max |expected|), fp32


def tiny_t5(vocab_size: int, seed: int = 0) -> T5EncoderModel:
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=vocab_size,
        d_model=32,
        d_kv=8,
        d_ff=48,
        num_layers=2,
        num_heads=4,
        feed_forward_proj="gated-gelu",
        relative_attention_num_buckets=8,
    )
    model = T5EncoderModel(config).eval()
    with torch.no_grad():  # T5 init leaves some weights tiny; make every tensor matter
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3 + (1.0 if p.ndim == 1 else 0.0))
    return model


def unigram_tokenizer_folder(folder) -> PreTrainedTokenizerFast:
    """A small T5-style tokenizer (pad 0, EOS 1 appended, unk 2) saved as tokenizer.json: no sentencepiece files."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    pieces = ["▁" + c for c in string.ascii_lowercase] + list(string.ascii_lowercase) + ["▁"]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(p, -1.0) for p in pieces]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(str(folder))
    return fast


def reference_embeddings(model: T5EncoderModel, encoder: TextEncoder, prompts):
    ids, mask = encoder.tokenize(prompts)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).last_hidden_state


def assert_close(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    diff = (got.float() - expected.float()).abs().max().item()
    scale = max(1.0, expected.abs().max().item())
    assert diff <= ROUND_TRIP_TOL * scale, f"{what}: max|diff| {diff:.3e} > {ROUND_TRIP_TOL:.0e} * {scale:.2f}"
    print(f"{what}: max|diff| {diff:.2e} (max|expected| {scale:.2f})")


PROMPTS = ["  a red ball rolls left  ", "the camera pans over a quiet lake at dawn"]


@pytest.mark.parametrize("with_config", [True, False])
def test_comfy_single_file_layout(tmp_path, with_config):
    source = tiny_t5(vocab_size=384)  # byte-level vocabulary: ByT5Tokenizer, no files needed
    path = tmp_path / "t5.safetensors"
    if with_config:
        save_text_encoder(path, source, {"tokenizer": "byte"})
    else:  # ComfyUI layout with its checkpoint prefix and no metadata: config inferred from shapes
        state = {COMFY_PREFIX + k: v for k, v in source.state_dict().items() if k != "encoder.embed_tokens.weight"}
        save_file(state, str(path))
    encoder = load_text_encoder(path, dtype=torch.float32, max_tokens=32)
    assert type(encoder.tokenizer).__name__ == "ByT5Tokenizer"
    assert encoder.model.config.num_heads == 4 and encoder.model.config.d_kv == 8
    assert encoder.model.config.is_gated_act
    assert encoder.model.encoder.embed_tokens.weight is encoder.model.shared.weight
    cond = encoder.encode(PROMPTS)
    expected = reference_embeddings(source, encoder, PROMPTS)
    assert cond.embeddings.shape == (2, 32, 32)
    assert_close(cond.embeddings, expected, f"single file (config in metadata: {with_config})")


def test_fp8_and_fp16_files(tmp_path):
    source = tiny_t5(vocab_size=384, seed=1)
    state = {k: v for k, v in source.state_dict().items() if k != "encoder.embed_tokens.weight"}
    fp8 = {k: (v.to(torch.float8_e4m3fn) if v.ndim == 2 else v) for k, v in state.items()}
    save_file(fp8, str(tmp_path / "t5_fp8_e4m3fn.safetensors"))
    encoder = load_text_encoder(tmp_path / "t5_fp8_e4m3fn.safetensors", dtype=torch.float32, max_tokens=24)
    upcast = tiny_t5(vocab_size=384, seed=1)
    upcast.load_state_dict({k: v.to(torch.float32) for k, v in fp8.items()}, strict=False)
    upcast.encoder.embed_tokens.weight = upcast.shared.weight
    for key, value in upcast.state_dict().items():  # the stored fp8 values, upcast exactly
        assert torch.equal(encoder.model.state_dict()[key], value), key
    assert_close(encoder.encode(PROMPTS).embeddings, reference_embeddings(upcast, encoder, PROMPTS), "fp8 file")

    save_file({k: v.half() for k, v in state.items()}, str(tmp_path / "t5_fp16.safetensors"))
    encoder = load_text_encoder(tmp_path / "t5_fp16.safetensors", dtype=torch.float16, max_tokens=24)
    ff = encoder.model.encoder.block[0].layer[1].DenseReluDense
    assert ff.wi_0.weight.dtype == torch.float16 and ff.wo.weight.dtype == torch.float32  # HF's fp16 rule
    got = encoder.encode(PROMPTS).embeddings.float()
    expected = reference_embeddings(source, encoder, PROMPTS)
    assert torch.isfinite(got).all()
    assert (got - expected).abs().max() / expected.abs().max() < 0.02


def test_byte_level_mask_length_and_truncation(tmp_path):
    save_text_encoder(tmp_path / "t5-tiny.safetensors", tiny_t5(vocab_size=384), {"tokenizer": "byte"})
    encoder = load_text_encoder(tmp_path / "t5-tiny.safetensors", dtype=torch.float32, max_tokens=16)
    long = "x" * 40
    cond = encoder.encode(["  hi  ", long])
    assert cond.embeddings.shape == (2, 16, 32) and cond.mask.shape == (2, 16)
    ids, _ = encoder.tokenize(["  hi  ", long])
    assert cond.mask[0].tolist() == [1, 1, 1] + [0] * 13  # "hi" stripped + EOS, then padding
    assert ids[0, :3].tolist() == [ord("h") + 3, ord("i") + 3, 1] and ids[0, 3:].eq(0).all()
    assert cond.mask[1].all() and ids[1, -1] == 1  # truncated to max_tokens, EOS kept last
    # padding tokens change nothing in the real tokens' embeddings (the mask goes into T5 self-attention)
    short = TextEncoder(encoder.model, encoder.tokenizer, max_tokens=8).encode(["  hi  "])
    assert torch.allclose(short.embeddings[0, :3], cond.embeddings[0, :3], atol=1e-5)
    assert load_text_encoder(tmp_path / "t5-tiny.safetensors").max_tokens == DEFAULT_MAX_TOKENS == 256
    save_text_encoder(tmp_path / "t5-128.safetensors", tiny_t5(vocab_size=384), {"max_tokens": 128})
    assert load_text_encoder(tmp_path / "t5-128.safetensors").max_tokens == 128  # the file's own length
    assert max_tokens_for_version("0.9.1") == 128
    assert max_tokens_for_version("0.9.5") == 256


def test_tokenizer_beside_the_weights_and_missing_tokenizer(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # an empty cache: nothing can be found there
    tokenizer = unigram_tokenizer_folder(tmp_path / "t5.safetensors.tokenizer")
    source = tiny_t5(vocab_size=len(tokenizer) + 8, seed=2)
    save_text_encoder(tmp_path / "t5.safetensors", source)
    encoder = load_text_encoder(tmp_path / "t5.safetensors", dtype=torch.float32, max_tokens=12)
    ids, mask = encoder.tokenize(["a cat"])
    assert ids[0].tolist() == tokenizer("a cat", padding="max_length", max_length=12)["input_ids"]
    assert_close(
        encoder.encode(["a cat"]).embeddings, reference_embeddings(source, encoder, ["a cat"]), "tokenizer beside"
    )

    # explicit tokenizer_dir wins; a missing tokenizer names every place searched
    other = tmp_path / "models"
    other.mkdir()
    save_text_encoder(other / "t5.safetensors", source)
    encoder = load_text_encoder(
        other / "t5.safetensors", dtype=torch.float32, tokenizer_dir=str(tmp_path / "t5.safetensors.tokenizer")
    )
    assert len(encoder.tokenizer) == len(tokenizer)
    with pytest.raises(FileNotFoundError) as err:
        load_text_encoder(other / "t5.safetensors", dtype=torch.float32, tokenizer_dir=str(tmp_path / "nope"))
    message = str(err.value)
    for place in (
        tmp_path / "nope",
        other / "t5.safetensors.tokenizer",
        other / "t5.tokenizer",
        other / "tokenizer",
        "google/t5-v1_1-xxl from the Hugging Face cache",
        "Hugging Face hub (not tried: downloads are off)",
    ):
        assert str(place) in message, place


def test_hugging_face_folder(tmp_path):
    tokenizer = unigram_tokenizer_folder(tmp_path / "pipe" / "tokenizer")
    source = tiny_t5(vocab_size=len(tokenizer), seed=3)
    source.save_pretrained(str(tmp_path / "pipe" / "text_encoder"))  # model.safetensors + config.json
    for path in (tmp_path / "pipe", tmp_path / "pipe" / "text_encoder"):  # pipeline root or the encoder folder
        encoder = load_text_encoder(path, dtype=torch.float32, max_tokens=10)
        expected = reference_embeddings(source, encoder, PROMPTS)
        assert_close(encoder.encode(PROMPTS).embeddings, expected, f"Hugging Face folder {path.name}")


def test_wrong_files(tmp_path):
    state = {"model.diffusion_model.patchify_proj.weight": torch.zeros(4, 4)}
    save_file(state, str(tmp_path / "ltxv.safetensors"))
    with pytest.raises(CheckpointError, match="ltxv.safetensors: not a T5 text encoder file"):
        load_text_encoder(tmp_path / "ltxv.safetensors")
    gemma = {"language_model.model.layers.0.self_attn.q_proj.weight": torch.zeros(4, 4)}
    save_file(gemma, str(tmp_path / "gemma_3_12B_it.safetensors"))
    with pytest.raises(CheckpointError, match="gemma_3_12B_it.safetensors: not a T5 .* Gemma text encoder file"):
        load_text_encoder(tmp_path / "gemma_3_12B_it.safetensors")
    source = tiny_t5(vocab_size=384)
    state = {k: v for k, v in source.state_dict().items() if k != "encoder.embed_tokens.weight"}
    state["encoder.block.1.layer.0.SelfAttention.q.weight"] = torch.zeros(16, 32)
    save_file(
        state,
        str(tmp_path / "bad.safetensors"),
        metadata={
            "config": json.dumps(
                {
                    "vocab_size": 384,
                    "d_model": 32,
                    "d_kv": 8,
                    "d_ff": 48,
                    "num_layers": 2,
                    "num_heads": 4,
                    "relative_attention_num_buckets": 8,
                    "feed_forward_proj": "gated-gelu",
                }
            )
        },
    )
    with pytest.raises(CheckpointError) as err:
        load_text_encoder(tmp_path / "bad.safetensors")
    assert "bad.safetensors" in str(err.value)
    assert "encoder.block.1.layer.0.SelfAttention.q.weight expected [32, 32] found [16, 32]" in str(err.value)
