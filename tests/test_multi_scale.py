"""Multi-scale generation (model/multi_scale.py) against the official LTXMultiScalePipeline (ltx_video 0.1.2).

Both sides get the same tiny random DiT, VAE (0.9.5 layout: timestep-conditioned decoder) and latent upsampler
weights, the same text embeddings and the same recipe, given to the official pipeline in its config layout
(first_pass / second_pass dicts) and to ours through MultiScaleRecipe.from_official. Our second pass draws from
seed + SECOND_PASS_SEED_OFFSET, so the official second pass gets a generator of that seed (its own default would
continue the first pass's generator). The decode noise scale is 0 on both sides (the official code draws that noise
from the global RNG), and the official conditioning encode takes the posterior mean, as ours does (it would draw a
posterior sample from the global RNG). Run `pytest -s tests/test_multi_scale.py` to see the numbers.
"""

import pytest
import torch
from videodit.model.ltxv.dit import LTXVideoTransformer, TransformerConfig
from videodit.model.ltxv.upsampler import LatentUpsampler, UpsamplerConfig
from videodit.model.ltxv.vae import CausalVideoVAE
from videodit.model.ltxv.vae_config import VAEConfig
from videodit.model.multi_scale import (
    RECIPES,
    SECOND_PASS_SEED_OFFSET,
    MultiScaleRecipe,
    adain,
    decode_multi_scale,
    generate_multi_scale,
    reduced_size,
    sample_multi_scale,
)
from videodit.model.pipeline import ImageKeyframe, VideoPipeline
from videodit.model.preprocess import keyframe_pixels
from videodit.model.sampling import TextCondition

pipeline_module = pytest.importorskip("ltx_video.pipelines.pipeline_ltx_video")
from ltx_video.models.autoencoders.causal_video_autoencoder import CausalVideoAutoencoder  # noqa: E402
from ltx_video.models.autoencoders.latent_upsampler import LatentUpsampler as OfficialUpsampler  # noqa: E402
from ltx_video.models.autoencoders.vae_encode import normalize_latents  # noqa: E402
from ltx_video.models.transformers.symmetric_patchifier import SymmetricPatchifier  # noqa: E402
from ltx_video.models.transformers.transformer3d import Transformer3DModel  # noqa: E402
from ltx_video.schedulers.rf import RectifiedFlowScheduler  # noqa: E402
from ltx_video.utils.skip_layer_strategy import SkipLayerStrategy  # noqa: E402

TOL = 1e-4
CHANNELS, CAPTION_CHANNELS, TEXT_LEN = 16, 24, 6
WIDTH, HEIGHT, FRAMES = 192, 96, 9  # first pass 96 x 32, second 192 x 64, output resized to 192 x 96
SEED = 1234
DECODE_TIMESTEP = 0.05
SCHEDULER = {"sampler": "LinearQuadratic"}

VAE = {
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
    "scaling_factor": 1.0,
    "encoder_base_channels": 8,
    "decoder_base_channels": 8,
    "spatial_padding_mode": "zeros",
    "timestep_conditioning": True,
    "encoder_blocks": [
        ["res_x", 1],
        ["compress_space_res", {"multiplier": 2}],
        ["compress_time_res", {"multiplier": 2}],
        ["compress_all_res", {"multiplier": 2}],
        ["compress_all_res", {"multiplier": 2}],
    ],
    "decoder_blocks": [
        ["res_x", 1],
        ["compress_all", {"residual": True, "multiplier": 2}],
        ["compress_all", {"residual": True, "multiplier": 2}],
        ["compress_all", {"residual": True, "multiplier": 2}],
    ],
}
UPSAMPLER = {"in_channels": CHANNELS, "mid_channels": 32, "num_blocks_per_stage": 1, "dims": 3}

