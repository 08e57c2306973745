"""Node schemas (valid for ComfyUI's V1 contract), bad inputs, and the node chain on the tiny model."""

import inspect
import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image
from videodit.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, host
from videodit.nodes.common import InputError, check_inputs, input_spec
from videodit.nodes.latents import VideoDiTEmptyLatentVideo, VideoDiTImageToVideo, VideoDiTVAEDecode
from videodit.nodes.loaders import VideoDiTModelLoader
from videodit.nodes.sampler import VideoDiTSampler, fit_preview_factors, latent_to_preview, parse_blocks
from videodit.nodes.save import VideoDiTSaveVideo
from videodit.nodes.video_io import read_metadata, read_video

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
OPTION_KEYS = {
    "default",
    "min",
    "max",
    "step",
    "round",
    "tooltip",
    "multiline",
    "dynamicPrompts",
    "control_after_generate",
    "forceInput",
    "display",
    "placeholder",
    "label_on",
    "label_off",
}


# ------------------------------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("name", sorted(NODE_CLASS_MAPPINGS))
def test_schema_is_valid_v1(name):
    cls = NODE_CLASS_MAPPINGS[name]
    assert name.startswith("VideoDiT") and name == cls.__name__
    assert NODE_DISPLAY_NAME_MAPPINGS[name].startswith("VideoDiT ")
    assert cls.CATEGORY == "VideoDiT"
    assert callable(getattr(cls, cls.FUNCTION))
    assert isinstance(cls.DESCRIPTION, str) and cls.DESCRIPTION
    types = cls.INPUT_TYPES()
    assert set(types) <= {"required", "optional", "hidden"} and "required" in types
    for section in ("required", "optional"):
        for input_name, entry in types.get(section, {}).items():
            assert isinstance(entry, tuple) and len(entry) == 2, (name, input_name)
            kind, options = entry
            assert set(options) <= OPTION_KEYS, (name, input_name, set(options) - OPTION_KEYS)
            assert isinstance(options.get("tooltip"), str) and len(options["tooltip"]) > 10, (name, input_name)
            if isinstance(kind, list):
                assert kind and all(isinstance(v, str) for v in kind)
                assert options.get("default", kind[0]) in kind, (name, input_name)
            else:
                assert isinstance(kind, str) and kind == kind.upper(), (name, input_name, kind)
            if kind in ("INT", "FLOAT"):
                lo, hi, default = options["min"], options["max"], options["default"]
                assert lo <= default <= hi, (name, input_name)
                assert isinstance(default, int if kind == "INT" else float), (name, input_name)
                assert options.get("step", 1) > 0
            if kind == "BOOLEAN":
                assert isinstance(options["default"], bool)
            if kind == "STRING":
                assert isinstance(options["default"], str)
    assert isinstance(cls.RETURN_TYPES, tuple) and all(isinstance(t, str) for t in cls.RETURN_TYPES)
    assert len(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)) == len(cls.RETURN_TYPES)
    assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES) and all(cls.OUTPUT_TOOLTIPS)
    validate = getattr(cls, "VALIDATE_INPUTS", None)
    if validate is not None:
        assert inspect.ismethod(validate)  # a classmethod: ComfyUI calls it on the class
        names = inspect.getfullargspec(validate).args[1:]
        assert names and set(names) <= set(input_spec(cls))
    if getattr(cls, "OUTPUT_NODE", False):
        assert types["hidden"] == {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}


