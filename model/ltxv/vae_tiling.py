"""Chunked / tiled VAE decoding with bounded memory.

The latent is cut into overlapping temporal chunks (latent frames) and spatial tiles (latent pixels); each piece is
decoded on its own and written into the output with separable linear blending weights, then normalized by the
summed weights. Peak memory is one piece's decoder activations plus the output video itself (which can live on
another device, `out_device`), independent of the video length and size.

Geometry. A chunk of latent frames [a, a+L) decodes to pixel frames [8a, 8(a+L-1)] of the full video (the chunk's
first latent frame yields a single frame, exactly like frame 0 of a video), so consecutive chunks overlapping by
O latent frames share 8(O-1)+1 pixel frames (O >= 1 is needed to cover every frame). A tile of latent pixels
[a, a+T) decodes to pixels [32a, 32(a+T)); tiles overlapping by O latent pixels share 32*O pixels. The last
chunk/tile is moved back to end at the video border, so every piece has the requested size.

Blending. Inside an overlap of W output pixels/frames the incoming piece's weight rises linearly from 0 to 1 over
the central `blend * W` of the overlap; the outer (1 - blend) * W / 2 on each side belongs entirely to one piece.
Weights of neighbouring pieces sum to 1.

Tolerance. The decoder has no global operation (PixelNorm is per voxel; the timestep embedding does not depend on
the latent; the one exception, the one-group GroupNorm shortcut of an LTX-2 `res_x_y` decoder block, is in no
released decoder), so an output voxel depends only on latents within the decoder's reach (`decoder_reach`, in output
units). Whenever the zero-weight margin (1 - blend) * W / 2 of every overlap covers that reach - `exact_overlap(config,
blend)` gives the smallest such overlaps - the tiled decode equals the plain decode up to float rounding: max abs
difference <= 5e-5 in fp32 for outputs of magnitude ~10 (tested; measured 0 to 2.1e-5). This includes the 0.9.1
decoder noise: the noise maps are drawn once at full size, in the plain decode's order from the same generator /
global RNG, and cropped per tile. For the released decoders the reach is 21.6 (0.9.5), 23.9 (0.9.0) and 30.1
(0.9.1) latent voxels, so exact overlaps (~90-120 latent voxels at blend 0.5) are impractical; with the default
overlaps (3 latent frames = 17 pixel frames, 4 latent pixels = 128 pixels) the result differs from the plain decode
near piece edges (within the reach of an edge), where the cross-fade hides the seam; its size depends on the
weights and is not bounded by this module (random test weights: up to 4.5 on outputs of magnitude 12).

Memory. A piece's activations are estimated by `estimate_decode_bytes`; the assembled output is a float32 tensor of
the full video on `out_device` (plus a copy in raw's dtype when that differs), and three 1D weight sums.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from .vae import CausalVideoVAE
from .vae_config import VAEConfig, compress_stride
from .vae_layers import DecoderNoise, DepthToSpaceUpsample, ResnetBlock3D


def decoder_reach(config: VAEConfig) -> tuple[int, int]:
    """Reach of the decoder in output units: (pixel frames, pixels).

    A 3x3x3 conv at a level whose voxels are s output units apart makes a voxel depend on its neighbours s units
    away (a causal decoder: two voxels back); depth-to-space only refines the grid. So an output voxel at distance
    d from the edge of a piece is unaffected by the piece's edge padding when d >= sum over convs of their level's
    spacing (conv_in, the res-block convs, the convs of the upsamplers, conv_out).
    """
    step_t, step_s = config.decoder_factors  # output units between neighbouring voxels at the latent level
    conv_t = 2 if config.causal_decoder else 1
    convs = 1  # conv_in
    reach_t = reach_s = 0
    for name, params in reversed(config.decoder_blocks):
        if name == "res_x":
            convs += 2 * params["num_layers"]
        elif name == "res_x_y":
            convs += 2
        else:
            convs += 1
            reach_t, reach_s = reach_t + convs * conv_t * step_t, reach_s + convs * step_s
            stride = compress_stride(name)
            step_t, step_s, convs = step_t // stride[0], step_s // stride[1], 0
    convs += 1  # conv_out
    return reach_t + convs * conv_t * step_t, reach_s + convs * step_s


def _ramp(distance: torch.Tensor, width: int, blend: float) -> torch.Tensor:
    """Weight of a piece at `distance` output steps from its edge inside an overlap of `width` steps."""
    ramp = max(1, round(blend * width))
    margin = (width - ramp) / 2
    return ((distance - margin + 0.5) / ramp).clamp(0.0, 1.0)


def _first_weighted(width: int, blend: float) -> int:
    """Smallest distance from a piece's edge at which _ramp is > 0."""
    ramp = max(1, round(blend * width))
    return math.floor((width - ramp) / 2 - 0.5) + 1


