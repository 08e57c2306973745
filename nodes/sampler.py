"""The sampler node: rectified-flow denoising with CFG + STG, keyframes, progress, previews and interrupt; for LTX-2
joint audio+video sampling with multimodal guidance (ltx2_sampling.py)."""

import torch
from PIL import Image

from ..model import frontend
from ..model.builtin import warn_prompt
from . import host
from .common import (
    CATEGORY,
    CONDITIONING_TYPE,
    MAX_SEED,
    MODEL_TYPE,
    InputError,
    check_inputs,
    check_number,
    input_spec,
)
from .latents import latent_geometry
from .ltx2_models import check_family, check_prompt

SCHEDULES = ["auto", "shifted", "linear_quadratic", "distilled", "distilled_stage_2"]
GUIDANCE_MODES = ["default", "custom"]
PREVIEW_FIT_SEED = 1234
PREVIEW_FIT_SIZE = 16  # latent pixels per side used to fit the preview projection


def parse_blocks(text: str, num_layers: int | None) -> tuple[int, ...]:
    """ "19" or "14, 19" -> (14, 19); InputError naming stg_blocks when malformed or out of range."""
    parts = [p.strip() for p in str(text).replace(";", ",").split(",") if p.strip()]
    try:
        blocks = tuple(int(p) for p in parts)
    except ValueError:
        raise InputError(
            f"stg_blocks must be block numbers separated by commas, e.g. '19' or '14,19': got {text!r}"
        ) from None
    if num_layers is not None:
        bad = [b for b in blocks if not 0 <= b < num_layers]
        if bad:
            raise InputError(
                f"stg_blocks: block(s) {bad} do not exist; this model has {num_layers} blocks (0-{num_layers - 1})"
            )
    return blocks


def fit_preview_factors(vae) -> tuple[torch.Tensor, torch.Tensor]:
    """A (128, 3) matrix and (3,) bias mapping a normalized latent voxel to the mean RGB (-1..1) of the 32x32
    pixels it decodes to: least squares over one decoded random latent frame. Cheap (one small decode, once per
    model) and right for any VAE, including the tiny built-in one whose latent space differs from the 2B's."""
    module = vae.acquire()
    try:
        generator = torch.Generator().manual_seed(PREVIEW_FIT_SEED)
        channels = module.config.latent_channels
        z = torch.randn(1, channels, 1, PREVIEW_FIT_SIZE, PREVIEW_FIT_SIZE, generator=generator)
        with torch.inference_mode():
            raw = module.denormalize(z.to(vae.device, vae.dtype))
            timestep = 0.05 if getattr(module.config, "timestep_conditioning", False) else None
            rgb = module.decode(raw, timestep=timestep)[:, :, :1].float().cpu()  # (1, 3, 1, 512, 512)
    finally:
        vae.release()
    factor = rgb.shape[-1] // PREVIEW_FIT_SIZE
    mean_rgb = torch.nn.functional.avg_pool2d(rgb[0, :, 0][None], factor)[0]  # (3, S, S)
    x = z[0, :, 0].reshape(channels, -1).T.double()  # (S*S, C)
    y = mean_rgb.reshape(3, -1).T.double()  # (S*S, 3)
    x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    ridge = 1e-2 * torch.eye(x1.shape[1], dtype=x.dtype)
    solution = torch.linalg.solve(x1.T @ x1 + ridge, x1.T @ y)  # (C+1, 3)
    return solution[:-1].float(), solution[-1].float()


