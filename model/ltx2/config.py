"""Configuration of the LTX-2 audio+video transformer: one frozen dataclass, presets for the released versions,
and the mapping from/to the official `config["transformer"]` checkpoint metadata.

Field names are the official metadata keys where one exists; `video`/`audio` say which streams are built
(the official LTXModelType: AudioVideo, VideoOnly, AudioOnly).
"""

from dataclasses import asdict, dataclass, replace

ROPE_TYPES = ("split", "interleaved")

# Official metadata keys that must hold one value for the architecture built here.
# key: (required value, value the official code assumes when the key is absent)
_FIXED_KEYS = {
    "dropout": (0.0, 0.0),
    "attention_bias": (True, True),
    "num_vector_embeds": (None, None),
    "activation_fn": ("gelu-approximate", "gelu-approximate"),
    "num_embeds_ada_norm": (1000, 1000),
    "use_linear_projection": (False, False),
    "only_cross_attention": (False, False),
    "cross_attention_norm": (True, True),
    "double_self_attention": (False, False),
    "upcast_attention": (False, False),
    "standardization_norm": ("rms_norm", "rms_norm"),
    "norm_elementwise_affine": (False, False),
    "qk_norm": ("rms_norm", "rms_norm"),
    "positional_embedding_type": ("rope", "rope"),
    "use_middle_indices_grid": (True, True),
    "share_ff": (False, False),
    "av_cross_ada_norm": (True, True),
}


