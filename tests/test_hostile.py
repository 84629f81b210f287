"""Hostile and broken input never crashes polytune and never runs code it should not.

* The loader, fuzzed with mutations of the real polyaxonfiles of ``../shared`` (read in place,
  skipped when absent) and with YAML tags, aliases and bombs: a ``Config`` or one ``ConfigError``
  line, never another exception; and what loads also reports, searches and renders.
* Matrix values made to break out of a shell command reach it as one literal argument.
* Group names cannot leave the workspace.
* Metrics lines that are huge, binary or not JSON are bounded and skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_corpus import FILES

from polytune.check import build_report
from polytune.config import MAX_YAML_NODES, load, load_text
from polytune.driver import template_values
from polytune.errors import ConfigError
from polytune.experiment import Experiment
from polytune.metrics import MAX_METRICS, MAX_NAME_LENGTH
from polytune.model import Config
from polytune.render import render_command
from polytune.searchers import make_searcher
from polytune.store import GroupStore

ROOT = Path(__file__).resolve().parents[1]


def exercise(config: Config) -> None:
    """What a loaded config goes through before and during a run, minus the processes."""
    build_report(config)
    searcher = make_searcher(config)
    history: list[Experiment] = []
    store = GroupStore("/nonexistent/workspace/g")
    for i in range(2):
        suggestion = searcher.suggest(history, np.random.default_rng([1, len(history)]))
        if suggestion is None:
            break
        params = {**config.params, **suggestion.config, **suggestion.extra_params}
        exp = Experiment(id=i + 1, config=dict(suggestion.config), params=params)
        if config.command is not None:
            render_command(config.command, template_values(store, exp))
        history.append(exp)


def load_or_config_error(text: str | bytes, tmp: Path) -> None:
    path = tmp / "fuzz.yml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        config = load([path])
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    exercise(config)


# ----- mutations of the real corpus -----------------------------------------------------------

needs_corpus = pytest.mark.skipif(not FILES, reason="the shared polyaxonfile corpus is absent")
_SPECIAL = [b":", b"- ", b"{", b"}", b"[", b"]", b"&a ", b"*a", b"!", b"|", b">", b"'", b'"']
_SPECIAL += [b"#", b"%", b"@", b"\t", b"\n", b"  ", b"\x00", b"\xff", b"{{ ", b" }}", b"---\n"]


@st.composite
def byte_mutations(draw: st.DrawFn) -> bytes:
    data = draw(st.sampled_from(FILES)).read_bytes() if FILES else b""
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["cut", "insert", "delete", "duplicate", "swap"]))
        if kind == "cut":
            data = data[:at]
        elif kind == "insert":
            extra = draw(st.sampled_from(_SPECIAL) | st.binary(max_size=8))
            data = data[:at] + extra + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 40)) :]
        else:
            lines = data.splitlines(keepends=True)
            if len(lines) > 1:
                i = draw(st.integers(0, len(lines) - 1))
                j = draw(st.integers(0, len(lines) - 1))
                if kind == "duplicate":
                    lines.insert(j, lines[i])
                else:
                    lines[i], lines[j] = lines[j], lines[i]
                data = b"".join(lines)
    return data


_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["{{ lr }}", "1:10:1", "0.1:1:3", "grid", "hyperband", "bo", "-1", "1e9"])
)
_VALUES = st.recursive(
    _LEAVES,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=8,
)


@st.composite
def tree_mutations(draw: st.DrawFn) -> str:
    """A real file parsed, one of its nodes replaced, deleted or wrapped, dumped again."""
    doc = yaml.safe_load(draw(st.sampled_from(FILES)).read_text()) if FILES else {}
    for _ in range(draw(st.integers(1, 3))):
        parent, key = doc, None
        # walk down to a random node
        for _depth in range(draw(st.integers(0, 6))):
            node = parent if key is None else parent[key]
            if isinstance(node, dict) and node:
                parent, key = node, draw(st.sampled_from(sorted(node, key=str)))
            elif isinstance(node, list) and node:
                parent, key = node, draw(st.integers(0, len(node) - 1))
            else:
                break
        if key is None or not isinstance(parent, dict | list):
            continue
        action = draw(st.sampled_from(["replace", "delete", "wrap"]))
        if action == "replace":
            parent[key] = draw(_VALUES)
        elif action == "delete":
            del parent[key]
        else:
            parent[key] = [parent[key]]
    try:
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:
        return ""


@needs_corpus
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=byte_mutations())
def test_byte_mutations_of_real_files_never_crash_the_loader(data: bytes, tmp_path: Path) -> None:
    load_or_config_error(data, tmp_path)


@needs_corpus
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(text=tree_mutations())
def test_tree_mutations_of_real_files_never_crash_the_loader(text: str, tmp_path: Path) -> None:
    load_or_config_error(text, tmp_path)


@needs_corpus
def test_every_real_file_that_loads_also_reports_searches_and_renders(tmp_path: Path) -> None:
    loaded = 0
    for path in FILES:
        try:
            config = load([path])
        except ConfigError:
            continue
        exercise(config)
        loaded += 1
    assert loaded > 100


# ----- YAML tags, aliases, bombs --------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "!!python/object/apply:os.system ['touch {pwned}']",
        "!!python/object/new:os.system ['touch {pwned}']",
        "!!python/object/apply:subprocess.check_call [['touch', '{pwned}']]",
        "!!python/name:os.system",
        "!!python/module:os",
        "!!python/tuple [1, 2]",
        "!!binary aGVsbG8=",
        "!!set {a: null}",
        "!custom {a: 1}",
        "!<tag:example.com,2000:app/foo> bar",
    ],
)
def test_yaml_tags_that_build_objects_are_refused(value: str, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    text = textwrap.dedent(
        f"""
        version: 1
        kind: group
        hptuning:
          matrix:
            x: {{values: [{value.replace("{pwned}", str(pwned))}]}}
        run:
          cmd: echo {{{{ x }}}}
        """
    )
    with pytest.raises(ConfigError) as info:
        load_text(text, tmp_path)
    assert "invalid YAML" in str(info.value) and "\n" not in str(info.value)
    assert not pwned.exists()


def laughs(levels: int) -> str:
    lines = ['  l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, levels):
        lines.append(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]")
    params = "\n".join(lines)
    return (
        f"version: 1\nkind: group\nparams:\n{params}\n"
        f"hptuning:\n  matrix:\n    x: {{values: *l{levels - 1}}}\nrun: {{cmd: echo}}\n"
    )


@pytest.mark.parametrize(
    "text",
    [
        laughs(9),  # a billion values from a few hundred bytes
        laughs(6),  # a million: still far beyond any polyaxonfile
        "version: 1\nkind: group\nparams:\n  a: &a [1, *a]\nrun: {cmd: echo}\n",
        "a: &a {b: *a}\n",
        "a: " + "[" * 3000 + "]" * 3000 + "\n",
        "a: " + "{b: " * 3000 + "1" + "}" * 3000 + "\n",
    ],
    ids=["billion-laughs", "million-laughs", "recursive-list", "recursive-map", "deep", "deep-map"],
)
def test_alias_bombs_and_deep_nesting_are_refused_quickly(text: str) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_text(text, Path("."))
    assert time.monotonic() - started < 10
    assert "\n" not in str(info.value)


def test_aliases_within_the_bound_still_work() -> None:
    text = laughs(4).replace("x: {values: *l3}", "x: {values: *l0}")  # 11,110 values in params
    assert MAX_YAML_NODES > 11_110
    config = load_text(text, Path("."))
    assert len(config.params["l3"]) == 10


# ----- hostile values end to end --------------------------------------------------------------

HOSTILE = [
    "$(touch pwned-subst)",
    "`touch pwned-backtick`",
    "; rm -rf ~",
    "&& rm -rf ~ &&",
    "| touch pwned-pipe",
    "it's \"quoted\" 'twice' \\ and \\\\",
    "'\"'\"'",
    '"; touch pwned-dq; "',
    "'; touch pwned-sq; '",
    "$HOME ${HOME} $((1+1))",
    "line one\nline two; touch pwned-newline",
    "-rf",
    "--output=/etc/passwd",
    "*",
    "",
    "  spaced  ",
    "ünïcødé ✓ \u202e",
    "{{ x }}",
]

ARGV_JOB = """
import json, os, sys
out = os.path.join(os.environ["POLYTUNE_EXPERIMENT_DIR"], "argv.json")
with open(out, "w") as f:
    json.dump({"argv": sys.argv[1:], "env": os.environ.get("POLYTUNE_PARAM_V"),
               "params": os.environ.get("POLYTUNE_PARAMS")}, f)
