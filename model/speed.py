"""Speed options for the DiT: attention backend, torch.compile of the blocks, FP8 linear layers.

Every option degrades to the plain path where the machine cannot do it (CPU, GPUs without FP8 tensor cores, no
Triton): it then warns once and the model still runs. Device-dependent choices are made at each forward from
the device the weights are on, so a model prepared on the CPU and moved to a GPU later (as ComfyUI does) gets
the fast path there.

    transformer = apply_speed_options(transformer, SpeedOptions(attention="auto", compile=True, fp8=False))
"""

import warnings
from contextlib import ExitStack
from dataclasses import dataclass

import torch
from torch import nn

from .blocks.attention import BACKENDS, attention_backend, resolve_backend
from .blocks.fp8 import FP8Linear, convert_linears_to_fp8, fp8_matmul_supported, scaled_mm_mode

ATTENTION_CHOICES = ("auto",) + tuple(BACKENDS)


@dataclass
class SpeedOptions:
    """attention: "auto" (cuDNN attention on Hopper+, PyTorch's choice elsewhere), "sdpa" (PyTorch's choice),
    "cudnn", "flash", "efficient" or "math" (preferred SDPA kernel; PyTorch falls back when it cannot be used).
    compile: torch.compile each transformer block (CUDA with Triton only; the first forward of a new shape
    compiles for tens of seconds). fp8: float8 weights (half the memory); FP8 matmuls on GPUs of compute
    capability >= 8.9, dequantised bf16 matmuls elsewhere. FP8 is inference only: the model cannot be saved
    back to a bf16 checkpoint afterwards.
    cache_text_kv: compute the cross-attention keys/values of the text once per distinct text (and weights)
    instead of at every step. fused_kernels: feed-forward bias + GELU in the matmul epilogue (CUDA)."""

    attention: str = "auto"
    compile: bool = False
    fp8: bool = False
    cache_text_kv: bool = True
    fused_kernels: bool = True

    def __post_init__(self):
        if self.attention not in ATTENTION_CHOICES:
            raise ValueError(f"SpeedOptions.attention must be one of {ATTENTION_CHOICES}, got {self.attention!r}")


def compile_supported() -> tuple[bool, str]:
    """(True, "") when torch.compile can build GPU kernels here, else (False, reason)."""
    if not torch.cuda.is_available():
        return False, "no CUDA GPU"
    if not hasattr(torch.compiler, "set_stance"):
        return False, f"PyTorch {torch.__version__} is too old (needs >= 2.6)"
    from torch.utils._triton import has_triton

    if not has_triton():
        return False, "Triton is not installed or does not support this GPU"
    return True, ""


