"""LTX-2 video VAE (2.0, 2.3, 2.5 conv decoder): the 0.9.x CausalVideoVAE built from an LTX-2 "vae" config.

The network is the 0.9.x causal VAE family (model/ltxv/vae.py) with the LTX-2 conventions of the official code
(ltx-core 1.0.0 `model/video_vae`), all expressed as VAEConfig fields:
  - encoder width after conv_in = latent_channels (the config's encoder_base_channels is not read);
  - decoder width after conv_in = 8 * decoder_base_channels, so the decoder's channel multipliers must multiply
    to 8 (the released decoders do; other lists are refused rather than built differently from the reference);
  - decoder `compress_time` / `compress_space` may carry a channel multiplier; only `compress_all` is residual;
  - padding: `spatial_padding_mode` for both halves when given, else zeros (encoder) and reflect (decoder);
  - channel-changing res blocks normalize the shortcut with a one-group GroupNorm;
  - `latent_log_var` "uniform" (2.0/2.3) or "constant" (2.5);
  - timestep conditioning: True when the key is absent (ltx-core's configurator default).

Latent convention of the LTX-2 code: encode returns the per-channel *normalized* mean, decode takes a normalized
latent; a timestep-conditioned decoder first mixes in noise (z = 0.025 * noise + 0.975 * z) and decodes at
timestep 0.05 unless told otherwise.

Keys: the file's `vae.*` keys with the prefix stripped (encoder.*, decoder.*, per_channel_statistics.*).
"""

from __future__ import annotations

import torch

from ..ltxv.vae import CausalVideoVAE, DecoderNoise, VAEConfig

DECODE_NOISE_SCALE = 0.025
DECODE_TIMESTEP = 0.05
DECODER_WIDTH_FACTOR = 8  # ltx-core: decoder conv_in width = 8 * decoder_base_channels


def _entries(blocks, what: str) -> list[tuple[str, dict]]:
    if not isinstance(blocks, (list, tuple)) or not blocks:
        raise ValueError(f"LTX-2 VAE config: {what} must be a non-empty list of [name, params], got {blocks!r}")
    out = []
    for entry in blocks:
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise ValueError(f"LTX-2 VAE config: each {what} entry must be [name, params], got {entry!r}")
        name, params = entry
        out.append((name, {"num_layers": params} if isinstance(params, int) else dict(params)))
    return out


def ltx2_vae_config(vae: dict) -> VAEConfig:
    """The file metadata's config["vae"] dict -> VAEConfig, with ltx-core 1.0.0's defaults for absent keys."""
    if not isinstance(vae, dict):
        raise ValueError(f"LTX-2 VAE config: expected a dict, got {type(vae).__name__}")
    for key, supported in (("dims", 3), ("norm_layer", "pixel_norm")):
        if vae.get(key, supported) != supported:
            raise ValueError(f"LTX-2 VAE config: unsupported {key}={vae[key]!r}; supported: {supported!r}")
    for key in ("encoder_blocks", "decoder_blocks"):
        if key not in vae:
            raise ValueError(f"LTX-2 VAE config: missing {key!r} (ltx-core has no default block list)")
    decoder_blocks = []
    multipliers = 1
    for name, params in _entries(vae["decoder_blocks"], "decoder_blocks"):
        if name == "attn_res_x":
            raise ValueError("LTX-2 VAE config: decoder block 'attn_res_x' (attention) is not supported")
        if name in ("compress_time", "compress_space"):
            params.pop("residual", None)  # ltx-core builds these upsamplers without the residual path
        if name.startswith("compress"):
            multipliers *= params.get("multiplier", 1)
        elif name == "res_x_y":
            multipliers *= params.get("multiplier", 2)
        decoder_blocks.append([name, params])
    if multipliers != DECODER_WIDTH_FACTOR:
        raise ValueError(
            f"LTX-2 VAE config: the decoder's channel multipliers multiply to {multipliers}; the LTX-2 decoder "
            f"starts at {DECODER_WIDTH_FACTOR} x decoder_base_channels, so they must multiply to {DECODER_WIDTH_FACTOR}"
        )
    padding = vae.get("spatial_padding_mode")
    latent_channels = int(vae.get("latent_channels", 128))
    return VAEConfig(
        encoder_blocks=[[n, p] for n, p in _entries(vae["encoder_blocks"], "encoder_blocks")],
        decoder_blocks=decoder_blocks,
        in_channels=int(vae.get("in_channels", 3)),
        out_channels=int(vae.get("out_channels", 3)),
        latent_channels=latent_channels,
        patch_size=int(vae.get("patch_size", 4)),
        encoder_base_channels=latent_channels,
        decoder_base_channels=int(vae.get("decoder_base_channels", 128)),
        timestep_conditioning=bool(vae.get("timestep_conditioning", True)),
        causal_decoder=bool(vae.get("causal_decoder", False)),
        spatial_padding_mode=padding or "zeros",
        decoder_spatial_padding_mode=padding or "reflect",
        shortcut_norm="group_norm",
        latent_log_var=vae.get("latent_log_var", "uniform"),
    )


class LTX2VideoVAE(CausalVideoVAE):
    """CausalVideoVAE with the LTX-2 latent convention (normalized latents in and out, decode-time noise)."""

    def encode_normalized(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, 3, 8k+1, H, W) in [-1, 1] -> normalized latent (B, C, k+1, H/32, W/32)."""
        return self.normalize(self.encode(video))

    def decode_normalized(
        self, latent: torch.Tensor, timestep=None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Normalized latent (B, C, f, h, w) -> video (B, 3, 8(f-1)+1, 32h, 32w).

        Timestep-conditioned decoders: noise drawn like ltx-core (torch.randn of the latent's shape, dtype and
        device from `generator`, then the decoder's own noise from the same generator) is mixed in first, and
        timestep defaults to 0.05. Other decoders ignore timestep and generator.
        """
        self._check_latent(latent)
        if self.config.timestep_conditioning:
            noise = torch.randn(latent.shape, generator=generator, dtype=latent.dtype, device=latent.device)
            latent = noise * DECODE_NOISE_SCALE + (1.0 - DECODE_NOISE_SCALE) * latent
            timestep = DECODE_TIMESTEP if timestep is None else timestep
        raw = self.denormalize(latent)
        t = self.decoder_timestep(timestep, raw.shape[0], raw.device)
        return self.decoder(raw.to(self.dtype), t, DecoderNoise(generator)).to(latent.dtype)


def upsample_normalized(latent: torch.Tensor, vae: CausalVideoVAE, upsampler: torch.nn.Module) -> torch.Tensor:
    """Stage-2 input of the two-stage pipeline: normalize(upsampler(denormalize(latent))) (no AdaIN)."""
    return vae.normalize(upsampler(vae.denormalize(latent)))