@dataclass(frozen=True)
class AVTransformerConfig:
    num_layers: int
    num_attention_heads: int = 32
    attention_head_dim: int = 128
    cross_attention_dim: int = 4096  # width of the video text context (after connector / caption projection)
    in_channels: int = 128
    out_channels: int = 128
    audio_num_attention_heads: int = 32
    audio_attention_head_dim: int = 64
    audio_cross_attention_dim: int = 2048  # audio text context width; also the A<->V cross RoPE width
    audio_in_channels: int = 128
    audio_out_channels: int = 128
    caption_channels: int | None = None  # set: caption projections (text width -> D) inside the transformer (2.0)
    norm_eps: float = 1e-6
    positional_embedding_theta: float = 10000.0
    positional_embedding_max_pos: tuple[int, ...] = (20, 2048, 2048)  # video: seconds, px, px
    audio_positional_embedding_max_pos: tuple[int, ...] = (20,)  # audio: seconds
    timestep_scale_multiplier: float = 1000.0
    av_ca_timestep_scale_multiplier: float = 1000.0
    rope_type: str = "split"
    rope_float64: bool = True  # metadata frequencies_precision == "float64"
    apply_gated_attention: bool = False
    cross_attention_adaln: bool = False  # 9-row block tables, text-query modulation, prompt K/V modulation
    use_prompt_adaln_single: bool = True  # prompt K/V modulation depends on sigma (False: static table only)
    ff_bias: bool = True
    audio_ff_bias: bool = True
    use_keyframes_abs_pos_embedding: bool = False
    video: bool = True
    audio: bool = True

    def __post_init__(self):
        ints = ["num_layers"]
        if self.video:
            ints += ["num_attention_heads", "attention_head_dim", "cross_attention_dim", "in_channels", "out_channels"]
        if self.audio:
            ints += [
                "audio_num_attention_heads",
                "audio_attention_head_dim",
                "audio_cross_attention_dim",
                "audio_in_channels",
                "audio_out_channels",
            ]
        for name in ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"AVTransformerConfig.{name} must be an integer >= 1, got {value!r}")
        if not (self.video or self.audio):
            raise ValueError("AVTransformerConfig: video and audio are both False; build at least one stream")
        if self.rope_type not in ROPE_TYPES:
            raise ValueError(f"AVTransformerConfig.rope_type must be one of {ROPE_TYPES}, got {self.rope_type!r}")
        if self.caption_channels is not None and (
            not isinstance(self.caption_channels, int) or self.caption_channels < 1
        ):
            raise ValueError(
                f"AVTransformerConfig.caption_channels must be None or an integer >= 1, got {self.caption_channels!r}"
            )
        if self.video:
            self._check_rope("video", self.inner_dim, self.num_attention_heads, self.positional_embedding_max_pos, 3)
            if self.caption_channels is not None and self.cross_attention_dim != self.inner_dim:
                raise ValueError(
                    f"AVTransformerConfig.cross_attention_dim must equal num_attention_heads * attention_head_dim = "
                    f"{self.inner_dim} when the caption projection is in the transformer, got {self.cross_attention_dim}"
                )
        if self.audio:
            self._check_rope(
                "audio",
                self.audio_inner_dim,
                self.audio_num_attention_heads,
                self.audio_positional_embedding_max_pos,
                1,
            )
            if self.caption_channels is not None and self.audio_cross_attention_dim != self.audio_inner_dim:
                raise ValueError(
                    f"AVTransformerConfig.audio_cross_attention_dim must equal audio heads * head_dim = "
                    f"{self.audio_inner_dim} when the caption projection is in the transformer, "
                    f"got {self.audio_cross_attention_dim}"
                )
        if self.video and self.audio:
            # The A<->V attentions use the audio heads; their RoPE spans audio_cross_attention_dim split over the
            # video heads (video queries) and the audio heads (audio keys): the official model needs them equal.
            if self.audio_num_attention_heads != self.num_attention_heads:
                raise ValueError(
                    f"AVTransformerConfig: audio_num_attention_heads ({self.audio_num_attention_heads}) must equal "
                    f"num_attention_heads ({self.num_attention_heads}) (shared A<->V cross-attention RoPE)"
                )
            if self.audio_cross_attention_dim != self.audio_inner_dim:
                raise ValueError(
                    f"AVTransformerConfig.audio_cross_attention_dim must equal audio heads * head_dim = "
                    f"{self.audio_inner_dim} (the A<->V attention width its RoPE rotates), "
                    f"got {self.audio_cross_attention_dim}"
                )
        if not self.positional_embedding_theta > 1:
            raise ValueError(
                f"AVTransformerConfig.positional_embedding_theta must be > 1, got {self.positional_embedding_theta}"
            )

    def _check_rope(self, stream: str, dim: int, heads: int, max_pos: tuple, axes: int) -> None:
        if len(max_pos) != axes or min(max_pos) <= 0:
            raise ValueError(
                f"AVTransformerConfig: {stream} positional max_pos must be {axes} positive numbers, got {max_pos!r}"
            )
        if self.rope_type == "split" and (dim // heads) % 2:
            raise ValueError(f"AVTransformerConfig: {stream} head dim {dim // heads} must be even for split RoPE")
        if dim % 2:
            raise ValueError(f"AVTransformerConfig: {stream} width {dim} must be even (RoPE rotates pairs)")

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @property
    def audio_inner_dim(self) -> int:
        return self.audio_num_attention_heads * self.audio_attention_head_dim

    @property
    def adaln_coefficient(self) -> int:
        """Rows of each block's modulation table: 6, or 9 with cross-attention AdaLN."""
        return 9 if self.cross_attention_adaln else 6

    @property
    def cross_pe_max_pos(self) -> int:
        """Temporal max position of the A<->V cross-attention RoPE."""
        return max(self.positional_embedding_max_pos[0], self.audio_positional_embedding_max_pos[0])

    @classmethod
    def from_metadata(cls, transformer: dict, video: bool = True, audio: bool = True) -> "AVTransformerConfig":
        """From the official `config["transformer"]` metadata dict; absent keys take the official loader's defaults
        (ltx-core 1.0.0 `LTXModelConfigurator`, with HEAD's 2.5 keys). Text-side keys (connector_*, ...) are
        ignored."""
        d = transformer
        for key, (required, absent_default) in _FIXED_KEYS.items():
            value = d.get(key, absent_default)
            if value != required:
                found = f"{value!r}" if key in d else f"absent (official default {absent_default!r})"
                raise ValueError(f"transformer config: {key} must be {required!r}, found {found}")
        if d.get("use_audio_video_cross_attention", True) is not True and video and audio:
            raise ValueError("transformer config: use_audio_video_cross_attention is False; audio+video needs True")
        precision = d.get("frequencies_precision", "float32")
        if precision not in ("float32", "float64", False, None):
            raise ValueError(f"transformer config: frequencies_precision must be float32 or float64, got {precision!r}")
        caption_in_transformer = not d.get("caption_proj_before_connector", False)
        if caption_in_transformer and d.get("caption_channels") is None:
            raise ValueError(
                "transformer config: caption_channels is missing while caption_proj_before_connector is False "
                "(the 2.0 layout needs the text width of the caption projection)"
            )
        return cls(
            num_layers=d.get("num_layers", 48),
            num_attention_heads=d.get("num_attention_heads", 32),
            attention_head_dim=d.get("attention_head_dim", 128),
            cross_attention_dim=d.get("cross_attention_dim", 4096),
            in_channels=d.get("in_channels", 128),
            out_channels=d.get("out_channels") or d.get("in_channels", 128),
            audio_num_attention_heads=d.get("audio_num_attention_heads", 32),
            audio_attention_head_dim=d.get("audio_attention_head_dim", 64),
            audio_cross_attention_dim=d.get("audio_cross_attention_dim", 2048),
            audio_in_channels=d.get("audio_in_channels", 128),
            audio_out_channels=d.get("audio_out_channels") or d.get("audio_in_channels", 128),
            caption_channels=d["caption_channels"] if caption_in_transformer else None,
            norm_eps=float(d.get("norm_eps", 1e-6)),
            positional_embedding_theta=float(d.get("positional_embedding_theta", 10000.0)),
            positional_embedding_max_pos=tuple(d.get("positional_embedding_max_pos", (20, 2048, 2048))),
            audio_positional_embedding_max_pos=tuple(d.get("audio_positional_embedding_max_pos", (20,))),
            timestep_scale_multiplier=float(d.get("timestep_scale_multiplier", 1000)),
            av_ca_timestep_scale_multiplier=float(d.get("av_ca_timestep_scale_multiplier", 1)),
            rope_type=str(d.get("rope_type", "interleaved")).lower(),
            rope_float64=precision == "float64",
            apply_gated_attention=bool(d.get("apply_gated_attention", False)),
            cross_attention_adaln=bool(d.get("cross_attention_adaln", False)),
            use_prompt_adaln_single=bool(d.get("use_prompt_adaln_single", True)),
            ff_bias=bool(d.get("ff_bias", True)),
            audio_ff_bias=bool(d.get("audio_ff_bias", True)),
            use_keyframes_abs_pos_embedding=bool(d.get("use_keyframes_abs_pos_embedding", False)),
            video=video,
            audio=audio,
        )

    def to_metadata(self) -> dict:
        """The official `config["transformer"]` dict for this architecture (from_metadata reads it back)."""
        d = {key: required for key, (required, _) in _FIXED_KEYS.items()}
        fields = asdict(self)
        for name in ("video", "audio", "rope_float64", "caption_channels"):
            fields.pop(name)
        fields["positional_embedding_max_pos"] = list(self.positional_embedding_max_pos)
        fields["audio_positional_embedding_max_pos"] = list(self.audio_positional_embedding_max_pos)
        d.update(fields)
        d["frequencies_precision"] = "float64" if self.rope_float64 else "float32"
        d["caption_proj_before_connector"] = self.caption_channels is None
        d["caption_channels"] = self.caption_channels
        d["use_audio_video_cross_attention"] = self.video and self.audio
        return d


def ltx2_0_19b() -> AVTransformerConfig:
    """LTX-2.0 (19B): caption projections in the transformer (Gemma 3 width 3840), no gates, no cross AdaLN."""
    return AVTransformerConfig(num_layers=48, caption_channels=3840)


def ltx2_3_22b() -> AVTransformerConfig:
    """LTX-2.3 (22B): gated attention, cross-attention AdaLN with prompt AdaLN; projections in the text encoder."""
    return AVTransformerConfig(num_layers=48, apply_gated_attention=True, cross_attention_adaln=True)


def ltx2_5_22b() -> AVTransformerConfig:
    """LTX-2.5 (22B): 2.3 plus video feed-forward without bias and the keyframe absolute position embedding."""
    return replace(ltx2_3_22b(), ff_bias=False, use_keyframes_abs_pos_embedding=True)


PRESETS = {"2.0-19b": ltx2_0_19b, "2.3-22b": ltx2_3_22b, "2.5-22b": ltx2_5_22b}


def tiny(version: str = "2.3", **overrides) -> AVTransformerConfig:
    """A 2-layer config with the flags of `version` ("2.0", "2.3", "2.5") for tests: 2 heads, video 2x16, audio 2x8."""
    flags = {
        "2.0": dict(caption_channels=24),
        "2.3": dict(apply_gated_attention=True, cross_attention_adaln=True),
        "2.5": dict(
            apply_gated_attention=True, cross_attention_adaln=True, ff_bias=False, use_keyframes_abs_pos_embedding=True
        ),
    }
    if version not in flags:
        raise ValueError(f"tiny: version must be one of {sorted(flags)}, got {version!r}")
    base = dict(
        num_layers=2,
        num_attention_heads=2,
        attention_head_dim=16,
        cross_attention_dim=32,
        in_channels=8,
        out_channels=8,
        audio_num_attention_heads=2,
        audio_attention_head_dim=8,
        audio_cross_attention_dim=16,
        audio_in_channels=6,
        audio_out_channels=6,
    )
    return AVTransformerConfig(**{**base, **flags[version], **overrides})
