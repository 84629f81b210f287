"""Metric parsing (pure, on literal lines), the incremental reader (real files), summaries."""

from __future__ import annotations

import json
import math
import os
import tracemalloc
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polytune import metrics
from polytune.experiment import Experiment
from polytune.metrics import (
    MetricsReader,
    MetricSummary,
    curve,
    parse_line,
    parse_lines,
    parse_stdout_line,
    summarize,
    update,
)


# ----- parse_line ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"step": 3, "loss": 0.41}', {"step": 3, "loss": 0.41}),
        (b'{"loss": 1}\n', {"loss": 1.0}),
        (b'  {"acc": 0.5, "name": "x", "flag": true, "xs": [1], "d": {"a": 1}}\r\n', {"acc": 0.5}),
        (b'{"loss": NaN, "acc": Infinity, "f1": -Infinity, "ok": 2}', {"ok": 2.0}),
        (b'{"step": 2.0, "loss": 0.1}', {"step": 2, "loss": 0.1}),
        (b'{"step": -1, "loss": 0.1}', {"loss": 0.1}),  # bad step dropped, metrics kept
        (b'{"step": 1.5, "loss": 0.1}', {"loss": 0.1}),
        (b'{"step": true, "loss": 0.1}', {"loss": 0.1}),
        (b'{"step": "3", "loss": 0.1}', {"loss": 0.1}),
        (b'{"big": 1e999, "huge": ' + b"9" * 400 + b', "x": 1}', {"x": 1.0}),
        (b'{"": 1, "a": 2}', {"a": 2.0}),
        (b'{"loss": 1, "loss": 2}', {"loss": 2.0}),  # json: the last duplicate wins
        ('{"über": 1.5}'.encode(), {"über": 1.5}),
        ('{"loss": 0.25}', {"loss": 0.25}),  # str input is accepted too
    ],
)
def test_parse_line_keeps_finite_numbers_and_a_valid_step(
    line: bytes | str, expected: dict[str, float]
) -> None:
    record = parse_line(line)
    assert record == expected
    assert record is not None
    assert all(type(v) is float for k, v in record.items() if k != "step")
    if "step" in record:
        assert type(record["step"]) is int


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"   \n",
        b'{"step": 3}',  # no metric at all
        b'{"name": "resnet"}',
        b'{"loss": 0.4',  # truncated
        b"[1, 2, 3]",
        b"0.5",
        b'"loss"',
        b"null",
        b"loss=0.4",  # stdout format is not JSON lines
        b"\x00\xff\xfe garbage \x80",
        b'{"loss": 0.5, \xff}',
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # nesting bomb
        b"\xef\xbb\xbf{}",
    ],
)
def test_parse_line_skips_what_is_not_a_metrics_object(line: bytes) -> None:
    assert parse_line(line) is None


def test_parse_lines_skips_bad_lines() -> None:
    lines = [b'{"loss": 1}', b"oops", b'{"loss": 0.5, "step": 1}', b""]
    assert parse_lines(lines) == [{"loss": 1.0}, {"loss": 0.5, "step": 1}]


@settings(deadline=None)  # pure and fast; no flaky deadline on a loaded machine
@given(st.binary(max_size=300))
def test_parse_line_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    record = parse_line(raw)
    assert record is None or isinstance(record, dict)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(deadline=None)  # pure and fast; no flaky deadline on a loaded machine
@given(st.dictionaries(st.text(max_size=8), _json_values, max_size=6))
def test_parse_line_on_arbitrary_json_objects(obj: dict[str, Any]) -> None:
    record = parse_line(json.dumps(obj).encode())
    if record is None:
        return
    for key, value in record.items():
        assert key in obj
        if key == "step":
            assert type(value) is int and value >= 0
        else:
            assert type(value) is float and math.isfinite(value)
            assert value == obj[key] and not isinstance(obj[key], bool)


@settings(deadline=None)  # pure and fast; no flaky deadline on a loaded machine
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.floats(allow_nan=False, allow_infinity=False),
        min_size=1,
    )
)
def test_finite_metrics_round_trip(values: dict[str, float]) -> None:
    values.pop("step", None)
    if values:
        assert parse_line(json.dumps(values)) == values


# ----- parse_stdout_line ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("loss=0.3 acc=0.9", {"loss": 0.3, "acc": 0.9}),
        ("loss=0.3, step=2", {"loss": 0.3, "step": 2}),
        ("metric: loss=0.3 acc=0.9", {"loss": 0.3, "acc": 0.9}),
        ("Metrics : val/loss=1e-3,val.acc=.5\n", {"val/loss": 0.001, "val.acc": 0.5}),
        ("  loss=-2  ", {"loss": -2.0}),
        ("step=7.0 loss=1", {"step": 7, "loss": 1.0}),
        ('polytune-metrics: {"step": 1, "loss": 0.5}', {"step": 1, "loss": 0.5}),
        (b"loss=0.25", {"loss": 0.25}),
    ],
)
def test_parse_stdout_line_accepts_documented_formats(
    line: str | bytes, expected: dict[str, float]
) -> None:
    assert parse_stdout_line(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "",
        "Epoch 3/10",
        "Epoch 3: loss=0.3",  # one non-pair token rejects the whole line
        "loss = 0.3",
        "loss=abc",
        "loss=0.3 done",
        "lr=nan",
        "x=inf",
        "3=4",
        "step=2",  # a step but no metric
        "polytune-metrics: not json",
        "INFO training started",
        "a=" + "1" * 70_000,  # too long to be a metrics line
    ],
)
def test_parse_stdout_line_is_conservative(line: str) -> None:
    assert parse_stdout_line(line) is None