# dev-style recipe (official layout) on a 2-block DiT: guidance table, CFG*, STG per entry, skip initial/final
DEV_LIKE = {
    "downscale_factor": 0.6666666,
    "first_pass": {
        "guidance_scale": [1, 4, 2],
        "stg_scale": [0, 2, 1],
        "rescaling_scale": [1, 0.5, 1],
        "guidance_timesteps": [1.0, 0.99, 0.6],
        "skip_block_list": [[], [0, 1], [1]],
        "num_inference_steps": 8,
        "skip_final_inference_steps": 2,
        "cfg_star_rescale": True,
    },
    "second_pass": {
        "guidance_scale": [1],
        "stg_scale": [1],
        "rescaling_scale": [1],
        "guidance_timesteps": [1.0],
        "skip_block_list": [1],
        "num_inference_steps": 8,
        "skip_initial_inference_steps": 5,
        "cfg_star_rescale": True,
    },
}
# the released distilled recipe with the 0.9.8 13B tone mapping, but STG on (block 1) to exercise it
DISTILLED_LIKE = {
    "downscale_factor": 0.6666666,
    "first_pass": {
        "timesteps": [1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725],
        "guidance_scale": 1,
        "stg_scale": 0,
        "rescaling_scale": 1,
        "skip_block_list": [1],
    },
    "second_pass": {
        "timesteps": [0.9094, 0.725, 0.4219],
        "guidance_scale": 1,
        "stg_scale": 1,
        "rescaling_scale": 0.7,
        "skip_block_list": [1],
        "tone_map_compression_ratio": 0.6,
    },
}


def randomized(module: torch.nn.Module, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, value in module.state_dict().items():
        if key == "decoder.timestep_scale_multiplier":
            sd[key] = torch.tensor(731.25)
        elif key == "per_channel_statistics.std-of-means":
            sd[key] = 0.5 + torch.rand(value.shape, generator=gen)
        elif key == "per_channel_statistics.channel":
            sd[key] = value.clone()
        elif "norm" in key and key.endswith("weight"):
            sd[key] = 1.0 + 0.1 * torch.randn(value.shape, generator=gen)
        else:
            scale = 1.0 if "per_channel" in key or "scale_shift" in key else 0.15
            sd[key] = scale * torch.randn(value.shape, generator=gen)
    return sd


class Texts:
    """Stub text encoder: the prompt "p" and the negative "" as fixed random embeddings."""

    max_tokens = TEXT_LEN

    def __init__(self):
        gen = torch.Generator().manual_seed(7)
        self.positive = TextCondition(
            torch.randn(1, TEXT_LEN, CAPTION_CHANNELS, generator=gen), torch.tensor([[1, 1, 1, 1, 0, 0]])
        )
        self.negative = TextCondition(
            torch.randn(1, TEXT_LEN, CAPTION_CHANNELS, generator=gen), torch.tensor([[1, 1, 0, 0, 0, 0]])
        )

    def encode(self, prompts):
        return self.positive if prompts == ["p"] else self.negative


@pytest.fixture(scope="module")
def models():
    return build_models()


def build_models():
    torch.manual_seed(0)
    config = TransformerConfig(
        num_layers=2,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        caption_channels=CAPTION_CHANNELS,
        in_channels=CHANNELS,
        out_channels=CHANNELS,
        causal_temporal_positioning=True,
    )
    official_dit = Transformer3DModel.from_config(config.to_metadata()).eval()
    dit_state = {k: v + 0.1 * torch.randn_like(v) for k, v in official_dit.state_dict().items()}
    official_dit.load_state_dict(dit_state, strict=True)
    dit = LTXVideoTransformer(config).eval()
    dit.load_state_dict(dit_state, strict=True)

    vae = CausalVideoVAE(VAEConfig.from_metadata(VAE)).eval()
    vae_state = randomized(vae, 1)
    vae.load_state_dict(vae_state, strict=True)
    official_vae = CausalVideoAutoencoder.from_config(dict(VAE)).eval()
    official_vae.load_state_dict(vae_state, strict=True)

    up = LatentUpsampler(UpsamplerConfig.from_metadata(UPSAMPLER)).eval()
    up_state = randomized(up, 2)
    up.load_state_dict(up_state, strict=True)
    official_up = OfficialUpsampler.from_config(dict(UPSAMPLER)).eval()
    official_up.load_state_dict(up_state, strict=True)

    texts = Texts()
    pipe = VideoPipeline(dit, vae, texts, SCHEDULER, decode_timestep=DECODE_TIMESTEP, decode_noise_scale=0.0)
    official = pipeline_module.LTXVideoPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=official_vae,
        transformer=official_dit,
        scheduler=RectifiedFlowScheduler(**SCHEDULER),
        patchifier=SymmetricPatchifier(patch_size=1),
        prompt_enhancer_image_caption_model=None,
        prompt_enhancer_image_caption_processor=None,
        prompt_enhancer_llm_model=None,
        prompt_enhancer_llm_tokenizer=None,
    )
    return pipe, up, pipeline_module.LTXMultiScalePipeline(official, latent_upsampler=official_up), texts


