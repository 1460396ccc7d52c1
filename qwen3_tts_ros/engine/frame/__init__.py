"""The frame loop: the prompt (prefill) and the CUDA-graph frame generator over one of the frame paths
(paths.py), with their model parts (talker, code predictor, layers, samplers, compile)."""
