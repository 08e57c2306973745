"""LTX-2 sampling against the official code: ltx-core 1.0.0's LTX2Scheduler, MultiModalGuider, patchifiers and
conditioning items, and ltx-pipelines 1.0.0's denoising loop (euler_denoising_loop + multi_modal_guider_denoising_func
+ denoise_audio_video / denoise_video_only).

The transformer of both sides is one tiny random ltx-core LTXModel (fp32, SDPA attention, 2.3 flags): ltx-pipelines
calls it through X0Model with Modality/perturbations, ours through an adapter that turns our Stream/Skip into those.
The loops then see the same model, so their results are compared bit for bit (tolerance 1e-6, max diff printed).
"""

import dataclasses
import importlib
import importlib.util
import sys
import types

import pytest
import torch
from videodit.model.ltx2 import guidance as G
from videodit.model.ltx2 import latents as L
from videodit.model.ltx2 import sampling as S
from videodit.model.ltx2 import schedules
from videodit.model.ltx2.config import tiny as tiny_config
from videodit.model.ltx2.transformer import LTX2Transformer

if importlib.util.find_spec("ltx_core") is None or importlib.util.find_spec("ltx_pipelines") is None:
    pytest.skip("needs ltx-core and ltx-pipelines 1.0.0 (pip install --no-deps)", allow_module_level=True)

FPS = 24.0
C_VIDEO, C_AUDIO, MEL = 128, 8, 16  # ltx-pipelines' latent channels (its components fix them)
NUM_LAYERS = 2
TOL = 1e-6
OURS_TOL = 1e-4  # our transformer instead of ltx-core's: per-forward float32 differences carried through the loop


class _Stub(types.ModuleType):
    """Stands in for torchaudio and PyAV while ltx-pipelines is imported (neither is called here)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Stub(f"{self.__name__}.{name}")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matmuls: one intra-op thread is ~10x faster than two on a loaded CPU (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ref():
    import transformers  # noqa: F401  (imported first: it probes torchaudio and must not see the stub)

    saved = {name: sys.modules.get(name) for name in ("torchaudio", "av")}
    sys.modules.update({name: _Stub(name) for name in saved})
    try:
        modules = [
            "ltx_core.components.schedulers",
            "ltx_core.components.guiders",
            "ltx_core.components.noisers",
            "ltx_core.components.diffusion_steps",
            "ltx_core.components.patchifiers",
            "ltx_core.conditioning",
            "ltx_core.guidance.perturbations",
            "ltx_core.model.transformer.model",
            "ltx_core.model.transformer.attention",
            "ltx_core.model.transformer.modality",
            "ltx_core.tools",
            "ltx_core.types",
            "ltx_pipelines.utils.constants",
            "ltx_pipelines.utils.helpers",
            "ltx_pipelines.utils.samplers",
            "ltx_pipelines.utils.types",
        ]
        namespace = types.SimpleNamespace()
        for name in modules:
            for key, value in vars(importlib.import_module(name)).items():
                if not key.startswith("_"):
                    setattr(namespace, key, value)
        return namespace
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def tiny_model(ref, seed: int):
    model = ref.LTXModel(
        model_type=ref.LTXModelType.AudioVideo,
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=C_VIDEO,
        out_channels=C_VIDEO,
        num_layers=NUM_LAYERS,
        cross_attention_dim=32,
        audio_num_attention_heads=2,
        audio_attention_head_dim=8,
        audio_in_channels=C_AUDIO * MEL,
        audio_out_channels=C_AUDIO * MEL,
        audio_cross_attention_dim=16,
        attention_type=ref.AttentionFunction.PYTORCH,
        rope_type=ref.LTXRopeType.SPLIT,
        double_precision_rope=True,
        av_ca_timestep_scale_multiplier=1000,
        apply_gated_attention=True,
        cross_attention_adaln=True,
        positional_embedding_max_pos=[20, 2048, 2048],
        audio_positional_embedding_max_pos=[20],
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
    return model.eval()


def our_denoiser(ref, model):
    """Our Stream/Skip interface on ltx-core's LTXModel: velocities for both modalities."""
    kinds = (
        ("video_self_attention", ref.PerturbationType.SKIP_VIDEO_SELF_ATTN),
        ("audio_self_attention", ref.PerturbationType.SKIP_AUDIO_SELF_ATTN),
        ("audio_to_video", ref.PerturbationType.SKIP_A2V_CROSS_ATTN),
        ("video_to_audio", ref.PerturbationType.SKIP_V2A_CROSS_ATTN),
    )

    def modality(stream):
        if stream is None:
            return None
        return ref.Modality(
            latent=stream.latent,
            sigma=stream.sigma,
            timesteps=stream.timesteps,
            positions=stream.positions,
            context=stream.context,
            context_mask=stream.context_mask,
            attention_mask=stream.attention_mask,
        )

    def run(video, audio, skip):
        perturbations = [
            ref.Perturbation(type=kind, blocks=sorted(getattr(skip, field)))
            for field, kind in kinds
            if getattr(skip, field)
        ]
        config = ref.BatchedPerturbationConfig([ref.PerturbationConfig(perturbations)])
        with torch.no_grad():
            return model(modality(video), modality(audio), config)

    return run


