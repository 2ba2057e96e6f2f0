"""The generic registry and the launchers on it: a launcher is registered by name (a plug-in adds one), an unknown
name is one error naming the closest known one, never a silent default (issue 25: launchers were an if-chain with
their names repeated in the configuration and the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.errors import UnknownNameError
from benchmark.launch.launchers import LAUNCHERS, LaunchRequest, LocalLauncher, make_launcher
from benchmark.plan.loader import load_suite
from benchmark.registry import Registry


def test_a_registry_refuses_a_name_twice_and_suggests_the_closest():
    registry: Registry[int] = Registry("widget")
    registry.register("alpha", 1)
    registry.register("alpha", 1)  # the same entry again (a module imported twice) is fine
    with pytest.raises(ValueError, match="widget name 'alpha' registered twice"):
        registry.register("alpha", 2)
    with pytest.raises(UnknownNameError, match=r"unknown widget 'alpah' \(did you mean 'alpha'\? known: alpha\)"):
        registry.get("alpah")
    assert registry.names() == ["alpha"]


@dataclass(frozen=True)
class EchoLauncher:
    """A launcher as a plug-in would add one."""

    request: LaunchRequest
    name: str = "echo"

    @classmethod
    def create(cls, request: LaunchRequest) -> EchoLauncher:
        return cls(request)

    def run(self, cells, run_dir, run_id, console, manifest):  # pragma: no cover - never run here
        return []


@pytest.fixture
def echo_registered(monkeypatch):
    monkeypatch.setattr(LAUNCHERS, "_entries", {**LAUNCHERS._entries})  # undone after the test
    LAUNCHERS.register("echo", EchoLauncher)


def test_a_registered_launcher_is_chosen_by_name_and_the_suite_may_name_it(echo_registered, write_suite):
    suite = load_suite(write_suite(text=None))
    assert isinstance(make_launcher(LaunchRequest(suite.run), "local"), LocalLauncher)
    chosen = make_launcher(LaunchRequest(suite.run, lock=False), "echo")
    assert isinstance(chosen, EchoLauncher) and chosen.request.lock is False
    path = write_suite()
    path.write_text(path.read_text() + "run: {launcher: echo}\n")
    assert load_suite(path).run.launcher == "echo"


def test_an_unknown_launcher_is_one_error_in_the_suite_and_on_the_command_line(write_suite):
    path = write_suite()
    path.write_text(path.read_text() + "run: {launcher: locl}\n")
    outcome = CliRunner().invoke(app, ["validate", str(path)])
    assert outcome.exit_code == 2
    assert "run.launcher: unknown value 'locl' (did you mean 'local'?" in outcome.stderr
    outcome = CliRunner().invoke(app, ["run", str(write_suite()), "--launcher", "pol", "--dry-run"])
    assert outcome.exit_code == 2 and "unknown launcher 'pol' (did you mean 'pool'?" in outcome.stderr


@pytest.mark.parametrize(
    ("lookup", "typo", "expected"),
    [
        ("benchmark.methods.registry:get_method_class", "lroa", "unknown method 'lroa' (did you mean 'lora'?"),
        ("benchmark.formats.registry:get_format", "recbol", "unknown dataset format 'recbol' (did you mean 'recbole'?"),
        ("benchmark.modalities.registry:get_modality", "imag", "unknown modality 'imag' (did you mean 'image'?"),
    ],
)
def test_every_registry_on_the_generic_type_suggests_the_closest_name(lookup, typo, expected):
    import importlib

    module, function = lookup.split(":")
    with pytest.raises(UnknownNameError) as raised:
        getattr(importlib.import_module(module), function)(typo)
    assert str(raised.value).startswith(expected)
