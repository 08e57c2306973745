"""The pack inside a real ComfyUI server (CPU): /object_info, every tiny API workflow through /prompt with
progress/preview messages and the saved videos, and bad inputs answered with clear errors while the server lives.

Needs COMFYUI_DIR = a ComfyUI source tree with its requirements installed (COMFYUI_PYTHON = the interpreter to run
it with, default this one). Skipped, with the reason printed, when it is not set.

    COMFYUI_DIR=/work/comfyui COMFYUI_PYTHON=/work/comfyui-venv/bin/python python -m pytest -s tests/test_comfyui_server.py
"""

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest
from videodit.nodes import NODE_CLASS_MAPPINGS
from videodit.nodes.video_io import read_metadata, read_video

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOWS = os.path.join(REPO, "workflows")
TINY = ("tiny_t2v", "tiny_i2v", "tiny_first_last")
STARTUP_TIMEOUT = 180
RUN_TIMEOUT = 300


def comfyui_dir():
    path = os.environ.get("COMFYUI_DIR")
    if not path:
        reason = "COMFYUI_DIR is not set (point it at a ComfyUI source tree to run the real-ComfyUI tests)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    if not os.path.isfile(os.path.join(path, "main.py")):
        pytest.fail(f"COMFYUI_DIR={path} has no main.py")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url, process, log_path, output_dir, input_dir, models_dir):
        self.url, self.process, self.log_path = url, process, log_path
        self.output_dir, self.input_dir, self.models_dir = output_dir, input_dir, models_dir

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def request(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def alive(self):
        return self.process.poll() is None and self.request("/system_stats")[0] == 200


def start_server(comfy, tmp, models_dir):
    """ComfyUI with this repo as a custom node pack (a symlink in a custom_nodes folder named by an
    --extra-model-paths-config yaml) and temp output/input/user folders."""
    packs = tmp / "custom_nodes"
    packs.mkdir()
    os.symlink(REPO, packs / "ComfyUI-VideoDiT")
    yaml = tmp / "extra_model_paths.yaml"
    yaml.write_text(
        f"videodit_test:\n    custom_nodes: {packs}\n    checkpoints: {models_dir}/checkpoints\n"
        f"    text_encoders: {models_dir}/text_encoders\n"
    )
    output_dir, input_dir, user_dir = tmp / "output", tmp / "input", tmp / "user"
    for d in (output_dir, input_dir, user_dir):
        d.mkdir()
    for name in os.listdir(WORKFLOWS):
        if name.endswith(".png"):
            shutil.copy(os.path.join(WORKFLOWS, name), input_dir / name)
    (input_dir / "broken.png").write_bytes(b"this is not an image at all\n" * 20)
    port = free_port()
    log_path = tmp / "comfyui.log"
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    cmd = [
        python,
        "main.py",
        "--cpu",
        "--listen",
        "127.0.0.1",
        "--port",
        str(port),
        "--extra-model-paths-config",
        str(yaml),
        "--output-directory",
        str(output_dir),
        "--input-directory",
        str(input_dir),
        "--user-directory",
        str(user_dir),
        "--disable-auto-launch",
        "--database-url",
        "sqlite:///:memory:",
        "--disable-api-nodes",
        "--preview-method",
        "latent2rgb",
    ]
    log = open(log_path, "w")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    process = subprocess.Popen(cmd, cwd=comfy, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}", process, log_path, str(output_dir), str(input_dir), models_dir)
    deadline = time.time() + STARTUP_TIMEOUT
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail(f"ComfyUI exited during startup:\n{server.log()[-5000:]}")
        try:
            if server.request("/system_stats")[0] == 200:
                return server
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(1)
    process.kill()
    pytest.fail(f"ComfyUI did not start within {STARTUP_TIMEOUT}s:\n{server.log()[-5000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_models):
    comfy = comfyui_dir()
    pytest.importorskip("websockets", reason="the websocket client of these tests needs `pip install websockets`")
    tmp = tmp_path_factory.mktemp("comfyui")
    with open(tiny_models.checkpoint_path, "rb") as f:
        data = f.read()
    with open(os.path.join(tiny_models.models_dir, "checkpoints", "truncated.safetensors"), "wb") as f:
        f.write(data[: len(data) // 3])
    srv = start_server(comfy, tmp, tiny_models.models_dir)
    yield srv
    srv.process.terminate()
    try:
        srv.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        srv.process.kill()
    print(f"\nComfyUI log: {srv.log_path}")


def load(name):
    with open(os.path.join(WORKFLOWS, name), encoding="utf-8") as f:
        return json.load(f)


def tiny_prompt(name, tiny_models):
    prompt = load(os.path.join("api", name + "_api.json"))
    prompt["1"]["inputs"]["checkpoint"] = tiny_models.checkpoint
    prompt["2"]["inputs"]["text_encoder"] = tiny_models.text_encoder
    return prompt


def run(server, prompt, workflow=None, on_message=None):
    """Queue through a websocket client like the frontend; return (prompt_id, messages, binary frame count).
    on_message(msg) is called for every JSON message (e.g. to press Cancel mid-run)."""
    from websockets.sync.client import connect

    client_id = uuid.uuid4().hex
    ws_url = server.url.replace("http://", "ws://") + f"/ws?clientId={client_id}"
    messages, binary = [], 0
    with connect(ws_url, max_size=None, open_timeout=30) as ws:
        body = {"prompt": prompt, "client_id": client_id}
        if workflow is not None:
            body["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
        status, answer = server.request("/prompt", body)
        assert status == 200 and answer["node_errors"] == {}, answer
        prompt_id = answer["prompt_id"]
        deadline = time.time() + RUN_TIMEOUT
        while time.time() < deadline:
            raw = ws.recv(timeout=RUN_TIMEOUT)
            if isinstance(raw, bytes):
                binary += 1
                continue
            msg = json.loads(raw)
            messages.append(msg)
            if on_message is not None:
                on_message(msg)
            data = msg.get("data", {})
            if msg["type"] in ("execution_error", "execution_interrupted") and data.get("prompt_id") == prompt_id:
                break
            if msg["type"] == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                break
    return prompt_id, messages, binary


def history(server, prompt_id):
    deadline = time.time() + 30
    while time.time() < deadline:
        status, data = server.request(f"/history/{prompt_id}")
        if status == 200 and prompt_id in data:
            return data[prompt_id]
        time.sleep(0.5)
    pytest.fail(f"prompt {prompt_id} not in /history")


def test_object_info_lists_every_node(server):
    status, info = server.request("/object_info")
    assert status == 200
    for name, cls in NODE_CLASS_MAPPINGS.items():
        assert name in info, f"{name} missing from /object_info; log:\n{server.log()[-3000:]}"
        assert info[name]["category"] == "VideoDiT" and info[name]["python_module"].startswith("custom_nodes.")
        assert info[name]["output"] == list(cls.RETURN_TYPES)
    assert "IMPORT FAILED" not in "\n".join(line for line in server.log().splitlines() if "VideoDiT" in line)


def test_template_browser_lists_only_ui_workflows(server):
    status, templates = server.request("/workflow_templates")
    expected = sorted(f[:-5] for f in os.listdir(WORKFLOWS) if f.endswith(".json"))
    assert status == 200 and sorted(templates["ComfyUI-VideoDiT"]) == expected and len(expected) == 8


@pytest.mark.parametrize("name", TINY)
def test_tiny_workflow_runs_to_a_video(server, tiny_models, name):
    prompt, workflow = tiny_prompt(name, tiny_models), load(name + ".json")
    prompt_id, messages, previews = run(server, prompt, workflow)
    errors = [m for m in messages if m["type"] == "execution_error"]
    assert not errors, errors[0]["data"]
    steps = prompt["6"]["inputs"]["steps"]
    progress = [m["data"]["value"] for m in messages if m["type"] == "progress" and m["data"]["node"] == "6"]
    assert progress == list(range(1, steps + 1))
    assert previews >= steps  # one latent preview per step (--preview-method latent2rgb)
    entry = history(server, prompt_id)
    assert entry["status"]["status_str"] == "success"
    ui = entry["outputs"]["8"]
    (item,) = ui["images"]
    assert ui["animated"] == [True] and item["type"] == "output" and item["filename"].endswith(".mp4")
    path = os.path.join(server.output_dir, item["subfolder"], item["filename"])
    frames, fps = read_video(path)
    assert frames.shape == (25, 128, 128, 3) and fps == 25.0
    tags = read_metadata(path)
    stored = json.loads(tags["prompt"])
    for node in stored.values():
        node.pop("is_changed", None)  # ComfyUI adds LoadImage's file hash to the prompt it executes
    assert stored == prompt and json.loads(tags["workflow"]) == workflow
    view = f"{server.url}/view?filename={item['filename']}&subfolder={item['subfolder']}&type=output"
    with urllib.request.urlopen(view, timeout=30) as r:
        assert r.status == 200 and len(r.read()) == os.path.getsize(path)
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".partial")]


def test_our_frames_feed_core_savers_and_native_latents_feed_our_decoder(server, tiny_models):
    prompt = tiny_prompt("tiny_t2v", tiny_models)
    del prompt["8"]
    prompt["6"]["inputs"]["steps"] = 2
    prompt.update(
        {
            "20": {
                "class_type": "SaveAnimatedWEBP",
                "inputs": {
                    "images": ["7", 0],
                    "filename_prefix": "core/webp",
                    "fps": 25.0,
                    "lossless": False,
                    "quality": 80,
                    "method": "default",
                },
            },
            "21": {"class_type": "CreateVideo", "inputs": {"images": ["7", 0], "fps": 25.0}},
            "22": {
                "class_type": "SaveVideo",
                "inputs": {"video": ["21", 0], "filename_prefix": "core/video", "format": "auto", "codec": "auto"},
            },
            "23": {
                "class_type": "EmptyLTXVLatentVideo",
                "inputs": {"width": 64, "height": 96, "length": 17, "batch_size": 1},
            },
            "24": {
                "class_type": "VideoDiTVAEDecode",
                "inputs": {
                    "vae": ["1", 1],
                    "latent": ["23", 0],
                    "decode_timestep": 0.05,
                    "decode_noise_scale": 0.025,
                    "tiling": "off",
                },
            },
            "25": {
                "class_type": "VideoDiTSaveVideo",
                "inputs": {
                    "images": ["24", 0],
                    "fps": 25.0,
                    "format": "webm (vp9)",
                    "crf": 30,
                    "filename_prefix": "core/native",
                },
            },
        }
    )
    prompt_id, messages, _ = run(server, prompt)
    errors = [m["data"] for m in messages if m["type"] == "execution_error"]
    assert not errors, errors
    outputs = history(server, prompt_id)["outputs"]
    webp = outputs["20"]["images"][0]
    from PIL import Image

    with Image.open(os.path.join(server.output_dir, webp["subfolder"], webp["filename"])) as img:
        assert img.n_frames == 25 and img.size == (128, 128)
    video = outputs["22"]["images"][0]
    frames, _ = read_video(os.path.join(server.output_dir, video["subfolder"], video["filename"]))
    assert frames.shape == (25, 128, 128, 3)
    native = outputs["25"]["images"][0]
    frames, _ = read_video(os.path.join(server.output_dir, native["subfolder"], native["filename"]))
    assert frames.shape == (17, 96, 64, 3)


def test_interrupt_stops_sampling_within_a_step(server, tiny_models):
    prompt = tiny_prompt("tiny_t2v", tiny_models)
    prompt["6"]["inputs"]["steps"] = 500
    prompt["6"]["inputs"]["seed"] = 4321  # not cached from another test

    def cancel_on_first_step(msg):
        if msg["type"] == "progress" and msg["data"]["node"] == "6" and msg["data"]["value"] == 1:
            assert server.request("/interrupt", {})[0] == 200

    prompt_id, messages, _ = run(server, prompt, on_message=cancel_on_first_step)
    steps = [m["data"]["value"] for m in messages if m["type"] == "progress" and m["data"]["node"] == "6"]
    assert messages[-1]["type"] == "execution_interrupted" and messages[-1]["data"]["node_id"] == "6"
    assert len(steps) <= 3  # stopped at the next step boundary (the interrupt arrives asynchronously)
    assert history(server, prompt_id)["status"]["status_str"] == "error"
    assert server.alive()


def node_error_details(answer, node_id):
    return " | ".join(f"{e['type']}: {e['message']}: {e['details']}" for e in answer["node_errors"][node_id]["errors"])


@pytest.mark.parametrize(
    "node_id,field,value,expected",
    [
        (
            "5",
            "width",
            100,
            "custom_validation_failed: Custom validation failed for node: width - width must be a "
            "multiple of 32 between 32 and 8192 (the VAE compresses 32x in space): got 100; nearest "
            "valid: 96 or 128",
        ),
        ("5", "frames", 0, "frames must be 8k+1"),
        ("5", "frames", 30, "nearest valid: 25 or 33"),
        ("6", "steps", 0, "value_smaller_than_min: Value 0 smaller than min of 1: steps"),
        ("6", "seed", -1, "value_smaller_than_min: Value -1 smaller than min of 0: seed"),
        ("6", "cfg", math.nan, "cfg - cfg must be a finite number: got nan"),
        ("6", "cfg", math.inf, "cfg - cfg must be a finite number: got inf"),
        (
            "1",
            "checkpoint",
            "missing-model.safetensors",
            "value_not_in_list: Value not in list: checkpoint: 'missing-model.safetensors' not in",
        ),
    ],
    ids=lambda v: str(v)[:20],
)
def test_bad_inputs_are_rejected_at_prompt_time(server, tiny_models, node_id, field, value, expected):
    prompt = tiny_prompt("tiny_t2v", tiny_models)
    prompt[node_id]["inputs"][field] = value
    status, answer = server.request("/prompt", {"prompt": prompt})
    assert status == 400 and answer["error"]["type"] == "prompt_outputs_failed_validation"
    assert expected in node_error_details(answer, node_id)
    assert server.alive()


@pytest.mark.parametrize(
    "node_id,field,value,expected",
    [
        ("1", "checkpoint", "truncated.safetensors", "truncated.safetensors"),
        ("10", "image", "broken.png", "cannot identify image file"),
    ],
    ids=lambda v: str(v)[:20],
)
def test_execution_errors_name_the_file_and_the_server_lives(server, tiny_models, node_id, field, value, expected):
    prompt = tiny_prompt("tiny_i2v", tiny_models)
    prompt[node_id]["inputs"][field] = value
    prompt_id, messages, _ = run(server, prompt)
    errors = [m["data"] for m in messages if m["type"] == "execution_error"]
    assert errors and expected in errors[0]["exception_message"], errors
    assert errors[0]["node_id"] == node_id and value in errors[0]["exception_message"]
    assert history(server, prompt_id)["status"]["status_str"] == "error"
    assert server.alive()
    assert not [f for _, _, files in os.walk(server.output_dir) for f in files if f.endswith(".partial")]
