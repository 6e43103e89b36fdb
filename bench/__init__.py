"""Benchmarks of the control plane; run with `make bench`, never as tests."""