def exact_overlap(config: VAEConfig, blend: float = 0.5) -> tuple[int, int]:
    """(temporal_overlap, spatial_overlap) in latent units for which decode_tiled equals the plain decode."""
    if not 0.0 <= blend < 1.0:
        raise ValueError(f"exact_overlap: blend must be in [0, 1) (a full-width ramp is never exact), got {blend}")
    reach_t, reach_s = decoder_reach(config)
    temporal_factor, spatial_factor = config.decoder_factors
    overlap_t = 1
    while _first_weighted(temporal_factor * (overlap_t - 1) + 1, blend) < reach_t:
        overlap_t += 1
    overlap_s = 0
    while _first_weighted(spatial_factor * overlap_s, blend) < reach_s:
        overlap_s += 1
    return overlap_t, overlap_s


def _starts(length: int, piece: int, overlap: int) -> list[int]:
    """Start indices of pieces of size `piece` overlapping by `overlap` that cover range(length)."""
    if piece >= length:
        return [0]
    return list(range(0, length - piece, piece - overlap)) + [length - piece]


def _axis_weights(spans: list[tuple[int, int]], blend: float, device) -> list[torch.Tensor]:
    """Per-piece 1D blending weights for pieces covering output ranges spans[i] = (start, end)."""
    weights = []
    for i, (start, end) in enumerate(spans):
        distance = torch.arange(end - start, device=device, dtype=torch.float32)
        w = torch.ones(end - start, device=device)
        if i > 0:
            w = w * _ramp(distance, spans[i - 1][1] - start, blend)
        if i + 1 < len(spans):
            w = w * _ramp(distance.flip(0), end - spans[i + 1][0], blend)
        weights.append(w)
    return weights


class TiledNoise(DecoderNoise):
    """Decoder noise for tiles: full-size maps drawn in the plain decode's order, cropped to the current tile."""

    def __init__(self, generator: torch.Generator | None, latent_height: int, latent_width: int):
        super().__init__(generator)
        self.latent_size = (latent_height, latent_width)
        self.maps: list[torch.Tensor] = []
        self.window = (0, 0, latent_height, latent_width)
        self.index = 0

    def start_tile(self, y0: int, x0: int, height: int, width: int):
        self.window, self.index = (y0, x0, height, width), 0

    def draw(self, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
        y0, x0, tile_h, tile_w = self.window
        sy, sx = height // tile_h, width // tile_w  # feature pixels per latent pixel at this decoder level
        if self.index == len(self.maps):
            self.maps.append(super().draw(self.latent_size[0] * sy, self.latent_size[1] * sx, like))
        full = self.maps[self.index]
        self.index += 1
        return full[y0 * sy : y0 * sy + height, x0 * sx : x0 * sx + width]


@dataclass(frozen=True)
class TilePlan:
    """The pieces of a tiled decode: per axis (time, height, width) the latent start of each piece, the piece size
    in latents, the pixel span it decodes to and its blending weights over that span."""

    starts: tuple[list[int], list[int], list[int]]
    sizes: tuple[int, int, int]
    spans: tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int]]]
    weights: tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]

    @property
    def pieces(self) -> list[tuple[int, int, int]]:
        """(i, j, k) piece indices in the plain decode's order (time, then rows, then columns)."""
        n_t, n_y, n_x = (len(axis) for axis in self.starts)
        return [(i, j, k) for i in range(n_t) for j in range(n_y) for k in range(n_x)]

    def latent(self, raw: torch.Tensor, i: int, j: int, k: int) -> torch.Tensor:
        (st, sy, sx), (nt, ny, nx) = (self.starts[0][i], self.starts[1][j], self.starts[2][k]), self.sizes
        return raw[:, :, st : st + nt, sy : sy + ny, sx : sx + nx]

    def add(self, out: torch.Tensor, video: torch.Tensor, i: int, j: int, k: int) -> None:
        """out[span] += the piece's video times its weights."""
        (t0, t1), (y0, y1), (x0, x1) = self.spans[0][i], self.spans[1][j], self.spans[2][k]
        wt, wy, wx = self.weights[0][i], self.weights[1][j], self.weights[2][k]
        out[:, :, t0:t1, y0:y1, x0:x1] += video * (wt[:, None, None] * wy[None, :, None] * wx[None, None, :])

    def normalize(self, out: torch.Tensor) -> torch.Tensor:
        """Divide the accumulated video by the summed weights (1 away from overlaps)."""
        sums = []
        for spans, weights in zip(self.spans, self.weights):
            total = torch.zeros(spans[-1][1], device=out.device)
            for (a, b), w in zip(spans, weights):
                total[a:b] += w
            sums.append(total)
        return out / (sums[0][:, None, None] * sums[1][None, :, None] * sums[2][None, None, :])

    def output_shape(self, batch: int, channels: int) -> tuple[int, ...]:
        return (batch, channels, self.spans[0][-1][1], self.spans[1][-1][1], self.spans[2][-1][1])


