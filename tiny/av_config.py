"""Configurations of the tiny LTX-2 (audio + video) model: the pack's own LTX-2 classes at a small size, and a tiny
Gemma 3 text model (transformers' Gemma3TextModel) with a byte-level tokenizer.

Every part is a released LTX-2 component class with a small config; the file layouts are the official ones:
  transformer   model/ltx2/transformer.LTX2Transformer, LTX-2.3 flags (gated attention, cross-attention AdaLN
                with prompt AdaLN), 6 layers, video 4 heads x 32, audio 4 heads x 16
  text path     model/ltx2/text_connector.TextPath: V2 feature extractor (2.3) over the 5 Gemma hidden states,
                gated 2-layer connectors (video 4 x 32, audio 4 x 16) with 128 registers
  video VAE     model/ltx2/video_vae.LTX2VideoVAE: 32x32 spatial / 8x temporal, 32 latent channels, no timestep
                conditioning; a 128x128x25 clip becomes a (32, 4, 4, 4) latent: 64 video tokens
  audio VAE     model/ltx2/audio_vae.AudioVAE at the official 16 kHz / hop 160 / 64-mel front end (n_fft 512),
                4 latent channels x 16 latent mel bins: 25 audio tokens of 64 values per second
  vocoder       model/ltx2/vocoder.Vocoder, the 2.0-style HiFi-GAN (resblock "1"), x8 x5 x4 = x160 to 16 kHz stereo
  text encoder  transformers Gemma3TextModel, 4 layers, width 128; byte-level tokenizer (tokenizers BPE over
                the 256 byte symbols with no merges, plus <pad> <eos> <bos> <unk>), stored inside the Gemma file
                (tokenizer_json), so model/ltx2/gemma.load_gemma reads it without a vocabulary file.

Official sample rate and hop are kept because model/ltx2/latents.py fixes 25 audio latents per second (16000 / 160
/ 4), and the vocoder metadata fixes its input at 2 x 64 mel bins.
"""

from __future__ import annotations

import json

from ..model.ltx2.audio_vae import AudioVAEConfig
from ..model.ltx2.config import AVTransformerConfig
from ..model.ltx2.mel import MelConfig
from ..model.ltx2.text_connector import ConnectorConfig, TextPathConfig
from ..model.ltx2.text_features import FeatureConfig

VERSION = "2.3"
MODEL_VERSION = "2.3.0"
FRAME_RATE = 25.0
FRAMES, SIZE = 25, 128
SAMPLE_RATE = 16000

# ---------------------------------------------------------------------------------------------------- transformer

HEADS = 4
VIDEO_HEAD_DIM, AUDIO_HEAD_DIM = 32, 16
VIDEO_WIDTH, AUDIO_WIDTH = HEADS * VIDEO_HEAD_DIM, HEADS * AUDIO_HEAD_DIM  # 128, 64
LAYERS = 6
VIDEO_LATENT_CHANNELS = 32
AUDIO_LATENT_CHANNELS, MEL_BINS = 4, 64
AUDIO_LATENT_MEL = MEL_BINS // 4  # three audio VAE levels halve the mel axis twice
AUDIO_TOKEN_WIDTH = AUDIO_LATENT_CHANNELS * AUDIO_LATENT_MEL  # 64


def transformer_config() -> AVTransformerConfig:
    return AVTransformerConfig(
        num_layers=LAYERS,
        num_attention_heads=HEADS,
        attention_head_dim=VIDEO_HEAD_DIM,
        cross_attention_dim=VIDEO_WIDTH,
        in_channels=VIDEO_LATENT_CHANNELS,
        out_channels=VIDEO_LATENT_CHANNELS,
        audio_num_attention_heads=HEADS,
        audio_attention_head_dim=AUDIO_HEAD_DIM,
        audio_cross_attention_dim=AUDIO_WIDTH,
        audio_in_channels=AUDIO_TOKEN_WIDTH,
        audio_out_channels=AUDIO_TOKEN_WIDTH,
        apply_gated_attention=True,
        cross_attention_adaln=True,
    )


# ---------------------------------------------------------------------------------------------------- text

GEMMA_WIDTH, GEMMA_LAYERS = 128, 4
GEMMA_STATES = GEMMA_LAYERS + 1  # embeddings + one per layer
REGISTERS = 128  # 1024 prompt tokens = 8 register tiles
SPECIALS = ("<pad>", "<eos>", "<bos>", "<unk>")  # ids 0..3; byte b is id 4 + b
PAD_ID, EOS_ID, BOS_ID = 0, 1, 2
BYTE_OFFSET = len(SPECIALS)
VOCAB = 264  # 4 specials + 256 bytes, rounded up to a multiple of 8
CAPTION_TOKENS = 128  # BOS + the captions' at most 127 bytes (data.CAPTION_MAX_BYTES)


