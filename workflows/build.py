"""Writes the example workflows (UI and API format) and their input images into this folder.

    python workflows/build.py

Each workflow is described once below as nodes with widget values by input name; the UI file gets the values in
the nodes' widget order (with the seed's control_after_generate value after the seed, and LoadImage's upload
value after the file name), the API file gets them by name. tests/test_workflows.py checks both against the node
schemas, so editing a node's inputs without re-running this script fails the tests.

The API files live in api/ because ComfyUI lists every *.json directly in a pack's workflows/ folder in its
template browser, and an API-format file cannot be opened there.
"""

import json
import os

from videodit.nodes import NODE_CLASS_MAPPINGS
from videodit.nodes.common import input_spec

HERE = os.path.dirname(os.path.abspath(__file__))

PACK = {"cnr_id": "videodit", "ver": "0.2.0"}  # the registry name and version of pyproject.toml
WIDGET_KINDS = ("INT", "FLOAT", "STRING", "BOOLEAN")
NODE_WIDTH = 330

TINY_PROMPT = "a red circle moving to the right on a black background"
OFFICIAL_PROMPT = (
    "A red ball rolls slowly from the left to the right across a dark wooden table. The camera is "
    "static, the light is soft and warm, and the ball casts a small shadow that moves with it. "
    "The background is a plain black wall."
)
OFFICIAL_NEGATIVE = "worst quality, inconsistent motion, blurry, jittery, distorted"
# Where the frontend can offer the official files when they are missing (node properties.models).
OFFICIAL_MODELS = {
    "ltx-video-2b-v0.9.5.safetensors": (
        "https://huggingface.co/Lightricks/LTX-Video/resolve/main/ltx-video-2b-v0.9.5.safetensors",
        "checkpoints",
    ),
    "t5xxl_fp16.safetensors": (
        "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors",
        "text_encoders",
    ),
    "ltx-2.3-22b-dev.safetensors": (
        "https://huggingface.co/Lightricks/LTX-2.3/resolve/main/ltx-2.3-22b-dev.safetensors",
        "checkpoints",
    ),
    "gemma_3_12B_it.safetensors": (
        "https://huggingface.co/Comfy-Org/ltx-2/resolve/main/split_files/text_encoders/gemma_3_12B_it.safetensors",
        "text_encoders",
    ),
    "ltx-2.3-spatial-upscaler-x2-1.0.safetensors": (
        "https://huggingface.co/Lightricks/LTX-2.3/resolve/main/ltx-2.3-spatial-upscaler-x2-1.0.safetensors",
        "latent_upscale_models",
    ),
}

# Images in the tiny model's world: a red circle (half-size 14 px) on black, 128x128, at the start (x=40) and the
# end (x=88) of a 25-frame move to the right at 2 px per frame.
IMAGES = {"red_circle_start.png": 40.0, "red_circle_end.png": 88.0}


def is_widget(kind) -> bool:
    return isinstance(kind, list) or kind in WIDGET_KINDS


def widget_names(class_type: str) -> list[str]:
    """Widget order as the frontend builds it, incl. the extra control / upload widgets."""
    if class_type == "LoadImage":
        return ["image", "upload"]
    names = []
    for name, (kind, options) in input_spec(NODE_CLASS_MAPPINGS[class_type]).items():
        if is_widget(kind) and not options.get("forceInput"):
            names.append(name)
            if kind == "INT" and (options.get("control_after_generate") or name in ("seed", "noise_seed")):
                names.append(f"{name}:control_after_generate")
    return names


def socket_inputs(class_type: str) -> list[tuple[str, str, bool]]:
    """(name, type, optional) of the inputs drawn as sockets, in order."""
    if class_type == "LoadImage":
        return []
    types = NODE_CLASS_MAPPINGS[class_type].INPUT_TYPES()
    out = []
    for section in ("required", "optional"):
        for name, entry in types.get(section, {}).items():
            if not is_widget(entry[0]):
                out.append((name, entry[0], section == "optional"))
    return out


def outputs_of(class_type: str) -> list[tuple[str, str]]:
    if class_type == "LoadImage":
        return [("IMAGE", "IMAGE"), ("MASK", "MASK")]
    cls = NODE_CLASS_MAPPINGS[class_type]
    return list(zip(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES), cls.RETURN_TYPES))


