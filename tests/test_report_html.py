"""The HTML report in a real browser (headless Chromium, network off), and the PNG/SVG figures."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from benchmark.cli import app

WINDOW = (1400, 900)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return str(shutil.which(name))
    pytest.skip(reason="Chromium not installed (`make test` installs it with apt-get only when run as root)")


def browse(url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium(),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-logging=stderr",
        "--v=0",
        # No network: every host resolves to nothing and every proxied request goes nowhere.
        "--proxy-server=http://127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--force-device-scale-factor=1",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--virtual-time-budget=10000",
        *arguments,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory) -> Path:
    from tests.conftest import TINY_SUITE

    directory = tmp_path_factory.mktemp("report")
    suite = directory / "suite.yaml"
    suite.write_text(TINY_SUITE.format(methods="[fft, lora, iisan, iisan_cached]", max_steps=3, eval="true"))
    outcome = CliRunner().invoke(app, ["run", str(suite), "--results", str(directory / "results")])
    assert outcome.exit_code == 0, outcome.output
    return directory / "results"


@pytest.fixture(scope="module")
def report(smoke_results, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    outcome = CliRunner().invoke(app, ["report", "--results", str(smoke_results), "--format", "html", "-o", str(path)])
    assert outcome.exit_code == 0, outcome.output
    assert outcome.stdout.strip() == str(path)
    return path


def test_the_report_is_one_self_contained_file(report):
    text = report.read_text()
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", text)
    assert "<script src" not in text and "<link" not in text
    for section in (
        "Memory vs time",
        "Where the cost goes",
        "Where memory goes",
        "Validation NDCG@10 vs training time",
        "GFLOP/step",
        "Caveat marks",
        "Failures",
        "Provenance",
        "suite tiny",
        "<dt>hardware</dt><dd>CPU ",  # once "hardware —" for a CPU run
        "predicted/measured peak GiB",  # `mmbench estimate`'s prediction beside the measurement
        "predicted/measured step ms",
    ):
        assert section in text


def test_the_report_renders_offline_in_a_browser_and_sorts(report):
    page = browse(report.as_uri() + "#selftest", "--dump-dom")
    assert page.returncode == 0, page.stderr[-2000:]
    console = [line for line in page.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    found = re.search(r'<pre id="selftest">(.*?)</pre>', page.stdout, re.S)
    assert found, "the page's self-test did not run (scripts blocked or failing)"
    selftest = json.loads(found.group(1).replace("&quot;", '"'))
    plots = {plot["id"]: plot for plot in selftest["plots"]}
    assert set(plots) == {"tradeoff-0", "pareto-memory-0", "pareto-time-0", "tpme-0", "memory-0", "tta-0"}
    # Memory: trainable and frozen weights, gradients, optimizer state, activations stacked (no CUDA parts on a CPU);
    # time to accuracy: one line per run of each of the four methods.
    assert plots["memory-0"]["traces"] >= 5 and plots["tta-0"]["traces"] >= 4
    for plot in plots.values():
        assert plot["svg"] >= 1 and plot["traces"] >= 1 and plot["width"] > 300 and plot["height"] > 300, plot
        # Drawn inside its cell: a plot drawn while the page loaded once overflowed it, cut off on the right.
        assert 0 < plot["drawn_width"] <= plot["width"] + 1, plot
    sort = selftest["sort"]  # a click on "peak mem" sorts by it, a second click reverses
    assert sorted(sort["before"]) == sort["ascending"] and len(set(sort["ascending"])) > 1
    assert sort["descending"] == sorted(sort["before"], reverse=True)
    # At 1,400 px, who and how good are in view (they were scrolled off to the right), and the method column stays
    # put when the table scrolls sideways.
    board = selftest["board"]
    for header in ("method", "TPME", "TPME-FFT", "HR@10", "NDCG@10", "caveats"):
        assert 0 < board["ends"][header] <= board["viewport"] == WINDOW[0], (header, board)
    assert board["scrolled"] > 0 and abs(board["method_left"]) <= 1, board
    # One colour per method in every plot, the runs of a method sharing it and one legend entry.
    traces = selftest["traces"]
    colours = {name: colour for name, colour, _ in traces["tradeoff-0"]}
    assert len(colours) == 4 and len(set(colours.values())) == 4
    assert all(colours[name] == colour for name, colour, _ in traces["tta-0"])
    assert sorted(name for name, _, legend in traces["tta-0"] if legend) == sorted(colours)

    screenshot = report.parent / "page.png"
    shot = browse(report.as_uri(), f"--screenshot={screenshot}", f"--window-size={WINDOW[0]},{selftest['height']}")
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    pixels = np.asarray(Image.open(screenshot).convert("L"), dtype=np.float32)
    for plot in plots.values():
        top, left = int(plot["y"]), int(plot["x"])
        region = pixels[top : top + int(plot["height"]), left : left + int(plot["width"])]
        assert region.size and region.std() > 5 and (region < 200).mean() > 0.005, f"{plot['id']} looks blank"


@pytest.mark.parametrize("image_format", ["png", "svg"])
def test_one_figure_for_a_paper(smoke_results, tmp_path, image_format):
    for plot in ("tradeoff", "pareto-memory", "pareto-time", "tpme", "memory", "tta"):
        path = tmp_path / f"{plot}.{image_format}"
        outcome = CliRunner().invoke(
            app,
            ["report", "--results", str(smoke_results), "--format", image_format, "--plot", plot, "-o", str(path)],
        )
        assert outcome.exit_code == 0, outcome.output
        data = path.read_bytes()
        if image_format == "png":
            image = Image.open(io.BytesIO(data)).convert("L")
            assert image.size[0] >= 1000  # 3.5 in at 300 dpi
            assert np.asarray(image, dtype=np.float32).std() > 10
        else:
            assert b"<svg" in data and len(data) > 5000
    refused = CliRunner().invoke(app, ["report", "--results", str(smoke_results), "--format", "png", "-o", "x.png"])
    assert refused.exit_code == 2 and "--plot" in refused.stderr
    unknown = CliRunner().invoke(
        app, ["report", "--results", str(smoke_results), "--format", "svg", "--plot", "pie", "-o", str(tmp_path / "p")]
    )
    assert unknown.exit_code == 2 and "unknown plot 'pie'" in unknown.stderr


def test_html_without_plotly_is_one_clear_error(smoke_results, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    outcome = CliRunner().invoke(
        app, ["report", "--results", str(smoke_results), "--format", "html", "-o", str(tmp_path / "r.html")]
    )
    assert outcome.exit_code == 2 and "pip install 'mmbench[report]'" in outcome.stderr


def test_scaling_series_follow_the_number_of_modalities_or_the_tower_size():
    import polars as pl

    from benchmark.analysis.leaderboard import Leaderboard
    from benchmark.report.figures import scaling_series

    def member(method: str, towers: dict, total: int, epoch: float) -> dict:
        return {
            "method_label": method, "hardware": "NVIDIA H200", "precision": "bf16", "batch_size": 32,
            "towers": towers["name"], "config_json": json.dumps({"towers": towers}), "total_params": total,
            "epoch_s": epoch, "peak_mem_gib": epoch / 2, "test_ndcg@10": 0.1,
        }  # fmt: skip

    two = {"name": "t+i", "text": {"preset": "bert-base"}, "image": {"preset": "vit-base"}}
    four = {**two, "name": "t+i+v+a", "video": {"preset": "videomae-base"}, "audio": {"preset": "ast-base"}}
    small, large = {**two, "name": "qwen-0.5b"}, {**two, "name": "qwen-1.5b"}
    table = pl.DataFrame(
        [
            member("crossan", four, 400_000_000, 50.0),
            member("crossan", two, 200_000_000, 5.0),
            member("versa", large, 1_700_000_000, 9.0),
            member("versa", small, 600_000_000, 7.0),
            member("lora", two, 200_000_000, 9.0),  # one tower set: no series
        ]
    )
    board = Leaderboard(table, pl.DataFrame(), ["towers"], (0.45, 0.1, 0.45))
    series = {s.method: s for s in scaling_series(board)}
    assert set(series) == {"crossan", "versa"}
    assert series["crossan"].axis == "modalities" and [p["x"] for p in series["crossan"].points] == [2, 4]
    assert series["versa"].axis == "total parameters (M)"
    assert [p["towers"] for p in series["versa"].points] == ["qwen-0.5b", "qwen-1.5b"]
