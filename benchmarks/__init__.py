"""Benchmark scripts (``python -m benchmarks.NAME``)."""

# first, so that sen_rl sets OpenMP's wait policy before any script here loads torch
import sen_rl  # noqa: F401
