"""Configurations of the tiny model: the project's own DiT and causal VAE classes at a small size, and a small T5
encoder with a byte-level vocabulary.

Sizes (parameters): DiT 7.05 M (6 layers, width 256), VAE 4.95 M (encoder 48 base channels, decoder 48 with a
96-wide latent side), T5 2.07 M (3 layers, width 256, byte vocabulary 384). Stored as float16: 28.2 MB in all.
The VAE keeps the 32x32 spatial / 8x temporal factors and 128 latent channels of the released VAEs, so a
128x128x25 clip becomes a (128, 4, 4, 4) latent: 64 DiT tokens.
"""

import math

from ..model.ltxv.dit import TransformerConfig
from ..model.ltxv.vae import VAEConfig

TEXT_WIDTH = 256
BYTE_VOCAB = 384  # ByT5: 3 special ids (pad 0, eos 1, unk 2) + 256 bytes, rounded up as ByT5 does
MAX_TEXT_TOKENS = 128
FRAME_RATE = 25.0

# Scheduler metadata: "Constant" sampler = uniform timesteps through the shift e^mu / (e^mu + 1/t - 1) with
# mu = ln 2 (sigma' = 2 sigma / (1 + sigma)); training samples t from the same shifted logit-normal.
SHIFT_MU = math.log(2.0)
SCHEDULER = {
    "_class_name": "RectifiedFlowScheduler",
    "num_train_timesteps": 1000,
    "sampler": "Constant",
    "shifting": None,
    "shift": SHIFT_MU,
    "base_resolution": 1024,
    "target_shift_terminal": None,
}

# Defaults for the nodes and the evaluation (stored under "videodit" in the checkpoint metadata).
DEFAULTS = {
    "steps": 20,
    "cfg": 3.0,
    "width": 128,
    "height": 128,
    "num_frames": 25,
    "frame_rate": FRAME_RATE,
    "schedule": "auto",
    "decode_timestep": 0.0,
    "image_cond_noise_scale": 0.15,
    "text_encoder": "t5-tiny.safetensors",
    "negative_prompt": "",
}


def transformer_config() -> TransformerConfig:
    return TransformerConfig(
        num_layers=6,
        num_attention_heads=8,
        attention_head_dim=32,
        cross_attention_dim=256,
        caption_channels=TEXT_WIDTH,
        causal_temporal_positioning=True,
    )


def vae_config() -> VAEConfig:
    encoder = [
        ["res_x", 1],
        ["compress_space_res", {"multiplier": 2}],
        ["res_x", 1],
        ["compress_time_res", {"multiplier": 1}],
        ["compress_all_res", {"multiplier": 2}],
        ["compress_all_res", {"multiplier": 1}],
    ]
    # Listed encoder-side first, run reversed: 128 -> 96 (res) -> up x2 -> 48 (res) -> up -> (res) -> up -> (res).
    decoder = [
        ["res_x", 1],
        ["compress_all", {"residual": True, "multiplier": 1}],
        ["res_x", 1],
        ["compress_all", {"residual": True, "multiplier": 1}],
        ["res_x", 1],
        ["compress_all", {"residual": True, "multiplier": 2}],
        ["res_x", 1],
    ]
    return VAEConfig(
        encoder_blocks=encoder,
        decoder_blocks=decoder,
        latent_channels=128,
        patch_size=4,
        encoder_base_channels=48,
        decoder_base_channels=48,
        timestep_conditioning=False,
        causal_decoder=False,
        spatial_padding_mode="reflect",
    )


def t5_config():
    from transformers import T5Config

    return T5Config(
        vocab_size=BYTE_VOCAB,
        d_model=TEXT_WIDTH,
        d_kv=64,
        d_ff=512,
        num_layers=3,
        num_heads=4,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        dropout_rate=0.0,
        layer_norm_epsilon=1e-6,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=False,
        use_cache=False,
        pad_token_id=0,
        eos_token_id=1,
    )


def byte_tokens(prompts: list[str], max_tokens: int = MAX_TEXT_TOKENS):
    """ByT5 tokenisation (utf-8 byte + 3, then eos 1; pad 0) padded to the longest prompt.
    Returns (ids (B, L) int64, mask (B, L) int64). Equal to transformers' ByT5Tokenizer (tested)."""
    import numpy as np
    import torch

    encoded = [p.encode("utf-8")[: max_tokens - 1] for p in prompts]
    ids = np.zeros((len(encoded), max(len(e) for e in encoded) + 1), dtype=np.int64)
    for i, e in enumerate(encoded):
        ids[i, : len(e)] = np.frombuffer(e, dtype=np.uint8).astype(np.int64) + 3
        ids[i, len(e)] = 1
    mask = np.zeros_like(ids)
    for i, e in enumerate(encoded):
        mask[i, : len(e) + 1] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)
