"""The shipped workflows: UI format consistent (links, widget order and types), API format agrees with it and
passes the headless runner's validation, only this pack's nodes plus listed core nodes."""

import glob
import json
import os

import numpy as np
import pytest
from PIL import Image
from videodit.cli import LoadImage, check_prompt
from videodit.nodes import NODE_CLASS_MAPPINGS

WORKFLOWS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workflows")
UI_FILES = sorted(f for f in glob.glob(os.path.join(WORKFLOWS, "*.json")) if not f.endswith("_api.json"))
CORE_NODES = {"LoadImage", "Note"}  # core ComfyUI nodes the workflows may use
# combo input -> (folder, the official files the workflows name; the combos list them once they are downloaded)
OFFICIAL_FILES = {
    "checkpoint": ("checkpoints", ("ltx-video-2b-v0.9.5.safetensors", "ltx-2.3-22b-dev.safetensors")),
    "text_encoder": ("text_encoders", ("t5xxl_fp16.safetensors", "gemma_3_12B_it.safetensors")),
    "upscale_model": ("latent_upscale_models", ("ltx-2.3-spatial-upscaler-x2-1.0.safetensors",)),
}
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
EXPECTED = {"tiny_t2v", "tiny_i2v", "tiny_first_last", "ltxv_2b_t2v", "ltxv_2b_i2v", "ltxv_2b_first_last"}
EXPECTED |= {"ltx2_3_t2av", "ltx2_3_two_stage"}


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def expected_widgets(class_type):
    """[(name, type, options)] in the frontend's widget order: widget inputs of required then optional, the
    control_after_generate combo right after seeds, LoadImage's upload widget after the file name."""
    if class_type == "LoadImage":
        return [("image", "FILE", {}), ("upload", ["image"], {})]
    if class_type == "Note":
        return [("text", "STRING", {})]
    types = NODE_CLASS_MAPPINGS[class_type].INPUT_TYPES()
    out = []
    for section in ("required", "optional"):
        for name, (kind, options) in types.get(section, {}).items():
            if isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN"):
                out.append((name, kind, options))
                if kind == "INT" and (options.get("control_after_generate") or name in ("seed", "noise_seed")):
                    out.append((name + " control", list(CONTROL_VALUES), {}))
    return out


