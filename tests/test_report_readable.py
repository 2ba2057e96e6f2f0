"""Results a person can read (issue 24): a terminal table that fits, small figures with significant digits, intervals
that say what they rest on, one colour per method, labels that do not overlap, CPU provenance filled in."""

from __future__ import annotations

import io
import json
import re

import polars as pl
import pytest
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from benchmark.analysis.leaderboard import build_leaderboard
from benchmark.cli import app
from benchmark.report.columns import cost_rows, display_rows, resolve_columns, significant
from benchmark.report.render import Choice, render_markdown, render_table
from tests.test_tpme import rows

runner = CliRunner()
LABELS = ["fft", "lora", "adapter", "bitfit", "iisan", "iisan_cached", "iisan_versa_cached"]


def board_rows(repeats: int = 3, tflops: float = 0.000412, **extra: object) -> pl.DataFrame:
    """Seven methods, each run `repeats` times, with accuracy, curves and a small TFLOP/s."""
    entries = []
    for index, method in enumerate(LABELS):
        for repeat in range(repeats):
            entries.append(
                {
                    "method": method,
                    "epoch_s": 40.0 + 10 * index + repeat,
                    "trainable_params": 1000 * (index + 1) ** 3,
                    "trainable_pct": 0.5 * (index + 1),
                    "peak_mem_gib": 1.5 + index / 10 + repeat / 100,
                    "step_ms": [10.0 + index, 10.5 + index],
                    "step_ms_median": 10.0 + index + repeat / 10,
                    "tflops_per_s": tflops,
                    "test_hr@10": 0.1 + index / 100,
                    "test_ndcg@10": 0.05 + index / 200,
                    "valid_ndcg10_curve": [0.01, 0.02 + index / 100],
                    "valid_train_s_curve": [1.0, 2.0],
                    "repeat": repeat,
                    "hash": f"{method}-{repeat}-{extra.get('dataset', 'd')}",
                    **extra,
                }
            )
    return rows(entries)


def rendered(board, width: int, choice: Choice | None = None) -> str:
    console = Console(file=io.StringIO(), width=width, soft_wrap=True)
    render_table(board, console, choice)
    return console.file.getvalue()


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]


def test_the_terminal_table_fits_100_columns_and_breaks_no_value():
    # Before: every column at once, folded to fit ("iis/an", "0.2/4 M").
    board = build_leaderboard(board_rows())
    text = rendered(board, 100)
    lines = table_lines(text)
    assert lines and max(cell_len(line) for line in lines) <= 100
    shown = "\n".join(lines)
    for header in ("method", "TPME", "NDCG@10", "step", "peak mem", "trainable"):
        assert header in shown, header
    # Every value of a shown column sits whole on one line: no fragment of a method name or a figure.
    cells = {cell.strip() for line in lines if line.startswith("│") for cell in line.strip("│").split("│")}
    for row in display_rows(board):
        assert row["method"] in cells
        for header in ("TPME", "NDCG@10", "step ms", "peak mem GiB", "trainable params"):
            assert row[header] in cells, (header, row[header])
    assert "columns left out to fit 100 characters:" in text and "--wide" in text


def test_wide_shows_every_column_and_columns_picks_them():
    board = build_leaderboard(board_rows())
    wide = rendered(board, 100, Choice())
    assert "TPME-FFT" in wide and "amortised" in wide and "columns left out" not in wide
    assert all(row["method"] in wide for row in display_rows(board))  # wider than the terminal, never folded
    picked = rendered(board, 100, Choice(names=resolve_columns("ndcg@10,TFLOP/s")))
    assert "NDCG@10" in picked and "TFLOP/s" in picked and "TPME" not in picked.split("TPME weights")[0]
    with pytest.raises(ValueError, match="unknown column.*nope.*one of: method, variant, tpme"):
        resolve_columns("tpme,nope")
    markdown = render_markdown(board, Choice(names=["tpme"]))
    assert "| method | TPME |" in markdown and "where the cost goes" not in markdown.split("\n- ")[0]


def test_small_figures_keep_significant_digits():
    # Before: TFLOP/s with three fixed decimals, 0.000 for iisan_cached on a slow machine.
    assert significant(0.000412) == "0.000412" and significant(0.25) == "0.250" and significant(3.14159) == "3.14"
    assert significant(12345.6) == "12346" and significant(0.0) == "0" and significant(4.2e-9) == "4.20e-09"
    board = build_leaderboard(board_rows())
    assert {row["TFLOP/s"] for row in cost_rows(board)} == {"0.000412"}
    assert "| 0.000412 |" in render_markdown(board)


