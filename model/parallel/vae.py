"""Distributed chunked VAE decode: the pieces of model/ltxv/vae_tiling.decode_tiled decoded on different ranks.

The pieces (temporal chunks x spatial tiles, in decode_tiled's loop order) all have the same shape, because the
last chunk / tile is moved back to end at the border. Piece i is decoded on rank i % W; after each round of W
pieces rank 0 gathers them and blends them exactly as decode_tiled does (same weights, same order of additions),
so the result equals the single-process chunked decode of the same arguments. Works for both families (the LTX-2
video VAE is the same CausalVideoVAE; give it vae.denormalize of the noised latent as decode_normalized does).

Decoder noise (0.9.1): decode_tiled draws full-size noise maps from the generator in draw order and crops them per
piece; every rank does the same from rank 0's generator state (broadcast first), so each piece sees the maps the
single process would. A noise-injecting decoder therefore needs a generator when W > 1.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..ltxv.vae import CausalVideoVAE, ResnetBlock3D
from ..ltxv.vae_tiling import TiledNoise, decode_piece, plan_tiles
from .engine import ParallelGroup


def _injects_noise(vae: CausalVideoVAE) -> bool:
    return any(isinstance(m, ResnetBlock3D) and m.inject_noise for m in vae.decoder.modules())


def _share_generator(generator: torch.Generator, pg: ParallelGroup, device: torch.device) -> None:
    """Every rank's generator takes rank 0's state."""
    state = generator.get_state()
    on_wire = state.to(device) if device.type == "cuda" else state.clone()
    dist.broadcast(on_wire, src=dist.get_global_rank(pg.group, 0) if pg.group else 0, group=pg.group)
    generator.set_state(on_wire.cpu())


@torch.no_grad()
def decode_distributed(
    vae: CausalVideoVAE,
    raw: torch.Tensor,
    timestep=None,
    *,
    generator: torch.Generator | None = None,
    temporal_chunk: int = 16,
    temporal_overlap: int = 3,
    spatial_tile: int | None = None,
    spatial_overlap: int = 4,
    blend: float = 0.5,
    out_device=None,
    group: ParallelGroup | None = None,
) -> torch.Tensor | None:
    """decode_tiled(vae, raw, ...) with its pieces spread over the group -> the video on rank 0, None elsewhere.

    Every rank passes the same raw latent (B, C, f, h, w) and arguments. spatial_tile None: no spatial tiling
    (whole frames; the pieces are temporal chunks). Argument checks and meaning as in decode_tiled.
    """
    pg = group or ParallelGroup.of()
    vae._check_latent(raw)
    batch, _, _, height, width = raw.shape
    if spatial_tile is None:  # whole frames: one tile, no spatial overlap
        spatial_tile, spatial_overlap = max(height, width), 0
    out_device = torch.device(out_device) if out_device is not None else raw.device
    tiling = (temporal_chunk, temporal_overlap, spatial_tile, spatial_overlap, blend)
    plan = plan_tiles(vae, raw.shape, *tiling, out_device, caller="decode_distributed")
    if _injects_noise(vae) and pg.size > 1:
        if generator is None:
            raise ValueError(
                "decode_distributed: this decoder injects noise; pass generator= (a torch.Generator) so every rank "
                "draws the noise maps the single-process decode would"
            )
        _share_generator(generator, pg, raw.device)
    t = vae.decoder_timestep(timestep, batch, raw.device)
    noise = TiledNoise(generator, height, width)
    pieces = plan.pieces
    out = None
    if pg.rank == 0:
        out = torch.zeros(plan.output_shape(batch, vae.config.out_channels), device=out_device)
    for first in range(0, len(pieces), pg.size):
        mine = first + pg.rank
        if mine < len(pieces):
            video = decode_piece(vae, raw, plan, t, noise, *pieces[mine])
        else:  # past the last piece: a placeholder of the first piece's shape
            video = torch.zeros(plan.output_shape(batch, vae.config.out_channels)[:2] + _piece_shape(plan))
            video = video.to(raw.device)
        received = [torch.empty_like(video) for _ in range(pg.size)] if pg.rank == 0 else None
        dist.gather(video, received, dst=dist.get_global_rank(pg.group, 0) if pg.group else 0, group=pg.group)
        if pg.rank != 0:
            continue
        for (i, j, k), piece_video in zip(pieces[first : first + pg.size], received):
            plan.add(out, piece_video.to(out_device), i, j, k)
    if pg.rank != 0:
        return None
    return plan.normalize(out).to(raw.dtype)


def _piece_shape(plan) -> tuple[int, int, int]:
    """Pixel (frames, height, width) of the first piece; every piece has this shape (the pieces overlap instead of
    shrinking at the edges)."""
    return tuple(axis[0][1] - axis[0][0] for axis in plan.spans)


@torch.no_grad()
def decode_latents_distributed(
    vae: CausalVideoVAE,
    latents: torch.Tensor,
    seed: int,
    decode_timestep: float | None = None,
    decode_noise_scale: float | None = None,
    *,
    temporal_chunk: int = 16,
    temporal_overlap: int = 3,
    spatial_tile: int | None = 16,
    spatial_overlap: int = 4,
    blend: float = 0.5,
    out_device=None,
    group: ParallelGroup | None = None,
) -> torch.Tensor | None:
    """model/frontend.decode_latents(vae, latents, seed, ..., tiling="on") over the group (both families): the
    decode noise mixed from the seed's decode generator on every rank, the pieces decoded by decode_distributed.
    -> frames (B, F, H, W, 3) float32 in [0, 1] on rank 0, None elsewhere. The defaults are decode_tiled's."""
    from .. import frontend

    decode_timestep = frontend.DECODE_TIMESTEP if decode_timestep is None else decode_timestep
    decode_noise_scale = frontend.DECODE_NOISE_SCALE if decode_noise_scale is None else decode_noise_scale
    generator = frontend.decode_generator(seed)
    z = latents.float().to(next(vae.parameters()).device)
    timestep = None
    if vae.config.timestep_conditioning:
        z = frontend.mix_decode_noise(z, float(decode_noise_scale), generator)
        timestep = float(decode_timestep)
    tiling = dict(temporal_chunk=temporal_chunk, temporal_overlap=temporal_overlap, spatial_tile=spatial_tile)
    tiling.update(spatial_overlap=spatial_overlap, blend=blend, out_device=out_device, group=group)
    video = decode_distributed(vae, vae.denormalize(z), timestep, generator=generator, **tiling)
    if video is None:
        return None
    return ((video.float().clamp(-1.0, 1.0) + 1.0) / 2.0).permute(0, 2, 3, 4, 1)