def run_official(multi_scale, texts, config: dict, output_type: str, conditioning_items=None):
    first = {**config["first_pass"], "generator": torch.Generator().manual_seed(SEED)}
    second = {**config["second_pass"], "generator": torch.Generator().manual_seed(SEED + SECOND_PASS_SEED_OFFSET)}
    with torch.no_grad():
        out = multi_scale(
            downscale_factor=config["downscale_factor"],
            first_pass=first,
            second_pass=second,
            height=HEIGHT,
            width=WIDTH,
            num_frames=FRAMES,
            frame_rate=25.0,
            prompt=None,
            negative_prompt=None,
            prompt_embeds=texts.positive.embeddings,
            prompt_attention_mask=texts.positive.mask,
            negative_prompt_embeds=texts.negative.embeddings,
            negative_prompt_attention_mask=texts.negative.mask,
            skip_layer_strategy=SkipLayerStrategy.AttentionValues,
            output_type=output_type,
            is_video=True,
            vae_per_channel_normalize=True,
            decode_timestep=DECODE_TIMESTEP,
            decode_noise_scale=0.0,
            image_cond_noise_scale=0.15,
            conditioning_items=conditioning_items,
        )
    return out.images


def posterior_mean_encode(media, vae, vae_per_channel_normalize=True, **kwargs):
    """The official vae_encode with the posterior mean (mode) in place of its global-RNG sample."""
    return normalize_latents(vae.encode(media).latent_dist.mode(), vae, vae_per_channel_normalize)


def first_frame_image():
    return torch.rand(HEIGHT, WIDTH, 3, generator=torch.Generator().manual_seed(11))


@pytest.mark.parametrize(
    "name,config,with_image", [("dev-like T2V", DEV_LIKE, False), ("distilled I2V", DISTILLED_LIKE, True)]
)
def test_matches_official_multi_scale_pipeline(models, monkeypatch, name, config, with_image):
    pipe, up, official, texts = models
    monkeypatch.setattr(pipeline_module, "vae_encode", posterior_mean_encode)
    recipe = MultiScaleRecipe.from_official(config)
    keyframes, items = (), None
    if with_image:
        image = first_frame_image()
        keyframes = [ImageKeyframe(image, 0, 1.0)]
        items = [pipeline_module.ConditioningItem(keyframe_pixels(image, WIDTH, HEIGHT, crf=0), 0, 1.0)]
    args = dict(
        recipe=recipe, seed=SEED, keyframes=keyframes, image_crf=0, width=WIDTH, height=HEIGHT, num_frames=FRAMES
    )

    ref_latent = run_official(official, texts, config, "latent", items)
    latent = sample_multi_scale(pipe, up, "p", "", **args)
    latent_diff = (latent - ref_latent).abs().max().item()

    ref_frames = run_official(official, texts, config, "pt", items)[0]  # (3, F, H, W)
    frames = generate_multi_scale(pipe, up, "p", "", **args).permute(3, 0, 1, 2)
    pixel_diff = (frames - ref_frames).abs().max().item()
    print(
        f"\nmulti-scale {name}: latent {tuple(latent.shape)} max diff {latent_diff:.3e} (scale "
        f"{ref_latent.abs().max():.2f}); frames {tuple(frames.shape)} max diff {pixel_diff:.3e}"
    )
    assert latent.shape == ref_latent.shape == (1, CHANNELS, 2, 2, 6)
    assert frames.shape == ref_frames.shape == (3, FRAMES, HEIGHT, WIDTH)
    assert latent_diff <= TOL, f"latent max diff {latent_diff:.3e}"
    assert pixel_diff <= TOL, f"pixel max diff {pixel_diff:.3e}"


