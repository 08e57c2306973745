"""Headless runner: execute an API-format ComfyUI workflow made of this pack's nodes (plus LoadImage) without a
server or ComfyUI install.

    videodit run workflows/api/tiny_t2v_api.json --set '3.text=a red circle moving to the right' --output-dir out
    python -m videodit.cli run WORKFLOW_API.json [--set NODE.INPUT=VALUE ...] [--output-dir DIR] [--input-dir DIR]
                                                 [--models-dir DIR] [--workflow UI.json] [--quiet]

NODE is a node id or its title (`_meta.title`); VALUE is parsed as JSON when it can be (numbers, true/false),
otherwise taken as a string. Images named by LoadImage are looked up as given, then next to the workflow file and
in its parent folder, then in --input-dir. Model names are looked up in --models-dir/checkpoints, diffusion_models, text_encoders and
clip (ComfyUI's layout); the built-in tiny models need nothing. The workflow file and, when a UI-format file of the
same name without "_api" exists next to it or one folder up (or --workflow names one), the UI graph are embedded in the saved videos, so
dropping them on ComfyUI restores the graph.
"""

import argparse
import json
import logging
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageOps, ImageSequence

from .nodes import NODE_CLASS_MAPPINGS, host
from .nodes.common import check_inputs, input_spec


class WorkflowError(Exception):
    """A workflow the runner cannot run; the message names the node and input."""


class LoadImage:
    """Core LoadImage for the headless runner: same inputs and outputs (IMAGE (1, H, W, 3), MASK (1, H, W))."""

    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load_image"
    search_dirs: tuple = ()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("STRING", {"tooltip": "Image file name."})}}

    def load_image(self, image):
        path = self.find(image)
        try:
            with Image.open(path) as img:
                frame = ImageOps.exif_transpose(next(ImageSequence.Iterator(img)))
                rgba = frame.convert("RGBA")
        except Exception as e:  # PIL raises several types for unreadable files
            raise WorkflowError(f"cannot read image '{image}' ({path}): {e}") from e
        pixels = np.asarray(rgba, dtype=np.float32) / 255.0
        rgb = torch.from_numpy(pixels[..., :3].copy())[None]
        mask = 1.0 - torch.from_numpy(pixels[..., 3].copy())[None]
        return rgb, mask

    def find(self, name):
        candidates = [name] if os.path.isabs(name) else [os.path.join(d, name) for d in self.search_dirs]
        for path in candidates:
            if os.path.isfile(path):
                return path
        raise WorkflowError(f"image '{name}' not found (looked in: {', '.join(candidates)})")


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def find_node(prompt: dict, ref: str) -> str:
    if ref in prompt:
        return ref
    matches = [nid for nid, node in prompt.items() if node.get("_meta", {}).get("title") == ref]
    if len(matches) == 1:
        return matches[0]
    names = ", ".join(
        f"{nid} ({node.get('_meta', {}).get('title', node.get('class_type'))})" for nid, node in prompt.items()
    )
    problem = "matches several nodes" if matches else "is not a node id or title"
    raise WorkflowError(f"--set: '{ref}' {problem}; the workflow's nodes are: {names}")


def apply_overrides(prompt: dict, overrides: list[str], classes: dict) -> None:
    for item in overrides:
        target, sep, value = item.partition("=")
        node_ref, dot, input_name = target.rpartition(".")
        if not sep or not dot or not node_ref or not input_name:
            raise WorkflowError(f"--set '{item}': expected NODE.INPUT=VALUE, e.g. 3.text=\"a red circle\"")
        nid = find_node(prompt, node_ref)
        class_type = prompt[nid].get("class_type")
        cls = classes.get(class_type)
        known = list(input_spec(cls)) if cls is not None else []
        if cls is not None and input_name not in known:
            raise WorkflowError(
                f"--set '{item}': node {nid} ({class_type}): no input '{input_name}'; its inputs "
                f"are: {', '.join(known)}"
            )
        prompt[nid].setdefault("inputs", {})[input_name] = parse_value(value)


