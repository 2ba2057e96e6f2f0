"""Developer benchmarks and checks, run from a checkout (`make bench-*`, `make gpu-check`): not installed with mmbench.

They import the package; the package never imports them (import-linter checks both ways in `make lint`).
"""
