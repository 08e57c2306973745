"""Our sampling loop (model/sampling.py, model/conditioning.py) against the official LTXVideoPipeline.

Both sides get the same tiny random DiT weights (ours: LTXVideoTransformer, official: Transformer3DModel), the same
text embeddings and the same seed; the official pipeline returns latents (output_type="latent"), fp32 on CPU.
Keyframe latents are handed to the official conditioning_items path by replacing its vae_encode with a lookup, so
the comparison is about sampling and conditioning only. Run `pytest -s tests/test_sampling.py` to see the numbers.
"""

from types import SimpleNamespace

import pytest
import torch
from videodit.model.ltxv.dit import LTXVideoTransformer, TransformerConfig
from videodit.model.ltxv.positions import video_coords
from videodit.model.sampling import Guidance, Keyframe, TextCondition, sample
from videodit.model.schedules import timesteps

pipeline_module = pytest.importorskip("ltx_video.pipelines.pipeline_ltx_video")
from ltx_video.models.autoencoders.causal_video_autoencoder import CausalVideoAutoencoder  # noqa: E402
from ltx_video.models.transformers.symmetric_patchifier import SymmetricPatchifier  # noqa: E402
from ltx_video.models.transformers.transformer3d import Transformer3DModel  # noqa: E402
from ltx_video.schedulers.rf import RectifiedFlowScheduler  # noqa: E402
from ltx_video.utils.skip_layer_strategy import SkipLayerStrategy  # noqa: E402

TOL = 1e-4
CHANNELS, CAPTION_CHANNELS, TEXT_LEN = 8, 24, 6
LATENT = (4, 2, 3)  # latent frames, height, width: 25 x 64 x 96 pixels
SEED = 1234

# Tiny official VAE: only its scale factors (8, 32, 32) matter here (latents are compared, encode is stubbed).
TINY_VAE = {
    "_class_name": "CausalVideoAutoencoder",
    "dims": 3,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": CHANNELS,
    "patch_size": 4,
    "norm_layer": "pixel_norm",
    "latent_log_var": "uniform",
    "use_quant_conv": False,
    "causal_decoder": False,
    "encoder_base_channels": 8,
    "decoder_base_channels": 8,
    "blocks": [["compress_all", 1], ["compress_all", 1], ["compress_all", 1]],
}


def tiny_config(causal: bool) -> TransformerConfig:
    return TransformerConfig(
        num_layers=2,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        caption_channels=CAPTION_CHANNELS,
        in_channels=CHANNELS,
        out_channels=CHANNELS,
        causal_temporal_positioning=causal,
    )


def build_models(causal: bool):
    torch.manual_seed(0)
    config = tiny_config(causal)
    official = Transformer3DModel.from_config(config.to_metadata()).eval()
    state = {k: v + 0.1 * torch.randn_like(v) for k, v in official.state_dict().items()}
    official.load_state_dict(state, strict=True)
    ours = LTXVideoTransformer(config).eval()
    ours.load_state_dict(state, strict=True)
    return official, ours


def official_pipeline(transformer, scheduler_config: dict):
    return pipeline_module.LTXVideoPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=CausalVideoAutoencoder.from_config(dict(TINY_VAE)),
        transformer=transformer,
        scheduler=RectifiedFlowScheduler(**scheduler_config),
        patchifier=SymmetricPatchifier(patch_size=1),
        prompt_enhancer_image_caption_model=None,
        prompt_enhancer_image_caption_processor=None,
        prompt_enhancer_llm_model=None,
        prompt_enhancer_llm_tokenizer=None,
    )


def texts():
    gen = torch.Generator().manual_seed(7)
    pos = torch.randn(1, TEXT_LEN, CAPTION_CHANNELS, generator=gen)
    neg = torch.randn(1, TEXT_LEN, CAPTION_CHANNELS, generator=gen)
    pos_mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    neg_mask = torch.tensor([[1, 1, 0, 0, 0, 0]])
    return TextCondition(pos, pos_mask), TextCondition(neg, neg_mask)


