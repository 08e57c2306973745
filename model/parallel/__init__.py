"""Several GPUs (or CPU processes) over torch.distributed: sequence-parallel and batch-split transformer forwards
for both families, and a distributed chunked VAE decode. The method and why it was chosen: engine.py."""

from .engine import ParallelGroup, init_from_env
from .transformers import (
    SplitTransformer,
    dit_batch_split,
    dit_sequence_parallel,
    ltx2_batch_split,
    ltx2_sequence_parallel,
)
from .vae import decode_distributed, decode_latents_distributed

__all__ = [
    "ParallelGroup",
    "SplitTransformer",
    "init_from_env",
    "dit_sequence_parallel",
    "dit_batch_split",
    "ltx2_sequence_parallel",
    "ltx2_batch_split",
    "decode_distributed",
    "decode_latents_distributed",
]
