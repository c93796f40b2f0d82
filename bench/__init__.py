"""Benchmarks (``adclick bench ...``): measured, never asserted; see docs/benchmarks.md."""
