"""`mmbench list` and `mmbench env`: what this install offers, and what this machine is."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Any

import typer

from benchmark.cli.app import JSON_HELP, app
from benchmark.cli.output import fail, print_data, print_json, say
from benchmark.errors import MMBenchError
from benchmark.formats.registry import FORMATS, format_names, get_format
from benchmark.launch.launchers import LAUNCHERS
from benchmark.modalities.registry import MODALITIES, describe, get_modality, modality_names
from benchmark.models.presets_registry import PRESETS, get_preset, preset_names
from benchmark.report.writers import REPORT_WRITERS
from benchmark.suite.schema import choices_of, defaults_of
from benchmark.suite.shipped import shipped_suites, suite_description, suite_path


class ListWhat(str, Enum):
    suites = "suites"
    methods = "methods"
    towers = "towers"
    presets = "presets"  # the tower presets, as `towers`
    datasets = "datasets"
    formats = "formats"  # the dataset formats, as `datasets`
    modalities = "modalities"
    launchers = "launchers"
    reports = "reports"
    sequence_models = "sequence-models"
    objectives = "objectives"
    fusions = "fusions"


def _method(name: str) -> dict[str, Any]:
    from benchmark.methods.registry import METHODS, get_method_class  # imports torch (seconds): only when listing

    cls = get_method_class(name)
    return {
        "name": name,
        "description": cls.description,
        "options": defaults_of(cls.Options),
        "choices": {key: list(values) for key, values in choices_of(cls.Options).items()},
        "needs": list(cls.required_modalities),
        "uses_cache": cls.uses_cache,
        "origin": METHODS.origin(name),
    }


def _train_extension(what: ListWhat) -> list[dict[str, Any]]:
    """The sequence models or the objectives: each with its options' defaults and choices."""
    # Imported when listing: they import torch (seconds).
    from benchmark.train.objectives.registry import OBJECTIVES
    from benchmark.train.sequence_models.registry import SEQUENCE_MODELS

    registry: Any = SEQUENCE_MODELS if what == ListWhat.sequence_models else OBJECTIVES
    return [
        {
            "name": name,
            "description": entry.description,
            "options": defaults_of(entry.Options),
            "choices": {key: list(values) for key, values in choices_of(entry.Options).items()},
            "origin": registry.origin(name),
        }
        for name, entry in zip(registry.names(), registry.entries())
    ]


def _tower(name: str) -> dict[str, Any]:
    preset = get_preset(name)
    layers, hidden = preset.config["num_hidden_layers"], preset.config["hidden_size"]
    return {
        "name": name,
        "modality": preset.modality,
        "shape_of": preset.shape_of,
        "layers": layers,
        "hidden": hidden,
        "origin": PRESETS.origin(name),
    }


def _dataset_format(name: str) -> dict[str, Any]:
    data_format = get_format(name)
    return {
        "name": name,
        "needs_path": data_format.needs_path,
        "description": data_format.description,
        "options": data_format.options,
        "origin": FORMATS.origin(name),
    }


def _entries(what: ListWhat) -> list[dict[str, Any]]:
    if what == ListWhat.suites:
        return _shipped_entries()
    if what == ListWhat.methods:
        from benchmark.methods.registry import method_names  # imports torch (seconds): only when listing methods

        return [_method(name) for name in method_names()]
    if what in (ListWhat.sequence_models, ListWhat.objectives):
        return _train_extension(what)
    if what == ListWhat.fusions:
        from benchmark.methods.fusions.registry import DESCRIPTIONS, FUSIONS  # imports torch: only when listing

        return [
            {"name": name, "description": DESCRIPTIONS.get(name, ""), "origin": FUSIONS.origin(name)}
            for name in FUSIONS.names()
        ]
    if what in (ListWhat.towers, ListWhat.presets):
        return [_tower(name) for name in preset_names()]
    if what == ListWhat.modalities:
        return [{**describe(get_modality(name)), "origin": MODALITIES.origin(name)} for name in modality_names()]
    if what == ListWhat.launchers:
        return [
            {"name": name, "options": list(LAUNCHERS.get(name).option_keys), "origin": LAUNCHERS.origin(name)}
            for name in LAUNCHERS.names()
        ]
    if what == ListWhat.reports:
        return [
            {
                "name": w.name,
                "description": w.description,
                "writes_file": w.writes_file,
                "origin": REPORT_WRITERS.origin(w.name),
            }
            for w in REPORT_WRITERS.entries()
        ]
    return [_dataset_format(name) for name in format_names()]


@app.command("list")
def list_things(
    what: ListWhat = typer.Argument(
        ...,
        help="suites, methods, towers (presets), datasets (formats), modalities, launchers, reports, "
        "sequence-models, objectives or fusions",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List the shipped suites, methods, tower presets, dataset formats, modalities, launchers, report formats,
    sequence models, training objectives or fusions this install offers (plug-ins included).

    Example: mmbench list methods --json
    """
    try:
        entries = _entries(what)
    except MMBenchError as error:
        fail(error)
    lines = []
    for entry in entries:
        details = "  ".join(f"{k}={v}" for k, v in entry.items() if k != "name" and v not in ({}, [], None))
        lines.append(f"{entry['name']:<14} {details}")
    print_data(entries, as_json, lines)


@app.command()
def env(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Show GPU, driver, CUDA, NVML availability and package versions.

    Example: mmbench env --json
    """
    from benchmark.profile.environment import capture_environment  # imports torch (seconds): only for this command

    environment = capture_environment()
    if as_json:
        print_json(environment)
        return
    for key, value in environment.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        say(f"{key:<16} {value}")


suites_app = typer.Typer(no_args_is_help=True, help="The suites shipped with mmbench: run one by name.")
app.add_typer(suites_app, name="suites")


def _shipped_entries() -> list[dict[str, Any]]:
    return [
        {"name": name, "description": suite_description(path), "path": str(path)}
        for name, path in shipped_suites().items()
    ]


@suites_app.command("list")
def suites_list(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """The shipped suites, each with its description and file. `mmbench run NAME` runs one.

    Example: mmbench suites list
    """
    entries = _shipped_entries()
    print_data(entries, as_json, [f"{entry['name']:<18} {entry['description']}" for entry in entries])


@suites_app.command("show")
def suites_show(name: str = typer.Argument(..., help="a shipped suite's name (mmbench suites list)")) -> None:
    """Print a shipped suite's YAML: a start for your own (`mmbench suites show smoke > my-suite.yaml`).

    Example: mmbench suites show smoke
    """
    try:
        path = suite_path(name)
        text = path.read_text(encoding="utf-8")
    except MMBenchError as error:
        fail(error)
    except OSError as error:
        fail(MMBenchError(f"{name}: cannot read suite file: {error.strerror or error}"))
    sys.stdout.write(text)