def test_image_condition_and_recipe_change_the_result(models):
    """Guards the parity test against comparing things that do not depend on the inputs."""
    pipe, up, _, _ = models
    args = dict(seed=SEED, image_crf=0, width=WIDTH, height=HEIGHT, num_frames=FRAMES)
    plain = sample_multi_scale(pipe, up, "p", "", recipe=MultiScaleRecipe.from_official(DISTILLED_LIKE), **args)
    image = [ImageKeyframe(first_frame_image(), 0, 1.0)]
    with_image = sample_multi_scale(
        pipe, up, "p", "", recipe=MultiScaleRecipe.from_official(DISTILLED_LIKE), keyframes=image, **args
    )
    steps = []
    dev = sample_multi_scale(
        pipe, up, "p", "", recipe=MultiScaleRecipe.from_official(DEV_LIKE), callback=lambda *a: steps.append(a), **args
    )
    assert [(i, n) for i, n, _ in steps] == [(i, 9) for i in range(9)]  # 8 - 2 first-pass steps, 8 - 5 second
    assert steps[0][2].shape == (1, CHANNELS, 2, 1, 3) and steps[-1][2].shape == dev.shape
    assert (plain - with_image).abs().max() > 1e-2 and (plain - dev).abs().max() > 1e-2


def test_adain_matches_official():
    gen = torch.Generator().manual_seed(3)
    x, ref = torch.randn(2, 4, 3, 4, 5, generator=gen) * 3 + 1, torch.randn(2, 4, 2, 2, 3, generator=gen)
    for factor in (1.0, 0.4):
        d = (adain(x, ref, factor) - pipeline_module.adain_filter_latent(x, ref, factor)).abs().max().item()
        assert d <= 1e-5, f"adain factor {factor}: max diff {d:.3e}"


def test_sizes():
    # official int(x * f) - int(x * f) % 32: int(768 * 0.6666666) = 511 -> 480 (second pass 960 x 640)
    assert reduced_size(768, 512, 0.6666666, 32) == (480, 320)
    assert reduced_size(1216, 704, 0.6666666, 32) == (800, 448)
    with pytest.raises(ValueError, match=r"width 32 gives a first pass of 0 px.*at least 64"):
        reduced_size(32, 512, 0.6666666, 32)
    with pytest.raises(ValueError, match=r"height 32 .*at least 64"):
        reduced_size(512, 32, 0.6666666, 32)


def test_bad_sizes_are_rejected_before_sampling(models):
    pipe, up, _, _ = models
    for width, height, match in ((192, 32, "height 32"), (100, 96, "width must be a multiple of 32")):
        with pytest.raises(ValueError, match=match):
            sample_multi_scale(pipe, up, "p", width=width, height=height, num_frames=FRAMES, recipe="13b-0.9.8-dev")


def test_released_recipes():
    dev, distilled = RECIPES["13b-0.9.8-dev"], RECIPES["13b-0.9.8-distilled"]
    assert (dev.first.steps, dev.first.skip_final, dev.second.steps, dev.second.skip_initial) == (30, 3, 30, 17)
    assert [g.cfg for g in dev.first.guidances] == [1, 1, 6, 8, 6, 1, 1] and dev.first.guidances[1].cfg_star
    assert dev.second.guidances[0].stg_blocks == (27,) and dev.second.tone_map == 0.0
    assert distilled.second.tone_map == 0.6 and RECIPES["13b-0.9.7-distilled"].second.tone_map == 0.0
    assert all(r.downscale_factor == 0.6666666 and r.adain_factor == 1.0 for r in RECIPES.values())


