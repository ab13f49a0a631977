"""Benchmarks and chaos runs; see bench/README.md."""