def plan_tiles(
    vae: CausalVideoVAE,
    raw_shape,
    temporal_chunk: int,
    temporal_overlap: int,
    spatial_tile: int,
    spatial_overlap: int,
    blend: float,
    device,
    caller: str = "decode_tiled",
) -> TilePlan:
    """The TilePlan of a raw latent of shape (B, C, f, h, w); ValueError naming `caller` for bad arguments."""
    if not (1 <= temporal_overlap < temporal_chunk):
        raise ValueError(
            f"{caller}: need 1 <= temporal_overlap < temporal_chunk, "
            f"got overlap {temporal_overlap}, chunk {temporal_chunk}"
        )
    if not (0 <= spatial_overlap < spatial_tile):
        raise ValueError(
            f"{caller}: need 0 <= spatial_overlap < spatial_tile, got overlap {spatial_overlap}, tile {spatial_tile}"
        )
    if not 0.0 <= blend <= 1.0:
        raise ValueError(f"{caller}: blend must be in [0, 1], got {blend}")
    _, _, frames, height, width = raw_shape
    tf, sf = vae.config.temporal_factor, vae.config.spatial_factor
    starts = (
        _starts(frames, temporal_chunk, temporal_overlap),
        _starts(height, spatial_tile, spatial_overlap),
        _starts(width, spatial_tile, spatial_overlap),
    )
    size_t, size_y, size_x = min(temporal_chunk, frames), min(spatial_tile, height), min(spatial_tile, width)
    spans = (
        [(tf * s, tf * (s + size_t - 1) + 1) for s in starts[0]],
        [(sf * s, sf * (s + size_y)) for s in starts[1]],
        [(sf * s, sf * (s + size_x)) for s in starts[2]],
    )
    weights = tuple(_axis_weights(axis, blend, device) for axis in spans)
    return TilePlan(starts, (size_t, size_y, size_x), spans, weights)


def decode_piece(vae: CausalVideoVAE, raw: torch.Tensor, plan: TilePlan, timestep, noise: TiledNoise, i, j, k):
    """Piece (i, j, k) of the plan decoded -> float32 video (B, 3, t1 - t0, y1 - y0, x1 - x0) on raw's device."""
    noise.start_tile(plan.starts[1][j], plan.starts[2][k], plan.sizes[1], plan.sizes[2])
    return vae.decoder(plan.latent(raw, i, j, k).to(vae.dtype), timestep, noise).float()


@torch.no_grad()
def decode_tiled(
    vae: CausalVideoVAE,
    raw: torch.Tensor,
    timestep=None,
    *,
    generator: torch.Generator | None = None,
    temporal_chunk: int = 16,
    temporal_overlap: int = 3,
    spatial_tile: int = 16,
    spatial_overlap: int = 4,
    blend: float = 0.5,
    out_device=None,
) -> torch.Tensor:
    """Decode raw latent (B, C, f, h, w) piece by piece -> video (B, 3, 8(f-1)+1, 32h, 32w), same as vae.decode.

    temporal_chunk / temporal_overlap: latent frames per chunk and shared by neighbouring chunks (overlap >= 1).
    spatial_tile / spatial_overlap: latent pixels per tile side and shared by neighbouring tiles.
    blend: fraction of each overlap over which the linear cross-fade runs (centred; 0 = hard cut in the middle).
    out_device: where the output video is assembled (default raw.device), e.g. "cpu" to keep the GPU free.
    Tolerance versus vae.decode: see the module docstring (exact to float rounding with `exact_overlap`).
    """
    vae._check_latent(raw)
    out_device = torch.device(out_device) if out_device is not None else raw.device
    tiling = (temporal_chunk, temporal_overlap, spatial_tile, spatial_overlap, blend)
    plan = plan_tiles(vae, raw.shape, *tiling, out_device)
    batch, _, _, height, width = raw.shape
    t = vae.decoder_timestep(timestep, batch, raw.device)
    noise = TiledNoise(generator, height, width)
    out = torch.zeros(plan.output_shape(batch, vae.config.out_channels), device=out_device, dtype=torch.float32)
    for i, j, k in plan.pieces:
        plan.add(out, decode_piece(vae, raw, plan, t, noise, i, j, k).to(out_device), i, j, k)
    return plan.normalize(out).to(raw.dtype)


