"""The review data (pure) and the HTML report, on synthetic groups written through the store.

The CLI end to end, on groups made by real `polytune run`s, is in test_review_cli.py.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from synthetic_groups import make_group, make_hyperband_group

from polytune.cli import main
from polytune.experiment import Experiment, Objective, Status
from polytune.review import (
    ParamSpec,
    best_so_far_at,
    compare_groups,
    experiment_detail,
    export_columns,
    export_row,
    fanova_importance,
    fanova_trees,
    group_comparison,
    iso,
    metric_history,
    param_specs,
    rank_of,
    rung_points,
    scaled_sparkline,
    time_spent,
)

LOSS = Objective("loss", "minimize")
needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="matplotlib is not installed (pip install -e '.[test]')",
)


def exp(
    i: int, loss: float | None = None, status: Status = Status.SUCCEEDED, **kw: Any
) -> Experiment:
    fields: dict[str, Any] = {
        "id": i,
        "config": kw.pop("config", {"x": i}),
        "params": kw.pop("params", {"x": i}),
        "status": status,
        "metrics": {} if loss is None else {"loss": loss},
    }
    fields.update(kw)
    return Experiment(**fields)


# ----------------------------------------------------------------------------------------
# pure data
# ----------------------------------------------------------------------------------------


def test_iso_is_utc_with_milliseconds() -> None:
    assert iso(0.0) == "1970-01-01T00:00:00.000Z"
    assert iso(1.2345) == "1970-01-01T00:00:01.234Z"
    assert iso(None) is None and iso(float("nan")) is None


def test_time_spent_counts_every_attempt_once() -> None:
    attempts = [
        {"attempt": 1, "status": "failed", "started_at": 10.0, "ended_at": 13.0},
        {"attempt": 2, "status": "succeeded", "started_at": 20.0, "ended_at": 25.0},
    ]
    e = exp(1, 1.0, attempt=2, created_at=9.0, started_at=20.0, ended_at=25.0, attempts=attempts)
    assert time_spent(e, now=100.0) == {"queued": 1.0, "duration": 5.0, "total": 8.0}
    running = exp(
        2, status=Status.RUNNING, attempt=2, created_at=0.0, started_at=20.0, attempts=attempts[:1]
    )
    assert time_spent(running, now=26.0) == {"queued": 10.0, "duration": 6.0, "total": 9.0}
    assert time_spent(exp(3, status=Status.CREATED), now=5.0) == {
        "queued": None,
        "duration": None,
        "total": None,
    }


def test_metric_history_from_records_and_from_the_record() -> None:
    records = [
        {"step": 1, "loss": 3.0, "acc": 0.1},
        {"step": 2, "loss": 1.0},
        {"step": 5, "loss": 2.0},
    ]
    h = metric_history(records, exp(1, 2.0), LOSS)
    assert h["loss"] == {
        "count": 3,
        "first": 3.0,
        "last": 2.0,
        "min": 1.0,
        "max": 3.0,
        "min_step": 2,
        "max_step": 1,
        "last_step": 5,
        "best": 1.0,
    }
    assert h["acc"]["count"] == 1 and "best" not in h["acc"]
    # no metrics file: the summary stored in the record
    e = exp(1, 2.0, metrics_min={"loss": 1.0}, metrics_max={"loss": 4.0}, last_step=7)
    fallback = metric_history([], e, LOSS)["loss"]
    assert fallback["last"] == 2.0 and fallback["best"] == 1.0 and fallback["last_step"] == 7


def test_rank_and_detail() -> None:
    exps = [exp(1, 3.0), exp(2, 1.0), exp(3, None, Status.FAILED), exp(4, 2.0)]
    assert rank_of(exps[3], exps, LOSS) == {"rank": 2, "of": 3}
    assert rank_of(exps[2], exps, LOSS) is None
    detail = experiment_detail(
        exps[1],
        LOSS,
        group="g",
        records=[{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}],
        stderr_tail=["warning"],
        paths={"stdout": "/x/stdout.log"},
        rank={"rank": 1, "of": 3},
        lost=False,
        now=0.0,
    )
    assert detail["value"] == 1.0 and detail["objective_curve"] == [2.0, 1.0]
    assert detail["stderr_tail"] == ["warning"] and detail["rank"] == {"rank": 1, "of": 3}
    json.dumps(detail)  # plain JSON


def test_export_rows_are_flat_and_aligned() -> None:
    a = exp(
        1,
        2.0,
        params={"x": 1, "layers": [64, 32]},
        metrics_min={"loss": 1.5},
        metrics_max={"loss": 4.0},
        meta={"bracket": 1},
        created_at=0.0,
        started_at=1.0,
        ended_at=3.0,
    )
    b = exp(2, None, Status.FAILED, reason="exit code 3", exit_code=3)
    rows = [export_row(a, LOSS, now=10.0), export_row(b, LOSS, now=10.0)]
    assert rows[0]["value"] == 2.0 and rows[0]["best_value"] == 1.5
    assert rows[0]["params.layers"] == "[64, 32]"  # one CSV cell
    assert (
        rows[0]["duration_seconds"] == 2.0 and rows[0]["started_at"] == "1970-01-01T00:00:01.000Z"
    )
    assert rows[0]["meta.bracket"] == 1 and rows[0]["metrics.loss.min"] == 1.5
    assert rows[1]["value"] is None and rows[1]["reason"] == "exit code 3"
    columns = export_columns(rows)
    assert columns.index("id") == 0 and "metrics.loss" in columns and "params.layers" in columns
    # a group without a metric has no value columns
    assert "value" not in export_row(a, None, now=0.0)


def test_compare_groups_picks_the_best_and_flags_other_metrics() -> None:
    g1 = group_comparison(
        {"name": "a", "algorithm": "grid"},
        [exp(1, 3.0, started_at=0.0, ended_at=2.0), exp(2, 1.0, started_at=2.0, ended_at=3.0)],
        LOSS,
        state="done",
        now=10.0,
    )
    g2 = group_comparison(
        {"name": "b", "algorithm": "hyperband"},
        [exp(1, 2.0, meta={"resource": 3}, started_at=0.0, ended_at=1.0)],
        LOSS,
        state="done",
        now=10.0,
    )
    assert g1["best"]["id"] == 2 and g1["compute_seconds"] == 3.0 and g1["wall_seconds"] == 3.0
    assert g1["best_so_far"] == [3.0, 1.0] and g1["resource_spent"] is None
    assert g2["resource_spent"] == 3.0
    doc = compare_groups([g1, g2])
    assert doc["same_metric"] and doc["best_group"] == "a"
    assert doc["checkpoints"] == [1, 2]
    assert doc["best_so_far_at"]["b"] == {"1": 2.0, "2": None}
    other = group_comparison(
        {"name": "c"}, [exp(1, 0.5)], Objective("acc", "maximize"), state="done", now=0.0
    )
    doc = compare_groups([g1, other])
    assert not doc["same_metric"] and doc["best_group"] is None and doc["notes"]
    json.dumps(doc)


def test_checkpoints_and_scaled_sparkline() -> None:
    curve = [5.0, 4.0, 4.0, 2.0]
    assert best_so_far_at(curve, [1, 4, 10]) == {1: 5.0, 4: 2.0, 10: None}
    doc = compare_groups(
        [{"name": "a", "metric": None, "best": None, "best_so_far": list(range(250))}]
    )
    assert doc["checkpoints"] == [1, 5, 10, 20, 50, 100, 200, 250]
    assert scaled_sparkline([0.0, 10.0], 0.0, 10.0) == "▁█"
    assert scaled_sparkline([5.0], 0.0, 10.0) == "▄"
    assert len(scaled_sparkline(list(range(100)), 0, 99, width=24)) == 24


def test_param_specs_read_the_space_and_skip_constants() -> None:
    info = {
        "config": {
            "space": [
                {
                    "name": "lr",
                    "method": "loguniform",
                    "categorical": False,
                    "bounds": [1e-4, 1e-1],
                },
                {
                    "name": "act",
                    "method": "values",
                    "categorical": True,
                    "values": ["relu", "tanh", "elu"],
                },
                {"name": "const", "method": "values", "categorical": False, "values": [1]},
            ]
        }
    }
    exps = [
        exp(1, config={"lr": 1e-3, "act": "relu", "const": 1, "free": 1.0}),
        exp(2, config={"lr": 1e-2, "act": "tanh", "const": 1, "free": 500.0}),
    ]
    specs = {s.name: s for s in param_specs(info, exps)}
    assert set(specs) == {"lr", "act", "free"}
    assert specs["lr"].log and specs["lr"].domain() == pytest.approx((-4.0, -1.0))
    assert specs["act"].values == ("relu", "tanh", "elu") and specs["act"].domain() == (-0.5, 2.5)
    assert specs["act"].encode("elu") == 2.0 and specs["act"].encode("nope") is None
    assert specs["free"].log  # no declared method: observed values span more than two decades
    assert ParamSpec("y", False, True, (1.0, 10.0)).encode(0.0) is None


def _stump(feature: int, threshold: float, left: float, right: float) -> tuple[Any, ...]:
    return (
        np.array([1, -1, -1]),
        np.array([2, -1, -1]),
        np.array([feature, -2, -2]),
        np.array([threshold, -2.0, -2.0]),
        np.array([[[0.0]], [[left]], [[right]]]),
    )


def test_fanova_of_hand_made_trees() -> None:
    domain = [(0.0, 1.0), (0.0, 1.0)]
    # a split on x0 only: all variance is x0's main effect
    fractions, explained = fanova_trees([_stump(0, 0.5, 0.0, 1.0)], domain)
    assert fractions == pytest.approx([1.0, 0.0]) and explained == pytest.approx(1.0)
    # f = [x0 > .5] xor [x1 > .5]: a pure interaction, no main effect at all
    left = np.array([1, 3, -1, -1, 5, -1, -1])  # node 1 (x0 <= .5) and node 4 (x0 > .5) split x1
    right = np.array([4, 2, -1, -1, 6, -1, -1])
    feature = np.array([0, 1, -2, -2, 1, -2, -2])
    threshold = np.array([0.5, 0.5, -2, -2, 0.5, -2, -2], dtype=float)
    value = np.array([0, 0, 1, 0, 0, 1, 0], dtype=float).reshape(-1, 1, 1)
    fractions, explained = fanova_trees([(left, right, feature, threshold, value)], domain)
    assert fractions == pytest.approx([0.0, 0.0], abs=1e-12) and explained == pytest.approx(
        0.0, abs=1e-12
    )
    # additive f = x0-step + 2 * x1-step over a non-unit domain: shares 1 : 4 of the variance
    tree = (
        np.array([1, 3, 5, -1, -1, -1, -1]),
        np.array([2, 4, 6, -1, -1, -1, -1]),
        np.array([0, 1, 1, -2, -2, -2, -2]),
        np.array([5.0, 0.0, 0.0, -2, -2, -2, -2]),
        np.array([0, 0, 0, 0.0, 2.0, 1.0, 3.0]).reshape(-1, 1, 1),
    )
    fractions, explained = fanova_trees([tree], [(0.0, 10.0), (-1.0, 1.0)])
    assert fractions == pytest.approx([0.2, 0.8]) and explained == pytest.approx(1.0)


def test_fanova_importance_finds_the_parameter_that_matters(tmp_path: Path) -> None:
    store = make_group(tmp_path, "g", n=60, seed=3)
    exps = store.experiments()
    specs = param_specs(store.read_group(), exps)
    imp = fanova_importance(specs, exps, LOSS)
    assert not isinstance(imp, str)
    assert max(imp.share, key=lambda k: imp.share[k]) == "lr"
    assert imp.share["lr"] > 0.6 and imp.share["noise"] < 0.1
    assert math.isclose(sum(imp.share.values()), 1.0)
    assert 0.5 < imp.explained <= 1.0 + 1e-9
    assert imp.n_experiments == 60
    # same inputs, same numbers (fixed seed)
    again = fanova_importance(specs, exps, LOSS)
    assert not isinstance(again, str) and again.share == imp.share
    # too few experiments: a reason instead
    reason = fanova_importance(specs, exps[:3], LOSS)
    assert isinstance(reason, str) and "at least 4" in reason


def test_rung_points(tmp_path: Path) -> None:
    store = make_hyperband_group(tmp_path, "hb")
    points = rung_points(store.experiments(), LOSS)
    assert len(points) == 9 + 3 + 1 + 3 + 1 + 3
    assert {p["bracket"] for p in points} == {0, 1, 2}
    assert {p["resource"] for p in points if p["bracket"] == 2} == {1.0, 3.0, 9.0}
    assert rung_points([exp(1, 1.0)], LOSS) == []


# ----------------------------------------------------------------------------------------
# the HTML report
# ----------------------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str]] = []
        self.images: list[dict[str, str | None]] = []
        self.text: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("src", "href", "data", "poster", "srcset", "action"):
            if a.get(key):
                self.refs.append((tag, str(a[key])))
        if tag == "img":
            self.images.append(a)
        if tag not in ("meta", "img", "br", "link", "input"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82"), f"{path} is truncated"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def check_page(index: Path) -> _Page:
    """The page parses, is balanced, has no network reference, and every image is a PNG next
    to it whose pixel size is the one the page declares."""
    from PIL import Image  # comes with matplotlib

    text = index.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    page.close()
    assert page.stack == [], f"unclosed tags: {page.stack}"
    assert not re.search(r"(?i)\b(https?:)?//[a-z0-9]", text), "network reference in the page"
    for _, ref in page.refs:
        assert not ref.startswith(("http:", "https:", "//", "/")), ref
        if ref.startswith(("data:", "#")):
            continue
        target = (index.parent / ref).resolve()
        assert target.parent == index.parent.resolve(), f"{ref} is not next to the page"
        assert target.is_file() and target.stat().st_size > 0, f"{ref} is missing"
    for img in page.images:
        src = str(img["src"])
        width, height = png_size(index.parent / src)
        with Image.open(index.parent / src) as decoded:
            decoded.load()  # every chunk decodes, not only the header
            assert decoded.size == (width, height) and decoded.format == "PNG"
        assert (width, height) == (int(str(img["width"])), int(str(img["height"])))
        assert 300 <= width <= 2000 and 150 <= height <= 2000, (src, width, height)
        assert img.get("alt")
    return page


@pytest.fixture(scope="module")
def finished_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    ws = tmp_path_factory.mktemp("ws")
    make_group(ws, "mixed", n=30, failed_every=7, stopped_every=5, running=2)
    result = CliRunner().invoke(main, ["report", "mixed", "--dir", str(ws), "--json"])
    assert result.exit_code == 0, result.output
    return ws, json.loads(result.output)


@needs_matplotlib
def test_report_of_a_group_with_failures_stops_and_running(
    finished_report: tuple[Path, dict[str, Any]],
) -> None:
    ws, out = finished_report
    index = Path(out["html"])
    assert index == ws / "mixed" / "report" / "index.html"
    page = check_page(index)
    names = {Path(p).name for p in out["images"]}
    assert names == {
        "history.png",
        "curves.png",
        "parallel.png",
        "slices.png",
        "importance.png",
        "timeline.png",
    }
    assert out["skipped"] == {}
    text = " ".join(page.text)
    for heading in (
        "Optimization history",
        "Learning curves",
        "Parallel coordinates",
        "Slice plots",
        "Parameter importance",
        "How this is computed",
        "Failures (4)",
        "Best experiments",
    ):
        assert heading in text, heading
    assert "diverged at lr=" in text  # the failures' stderr tail
    assert "Hyperband" not in text


@needs_matplotlib
def test_report_of_a_hyperband_group_has_rungs(tmp_path: Path) -> None:
    make_hyperband_group(tmp_path, "hb")
    result = CliRunner().invoke(
        main, ["report", "hb", "--dir", str(tmp_path), "--out", str(tmp_path / "out"), "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    page = check_page(Path(out["html"]))
    assert (tmp_path / "out" / "rungs.png").is_file()
    assert "Hyperband rungs" in " ".join(page.text)


@needs_matplotlib
def test_report_of_an_empty_group_and_of_a_group_without_metric(tmp_path: Path) -> None:
    make_group(tmp_path, "empty", n=0)
    result = CliRunner().invoke(main, ["report", "empty", "--dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["images"] == []
    page = check_page(Path(out["html"]))
    assert "Not drawn" in " ".join(page.text)
    make_group(tmp_path, "nometric", n=5, metric=False)
    result = CliRunner().invoke(main, ["report", "nometric", "--dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert [Path(p).name for p in out["images"]] == ["timeline.png"]
    check_page(Path(out["html"]))


@needs_matplotlib
def test_report_rewrites_and_removes_stale_images(tmp_path: Path) -> None:
    make_group(tmp_path, "g", n=6)
    out_dir = tmp_path / "r"
    (out_dir).mkdir()
    (out_dir / "rungs.png").write_bytes(b"stale")
    (out_dir / "mine.txt").write_text("kept")
    result = CliRunner().invoke(
        main, ["report", "g", "--dir", str(tmp_path), "--out", str(out_dir)]
    )
    assert result.exit_code == 0, result.output
    assert "index.html" in result.output
    assert not (out_dir / "rungs.png").exists() and (out_dir / "mine.txt").read_text() == "kept"
    check_page(out_dir / "index.html")


def test_report_without_matplotlib_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    make_group(tmp_path, "g", n=2)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    result = CliRunner().invoke(main, ["report", "g", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == "Error: the HTML report needs matplotlib: pip install 'polytune[report]'"
    )


@needs_matplotlib
def test_report_open_uses_the_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import webbrowser

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    make_group(tmp_path, "g", n=3)
    result = CliRunner().invoke(main, ["report", "g", "--dir", str(tmp_path), "--open"])
    assert result.exit_code == 0, result.output
    assert opened == [(tmp_path / "g" / "report" / "index.html").absolute().as_uri()]