def defaults(class_type: str) -> dict:
    if class_type == "LoadImage":
        return {"upload": "image"}
    values = {}
    for name, (kind, options) in input_spec(NODE_CLASS_MAPPINGS[class_type]).items():
        if is_widget(kind):
            values[name] = options.get("default", kind[0] if isinstance(kind, list) else None)
            if kind == "INT" and options.get("control_after_generate"):
                values[f"{name}:control_after_generate"] = "fixed"
    return values


def build(nodes: list[dict], note: str) -> tuple[dict, dict]:
    """nodes: [{"id", "type", "title", "pos", "widgets": {...}, "links": {input: (src_id, slot)}}] -> (ui, api)."""
    ui_nodes, links, api = [], [], {}
    by_id = {n["id"]: n for n in nodes}
    out_links = {}  # (src, slot) -> [link ids]
    for node in nodes:
        for name, (src, slot) in node.get("links", {}).items():
            link_id = len(links) + 1
            target_slot = [s[0] for s in socket_inputs(node["type"])].index(name)
            links.append([link_id, src, slot, node["id"], target_slot, outputs_of(by_id[src]["type"])[slot][1]])
            out_links.setdefault((src, slot), []).append(link_id)
    for order, node in enumerate(nodes):
        values = {**defaults(node["type"]), **node.get("widgets", {})}
        names = widget_names(node["type"])
        unknown = set(node.get("widgets", {})) - set(names)
        if unknown:
            raise ValueError(f"{node['type']}: unknown widgets {unknown}")
        node_links = node.get("links", {})
        inputs = []
        for name, kind, optional in socket_inputs(node["type"]):
            entry = {"name": name, "type": kind, "link": None}
            if optional:
                entry["shape"] = 7
            if name in node_links:
                src, slot = node_links[name]
                entry["link"] = next(
                    lk[0]
                    for lk in links
                    if lk[3] == node["id"]
                    and lk[1] == src
                    and lk[2] == slot
                    and socket_inputs(node["type"])[lk[4]][0] == name
                )
            inputs.append(entry)
        outputs = [
            {"name": out_name, "type": kind, "links": out_links.get((node["id"], i)), "slot_index": i}
            for i, (out_name, kind) in enumerate(outputs_of(node["type"]))
        ]
        height = 60 + 26 * (len(names) + max(len(inputs), len(outputs)))
        if node["type"] == "VideoDiTTextEncode":
            height = 200
        if node["type"] == "LoadImage":
            height = 320
        properties = {
            "Node name for S&R": node["type"],
            **({"cnr_id": "comfy-core", "ver": "0.3.64"} if node["type"] == "LoadImage" else PACK),
        }
        models = [
            {"name": v, "url": OFFICIAL_MODELS[v][0], "directory": OFFICIAL_MODELS[v][1]}
            for v in values.values()
            if isinstance(v, str) and v in OFFICIAL_MODELS
        ]
        if models:
            properties["models"] = models
        ui_nodes.append(
            {
                "id": node["id"],
                "type": node["type"],
                "pos": list(node["pos"]),
                "size": [NODE_WIDTH, height],
                "flags": {},
                "order": order,
                "mode": 0,
                "inputs": inputs,
                "outputs": outputs,
                "properties": properties,
                "widgets_values": [values[name] for name in names],
                "title": node["title"],
            }
        )
        api_inputs = {
            name: values[name] for name in names if not name.endswith(":control_after_generate") and name != "upload"
        }
        api_inputs.update({name: [str(src), slot] for name, (src, slot) in node_links.items()})
        api[str(node["id"])] = {"class_type": node["type"], "inputs": api_inputs, "_meta": {"title": node["title"]}}
    note_id = max(n["id"] for n in nodes) + 1
    ui_nodes.append(
        {
            "id": note_id,
            "type": "Note",
            "pos": [-420, 0],
            "size": [380, 520],
            "flags": {},
            "order": len(nodes),
            "mode": 0,
            "inputs": [],
            "outputs": [],
            "properties": {},
            "widgets_values": [note],
            "title": "Read me",
            "color": "#432",
            "bgcolor": "#653",
        }
    )
    ui = {
        "revision": 0,
        "last_node_id": note_id,
        "last_link_id": len(links),
        "nodes": ui_nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 0.8, "offset": [480, 60]}, "frontendVersion": "1.27.10"},
        "version": 0.4,
    }
    return ui, api


