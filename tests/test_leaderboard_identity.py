"""A leaderboard row is one configuration: never merged with another, with its spread, full cost and caveats."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from benchmark.analysis.intervals import bootstrap_median_interval
from benchmark.analysis.leaderboard import GroupByError, build_leaderboard
from benchmark.plan.loader import load_suite
from benchmark.report.columns import display_rows
from benchmark.report.render import render_csv, render_json, render_markdown
from benchmark.suite.matrix import config_id, expand_cells
from tests.test_tpme import rows

FFT = {"method": "fft", "trainable_params": 100, "peak_mem_gib": 40.0}
LORA = {"method": "lora", "trainable_params": 1, "peak_mem_gib": 20.0}
IISAN = {"method": "iisan_cached", "trainable_params": 4, "peak_mem_gib": 3.0}


def by_label(board, method):
    return board.table.filter(pl.col("method") == method)


def test_configurations_differing_only_in_lr_are_two_rows_with_their_variant():
    # Before: two FFT cells differing only in lr became one row "seeds 2".
    frame = rows(
        [
            {**FFT, "epoch_s": 400.0, "config": {"train": {"lr": 0.001}}},
            {**FFT, "epoch_s": 300.0, "config": {"train": {"lr": 0.0001}}},
            {**LORA, "epoch_s": 100.0, "config": {"train": {"lr": 0.001}}},
        ]
    )
    board = build_leaderboard(frame)
    fft = by_label(board, "fft").sort("epoch_s")
    assert fft.height == 2 and fft["seeds"].to_list() == [1, 1] and fft["epoch_s"].to_list() == [300.0, 400.0]
    assert sorted(fft["variant"].to_list()) == ["train.lr=0.0001", "train.lr=0.001"]
    # LoRA is compared to the FFT run with the same lr, not the other.
    lora = by_label(board, "lora").row(0, named=True)
    assert lora["epoch_vs_fft"] == pytest.approx(100 / 400)
    assert lora["fft_anchor"] == fft.filter(pl.col("epoch_s") == 400.0)["config_id"][0]


def test_group_by_never_merges_batch_sizes_or_precisions():
    frame = rows(
        [
            {**LORA, "epoch_s": 10.0, "batch_size": 8},
            {**LORA, "epoch_s": 20.0, "batch_size": 16},
            {**LORA, "epoch_s": 30.0, "precision": "fp16"},
        ]
    )
    board = build_leaderboard(frame, ["dataset"])
    assert board.table.height == 3 and sorted(board.table["epoch_s"].to_list()) == [10.0, 20.0, 30.0]
    variants = set(board.table["variant"].to_list())
    assert any("train.batch_size=8" in v for v in variants) and any("train.precision=fp16" in v for v in variants)


def test_group_by_method_works_and_bad_columns_are_clear():
    frame = rows([{**FFT, "epoch_s": 4.0}, {**LORA, "epoch_s": 1.0}, {**LORA, "epoch_s": 2.0, "seed": 1}])
    board = build_leaderboard(frame, ["method"])  # crashed with a polars DuplicateError before
    assert sorted(board.table["method"].to_list()) == ["fft", "lora"]
    assert by_label(board, "lora").row(0, named=True)["seeds"] == 2
    with pytest.raises(GroupByError, match="unknown column"):
        build_leaderboard(frame, ["nope"])
    with pytest.raises(GroupByError, match="varies between the runs of one configuration"):
        build_leaderboard(frame, ["seed"])
    with pytest.raises(GroupByError, match="list of samples"):
        build_leaderboard(frame, ["step_ms"])


def test_repeats_expand_to_distinct_cells_of_one_configuration(write_suite):
    suite = load_suite(write_suite(methods="[lora]"), repeats=3)
    cells = expand_cells(suite)
    assert [c.cell_id for c in cells] == [f"synth/micro/lora/seed=0/repeat={r}" for r in range(3)]
    assert len({c.config_hash for c in cells}) == 3 and len({config_id(c.config) for c in cells}) == 1
    single = expand_cells(load_suite(write_suite(methods="[lora]")))
    assert single[0].cell_id == "synth/micro/lora/seed=0" and single[0].config.repeat == 0


def test_bootstrap_interval_of_the_median():
    assert bootstrap_median_interval([5.0]) == (None, None) and bootstrap_median_interval(None) == (None, None)
    low, high = bootstrap_median_interval([1.0, 2.0, 3.0, 4.0, 100.0])
    assert 1.0 <= low <= 3.0 <= high <= 100.0
    assert bootstrap_median_interval([1.0, 2.0, 3.0, 4.0, 100.0]) == (low, high)  # seeded: the same every time
    assert bootstrap_median_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)


def test_report_shows_interval_runs_and_noisy_flag():
    steady, noisy = [10.0, 10.1, 9.9, 10.0], [10.0, 20.0, 5.0, 10.0]
    frame = rows(
        [
            {**FFT, "epoch_s": 40.0, "step_ms": steady, "repeat": 0},
            {**FFT, "epoch_s": 44.0, "step_ms": steady, "repeat": 1},
            {**FFT, "epoch_s": 42.0, "step_ms": steady, "repeat": 2},
            {**LORA, "epoch_s": 10.0, "step_ms": noisy},
        ]
    )
    board = build_leaderboard(frame)
    fft = by_label(board, "fft").row(0, named=True)
    assert fft["runs"] == 3 and fft["repeats"] == 3 and fft["seeds"] == 1 and fft["epoch_s"] == 42.0
    assert fft["epoch_s_lo"] == 40.0 and fft["epoch_s_hi"] == 44.0
    assert "noisy" not in fft["caveats"] and "noisy" in by_label(board, "lora").row(0, named=True)["caveats"]
    shown = {row["method"]: row for row in display_rows(board)}
    assert shown["fft"]["epoch s"] == "42.0" and shown["fft"]["epoch s 95% CI"] == "40.0–44.0 (n=3)"
    assert shown["fft"]["runs"] == "3 (1x3)"
    assert "noisy" in shown["lora"]["caveats"]
    assert "percentile bootstrap" in render_markdown(board)


def test_amortised_tpme_and_sort():
    frame = rows(
        [
            {**FFT, "epoch_s": 400.0, "epoch_amortized_s": 400.0},
            {**LORA, "epoch_s": 100.0, "epoch_amortized_s": 100.0},
            {**IISAN, "epoch_s": 20.0, "epoch_amortized_s": 500.0, "cache_build_s": 960.0, "cache_origin": "built"},
        ]
    )
    board = build_leaderboard(frame, sort="tpme_amortized")
    assert board.table["method"].to_list() == ["lora", "iisan_cached", "fft"]
    iisan = by_label(board, "iisan_cached").row(0, named=True)
    assert iisan["tpme"] == pytest.approx(0.1 * 3 / 99)  # per-epoch TPME: the paper's, cache build not counted
    assert iisan["tpme_amortized"] == pytest.approx(0.45 * 1.0 + 0.1 * 3 / 99)  # the slowest once the build counts
    assert build_leaderboard(frame).table["method"].to_list()[0] == "iisan_cached"
    with pytest.raises(GroupByError, match="--sort"):
        build_leaderboard(frame, sort="speed")


def test_mixed_memory_sources_get_no_tpme_and_say_so_everywhere():
    frame = rows(
        [
            {**FFT, "epoch_s": 400.0},
            {**LORA, "epoch_s": 100.0, "peak_mem_source": "cpu_rss"},
            {**IISAN, "epoch_s": 20.0, "epoch_kind": "estimated"},
        ]
    )
    board = build_leaderboard(frame)
    assert board.table["tpme"].to_list() == [None, None, None] and board.table["tpme_fft"].to_list() == [
        None,
        None,
        None,
    ]
    assert all("mixed-memory" in caveats and "mixed-epoch" in caveats for caveats in board.table["caveats"].to_list())
    assert "caveat mixed-memory" in render_markdown(board)
    assert "mixed-memory" in render_csv(board)
    assert "mixed-memory" in json.loads(render_json(board))["caveats"]


def test_fft_oom_or_missing_is_named_instead_of_a_blank():
    with_oom = rows(
        [
            {**LORA, "epoch_s": 1.0},
            {**IISAN, "epoch_s": 0.5},
            {"method": "fft", "status": "oom", "error": "CUDA out of memory"},
        ]
    )
    shown = display_rows(build_leaderboard(with_oom))
    assert {row["TPME-FFT"] for row in shown} == {"FFT oom"} and {row["time/FFT"] for row in shown} == {"FFT oom"}
    without = display_rows(build_leaderboard(rows([{**LORA, "epoch_s": 1.0}])))
    assert without[0]["mem/FFT"] == "no FFT"


def test_contended_unlocked_and_foreign_cache_rows_are_marked():
    frame = rows(
        [
            {**FFT, "epoch_s": 4.0, "contended": True},
            {**LORA, "epoch_s": 1.0, "device_lock": "disabled"},
            {**IISAN, "epoch_s": 0.5, "cache_origin": "reused_other_hardware", "warnings": ["cache built elsewhere"]},
        ]
    )
    caveats = dict(zip(*build_leaderboard(frame).table.select("method", "caveats").to_dict(as_series=False).values()))
    assert "contended" in caveats["fft"] and "unlocked" in caveats["lora"]
    assert {"cache-foreign", "warnings"} <= set(caveats["iisan_cached"])


runner = CliRunner()


def test_report_cli_group_by_and_sort_errors(tmp_path):
    from benchmark.cli import app
    from benchmark.results.store import write_row

    for index, row in enumerate(
        rows([{**FFT, "epoch_s": 4.0}, {**LORA, "epoch_s": 1.0}, {**LORA, "epoch_s": 1.1, "seed": 1}]).to_dicts()
    ):
        row.pop("hardware", None)
        write_row(tmp_path / f"r{index}.parquet", row)
    grouped = runner.invoke(app, ["report", "--results", str(tmp_path), "--group-by", "method", "--format", "json"])
    assert grouped.exit_code == 0, grouped.output
    assert {row["method"] for row in json.loads(grouped.stdout)["rows"]} == {"fft", "lora"}
    bad = runner.invoke(app, ["report", "--results", str(tmp_path), "--group-by", "seed"])
    assert bad.exit_code == 2 and "varies between the runs" in bad.stderr and "Traceback" not in bad.output
    unsorted = runner.invoke(app, ["report", "--results", str(tmp_path), "--sort", "nope"])
    assert unsorted.exit_code == 2 and "--sort must be one of" in unsorted.stderr


@pytest.mark.parametrize("n", [2, 3, 8, 51])
def test_the_order_statistic_bootstrap_matches_whole_resamples(n):
    # The interval draws only the middle order statistics of each resample; whole resamples must agree.
    import numpy as np

    values = np.random.default_rng(n).lognormal(size=n)
    generator = np.random.default_rng(1)
    whole = np.median(values[generator.integers(0, n, size=(40_000, n))], axis=1)
    low, high = bootstrap_median_interval(list(values), resamples=40_000)
    assert low == pytest.approx(np.percentile(whole, 2.5), rel=0.03)
    assert high == pytest.approx(np.percentile(whole, 97.5), rel=0.03)


def test_a_group_that_mixes_library_versions_says_so():
    old = json.dumps({"torch": "2.11.0", "transformers": "4.48.3", "peft": "0.13.2"})
    new = json.dumps({"torch": "2.11.0", "transformers": "5.17.0", "peft": "0.21.0"})
    same = rows([{**FFT, "epoch_s": 4.0, "package_versions": new}, {**LORA, "epoch_s": 1.0, "package_versions": new}])
    assert all("mixed-versions" not in c for c in build_leaderboard(same).table["caveats"].to_list())
    mixed = rows([{**FFT, "epoch_s": 4.0, "package_versions": old}, {**LORA, "epoch_s": 1.0, "package_versions": new}])
    board = build_leaderboard(mixed)
    assert all("mixed-versions" in c for c in board.table["caveats"].to_list())
    assert "random-weight towers differ across transformers versions" in render_markdown(board)