def max_diff(a, b) -> float:
    return (a.double() - b.double()).abs().max().item()


# ---------------------------------------------------------------------------------------------------------- (d)


@pytest.mark.parametrize("steps", [1, 2, 5, 8, 20, 30, 40])
@pytest.mark.parametrize("tokens", [None, 1, 700, 1024, 4096, 6144, 24576])
@pytest.mark.parametrize("stretch", [True, False])
def test_scheduler_equals_ltx_core(ref, steps, tokens, stretch):
    latent = None if tokens is None else torch.zeros(1, C_VIDEO, tokens)  # ltx-core counts prod(shape[2:])
    official = ref.LTX2Scheduler().execute(steps=steps, latent=latent, stretch=stretch)
    ours = schedules.ltx2_sigmas(steps, tokens or 4096, terminal=0.1 if stretch else None)
    if torch.isnan(official).any():  # one step whose shift rounds to exactly 1: ltx-core divides 0 by 0
        assert steps == 1 and ours.tolist() == [1.0, 0.0], (official, ours)
        return
    assert ours.dtype == official.dtype == torch.float32
    assert torch.equal(ours, official), f"max diff {max_diff(ours, official)}: ours {ours} official {official}"
    if stretch and steps > 1:
        assert ours[-2].item() == pytest.approx(0.1, abs=1e-6) and ours[-1].item() == 0.0


def test_scheduler_shift_parameters_equal_ltx_core(ref):
    for max_shift, base_shift, terminal in [(2.05, 0.95, 0.1), (1.5, 0.5, 0.05), (3.0, 1.0, 0.2)]:
        official = ref.LTX2Scheduler().execute(
            steps=12, latent=torch.zeros(1, 1, 2, 16, 24), max_shift=max_shift, base_shift=base_shift, terminal=terminal
        )
        ours = schedules.ltx2_sigmas(12, 2 * 16 * 24, max_shift, base_shift, terminal)
        assert torch.equal(ours, official), f"max diff {max_diff(ours, official)}"


def test_distilled_sigmas_equal_ltx_pipelines(ref):
    for stage, values in ((1, ref.DISTILLED_SIGMA_VALUES), (2, ref.STAGE_2_DISTILLED_SIGMA_VALUES)):
        official = torch.Tensor(values)  # how the pipelines build them
        ours = schedules.distilled_sigmas(stage)
        assert ours.dtype == official.dtype and torch.equal(ours, official), f"stage {stage}: {ours} vs {official}"
    with pytest.raises(ValueError, match="stage must be 1 or 2"):
        schedules.distilled_sigmas(3)


def _core_params(ref, p: G.GuiderParams):
    return ref.MultiModalGuiderParams(
        cfg_scale=p.cfg_scale,
        stg_scale=p.stg_scale,
        stg_blocks=None if p.stg_blocks is None else list(p.stg_blocks),
        rescale_scale=p.rescale_scale,
        modality_scale=p.modality_scale,
        skip_step=p.skip_step,
    )


