"""Headless runner: the tiny workflows to videos (frames, size, metadata), overrides, clear errors, no partial files."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from videodit.cli import main
from videodit.nodes.video_io import read_metadata, read_video

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOWS = os.path.join(REPO, "workflows")
API = os.path.join(WORKFLOWS, "api")


def run_cli(capsys, *args):
    code = main(["run", *args, "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def model_args(tiny_models):
    return ["--models-dir", tiny_models.models_dir]


@pytest.mark.parametrize("name", ["tiny_t2v", "tiny_i2v", "tiny_first_last"])
def test_tiny_workflows_make_videos(name, tmp_path, capsys, tiny_models):
    out_dir = tmp_path / "out"
    workflow = os.path.join(API, f"{name}_api.json")
    code, out, err = run_cli(
        capsys, workflow, "--output-dir", str(out_dir), "--set", "6.steps=2", *model_args(tiny_models)
    )
    assert code == 0, err
    (path,) = out.split()
    assert path == str(out_dir / "VideoDiT" / f"{name}_00001_.mp4") and os.path.isfile(path)
    frames, fps = read_video(path)
    assert frames.shape == (25, 128, 128, 3) and fps == 25.0
    tags = read_metadata(path)
    with open(os.path.join(WORKFLOWS, f"{name}.json"), encoding="utf-8") as f:
        assert json.loads(tags["workflow"]) == json.load(f)  # the UI graph: dropping the file restores it
    prompt = json.loads(tags["prompt"])
    assert prompt["6"]["inputs"]["steps"] == 2 and prompt["8"]["class_type"] == "VideoDiTSaveVideo"
    assert sorted(os.listdir(out_dir / "VideoDiT")) == [f"{name}_00001_.mp4"]


def test_set_by_title_and_second_run_does_not_overwrite(tmp_path, capsys, tiny_models):
    workflow = os.path.join(API, "tiny_t2v_api.json")
    args = [
        workflow,
        "--output-dir",
        str(tmp_path),
        "--set",
        "Sampler.steps=2",
        "--set",
        "Empty latent video.frames=9",
        "--set",
        "Positive prompt.text=a blue square moving up on a white background",
        "--set",
        "Save video.format=gif",
        *model_args(tiny_models),
    ]
    first = run_cli(capsys, *args)
    second = run_cli(capsys, *args)
    assert first[0] == 0 and second[0] == 0, first[2] + second[2]
    assert first[1].strip().endswith("tiny_t2v_00001_.gif") and second[1].strip().endswith("tiny_t2v_00002_.gif")
    from PIL import Image

    with Image.open(first[1].strip()) as img:
        assert img.n_frames == 9 and img.size == (128, 128)


def test_console_script_module_entry(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "videodit.cli", "run", "missing.json"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "cannot read workflow missing.json" in result.stderr


@pytest.mark.parametrize(
    "override,expected",
    [
        ("99.steps=3", "'99' is not a node id or title"),
        ("6.stepz=3", "node 6 (VideoDiTSampler): no input 'stepz'; its inputs are: model, positive"),
        ("6.steps", "expected NODE.INPUT=VALUE"),
        ("6.steps=0", "node 6 (VideoDiTSampler): steps must be between 1 and 1000: got 0"),
        ("6.seed=-5", "seed must be between 0 and"),
        ("6.cfg=NaN", "node 6 (VideoDiTSampler): cfg must be a finite number: got nan"),
        (
            "5.width=100",
            "node 5 (VideoDiTEmptyLatentVideo): width must be a multiple of 32 between 32 and 8192 (the VAE "
            "compresses 32x in space): got 100; nearest valid: 96 or 128",
        ),
        ("5.frames=0", "node 5 (VideoDiTEmptyLatentVideo): frames must be between 1 and 8193: got 0"),
        ("1.checkpoint=nope.safetensors", "node 1 (VideoDiTModelLoader): checkpoint: 'nope.safetensors' is not one of"),
    ],
)
def test_bad_inputs_fail_before_running(override, expected, tmp_path, capsys, tiny_models):
    code, out, err = run_cli(
        capsys, os.path.join(API, "tiny_t2v_api.json"), "--output-dir", str(tmp_path), "--set", override
    )
    assert code == 1 and expected in err, err
    assert not os.path.exists(tmp_path / "VideoDiT")


def test_unknown_node_type_and_ui_format_are_explained(tmp_path, capsys):
    api = tmp_path / "wf_api.json"
    api.write_text(json.dumps({"1": {"class_type": "KSampler", "inputs": {}}}))
    code, _, err = run_cli(capsys, str(api))
    assert code == 1 and "node 1 (KSampler): this node type is not available in the headless runner" in err
    code, _, err = run_cli(capsys, os.path.join(WORKFLOWS, "tiny_t2v.json"))
    assert code == 1 and "this is a UI-format workflow; run its API-format variant" in err


def test_unreadable_image_is_named_and_nothing_is_left_behind(tmp_path, capsys, tiny_models):
    wf_dir = tmp_path / "wf"
    wf_dir.mkdir()
    shutil.copy(os.path.join(API, "tiny_i2v_api.json"), wf_dir / "tiny_i2v_api.json")
    (wf_dir / "red_circle_start.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image at all")
    out_dir = tmp_path / "out"
    code, _, err = run_cli(
        capsys, str(wf_dir / "tiny_i2v_api.json"), "--output-dir", str(out_dir), *model_args(tiny_models)
    )
    assert code == 1 and "node 10 (LoadImage): cannot read image 'red_circle_start.png'" in err, err
    assert not any(files for _, _, files in os.walk(out_dir))  # nothing written (os.walk of a missing dir: [])


def test_missing_image_lists_where_it_looked(tmp_path, capsys, tiny_models):
    code, _, err = run_cli(
        capsys,
        os.path.join(API, "tiny_i2v_api.json"),
        "--output-dir",
        str(tmp_path),
        "--set",
        "10.image=nothing.png",
        "--input-dir",
        str(tmp_path / "in"),
        *model_args(tiny_models),
    )
    assert code == 1 and "node 10 (LoadImage): image 'nothing.png' not found (looked in:" in err
    assert str(tmp_path / "in") in err


def test_failure_while_saving_leaves_no_partial_file(tmp_path, capsys, tiny_models, monkeypatch):
    from videodit.nodes import video_io

    real = video_io._run_ffmpeg

    def failing_ffmpeg(args, stdin_bytes, what):
        if what.startswith("writing"):
            real(args, stdin_bytes, what)  # the file is fully written under its temporary name ...
            raise RuntimeError("ffmpeg failed while writing: simulated")  # ... then the write "fails"
        return real(args, stdin_bytes, what)

    monkeypatch.setattr(video_io, "_run_ffmpeg", failing_ffmpeg)
    out_dir = tmp_path / "out"
    code, _, err = run_cli(
        capsys,
        os.path.join(API, "tiny_t2v_api.json"),
        "--output-dir",
        str(out_dir),
        "--set",
        "6.steps=1",
        *model_args(tiny_models),
    )
    assert code == 1 and "node 8 (VideoDiTSaveVideo): RuntimeError: ffmpeg failed while writing" in err
    assert out_dir.is_dir() and not any(files for _, _, files in os.walk(out_dir))


def test_builtin_model_follows_the_keyframes(tmp_path, capsys):
    """With the trained built-in weights: the video shows the input image's red circle at frame 0, and with a last
    keyframe it ends where that image has its circle (the shipped end image, and the same image moved 16 pixels
    left, which the prompt alone does not lead to), found by the tiny world's shape tracker."""
    import numpy as np
    from PIL import Image
    from videodit.tiny.evaluate import track

    first_x, last_x, moved_x = 40.0, 88.0, 72.0  # circles of red_circle_start.png, red_circle_end.png, moved copy
    moved = tmp_path / "red_circle_end_moved.png"
    end_image = np.array(Image.open(os.path.join(WORKFLOWS, "red_circle_end.png")).convert("RGB"))
    Image.fromarray(np.roll(end_image, int(moved_x - last_x), axis=1)).save(moved)  # black around the circle

    def run_and_track(workflow, *overrides):
        code, out, err = run_cli(
            capsys, os.path.join(API, workflow), "--output-dir", str(tmp_path), "--set", "6.steps=8", *overrides
        )
        assert code == 0, err
        frames, _ = read_video(out.strip())
        return track(frames.astype("float32") / 255.0)

    first_only = run_and_track("tiny_i2v_api.json")
    first_last = run_and_track("tiny_first_last_api.json")
    first_moved = run_and_track("tiny_first_last_api.json", "--set", f"12.image={moved}")
    for result in (first_only, first_last, first_moved):
        assert (result.color, result.shape, result.background) == ("red", "circle", "black")
        assert abs(result.centroids[0, 0] - first_x) < 4 and abs(result.centroids[0, 1] - 64) < 4
        assert result.motion == "right"  # the prompt
    # seed 42, 8 steps, measured end x: 86.4 (first frame only), 90.7 (end keyframe at 88), 72.5 (at 72)
    for result, x in ((first_last, last_x), (first_moved, moved_x)):
        assert abs(result.centroids[-1, 0] - x) < 5 and abs(result.centroids[-1, 1] - 64) < 4, result.centroids[-1]
    assert abs(first_only.centroids[-1, 0] - moved_x) > 10  # without the moved keyframe the video ends elsewhere


