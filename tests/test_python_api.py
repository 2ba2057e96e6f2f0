"""The Python API: a suite as a file, a name or a dict in, polars DataFrames out."""

from __future__ import annotations

import re

import polars as pl
import pytest

from benchmark import api
from benchmark.errors import SuiteError
from benchmark.results.synthetic_store import write_store
from tests.conftest import ROOT


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.mark.slow
def test_the_readme_example_runs_and_returns_dataframes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(_readme_example(), "README.md (Python API)", "exec"), namespace)
    result = namespace["result"]
    assert isinstance(result, api.RunResult)
    assert result.statuses == {"synth/tiny/iisan/seed=0": "ok", "synth/tiny/lora/seed=0": "ok"}
    assert isinstance(result.rows, pl.DataFrame) and result.rows.height == 2
    assert sorted(result.leaderboard["method"].to_list()) == ["iisan", "lora"]
    assert result.failures.is_empty() and (tmp_path / "notebook-results").is_dir()
    printed = capsys.readouterr().out
    assert "{'synth/tiny/iisan/seed=0': 'ok', 'synth/tiny/lora/seed=0': 'ok'}" in printed
    assert "peak_process_gib" in printed  # the estimate's frame
    # Again: every cell is done, nothing runs, the leaderboard still reads the store.
    again = api.run(namespace["suite"], results="notebook-results", quiet=True)
    assert again.run_dir is None and again.rows.is_empty() and again.leaderboard.height == 2


def test_estimate_is_a_frame_of_one_row_per_cell(write_suite):
    frame = api.estimate(str(write_suite("[lora, bitfit]")), device="h100")
    assert frame["cell_id"].to_list() == ["synth/micro/lora/seed=0", "synth/micro/bitfit/seed=0"]
    assert frame["fits"].to_list() == ["yes", "yes"] and (frame["device"] == "H100 SXM").all()
    parts = [
        column for column in frame.columns if column.endswith("_gib") and not column.startswith(("peak", "device"))
    ]
    assert len(parts) == 10 and frame.select(parts).sum_horizontal().to_list() == pytest.approx(
        frame["peak_process_gib"].to_list()
    )


def test_a_bad_dict_suite_raises_every_problem_at_its_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suite = {"name": "bad", "datasets": [], "towers": [], "methods": ["lorra"], "train": {"batchsize": 8}}
    with pytest.raises(SuiteError) as raised:
        api.run(suite, results="r", quiet=True)
    problems = "\n".join(raised.value.problems)
    assert "bad.yaml:" in problems and "did you mean 'lora'" in problems and "batchsize" in problems
    assert not (tmp_path / "r").exists()  # nothing ran, nothing written


def test_rows_and_leaderboard_of_a_store_as_dataframes(tmp_path):
    write_store(tmp_path, 40, corrupt=0)
    rows = api.rows(tmp_path)
    assert isinstance(rows, pl.DataFrame) and rows.height == 40
    assert api.rows(tmp_path, status="ok").height == int((rows["status"] == "ok").sum())
    board = api.leaderboard(tmp_path, quiet=True)
    assert isinstance(board, pl.DataFrame) and board.height > 0 and "tpme" in board.columns


def test_overrides_as_a_mapping_reach_the_suite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SuiteError, match="train.batch_size"):
        api.run("smoke", results="r", overrides={"train.batch_size": 0}, quiet=True)
    assert not (tmp_path / "r").exists()
