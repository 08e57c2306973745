"""LTX-Video Transformer3D (the DiT): PixArt-style blocks with AdaLN-single, RMSNorm q/k norm and 3D RoPE.

State-dict keys equal the official checkpoint keys with "model.diffusion_model." stripped.
Shapes: B batch, N video tokens, L text tokens, D = heads * head_dim, T = 1 (global timestep) or N (per token).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks.attention import Attention
from ..blocks.feedforward import CaptionProjection, FeedForward
from ..blocks.norm import rms_norm
from ..blocks.rope import rope_cos_sin
from ..blocks.timestep import AdaLNSingle

TEXT_MASK_BIAS = -10000.0  # additive attention bias of padded text tokens (official value)
FINAL_NORM_EPS = 1e-6
# Block RMSNorm eps: 1e-6 in every released 0.9.x config (and diffusers' default). The official Transformer3DModel
# would use 1e-5 for a config without the key; no released file lacks it, so 1e-6 is also our value for "absent".
BLOCK_NORM_EPS = 1e-6
SKIP_MODES = ("attention_values", "attention_skip", "transformer_block")

# Official "transformer" metadata keys that must hold one value (the architecture built here).
# key: (required value, value the official code assumes when the key is absent)
_FIXED_KEYS = {
    "positional_embedding_type": ("rope", "rope"),
    "qk_norm": ("rms_norm", None),
    "standardization_norm": ("rms_norm", "layer_norm"),
    "norm_elementwise_affine": (False, True),
    "adaptive_norm": ("single_scale_shift", "single_scale_shift"),
    "activation_fn": ("gelu-approximate", "geglu"),
    "attention_bias": (True, False),
    "only_cross_attention": (False, False),
    "double_self_attention": (False, False),
}
# Official keys without effect on inference (values as in the released configs, used by to_metadata).
_INERT_KEYS = {
    "dropout": 0.0,
    "upcast_attention": False,
    "num_embeds_ada_norm": 1000,
    "norm_num_groups": 32,
    "attention_type": "default",
    "use_linear_projection": False,
    "project_to_2d_pos": True,
    "num_vector_embeds": None,
    "use_tpu_flash_attention": False,
}
_REQUIRED_KEYS = (
    "num_layers",
    "num_attention_heads",
    "attention_head_dim",
    "cross_attention_dim",
    "caption_channels",
    "in_channels",
    "positional_embedding_theta",
    "positional_embedding_max_pos",
)


@dataclass(frozen=True)
class TransformerConfig:
    num_layers: int
    num_attention_heads: int
    attention_head_dim: int
    cross_attention_dim: int  # width of the projected text fed to attn2; equals the inner dim
    caption_channels: int  # text encoder width (T5-XXL: 4096)
    in_channels: int = 128
    out_channels: int = 128
    norm_eps: float = BLOCK_NORM_EPS  # block RMSNorms
    positional_embedding_theta: float = 10000.0
    positional_embedding_max_pos: tuple[int, int, int] = (20, 2048, 2048)
    timestep_scale_multiplier: float = 1000.0
    causal_temporal_positioning: bool = False  # used by whoever builds the coordinates (video_coords causal_fix)

    def __post_init__(self):
        for name in (
            "num_layers",
            "num_attention_heads",
            "attention_head_dim",
            "caption_channels",
            "in_channels",
            "out_channels",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TransformerConfig.{name} must be an integer >= 1, got {value!r}")
        if self.inner_dim % 2:
            raise ValueError(
                f"TransformerConfig: num_attention_heads * attention_head_dim must be even (RoPE rotates channel "
                f"pairs), got {self.num_attention_heads} * {self.attention_head_dim} = {self.inner_dim}"
            )
        if self.cross_attention_dim != self.inner_dim:
            raise ValueError(
                f"TransformerConfig.cross_attention_dim must equal num_attention_heads * attention_head_dim = "
                f"{self.inner_dim} (the caption projection output), got {self.cross_attention_dim}"
            )
        if len(self.positional_embedding_max_pos) != 3 or min(self.positional_embedding_max_pos) <= 0:
            raise ValueError(
                f"TransformerConfig.positional_embedding_max_pos must be 3 positive numbers (t, y, x), "
                f"got {self.positional_embedding_max_pos!r}"
            )
        if self.positional_embedding_theta <= 1:
            raise ValueError(
                f"TransformerConfig.positional_embedding_theta must be > 1, got {self.positional_embedding_theta}"
            )

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @classmethod
    def from_metadata(cls, d: dict) -> "TransformerConfig":
        """From the official "transformer" metadata dict (Transformer3DModel constructor arguments)."""
        for key, (required, absent_default) in _FIXED_KEYS.items():
            value = d.get(key, absent_default)
            if value != required:
                found = f"{value!r}" if key in d else f"absent (official default {absent_default!r})"
                raise ValueError(f"transformer config: {key} must be {required!r}, found {found}")
        missing = [key for key in _REQUIRED_KEYS if d.get(key) is None]
        if missing:
            raise ValueError(f"transformer config: missing required keys {missing}")
        known = (
            set(_FIXED_KEYS)
            | set(_INERT_KEYS)
            | set(_REQUIRED_KEYS)
            | {"out_channels", "norm_eps", "timestep_scale_multiplier", "causal_temporal_positioning"}
        )
        unknown = sorted(key for key in d if key not in known and not key.startswith("_"))
        if unknown:
            raise ValueError(f"transformer config: unsupported keys {unknown}")
        # Official semantics: out_channels None -> in_channels; timestep multiplier None/0 -> not applied.
        return cls(
            num_layers=d["num_layers"],
            num_attention_heads=d["num_attention_heads"],
            attention_head_dim=d["attention_head_dim"],
            cross_attention_dim=d["cross_attention_dim"],
            caption_channels=d["caption_channels"],
            in_channels=d["in_channels"],
            out_channels=d.get("out_channels") or d["in_channels"],
            norm_eps=float(d.get("norm_eps", BLOCK_NORM_EPS)),
            positional_embedding_theta=float(d["positional_embedding_theta"]),
            positional_embedding_max_pos=tuple(d["positional_embedding_max_pos"]),
            timestep_scale_multiplier=float(d.get("timestep_scale_multiplier") or 1.0),
            causal_temporal_positioning=bool(d.get("causal_temporal_positioning", False)),
        )

    def to_metadata(self) -> dict:
        """The official "transformer" metadata dict (loadable by the official Transformer3DModel.from_config)."""
        return {
            "_class_name": "Transformer3DModel",
            **{key: required for key, (required, _) in _FIXED_KEYS.items()},
            **_INERT_KEYS,
            "num_layers": self.num_layers,
            "num_attention_heads": self.num_attention_heads,
            "attention_head_dim": self.attention_head_dim,
            "cross_attention_dim": self.cross_attention_dim,
            "caption_channels": self.caption_channels,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "norm_eps": self.norm_eps,
            "positional_embedding_theta": self.positional_embedding_theta,
            "positional_embedding_max_pos": list(self.positional_embedding_max_pos),
            "timestep_scale_multiplier": self.timestep_scale_multiplier,
            "causal_temporal_positioning": self.causal_temporal_positioning,
        }


def ltxv_2b(causal_temporal_positioning: bool = True) -> TransformerConfig:
    """2B (0.9.x): 28 layers, 32 heads x 64. Causal positioning is off for 0.9.0/0.9.1, on for 0.9.5+."""
    return TransformerConfig(
        num_layers=28,
        num_attention_heads=32,
        attention_head_dim=64,
        cross_attention_dim=2048,
        caption_channels=4096,
        causal_temporal_positioning=causal_temporal_positioning,
    )


def ltxv_13b(causal_temporal_positioning: bool = True) -> TransformerConfig:
    """13B (0.9.7/0.9.8): 48 layers, 32 heads x 128."""
    return TransformerConfig(
        num_layers=48,
        num_attention_heads=32,
        attention_head_dim=128,
        cross_attention_dim=4096,
        caption_channels=4096,
        causal_temporal_positioning=causal_temporal_positioning,
    )


@dataclass(frozen=True)
class SkipLayers:
    """Spatio-temporal skip guidance (STG): in `blocks`, the samples with perturbed[b] True are altered.

    attention_values: self-attention output replaced by its value projection V(x) (before to_out);
    attention_skip: self-attention output replaced by its input (the modulated, normed hidden state);
    transformer_block: the whole block output replaced by the block input.
    """

    blocks: tuple[int, ...]
    mode: str
    perturbed: torch.Tensor  # bool (B,)

    def __post_init__(self):
        if self.mode not in SKIP_MODES:
            raise ValueError(f"SkipLayers.mode must be one of {SKIP_MODES}, got {self.mode!r}")
        if self.perturbed.dtype != torch.bool or self.perturbed.ndim != 1:
            raise ValueError(
                f"SkipLayers.perturbed must be a bool tensor of shape (B,), got {self.perturbed.dtype} "
                f"{tuple(self.perturbed.shape)}"
            )


class TransformerBlock(nn.Module):
    """Modulated self-attention (RoPE) -> plain cross-attention to text -> modulated feed-forward."""

    def __init__(self, dim: int, heads: int, context_dim: int, norm_eps: float):
        super().__init__()
        self.norm_eps = norm_eps
        # Rows: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp.
        self.scale_shift_table = nn.Parameter(torch.randn(6, dim) / dim**0.5)
        self.attn1 = Attention(dim, heads, dim)
        self.attn2 = Attention(dim, heads, context_dim)
        self.ff = FeedForward(dim, 4 * dim)

    def forward(
        self,
        x: torch.Tensor,
        text: torch.Tensor,
        text_bias: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        modulation: torch.Tensor,
        skip_mode: str | None = None,
        perturbed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, N, D), text (B, L, D) or attn2.project_context(text), text_bias (B, 1, 1, L), modulation
        (B, T, 6D) -> (B, N, D)."""
        ada = self.scale_shift_table + modulation.unflatten(-1, (6, -1))  # (B, T, 6, D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = ada.unbind(2)  # each (B, T, D)

        attn_skip = skip_mode if skip_mode in ("attention_values", "attention_skip") else None
        h = rms_norm(x, self.norm_eps) * (1 + scale_msa) + shift_msa
        out = x + gate_msa * self.attn1(h, h, rope=rope, skip_mode=attn_skip, perturbed=perturbed)
        out = out + self.attn2(out, text, bias=text_bias)
        h = rms_norm(out, self.norm_eps) * (1 + scale_mlp) + shift_mlp
        out = out + gate_mlp * self.ff(h)
        if skip_mode == "transformer_block":
            out = torch.where(perturbed[:, None, None], x, out)
        return out


