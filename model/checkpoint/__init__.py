"""Loading and saving model files (safetensors only; nothing is ever unpickled), split by job:

files.py        pickle/GGUF refusal, safetensors header checks (truncated files), metadata, JSON, safe writing
keys.py         what a file is from its keys and metadata: detect_family (LTX-Video 0.9.x / LTX-2, version,
                components), describe_keys for error messages
fill.py         modules built on the meta device and filled tensor by tensor, strict key/shape checks
ltxv_config.py  LTX-Video 0.9.x configs inferred from tensor shapes, version of a layout
ltxv.py         LoadedCheckpoint, the official 0.9.x single-file layout (read and write)
diffusers.py    diffusers folders of 0.9.x: config conversion and key renames
upsampler.py    the 0.9.7+ latent upsampler file
loader.py       load_checkpoint: the entry point for 0.9.x weights in any of these layouts (LTX-2 files are sent
                to load_ltx2_checkpoint)
ltx2_config.py  LTX-2 transformer / text-path configs from metadata or tensor shapes, connector metadata fields
ltx2.py         LTX2Checkpoint, load_ltx2_checkpoint (monolith 2.0/2.3, 2.5 split files, fp8 with per-tensor
                scales), text_path_with_gemma (2.5: feature extractor from the Gemma file), check_text_encoder_pair
ltx2_save.py    save_ltx2_checkpoint / official_tensors / ltx2_metadata: the official LTX-2 layout written
ltx2_diffusers.py  diffusers folders of LTX-2 (transformer/, connectors/, vae/, audio_vae/, vocoder/)
fp8_linears.py  fp8-stored linear weights kept as blocks.fp8.FP8Linear (load_ltx2_checkpoint(keep_fp8=True))
"""

from .diffusers import (
    DIFFUSERS_DIT_RENAMES,
    DROPPED_STATISTICS,
    diffusers_dit_key,
    diffusers_root,
    diffusers_vae_key,
    load_diffusers_folder,
    scheduler_metadata_from_diffusers,
    transformer_metadata_from_diffusers,
    vae_generation_from_diffusers,
    vae_metadata_from_diffusers,
)
from .files import (
    COMPUTE_DTYPES,
    PICKLE_SUFFIXES,
    CheckpointError,
    SafetensorsFile,
    TensorInfo,
    check_dtype,
    parse_config,
    read_header,
    read_json,
    refuse_pickle,
    save_safetensors,
)
from .fill import (
    MAX_LISTED,
    assign,
    build_index,
    build_on_meta,
    check_keys,
    convert,
    fill_module,
    merged_index,
    parameters_on_meta,
)
from .keys import (
    COMPONENTS,
    DIT_PREFIX,
    FAMILY_NAMES,
    IGNORED_PREFIXES,
    VAE_PREFIX,
    ModelFile,
    describe_keys,
    detect_family,
)
from .loader import load_checkpoint
from .ltx2 import LTX2Checkpoint, check_text_encoder_pair, load_ltx2_checkpoint, text_path_with_gemma
from .ltx2_save import ltx2_metadata, official_tensors, save_ltx2_checkpoint
from .ltxv import LoadedCheckpoint, checkpoint_of, load_official_file, save_checkpoint
from .ltxv_config import (
    OFFICIAL_HEADS,
    block_indices,
    default_scheduler_config,
    infer_transformer_config,
    infer_vae_config,
    model_configs,
    vae_generation,
    version_string,
)
from .upsampler import infer_upsampler_config, load_latent_upsampler

__all__ = [
    "COMPONENTS",
    "COMPUTE_DTYPES",
    "DIFFUSERS_DIT_RENAMES",
    "DIT_PREFIX",
    "DROPPED_STATISTICS",
    "FAMILY_NAMES",
    "IGNORED_PREFIXES",
    "MAX_LISTED",
    "OFFICIAL_HEADS",
    "PICKLE_SUFFIXES",
    "VAE_PREFIX",
    "CheckpointError",
    "LTX2Checkpoint",
    "LoadedCheckpoint",
    "ModelFile",
    "SafetensorsFile",
    "TensorInfo",
    "assign",
    "block_indices",
    "build_index",
    "build_on_meta",
    "check_dtype",
    "check_keys",
    "check_text_encoder_pair",
    "checkpoint_of",
    "convert",
    "default_scheduler_config",
    "describe_keys",
    "detect_family",
    "diffusers_dit_key",
    "diffusers_root",
    "diffusers_vae_key",
    "fill_module",
    "infer_transformer_config",
    "infer_upsampler_config",
    "infer_vae_config",
    "load_checkpoint",
    "load_diffusers_folder",
    "load_latent_upsampler",
    "load_ltx2_checkpoint",
    "ltx2_metadata",
    "load_official_file",
    "merged_index",
    "model_configs",
    "official_tensors",
    "parameters_on_meta",
    "parse_config",
    "read_header",
    "read_json",
    "refuse_pickle",
    "save_checkpoint",
    "save_ltx2_checkpoint",
    "text_path_with_gemma",
    "save_safetensors",
    "scheduler_metadata_from_diffusers",
    "transformer_metadata_from_diffusers",
    "vae_generation",
    "vae_generation_from_diffusers",
    "vae_metadata_from_diffusers",
    "version_string",
]