def run_official(official, scheduler_config, steps, guidance: Guidance, positive, negative, **kwargs):
    pipe = official_pipeline(official, scheduler_config)
    f, h, w = LATENT
    out = pipe(
        height=h * 32,
        width=w * 32,
        num_frames=(f - 1) * 8 + 1,
        frame_rate=25.0,
        prompt=None,
        negative_prompt=None,
        num_inference_steps=steps,
        prompt_embeds=positive.embeddings,
        prompt_attention_mask=positive.mask,
        negative_prompt_embeds=negative.embeddings,
        negative_prompt_attention_mask=negative.mask,
        guidance_scale=guidance.cfg,
        stg_scale=guidance.stg,
        rescaling_scale=guidance.rescale,
        cfg_star_rescale=guidance.cfg_star,
        skip_layer_strategy=SkipLayerStrategy.AttentionValues,
        skip_block_list=list(guidance.stg_blocks),
        generator=torch.Generator().manual_seed(SEED),
        output_type="latent",
        is_video=True,
        vae_per_channel_normalize=True,
        **kwargs,
    )
    return out.images


@pytest.mark.parametrize(
    "scheduler_config,causal,guidance",
    [
        (
            {"shifting": "SD3", "target_shift_terminal": 0.1},
            False,
            Guidance(cfg=3.0, stg=1.0, stg_blocks=(1,), rescale=0.7),
        ),  # 0.9.1-style
        (
            {"sampler": "LinearQuadratic"},
            True,
            Guidance(cfg=4.0, stg=2.0, stg_blocks=(0,), rescale=0.5, cfg_star=True),
        ),  # 0.9.5+/13B-style
    ],
)
def test_t2v_matches_official_pipeline(scheduler_config, causal, guidance):
    official, ours = build_models(causal)
    positive, negative = texts()
    steps = 4
    ref = run_official(official, scheduler_config, steps, guidance, positive, negative)
    ts = timesteps("auto", steps, LATENT, scheduler_config)
    got = sample(ours, torch.zeros(1, CHANNELS, *LATENT), positive, negative, ts, guidance, SEED)
    diff = (got - ref).abs().max().item()
    print(
        f"\nT2V {scheduler_config} {guidance}: max |ours - official| = {diff:.3e} (latent scale {ref.abs().max():.2f})"
    )
    assert got.shape == ref.shape
    assert diff <= TOL


def test_i2v_keyframes_match_official_conditioning_items(monkeypatch):
    """Frame-0 image (in place), 17-frame clip at frame 8 (in place + 2 prepended prefix latents) and an image at
    frame 13 (prepended tokens), soft strengths, image_cond_noise_scale: vs official conditioning_items."""
    official, ours = build_models(causal=True)
    positive, negative = texts()
    f, h, w = LATENT
    gen = torch.Generator().manual_seed(3)
    first = torch.randn(1, CHANNELS, 1, h, w, generator=gen)
    clip = torch.randn(1, CHANNELS, 3, h, w, generator=gen)
    image = torch.randn(1, CHANNELS, 1, h, w, generator=gen)
    keyframes = [Keyframe(first, 0, 1.0), Keyframe(clip, 8, 0.9), Keyframe(image, 13, 0.8)]

    encoded = iter([first, clip, image])
    monkeypatch.setattr(pipeline_module, "vae_encode", lambda media, vae, **kw: next(encoded))
    items = [
        pipeline_module.ConditioningItem(
            torch.zeros(1, 3, (k.latent.shape[2] - 1) * 8 + 1, h * 32, w * 32), k.pixel_frame, k.strength
        )
        for k in keyframes
    ]
    guidance = Guidance(cfg=3.0, stg=1.0, stg_blocks=(1,), rescale=0.7)
    scheduler_config = {"sampler": "LinearQuadratic"}
    ref = run_official(
        official,
        scheduler_config,
        5,
        guidance,
        positive,
        negative,
        conditioning_items=items,
        image_cond_noise_scale=0.15,
    )
    ts = timesteps("auto", 5, LATENT, scheduler_config)
    got = sample(
        ours,
        torch.zeros(1, CHANNELS, *LATENT),
        positive,
        negative,
        ts,
        guidance,
        SEED,
        keyframes=keyframes,
        image_cond_noise_scale=0.15,
    )
    diff = (got - ref).abs().max().item()
    print(f"\nI2V keyframes (0, clip@8, image@13): max |ours - official| = {diff:.3e}")
    assert diff <= TOL
    # the hard frame-0 keyframe survives (only the t^2-scaled conditioning noise of the last model call differs)
    assert (got[:, :, 0] - first[:, :, 0]).abs().max() < 0.15 * 5 * ts[-1] ** 2