def graph(kind: str, official: bool) -> list[dict]:
    """kind: "t2v" | "i2v" | "first_last"."""
    checkpoint = "ltx-video-2b-v0.9.5.safetensors" if official else "videodit-tiny (built-in)"
    encoder = "t5xxl_fp16.safetensors" if official else "t5-tiny (built-in)"
    size = {"width": 768, "height": 512, "frames": 97} if official else {"width": 128, "height": 128, "frames": 25}
    sampler = (
        {"seed": 42, "steps": 30, "cfg": 3.0, "stg": 1.0, "stg_blocks": "19", "rescale": 0.7}
        if official
        else {"seed": 42, "steps": 20, "cfg": 4.0, "stg": 0.0, "stg_blocks": "3", "rescale": 0.7}
    )
    name = f"{'ltxv_2b' if official else 'tiny'}_{kind}"
    nodes = [
        {
            "id": 1,
            "type": "VideoDiTModelLoader",
            "title": "Model",
            "pos": [0, 0],
            "widgets": {"checkpoint": checkpoint},
        },
        {
            "id": 2,
            "type": "VideoDiTTextEncoderLoader",
            "title": "Text encoder",
            "pos": [0, 260],
            "widgets": {"text_encoder": encoder},
        },
        {
            "id": 3,
            "type": "VideoDiTTextEncode",
            "title": "Positive prompt",
            "pos": [380, 0],
            "widgets": {"text": OFFICIAL_PROMPT if official else TINY_PROMPT},
            "links": {"text_encoder": (2, 0)},
        },
        {
            "id": 4,
            "type": "VideoDiTTextEncode",
            "title": "Negative prompt",
            "pos": [380, 240],
            "widgets": {"text": OFFICIAL_NEGATIVE if official else ""},
            "links": {"text_encoder": (2, 0)},
        },
        {
            "id": 5,
            "type": "VideoDiTEmptyLatentVideo",
            "title": "Empty latent video",
            "pos": [380, 480],
            "widgets": {**size, "frame_rate": 25.0},
        },
    ]
    latent_source = (5, 0)
    if kind in ("i2v", "first_last"):
        nodes.append(
            {
                "id": 10,
                "type": "LoadImage",
                "title": "First frame",
                "pos": [0, 480],
                "widgets": {"image": "red_circle_start.png"},
            }
        )
        i2v = {
            "id": 11,
            "type": "VideoDiTImageToVideo",
            "title": "Image to video",
            "pos": [760, 480],
            "widgets": {"frame_index_1": 0, "strength_1": 1.0, "crf": 29 if official else 0},
            "links": {"vae": (1, 1), "latent": (5, 0), "image_1": (10, 0)},
        }
        if kind == "first_last":
            nodes.append(
                {
                    "id": 12,
                    "type": "LoadImage",
                    "title": "Last frame",
                    "pos": [0, 840],
                    "widgets": {"image": "red_circle_end.png"},
                }
            )
            i2v["widgets"].update({"frame_index_2": -1, "strength_2": 1.0})
            i2v["links"]["image_2"] = (12, 0)
        nodes.append(i2v)
        latent_source = (11, 0)
    nodes += [
        {
            "id": 6,
            "type": "VideoDiTSampler",
            "title": "Sampler",
            "pos": [1140, 0],
            "widgets": sampler,
            "links": {"model": (1, 0), "positive": (3, 0), "negative": (4, 0), "latent": latent_source},
        },
        {
            "id": 7,
            "type": "VideoDiTVAEDecode",
            "title": "Decode",
            "pos": [1500, 0],
            "links": {"vae": (1, 1), "latent": (6, 0)},
        },
        {
            "id": 8,
            "type": "VideoDiTSaveVideo",
            "title": "Save video",
            "pos": [1500, 260],
            "widgets": {"fps": 25.0, "filename_prefix": f"VideoDiT/{name}"},
            "links": {"images": (7, 0)},
        },
    ]
    return nodes


