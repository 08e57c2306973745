"""The real ComfyUI frontend (headless Chromium over the DevTools protocol) loads every UI workflow: no missing node
types, links intact, widget values kept as written, and the frontend's own API conversion equals our api/*_api.json.

Needs COMFYUI_DIR (see test_comfyui_server.py) and Chromium (/usr/bin/chromium or CHROMIUM=path; Debian package
`chromium`). Uses the `websockets` package for the DevTools connection.
"""

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest
from test_comfyui_server import WORKFLOWS, comfyui_dir, free_port, start_server

UI_FILES = sorted(f for f in os.listdir(WORKFLOWS) if f.endswith(".json"))


def chromium_path():
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        reason = "Chromium not found (apt-get install chromium, or set CHROMIUM=/path/to/chromium)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return path


class DevTools:
    """A minimal Chrome DevTools Protocol client for one page."""

    def __init__(self, ws):
        self.ws = ws
        self.ids = itertools.count(1)

    def call(self, method, **params):
        call_id = next(self.ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=120))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    comfy = comfyui_dir()
    chromium = chromium_path()
    pytest.importorskip("websockets", reason="the DevTools client needs `pip install websockets`")
    tmp = tmp_path_factory.mktemp("browser")
    models = tmp / "models"
    for sub in ("checkpoints", "text_encoders"):
        (models / sub).mkdir(parents=True)
    server = start_server(comfy, tmp, str(models))
    port = free_port()
    profile = tempfile.mkdtemp(dir=tmp)
    browser = subprocess.Popen(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",  # no calls to Google's hosts from a machine with no network
            "--disable-component-update",
            "--disable-sync",
            f"--remote-debugging-port={port}",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        targets = None
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    targets = [t for t in json.load(r) if t["type"] == "page"]
                if targets:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert targets, "Chromium did not open a DevTools page"
        from websockets.sync.client import connect

        with connect(targets[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as ws:
            devtools = DevTools(ws)
            devtools.call("Page.enable")
            devtools.call("Page.navigate", url=server.url + "/")
            deadline = time.time() + 180
            while time.time() < deadline:
                ready = devtools.evaluate(
                    "!!(window.app && window.app.graph && window.LiteGraph && "
                    "window.LiteGraph.registered_node_types['VideoDiTSampler'])"
                )
                if ready:
                    break
                time.sleep(1)
            else:
                pytest.fail(f"the ComfyUI frontend did not come up with our nodes; log:\n{server.log()[-3000:]}")
            yield devtools
    finally:
        browser.terminate()
        browser.wait(timeout=30)
        server.process.terminate()
        server.process.wait(timeout=30)


LOAD_JS = """(async () => {
  const wf = %s;
  const missing = wf.nodes.map(n => n.type).filter(t => !LiteGraph.registered_node_types[t]);
  await app.loadGraphData(wf, true, true, %s);
  const graph = app.graph.serialize();
  const brokenLinks = [];
  for (const link of Object.values(app.graph.links ?? {})) {
    if (!link) continue;
    const origin = app.graph.getNodeById(link.origin_id), target = app.graph.getNodeById(link.target_id);
    const out = origin?.outputs?.[link.origin_slot], inp = target?.inputs?.[link.target_slot];
    if (!out || !inp || inp.link !== link.id || out.type !== link.type || inp.type !== link.type)
      brokenLinks.push(link.id);
  }
  const prompt = await app.graphToPrompt();
  return {missing, brokenLinks, nodes: graph.nodes.map(n => [n.id, n.type, n.widgets_values]),
          links: graph.links, output: prompt.output};
})()"""


@pytest.mark.parametrize("name", UI_FILES)
def test_frontend_loads_workflow(page, name):
    with open(os.path.join(WORKFLOWS, name), encoding="utf-8") as f:
        workflow = json.load(f)
    with open(os.path.join(WORKFLOWS, "api", name[:-5] + "_api.json"), encoding="utf-8") as f:
        api = json.load(f)
    result = page.evaluate(LOAD_JS % (json.dumps(workflow), json.dumps(name)))
    assert result["missing"] == [], f"missing node types: {result['missing']}"
    assert result["brokenLinks"] == []
    assert sorted(map(tuple, result["links"])) == sorted(map(tuple, workflow["links"]))
    loaded = {nid: (kind, values) for nid, kind, values in result["nodes"]}
    for node in workflow["nodes"]:
        assert loaded[node["id"]] == (node["type"], node["widgets_values"]), node["type"]
    assert result["output"] == api  # the frontend's own "Export (API)" equals the shipped API file