@pytest.mark.parametrize(
    "params",
    [
        G.GuiderParams(cfg_scale=3.0, stg_scale=1.0, rescale_scale=0.7, modality_scale=3.0),
        G.GuiderParams(cfg_scale=7.0, stg_scale=1.0, rescale_scale=0.7, modality_scale=3.0),
        G.GuiderParams(cfg_scale=3.0, stg_scale=0.0, rescale_scale=0.45, modality_scale=3.0),
        G.GuiderParams(cfg_scale=7.0, rescale_scale=1.0, modality_scale=3.0),
        G.GuiderParams(cfg_scale=4.5),
        G.GuiderParams(stg_scale=2.0),
        G.GuiderParams(),
    ],
)
def test_guider_equals_multimodal_guider(ref, params):
    generator = torch.Generator().manual_seed(1)
    cond, uncond, perturbed, isolated = (torch.randn(2, 37, 128, generator=generator) for _ in range(4))
    core = ref.MultiModalGuider(params=_core_params(ref, params))
    # ltx-pipelines passes 0.0 for a pass it did not run; ours takes None
    runs = [
        (uncond if core.do_unconditional_generation() else None),
        (perturbed if core.do_perturbed_generation() else None),
        (isolated if core.do_isolated_modality_generation() else None),
    ]
    official = core.calculate(cond, *(0.0 if r is None else r for r in runs))
    ours = params.combine(cond, *runs)
    assert (params.uses_uncond, params.uses_perturbed, params.uses_isolated) == tuple(r is not None for r in runs)
    assert max_diff(ours, official) <= TOL, f"max diff {max_diff(ours, official)}"


def test_guidance_defaults_equal_ltx_pipelines(ref):
    for version, official in (("2.0", ref.LTX_2_PARAMS), ("2.3", ref.LTX_2_3_PARAMS)):
        ours = G.GUIDANCE[version]
        assert _core_params(ref, ours.video) == official.video_guider_params, version
        assert _core_params(ref, ours.audio) == official.audio_guider_params, version
        assert schedules.DEFAULT_STEPS[version] == official.num_inference_steps, version


def test_guidance_passes_and_skips():
    guidance = G.MultiModalGuidance(
        video=G.GuiderParams(cfg_scale=3.0, stg_scale=1.0, stg_blocks=[1]),
        audio=G.GuiderParams(stg_scale=1.0, stg_blocks=None, modality_scale=3.0),
    )
    plan = {p.name: p for p in guidance.passes(num_layers=3)}
    assert list(plan) == ["cond", "uncond", "perturbed", "isolated"]
    assert plan["uncond"].negative_text and not plan["perturbed"].negative_text
    assert plan["perturbed"].skip.video_self_attention == {1} and plan["perturbed"].skip.audio_self_attention == {
        0,
        1,
        2,
    }
    assert plan["isolated"].skip.audio_to_video == plan["isolated"].skip.video_to_audio == {0, 1, 2}
    assert [p.name for p in G.MultiModalGuidance().passes(3)] == ["cond"]
    with pytest.raises(ValueError, match="out of range"):
        guidance.passes(num_layers=1)
    with pytest.raises(ValueError, match="skip_step must be equal"):
        G.MultiModalGuidance(video=G.GuiderParams(skip_step=1))
    with pytest.raises(ValueError, match="rescale_scale"):
        G.GuiderParams(rescale_scale=1.5)


# ---------------------------------------------------------------------- latents, positions, conditioning items