class LTXVideoTransformer(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        dim = config.inner_dim
        self.patchify_proj = nn.Linear(config.in_channels, dim)
        self.adaln_single = AdaLNSingle(dim)
        self.caption_projection = CaptionProjection(config.caption_channels, dim)
        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(dim, config.num_attention_heads, config.cross_attention_dim, config.norm_eps)
            for _ in range(config.num_layers)
        )
        self.scale_shift_table = nn.Parameter(torch.randn(2, dim) / dim**0.5)  # final-layer shift, scale
        self.proj_out = nn.Linear(dim, config.out_channels)
        # speed option (model/speed.py TextKVCache): get(transformer, text) -> per block the attn2 keys/values,
        # computed once per distinct text instead of at every forward
        self.text_kv_cache = None

    def forward(
        self,
        tokens: torch.Tensor,
        coords: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        timestep: torch.Tensor,
        skip: SkipLayers | None = None,
    ) -> torch.Tensor:
        """Velocity prediction.

        tokens (B, N, in_channels); coords (B, 3, N) or (1, 3, N) [t seconds, y px, x px]; text (B, L,
        caption_channels); text_mask (B, L) 1 = keep, 0 = padding; timestep (B, 1) or (B, N) in [0, 1];
        skip: STG hooks. Returns (B, N, out_channels).
        """
        self._check_inputs(tokens, coords, text, text_mask, timestep, skip)
        cfg = self.config
        batch = tokens.shape[0]

        x = self.patchify_proj(tokens)  # (B, N, D)
        dtype = x.dtype
        text_bias = ((1 - text_mask.to(dtype)) * TEXT_MASK_BIAS)[:, None, None, :]  # (B, 1, 1, L)
        rope = rope_cos_sin(
            coords, cfg.inner_dim, cfg.positional_embedding_theta, cfg.positional_embedding_max_pos, dtype
        )  # each (B or 1, N, 3 * (D // 6))

        t = timestep.to(torch.float32) * cfg.timestep_scale_multiplier
        modulation, embedded = self.adaln_single(t.flatten(), dtype)  # (B*T, 6D), (B*T, D)
        modulation = modulation.view(batch, -1, modulation.shape[-1])  # (B, T, 6D)
        embedded = embedded.view(batch, -1, embedded.shape[-1])  # (B, T, D)

        if self.text_kv_cache is None:
            context = self.caption_projection(text)  # (B, L, D)
            block_texts = [context] * len(self.transformer_blocks)
        else:
            block_texts = self.text_kv_cache.get(self, text)  # per block (keys, values), each (B, L, D)

        for index, (block, block_text) in enumerate(zip(self.transformer_blocks, block_texts)):
            if skip is not None and index in skip.blocks:
                x = block(x, block_text, text_bias, rope, modulation, skip.mode, skip.perturbed.to(x.device))
            else:
                x = block(x, block_text, text_bias, rope, modulation)

        shift = self.scale_shift_table[0] + embedded  # (B, T, D)
        scale = self.scale_shift_table[1] + embedded
        x = F.layer_norm(x, (x.shape[-1],), eps=FINAL_NORM_EPS) * (1 + scale) + shift
        return self.proj_out(x)  # (B, N, out_channels)

    def _check_inputs(self, tokens, coords, text, text_mask, timestep, skip):
        cfg = self.config
        if tokens.ndim != 3 or tokens.shape[-1] != cfg.in_channels:
            raise ValueError(f"tokens must be (B, N, {cfg.in_channels}), got {tuple(tokens.shape)}")
        batch, num_tokens = tokens.shape[:2]
        if coords.ndim != 3 or coords.shape[0] not in (1, batch) or coords.shape[1:] != (3, num_tokens):
            raise ValueError(f"coords must be ({batch} or 1, 3, {num_tokens}), got {tuple(coords.shape)}")
        if text.ndim != 3 or text.shape[0] != batch or text.shape[-1] != cfg.caption_channels:
            raise ValueError(f"text must be ({batch}, L, {cfg.caption_channels}), got {tuple(text.shape)}")
        if text_mask.shape != text.shape[:2]:
            raise ValueError(f"text_mask must be {tuple(text.shape[:2])}, got {tuple(text_mask.shape)}")
        if timestep.ndim != 2 or timestep.shape[0] != batch or timestep.shape[1] not in (1, num_tokens):
            raise ValueError(f"timestep must be ({batch}, 1) or ({batch}, {num_tokens}), got {tuple(timestep.shape)}")
        if skip is not None:
            if skip.perturbed.shape != (batch,):
                raise ValueError(f"SkipLayers.perturbed must have shape ({batch},), got {tuple(skip.perturbed.shape)}")
            bad = [index for index in skip.blocks if not 0 <= index < cfg.num_layers]
            if bad:
                raise ValueError(f"SkipLayers.blocks {bad} out of range 0..{cfg.num_layers - 1}")