"""


@pytest.mark.slow
def test_hostile_values_reach_the_command_as_one_literal_argument(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "canary").write_text("still here")
    job = tmp_path / "argv_job.py"
    job.write_text(ARGV_JOB)
    path = tmp_path / "hostile.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            version: 1
            kind: group
            hptuning:
              concurrency: 2
              matrix:
                v: {{values: {json.dumps(HOSTILE)}}}
            run:
              cmd: >-
                {sys.executable} {job} {{{{ v }}}} "{{{{ v }}}}" '{{{{ v }}}}' --v={{{{ v }}}}
                "--v={{{{ v }}}}"
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "polytune", "run", str(path), "--name", "h", "--json"],
        cwd=tmp_path,
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["counts"]["succeeded"] == len(HOSTILE)
    group = tmp_path / "polytune-groups" / "h"
    for i, value in enumerate(HOSTILE, start=1):
        seen = json.loads((group / "experiments" / f"{i:06d}" / "argv.json").read_text())
        assert seen["argv"] == [value, value, value, f"--v={value}", f"--v={value}"], value
        assert seen["env"] == value
        assert json.loads(seen["params"]) == {"v": value}
    assert (home / "canary").read_text() == "still here"
    leftovers = [p.name for p in tmp_path.rglob("pwned*")]
    assert leftovers == []


@pytest.mark.parametrize(
    "name",
    ["../../x", "..", ".", "a/b", "/tmp/abs", "", ".hidden", "x" * 300, "a\nb", "a b", "~x"],
)
def test_group_names_cannot_leave_the_workspace(name: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from polytune.cli import main

    path = tmp_path / "ws" / "sub" / "g.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("hptuning:\n  matrix:\n    x: {values: [1]}\nrun: {cmd: 'true'}\n")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = CliRunner().invoke(
        main,
        ["run", str(path), "--name", name, "--dir", str(tmp_path / "ws" / "sub" / "w")],
        catch_exceptions=False,
    )
    assert result.exit_code == 2, result.output
    assert (
        result.stderr.startswith("Error: invalid group name") and "Traceback" not in result.output
    )
    after = sorted(p.name for p in tmp_path.rglob("*") if p.name != "w")
    assert after == before


# ----- hostile metrics end to end -------------------------------------------------------------

METRICS_JOB = """
import json, os
with open(os.environ["POLYTUNE_METRICS_FILE"], "wb") as f:
    f.write(b'{"loss": 9.0, "step": 1}\\n')
    f.write(b'{"huge": "' + b"x" * (5 << 20) + b'"}\\n')            # 5 MiB: over the line limit
    f.write(os.urandom(300_000).replace(b"\\n", b"") + b"\\n")      # binary garbage
    f.write(b"\\xff\\xfe not utf-8 \\x00\\n")
    f.write(b"not json at all\\n")
    f.write(b"[" * 200_000 + b"]" * 200_000 + b"\\n")              # a nesting bomb
    f.write(json.dumps({f"m{i}": i for i in range(20_000)}).encode() + b"\\n")  # too many names
    f.write(json.dumps({"k" * 5000: 1.0}).encode() + b"\\n")        # a name too long
    f.write(b'{"loss": 1e999, "acc": NaN, "bad": "str", "list": [1]}\\n')
    f.write(b'{"loss": 0.5, "step": 2}\\n')
    f.write(b'{"loss": 0.25, "step": 3}')                             # no final newline
