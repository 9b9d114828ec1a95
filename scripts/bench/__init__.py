"""Helpers of the scripts/bench_*.py benchmarks (run those scripts, not these modules)."""