LTX2_FILES = {
    "checkpoint": "ltx-2.3-22b-dev.safetensors",
    "text_encoder": "gemma_3_12B_it.safetensors",
    "upscale_model": "ltx-2.3-spatial-upscaler-x2-1.0.safetensors",
}
LTX2_PROMPT = (
    "A red ball rolls slowly from the left to the right across a dark wooden table and knocks against a glass; the "
    "glass rings with a clear high tone. The camera is static, the light is soft and warm."
)


def ltx2_graph(kind: str) -> list[dict]:
    """LTX-2.3 with sound. kind: "t2av" (one stage, the version's guidance) | "two_stage" (stage 1 at half size,
    the x2 latent upsampler, stage 2 on the distilled stage-2 list: LTX2Pipeline.generate(two_stage=True))."""
    two = kind == "two_stage"
    nodes = [
        {"id": 1, "type": "VideoDiTModelLoader", "title": "Model", "pos": [0, 0],
         "widgets": {"checkpoint": LTX2_FILES["checkpoint"]}},
        {"id": 2, "type": "VideoDiTTextEncoderLoader", "title": "Text encoder (Gemma 3)", "pos": [0, 380],
         "widgets": {"text_encoder": LTX2_FILES["text_encoder"]}},
        {"id": 3, "type": "VideoDiTTextEncode", "title": "Positive prompt", "pos": [380, 0],
         "widgets": {"text": LTX2_PROMPT}, "links": {"text_encoder": (2, 0)}},
        {"id": 4, "type": "VideoDiTTextEncode", "title": "Negative prompt", "pos": [380, 240],
         "widgets": {"text": OFFICIAL_NEGATIVE}, "links": {"text_encoder": (2, 0)}},
        {"id": 5, "type": "VideoDiTEmptyLatentVideo", "title": "Empty audio+video latent", "pos": [380, 480],
         "widgets": {"width": 768, "height": 512, "frames": 121, "frame_rate": 24.0, "two_stage": two},
         "links": {"vae": (1, 1)}},
        {"id": 6, "type": "VideoDiTSampler", "title": "Sampler" + (" (stage 1)" if two else ""), "pos": [760, 0],
         "widgets": {"seed": 42, "steps": 30, "guidance": "default"},
         "links": {"model": (1, 0), "positive": (3, 0), "negative": (4, 0), "latent": (5, 0)}},
    ]  # fmt: skip
    decoded = (6, 0)
    if two:
        nodes += [
            {"id": 10, "type": "VideoDiTLatentUpsample", "title": "Latent upsample x2", "pos": [1140, 0],
             "widgets": {"upscale_model": LTX2_FILES["upscale_model"]}, "links": {"vae": (1, 1), "latent": (6, 0)}},
            {"id": 11, "type": "VideoDiTSampler", "title": "Sampler (stage 2)", "pos": [1140, 240],
             "widgets": {"seed": 42, "steps": 3, "schedule": "distilled_stage_2", "guidance": "default"},
             "links": {"model": (1, 0), "positive": (3, 0), "negative": (4, 0), "latent": (10, 0)}},
        ]  # fmt: skip
        decoded = (11, 0)
    nodes += [
        {"id": 7, "type": "VideoDiTVAEDecode", "title": "Decode video", "pos": [1520, 0],
         "links": {"vae": (1, 1), "latent": decoded}},
        {"id": 9, "type": "VideoDiTAudioDecode", "title": "Decode audio", "pos": [1520, 260],
         "links": {"audio_vae": (1, 2), "latent": decoded}},
        {"id": 8, "type": "VideoDiTSaveVideo", "title": "Save video", "pos": [1900, 0],
         "widgets": {"fps": 24.0, "filename_prefix": f"VideoDiT/ltx2_3_{kind}"},
         "links": {"images": (7, 0), "audio": (9, 0)}},
    ]  # fmt: skip
    return nodes


