"""Pure-PyTorch LTX-Video: DiT, causal video VAE, T5 text encoder, schedules, sampling, checkpoint loading.
Nothing in this package imports ComfyUI."""
