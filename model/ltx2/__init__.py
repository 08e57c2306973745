"""LTX-2 family (2.0, 2.3, 2.5): audio+video transformer, Gemma text path, video and audio VAEs, vocoder, upsamplers,
schedules and multimodal guidance. Pure PyTorch; blocks whose math equals LTX-Video 0.9.x's come from model/blocks."""
