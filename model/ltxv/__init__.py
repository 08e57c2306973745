"""LTX-Video 0.9.x: the DiT, causal video VAE (three generations), tiled decode, latent upsampler, token positions."""