@settings(deadline=None)  # pure and fast; no flaky deadline on a loaded machine
@given(st.text(max_size=200))
def test_parse_stdout_line_never_raises(text: str) -> None:
    parse_stdout_line(text)
    parse_stdout_line(text.encode("utf-8", "surrogatepass"))


# ----- MetricsReader -------------------------------------------------------------------------
def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def test_reader_tolerates_a_file_created_late(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    reader = MetricsReader(path)
    assert reader.read_new() == []
    assert reader.read_new(final=True) == []
    _append(path, b'{"loss": 1}\n')
    assert reader.read_new() == [{"loss": 1.0}]
    assert reader.read_new() == []


def test_reader_holds_back_a_partial_line_until_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    reader = MetricsReader(path)
    line = b'{"step": 1, "loss": 0.5}\n'
    for byte in line[:-1]:
        _append(path, bytes([byte]))
        assert reader.read_new() == []
        assert reader.offset == 0  # nothing consumed until the line is whole
    _append(path, b'\n{"loss"')
    assert reader.read_new() == [{"step": 1, "loss": 0.5}]
    assert reader.offset == len(line)
    _append(path, b': 0.25}\n{"loss": 0.125}\n')
    assert reader.read_new() == [{"loss": 0.25}, {"loss": 0.125}]
    assert reader.offset == path.stat().st_size


def test_reader_resumes_from_a_persisted_offset(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": ')
    first = MetricsReader(path)
    assert first.read_new() == [{"a": 1.0}, {"a": 2.0}]
    saved = first.offset  # the half-written third line is not consumed
    _append(path, b"3}\n")
    second = MetricsReader(path, offset=saved)
    assert second.read_new() == [{"a": 3.0}]


def test_reader_final_read_takes_a_last_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}')
    reader = MetricsReader(path)
    assert reader.read_new() == [{"a": 1.0}]
    assert reader.read_new(final=True) == [{"a": 2.0}]
    assert reader.offset == path.stat().st_size
    assert reader.read_new(final=True) == []


def test_reader_skips_garbage_and_binary_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(
        b'{"a": 1}\n\x00\x01\x02\xff\xfe\n'
        + os.urandom(2000).replace(b"\n", b" ")
        + b'\nnot json\n[1]\n{"a": 2}\n'
    )
    assert MetricsReader(path).read_new() == [{"a": 1.0}, {"a": 2.0}]


def test_reader_skips_a_5mb_line_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    huge = b'{"a": "' + b"x" * (5 << 20) + b'", "loss": 9}\n'
    path.write_bytes(b'{"loss": 1}\n' + huge + b'{"loss": 2}\n')
    reader = MetricsReader(path, max_line_bytes=1 << 20)
    tracemalloc.start()
    try:
        records = reader.read_new()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert records == [{"loss": 1.0}, {"loss": 2.0}]
    assert reader.skipped_long_lines == 1
    assert peak < 3 << 20  # the 5 MB line was never held in memory


def test_reader_skips_a_long_line_arriving_in_pieces(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    reader = MetricsReader(path, max_line_bytes=100, chunk_size=16)
    _append(path, b'{"loss": 1}\n{"pad": "')
    assert reader.read_new() == [{"loss": 1.0}]
    for _ in range(20):
        _append(path, b"y" * 30)
        assert reader.read_new() == []
    _append(path, b'"}\n{"loss": 2}\n')
    assert reader.read_new() == [{"loss": 2.0}]
    assert reader.skipped_long_lines == 1
    assert reader.offset == path.stat().st_size


def test_reader_rereads_a_truncated_or_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n')
    reader = MetricsReader(path)
    assert len(reader.read_new()) == 2
    path.write_bytes(b'{"b": 1}\n')  # truncated and rewritten (a new attempt)
    assert reader.read_new() == [{"b": 1.0}]
    replacement = tmp_path / "new.jsonl"
    replacement.write_bytes(b'{"c": 1}\n{"c": 2}\n{"c": 3}\n')
    os.replace(replacement, path)  # another inode, larger than what was read
    assert reader.read_new() == [{"c": 1.0}, {"c": 2.0}, {"c": 3.0}]


def test_reader_max_bytes_bounds_one_call(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b"".join(b'{"i": %d}\n' % i for i in range(100)))
    reader = MetricsReader(path, chunk_size=7)
    got: list[dict[str, float]] = []
    while batch := reader.read_new(max_bytes=50, final=True):
        assert len(batch) <= 6
        got += batch
    assert got == [{"i": float(i)} for i in range(100)]


def test_reader_as_a_stdout_scraper(tmp_path: Path) -> None:
    path = tmp_path / "stdout.log"
    path.write_bytes(b"starting\nloss=0.5 acc=0.1\nepoch 1 done\nloss=0.25, step=2\n")
    reader = MetricsReader(path, parser=parse_stdout_line)
    assert reader.read_new() == [{"loss": 0.5, "acc": 0.1}, {"loss": 0.25, "step": 2}]


def test_reader_rejects_nonsense_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        MetricsReader(tmp_path / "m", max_line_bytes=0)
    with pytest.raises(ValueError):
        MetricsReader(tmp_path / "m", offset=-1)


_line_bytes = st.one_of(
    st.builds(
        lambda d: json.dumps(d).encode(),
        st.dictionaries(st.sampled_from("abc"), st.integers(-5, 5)),
    ),
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
)


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(_line_bytes, max_size=12),
    cuts=st.lists(st.integers(0, 400), max_size=8),
    max_line=st.integers(1, 60),
    chunk=st.integers(1, 50),
)
def test_reader_in_pieces_equals_a_batch_parse(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[bytes],
    cuts: list[int],
    max_line: int,
    chunk: int,
) -> None:
    path = tmp_path_factory.mktemp("reader") / "metrics.jsonl"
    data = b"".join(line + b"\n" for line in lines)
    reader = MetricsReader(path, max_line_bytes=max_line, chunk_size=chunk)
    got = []
    start = 0
    for cut in sorted({min(c, len(data)) for c in cuts} | {len(data)}):
        _append(path, data[start:cut])
        start = cut
        got += reader.read_new()
    assert got == parse_lines(line for line in lines if len(line) <= max_line)
    assert reader.offset == len(data)
    assert reader.skipped_long_lines == sum(len(line) > max_line for line in lines)


# ----- summaries -----------------------------------------------------------------------------
def test_update_keeps_last_values_of_metrics_missing_from_later_lines() -> None:
    s = update(MetricSummary(), [{"step": 0, "loss": 1.0, "acc": 0.1}, {"loss": 0.5}])
    assert s.last == {"loss": 0.5, "acc": 0.1}
    assert s.min == {"loss": 0.5, "acc": 0.1}
    assert s.max == {"loss": 1.0, "acc": 0.1}
    assert s.lines == 2
    assert s.last_step == 2  # the second line has no step: its position
    s2 = update(s, [{"step": 10, "acc": 0.9}])
    assert s2.last == {"loss": 0.5, "acc": 0.9}
    assert s2.last_step == 10
    assert s.last == {"loss": 0.5, "acc": 0.1}  # the input summary is unchanged


def test_curve_uses_the_explicit_step_or_the_position() -> None:
    records = [{"loss": 3.0}, {"acc": 1.0}, {"step": 10, "loss": 1.0}, {"loss": 0.5}]
    assert curve(records, "loss") == [(1, 3.0), (10, 1.0), (4, 0.5)]
    assert curve(records, "missing") == []


def test_summary_round_trips_through_an_experiment_record() -> None:
    s = summarize([{"loss": 1.0, "step": 1}, {"loss": 0.5, "step": 2}])
    exp = metrics.apply_summary(Experiment(id=1, config={}, params={}), s)
    assert exp.metrics == {"loss": 0.5} and exp.metrics_min == {"loss": 0.5}
    assert exp.metric_lines == 2 and exp.last_step == 2
    assert metrics.summary_of(Experiment.from_json(exp.to_json())) == s


_values = st.one_of(
    st.floats(),  # NaN and infinities included: they are not metric values
    st.integers(-(10**20), 10**20),
    st.booleans(),
    st.text(max_size=3),
)
_records = st.lists(
    st.dictionaries(st.sampled_from(["loss", "acc", "f1", "step"]), _values, max_size=4),
    max_size=15,
)


def _batch(records: list[Mapping[str, Any]]) -> MetricSummary:
    """An independent recompute from the whole list."""

    def ok(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

    names = {k for r in records for k, v in r.items() if k != "step" and ok(v)}
    series = {n: [float(r[n]) for r in records if n in r and ok(r[n])] for n in names}
    last_step = None
    if records:
        step = records[-1].get("step")
        valid = isinstance(step, int | float) and not isinstance(step, bool)
        valid = valid and math.isfinite(step) and float(step).is_integer() and step >= 0
        last_step = int(step) if valid else len(records)
    return MetricSummary(
        last={n: s[-1] for n, s in series.items()},
        min={n: min(s) for n, s in series.items()},
        max={n: max(s) for n, s in series.items()},
        lines=len(records),
        last_step=last_step,
    )


@settings(deadline=None)  # pure and fast; no flaky deadline on a loaded machine
@given(_records, _records)
def test_incremental_update_equals_a_batch_recompute(
    first: list[dict[str, Any]], second: list[dict[str, Any]]
) -> None:
    incremental = update(update(MetricSummary(), first), second)
    assert incremental == _batch(first + second)
    assert incremental == summarize(first + second)
