"""Benchmarks of the pipeline against its physical floor; run them as ``python -m bench.<name>``."""
