"""Weight streaming (model/streaming.py): same outputs as the resident model, bounded blocks on the device, and
the block weights back in host memory after each forward. On the CPU the "device" copies are real copies (clones),
so the bookkeeping is exercised; the overlap on a side stream is measured by benchmarks/streaming.py on a GPU."""

import pytest
import torch
from videodit.model.ltxv.dit import LTXVideoTransformer, TransformerConfig
from videodit.model.ltxv.positions import video_coords
from videodit.model.streaming import module_bytes, plan_resident_blocks, stream_blocks

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


@pytest.mark.parametrize("resident", [2, 3, 5])
def test_streamed_forward_equals_the_resident_model(resident):
    model, inputs = make_model(), make_inputs()
    with torch.no_grad():
        expected = model(**inputs)
        streamer = stream_blocks(model, model.transformer_blocks, "cpu", resident=resident)
        host = [{n: t.data_ptr() for n, t in block.named_parameters()} for block in model.transformer_blocks]
        first = model(**inputs)
        second = model(**inputs)  # a second forward streams again from the same host copies
    assert torch.equal(first, expected) and torch.equal(second, expected)  # same process, same tensors: exact
    assert streamer.loaded_peak == min(resident, CONFIG.num_layers)
    after = [{n: t.data_ptr() for n, t in block.named_parameters()} for block in model.transformer_blocks]
    assert after == host  # every block's weights are the host copies again, nothing left on the "device"
    assert all(c.gpu is None for c in streamer.copies)
    streamer.remove()
    with torch.no_grad():
        assert torch.equal(model(**inputs), expected)


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
