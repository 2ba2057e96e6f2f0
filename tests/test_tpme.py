from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pyarrow as pa
import pytest

from benchmark.analysis.leaderboard import build_leaderboard, small_groups
from benchmark.analysis.tpme import Costs, parse_weights, tpme, tpme_fft


def test_tpme_hand_computed():
    # t: 400, 20, 100 -> norm 1, 0, 80/380; p: 100, 4, 1 -> 1, 3/99, 0; m: 47, 3, 10 -> 1, 0, 7/44
    costs = [Costs(400, 100, 47), Costs(20, 4, 3), Costs(100, 1, 10)]
    scores = tpme(costs)
    assert scores[0] == pytest.approx(1.0)
    assert scores[1] == pytest.approx(0.1 * 3 / 99)
    assert scores[2] == pytest.approx(0.45 * 80 / 380 + 0.45 * 7 / 44)


def test_tpme_fft_ratios_hand_computed():
    costs = [Costs(400, 100, 40), Costs(20, 4, 4)]
    assert tpme_fft(costs, costs[0]) == pytest.approx([1.0, 0.45 * 0.05 + 0.1 * 0.04 + 0.45 * 0.1])
    assert tpme_fft(costs, None) == [None, None]


def test_ties_and_single_method():
    assert tpme([Costs(5, 5, 5), Costs(5, 5, 5)]) == [0.0, 0.0]
    assert tpme([Costs(3, 2, 1)]) == [0.0]
    assert tpme([Costs(1, 7, 1), Costs(2, 7, 3)], (0.5, 0.2, 0.3)) == pytest.approx([0.0, 0.8])


def test_weights_parsing():
    assert parse_weights("0.45,0.1,0.45") == (0.45, 0.1, 0.45)
    for bad in ("0.5,0.5", "0.5,0.5,0.5", "a,b,c", "-0.1,0.6,0.5"):
        with pytest.raises(ValueError):
            parse_weights(bad)


def rows(entries):
    """Result rows as read_results returns them; `config` (extra config keys) and `seed` define identity."""
    from benchmark.results.schema import empty_row

    base = {
        "dataset": "d",
        "towers": "t",
        "precision": "bf16",
        "batch_size": 32,
        "max_seq_len": 10,
        "gpu_name": "H100",
        "cpu": "x",
        "status": "ok",
        "error": None,
        "peak_mem_source": "nvml_process",
        "epoch_kind": "measured",
        "seed": 0,
        "repeat": 0,
        "warnings": [],
    }
    frame = []
    for i, entry in enumerate(entries):
        row = {
            **empty_row(),
            **base,
            "cell_id": f"c{i}",
            "end_time": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=i),
            **entry,
        }
        row["method_label"] = row.get("method_label") or row["method"]
        config = {
            "method": {"name": row["method"], "label": row["method_label"]},
            "dataset": {"name": row["dataset"]},
            "train": {"batch_size": row["batch_size"], "precision": row["precision"]},
            **row.pop("config", {}),
            "seed": row["seed"],
            "repeat": row["repeat"],
        }
        row["config_json"] = json.dumps(config, sort_keys=True)
        row["config_hash"] = row.pop("hash", None) or f"{i}"
        row.pop("config_id", None)
        frame.append(row)
    from benchmark.results.schema import RESULT_SCHEMA

    return pl.from_arrow(pa.Table.from_pylist(frame, schema=RESULT_SCHEMA))


def test_leaderboard_groups_seeds_and_reruns():
    frame = rows(
        [
            {"method": "fft", "epoch_s": 400.0, "trainable_params": 100, "peak_mem_gib": 40.0},
            {"method": "lora", "epoch_s": 100.0, "trainable_params": 1, "peak_mem_gib": 20.0, "hash": "lora-s0"},
            {
                "method": "lora",
                "epoch_s": 120.0,
                "trainable_params": 1,
                "peak_mem_gib": 20.0,
                "hash": "lora-s1",
                "seed": 1,
            },
            {
                "method": "lora",
                "epoch_s": 80.0,
                "trainable_params": 1,
                "peak_mem_gib": 20.0,
                "hash": "lora-s1",
                "seed": 1,
            },  # a rerun replaces
            {"method": "iisan", "epoch_s": 20.0, "trainable_params": 4, "peak_mem_gib": 4.0},
            {
                "method": "fft",
                "epoch_s": 1.0,
                "trainable_params": 100,
                "peak_mem_gib": 1.0,
                "gpu_name": "A100",
            },  # other hardware
            {"method": "adapter", "status": "oom", "error": "CUDA out of memory"},
        ]
    )
    board = build_leaderboard(frame)
    h100 = board.table.filter(pl.col("hardware") == "H100")
    lora = h100.filter(pl.col("method") == "lora").row(0, named=True)
    assert lora["seeds"] == 2 and lora["epoch_s"] == pytest.approx(90.0)  # median of 100 and the rerun's 80
    assert lora["tpme"] == pytest.approx(0.45 * 70 / 380 + 0.45 * 16 / 36)
    assert lora["tpme_fft"] == pytest.approx(0.45 * 90 / 400 + 0.1 * 0.01 + 0.45 * 0.5)
    assert h100["group_size"].to_list() == [3, 3, 3]
    assert lora["epoch_vs_fft"] == pytest.approx(90 / 400) and lora["mem_vs_fft"] == pytest.approx(0.5)
    assert h100["method"].to_list() == ["iisan", "lora", "fft"]  # sorted by TPME
    a100 = board.table.filter(pl.col("hardware") == "A100").row(0, named=True)
    assert a100["tpme"] == 0.0 and a100["group_size"] == 1
    assert any("A100" in group for group in small_groups(board))
    assert board.failures["status"].to_list() == ["oom"]
    everything = build_leaderboard(frame, all_runs=True)
    lora_runs = everything.table.filter(pl.col("method") == "lora").row(0, named=True)
    assert lora_runs["seeds"] == 2 and lora_runs["runs"] == 3  # seeds counts distinct seeds


def test_group_by_unknown_column_is_an_error():
    with pytest.raises(ValueError, match="unknown column"):
        build_leaderboard(
            rows([{"method": "fft", "epoch_s": 1.0, "trainable_params": 1, "peak_mem_gib": 1.0}]), ["nope"]
        )