class TextKVCache:
    """Cross-attention keys/values of every block for the last text seen (the text does not change during a
    sampling run). Recomputed when the text or any weight they depend on changes (in-place weight patches such
    as LoRA bump the tensors' version counters; new tensors change their addresses)."""

    def __init__(self):
        self.text: torch.Tensor | None = None  # a copy of the text the keys/values were computed from
        self.source: tuple | None = None  # (the text tensor passed in, its version counter)
        self.weights_key: tuple | None = None
        self.kv: list[tuple[torch.Tensor, torch.Tensor]] = []

    def clear(self):
        """Drop the cached tensors (e.g. before moving the model off the GPU: the cache keeps them alive)."""
        self.__init__()

    @staticmethod
    def _weights_key(transformer: nn.Module) -> tuple | None:
        modules = [transformer.caption_projection] + [block.attn2 for block in transformer.transformer_blocks]
        try:
            return tuple((p.data_ptr(), p._version) for m in modules for p in m.parameters())
        except RuntimeError:  # inference tensors have no version counter: cannot tell changes apart
            return None

    def get(self, transformer: nn.Module, text: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """text (B, L, caption_channels) -> per block attn2.project_context(caption_projection(text))."""
        key = self._weights_key(transformer)
        source = (text, _version(text))
        if key is None or key != self.weights_key or self.text is None:
            hit = False
        elif self.source is not None and source[0] is self.source[0] and source[1] is not None:
            hit = source[1] == self.source[1]  # the same tensor, unmodified: no need to compare (no GPU sync)
        else:
            hit = (
                self.text.shape == text.shape
                and self.text.dtype == text.dtype
                and self.text.device == text.device
                and torch.equal(self.text, text)
            )
        if not hit:
            context = transformer.caption_projection(text)  # (B, L, D)
            self.kv = [block.attn2.project_context(context) for block in transformer.transformer_blocks]
            self.text, self.weights_key = text.clone(), key
        self.source = source
        return self.kv


def _version(t: torch.Tensor) -> int | None:
    try:
        return t._version
    except RuntimeError:  # inference tensor
        return None


def apply_speed_options(transformer: nn.Module, options: SpeedOptions) -> nn.Module:
    """Apply `options` to an LTXVideoTransformer in place and return it. State-dict keys do not change.

    Call it after the model has its final dtype; calling it again replaces the previous attention/compile
    settings (FP8 conversion cannot be undone).
    """
    for handle in getattr(transformer, "_speed_hooks", ()):
        handle.remove()
    blocks = transformer.transformer_blocks

    fp8_matmuls = False
    if options.fp8:
        convert_linears_to_fp8(blocks)
        fp8_matmuls = torch.cuda.is_available() and fp8_matmul_supported("cuda")
        if not fp8_matmuls:
            warnings.warn(
                "SpeedOptions(fp8=True): no GPU with FP8 matmuls (CUDA compute capability >= 8.9 and "
                "PyTorch with row-scaled torch._scaled_mm) found; weights are stored in FP8 but the "
                "matmuls run dequantised in the activation dtype (memory saving only)",
                stacklevel=2,
            )
        elif not options.compile:
            warnings.warn(
                "SpeedOptions(fp8=True) without compile=True: the per-token activation quantisation runs "
                "unfused and the model is slower than in bf16 (memory saving only); add compile=True "
                "for speed",
                stacklevel=2,
            )

    compiled = False
    if options.compile:
        compiled, reason = compile_supported()
        if compiled:
            for block in blocks:
                block.compile(dynamic=False)
        else:
            warnings.warn(f"SpeedOptions(compile=True): {reason}; running the blocks uncompiled", stacklevel=2)
    if not compiled:
        for block in blocks:
            block._compiled_call_impl = None  # undo an earlier apply_speed_options(compile=True)

    transformer.text_kv_cache = TextKVCache() if options.cache_text_kv else None
    for block in blocks:
        block.ff.net[0].fused_gelu = options.fused_kernels

    stacks: list[ExitStack] = []

    def enter(module, args):
        device = module.proj_out.weight.device
        stack = ExitStack()
        stack.enter_context(attention_backend(resolve_backend(options.attention, device)))
        if options.fp8:
            stack.enter_context(scaled_mm_mode(device.type == "cuda" and fp8_matmul_supported(device)))
        if compiled and device.type != "cuda":
            stack.enter_context(torch.compiler.set_stance("force_eager"))
        stacks.append(stack)

    def leave(module, args, output):
        stacks.pop().close()

    transformer._speed_hooks = (
        transformer.register_forward_pre_hook(enter),
        transformer.register_forward_hook(leave, always_call=True),
    )
    transformer.speed_options = options
    transformer.speed_state = {
        "fp8_matmuls": fp8_matmuls,
        "compiled": compiled,
        "fp8_layers": sum(isinstance(m, FP8Linear) for m in blocks.modules()),
    }
    return transformer


def apply_vae_speed_options(vae: nn.Module, options: SpeedOptions) -> nn.Module:
    """Speed options for a CausalVideoVAE's decoder, in place; returns `vae`. Only options.compile applies: each
    decoder resnet block is compiled, which fuses the norm/modulation/activation temporaries around the
    convolutions and so lowers the decode's activation memory (-25% whole, -19% in chunks at 768x512x121 on an
    H100, at about 8% more time; benchmarks/results). Falls back like the DiT's compile. Same function, same
    state-dict keys. (Channels-last convolution weights and cuDNN autotuning were measured too and were not faster.)
    """
    from .ltxv.vae_layers import ResnetBlock3D

    for handle in getattr(vae, "_speed_hooks", ()):
        handle.remove()
    vae._speed_hooks = ()
    blocks = [m for m in vae.decoder.modules() if isinstance(m, ResnetBlock3D)]
    compiled = False
    if options.compile:
        compiled, reason = compile_supported()
        if not compiled:
            warnings.warn(f"SpeedOptions(compile=True): {reason}; running the VAE decoder uncompiled", stacklevel=2)
    for block in blocks:
        if compiled:
            block.compile()
        else:
            block._compiled_call_impl = None
    if compiled:  # a decode on the CPU (weights moved there) runs eagerly
        stacks: list[ExitStack] = []

        def enter(module, args):
            stack = ExitStack()
            if module.conv_in.conv.weight.device.type != "cuda":
                stack.enter_context(torch.compiler.set_stance("force_eager"))
            stacks.append(stack)

        def leave(module, args, output):
            stacks.pop().close()

        vae._speed_hooks = (
            vae.decoder.register_forward_pre_hook(enter),
            vae.decoder.register_forward_hook(leave, always_call=True),
        )
    return vae