def test_positions_and_patchify_equal_ltx_core(ref):
    frames, height, width, audio_tokens = 3, 2, 5, 11
    video_shape = ref.VideoLatentShape(batch=2, channels=C_VIDEO, frames=frames, height=height, width=width)
    latent = torch.randn(video_shape.to_torch_shape())
    tools = ref.VideoLatentTools(ref.VideoLatentPatchifier(patch_size=1), video_shape, FPS)
    official = tools.create_initial_state(torch.device("cpu"), torch.float32, latent)
    ours = L.video_state(latent, FPS)
    assert torch.equal(ours.latent, official.latent)
    assert ours.positions.dtype == torch.float32 and torch.equal(ours.positions, official.positions)
    assert torch.equal(L.unpatchify_video(ours.latent, frames, height, width), latent)

    audio_shape = ref.AudioLatentShape(batch=2, channels=C_AUDIO, frames=audio_tokens, mel_bins=MEL)
    audio = torch.randn(audio_shape.to_torch_shape())
    audio_tools = ref.AudioLatentTools(ref.AudioPatchifier(patch_size=1), audio_shape)
    official_audio = audio_tools.create_initial_state(torch.device("cpu"), torch.float32, audio)
    ours_audio = L.audio_state(audio)
    assert torch.equal(ours_audio.latent, official_audio.latent)
    assert torch.equal(ours_audio.positions, official_audio.positions)
    assert torch.equal(L.to_latent(ours_audio), audio)
    for num_frames, fps in ((121, 24.0), (97, 25.0), (9, 24.0)):
        pixel = ref.VideoPixelShape(batch=1, frames=num_frames, height=64, width=64, fps=fps)
        assert L.audio_token_count(num_frames, fps) == ref.AudioLatentShape.from_video_pixel_shape(pixel).frames


def test_image_and_keyframe_conditioning_equal_ltx_core(ref):
    video_shape = ref.VideoLatentShape(batch=1, channels=C_VIDEO, frames=3, height=2, width=3)
    tools = ref.VideoLatentTools(ref.VideoLatentPatchifier(patch_size=1), video_shape, FPS)
    generator = torch.Generator().manual_seed(3)
    image, keyframe, clip = (torch.randn(1, C_VIDEO, f, 2, 3, generator=generator) for f in (1, 1, 2))
    official = tools.create_initial_state(torch.device("cpu"), torch.float32)
    for item in (
        ref.VideoConditionByLatentIndex(latent=image, strength=1.0, latent_idx=0),
        ref.VideoConditionByKeyframeIndex(keyframes=keyframe, frame_idx=16, strength=0.75),
        ref.VideoConditionByKeyframeIndex(keyframes=clip, frame_idx=0, strength=0.5),
        ref.VideoConditionByLatentIndex(latent=clip, strength=0.25, latent_idx=1),
    ):
        official = item.apply_to(official, tools)
    ours = L.condition_on_images(
        L.video_state(torch.zeros(1, C_VIDEO, 3, 2, 3), FPS),
        [L.ImageCondition(image), L.ImageCondition(keyframe, 16, 0.75)],
        FPS,
    )
    ours = L.append_keyframe(ours, clip, 0, 0.5, FPS)  # appended at frame 0: the causal fix applies
    ours = L.replace_frames(ours, clip, 1, 0.25)
    for name, theirs in (
        ("latent", official.latent),
        ("clean", official.clean_latent),
        ("denoise_mask", official.denoise_mask[..., 0]),
        ("positions", official.positions),
    ):
        assert torch.equal(getattr(ours, name), theirs), f"{name}: max diff {max_diff(getattr(ours, name), theirs)}"
    cleared = tools.unpatchify(tools.clear_conditioning(official))
    assert torch.equal(L.to_latent(ours), cleared.latent)
    with pytest.raises(ValueError, match="does not fit"):
        L.replace_frames(ours, clip, 2, 1.0)


# ---------------------------------------------------------------------------------------------------------- (e)

GUIDED = G.MultiModalGuidance(
    video=G.GuiderParams(cfg_scale=3.0, stg_scale=1.0, stg_blocks=(1,), rescale_scale=0.7, modality_scale=3.0),
    audio=G.GuiderParams(cfg_scale=7.0, stg_scale=1.0, stg_blocks=(0,), rescale_scale=0.7, modality_scale=2.0),
)


def _contexts(seed: int):
    generator = torch.Generator().manual_seed(seed)
    positive = S.TextContext(torch.randn(1, 7, 32, generator=generator), torch.randn(1, 7, 16, generator=generator))
    negative = S.TextContext(torch.randn(1, 7, 32, generator=generator), torch.randn(1, 7, 16, generator=generator))
    return positive, negative