def estimate_decode_bytes(
    vae: CausalVideoVAE, latent_shape: tuple[int, int, int, int], dtype: torch.dtype | None = None
) -> int:
    """Estimated peak memory of vae.decode for a latent of shape (B, f, h, w), in bytes (output included).

    Eight tensors of the decoder's largest activation (a res block keeps its input, the normalized and modulated
    copies, the frame-padded copy and the conv output alive at once) plus the output video. Measured on an H100
    (bf16, inference mode, 0.9.0/0.9.1/0.9.5 decoders, 121x512x768): plain decode 5.70 GiB peak vs 6.2 GiB
    estimated; 16x16 and 8x8-latent tiles 4.45 / 1.00 GiB peak vs 4.6 / 1.04 GiB estimated (fp32 output included).
    """
    batch, frames, height, width = latent_shape
    element = torch.finfo(dtype or vae.dtype).bits // 8
    channels = vae.decoder.conv_in.conv.out_channels
    largest = channels * frames * height * width
    for block in vae.decoder.up_blocks:
        if isinstance(block, DepthToSpaceUpsample):
            conv_out = block.conv.conv.out_channels
            largest = max(largest, conv_out * (frames + 2) * height * width)
            s0, s1, s2 = block.stride
            channels = conv_out // (s0 * s1 * s2)
            frames, height, width = frames * s0 - (s0 - 1), height * s1, width * s2
        elif isinstance(block, ResnetBlock3D):
            channels = block.conv2.conv.out_channels
        largest = max(largest, channels * (frames + 2) * height * width)
    final = vae.decoder.conv_out.conv.out_channels * frames * height * width
    return batch * element * (8 * max(largest, final) + final)


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.8)
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * 0.5)


@torch.no_grad()
def decode_auto(
    vae: CausalVideoVAE,
    raw: torch.Tensor,
    timestep=None,
    *,
    generator: torch.Generator | None = None,
    memory_budget: int | None = None,
    temporal_overlap: int = 3,
    spatial_overlap: int = 4,
    blend: float = 0.5,
    out_device=None,
) -> torch.Tensor:
    """vae.decode when its estimated peak fits `memory_budget` bytes (default: 80% of free GPU memory, or half of
    the available RAM on CPU), else decode_tiled with the largest chunk/tile sizes whose estimate fits (spatial
    tiles are shrunk first, down to overlap + 4 latent pixels, then temporal chunks, down to overlap + 1). Either way
    the video is returned on out_device (default raw.device)."""
    vae._check_latent(raw)
    budget = memory_budget if memory_budget is not None else _available_bytes(raw.device)
    batch, _, frames, height, width = raw.shape
    output = (
        batch
        * vae.config.out_channels
        * (vae.config.temporal_factor * (frames - 1) + 1)
        * height
        * width
        * vae.config.spatial_factor**2
        * 4
    )
    if estimate_decode_bytes(vae, (batch, frames, height, width)) <= budget:
        video = vae.decode(raw, timestep, generator)
        return video if out_device is None else video.to(out_device)
    tile, chunk = max(height, width), frames
    min_tile, min_chunk = spatial_overlap + 4, temporal_overlap + 1
    while estimate_decode_bytes(vae, (batch, chunk, min(tile, height), min(tile, width))) + output > budget:
        if tile > min_tile:
            tile = max(min_tile, math.ceil(tile / 2))
        elif chunk > min_chunk:
            chunk = max(min_chunk, math.ceil(chunk / 2))
        else:
            break  # smallest pieces: decode anyway
    return decode_tiled(
        vae,
        raw,
        timestep,
        generator=generator,
        temporal_chunk=max(chunk, min_chunk),
        spatial_tile=max(tile, spatial_overlap + 1),
        temporal_overlap=temporal_overlap,
        spatial_overlap=spatial_overlap,
        blend=blend,
        out_device=out_device,
    )