@pytest.mark.parametrize("problem", ["a file", "read-only"])
def test_unusable_output_folder_is_reported_before_generating(problem, tmp_path, capsys, monkeypatch):
    from videodit.nodes import host

    out_dir = tmp_path / "out"
    if problem == "a file":
        out_dir.write_text("not a folder")
        expected = "is a file"
    else:
        out_dir.mkdir()
        real_access = os.access  # as root every folder is writable: pretend this one is not
        monkeypatch.setattr(
            host.os, "access", lambda path, mode: False if str(path) == str(out_dir) else real_access(path, mode)
        )
        expected = f"the output folder {out_dir} is not writable"
    started = []
    monkeypatch.setattr("videodit.nodes.loaders.VideoDiTModelLoader.load", lambda *a, **k: started.append(1))
    code, _, err = run_cli(capsys, os.path.join(API, "tiny_t2v_api.json"), "--output-dir", str(out_dir))
    assert code == 1 and "node 8 (VideoDiTSaveVideo): " in err and expected in err, err
    assert started == []  # nothing was loaded or sampled


def test_missing_checkpoint_names_the_folders_and_models_dir(tmp_path, capsys):
    models = tmp_path / "models"
    code, _, err = run_cli(
        capsys,
        os.path.join(API, "tiny_t2v_api.json"),
        "--output-dir",
        str(tmp_path / "out"),
        "--models-dir",
        str(models),
        "--set",
        "1.checkpoint=ltx-video-2b-v0.9.5.safetensors",
    )
    assert code == 1 and "checkpoint: 'ltx-video-2b-v0.9.5.safetensors' is not one of" in err, err
    assert f"looked in {models / 'checkpoints'}, {models / 'diffusion_models'}" in err
    assert "--models-dir" in err