def _reference_stage(
    ref,
    model,
    *,
    pixel,
    sigmas,
    noiser,
    conditionings,
    positive,
    negative,
    guidance,
    audio=None,
    given_audio=False,
    video=None,
    noise_scale=1.0,
):
    """One stage through ltx-pipelines' own functions; guidance None = simple_denoising_func (stage 2)."""
    x0_model = ref.X0Model(model)
    if guidance is None:
        denoise_fn = ref.simple_denoising_func(positive.video, positive.audio, x0_model)
    else:
        audio_params = G.GuiderParams() if given_audio else guidance.audio  # as a2vid_two_stage does
        denoise_fn = ref.multi_modal_guider_denoising_func(
            ref.MultiModalGuider(_core_params(ref, guidance.video), negative.video),
            ref.MultiModalGuider(_core_params(ref, audio_params), None if given_audio else negative.audio),
            positive.video,
            positive.audio,
            x0_model,
        )

    def loop(sigmas, video_state, audio_state, stepper):
        return ref.euler_denoising_loop(sigmas, video_state, audio_state, stepper, denoise_fn)

    common = dict(
        output_shape=pixel,
        conditionings=conditionings,
        noiser=noiser,
        sigmas=sigmas,
        stepper=ref.EulerDiffusionStep(),
        denoising_loop_fn=loop,
        components=ref.PipelineComponents(dtype=torch.float32, device=torch.device("cpu")),
        dtype=torch.float32,
        device=torch.device("cpu"),
        noise_scale=noise_scale,
        initial_video_latent=video,
        initial_audio_latent=audio,
    )
    with torch.no_grad():
        if given_audio:
            return ref.denoise_video_only(**common).latent, audio
        video_state, audio_state = ref.denoise_audio_video(**common)
    return video_state.latent, audio_state.latent


def ours_on_core_weights(model):
    """Our LTX2Transformer with the tiny ltx-core model's weights (same keys) and the same flags."""
    config = tiny_config(
        "2.3",
        in_channels=C_VIDEO,
        out_channels=C_VIDEO,
        audio_in_channels=C_AUDIO * MEL,
        audio_out_channels=C_AUDIO * MEL,
    )
    transformer = LTX2Transformer(config).eval()
    transformer.load_state_dict(model.state_dict(), strict=True)

    def run(video, audio, skip):
        with torch.no_grad():
            return transformer(video, audio, skip)

    return run


@pytest.mark.parametrize(
    "case, transformer",
    [
        ("text", "core"),
        ("image", "core"),
        ("audio_to_video", "core"),
        ("skip_step", "core"),
        ("text", "ours"),
        ("image", "ours"),
        ("audio_to_video", "ours"),
    ],
)
def test_loop_equals_ltx_pipelines(ref, case, transformer):
    """transformer "core": both loops call ltx-core's LTXModel (loop parity, bit for bit); "ours": our loop calls
    our LTX2Transformer with the same weights (its forward equals ltx-core's to ~1e-6; the loop may grow that)."""
    model = tiny_model(ref, seed=0)
    positive, negative = _contexts(seed=5)
    frames, height, width = 17, 64, 96  # latent 3 × 2 × 3
    pixel = ref.VideoPixelShape(batch=1, frames=frames, height=height, width=width, fps=FPS)
    audio_tokens = L.audio_token_count(frames, FPS)
    sigmas = schedules.ltx2_sigmas(4)
    guidance = GUIDED
    if case == "skip_step":
        guidance = G.MultiModalGuidance(
            video=dataclasses.replace(GUIDED.video, skip_step=1), audio=dataclasses.replace(GUIDED.audio, skip_step=1)
        )
    generator = torch.Generator().manual_seed(7)
    image, keyframe = (torch.randn(1, C_VIDEO, 1, 2, 3, generator=generator) for _ in range(2))
    track = torch.randn(1, C_AUDIO, audio_tokens, MEL, generator=generator)
    images = (L.ImageCondition(image, 0, 1.0), L.ImageCondition(keyframe, 16, 0.8)) if case == "image" else ()
    given_audio = case == "audio_to_video"

    official_video, official_audio = _reference_stage(
        ref,
        model,
        pixel=pixel,
        sigmas=sigmas,
        noiser=ref.GaussianNoiser(torch.Generator().manual_seed(11)),
        conditionings=[
            ref.VideoConditionByLatentIndex(latent=image, strength=1.0, latent_idx=0),
            ref.VideoConditionByKeyframeIndex(keyframes=keyframe, frame_idx=16, strength=0.8),
        ]
        if images
        else [],
        positive=positive,
        negative=negative,
        guidance=guidance,
        audio=track if given_audio else None,
        given_audio=given_audio,
    )
    denoiser = our_denoiser(ref, model) if transformer == "core" else ours_on_core_weights(model)
    with torch.no_grad():
        video, audio = S.generate(
            denoiser,
            video_latent=torch.zeros(1, C_VIDEO, 3, 2, 3),
            audio_latent=track if given_audio else torch.zeros(1, C_AUDIO, audio_tokens, MEL),
            fps=FPS,
            sigmas=sigmas,
            positive=positive,
            negative=negative,
            guidance=guidance,
            num_layers=NUM_LAYERS,
            generator=torch.Generator().manual_seed(11),
            images=images,
            audio_given=given_audio,
        )
    assert video.shape == official_video.shape and audio.shape == official_audio.shape
    diffs = (max_diff(video, official_video), max_diff(audio, official_audio))
    tol = TOL if transformer == "core" else OURS_TOL
    assert max(diffs) <= tol, f"{case} ({transformer}): max diff video {diffs[0]}, audio {diffs[1]}"
    if given_audio:
        assert torch.equal(audio, track), "the given audio track changed"
    if images:
        assert max_diff(video[:, :, :1], image) == 0.0, "the first-frame image is not kept"


