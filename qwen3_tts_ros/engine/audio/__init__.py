"""Audio: codec decode (whole, and causal with carried state), chunking into PcmChunks, PCM sample
formats."""