def latent_to_preview(x0: torch.Tensor, factors: torch.Tensor, bias: torch.Tensor) -> Image.Image:
    """First latent frame of the first sample -> a small RGB image (one pixel per latent voxel, upscaled x8)."""
    frame = x0[0, :, 0].float().cpu()  # (C, H, W)
    rgb = torch.einsum("chw,cr->hwr", frame, factors) + bias
    pixels = ((rgb.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).numpy()
    image = Image.fromarray(pixels)
    return image.resize((image.width * 8, image.height * 8), Image.NEAREST)


class VideoDiTSampler:
    DESCRIPTION = (
        "Generates the video latent: rectified-flow sampling with classifier-free guidance (cfg) and "
        "spatio-temporal skip guidance (stg), conditioned on the prompt and any keyframes in the latent."
    )
    CATEGORY = CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The denoised video latent; decode it with VideoDiT VAE Decode.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL_TYPE, {"tooltip": "From VideoDiT Model Loader."}),
                "positive": (CONDITIONING_TYPE, {"tooltip": "The prompt (VideoDiT Text Encode)."}),
                "negative": (CONDITIONING_TYPE, {"tooltip": "The negative prompt (used when cfg > 1)."}),
                "latent": (
                    "LATENT",
                    {
                        "tooltip": "Empty Latent Video (text-to-video), Image To Video (keyframes), or a "
                        "video latent to refine with denoise < 1."
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": MAX_SEED,
                        "control_after_generate": True,
                        "tooltip": "Noise seed: the same seed and settings give the same video on CPU and "
                        "GPU (noise is drawn on the CPU).",
                    },
                ),
                "steps": (
                    "INT",
                    {
                        "default": 30,
                        "min": 1,
                        "max": 1000,
                        "tooltip": "Sampling steps: 30-40 for quality, 20 for speed; distilled models: 8.",
                    },
                ),
                "cfg": (
                    "FLOAT",
                    {
                        "default": 3.0,
                        "min": 0.0,
                        "max": 100.0,
                        "step": 0.1,
                        "round": 0.01,
                        "tooltip": "Classifier-free guidance scale (official 3.0; 1 = off, faster).",
                    },
                ),
                "stg": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 100.0,
                        "step": 0.1,
                        "round": 0.01,
                        "tooltip": "Spatio-temporal skip guidance scale: steers away from a copy with the "
                        "stg_blocks' self-attention skipped; improves structure and motion "
                        "(official 1.0; 0 = off, faster).",
                    },
                ),
                "stg_blocks": (
                    "STRING",
                    {
                        "default": "19",
                        "tooltip": "Transformer blocks skipped for STG, comma separated: '19' for the "
                        "2B model (official), e.g. '14,19' to try more.",
                    },
                ),
                "rescale": (
                    "FLOAT",
                    {
                        "default": 0.7,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "Rescales the guided prediction's std towards the plain one (0.7 "
                        "official; 1 = no rescale). Only with STG.",
                    },
                ),
                "schedule": (
                    SCHEDULES,
                    {
                        "default": "auto",
                        "tooltip": "Timestep schedule. auto: what the checkpoint says; shifted: 0.9.0/"
                        "0.9.1 style (LTX-2: its token-shifted schedule); linear_quadratic: 0.9.5+; distilled: fixed "
                        "lists of the distilled models (8, 7 or 3 steps); distilled_stage_2: LTX-2 stage 2 of a "
                        "two-stage graph (3 steps from 0.909375 on the upsampled latent; steps is ignored).",
                    },
                ),
                "denoise": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.01,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "1 = generate from noise; lower values keep that much of the input "
                        "latent (video-to-video refinement).",
                    },
                ),
                "frame_rate": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": 0.0,
                        "max": 240.0,
                        "step": 0.01,
                        "tooltip": "Frame rate the model is told; 0 = the latent's frame rate (from "
                        "Empty Latent Video).",
                    },
                ),
                "image_noise": (
                    "FLOAT",
                    {
                        "default": frontend.IMAGE_COND_NOISE_SCALE,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "Keyframes only: noise put back on fully conditioned keyframe tokens at "
                        "every step (keyframe + noise x t^2), as the official pipeline does (0.15); 0 = none, "
                        "like ComfyUI's native LTXV nodes. Not used by LTX-2.",
                    },
                ),
            },
            "optional": {
                "guidance": (
                    GUIDANCE_MODES,
                    {
                        "default": "default",
                        "tooltip": "LTX-2: default = the version's own guidance (video cfg 3, audio cfg 7, STG 1 on "
                        "block 28 (2.0: 29), rescale 0.7, modality 3; none for distilled checkpoints and "
                        "distilled_stage_2); custom = cfg, audio_cfg, stg, stg_blocks, rescale and modality_scale "
                        "below. LTX-Video 0.9.x always uses the cfg/stg/rescale widgets.",
                    },
                ),
                "audio_cfg": (
                    "FLOAT",
                    {
                        "default": 7.0,
                        "min": 0.0,
                        "max": 100.0,
                        "step": 0.1,
                        "round": 0.01,
                        "tooltip": "LTX-2, guidance custom: classifier-free guidance of the audio (official 7; "
                        "cfg is the video's).",
                    },
                ),
                "modality_scale": (
                    "FLOAT",
                    {
                        "default": 3.0,
                        "min": 0.0,
                        "max": 100.0,
                        "step": 0.1,
                        "round": 0.01,
                        "tooltip": "LTX-2, guidance custom: steers away from a pass with the audio<->video "
                        "attention off, for sound in sync with the picture (official 3; 1 = off, faster).",
                    },
                ),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, cfg):
        # NaN passes ComfyUI's min/max comparisons, so cfg is checked here (naming it skips the built-in check).
        spec = input_spec(cls)["cfg"]
        message = check_number("cfg", cfg, spec[1], spec[0])
        return message or True

    def sample(
        self,
        model,
        positive,
        negative,
        latent,
        seed,
        steps,
        cfg,
        stg,
        stg_blocks,
        rescale,
        schedule,
        denoise,
        frame_rate,
        image_noise=frontend.IMAGE_COND_NOISE_SCALE,
        guidance="default",
        audio_cfg=7.0,
        modality_scale=3.0,
    ):
        check_inputs(
            type(self),
            dict(
                seed=seed,
                steps=steps,
                cfg=cfg,
                stg=stg,
                rescale=rescale,
                schedule=schedule,
                denoise=denoise,
                frame_rate=frame_rate,
                image_noise=image_noise,
                guidance=guidance,
                audio_cfg=audio_cfg,
                modality_scale=modality_scale,
            ),
        )
        from ..model import schedules
        from ..model.sampling import Guidance, TextCondition, kept_steps

        family = frontend.steps_for(model.family)
        check_prompt("positive", positive, family.family)
        check_prompt("negative", negative, family.family)
        check_family("latent", latent, family.family, "model")
        if isinstance(positive, frontend.Prompt) and positive.builtin:
            warn_prompt(positive.text)

        num_layers = getattr(model.transformer.config, "num_layers", None)
        custom = family.family != "ltx2" or guidance == "custom"
        blocks = parse_blocks(stg_blocks, num_layers if stg > 0 and custom else None)
        if stg > 0 and not blocks and custom:
            raise InputError("stg_blocks is empty but stg > 0: name at least one block (e.g. '19') or set stg to 0")
        if family.family == "ltx2":
            from .ltx2_sampling import sample_ltx2

            guided = (guidance, cfg, audio_cfg, stg, blocks, rescale, modality_scale)
            return sample_ltx2(
                model, family, positive, negative, latent, seed, steps, schedule, denoise, frame_rate, guided
            )
        if schedule == "distilled_stage_2":
            raise InputError(
                "schedule: distilled_stage_2 is for LTX-2 two-stage graphs; LTX-Video 0.9.x: use distilled"
            )
        _, _, _, latent_rate = latent_geometry(latent, model.geometry)
        rate = float(frame_rate) if frame_rate > 0 else latent_rate
        samples = latent["samples"].float()
        _, _, f, h, w = samples.shape
        try:
            ts = schedules.timesteps(
                schedule,
                int(steps),
                (f, h, w),
                model.scheduler_config,
                model.allowed_inference_steps if schedule in ("auto", "distilled") else None,
            )
        except ValueError as e:
            raise InputError(f"schedule '{schedule}' with steps={steps}: {e}") from e
        guidance = Guidance(cfg=float(cfg), stg=float(stg), stg_blocks=blocks or (19,), rescale=float(rescale))
        # prompts at this checkpoint's length (re-encoded before the DiT takes the GPU when it differs)
        texts = [c.for_version(model.version) if isinstance(c, frontend.Prompt) else c for c in (positive, negative)]

        transformer = model.acquire()
        device = model.device
        progress = host.Progress(len(kept_steps(ts, denoise)), "VideoDiT sampling")
        want_previews = host.previews_enabled()
        if want_previews and model.preview_factors is None:
            model.preview_factors = fit_preview_factors(model.vae)

        def to_device(cond):
            return TextCondition(embeddings=cond.embeddings.to(device), mask=cond.mask.to(device))

        def callback(step, total, x0):
            progress.total = total
            preview = latent_to_preview(x0, *model.preview_factors) if want_previews else None
            progress.update(step + 1, preview)
            host.check_interrupt()

        try:
            with torch.inference_mode():
                out = family.sample(
                    transformer,
                    samples.to(device),
                    to_device(texts[0]),
                    to_device(texts[1]) if texts[1] is not None else None,
                    ts,
                    guidance,
                    int(seed),
                    keyframes=[_keyframe_to(kf, device) for kf in latent.get("keyframes", ())],
                    frame_rate=rate,
                    denoise=float(denoise),
                    image_cond_noise_scale=float(image_noise),
                    callback=callback,
                    geometry=model.geometry,
                )
        finally:
            model.release()
        result = dict(latent)
        result["samples"] = out.float().cpu()
        result["frame_rate"] = rate
        result["seed"] = int(seed)  # VAE Decode derives its decode-time noise from it, as the pipeline does
        return (result,)


def _keyframe_to(keyframe, device):
    return type(keyframe)(
        latent=keyframe.latent.to(device), pixel_frame=keyframe.pixel_frame, strength=keyframe.strength
    )