def test_denoise_matches_official_skip_initial_steps():
    """denoise < 1: start latent noised to the first kept timestep == official latents + skip_initial_inference_steps."""
    official, ours = build_models(causal=True)
    positive, negative = texts()
    start = torch.randn(1, CHANNELS, *LATENT, generator=torch.Generator().manual_seed(5))
    guidance = Guidance(cfg=3.0, stg=0.0)
    ref = run_official(
        official,
        {"sampler": "LinearQuadratic"},
        8,
        guidance,
        positive,
        negative,
        latents=start.clone(),
        skip_initial_inference_steps=5,
    )
    ts = timesteps("linear_quadratic", 8, LATENT)
    got = sample(ours, start, positive, negative, ts, guidance, SEED, denoise=ts[5])
    diff = (got - ref).abs().max().item()
    print(f"\ndenoise={ts[5]:.4f}: max |ours - official| = {diff:.3e}")
    assert diff <= TOL


class ZeroVelocity(torch.nn.Module):
    """Predicts v = 0, so a sampling run returns its initial noise; records its inputs."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.config = SimpleNamespace(causal_temporal_positioning=True)
        self.calls = []

    def forward(self, tokens, coords, text, text_mask, timestep, skip=None):
        self.calls.append(SimpleNamespace(tokens=tokens, timestep=timestep, text=text, skip=skip))
        return torch.zeros_like(tokens)


def test_seeded_noise_is_deterministic_and_in_token_layout():
    positive, negative = texts()
    model = ZeroVelocity()
    shape = (2, CHANNELS, *LATENT)
    a = sample(model, torch.zeros(shape), positive, negative, [1.0], Guidance(cfg=1.0), seed=42)
    b = sample(model, torch.zeros(shape), positive, negative, [1.0], Guidance(cfg=1.0), seed=42)
    c = sample(model, torch.zeros(shape), positive, negative, [1.0], Guidance(cfg=1.0), seed=43)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # documented layout: CPU fp32 generator, (B, F*H*W, C) tokens ordered (f h w)
    n = LATENT[0] * LATENT[1] * LATENT[2]
    expected = torch.randn(2, n, CHANNELS, generator=torch.Generator().manual_seed(42))
    assert torch.equal(a, expected.transpose(1, 2).reshape(shape))


def test_cfg_one_is_a_single_forward():
    _, ours = build_models(causal=True)
    positive, negative = texts()
    calls = []
    ours.register_forward_hook(lambda module, args, kwargs_out: calls.append(args[0].shape[0]))
    x0 = torch.zeros(1, CHANNELS, *LATENT)
    got = sample(ours, x0, positive, negative, [1.0], Guidance(cfg=1.0, stg=0.0), SEED)
    assert calls == [1]  # one forward, batch 1 (no uncond / perturbed copies)
    # expected: one Euler step from t=1 to 0 with the conditional velocity
    n = LATENT[0] * LATENT[1] * LATENT[2]
    noise = torch.randn(1, n, CHANNELS, generator=torch.Generator().manual_seed(SEED))
    coords = video_coords(1, *LATENT, frame_rate=25.0, causal_fix=True)
    v = ours(noise, coords, positive.embeddings, positive.mask, torch.ones(1, 1))
    expected = (noise - v).transpose(1, 2).reshape(x0.shape)
    assert (got - expected).abs().max().item() <= 1e-6
    # cfg > 1 with negative == positive gives the same velocity
    same = sample(ours, x0, positive, positive, [1.0], Guidance(cfg=5.0, stg=0.0), SEED)
    assert (same - expected).abs().max().item() <= 1e-5


def test_guidance_copies_are_batched_in_one_forward():
    positive, negative = texts()
    model = ZeroVelocity()
    sample(
        model,
        torch.zeros(2, CHANNELS, *LATENT),
        positive,
        negative,
        [1.0, 0.5],
        Guidance(cfg=3.0, stg=1.0, stg_blocks=(0,)),
        SEED,
    )
    assert len(model.calls) == 2
    call = model.calls[0]
    assert call.tokens.shape[0] == 6  # (uncond, cond, perturbed) x batch 2
    assert call.skip.perturbed.tolist() == [False, False, False, False, True, True]
    assert torch.equal(call.text[:2], negative.embeddings.expand(2, -1, -1))
    assert torch.equal(call.text[2:4], positive.embeddings.expand(2, -1, -1))


def test_callback_per_step_and_interrupt():
    positive, negative = texts()
    seen = []
    sample(
        ZeroVelocity(),
        torch.zeros(1, CHANNELS, *LATENT),
        positive,
        None,
        [1.0, 0.6, 0.2],
        Guidance(cfg=1.0),
        SEED,
        callback=lambda i, total, x0: seen.append((i, total, tuple(x0.shape))),
    )
    assert seen == [(i, 3, (1, CHANNELS, *LATENT)) for i in range(3)]

    def stop(i, total, x0):
        if i == 1:
            raise InterruptedError("stop")

    model = ZeroVelocity()
    with pytest.raises(InterruptedError):
        sample(
            model,
            torch.zeros(1, CHANNELS, *LATENT),
            positive,
            None,
            [1.0, 0.6, 0.2],
            Guidance(cfg=1.0),
            SEED,
            callback=stop,
        )
    assert len(model.calls) == 2


def test_bad_inputs_raise_clear_errors():
    positive, _ = texts()
    model = ZeroVelocity()
    x = torch.zeros(1, CHANNELS, *LATENT)
    with pytest.raises(ValueError, match="negative"):
        sample(model, x, positive, None, [1.0], Guidance(cfg=3.0), SEED)
    for bad in ([], [1.0, 0.5, 0.0], [0.5, 0.9], [1.5, 0.5]):
        with pytest.raises(ValueError, match="strictly descending"):
            sample(model, x, positive, None, bad, Guidance(cfg=1.0), SEED)
    with pytest.raises(ValueError, match="2 Guidance values for 3 timesteps"):
        sample(model, x, positive, None, [1.0, 0.5, 0.2], [Guidance(cfg=1.0)] * 2, SEED)
    with pytest.raises(ValueError, match="<= denoise 0.3"):
        sample(model, x, positive, None, [1.0, 0.5], Guidance(cfg=1.0), SEED, denoise=0.3)
    with pytest.raises(ValueError, match="multiple of 8, got pixel_frame 12; nearest valid: 8 or 16"):
        clip = torch.zeros(1, CHANNELS, 2, LATENT[1], LATENT[2])
        sample(model, x, positive, None, [1.0], Guidance(cfg=1.0), SEED, keyframes=[Keyframe(clip, 12)])
    with pytest.raises(ValueError, match=r"\[0, 24\]"):
        sample(
            model,
            x,
            positive,
            None,
            [1.0],
            Guidance(cfg=1.0),
            SEED,
            keyframes=[Keyframe(torch.zeros(1, CHANNELS, 1, LATENT[1], LATENT[2]), 25)],
        )
    with pytest.raises(ValueError, match="2x3 latent"):
        sample(
            model,
            x,
            positive,
            None,
            [1.0],
            Guidance(cfg=1.0),
            SEED,
            keyframes=[Keyframe(torch.zeros(1, CHANNELS, 1, 4, 4), 0)],
        )


# ---------------------------------------------------------------------------------------------------------------
# Pipeline: prompt -> sample -> decode, against the official pipeline's pixels


def build_vaes():
    """Tiny official VAE (no timestep conditioning, so the official decode draws no noise) and ours, same weights."""
    from videodit.model.ltxv.vae import CausalVideoVAE, VAEConfig

    torch.manual_seed(1)
    official = CausalVideoAutoencoder.from_config(dict(TINY_VAE))
    state = {k: v + 0.05 * torch.randn_like(v) for k, v in official.state_dict().items()}
    stats = {
        "channel": torch.arange(CHANNELS).float(),
        "mean-of-means": 0.1 * torch.randn(CHANNELS),
        "std-of-means": 0.5 + torch.rand(CHANNELS),
        "mean-of-stds": torch.rand(CHANNELS),
        "mean-of-stds_over_std-of-means": torch.rand(CHANNELS),
    }
    state.update({f"per_channel_statistics.{k}": v for k, v in stats.items()})
    official.load_state_dict(state)
    ours = CausalVideoVAE(VAEConfig.from_metadata(dict(TINY_VAE)))
    ours.load_state_dict(state, strict=True)
    return official, ours


class StubTextEncoder:
    """Stands in for TextEncoder: fixed embeddings per prompt."""

    def __init__(self, table: dict):
        self.table = table

    def encode(self, prompts):
        return self.table[prompts[0]]


@pytest.mark.parametrize("with_image", [False, True])
def test_generate_matches_official_pipeline_pixels(monkeypatch, with_image):
    """VideoPipeline.generate (T2V, and I2V with a frame-0 image) == official LTXVideoPipeline(output_type="pt").
    The official encoder samples its posterior with the global RNG; we encode the mean, so the official
    posterior sample is patched to its mean for the I2V case."""
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    from videodit.model.pipeline import ImageKeyframe, VideoPipeline

    monkeypatch.setattr(DiagonalGaussianDistribution, "sample", lambda self, generator=None: self.mean)
    official, ours = build_models(causal=True)
    official_vae, ours_vae = build_vaes()
    positive, negative = texts()
    f, h, w = LATENT
    guidance = Guidance(cfg=3.0, stg=1.0, stg_blocks=(1,), rescale=0.7)
    image = torch.rand(h * 32, w * 32, 3, generator=torch.Generator().manual_seed(11))
    kwargs = {}
    if with_image:
        media = (image * 2 - 1).permute(2, 0, 1)[None, :, None]  # (1, 3, 1, H, W) in [-1, 1]
        kwargs = {
            "conditioning_items": [pipeline_module.ConditioningItem(media, 0, 1.0)],
            "image_cond_noise_scale": 0.15,
        }

    pipe = official_pipeline(official, {"sampler": "LinearQuadratic"})
    pipe.vae = official_vae
    ref = pipe(
        height=h * 32,
        width=w * 32,
        num_frames=(f - 1) * 8 + 1,
        frame_rate=25.0,
        prompt=None,
        negative_prompt=None,
        num_inference_steps=3,
        prompt_embeds=positive.embeddings,
        prompt_attention_mask=positive.mask,
        negative_prompt_embeds=negative.embeddings,
        negative_prompt_attention_mask=negative.mask,
        guidance_scale=guidance.cfg,
        stg_scale=guidance.stg,
        rescaling_scale=guidance.rescale,
        skip_layer_strategy=SkipLayerStrategy.AttentionValues,
        skip_block_list=[1],
        generator=torch.Generator().manual_seed(SEED),
        output_type="pt",
        is_video=True,
        vae_per_channel_normalize=True,
        **kwargs,
    ).images
    ref = ref[0].permute(1, 2, 3, 0)  # (F, H, W, 3) in [0, 1]

    video = VideoPipeline(
        ours, ours_vae, StubTextEncoder({"a cat": positive, "": negative}), {"sampler": "LinearQuadratic"}
    )
    keyframes = [ImageKeyframe(image, 0, 1.0)] if with_image else []
    frames = video.generate(
        "a cat",
        "",
        width=w * 32,
        height=h * 32,
        num_frames=(f - 1) * 8 + 1,
        steps=3,
        guidance=guidance,
        seed=SEED,
        keyframes=keyframes,
        image_cond_noise_scale=0.15,
        image_crf=0,  # the official LTXVideoPipeline gets the media as is (inference.py compresses before)
    )
    diff = (frames - ref).abs().max().item()
    unsaturated = ((ref > 0) & (ref < 1)).float().mean().item()
    print(
        f"\ngenerate {'I2V' if with_image else 'T2V'}: frames {tuple(frames.shape)}, max |ours - official| = "
        f"{diff:.3e} ({unsaturated:.0%} of official pixels unclipped)"
    )
    assert frames.shape == ref.shape
    assert diff <= TOL


def test_bad_sizes_name_nearest_valid_values():
    from videodit.model.pipeline import VideoPipeline, check_video_size

    with pytest.raises(ValueError, match="width must be a multiple of 32 .*got 700; nearest valid: 672 or 704"):
        check_video_size(700, 512, 121)
    with pytest.raises(ValueError, match="height must .*got 500; nearest valid: 480 or 512"):
        check_video_size(768, 500, 121)
    with pytest.raises(ValueError, match="height must .*got 16; nearest valid: 32"):
        check_video_size(768, 16, 121)
    with pytest.raises(ValueError, match=r"num_frames must be 8k\+1.*got 120; nearest valid: 113 or 121"):
        check_video_size(768, 512, 120)
    check_video_size(768, 512, 121)
    check_video_size(32, 32, 1)
    video = VideoPipeline(ZeroVelocity(), None, None, {"sampler": "LinearQuadratic"})
    with pytest.raises(ValueError, match="nearest valid: 17 or 25"):
        video.generate("x", width=64, height=64, num_frames=20)


def test_preprocess_center_crops_to_target_aspect():
    from videodit.model.preprocess import keyframe_pixels

    def preprocess_images(images, width, height):
        return keyframe_pixels(images, width, height, crf=0)

    image = torch.zeros(40, 120, 3)
    image[:, :20] = 1.0  # left and right bands outside a centered 40x80 (2:1) crop
    image[:, 100:] = 1.0
    image[:, 20:100, 1] = 0.5
    out = preprocess_images(image, width=64, height=32)  # target 2:1
    assert out.shape == (1, 3, 1, 32, 64)
    assert torch.allclose(out[0, 0], torch.full((1, 32, 64), -1.0))  # red bands cropped away
    assert torch.allclose(out[0, 1], torch.zeros(1, 32, 64))  # green 0.5 -> 0 in [-1, 1]
    tall = preprocess_images(torch.rand(5, 90, 30, 3), width=32, height=64)
    assert tall.shape == (1, 3, 5, 64, 32)


def test_per_step_guidance_table_matches_official_guidance_timesteps():
    """13B-dev-style table: cfg / stg / rescale / STG blocks change along the schedule, CFG* on."""
    from videodit.model.sampling import guidance_per_step

    official, ours = build_models(causal=True)
    positive, negative = texts()
    thresholds = [1.0, 0.99, 0.95, 0.8]
    cfg, stg, rescale, blocks = (
        [1.0, 4.0, 3.0, 1.0],
        [0.0, 1.0, 2.0, 1.0],
        [1.0, 0.5, 1.0, 0.7],
        [[0], [1], [0, 1], [1]],
    )
    table = [
        Guidance(cfg=c, stg=s, rescale=r, stg_blocks=tuple(bl), cfg_star=True)
        for c, s, r, bl in zip(cfg, stg, rescale, blocks)
    ]
    scheduler_config = {"sampler": "LinearQuadratic"}
    pipe = official_pipeline(official, scheduler_config)
    f, h, w = LATENT
    ref = pipe(
        height=h * 32,
        width=w * 32,
        num_frames=(f - 1) * 8 + 1,
        frame_rate=25.0,
        prompt=None,
        negative_prompt=None,
        num_inference_steps=8,
        prompt_embeds=positive.embeddings,
        prompt_attention_mask=positive.mask,
        negative_prompt_embeds=negative.embeddings,
        negative_prompt_attention_mask=negative.mask,
        guidance_timesteps=thresholds,
        guidance_scale=cfg,
        stg_scale=stg,
        rescaling_scale=rescale,
        skip_block_list=blocks,
        cfg_star_rescale=True,
        skip_layer_strategy=SkipLayerStrategy.AttentionValues,
        generator=torch.Generator().manual_seed(SEED),
        output_type="latent",
        is_video=True,
        vae_per_channel_normalize=True,
    ).images
    ts = timesteps("auto", 8, LATENT, scheduler_config)
    per_step = guidance_per_step(ts, thresholds, table)
    assert [g.cfg for g in per_step] == [1.0, 4.0, 3.0, 3.0, 3.0, 1.0, 1.0, 1.0]
    got = sample(ours, torch.zeros(1, CHANNELS, *LATENT), positive, negative, ts, per_step, SEED)
    diff = (got - ref).abs().max().item()
    print(f"\nper-step guidance table: max |ours - official| = {diff:.3e}")
    assert diff <= TOL


def test_stochastic_sampling_is_seeded_and_ends_on_x0():
    positive, _ = texts()
    x = torch.zeros(1, CHANNELS, *LATENT)
    a = sample(ZeroVelocity(), x, positive, None, [1.0, 0.5], Guidance(cfg=1.0), SEED, stochastic=True)
    b = sample(ZeroVelocity(), x, positive, None, [1.0, 0.5], Guidance(cfg=1.0), SEED, stochastic=True)
    assert torch.equal(a, b)
    # v = 0: x0 = x_t each step; the last step goes to t' = 0, so the result is the x0 after re-noising at t = 0.5
    gen = torch.Generator().manual_seed(SEED)
    n = LATENT[0] * LATENT[1] * LATENT[2]
    x1 = torch.randn(1, n, CHANNELS, generator=gen)
    x_half = torch.lerp(x1, torch.randn(1, n, CHANNELS, generator=gen), 0.5)
    assert torch.allclose(a, x_half.transpose(1, 2).reshape(x.shape))


def test_load_pipeline_end_to_end(tmp_path):
    """Official single-file layout + byte-level T5 file written to disk -> load_pipeline -> generate: a seeded video."""
    from transformers import T5Config, T5EncoderModel
    from videodit.model.checkpoint import save_checkpoint
    from videodit.model.pipeline import ImageKeyframe, load_pipeline
    from videodit.model.text_encoder import save_text_encoder

    _, dit = build_models(causal=True)
    _, vae = build_vaes()
    config = {
        "transformer": dit.config.to_metadata(),
        "vae": dict(TINY_VAE),
        "scheduler": {"sampler": "LinearQuadratic", "shifting": None},
    }
    save_checkpoint(tmp_path / "tiny.safetensors", dit, vae, config)
    torch.manual_seed(2)
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=384,
            d_model=CAPTION_CHANNELS,
            d_kv=8,
            d_ff=32,
            num_layers=1,
            num_heads=2,
            feed_forward_proj="gated-gelu",
        )
    )
    save_text_encoder(tmp_path / "t5.safetensors", t5, {"tokenizer": "byte"})

    pipe = load_pipeline(tmp_path / "tiny.safetensors", tmp_path / "t5.safetensors", dtype=torch.float32)
    # the tiny VAE has the 0.9.0 layout, so the checkpoint reads as 0.9.0: 128 prompt tokens (official then)
    assert pipe.version == "0.9.0" and pipe.text_encoder.max_tokens == 128
    assert pipe.scheduler_config.sampler == "LinearQuadratic"  # from the file's metadata
    f, h, w = LATENT
    args = dict(
        width=w * 32,
        height=h * 32,
        num_frames=(f - 1) * 8 + 1,
        steps=3,
        seed=5,
        guidance=Guidance(cfg=3.0, stg=1.0, stg_blocks=(1,)),
    )
    a = pipe.generate("a red ball bouncing", "blurry", **args)
    b = pipe.generate("a red ball bouncing", "blurry", **args)
    c = pipe.generate("a red ball bouncing", "blurry", **{**args, "seed": 6})
    assert a.shape == ((f - 1) * 8 + 1, h * 32, w * 32, 3) and a.dtype == torch.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert torch.equal(a, b) and not torch.equal(a, c)
    image = torch.rand(50, 70, 3, generator=torch.Generator().manual_seed(1))
    save_text_encoder(tmp_path / "t5_64.safetensors", t5, {"tokenizer": "byte", "max_tokens": 64})
    assert (
        load_pipeline(
            tmp_path / "tiny.safetensors", tmp_path / "t5_64.safetensors", dtype=torch.float32
        ).text_encoder.max_tokens
        == 64
    )  # the file's own length wins
    i2v = pipe.generate(
        "a red ball bouncing", "blurry", keyframes=[ImageKeyframe(image, 0), ImageKeyframe(image, 16, 0.7)], **args
    )
    assert i2v.shape == a.shape and not torch.equal(i2v, a)
    pipe.tiling = "on"
    tiled = pipe.generate("a red ball bouncing", "blurry", **args)
    assert (tiled - a).abs().max().item() <= 1e-4  # latent fits one tile: same decode


def test_batch_is_per_sample():
    """Sample 0 of a batch-2 run starts from the same noise as a batch-1 run (first values of the stream) and must
    end the same: guidance (CFG*, STG, rescale std) and the STG perturbed flags work per sample."""
    _, ours = build_models(causal=True)
    positive, negative = texts()
    guidance = Guidance(cfg=3.0, stg=1.0, stg_blocks=(1,), rescale=0.7, cfg_star=True)
    ts = timesteps("linear_quadratic", 4, LATENT)
    keyframes = [
        Keyframe(torch.randn(1, CHANNELS, 1, LATENT[1], LATENT[2], generator=torch.Generator().manual_seed(4)), 0)
    ]
    one = sample(ours, torch.zeros(1, CHANNELS, *LATENT), positive, negative, ts, guidance, SEED, keyframes=keyframes)
    two = sample(ours, torch.zeros(2, CHANNELS, *LATENT), positive, negative, ts, guidance, SEED, keyframes=keyframes)
    assert (two[:1] - one).abs().max().item() <= 1e-5
    assert (two[1] - two[0]).abs().max().item() > 0.1