def test_video_to_audio_keeps_video_and_equals_ltx_pipelines_loop(ref):
    """ltx-pipelines has no video-to-audio pipeline: the reference is its loop with the video mask at 0."""
    model = tiny_model(ref, seed=2)
    positive, negative = _contexts(seed=6)
    sigmas = schedules.ltx2_sigmas(3)
    generator = torch.Generator().manual_seed(8)
    clip = torch.randn(1, C_VIDEO, 2, 2, 2, generator=generator)
    guidance = G.MultiModalGuidance(audio=GUIDED.audio)  # the video is given: no video guidance
    noise = torch.Generator().manual_seed(12)
    pixel = ref.VideoPixelShape(batch=1, frames=9, height=64, width=64, fps=FPS)
    components = ref.PipelineComponents(dtype=torch.float32, device=torch.device("cpu"))
    noiser = ref.GaussianNoiser(noise)
    cpu = torch.device("cpu")
    video_state, _ = ref.noise_video_state(pixel, noiser, [], components, torch.float32, cpu, 0.0, clip)
    video_state = dataclasses.replace(video_state, denoise_mask=torch.zeros_like(video_state.denoise_mask))
    audio_state, _ = ref.noise_audio_state(pixel, noiser, [], components, torch.float32, cpu)
    denoise_fn = ref.multi_modal_guider_denoising_func(
        ref.MultiModalGuider(_core_params(ref, G.GuiderParams()), None),
        ref.MultiModalGuider(_core_params(ref, guidance.audio), negative.audio),
        positive.video,
        positive.audio,
        ref.X0Model(model),
    )
    with torch.no_grad():
        _, official_state = ref.euler_denoising_loop(
            sigmas, video_state, audio_state, ref.EulerDiffusionStep(), denoise_fn
        )
        video, audio = S.generate(
            our_denoiser(ref, model),
            video_latent=clip,
            audio_latent=torch.zeros(1, C_AUDIO, L.audio_token_count(9, FPS), MEL),
            fps=FPS,
            sigmas=sigmas,
            positive=positive,
            negative=negative,
            guidance=guidance,
            num_layers=NUM_LAYERS,
            generator=torch.Generator().manual_seed(12),
            video_given=True,
        )
    assert torch.equal(video, clip), "the given video changed"
    official_audio = L.unpatchify_audio(official_state.latent, C_AUDIO, MEL)
    assert max_diff(audio, official_audio) <= TOL, f"max diff audio {max_diff(audio, official_audio)}"


