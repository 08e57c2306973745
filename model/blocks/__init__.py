"""Blocks whose math both LTX families share: attention, norms, feed-forward, timestep modulation, RoPE, fp8."""