"""


@pytest.mark.slow
def test_hostile_metrics_lines_are_bounded_and_skipped(tmp_path: Path) -> None:
    job = tmp_path / "metrics_job.py"
    job.write_text(METRICS_JOB)
    path = tmp_path / "m.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            version: 1
            kind: group
            hptuning:
              matrix:
                x: {{values: [1]}}
            polytune:
              metric: {{name: loss, optimization: minimize}}
            run:
              cmd: {sys.executable} {job}
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "polytune", "run", str(path), "--name", "m", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    record_path = tmp_path / "polytune-groups" / "m" / "experiments" / "000001" / "experiment.json"
    rec: dict[str, Any] = json.loads(record_path.read_text())
    assert rec["status"] == "succeeded"
    assert rec["metrics"]["loss"] == 0.25 and rec["last_step"] == 3
    assert rec["metrics_min"]["loss"] == 0.25 and rec["metrics_max"]["loss"] == 9.0
    assert len(rec["metrics"]) == MAX_METRICS  # loss, then names up to the bound
    assert all(len(name) <= MAX_NAME_LENGTH for name in rec["metrics"])
    assert record_path.stat().st_size < 200_000
    status = subprocess.run(
        [sys.executable, "-m", "polytune", "status", "m", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0 and json.loads(status.stdout)["best"]["id"] == 1
