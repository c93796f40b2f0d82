"""Benchmarks (``uv run python -m bench ...``): measured, never asserted; see
docs/benchmarks.md."""
