"""The pack lives inside a host process with other packs: nothing it does may leave global PyTorch state changed
(SDPA backend priorities and switches, matmul precision, cuDNN flags, compile stance, default dtype, grad mode,
threads). Every model entry point with every speed option is run, also one that fails half-way, and the global
state is compared before and after."""

import pytest
import torch
from test_streaming import make_inputs, make_model
from videodit.model.blocks import attention as attention_module
from videodit.model.speed import ATTENTION_CHOICES, SpeedOptions, apply_speed_options
from videodit.model.streaming import stream_blocks


def global_state() -> dict:
    state = {
        "sdp_priority": list(torch._C._get_sdp_priority_order()),
        "flash": torch.backends.cuda.flash_sdp_enabled(),
        "mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
        "math": torch.backends.cuda.math_sdp_enabled(),
        "cudnn_sdp": torch.backends.cuda.cudnn_sdp_enabled(),
        "matmul_precision": torch.get_float32_matmul_precision(),
        "cuda_tf32": torch.backends.cuda.matmul.allow_tf32,
        "fp16_reduced": torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
        "cudnn": (
            torch.backends.cudnn.enabled,
            torch.backends.cudnn.benchmark,
            torch.backends.cudnn.deterministic,
            torch.backends.cudnn.allow_tf32,
        ),
        "default_dtype": torch.get_default_dtype(),
        "grad": torch.is_grad_enabled(),
        "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "pack_attention_backend": attention_module._current,
    }
    stance = getattr(torch.compiler, "_get_current_stance", None)
    if stance is not None:
        state["compile_stance"] = repr(stance())
    return state


@pytest.mark.parametrize("attention", ATTENTION_CHOICES)
@pytest.mark.parametrize("compile_blocks", [False, True])
def test_speed_options_leave_global_state_as_they_found_it(attention, compile_blocks):
    before = global_state()
    model = apply_speed_options(make_model(), SpeedOptions(attention=attention, compile=compile_blocks))
    with torch.no_grad():
        model(**make_inputs())
        bad = make_inputs()
        bad["text"] = bad["text"][..., :5]  # wrong caption width: fails inside the model's context
        with pytest.raises(ValueError, match="text must be"):
            model(**bad)
    assert global_state() == before


def test_streaming_leaves_global_state_as_it_found_it():
    before = global_state()
    model = make_model()
    streamer = stream_blocks(model, model.transformer_blocks, "cpu", resident=2)
    with torch.no_grad():
        model(**make_inputs())
    streamer.remove()
    assert global_state() == before
