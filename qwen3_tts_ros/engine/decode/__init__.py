"""Decode: the prompt (prefill) and the CUDA-graph frame loop with its model parts (talker, code
predictor, layers, samplers, compile)."""