def ltx2_note(kind: str) -> str:
    what = {
        "t2av": "LTX-2.3 text to video with sound, one stage.",
        "two_stage": "LTX-2.3 two-stage text to video with sound: stage 1 at half the size (Empty Latent Video "
        "two_stage), the x2 latent upsampler, stage 2 on the distilled stage-2 list (3 steps, no guidance) with the "
        "same seed: what LTX2Pipeline.generate(two_stage=True) does.",
    }[kind]
    files = (
        f"Models: {LTX2_FILES['checkpoint']} in models/checkpoints, {LTX2_FILES['text_encoder']} (Gemma 3 12B) in "
        "models/text_encoders"
    )
    if kind == "two_stage":
        files += f", {LTX2_FILES['upscale_model']} in models/latent_upscale_models"
    return (
        f"{what}\n\n{files}. LTX-2.5: its transformer from models/diffusion_models, vae_file and audio_vae_file "
        "from models/vae, its Gemma 4 file as text encoder.\nguidance default = the version's own values (video cfg "
        "3, audio cfg 7, STG 1 on block 28, rescale 0.7, modality 3; distilled checkpoints: none). Sound lasts "
        "frames / frame_rate seconds (121 frames at 24 fps = 5.04 s); use the same frame rate in Save Video. "
        "Frames 8k+1, sides multiples of 32 (two-stage: 64)."
    )


def note_text(kind: str, official: bool) -> str:
    what = {
        "t2v": "Text to video.",
        "i2v": "Image to video: the loaded image becomes frame 0 (frame_index_1 = 0).",
        "first_last": "First and last frame: image_1 at frame 0, image_2 at frame -1 (the last frame); the "
        "model fills the frames between.",
    }[kind]
    if official:
        model = (
            "Models: put ltx-video-2b-v0.9.5.safetensors in models/checkpoints and t5xxl_fp16.safetensors in "
            "models/text_encoders.\nSettings are the official 2B ones: 768x512, 97 frames at 25 fps, 30 steps "
            "(40 for best quality), cfg 3, stg 1 on block 19, rescale 0.7, schedule from the checkpoint, "
            "decode timestep 0.05 / noise 0.025."
        )
        if kind != "t2v":
            model += "\nImages are center-cropped to 768x512 and compressed at crf 29 (raise to 35-40 for more motion)."
    else:
        model = (
            "Runs the tiny built-in model (no download): it only knows coloured shapes moving on a plain "
            "background, 128x128, 25 frames at 25 fps. Its settings: 20 steps, cfg 4, stg off (it has 6 "
            "blocks), no image compression."
        )
    return (
        f"{what}\n\n{model}\n\nWidth and height must be multiples of 32 and frames 8k+1 (the VAE compresses "
        f"32x in space and 8x in time); other values are rejected with the nearest valid ones. Use the same "
        f"frame rate in Empty Latent Video and Save Video."
    )


def write_images():
    import numpy as np
    from PIL import Image
    from videodit.tiny.data import ClipSpec, render

    for filename, x in IMAGES.items():
        spec = ClipSpec(
            color="red", shape="circle", motion="still", background="black", half_size=14.0, x0=x, y0=64.0, speed=0.0
        )
        frame = render([spec], frames=1)[0, 0]
        if frame.dtype != np.uint8:
            frame = (np.clip(frame, 0, 1) * 255).round().astype(np.uint8)
        Image.fromarray(frame).save(os.path.join(HERE, filename), optimize=True)


def main():
    for official in (False, True):
        for kind in ("t2v", "i2v", "first_last"):
            name = f"{'ltxv_2b' if official else 'tiny'}_{kind}"
            ui, api = build(graph(kind, official), note_text(kind, official))
            for filename, data in ((f"{name}.json", ui), (os.path.join("api", f"{name}_api.json"), api)):
                with open(os.path.join(HERE, filename), "w", encoding="utf-8") as f:
                    json.dump(data, f, indent=1)
                    f.write("\n")
    for kind in ("t2av", "two_stage"):
        ui, api = build(ltx2_graph(kind), ltx2_note(kind))
        name = f"ltx2_3_{kind}"
        for filename, data in ((f"{name}.json", ui), (os.path.join("api", f"{name}_api.json"), api)):
            with open(os.path.join(HERE, filename), "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
                f.write("\n")
    write_images()


if __name__ == "__main__":
    main()