def is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def check_prompt(prompt: dict, classes: dict) -> list[str]:
    """Validate the graph like ComfyUI's /prompt does; return the ids of the nodes to run, in order."""
    if not isinstance(prompt, dict) or not prompt:
        raise WorkflowError("the workflow is empty or not an API-format dict {node_id: {class_type, inputs}}")
    if "nodes" in prompt and "links" in prompt:
        raise WorkflowError(
            "this is a UI-format workflow; run its API-format variant (*_api.json, or export with "
            "'Export (API)' in ComfyUI)"
        )
    for nid, node in prompt.items():
        class_type = node.get("class_type") if isinstance(node, dict) else None
        if class_type not in classes:
            raise WorkflowError(
                f"node {nid} ({class_type}): this node type is not available in the headless runner "
                f"(it runs {', '.join(sorted(classes))})"
            )
        cls = classes[class_type]
        spec = input_spec(cls)  # INPUT_TYPES of the loaders lists the model folders: read it once per node
        required = cls.INPUT_TYPES().get("required", {})
        inputs = node.get("inputs", {})
        for name in inputs:
            if name not in spec:
                raise WorkflowError(
                    f"node {nid} ({class_type}): unknown input '{name}'; its inputs are: {', '.join(spec)}"
                )
        for name in required:
            if name not in inputs:
                raise WorkflowError(f"node {nid} ({class_type}): required input '{name}' is missing")
        constants = {}
        for name, value in inputs.items():
            kind = spec[name][0]
            if is_link(value):
                src, slot = str(value[0]), value[1]
                if src not in prompt:
                    raise WorkflowError(
                        f"node {nid} ({class_type}): input '{name}' links to node {src}, which does not exist"
                    )
                src_cls = classes.get(prompt[src].get("class_type"))
                outputs = getattr(src_cls, "RETURN_TYPES", ())
                if not 0 <= slot < len(outputs):
                    raise WorkflowError(
                        f"node {nid} ({class_type}): input '{name}' links to output {slot} of node "
                        f"{src}, which has {len(outputs)} outputs"
                    )
                if isinstance(kind, str) and outputs[slot] != kind:
                    raise WorkflowError(
                        f"node {nid} ({class_type}): input '{name}' expects {kind} but node {src} "
                        f"output {slot} is {outputs[slot]}"
                    )
            else:
                constants[name] = value
        try:
            coerced = coerce(spec, constants)
            inputs.update(coerced)
            check_inputs(cls, coerced)
            validate = getattr(cls, "VALIDATE_INPUTS", None)
            if validate is not None:
                import inspect

                names = inspect.getfullargspec(validate).args[1:]
                result = validate(**{n: coerced.get(n) for n in names})
                if result is not True:
                    raise WorkflowError(str(result))
        except (ValueError, WorkflowError) as e:
            raise WorkflowError(f"node {nid} ({class_type}): {e}") from e
    outputs = [nid for nid, node in prompt.items() if getattr(classes[node["class_type"]], "OUTPUT_NODE", False)]
    if not outputs:
        raise WorkflowError("the workflow has no output node (e.g. VideoDiTSaveVideo); nothing would be saved")
    return topological_order(prompt, outputs)


def coerce(spec: dict, constants: dict) -> dict:
    """Convert constants to the input's type (spec: input_spec(cls)) as ComfyUI does (int(), float(), str();
    BOOLEAN kept strict)."""
    out = {}
    for name, value in constants.items():
        kind = spec[name][0]
        try:
            if kind == "INT":
                value = int(value)
            elif kind == "FLOAT":
                value = float(value)
            elif kind == "STRING":
                value = str(value)
            elif kind == "BOOLEAN" and not isinstance(value, bool):
                raise ValueError("expected true or false")
        except (TypeError, ValueError) as e:
            raise ValueError(f"input '{name}': cannot use {value!r} as {kind} ({e})") from e
        out[name] = value
    return out


def topological_order(prompt: dict, outputs: list[str]) -> list[str]:
    order, state = [], {}

    def visit(nid, path):
        if state.get(nid) == "done":
            return
        if state.get(nid) == "visiting":
            raise WorkflowError(f"the workflow has a cycle: {' -> '.join(path + [nid])}")
        state[nid] = "visiting"
        for value in prompt[nid].get("inputs", {}).values():
            if is_link(value):
                visit(str(value[0]), path + [nid])
        state[nid] = "done"
        order.append(nid)

    for nid in outputs:
        visit(nid, [])
    return order