def text_path_config() -> TextPathConfig:
    connector = dict(layers=2, registers=REGISTERS, gated_attention=True)
    return TextPathConfig(
        FeatureConfig("v2", GEMMA_WIDTH, GEMMA_STATES, VIDEO_WIDTH, AUDIO_WIDTH),
        ConnectorConfig(HEADS, VIDEO_HEAD_DIM, **connector),
        ConnectorConfig(HEADS, AUDIO_HEAD_DIM, **connector),
    )


def gemma_config():
    """A Gemma 3 text config: 4 layers of width 128 (4 query heads x 32, 2 key/value heads), byte vocabulary."""
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        vocab_size=VOCAB,
        hidden_size=GEMMA_WIDTH,
        intermediate_size=4 * GEMMA_WIDTH,
        num_hidden_layers=GEMMA_LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        query_pre_attn_scalar=32,
        layer_types=["sliding_attention"] * (GEMMA_LAYERS - 1) + ["full_attention"],
        sliding_window=1024,
        max_position_embeddings=2048,
        rms_norm_eps=1e-6,
        hidden_activation="gelu_pytorch_tanh",
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
        bos_token_id=BOS_ID,
        attn_implementation="sdpa",
    )


def byte_tokenizer():
    """Byte-level tokenizer without a vocabulary file (transformers PreTrainedTokenizerFast over a tokenizers
    BPE with no merges): utf-8 bytes -> ids 4..259, BOS (2) prepended as Gemma 3's tokenizer does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()  # the 256 printable stand-ins of the bytes, GPT-2 order
    byte_symbols = sorted(alphabet, key=_byte_of_symbol)
    vocab = {s: i for i, s in enumerate(SPECIALS)} | {s: BYTE_OFFSET + i for i, s in enumerate(byte_symbols)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", BOS_ID)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def _byte_of_symbol(symbol: str) -> int:
    """GPT-2's byte -> printable character map, inverted: printable ASCII and Latin-1 bytes map to themselves,
    the others (0..32, 127..160, 173) to chr(256 + n) in byte order."""
    code = ord(symbol)
    if code < 256:
        return code
    others = [b for b in range(256) if not (33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255)]
    return others[code - 256]


def tokenizer_config_json() -> bytes:
    """What load_gemma reads beside tokenizer_json (hf_asset__tokenizer_config.json): the special tokens."""
    return json.dumps(dict(zip(("pad_token", "eos_token", "bos_token", "unk_token"), SPECIALS))).encode()


# ---------------------------------------------------------------------------------------------------- VAEs, vocoder

RES_UP = {"residual": True, "multiplier": 2}
VIDEO_VAE = {
    "_class_name": "CausalVideoAutoencoder",
    "dims": 3,
    "norm_layer": "pixel_norm",
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": VIDEO_LATENT_CHANNELS,
    "patch_size": 4,
    "decoder_base_channels": 16,  # decoder widths 128 -> 64 -> 32 -> 16
    "timestep_conditioning": False,
    "causal_decoder": False,
    "latent_log_var": "uniform",
    # encoder widths 32 -> 64 (space x2) -> 64 (time x2) -> 128 (all x2) -> 128 (all x2): x8 in space and time
    # after the 4x4 patch
    "encoder_blocks": [
        ["res_x", 1],
        ["compress_space_res", {"multiplier": 2}],
        ["res_x", 1],
        ["compress_time_res", {"multiplier": 1}],
        ["compress_all_res", {"multiplier": 2}],
        ["compress_all_res", {"multiplier": 1}],
    ],
    "decoder_blocks": [["res_x", 1], ["compress_all", RES_UP], ["res_x", 1], ["compress_all", RES_UP], ["res_x", 1]]
    + [["compress_all", RES_UP], ["res_x", 1]],
}

MEL = MelConfig(sample_rate=SAMPLE_RATE, n_fft=512, hop_length=160, mel_bins=MEL_BINS)
AUDIO_VAE_DD = {
    "ch": AUDIO_TOKEN_WIDTH,  # the statistics width equals the patchified latent width (4 x 16)
    "ch_mult": [1, 1, 1],
    "num_res_blocks": 1,
    "z_channels": AUDIO_LATENT_CHANNELS,
    "double_z": True,
    "attn_resolutions": [],
    "mid_block_add_attention": False,
    "resolution": 256,
    "in_channels": 2,
    "out_ch": 2,
    "mel_bins": MEL_BINS,
    "norm_type": "pixel",
    "causality_axis": "height",
}
AUDIO_VAE = {
    "model": {"params": {"ddconfig": AUDIO_VAE_DD, "sampling_rate": SAMPLE_RATE}},
    "preprocessing": {
        "stft": {"filter_length": MEL.n_fft, "hop_length": MEL.hop_length},
        "mel": {"n_mel_channels": MEL_BINS},
    },
}
VOCODER = {
    "upsample_rates": [8, 5, 4],  # x160: 100 mel frames per second -> 16 kHz
    "upsample_kernel_sizes": [16, 11, 8],  # kernel - stride even: exactly x160
    "resblock_kernel_sizes": [3, 7],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]],
    "upsample_initial_channel": 160,  # widths 80, 40, 20 after the three upsamplings
    "resblock": "1",
    "stereo": True,
    "use_tanh_at_final": True,
    "output_sampling_rate": SAMPLE_RATE,
}
SECTIONS = {"vae": VIDEO_VAE, "audio_vae": AUDIO_VAE, "vocoder": VOCODER}

# Sampling defaults of the evaluation (and for anyone running the tiny model): 25 fps, 128x128x25, 30 steps.
DEFAULTS = {"width": SIZE, "height": SIZE, "num_frames": FRAMES, "fps": FRAME_RATE, "steps": 30}


def audio_vae_config() -> AudioVAEConfig:
    return AudioVAEConfig.from_metadata({"audio_vae": AUDIO_VAE})


PARTS = ("transformer", "text_path", "video_vae", "audio_vae", "vocoder", "gemma")


def build(seed: int = 0, names: tuple[str, ...] = PARTS) -> dict:
    """The parts `names` (default every part of PARTS) with fresh weights, seeded: {name: module}."""
    import torch
    from transformers import Gemma3TextModel

    from ..model.ltx2.audio_vae import AudioVAE
    from ..model.ltx2.text_connector import TextPath
    from ..model.ltx2.transformer import LTX2Transformer
    from ..model.ltx2.video_vae import LTX2VideoVAE, ltx2_vae_config
    from ..model.ltx2.vocoder import build_vocoder

    makers = {
        "transformer": lambda: LTX2Transformer(transformer_config()),
        "text_path": lambda: TextPath(text_path_config()),
        "video_vae": lambda: LTX2VideoVAE(ltx2_vae_config(VIDEO_VAE)),
        "audio_vae": lambda: AudioVAE(audio_vae_config()),
        "vocoder": lambda: build_vocoder({"vocoder": VOCODER}),
        "gemma": lambda: Gemma3TextModel(gemma_config()),
    }
    torch.manual_seed(seed)
    return {name: makers[name]() for name in names}


def parameter_counts(parts: dict) -> dict[str, int]:
    return {name: sum(p.numel() for p in module.parameters()) for name, module in parts.items()}


# ---------------------------------------------------------------------------------------------------- files


def save_gemma(path: str, gemma, dtype=None) -> None:
    """The tiny Gemma as a ComfyUI-style text-encoder file that model/ltx2/gemma.load_gemma reads: the language
    model under "model.*", its config in the metadata ("config"), the byte tokenizer inside the file
    (tokenizer_json + hf_asset__tokenizer_config.json, uint8 tensors)."""
    import torch

    from ..model.checkpoint import save_safetensors

    def as_bytes(blob: bytes) -> torch.Tensor:
        return torch.tensor(list(blob), dtype=torch.uint8)

    tensors = {
        "model." + k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in gemma.state_dict().items()
    }
    tensors["tokenizer_json"] = as_bytes(byte_tokenizer().backend_tokenizer.to_str().encode())
    tensors["hf_asset__tokenizer_config.json"] = as_bytes(tokenizer_config_json())
    save_safetensors(path, tensors, {"config": json.dumps(gemma_config().to_dict())})


def save_checkpoint(path: str, parts: dict, dtype=None) -> None:
    """Transformer + text connectors + video VAE + audio VAE + vocoder as one official LTX-2.3 single file
    (model/checkpoint.save_ltx2_checkpoint, config in metadata); dtype: the stored float type (latent statistics
    stay float32)."""
    import copy

    import torch

    from ..model.checkpoint import save_ltx2_checkpoint

    modules = {}
    for name in ("transformer", "text_path", "video_vae", "audio_vae", "vocoder"):
        module = copy.deepcopy(parts[name]).cpu()
        if dtype is not None:
            statistics = {k: v.clone() for k, v in module.state_dict().items() if "per_channel_statistics" in k}
            module.to(dtype)
            with torch.no_grad():
                for k, v in statistics.items():
                    _set_tensor(module, k, v)
        modules[name] = module
    save_ltx2_checkpoint(path, modules, SECTIONS, MODEL_VERSION)


def _set_tensor(module, key: str, value) -> None:
    owner, _, name = key.rpartition(".")
    target = module.get_submodule(owner)
    if name in target._buffers:
        target._buffers[name] = value
    else:
        target._parameters[name].data = value
