"""Benchmarks: `python -m bench [--only NAME] [--quick]` (see docs/benchmarks.md)."""