def test_tone_mapped_decode_keeps_the_decode_noise(models):
    """With decode noise on, tone mapping goes between the noise mix and the VAE (official order) and the decoder
    sees the same generator state as the plain decode: equal to the steps written out by hand."""
    from videodit.model import frontend

    pipe, _, _, _ = models
    latent = torch.randn(1, CHANNELS, 2, 2, 6, generator=torch.Generator().manual_seed(4))
    got = decode_multi_scale(pipe, latent, WIDTH, HEIGHT, SEED, 0.6, decode_noise_scale=0.025)
    generator = frontend.decode_generator(SEED)
    z = frontend.mix_decode_noise(latent, 0.025, generator)
    z = pipeline_module.LTXVideoPipeline.tone_map_latents(z, 0.6)
    video = pipe.vae.decode(pipe.vae.denormalize(z), DECODE_TIMESTEP, generator)  # (1, 3, F, 64, 192)
    video = (video.clamp(-1, 1) + 1) / 2
    expected = torch.nn.functional.interpolate(video[0].transpose(0, 1), size=(HEIGHT, WIDTH), mode="bilinear")
    d = (got[0] - expected.permute(0, 2, 3, 1)).abs().max().item()
    print(f"\ntone-mapped decode with noise: max diff vs by hand {d:.3e}")
    assert d <= 1e-6, f"max diff {d:.3e}"
    plain = decode_multi_scale(pipe, latent, WIDTH, HEIGHT, SEED, 0.0, decode_noise_scale=0.025)
    assert (plain - got).abs().max() > 1e-3  # the tone mapping does something


def test_recipe_checks(models):
    from dataclasses import replace

    pipe, up, _, _ = models
    args = dict(width=WIDTH, height=HEIGHT, num_frames=FRAMES)
    distilled_only_first = replace(pipe, allowed_inference_steps=list(DISTILLED_LIKE["first_pass"]["timesteps"]))
    with pytest.raises(ValueError, match=r"timesteps \[0.4219\] are not allowed"):
        sample_multi_scale(distilled_only_first, up, "p", recipe=MultiScaleRecipe.from_official(DISTILLED_LIKE), **args)
    no_skip = {**DEV_LIKE, "second_pass": {**DEV_LIKE["second_pass"], "skip_initial_inference_steps": 0}}
    with pytest.raises(ValueError, match="second pass starts at timestep 1.0"):
        sample_multi_scale(pipe, up, "p", recipe=MultiScaleRecipe.from_official(no_skip), **args)
    with pytest.raises(ValueError, match="lists of guidance values need guidance_timesteps"):
        MultiScaleRecipe.from_official({"first_pass": {"guidance_scale": [1, 3]}, "second_pass": {}})
    with pytest.raises(ValueError, match=r"\{'stg_scale': 2\} entries for 3 guidance_timesteps"):
        MultiScaleRecipe.from_official(
            {"first_pass": {**DEV_LIKE["first_pass"], "stg_scale": [0, 1]}, "second_pass": {}}
        )
    with pytest.raises(ValueError, match="unknown keys"):
        MultiScaleRecipe.from_official({"first_pass": {"strength": 0.85}, "second_pass": {}})
    temporal = LatentUpsampler(UpsamplerConfig.from_metadata({**UPSAMPLER, "temporal_upsample": True}))
    with pytest.raises(ValueError, match="spatial x2 latent upsampler"):
        sample_multi_scale(pipe, temporal, "p", recipe=MultiScaleRecipe.from_official(DISTILLED_LIKE), **args)


def test_builtin_pipeline_with_an_upsampler_file(tmp_path):
    """The Python API end to end: load_pipeline (built-in tiny model) + load_latent_upsampler (a random spatial x2
    file) -> generate_multi_scale with a released recipe: the size asked for, the same video for the same seed."""
    import json

    from safetensors.torch import save_file
    from videodit.model import load_latent_upsampler, load_pipeline
    from videodit.model.builtin import builtin_weights

    tiny = builtin_weights()
    pipe = load_pipeline(tiny.checkpoint, tiny.text_encoder, dtype=torch.float32)
    config = UpsamplerConfig.from_metadata({**UPSAMPLER, "in_channels": pipe.geometry.latent_channels})
    path = str(tmp_path / "upsampler.safetensors")
    save_file(randomized(LatentUpsampler(config), 5), path, metadata={"config": json.dumps(config.to_metadata())})
    up = load_latent_upsampler(path, dtype=torch.float32).eval()
    args = dict(width=128, height=96, num_frames=9, recipe="13b-0.9.8-distilled", seed=3)
    frames = generate_multi_scale(pipe, up, "a red circle moving to the right on a black background", **args)
    assert frames.shape == (9, 96, 128, 3) and 0.0 <= frames.min() and frames.max() <= 1.0
    again = generate_multi_scale(pipe, up, "a red circle moving to the right on a black background", **args)
    assert torch.equal(frames, again)
