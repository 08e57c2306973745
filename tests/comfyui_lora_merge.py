"""Run by tests/test_lora.py inside a ComfyUI environment (COMFYUI_PYTHON): ComfyUI's own LoRA loading on our
weights, as its LoraLoader node does it for a model of the LTX families (generic key map of model_lora_keys_unet,
comfy.lora.load_lora, comfy.lora.calculate_weight in fp32).

    python comfyui_lora_merge.py COMFYUI_DIR BASE.safetensors CASES.json OUT.safetensors

BASE: our transformer's weights (official names, no prefix). CASES: {case: [[lora path, strength], ...]}. OUT: for
every case and every patched layer "<case>/<official name>.weight" = the weight ComfyUI computes.
"""

import json
import sys


class _Model:
    """What model_lora_keys_unet reads of a ComfyUI model: its state-dict keys and an (empty) UNet config."""

    class model_config:  # noqa: N801
        unet_config = {}

    def __init__(self, base):
        self._keys = {"diffusion_model." + k: v for k, v in base.items()}

    def state_dict(self):
        return self._keys


def main():
    comfy_dir, base_path, cases_path, out_path = sys.argv[1:5]
    sys.argv = [sys.argv[0], "--cpu"]
    sys.path.insert(0, comfy_dir)
    import comfy.options

    comfy.options.enable_args_parsing()
    import comfy.lora
    import torch
    from safetensors.torch import load_file, save_file

    base = load_file(base_path)
    key_map = comfy.lora.model_lora_keys_unet(_Model(base), {})
    with open(cases_path) as f:
        cases = json.load(f)
    out = {}
    for case, stack in cases.items():
        patches = {}
        for path, strength in stack:
            loaded = comfy.lora.load_lora(load_file(path), key_map)
            for key, adapter in loaded.items():
                patches.setdefault(key, []).append((strength, adapter, 1.0, None, None))
        for key, layer_patches in patches.items():
            weight = base[key[len("diffusion_model.") :]].to(torch.float32, copy=True)
            out[f"{case}/{key[len('diffusion_model.') :]}"] = comfy.lora.calculate_weight(layer_patches, weight, key)
    save_file({k: v.contiguous() for k, v in out.items()}, out_path)


if __name__ == "__main__":
    main()