def run_prompt(
    prompt: dict,
    workflow_dir: str = ".",
    extra_pnginfo: dict | None = None,
    overrides: list[str] = (),
    input_dir: str | None = None,
) -> list[dict]:
    """Run an API-format prompt; return the `ui` dicts of the output nodes (with "node" added)."""
    prompt = json.loads(json.dumps(prompt))  # never modify the caller's dict
    classes = dict(NODE_CLASS_MAPPINGS)
    classes["LoadImage"] = LoadImage
    LoadImage.search_dirs = (
        os.getcwd(),
        workflow_dir,
        os.path.dirname(os.path.abspath(workflow_dir)),
        input_dir or host.input_directory(),
    )
    apply_overrides(prompt, list(overrides), classes)
    order = check_prompt(prompt, classes)
    original = json.loads(json.dumps(prompt))
    results, uis = {}, []
    for nid in order:
        node = prompt[nid]
        cls = classes[node["class_type"]]
        kwargs = {name: results[str(v[0])][v[1]] if is_link(v) else v for name, v in node.get("inputs", {}).items()}
        hidden = cls.INPUT_TYPES().get("hidden", {})
        for name, kind in hidden.items():
            kwargs[name] = {"PROMPT": original, "EXTRA_PNGINFO": extra_pnginfo, "UNIQUE_ID": nid}.get(kind)
        try:
            out = getattr(cls(), cls.FUNCTION)(**kwargs)
        except Exception as e:
            raise WorkflowError(f"node {nid} ({node['class_type']}): {describe_error(e)}") from e
        if isinstance(out, dict):
            if "ui" in out:
                uis.append({"node": nid, **out["ui"]})
            out = out.get("result", ())
        results[nid] = tuple(out)
    return uis


def describe_error(error: Exception) -> str:
    """The message of a node's failure: ours (input errors, missing files, loader errors, features that are not
    there) as written, anything else with its exception type."""
    if isinstance(error, (WorkflowError, ValueError, FileNotFoundError, NotImplementedError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


class StderrLog(logging.Handler):
    """The pack's log lines (warnings: unknown words for the built-in model, speed-option fallbacks, no GPU) on
    the terminal as 'warning: ...', written to the current sys.stderr."""

    def emit(self, record):
        print(f"{record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)


def ui_workflow_for(path: str) -> str | None:
    """workflows/api/tiny_t2v_api.json -> tiny_t2v.json next to it or one folder up, when that file exists."""
    folder, filename = os.path.split(os.path.abspath(path))
    base, ext = os.path.splitext(filename)
    if not base.endswith("_api"):
        return None
    for candidate in (os.path.join(folder, base[:-4] + ext), os.path.join(os.path.dirname(folder), base[:-4] + ext)):
        if os.path.isfile(candidate):
            return candidate
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="videodit", description="Run VideoDiT ComfyUI workflows headless.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an API-format workflow")
    run.add_argument("workflow", help="API-format workflow JSON (e.g. workflows/api/tiny_t2v_api.json)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NODE.INPUT=VALUE",
        help="override an input (NODE = node id or title); repeatable",
    )
    run.add_argument("--output-dir", default="output", help="where videos are saved (default ./output)")
    run.add_argument("--input-dir", default=None, help="extra folder for LoadImage files")
    run.add_argument(
        "--models-dir",
        default="models",
        help="ComfyUI-style models folder (checkpoints/, text_encoders/, ...; default ./models)",
    )
    run.add_argument(
        "--workflow",
        dest="ui_workflow",
        default=None,
        help="UI-format workflow to embed in the saved files (default: the same name without _api)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    try:
        with open(args.workflow, encoding="utf-8") as f:
            prompt = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"error: cannot read workflow {args.workflow}: {e}", file=sys.stderr)
        return 2
    extra = None
    ui_path = args.ui_workflow or ui_workflow_for(args.workflow)
    if ui_path:
        try:
            with open(ui_path, encoding="utf-8") as f:
                extra = {"workflow": json.load(f)}
        except (OSError, json.JSONDecodeError) as e:
            print(f"error: cannot read UI workflow {ui_path}: {e}", file=sys.stderr)
            return 2
    host.configure_headless(
        models_dir=args.models_dir, output_dir=args.output_dir, input_dir=args.input_dir, show_progress=not args.quiet
    )
    log, handler = logging.getLogger("videodit"), StderrLog(logging.WARNING)
    log.addHandler(handler)
    try:
        uis = run_prompt(prompt, os.path.dirname(os.path.abspath(args.workflow)), extra, args.overrides, args.input_dir)
    except WorkflowError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted (nothing half-written is left in the output folder)", file=sys.stderr)
        return 130
    finally:
        log.removeHandler(handler)
    for ui in uis:
        for item in ui.get("images", []):
            print(os.path.join(host.HEADLESS.output_dir, item["subfolder"], item["filename"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
