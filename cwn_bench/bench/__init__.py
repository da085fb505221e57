"""Micro-benchmarks: normalised convs vs cuDNN (``conv``), googlenet_bn training steps
(``step``), the GPU check (``gpu_check``); JSONL with an environment header."""