def test_pack_imports_without_comfyui():
    code = (
        "import sys, videodit; import videodit.nodes as n; "
        "bad = [m for m in ('folder_paths', 'comfy', 'server', 'nodes') if m in sys.modules]; "
        "assert not bad, bad; print(len(n.NODE_CLASS_MAPPINGS))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(len(NODE_CLASS_MAPPINGS))


# ------------------------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "field,value,expected",
    [
        ("width", 100, "nearest valid: 96 or 128"),
        ("height", 500, "nearest valid: 480 or 512"),
        ("width", 0, "nearest valid: 32"),
        ("frames", 100, "nearest valid: 97 or 105"),
        ("frames", 0, "nearest valid: 1"),
        ("frames", 24, "nearest valid: 17 or 25"),
    ],
)
def test_bad_size_is_rejected_with_nearest_valid_values(field, value, expected):
    values = {"width": 768, "height": 512, "frames": 97, field: value}
    message = VideoDiTEmptyLatentVideo.VALIDATE_INPUTS(**values)
    assert isinstance(message, str) and message.startswith(field) and expected in message
    with pytest.raises(InputError, match=field):
        VideoDiTEmptyLatentVideo().generate(frame_rate=25.0, batch_size=1, **values)


def test_valid_sizes_pass_and_make_the_latent_shape():
    assert VideoDiTEmptyLatentVideo.VALIDATE_INPUTS(width=768, height=512, frames=97) is True
    (latent,) = VideoDiTEmptyLatentVideo().generate(768, 512, 97, 24.0, 2)
    assert latent["samples"].shape == (2, 128, 13, 16, 24) and not latent["samples"].any()
    assert (latent["width"], latent["height"], latent["frames"], latent["frame_rate"]) == (768, 512, 97, 24.0)


@pytest.mark.parametrize(
    "field,value",
    [
        ("steps", 0),
        ("seed", -1),
        ("denoise", 0.0),
        ("stg", float("nan")),
        ("rescale", float("inf")),
        ("schedule", "karras"),
    ],
)
def test_sampler_bad_constants_name_the_input(field, value):
    with pytest.raises(InputError, match=f"^{field}"):
        check_inputs(VideoDiTSampler, {field: value})


@pytest.mark.parametrize("cfg", [float("nan"), float("inf"), -1.0])
def test_sampler_rejects_non_finite_cfg_at_validation(cfg):
    message = VideoDiTSampler.VALIDATE_INPUTS(cfg=cfg)
    assert isinstance(message, str) and message.startswith("cfg must")
    assert VideoDiTSampler.VALIDATE_INPUTS(cfg=3.0) is True


def test_stg_blocks_parsing():
    assert parse_blocks("19", 28) == (19,)
    assert parse_blocks(" 14, 19 ", 28) == (14, 19)
    with pytest.raises(InputError, match="stg_blocks must be block numbers"):
        parse_blocks("nineteen", 28)
    with pytest.raises(InputError, match=r"stg_blocks: block\(s\) \[19\] do not exist; this model has 6 blocks"):
        parse_blocks("19", 6)


