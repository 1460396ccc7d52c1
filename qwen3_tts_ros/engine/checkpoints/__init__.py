"""Checkpoints: loading through qwen-tts, and the built-in tiny random demo checkpoint."""