def socket_inputs(class_type):
    if class_type in CORE_NODES:
        return []
    types = NODE_CLASS_MAPPINGS[class_type].INPUT_TYPES()
    return [
        (name, kind)
        for section in ("required", "optional")
        for name, (kind, _) in types.get(section, {}).items()
        if not (isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN"))
    ]


def output_types(class_type):
    if class_type == "LoadImage":
        return ["IMAGE", "MASK"]
    return list(NODE_CLASS_MAPPINGS.get(class_type, type("X", (), {"RETURN_TYPES": ()})).RETURN_TYPES)


def test_all_workflows_are_shipped():
    names = {os.path.basename(f)[:-5] for f in UI_FILES}
    assert names == EXPECTED
    for name in EXPECTED:
        assert os.path.isfile(os.path.join(WORKFLOWS, "api", name + "_api.json"))
    assert not glob.glob(os.path.join(WORKFLOWS, "*_api.json"))  # the template browser lists every json here


@pytest.mark.parametrize("path", UI_FILES, ids=os.path.basename)
def test_ui_workflow_structure_and_links(path):
    wf = load(path)
    assert wf["version"] == 0.4 and isinstance(wf["extra"], dict) and wf["groups"] == [] and wf["config"] == {}
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert len(nodes) == len(wf["nodes"]) and wf["last_node_id"] >= max(nodes)
    for node in wf["nodes"]:
        assert node["type"] in NODE_CLASS_MAPPINGS or node["type"] in CORE_NODES, node["type"]
        assert {
            "id",
            "type",
            "pos",
            "size",
            "flags",
            "order",
            "mode",
            "inputs",
            "outputs",
            "properties",
            "widgets_values",
        } <= set(node)
        assert node["mode"] == 0
        if node["type"] != "Note":
            assert node["properties"]["Node name for S&R"] == node["type"]
            assert [i["name"] for i in node["inputs"]] == [n for n, _ in socket_inputs(node["type"])]
            assert [o["type"] for o in node["outputs"]] == output_types(node["type"])
    notes = [n for n in wf["nodes"] if n["type"] == "Note"]
    assert len(notes) == 1 and len(notes[0]["widgets_values"][0]) > 200
    link_ids = [link[0] for link in wf["links"]]
    assert len(set(link_ids)) == len(link_ids) and wf["last_link_id"] >= max(link_ids)
    for link_id, src, src_slot, dst, dst_slot, kind in wf["links"]:
        out = nodes[src]["outputs"][src_slot]
        inp = nodes[dst]["inputs"][dst_slot]
        assert out["type"] == kind == inp["type"], (link_id, out, inp)
        assert link_id in out["links"] and inp["link"] == link_id
    # every socket link recorded on a node appears in the link table
    for node in wf["nodes"]:
        for inp in node["inputs"]:
            if inp["link"] is not None:
                assert inp["link"] in link_ids
            else:
                required = NODE_CLASS_MAPPINGS[node["type"]].INPUT_TYPES()["required"]
                assert inp["name"] not in required, f"required socket {inp['name']} of {node['type']} unconnected"
        for out in node["outputs"]:
            for link_id in out["links"] or []:
                assert link_id in link_ids


@pytest.mark.parametrize("path", UI_FILES, ids=os.path.basename)
def test_widgets_values_match_widget_order_and_types(path):
    for node in load(path)["nodes"]:
        widgets = expected_widgets(node["type"])
        values = node["widgets_values"]
        assert len(values) == len(widgets), (node["type"], values, [w[0] for w in widgets])
        for (name, kind, options), value in zip(widgets, values):
            where = f"{node['type']}.{name} = {value!r}"
            if kind == "FILE":
                assert os.path.isfile(os.path.join(WORKFLOWS, value)), where
            elif isinstance(kind, list):
                assert value in kind or value in OFFICIAL_FILES.get(name, (None, ()))[1], where
            elif kind == "INT":
                assert type(value) is int and options["min"] <= value <= options["max"], where
            elif kind == "FLOAT":
                assert type(value) in (int, float) and options["min"] <= value <= options["max"], where
            elif kind == "BOOLEAN":
                assert type(value) is bool, where
            else:
                assert type(value) is str, where


@pytest.mark.parametrize("path", UI_FILES, ids=os.path.basename)
def test_api_variant_agrees_with_ui(path):
    ui = load(path)
    api = load(os.path.join(WORKFLOWS, "api", os.path.basename(path)[:-5] + "_api.json"))
    ui_nodes = {str(n["id"]): n for n in ui["nodes"] if n["type"] != "Note"}
    assert set(api) == set(ui_nodes)
    links = {link[0]: link for link in ui["links"]}
    for nid, node in ui_nodes.items():
        entry = api[nid]
        assert entry["class_type"] == node["type"] and entry["_meta"]["title"] == node["title"]
        expected = {}
        for (name, _, _), value in zip(expected_widgets(node["type"]), node["widgets_values"]):
            if not name.endswith(" control") and name != "upload":
                expected[name] = value
        for inp in node["inputs"]:
            if inp["link"] is not None:
                _, src, slot, _, _, _ = links[inp["link"]]
                expected[inp["name"]] = [str(src), slot]
        assert entry["inputs"] == expected, nid


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(WORKFLOWS, "api", "*_api.json"))), ids=os.path.basename)
def test_api_workflow_passes_runner_validation(path, tmp_path, monkeypatch):
    from videodit.nodes import host

    for sub, names in OFFICIAL_FILES.values():
        (tmp_path / sub).mkdir()
        for name in names:
            (tmp_path / sub / name).write_bytes(b"")  # placeholders: the combos list them
    monkeypatch.setattr(host.HEADLESS, "models_dir", str(tmp_path))
    classes = {**NODE_CLASS_MAPPINGS, "LoadImage": LoadImage}
    order = check_prompt(load(path), classes)
    assert order[-1] == "8" and len(order) == len(load(path))


def test_input_images_match_the_tiny_world():
    for name in ("red_circle_start.png", "red_circle_end.png"):
        with Image.open(os.path.join(WORKFLOWS, name)) as img:
            pixels = np.asarray(img.convert("RGB")).astype(int)
        assert pixels.shape == (128, 128, 3) and (pixels[2, 2] == 0).all()
        red = (pixels[..., 0] > 150) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
        assert 400 < red.sum() < 800  # a circle of radius ~14 px


@pytest.mark.parametrize("path", [f for f in UI_FILES if "ltxv_2b" in f], ids=os.path.basename)
def test_official_workflows_tell_the_frontend_where_models_go(path):
    nodes = {n["type"]: n for n in load(path)["nodes"]}
    for node_type, directory in (
        ("VideoDiTModelLoader", "checkpoints"),
        ("VideoDiTTextEncoderLoader", "text_encoders"),
    ):
        (model,) = nodes[node_type]["properties"]["models"]
        assert model["name"] == nodes[node_type]["widgets_values"][0] and model["directory"] == directory
        assert model["url"].startswith("https://huggingface.co/") and model["url"].endswith(model["name"])