@pytest.fixture
def models_dir_with_bad_files(headless, tiny_models):
    ckpt_dir = os.path.join(headless.models_dir, "checkpoints")
    with open(tiny_models.checkpoint_path, "rb") as f:
        data = f.read()
    bad = {"truncated.safetensors": data[: len(data) // 2], "notes.safetensors": b"this is not a model\n" * 10}
    for name, content in bad.items():
        with open(os.path.join(ckpt_dir, name), "wb") as f:
            f.write(content)
    yield ckpt_dir
    for name in bad:
        os.remove(os.path.join(ckpt_dir, name))


@pytest.mark.parametrize("name", ["truncated.safetensors", "notes.safetensors"])
def test_model_loader_names_a_broken_file(models_dir_with_bad_files, name):
    from videodit.model.checkpoint import CheckpointError

    with pytest.raises(CheckpointError) as err:
        VideoDiTModelLoader().load(name, "fp32", "gpu")
    assert name in str(err.value)


def test_model_loader_names_a_missing_file(headless):
    with pytest.raises(FileNotFoundError, match="'gone.safetensors' not found in the checkpoints folders"):
        VideoDiTModelLoader().load("gone.safetensors", "fp32", "gpu")


def test_model_loader_rejects_unknown_dtype(headless, tiny_models):
    with pytest.raises(InputError, match="dtype: 'fp64' is not one of"):
        VideoDiTModelLoader().load(tiny_models.checkpoint, "fp64", "gpu")


def test_model_loader_lists_and_caches(headless, tiny_models):
    choices = input_spec(VideoDiTModelLoader)["checkpoint"][0]
    assert choices[0] == "videodit-tiny (built-in)" and tiny_models.checkpoint in choices
    first = VideoDiTModelLoader().load(tiny_models.checkpoint, "fp32", "gpu")
    again = VideoDiTModelLoader().load(tiny_models.checkpoint, "fp32", "gpu")
    assert first[0] is again[0] and first[1] is again[1]
    assert first[0].vae is first[1] and first[0].version


# ------------------------------------------------------------------------------------------------- the chain


@pytest.fixture
def tiny(headless, tiny_models):
    model, vae, _ = VideoDiTModelLoader().load(tiny_models.checkpoint, "fp32", "gpu")
    return model, vae


def fake_condition(seed):
    from videodit.model.sampling import TextCondition

    g = torch.Generator().manual_seed(seed)
    return TextCondition(embeddings=torch.randn(1, 12, 256, generator=g), mask=torch.ones(1, 12))


def test_image_to_video_keyframes_and_exact_decode(tiny):
    model, vae = tiny
    (latent,) = VideoDiTEmptyLatentVideo().generate(128, 96, 17, 25.0, 1)
    wide = torch.rand(1, 90, 200, 3)  # another aspect ratio: center-cropped, resized
    (keyed,) = VideoDiTImageToVideo().apply(
        vae, latent, wide, 0, 1.0, 29, image_2=wide, frame_index_2=-1, strength_2=0.5, image_3=None
    )
    frames = [(k.pixel_frame, k.strength, tuple(k.latent.shape)) for k in keyed["keyframes"]]
    assert frames == [(0, 1.0, (1, 128, 1, 3, 4)), (16, 0.5, (1, 128, 1, 3, 4))]
    assert "keyframes" not in latent  # the input dict is not modified
    (out,) = VideoDiTSampler().sample(
        model, fake_condition(1), fake_condition(2), keyed, 3, 2, 3.0, 1.0, "2", 0.7, "auto", 1.0, 0.0, 0.0
    )
    assert out["samples"].shape == (1, 128, 3, 3, 4) and torch.isfinite(out["samples"]).all()
    # strength 1 at frame 0 and no image noise: the first latent frame is the encoded image, untouched by sampling
    torch.testing.assert_close(out["samples"][:, :, :1], keyed["keyframes"][0].latent, rtol=0, atol=1e-5)
    (images,) = VideoDiTVAEDecode().decode(vae, out, 0.05, 0.025, "off")
    assert images.shape == (17, 96, 128, 3) and images.dtype == torch.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    (tiled,) = VideoDiTVAEDecode().decode(vae, out, 0.05, 0.025, "on")
    assert tiled.shape == images.shape


def test_image_to_video_rejects_bad_frame_index_and_clip_length(tiny):
    _, vae = tiny
    (latent,) = VideoDiTEmptyLatentVideo().generate(64, 64, 17, 25.0, 1)
    with pytest.raises(InputError, match="frame_index_1 = 17 puts image_1"):
        VideoDiTImageToVideo().apply(vae, latent, torch.rand(1, 64, 64, 3), 17, 1.0, 0)
    with pytest.raises(InputError, match="image_1 has 4 frames"):
        VideoDiTImageToVideo().apply(vae, latent, torch.rand(4, 64, 64, 3), 0, 1.0, 0)
    with pytest.raises(InputError, match="strength_1 must be between 0.0 and 1.0"):
        VideoDiTImageToVideo().apply(vae, latent, torch.rand(1, 64, 64, 3), 0, 1.5, 0)


def test_sampler_is_deterministic_and_interruptible(tiny, monkeypatch):
    model, _ = tiny
    (latent,) = VideoDiTEmptyLatentVideo().generate(64, 64, 9, 25.0, 1)
    args = (fake_condition(1), fake_condition(2), latent, 7, 3, 3.0, 0.0, "19", 0.7, "auto", 1.0, 0.0)
    (a,) = VideoDiTSampler().sample(model, *args)
    (b,) = VideoDiTSampler().sample(model, *args)
    assert torch.equal(a["samples"], b["samples"])

    calls = []

    class Interrupted(Exception):
        pass

    def interrupt():
        calls.append(1)
        raise Interrupted()

    monkeypatch.setattr(host, "check_interrupt", interrupt)
    with pytest.raises(Interrupted):
        VideoDiTSampler().sample(model, *args)
    assert calls == [1]  # stopped after the first step


def test_preview_projection_is_fitted_to_the_vae(tiny):
    model, vae = tiny
    factors, bias = fit_preview_factors(vae)
    assert factors.shape == (128, 3) and bias.shape == (3,) and torch.isfinite(factors).all()
    image = latent_to_preview(torch.randn(1, 128, 2, 4, 5), factors, bias)
    assert image.size == (40, 32) and image.mode == "RGB"


# ------------------------------------------------------------------------------------------------- saving


def frames_tensor(count=9, height=64, width=96):
    t = torch.linspace(0, 1, count)[:, None, None, None]
    x = torch.linspace(0, 1, width)[None, None, :, None]
    return (t * 0.5 + x * 0.5).expand(count, height, width, 3).contiguous()


@pytest.mark.parametrize("fmt", ["mp4 (h264)", "webm (vp9)"])
def test_save_video_files_decode_with_metadata(headless, fmt):
    prompt = {"1": {"class_type": "X", "inputs": {"text": "a=b;c#d\\e\nf"}}}
    workflow = {"nodes": [{"id": 1}], "links": [], "big": "w" * 200_000}
    saver = VideoDiTSaveVideo()
    result = saver.save(
        frames_tensor(), 24.0, fmt, 19, "clips/test", prompt=prompt, extra_pnginfo={"workflow": workflow}
    )
    (item,) = result["ui"]["images"]
    assert result["ui"]["animated"] == [True] and item["subfolder"] == "clips" and item["type"] == "output"
    path = os.path.join(headless.output_dir, "clips", item["filename"])
    frames, fps = read_video(path)
    assert frames.shape == (9, 64, 96, 3) and fps == 24.0
    tags = read_metadata(path)
    assert json.loads(tags["prompt"]) == prompt and json.loads(tags["workflow"]) == workflow
    second = saver.save(frames_tensor(), 24.0, fmt, 19, "clips/test")["ui"]["images"][0]["filename"]
    assert second != item["filename"] and os.path.exists(path)  # counter advanced, nothing overwritten
    assert sorted(os.listdir(os.path.dirname(path))) == sorted([item["filename"], second])


def top_level_boxes(path):
    """[(type, offset)] of an MP4's top-level boxes (32-bit sizes, or 64-bit when the size field is 1)."""
    boxes, offset = [], 0
    with open(path, "rb") as f:
        data = f.read()
    while offset + 8 <= len(data):
        size, kind = int.from_bytes(data[offset : offset + 4], "big"), data[offset + 4 : offset + 8].decode("latin-1")
        if size == 1:
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        boxes.append((kind, offset))
        if size < 8:
            break
        offset += size
    return boxes, len(data)


def test_mp4_moov_comes_before_mdat(headless):
    """faststart: the index (moov) is moved in front of the media data (mdat), so a browser starts playing before
    the whole file is there. Noise frames make a file of several hundred KB, where the order matters."""
    noise = torch.rand(25, 128, 128, 3, generator=torch.Generator().manual_seed(0))
    result = VideoDiTSaveVideo().save(noise, 25.0, "mp4 (h264)", 10, "fast")
    boxes, size = top_level_boxes(os.path.join(headless.output_dir, result["ui"]["images"][0]["filename"]))
    offsets = dict((kind, offset) for kind, offset in boxes)
    assert size > 300_000, size
    assert "moov" in offsets and "mdat" in offsets, boxes
    assert offsets["moov"] < offsets["mdat"], boxes


def test_save_animated_webp_and_gif(headless):
    saver = VideoDiTSaveVideo()
    webp = saver.save(
        frames_tensor(), 10.0, "webp (animated)", 10, "anim", prompt={"p": 1}, extra_pnginfo={"workflow": {"w": 2}}
    )["ui"]["images"][0]["filename"]
    gif = saver.save(frames_tensor(), 10.0, "gif", 10, "anim")["ui"]["images"][0]["filename"]
    with Image.open(os.path.join(headless.output_dir, webp)) as img:
        assert img.n_frames == 9 and img.size == (96, 64)
        exif = img.getexif()
        assert exif[0x0110] == 'prompt:{"p": 1}' and exif[0x010F] == 'workflow:{"w": 2}'
    with Image.open(os.path.join(headless.output_dir, gif)) as img:
        assert img.n_frames == 9


def test_save_failure_leaves_no_file(headless, monkeypatch):
    from videodit.nodes import save as save_module

    def broken_writer(frames, path, *args):
        with open(path, "wb") as f:
            f.write(b"half a video")
        raise RuntimeError("disk full")

    monkeypatch.setattr(save_module, "write_video", broken_writer)
    with pytest.raises(RuntimeError, match="disk full"):
        VideoDiTSaveVideo().save(frames_tensor(), 25.0, "mp4 (h264)", 19, "broken")
    assert os.listdir(headless.output_dir) == []


def test_save_odd_size_mp4_is_cropped_to_even(headless):
    result = VideoDiTSaveVideo().save(frames_tensor(height=33, width=47), 25.0, "mp4 (h264)", 19, "odd")
    frames, _ = read_video(os.path.join(headless.output_dir, result["ui"]["images"][0]["filename"]))
    assert frames.shape == (9, 32, 46, 3)


def test_save_rejects_prefix_escaping_output(headless):
    with pytest.raises(ValueError, match="outside the output folder"):
        VideoDiTSaveVideo().save(frames_tensor(), 25.0, "gif", 19, "../../escape")


def test_headless_progress_bar(capsys, monkeypatch):
    monkeypatch.setattr(host.HEADLESS, "show_progress", True)
    progress = host.Progress(2, "test")
    progress.update(1)
    progress.update(2)
    err = capsys.readouterr().err
    assert "test [###############...............] 1/2" in err and "2/2\n" in err


def test_latent_geometry_trusts_our_keys_only_when_they_fit_the_shape():
    from videodit.nodes.latents import latent_geometry

    samples = torch.zeros(1, 128, 3, 4, 5)
    assert latent_geometry({"samples": samples}) == (160, 128, 17, 25.0)  # a native LTXV latent
    assert latent_geometry({"samples": samples, "width": 160, "height": 128, "frames": 17, "frame_rate": 24}) == (
        160,
        128,
        17,
        24.0,
    )
    stale = {"samples": samples, "width": 768, "height": 512, "frames": 97}  # resized by another node
    assert latent_geometry(stale) == (160, 128, 17, 25.0)
    with pytest.raises(InputError, match="expected a video latent"):
        latent_geometry({"samples": torch.zeros(1, 4, 64, 64)})


def widget_defaults(cls, **changes):
    """The node's widget inputs at their schema defaults, with `changes` applied."""
    values = {name: options["default"] for name, (_, options) in input_spec(cls).items() if "default" in options}
    return {**values, **changes}


def test_node_chain_equals_the_model_pipeline_at_default_settings(headless, tiny_models):
    """Loader -> Text Encode -> Empty Latent -> Image To Video (first + last) -> Sampler -> Decode at the nodes'
    DEFAULT settings (keyframe compression crf 29, image-conditioning noise 0.15, decode timestep/noise, tiling
    auto, seed 0, 30 steps, CFG 3, STG 1, rescale 0.7) gives the frames of VideoPipeline.generate called with the
    same sampling settings and ITS defaults for everything else: both run the same front-end steps. Only the video
    size, the step count (CPU time) and the STG block (the tiny model has 6 blocks, the default '19' is the 2B's)
    are set."""
    from videodit.model.pipeline import ImageKeyframe, load_pipeline
    from videodit.model.sampling import Guidance
    from videodit.nodes.loaders import VideoDiTTextEncode, VideoDiTTextEncoderLoader

    first = torch.rand(1, 150, 210, 3, generator=torch.Generator().manual_seed(1))  # cropped and resized
    last = torch.rand(1, 128, 128, 3, generator=torch.Generator().manual_seed(2))
    prompt = "a red circle moving to the right on a black background"
    loader = widget_defaults(VideoDiTModelLoader, checkpoint=tiny_models.checkpoint)
    model, vae, _ = VideoDiTModelLoader().load(**loader)
    (encoder,) = VideoDiTTextEncoderLoader().load(
        **widget_defaults(VideoDiTTextEncoderLoader, text_encoder=tiny_models.text_encoder)
    )
    (positive,) = VideoDiTTextEncode().encode(encoder, prompt)
    (negative,) = VideoDiTTextEncode().encode(encoder, "")
    size = dict(width=64, height=64, frames=17)
    (latent,) = VideoDiTEmptyLatentVideo().generate(**widget_defaults(VideoDiTEmptyLatentVideo, **size))
    i2v = widget_defaults(VideoDiTImageToVideo)
    (latent,) = VideoDiTImageToVideo().apply(vae, latent, first, image_2=last, **i2v)
    sampler = widget_defaults(VideoDiTSampler, stg_blocks="3", steps=3)
    (latent,) = VideoDiTSampler().sample(model, positive, negative, latent, **sampler)
    (images,) = VideoDiTVAEDecode().decode(vae, latent, **widget_defaults(VideoDiTVAEDecode))

    pipeline = load_pipeline(
        tiny_models.checkpoint_path, tiny_models.text_encoder_path, dtype=model.dtype, device=host.torch_device()
    )  # where the nodes ran, in the loader's default dtype
    guidance = Guidance(
        cfg=sampler["cfg"], stg=sampler["stg"], stg_blocks=(3,), rescale=sampler["rescale"]
    )  # the node's defaults
    reference = pipeline.generate(
        prompt,
        "",
        width=64,
        height=64,
        num_frames=17,
        steps=sampler["steps"],
        guidance=guidance,
        seed=sampler["seed"],
        keyframes=[ImageKeyframe(first[0], 0), ImageKeyframe(last[0], 16)],
    )
    assert images.shape == reference.shape == (17, 64, 64, 3)
    diff = (images - reference.float().cpu()).abs().max().item()
    # On a GPU the loader's attention="auto" picks cuDNN attention while the plain pipeline uses PyTorch's default
    # kernel: same maths, different rounding. A different default (crf, conditioning noise) differs by > 0.05.
    atol = 1e-4 if host.torch_device().type == "cpu" else 2e-3
    assert diff <= atol, f"node chain vs VideoPipeline at default settings: max abs diff {diff:.3e} > {atol}"


def test_vae_decode_noise_follows_the_sampling_seed_like_the_pipeline(headless, tiny_models):
    """A timestep-conditioned (0.9.1+) VAE mixes noise into the latent before decoding: VAE Decode draws it from the
    seed VideoDiT Sampler leaves in the latent, so node chain and model.pipeline give the same pixels per seed."""
    import dataclasses

    from videodit.model.checkpoint import save_checkpoint
    from videodit.model.ltxv.dit import LTXVideoTransformer
    from videodit.model.ltxv.vae import CausalVideoVAE
    from videodit.model.pipeline import load_pipeline
    from videodit.tiny import configs

    torch.manual_seed(0)
    vae_config = dataclasses.replace(configs.vae_config(), timestep_conditioning=True)
    transformer, vae_module = LTXVideoTransformer(configs.transformer_config()), CausalVideoVAE(vae_config)
    path = os.path.join(tiny_models.models_dir, "checkpoints", "random-tiny-091.safetensors")
    save_checkpoint(
        path,
        transformer,
        vae_module,
        {
            "transformer": transformer.config.to_metadata(),
            "vae": vae_config.to_metadata(),
            "scheduler": configs.SCHEDULER,
        },
    )
    _, vae, _ = VideoDiTModelLoader().load(os.path.basename(path), "fp32", "gpu")
    pipeline = load_pipeline(path, tiny_models.text_encoder_path, dtype=torch.float32, device="cpu")
    samples = torch.randn(1, 128, 2, 2, 2, generator=torch.Generator().manual_seed(3))

    def node_decode(**extra):
        (images,) = VideoDiTVAEDecode().decode(vae, {"samples": samples, **extra}, 0.05, 0.2, "off")
        return images

    for seed in (0, 42):
        reference = pipeline.decode(samples, seed, 0.05, 0.2)[0]
        torch.testing.assert_close(node_decode(seed=seed), reference, rtol=0, atol=1e-5)
    torch.testing.assert_close(node_decode(), pipeline.decode(samples, 0, 0.05, 0.2)[0], rtol=0, atol=1e-5)
    assert (node_decode(seed=42) - node_decode(seed=7)).abs().max() > 1e-3  # the seed matters


def test_vae_encode_round_trip_and_bad_sizes(tiny):
    from videodit.nodes.latents import VideoDiTVAEEncode

    _, vae = tiny
    frames = torch.rand(9, 64, 96, 3, generator=torch.Generator().manual_seed(0))
    (latent,) = VideoDiTVAEEncode().encode(vae, frames, 24.0)
    assert latent["samples"].shape == (1, 128, 2, 2, 3)
    assert (latent["width"], latent["height"], latent["frames"], latent["frame_rate"]) == (96, 64, 9, 24.0)
    (images,) = VideoDiTVAEDecode().decode(vae, latent, 0.05, 0.025, "off")
    assert images.shape == frames.shape
    with pytest.raises(InputError, match="images: number of images must be 8k\\+1 .* got 8; nearest valid: 1 or 9"):
        VideoDiTVAEEncode().encode(vae, frames[:8], 24.0)
    with pytest.raises(InputError, match="image height must be a multiple of 32 .* got 60; nearest valid: 32 or 64"):
        VideoDiTVAEEncode().encode(vae, frames[:, :60], 24.0)


def test_disable_metadata_writes_none(headless, monkeypatch):
    monkeypatch.setattr(host, "metadata_disabled", lambda: True)
    result = VideoDiTSaveVideo().save(
        frames_tensor(), 25.0, "mp4 (h264)", 19, "nometa", prompt={"a": 1}, extra_pnginfo={"workflow": {"b": 2}}
    )
    tags = read_metadata(os.path.join(headless.output_dir, result["ui"]["images"][0]["filename"]))
    assert "prompt" not in tags and "workflow" not in tags


def test_save_node_rejects_an_unusable_output_folder_at_validation(headless):
    """ComfyUI calls VALIDATE_INPUTS at /prompt time: a folder that cannot take the file stops the run before
    any model is loaded or sampled."""
    assert VideoDiTSaveVideo.VALIDATE_INPUTS(filename_prefix="VideoDiT/video") is True
    os.makedirs(headless.output_dir, exist_ok=True)
    with open(os.path.join(headless.output_dir, "VideoDiT"), "w") as f:
        f.write("a file where the sub-folder should go")
    message = VideoDiTSaveVideo.VALIDATE_INPUTS(filename_prefix="VideoDiT/video")
    assert isinstance(message, str) and "cannot be created" in message and "VideoDiT is a file" in message
    escaping = VideoDiTSaveVideo.VALIDATE_INPUTS(filename_prefix="../../x")
    assert isinstance(escaping, str) and "outside the output folder" in escaping
    with pytest.raises(InputError, match="is a file"):
        VideoDiTSaveVideo().save(frames_tensor(), 25.0, "gif", 19, "VideoDiT/video")
