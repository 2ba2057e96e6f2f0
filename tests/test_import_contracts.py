"""The import contracts of pyproject.toml (`make lint` runs them too): no module imports itself back through others,
the configuration types import nothing above them, nothing imports the command line. Issue 25's symptom was three
such circles, each closed by an import inside a function."""

from __future__ import annotations

from pathlib import Path

import grimp
from importlinter.cli import lint_imports

from tests.import_contracts import _circles

ROOT = Path(__file__).resolve().parents[1]


def _graph(*imports: tuple[str, str]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for importer, imported in imports:
        graph.add_import(importer=importer, imported=imported)
    return graph


def test_a_circle_through_other_modules_is_found_and_a_chain_is_not():
    chain = _graph(("p.a", "p.b"), ("p.b", "p.c"), ("p.a", "p.c"))
    assert _circles(chain) == []
    # The shape of the circle the suite's configuration types closed: config -> registry -> reader -> config.
    circle = _graph(("p.config", "p.registry"), ("p.registry", "p.reader"), ("p.reader", "p.config"), ("p.cli", "p.a"))
    assert _circles(circle) == [["p.config", "p.reader", "p.registry"]]
    two = _graph(("p.read", "p.compaction"), ("p.compaction", "p.read"), ("p.x", "p.y"), ("p.y", "p.x"))
    assert _circles(two) == [["p.compaction", "p.read"], ["p.x", "p.y"]]


def test_the_package_keeps_its_import_contracts(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out