def _stub_upsampler(latent: torch.Tensor) -> torch.Tensor:
    """×2 in height and width with a fixed channel-dependent gain: a stand-in for the latent upsampler."""
    gain = torch.linspace(0.8, 1.2, latent.shape[1]).view(1, -1, 1, 1, 1)
    return (latent * gain).repeat_interleave(2, dim=3).repeat_interleave(2, dim=4) + 0.01


@pytest.mark.parametrize("case", ["image", "audio_to_video"])
def test_two_stage_equals_ltx_pipelines_flow(ref, case):
    """The reference is TI2VidTwoStagesPipeline's / A2VidPipelineTwoStage's flow written with ltx-pipelines'
    functions (their __call__ needs the model files and runs in bf16)."""
    stage_1_model, stage_2_model = tiny_model(ref, seed=0), tiny_model(ref, seed=1)
    positive, negative = _contexts(seed=9)
    frames, height, width = 9, 128, 128  # stage 1: 64 × 64 px = latent 2 × 2 × 2, stage 2: 2 × 4 × 4
    audio_tokens = L.audio_token_count(frames, FPS)
    sigmas = schedules.ltx2_sigmas(3)
    stage_2_sigmas = schedules.distilled_sigmas(2)
    generator = torch.Generator().manual_seed(4)
    image_1 = torch.randn(1, C_VIDEO, 1, 2, 2, generator=generator)
    image_2 = torch.randn(1, C_VIDEO, 1, 4, 4, generator=generator)
    track = torch.randn(1, C_AUDIO, audio_tokens, MEL, generator=generator) if case == "audio_to_video" else None

    noiser = ref.GaussianNoiser(torch.Generator().manual_seed(21))
    video_1, audio_1 = _reference_stage(
        ref,
        stage_1_model,
        pixel=ref.VideoPixelShape(batch=1, frames=frames, height=height // 2, width=width // 2, fps=FPS),
        sigmas=sigmas,
        noiser=noiser,
        conditionings=[ref.VideoConditionByLatentIndex(latent=image_1, strength=1.0, latent_idx=0)],
        positive=positive,
        negative=negative,
        guidance=GUIDED,
        audio=track,
        given_audio=track is not None,
    )
    official_video, official_audio = _reference_stage(
        ref,
        stage_2_model,
        pixel=ref.VideoPixelShape(batch=1, frames=frames, height=height, width=width, fps=FPS),
        sigmas=torch.Tensor(ref.STAGE_2_DISTILLED_SIGMA_VALUES),
        noiser=noiser,
        conditionings=[ref.VideoConditionByLatentIndex(latent=image_2, strength=1.0, latent_idx=0)],
        positive=positive,
        negative=None,
        guidance=None,
        video=_stub_upsampler(video_1[:1]),
        audio=audio_1,
        given_audio=track is not None,
        noise_scale=torch.Tensor(ref.STAGE_2_DISTILLED_SIGMA_VALUES)[0],
    )
    with torch.no_grad():
        video, audio = S.two_stage(
            our_denoiser(ref, stage_1_model),
            our_denoiser(ref, stage_2_model),
            _stub_upsampler,
            video_shape=(1, C_VIDEO, 2, 2, 2),
            audio_shape=(1, C_AUDIO, audio_tokens, MEL),
            fps=FPS,
            stage_1_sigmas=sigmas,
            positive=positive,
            negative=negative,
            guidance=GUIDED,
            num_layers=NUM_LAYERS,
            generator=torch.Generator().manual_seed(21),
            stage_1_images=(L.ImageCondition(image_1),),
            stage_2_images=(L.ImageCondition(image_2),),
            given_audio=track,
            stage_2_sigmas=stage_2_sigmas,
        )
    assert video.shape == (1, C_VIDEO, 2, 4, 4) and audio.shape == (1, C_AUDIO, audio_tokens, MEL)
    diffs = (max_diff(video, official_video), max_diff(audio, official_audio))
    assert max(diffs) <= TOL, f"{case}: max diff video {diffs[0]}, audio {diffs[1]}"
    if track is not None:
        assert torch.equal(audio, track)
