"""mmbench command line. Data goes to stdout; progress and diagnostics go to stderr. Each module adds its
commands to the one application; each command parses, calls one function of the package and prints."""

from benchmark.cli.app import app, main
from benchmark.cli.output import OutputClosed

# isort: off
# Imported for the commands they add, in the order `mmbench --help` lists them.
from benchmark.cli import run_commands, estimate_commands, report_commands, info_commands, store_commands, data_commands

# isort: on

__all__ = [
    "OutputClosed",
    "app",
    "data_commands",
    "estimate_commands",
    "info_commands",
    "main",
    "report_commands",
    "run_commands",
    "store_commands",
]
