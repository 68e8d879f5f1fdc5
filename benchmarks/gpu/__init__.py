"""The pieces of ``benchmarks/gpu_check.py``: the device machine's set-up and the model shapes."""
