"""Harness overhead: each mmbench cell against a plain PyTorch loop of the same work (`make bench-overhead`)."""