def test_unknown_words_for_the_builtin_model_are_warned_once(tmp_path, capsys):
    code, _, err = run_cli(
        capsys,
        os.path.join(API, "tiny_t2v_api.json"),
        "--output-dir",
        str(tmp_path),
        "--set",
        "6.steps=1",
        "--set",
        "5.frames=9",
        "--set",
        "3.text=a purple blob wobbling",
    )
    assert code == 0, err
    lines = [line for line in err.splitlines() if "built-in tiny model knows no" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "colour / shape / motion" in lines[0], err
    assert "colours red, orange" in lines[0]  # the vocabulary it does know
    code, _, err = run_cli(
        capsys,
        os.path.join(API, "tiny_t2v_api.json"),
        "--output-dir",
        str(tmp_path),
        "--set",
        "6.steps=1",
        "--set",
        "5.frames=9",
    )
    assert code == 0 and "knows no" not in err, err  # the shipped prompt uses its words


def test_speed_fallbacks_and_cpu_placement_are_one_line_each(tmp_path, capsys, monkeypatch):
    import warnings

    import torch
    from videodit.nodes import loaders

    monkeypatch.setattr(loaders, "_CACHE", {})
    monkeypatch.setattr(loaders, "_said_no_gpu", [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        args = ["--set", "6.steps=1", "--set", "5.frames=9", "--set", "1.compile=true", "--set", "1.fp8=true"]
        code, _, err = run_cli(capsys, os.path.join(API, "tiny_t2v_api.json"), "--output-dir", str(tmp_path), *args)
    assert code == 0, err
    assert not [w for w in caught if "SpeedOptions" in str(w.message)]  # no raw UserWarnings
    assert "UserWarning" not in err and ".py:" not in err, err
    speed = [line for line in err.splitlines() if "speed options fall back" in line]
    placement = [line for line in err.splitlines() if "placement 'gpu' but no GPU" in line]
    if torch.cuda.is_available():
        assert placement == [], err
    else:
        assert len(speed) == 1 and "compile" in speed[0] and "fp8" in speed[0], err
        assert len(placement) == 1 and placement[0].startswith("warning: "), err
