"""Weight streaming (model/streaming.py): same outputs as the resident model, bounded blocks on the device, and
the block weights back in host memory after each forward. On the CPU the "device" copies are real copies (clones),
so the bookkeeping is exercised; the overlap on a side stream is measured by benchmarks/streaming.py on a GPU."""

import pytest
import torch
from videodit.model.ltxv.dit import LTXVideoTransformer, TransformerConfig
from videodit.model.ltxv.positions import video_coords
from videodit.model.streaming import (
    BlockStreamer,
    kept_blocks,
    module_bytes,
    place_model,
    plan_resident_blocks,
    stream_blocks,
)

CONFIG = TransformerConfig(
    num_layers=5,
    num_attention_heads=4,
    attention_head_dim=16,
    cross_attention_dim=64,
    caption_channels=32,
    in_channels=16,
    out_channels=16,
    causal_temporal_positioning=True,
)


def make_model() -> LTXVideoTransformer:
    torch.manual_seed(0)
    model = LTXVideoTransformer(CONFIG).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def make_inputs() -> dict:
    gen = torch.Generator().manual_seed(1)
    return dict(
        tokens=torch.randn(2, 24, 16, generator=gen),
        coords=video_coords(2, 2, 3, 4, 25.0, True),
        text=torch.randn(2, 7, 32, generator=gen),
        text_mask=torch.ones(2, 7),
        timestep=torch.rand(2, 1, generator=gen),
    )


@pytest.mark.parametrize("resident, window", [(2, 3), (3, 3), (4, 2), (5, 3)])
def test_streamed_forward_equals_the_resident_model(resident, window):
    model, inputs = make_model(), make_inputs()
    with torch.no_grad():
        expected = model(**inputs)
        streamer = stream_blocks(model, model.transformer_blocks, "cpu", resident=resident, window=window)
        host = [{n: t.data_ptr() for n, t in block.named_parameters()} for block in model.transformer_blocks]
        first = model(**inputs)
        second = model(**inputs)  # a second forward streams again from the same host copies
    assert torch.equal(first, expected) and torch.equal(second, expected)  # same process, same tensors: exact
    slots = min(window, resident)
    kept = CONFIG.num_layers if resident >= CONFIG.num_layers else resident - slots
    assert len(streamer.kept) == kept and streamer.loaded_peak == min(slots, CONFIG.num_layers - kept)
    after = [{n: t.data_ptr() for n, t in block.named_parameters()} for block in model.transformer_blocks]
    assert after == host  # streamed blocks are on their host copies again, nothing left on the "device"
    assert all(c.gpu is None for c in streamer.copies.values())
    streamer.remove()
    with torch.no_grad():
        assert torch.equal(model(**inputs), expected)


def test_kept_blocks_are_spread_over_the_stack():
    assert kept_blocks(48, 26, 3) == frozenset(range(48)) - {int((j + 0.5) * 48 / 25) for j in range(25)}
    assert len(kept_blocks(48, 26, 3)) == 23
    assert kept_blocks(6, 4, 2) == frozenset({1, 4})  # 2 kept, 4 streamed through 2 slots
    assert kept_blocks(5, 5, 3) == frozenset(range(5)) and kept_blocks(5, 3, 3) == frozenset()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (side-stream copies)")
def test_streamed_forward_on_the_gpu_equals_the_resident_model():
    model, inputs = make_model(), make_inputs()
    with torch.no_grad():
        expected = model.to("cuda")(**{k: v.to("cuda") for k, v in inputs.items()})
        model.to("cpu")
        streamer = stream_blocks(model, model.transformer_blocks, "cuda", resident=3, window=2)
        got = model(**{k: v.to("cuda") for k, v in inputs.items()})
        streamer.remove()
    assert torch.equal(got, expected), (got - expected).abs().max()


def test_streamer_refuses_fewer_than_two_resident_blocks():
    model = make_model()
    with pytest.raises(ValueError, match="resident must be >= 2"):
        stream_blocks(model, model.transformer_blocks, "cpu", resident=1)


def test_plan_resident_blocks_from_free_memory():
    blocks = make_model().transformer_blocks
    per_block = module_bytes(blocks[0])
    assert plan_resident_blocks(blocks, free_bytes=10 * per_block, reserve_bytes=0) is None  # all 5 fit
    assert plan_resident_blocks(blocks, free_bytes=4 * per_block + 10, reserve_bytes=per_block) == 3
    with pytest.raises(ValueError, match="room for 1 block.*streaming needs room for 2"):
        plan_resident_blocks(blocks, free_bytes=2 * per_block, reserve_bytes=per_block)


def test_place_model_streams_only_when_asked_or_short_of_memory():
    model, inputs = make_model(), make_inputs()
    with torch.no_grad():
        expected = model(**inputs)
    assert place_model(model, model.transformer_blocks, "cpu") is None  # "auto" off CUDA: moved whole
    assert place_model(model, model.transformer_blocks, "cpu", resident="off") is None
    streamer = place_model(model, model.transformer_blocks, "cpu", resident=3, window=2)
    assert isinstance(streamer, BlockStreamer) and len(streamer.kept) == 1
    with torch.no_grad():
        assert torch.equal(model(**inputs), expected)
    streamer.remove()
    for bad in (1, "yes", True, 2.5):
        with pytest.raises(ValueError, match='resident must be "auto", "off" or an integer >= 2'):
            place_model(model, model.transformer_blocks, "cpu", resident=bad)