def test_an_interval_says_its_runs_and_needs_three():
    # Before: two runs printed "[40.00–41.00]", the two values themselves, unlabelled.
    two = build_leaderboard(board_rows(repeats=2))
    assert two.table["epoch_s_lo"].to_list() == [None] * len(LABELS)
    assert {row["epoch s 95% CI"] for row in display_rows(two)} == {"– (n=2)"}
    assert all("epoch s 95% CI" not in row for row in display_rows(build_leaderboard(board_rows(repeats=1))))
    three = build_leaderboard(board_rows(repeats=3))
    fft = next(row for row in display_rows(three) if row["method"] == "fft")
    assert fft["epoch s 95% CI"] == "40.0–42.0 (n=3)" and fft["epoch s"] == "41.0"
    assert "none (–) below 3 runs" in render_markdown(three)
    mixed = build_leaderboard(pl.concat([board_rows(repeats=3).head(3), board_rows(repeats=2).slice(2, 2)]))
    assert {row["method"]: row["epoch s 95% CI"] for row in display_rows(mixed)}["lora"] == "– (n=2)"


def test_the_report_command_fits_columns_and_refuses_unknown_ones(tmp_path):
    from benchmark.results.store import write_row

    for index, row in enumerate(board_rows().to_dicts()):
        row.pop("hardware", None)
        write_row(tmp_path / f"r{index}.parquet", row)
    narrow = runner.invoke(app, ["report", "--results", str(tmp_path)], env={"COLUMNS": "100"})
    assert narrow.exit_code == 0, narrow.output
    assert max(cell_len(line) for line in table_lines(narrow.stdout)) <= 100
    assert "iisan_versa_cached" in narrow.stdout
    picked = runner.invoke(app, ["report", "--results", str(tmp_path), "--columns", "tpme,tflops"])
    assert picked.exit_code == 0 and "TFLOP/s" in picked.stdout and "0.000412" in picked.stdout
    unknown = runner.invoke(app, ["report", "--results", str(tmp_path), "--columns", "tpme,speed"])
    assert unknown.exit_code == 2 and "Traceback" not in unknown.output
    assert re.fullmatch(r"error: --columns: unknown column\(s\) speed; one of: method, .*\n", unknown.stderr)
    csv = runner.invoke(app, ["report", "--results", str(tmp_path), "--format", "csv", "--wide"])
    assert csv.exit_code == 2 and "table or md" in csv.stderr


def group_of(board, label: str | None = None):
    from benchmark.report.figures import groups

    found = groups(board)
    return found[0] if label is None else next(g for g in found if g.label == label)


def test_one_colour_per_method_in_every_plot():
    # Before: the time-to-accuracy plot gave each repeat a new colour and a method's colour changed between panels.
    go = pytest.importorskip("plotly.graph_objects")
    from benchmark.report.figures import method_colours
    from benchmark.report.html_figures import pareto_figure, tradeoff_figure, tta_figure

    other = board_rows(repeats=2, dataset="e").filter(pl.col("method") != "fft")  # one method fewer in this group
    board = build_leaderboard(pl.concat([board_rows(repeats=2), other]))
    colours = method_colours(board)
    assert len(set(colours.values())) == len(LABELS)
    for group in (group_of(board, "d / t / bf16 / 32 / 10 / H100"), group_of(board, "e / t / bf16 / 32 / 10 / H100")):
        tta = tta_figure(go, group, colours)
        for trace in tta.data:
            assert trace.line.color == colours[trace.name]
        assert sorted(t.name for t in tta.data if t.showlegend) == sorted({m["method_label"] for m in group.members})
        assert len(tta.data) == 2 * len(group.members)  # two runs a method, one legend entry
        for trace in tradeoff_figure(go, group, colours).data:
            assert trace.marker.color == colours[trace.name]
        pareto = pareto_figure(go, group, "peak_mem_gib", "peak memory (GiB)", colours).data[0]
        assert list(pareto.marker.color) == [colours[name] for name in pareto.text]


def test_one_colour_per_method_in_a_paper_figure():
    pytest.importorskip("matplotlib")
    from benchmark.report import figures, static

    plt = static._pyplot()
    board = build_leaderboard(board_rows(repeats=2))
    colours = figures.method_colours(board)
    figure, axis = plt.subplots()
    static._tta(axis, group_of(board), colours)
    lines = axis.get_lines()
    assert len(lines) == 2 * len(LABELS)
    assert {line.get_label(): line.get_color() for line in lines if not line.get_label().startswith("_")} == colours
    plt.close(figure)


def overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_labels_of_nearly_equal_points_do_not_overlap():
    from benchmark.report.figures import place_labels

    anchors, sizes = [(100.0, 100.0), (100.5, 100.2), (101.0, 99.8)], [(28.0, 15.0), (49.0, 15.0), (42.0, 15.0)]
    offsets = place_labels(anchors, sizes, gap=8)
    boxes = [
        (x + dx - w / 2, y + dy - h / 2, x + dx + w / 2, y + dy + h / 2)
        for (x, y), (dx, dy), (w, h) in zip(anchors, offsets, sizes)
    ]
    assert not any(overlaps(boxes[i], boxes[j]) for i in range(3) for j in range(i + 1, 3)), boxes


def test_pareto_labels_and_baselines_do_not_overlap():
    # Before: "lora" and "lora-r4" printed on each other, and so did "popularity 0.048" and "random 0.041".
    go = pytest.importorskip("plotly.graph_objects")
    from benchmark.report.html_figures import CANVAS, pareto_figure

    entries = [
        {"method": "fft", "epoch_s": 40.0, "trainable_params": 100, "peak_mem_gib": 4.0, "test_ndcg@10": 0.09},
        {"method": "lora", "epoch_s": 10.0, "trainable_params": 10, "peak_mem_gib": 2.0, "test_ndcg@10": 0.0600},
        {
            "method": "lora",
            "method_label": "lora-r4",
            "epoch_s": 10.1,
            "trainable_params": 5,
            "peak_mem_gib": 2.01,
            "test_ndcg@10": 0.0601,
            "config": {"method": {"name": "lora", "label": "lora-r4", "r": 4}},
        },
    ]
    baselines = {"pop_test_hr@10": 0.1, "pop_test_ndcg@10": 0.048, "random_test_hr@10": 0.08}
    entries = [{**e, **baselines, "random_test_ndcg@10": 0.041} for e in entries]
    board = build_leaderboard(rows(entries))
    colours = {"fft": "#000", "lora": "#111", "lora-r4": "#222"}
    figure = pareto_figure(go, group_of(board), "peak_mem_gib", "peak memory (GiB)", colours)
    labels = [a for a in figure.layout.annotations if a.text in ("fft", "lora", "lora-r4")]
    assert len(labels) == 3
    # The label boxes, in pixels relative to one another: both points are one pixel apart on this canvas.
    from benchmark.report.figures import to_canvas

    points = {a.text: a for a in labels}
    order = ["fft", "lora", "lora-r4"]
    xs = to_canvas([points[n].x for n in order], False, CANVAS.width)
    ys = to_canvas([points[n].y for n in order], False, CANVAS.height, [0.048, 0.041])
    boxes = []
    for name, x, y in zip(order, xs, ys):
        cx, cy = x + points[name].ax, y - points[name].ay
        half = CANVAS.char_width * len(name) / 2
        boxes.append((cx - half, cy - CANVAS.line_height / 2, cx + half, cy + CANVAS.line_height / 2))
    assert not overlaps(boxes[1], boxes[2]), boxes
    baselines = {
        a.text.split()[0]: a for a in figure.layout.annotations if a.text.split()[0] in ("popularity", "random")
    }
    assert baselines["popularity"].yanchor == "bottom" and baselines["random"].yanchor == "top"


def test_the_provenance_of_a_cpu_run_names_its_processor():
    # Before: "hardware —" for a CPU run (the rows as read carry gpu_name and cpu, not hardware).
    pytest.importorskip("plotly")
    from benchmark.report.html import render_html

    frame = board_rows(repeats=1).with_columns(pl.lit(None, pl.String).alias("gpu_name"), pl.lit("x86_64").alias("cpu"))
    text = render_html(build_leaderboard(frame), frame)
    assert "<dt>hardware</dt><dd>CPU x86_64</dd>" in text
    assert "<dt>CUDA</dt><dd>none (CPU only)</dd>" in text


def test_json_keeps_every_interval_bound():
    board = build_leaderboard(board_rows(repeats=3))
    from benchmark.report.render import render_json

    data = json.loads(render_json(board))
    assert all(row["epoch_s_lo"] is not None and row["epoch_s_hi"] is not None for row in data["rows"])
