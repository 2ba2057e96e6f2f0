"""The import contracts of pyproject.toml (`make lint` runs them too): no module imports itself back through others,
the configuration types import nothing above them, and every package imports only the layers below it. Issue 25's
symptom was three such circles, each closed by an import inside a function, and ten imports from a lower layer up
to a higher one (data -> formats, models -> modalities, results -> launch, ...)."""

from __future__ import annotations

from pathlib import Path

import grimp
from importlinter.cli import lint_imports
from importlinter.contracts.layers import LayersContract

from tests.import_contracts import _circles

try:
    import tomllib
except ImportError:  # Python 3.10: import-linter brings tomli, the same parser
    import tomli as tomllib  # type: ignore[no-redef]

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


def _layers_contract() -> LayersContract:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [contract["layers"] for contract in config["contracts"] if contract["type"] == "layers"]
    return LayersContract(
        name="layers", session_options={"root_packages": ["benchmark"]}, contract_options={"layers": layers}
    )


def _package_graph() -> grimp.ImportGraph:
    return grimp.build_graph("benchmark", exclude_type_checking_imports=True, cache_dir=None)


def test_an_import_from_a_lower_layer_up_to_a_higher_one_breaks_the_layers():
    """The back arrows issue 25 counted, put back one at a time into today's graph: each breaks the contract."""
    contract = _layers_contract()
    assert contract.check(_package_graph(), verbose=False).kept
    for importer, imported in [
        ("benchmark.data.raw", "benchmark.modalities.registry"),
        ("benchmark.models.towers", "benchmark.train.loop"),
        ("benchmark.suite.config", "benchmark.methods.registry"),
        ("benchmark.results.compact_store", "benchmark.launch.local"),
        ("benchmark.profile.training", "benchmark.analysis.leaderboard"),
    ]:
        broken = _package_graph()
        broken.add_import(importer=importer, imported=imported, line_number=1, line_contents=f"import {imported}")
        check = contract.check(broken, verbose=False)
        assert not check.kept, (importer, imported)
