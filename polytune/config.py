"""Read polyaxonfiles of every layout and turn them into one validated, typed ``Config``.

Layouts (SEMANTICS.md §1, §3; the value of ``Config.layout``):

* ``matrix-top`` — 2017: a top-level ``matrix:`` only (grid over it).
* ``settings+matrix`` — Jan–Mar 2018: ``settings: {concurrent_experiments, search_method,
  n_experiments (int or fraction), early_stopping: [{metric, value, higher}]}`` + top-level matrix.
* ``settings`` — Apr–May 2018: ``settings: {seed, concurrency, matrix, grid_search, ...}``, i.e.
  today's ``hptuning`` under another name.
* ``hptuning`` — polyaxonfile v1 (``kind: group``): ``hptuning: {seed, concurrency, matrix,
  grid_search | random_search | hyperband | bo, early_stopping}`` (+ polytune's ``tpe`` block).
* ``v1`` — Polyaxon v1.x/v2.x operations: ``matrix: {kind: grid | random | hyperband | bayes |
  hyperopt | tpe | mapping, params: {name: {kind, value}}, ...}`` with an inline ``component``
  (its ``container.command + args`` is the command) or a ``urlRef``/``pathRef``/``hubRef``/
  ``dagRef`` (then there is no command to run: ``check`` only).

Reading is strict where polytune interprets the file (the tuning sections, every algorithm block,
early-stopping items, the v1 matrix block, the ``polytune:`` section): an unknown key is an error
naming its key path and the closest valid key. Sections Polyaxon had and polytune does not use
(``build``, ``environment``, ``logging``, ``tags`` ...) are accepted and ignored, with a note where
it matters. Every error is a ``ConfigError`` with a one-line message; no input gives a traceback.

Decisions (DESIGN.md §6 and the points SEMANTICS.md leaves open):

* YAML is read with PyYAML's *safe* loader; tags that would build objects are refused. One change
  to the loader: YAML 1.1's base-60 numbers are off, so ``range: 1:10:1`` is the string
  ``"1:10:1"`` the user meant, not the integer 4201.
* A name in both the constant params (``params``/``declarations``, a v0 ``inputs`` default, a
  ``-P``) and the matrix is an error (Polyaxon silently ran a "grid over a constant", polyaxon#768).
  In v1 files an inline component's input defaults are *defaults*: the matrix fills them.
* ``-P name=value`` sets a constant param (the value is read as YAML); naming a matrix parameter or
  Hyperband's resource is an error; a name the file does not declare *adds* a param (so a command
  can be given values the polyaxonfile leaves to ``-P``). Overrides are applied to the document,
  so ``Config.document`` reproduces the same config when read again.
* ``run.cmd``: every ``{{ name }}`` must be a param, a matrix name, the Hyperband resource or one
  of ``CONTEXT_NAMES`` (``globals.*``, filled in by the driver); anything else is an error.
  ``\\ `` sequences — a YAML line folded after a trailing backslash — are read as a space.
* BO accepts every discrete parameter and ``uniform``, ``quniform``, ``loguniform``,
  ``qloguniform`` (Polyaxon: only ``uniform``); ``ucb`` without ``kappa`` (or ``ei``/``poi``
  without ``eps``) takes polytune's default instead of failing, and the whole ``utility_function``
  block is optional.
* ``hyperopt`` (v1) and ``tpe`` (v2) map to algorithm ``tpe`` with
  ``n_experiments = numRuns * maxIterations`` (``maxIterations`` missing: one iteration of
  ``numRuns``; Polyaxon's ``tpe`` would iterate without end), capped like random search over
  a small all-discrete space. polytune's TPE also searches ``pchoice`` (its probabilities are
  the categorical prior) and date ranges, which Polyaxon refused; ``numInitialRuns`` (both
  kinds) sets the random start-up trials. ``iterative`` (a custom tuner) is refused.
* ``mapping``: ``Config.space`` is an empty ``Space`` (the listed dicts are not a product space);
  the dicts are in ``MappingSettings.values``.
* Random search (and BO's initial trials) over an all-discrete space smaller than the requested
  count runs the whole space, with a warning.
* DAG pipelines (``run: {kind: dag}``) are refused: polytune runs one experiment group.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from polytune.algorithms import hyperband_schedule as hb
from polytune.algorithms.asha import rung_count as asha_rung_count
from polytune.algorithms.asha import rung_resources as asha_rungs
from polytune.errors import ConfigError
from polytune.model import (
    Algorithm,
    AlgorithmSettings,
    ASHASettings,
    BOSettings,
    CommandTemplate,
    Config,
    EarlyStopping,
    FailureEarlyStopping,
    GridSettings,
    HyperbandSettings,
    MappingSettings,
    MetricEarlyStopping,
    MetricSpec,
    Optimization,
    PolytuneSettings,
    RandomSettings,
    StoppingPolicy,
    TPESettings,
)
from polytune.space import Space, space_from_matrix
from polytune.suggest import closest

__all__ = [
    "CONTEXT_NAMES",
    "EXECUTORS",
    "PLACEHOLDER_RE",
    "deep_merge",
    "load",
    "load_text",
    "parse_override",
    "placeholders",
]

# ``{{ name }}`` with optional spaces; group 1 is the text between the braces (stripped). The same
# pattern as ``render.PLACEHOLDER``, so what the config accepts is exactly what the driver renders.
PLACEHOLDER_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")

# Context values a command may use besides params, rendered by the driver from the experiment:
# outputs_path / run_outputs_path: the experiment's outputs directory (POLYTUNE_OUTPUTS_PATH; the
# same directory for every Hyperband rung of a configuration when ``resume: true``);
# artifacts_path / run_artifacts_path: the same directory (Polyaxon's artifacts root of a run);
# uuid / run_uuid / name: "<group>-<experiment id>"; project_name / group_name: the group's name;
# experiment_id: the experiment's number; metrics_file: where the experiment appends its metrics.
CONTEXT_NAMES: tuple[str, ...] = (
    "globals.outputs_path",
    "globals.run_outputs_path",
    "globals.artifacts_path",
    "globals.run_artifacts_path",
    "globals.uuid",
    "globals.run_uuid",
    "globals.name",
    "globals.project_name",
    "globals.group_name",
    "globals.experiment_id",
    "globals.metrics_file",
)

EXECUTORS: tuple[str, ...] = ("local", "dask")

# Hyperband with eta close to 1 or an enormous max_iter gives thousands of brackets: refuse.
MAX_BRACKETS = 64
MAX_HYPERBAND_ITER = 10**12

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.']*$")
_WHOLE_TEMPLATE_RE = re.compile(r"^\s*\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*$")
_FOLDED_CONTINUATION_RE = re.compile(r"[ \t]*\\(?:[ \t]+|$)")

# ---------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------

_TOP_INTERPRETED = (
    "version",
    "kind",
    "name",
    "hptuning",
    "settings",
    "matrix",
    "params",
    "declarations",
    "inputs",
    "run",
    "exec",
    "component",
    "urlRef",
    "pathRef",
    "hubRef",
    "dagRef",
    "polytune",
)
# Sections of Polyaxon files (all eras) that polytune accepts and ignores; the value is the note
# recorded when present, or None for no note.
_TOP_IGNORED: dict[str, str | None] = {
    "project": None,
    "description": None,
    "tags": None,
    "framework": None,
    "logging": None,
    "backend": None,
    "is_managed": None,
    "isManaged": None,
    "is_preset": None,
    "isPreset": None,
    "isApproved": None,
    "cost": None,
    "queue": None,
    "namespace": None,
    "cache": None,
    "presets": None,
    "plugins": None,
    "patchStrategy": None,
    "template": None,
    "owner": None,
    "outputs": None,
    "build": "build is ignored: polytune runs commands on this machine, so prepare the "
    "environment (image, build steps) yourself",
    "environment": "environment (resources, replicas, node selectors...) is ignored: experiments "
    "run as local processes",
    "termination": "termination is ignored: use polytune.timeout and polytune.max_restarts",
    "runPatch": "runPatch is ignored",
    "joins": "joins are ignored: polytune runs one experiment group",
    "hooks": "hooks are ignored",
    "events": "events are ignored",
    "schedule": "schedule is ignored: the group starts when you run it",
    "dependencies": "dependencies are ignored: polytune runs one experiment group",
    "trigger": "trigger is ignored: polytune runs one experiment group",
    "conditions": "conditions are ignored: polytune runs one experiment group",
    "skipOnUpstreamSkip": None,
    "model": "model/train/eval describe a model for Polyaxon's TensorFlow library; polytune "
    "only runs commands",
    "train": None,
    "eval": None,
}
_TOP_KEYS = (*_TOP_INTERPRETED, *_TOP_IGNORED)

_V0_ALGORITHMS = {
    "grid_search": "grid",
    "random_search": "random",
    "hyperband": "hyperband",
    "asha": "asha",
    "bo": "bo",
    "tpe": "tpe",
}
_HPTUNING_KEYS = ("seed", "concurrency", "matrix", *_V0_ALGORITHMS, "early_stopping")
_SETTINGS_KEYS = (
    *_HPTUNING_KEYS,
    "concurrent_experiments",
    "search_method",
    "n_experiments",
    "run_type",
    "logging",
    "environment",
)
_V0_RUN_KEYS = (
    "cmd",
    "image",
    "steps",
    "build_steps",
    "install",
    "env_vars",
    "git",
    "nvidia_bin",
    "lang_env",
    "dockerfile",
    "context",
    "backend",
)

_V1_COMMON = ("kind", "concurrency", "earlyStopping")
_ASHA_KEYS = (
    "min_resource",
    "max_resource",
    "eta",
    "resource",
    "metric",
    "resume",
    "n_experiments",
)
_V1_MATRIX_KEYS: dict[str, tuple[str, ...]] = {
    "grid": (*_V1_COMMON, "params", "numRuns"),
    "random": (*_V1_COMMON, "params", "numRuns", "seed"),
    "hyperband": (
        *_V1_COMMON,
        "params",
        "maxIterations",
        "eta",
        "resource",
        "metric",
        "resume",
        "seed",
        "tuner",
    ),
    "bayes": (
        *_V1_COMMON,
        "params",
        "numInitialRuns",
        "maxIterations",
        "numIterations",
        "metric",
        "utilityFunction",
        "seed",
        "tuner",
    ),
    "hyperopt": (
        *_V1_COMMON,
        "params",
        "numRuns",
        "maxIterations",
        "numInitialRuns",  # polytune's extension (as for tpe): the random start-up trials
        "algorithm",
        "metric",
        "seed",
        "tuner",
    ),
    "tpe": (
        *_V1_COMMON,
        "params",
        "numRuns",
        "maxIterations",
        "numInitialRuns",
        "metric",
        "seed",
        "tuner",
    ),
    "mapping": (*_V1_COMMON, "values"),
    # polytune's own kind; snake_case spellings accepted too (the hptuning layout's names).
    "asha": (
        *_V1_COMMON,
        "params",
        "minResource",
        "maxResource",
        "numRuns",
        *_ASHA_KEYS,
        "seed",
    ),
}
_V1_KINDS = (*_V1_MATRIX_KEYS, "iterative")
_V1_ALGORITHM: dict[str, Algorithm] = {
    "grid": "grid",
    "random": "random",
    "hyperband": "hyperband",
    "bayes": "bo",
    "hyperopt": "tpe",
    "tpe": "tpe",
    "mapping": "mapping",
    "asha": "asha",
}

_OPTIMIZATIONS = ("maximize", "minimize")
_POLICY_KINDS = ("median", "average", "truncation", "diff")
_V0_POLICY_KEYS = (
    "kind",
    "evaluation_interval",
    "min_interval",
    "min_samples",
    "percent",
    "include_succeeded",
)
_V1_POLICY_KEYS = {
    "kind": "kind",
    "evaluationInterval": "evaluation_interval",
    "minInterval": "min_interval",
    "minSamples": "min_samples",
    "percent": "percent",
    "includeSucceeded": "include_succeeded",
}

# Matrix methods each algorithm refuses, and why (SEMANTICS.md §2.1; polytune's BO adds three).
_BO_METHODS = ("uniform", "quniform", "loguniform", "qloguniform")

_REF_KEYS = ("urlRef", "pathRef", "hubRef", "dagRef")


# ---------------------------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------------------------


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader without YAML 1.1 base-60 numbers (``1:10:1`` stays a string)."""


_INT_RE = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


def _patch_resolvers() -> None:
    resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}
    for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items():
        kept = []
        for tag, regexp in entries:
            if tag == "tag:yaml.org,2002:int":
                regexp = _INT_RE
            elif tag == "tag:yaml.org,2002:float":
                regexp = _FLOAT_RE
            kept.append((tag, regexp))
        resolvers[first] = kept
    _SafeLoader.yaml_implicit_resolvers = resolvers


_patch_resolvers()


def _refuse_tag(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None, None, f"the tag {node.tag!r} builds a value that is not plain JSON", node.start_mark
    )


# Params are plain JSON values (DESIGN §1.5): bytes and sets are refused at the boundary.
for _tag in ("binary", "set"):
    _SafeLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)

#: The most nodes a document may hold once its aliases are expanded. YAML aliases let a few
#: hundred bytes stand for billions of values ("billion laughs"); real polyaxonfiles hold a few
#: hundred nodes.
MAX_YAML_NODES = 100_000


def _expanded_size(root: yaml.Node) -> int:
    """The number of nodes of the document once aliases are expanded (an alias counts as its
    whole target), stopping early above ``MAX_YAML_NODES``; ``-1`` for a recursive alias."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        if closing:
            open_.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_YAML_NODES:
                return sizes[key]
            continue
        if key in sizes:
            continue
        open_.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_:
                return -1
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _load_yaml(text: str) -> Any:
    """``yaml.load`` with the safe loader, refusing alias bombs and recursive aliases before
    anything is built (``yaml.YAMLError``)."""
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node)
        if size < 0:
            raise yaml.YAMLError("a recursive alias (a value that contains itself)")
        if size > MAX_YAML_NODES:
            raise yaml.YAMLError(
                f"the document expands to more than {MAX_YAML_NODES:,} values "
                "(aliases repeating aliases?)"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return _load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = " ".join(str(exc.problem or exc.context or "syntax error").split())
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
            problem += " (polytune reads plain YAML only: tags that build objects are refused)"
        raise ConfigError(where, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, f"invalid YAML: {' '.join(str(exc).split())}") from None
    except (ValueError, OverflowError) as exc:
        # e.g. a timestamp such as 2001-02-30 that PyYAML recognizes but cannot build
        raise ConfigError(source, f"invalid YAML value: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(source, "invalid YAML: the document is nested too deeply") from None


def _read_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "no such file") from None
    except IsADirectoryError:
        raise ConfigError(str(path), "is a directory, not a polyaxonfile") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the file ({exc.strerror or exc})") from None
    return _parse_yaml(text, str(path))


def deep_merge(base: Any, override: Any) -> Any:
    """Polyaxon's override files: mappings merge key by key (recursively), anything else in
    ``override`` replaces what ``base`` had. Neither input is modified."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = {k: copy.deepcopy(v) for k, v in base.items()}
        for key, value in override.items():
            merged[key] = deep_merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def load(files: Sequence[str | Path], overrides: Sequence[str] = ()) -> Config:
    """Read ``files`` (deep-merged in order, like ``polyaxon run -f a.yml -f b.yml``), apply the
    ``-P name=value`` ``overrides`` and validate. Commands run from the first file's directory."""
    if not files:
        raise ConfigError("-f", "no polyaxonfile given")
    paths = [Path(f) for f in files]
    doc: Any = None
    for i, path in enumerate(paths):
        part = _read_file(path)
        if part is None:
            if len(paths) == 1:
                raise ConfigError(str(path), "the polyaxonfile is empty")
            continue
        if not isinstance(part, dict):
            raise ConfigError(
                str(path), "a polyaxonfile must be a mapping of sections", _type_name(part)
            )
        doc = part if i == 0 or doc is None else deep_merge(doc, part)
    if doc is None:
        raise ConfigError(", ".join(map(str, paths)), "the polyaxonfiles are empty")
    return _build(doc, paths[0].resolve().parent, tuple(str(p) for p in paths), overrides)


def load_text(
    text: str,
    base_dir: Path,
    source: str = "<string>",
    *,
    overrides: Sequence[str] = (),
) -> Config:
    """Like ``load`` for one document given as text (``source`` names it in messages)."""
    doc = _parse_yaml(text, source)
    if doc is None:
        raise ConfigError(source, "the polyaxonfile is empty")
    if not isinstance(doc, dict):
        raise ConfigError(source, "a polyaxonfile must be a mapping of sections", _type_name(doc))
    return _build(doc, Path(base_dir), (source,), overrides)


def placeholders(template: CommandTemplate) -> list[str]:
    """The distinct ``{{ ... }}`` names of a command template, in order of first appearance."""
    seen: list[str] = []
    for part in template.parts:
        for match in PLACEHOLDER_RE.finditer(part):
            if match.group(1) not in seen:
                seen.append(match.group(1))
    return seen


def parse_override(text: str) -> tuple[str, Any]:
    """``"name=value"`` → ``(name, value)``; the value is read as YAML (``lr=0.1`` is a float,
    ``act=relu`` a string, ``layers=[1, 2]`` a list)."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ConfigError("-P", "expected name=value", text)
    if not _NAME_RE.match(name):
        raise ConfigError(f"-P {name}", "is not a valid param name", name)
    try:
        value = _load_yaml(raw)
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError):
        raise ConfigError(
            f"-P {name}", "the value is not valid YAML; quote it (-P 'name=\"...\"')", raw
        ) from None
    return name, value


# ---------------------------------------------------------------------------------------------
# Small validators (each raises a one-line ConfigError naming the key path)
# ---------------------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "nothing (null)",
    }.get(type(value), type(value).__name__)


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _clean(text: Any) -> str:
    """User text shown inside a message, with control characters escaped (messages are one line)."""
    return _CONTROL_RE.sub(lambda m: repr(m.group())[1:-1], str(text))


def _join(path: str, key: Any) -> str:
    return f"{path}.{_clean(key)}" if path else _clean(key)


def _mapping(value: Any, path: str, what: str = "a mapping") -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise ConfigError(path, f"must be {what}, not {_type_name(value)}", value)
    return value


def _check_keys(section: dict[Any, Any], path: str, allowed: Sequence[str]) -> None:
    for key in section:
        if not isinstance(key, str) or key not in allowed:
            hint = closest(str(key), allowed)
            did_you_mean = f"; did you mean {hint!r}?" if hint else ""
            raise ConfigError(
                _join(path, key),
                f"unknown key{did_you_mean} (valid keys: {', '.join(allowed)})",
            )


def _int(value: Any, path: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, "must be a whole number", value)
    if minimum is not None and value < minimum:
        raise ConfigError(path, f"must be at least {minimum}", value)
    return value


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(path, "must be a number", value)
    try:
        number = float(value)
    except OverflowError:
        raise ConfigError(path, "is too large", value) from None
    if not math.isfinite(number):
        raise ConfigError(path, "must be a finite number", value)
    return number


def _positive(value: Any, path: str, *, allow_zero: bool = False) -> float:
    number = _number(value, path)
    if number < 0 or (number == 0 and not allow_zero):
        raise ConfigError(
            path, "must be positive" if not allow_zero else "must not be negative", value
        )
    return number


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, "must be true or false", value)
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, "must be a non-empty string", value)
    return value


def _enum(value: Any, path: str, choices: Sequence[str]) -> str:
    """Enumerations are accepted in any case (``UCB``, ``Matern``, ``INT``, ``Maximize``)."""
    if not isinstance(value, str) or value.lower() not in choices:
        hint = closest(str(value), choices) if isinstance(value, str) else None
        did_you_mean = f"did you mean {hint!r}? " if hint else ""
        raise ConfigError(path, f"{did_you_mean}expected one of {', '.join(choices)}", value)
    return value.lower()


def _percent(value: Any, path: str) -> float:
    number = _number(value, path)
    if not 0 < number <= 100:
        raise ConfigError(path, "must be a percentage above 0 and at most 100", value)
    return number


def _seed(value: Any, path: str) -> int:
    seed = _int(value, path, minimum=0)
    if seed >= 2**63:
        raise ConfigError(path, "must be below 2**63", value)
    return seed


def _list(value: Any, path: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(path, f"must be {what}, not {_type_name(value)}", value)
    return value


# ---------------------------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------------------------


def _detect_layout(doc: dict[Any, Any]) -> str:
    """Which era's layout the document follows (see the module docstring)."""
    present = [k for k in ("hptuning", "settings", "matrix") if k in doc]
    if "hptuning" in doc:
        if len(present) > 1:
            other = next(k for k in present if k != "hptuning")
            raise ConfigError(
                other, "a polyaxonfile with hptuning cannot also have a top-level " + other
            )
        return "hptuning"
    if "settings" in doc:
        settings = doc["settings"]
        if isinstance(settings, dict) and "matrix" in settings:
            if "matrix" in doc:
                raise ConfigError(
                    "matrix", "the matrix is given twice: at the top level and in settings"
                )
            return "settings"
        return "settings+matrix"
    if "matrix" in doc:
        matrix = doc["matrix"]
        if isinstance(matrix, dict) and isinstance(matrix.get("kind"), str):
            return "v1"
        if _is_v1_document(doc):
            return "v1"
        return "matrix-top"
    return "none"


def _is_v1_document(doc: dict[Any, Any]) -> bool:
    version = doc.get("version")
    kind = doc.get("kind")
    if isinstance(version, int | float) and not isinstance(version, bool) and version > 1:
        return True
    if isinstance(kind, str) and kind.lower() in ("operation", "component"):
        return True
    return any(k in doc for k in (*_REF_KEYS, "component"))


def _params_section(doc: dict[Any, Any], layout: str) -> str:
    if layout == "v1":
        return "params"
    if "declarations" in doc and "params" not in doc:
        return "declarations"
    return "params"


def _apply_overrides(
    doc: dict[Any, Any], layout: str, overrides: Sequence[str]
) -> tuple[dict[Any, Any], set[str]]:
    """Write ``-P`` values into the document's constant params (see the module docstring)."""
    if not overrides:
        return doc, set()
    doc = copy.deepcopy(doc)
    section = _params_section(doc, layout)
    names: set[str] = set()
    for text in overrides:
        name, value = parse_override(text)
        params = doc.setdefault(section, {})
        if params is None:
            params = doc[section] = {}
        if not isinstance(params, dict):
            raise ConfigError(section, "must be a mapping of names to values", params)
        params[name] = {"value": value} if layout == "v1" else value
        names.add(name)
    return doc, names


def _build(
    doc: dict[Any, Any], base_dir: Path, sources: tuple[str, ...], overrides: Sequence[str]
) -> Config:
    try:
        layout = _detect_layout(doc)
        doc, overridden = _apply_overrides(doc, layout, overrides)
        return _Builder(doc, layout, overridden).build(base_dir, sources)
    except RecursionError:
        raise ConfigError(
            "", "the document is nested too deeply or refers to itself through YAML anchors"
        ) from None


class _Builder:
    """Turns one merged document into a Config; collects notes and warnings on the way."""

    def __init__(self, doc: dict[Any, Any], layout: str, overridden: set[str]) -> None:
        self.doc = doc
        self.layout = layout
        self.overridden = overridden
        self.notes: list[str] = []
        self.warnings: list[str] = []
        self.space = Space(())
        self.resource_name: str | None = None
        self.resource_owner = "hyperband"
        self.mapping_keys: list[str] = []

    # ----- top level --------------------------------------------------------------------------
    def build(self, base_dir: Path, sources: tuple[str, ...]) -> Config:
        doc = self.doc
        for key in doc:
            if not isinstance(key, str) or key not in _TOP_KEYS:
                hint = closest(str(key), _TOP_KEYS)
                raise ConfigError(
                    _clean(key),
                    "unknown top-level key"
                    + (f"; did you mean {hint!r}?" if hint else "")
                    + " (polytune reads hptuning, settings, matrix, params, run, component"
                    " and its own polytune section)",
                )
        for key, note in _TOP_IGNORED.items():
            if key in doc and note:
                self.notes.append(note)
        name = doc.get("name")
        if name is not None and not isinstance(name, str):
            raise ConfigError("name", "must be a string", name)
        if self.layout == "none":
            self._no_search_space()
        polytune = self._polytune(doc.get("polytune"))
        parts = self._v1() if self.layout == "v1" else self._v0()
        algorithm, settings, concurrency, seed, early, params, command, command_note = parts
        return Config(
            layout=self.layout,
            space=self.space,
            algorithm=algorithm,
            settings=settings,
            concurrency=concurrency,
            seed=seed,
            params=params,
            command=command,
            command_note=command_note,
            early_stopping=tuple(early),
            polytune=polytune,
            base_dir=base_dir,
            sources=sources,
            name=name,
            warnings=tuple(self.warnings),
            notes=tuple(dict.fromkeys(self.notes)),
            document=self.doc,
        )

    def _no_search_space(self) -> None:
        """No hptuning/settings/matrix: explain DAGs and matrices put in the wrong place."""
        self._reject_dag(self.doc, "")
        component = self.doc.get("component")
        if isinstance(component, dict):
            self._reject_dag(component, "component")
        raise ConfigError(
            "",
            "no search space: a polyaxonfile for polytune needs hptuning.matrix (v0), "
            "settings.matrix (2018) or a matrix section (v1/v2); this file describes a "
            "single run",
        )

    def _reject_dag(self, holder: dict[Any, Any], path: str) -> None:
        run = holder.get("run")
        if not isinstance(run, dict):
            return
        run_path = _join(path, "run")
        kind = run.get("kind")
        if isinstance(kind, str) and kind.lower() == "dag":
            operations = run.get("operations")
            where = _join(run_path, "kind")
            if isinstance(operations, list):
                for i, op in enumerate(operations):
                    if isinstance(op, dict) and "matrix" in op:
                        where = f"{run_path}.operations[{i}].matrix"
                        break
            raise ConfigError(
                where,
                "DAG pipelines are not supported: polytune runs one experiment group; put the "
                "tuned operation (its matrix and component) in a polyaxonfile of its own",
            )
        if "matrix" in run:
            raise ConfigError(
                _join(run_path, "matrix"),
                "a matrix belongs at the top level of an operation, not inside run",
            )

    # ----- polytune section -------------------------------------------------------------------
    def _polytune(self, section: Any) -> PolytuneSettings:
        if section is None:
            return PolytuneSettings()
        path = "polytune"
        section = _mapping(section, path)
        allowed = (
            "metric",
            "timeout",
            "max_restarts",
            "stop_grace",
            "executor",
            "scheduler",
            "scheduler_file",
            "gpus",
            "gpus_per_experiment",
            "env",
            "stdout_metrics",
            "stall_timeout",
            "on_early_stop",
        )
        _check_keys(section, path, allowed)
        metric = None
        if section.get("metric") is not None:
            metric = self._metric(section["metric"], f"{path}.metric")
        timeout = None
        if section.get("timeout") is not None:
            timeout = _positive(section["timeout"], f"{path}.timeout")
        max_restarts = _int(section.get("max_restarts", 0), f"{path}.max_restarts", minimum=0)
        stop_grace = _positive(
            section.get("stop_grace", 10.0), f"{path}.stop_grace", allow_zero=True
        )
        executor = _enum(section.get("executor", "local"), f"{path}.executor", EXECUTORS)
        scheduler = scheduler_file = None
        if section.get("scheduler") is not None:
            scheduler = _str(section["scheduler"], f"{path}.scheduler")
        if section.get("scheduler_file") is not None:
            scheduler_file = _str(section["scheduler_file"], f"{path}.scheduler_file")
        gpus: list[str] = []
        raw_gpus = section.get("gpus")
        if raw_gpus is not None:
            if isinstance(raw_gpus, str):
                raw_gpus = [g.strip() for g in raw_gpus.split(",")]
            if not isinstance(raw_gpus, list) or any(
                isinstance(g, bool) or not isinstance(g, int | str) or str(g) == ""
                for g in raw_gpus
            ):
                raise ConfigError(
                    f"{path}.gpus", "must be a list of device ids like [0, 1]", raw_gpus
                )
            gpus = [str(g) for g in raw_gpus]
            if len(set(gpus)) != len(gpus):
                raise ConfigError(f"{path}.gpus", "lists a device twice", raw_gpus)
        gpus_per_experiment = _int(
            section.get("gpus_per_experiment", 1), f"{path}.gpus_per_experiment", minimum=1
        )
        env: dict[str, str] = {}
        if section.get("env") is not None:
            raw_env = _mapping(section["env"], f"{path}.env")
            for key, value in raw_env.items():
                key_path = f"{path}.env.{key}"
                if not isinstance(key, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                    raise ConfigError(key_path, "is not a valid environment variable name", key)
                if isinstance(value, bool):
                    env[key] = "true" if value else "false"
                elif isinstance(value, str | int | float):
                    env[key] = str(value)
                else:
                    raise ConfigError(key_path, "must be a string or a number", value)
        stdout_metrics = _bool(section.get("stdout_metrics", False), f"{path}.stdout_metrics")
        stall_timeout = None
        if section.get("stall_timeout") is not None:
            stall_timeout = _positive(section["stall_timeout"], f"{path}.stall_timeout")
        on_early_stop = _enum(
            section.get("on_early_stop", "stop"), f"{path}.on_early_stop", ("stop", "finish")
        )
        return PolytuneSettings(
            metric=metric,
            timeout=timeout,
            max_restarts=max_restarts,
            stop_grace=stop_grace,
            executor=executor,
            scheduler=scheduler,
            scheduler_file=scheduler_file,
            gpus=tuple(gpus),
            gpus_per_experiment=gpus_per_experiment,
            env=env,
            stdout_metrics=stdout_metrics,
            stall_timeout=stall_timeout,
            on_early_stop=cast(Any, on_early_stop),
        )

    # ----- shared pieces ----------------------------------------------------------------------
    def _metric(self, value: Any, path: str) -> MetricSpec:
        section = _mapping(value, path, "a mapping {name, optimization}")
        _check_keys(section, path, ("name", "optimization"))
        if "name" not in section:
            raise ConfigError(f"{path}.name", "is required")
        name = _str(section["name"], f"{path}.name")
        if section.get("optimization") is None:
            self.warnings.append(
                f"{path}: no optimization given; as in Polyaxon polytune maximizes {name!r}"
            )
            return MetricSpec(name, "maximize")
        optimization = _enum(section["optimization"], f"{path}.optimization", _OPTIMIZATIONS)
        return MetricSpec(name, cast(Optimization, optimization))

    def _concurrency(self, value: Any, path: str) -> int:
        return 1 if value is None else _int(value, path, minimum=1)

    def _space(self, matrix: Any, path: str) -> Space:
        matrix = _mapping(matrix, path, "a mapping of parameter names to methods")
        if not matrix:
            raise ConfigError(path, "the matrix has no parameters")
        for name in matrix:
            if isinstance(name, str) and (_CONTROL_RE.search(name) or name != name.strip()):
                raise ConfigError(
                    path,
                    "parameter names cannot have surrounding spaces or control characters",
                    name,
                )
        matrix = self._substitute_matrix_templates(matrix)
        return space_from_matrix(matrix, path)

    def _substitute_matrix_templates(self, matrix: dict[Any, Any]) -> dict[Any, Any]:
        """A matrix value written as exactly ``"{{ name }}"`` takes that constant param's value
        (Polyaxon rendered such fields from ``params``/``inputs`` before reading them)."""
        constants = self._constant_values()
        out: dict[Any, Any] = {}
        for name, spec in matrix.items():
            if isinstance(spec, dict):
                new_spec = dict(spec)
                for key, raw in spec.items():
                    found = _WHOLE_TEMPLATE_RE.match(raw) if isinstance(raw, str) else None
                    if found and found.group(1) in constants:
                        new_spec[key] = copy.deepcopy(constants[found.group(1)])
                out[name] = new_spec
            else:
                out[name] = spec
        return out

    def _constant_values(self) -> dict[str, Any]:
        """Best-effort constants for matrix templates (full validation happens later)."""
        values: dict[str, Any] = {}
        for holder in (self.doc, self.doc.get("component")):
            if isinstance(holder, dict) and isinstance(holder.get("inputs"), list):
                for item in holder["inputs"]:
                    if isinstance(item, dict) and isinstance(item.get("name"), str):
                        for key in ("value", "default"):
                            if item.get(key) is not None:
                                values[item["name"]] = item[key]
        for key in ("declarations", "params"):
            section = self.doc.get(key)
            if isinstance(section, dict):
                for name, value in section.items():
                    if self.layout == "v1":
                        if isinstance(value, dict) and "value" in value:
                            values[str(name)] = value["value"]
                    else:
                        values[str(name)] = value
        return values

    def _check_algorithm_space(self, algorithm: str, path: str) -> None:
        """Which parameters each algorithm can search (SEMANTICS.md §2.1, DESIGN.md §6)."""
        for p in self.space.params:
            if algorithm == "grid" and p.is_distribution:
                raise ConfigError(
                    p.key_path,
                    f"{p.name!r} is a {p.method} distribution, which grid search cannot "
                    "enumerate; use random search, hyperband or bo, or a discrete method "
                    "(values, range, linspace, logspace, geomspace)",
                )
            if algorithm == "bo":
                if p.method in ("daterange", "datetimerange"):
                    raise ConfigError(
                        p.key_path, f"{p.name!r}: bayesian optimization cannot search {p.method}"
                    )
                if p.is_distribution and p.method not in _BO_METHODS:
                    raise ConfigError(
                        p.key_path,
                        f"{p.name!r} is a {p.method} distribution, which bayesian optimization "
                        f"cannot search; it supports discrete methods and {', '.join(_BO_METHODS)}"
                        + (" (normal distributions are unbounded)" if "normal" in p.method else ""),
                    )

    def _cap_discrete(self, requested: int, path: str, what: str) -> int:
        """An all-discrete space has only so many distinct configurations a random draw can
        reach (``pvalues`` items of probability 0 never come up): run those, and say so."""
        if not self.space.is_discrete:
            return requested
        size = math.prod(sum(1 for prob in p.probabilities if prob > 0) for p in self.space.params)
        if size < requested:
            reachable = "" if size == self.space.size else " reachable"
            self.warnings.append(
                f"{path}: {what} asks for {requested} experiments but the all-discrete space has "
                f"only {size}{reachable} configurations; polytune runs all {size}"
            )
            return size
        return requested

    def _hyperband(
        self,
        block: dict[Any, Any],
        path: str,
        *,
        max_iter_key: str,
    ) -> HyperbandSettings:
        for key in (max_iter_key, "eta", "resource", "metric"):
            if block.get(key) is None:
                raise ConfigError(_join(path, key), "is required for hyperband")
        max_iter_path = _join(path, max_iter_key)
        max_iter_raw = block[max_iter_key]
        max_iter_num = _number(max_iter_raw, max_iter_path)
        if max_iter_num < 1:
            raise ConfigError(max_iter_path, "must be at least 1", max_iter_raw)
        if max_iter_num > MAX_HYPERBAND_ITER:
            raise ConfigError(max_iter_path, f"must be at most {MAX_HYPERBAND_ITER}", max_iter_raw)
        max_iter: int | float = max_iter_raw if isinstance(max_iter_raw, int) else max_iter_num
        eta_path = _join(path, "eta")
        eta = _number(block["eta"], eta_path)
        if eta <= 1:
            raise ConfigError(eta_path, "must be above 1 (the rung reduction factor)", block["eta"])
        resource_name, resource_type = self._resource(block["resource"], _join(path, "resource"))
        brackets = hb.s_max(max_iter, eta) + 1
        if brackets > MAX_BRACKETS:
            raise ConfigError(
                path,
                f"max_iter={max_iter} with eta={eta} gives {brackets} brackets; polytune supports "
                f"at most {MAX_BRACKETS} (raise eta or lower max_iter)",
            )
        metric = self._metric(block["metric"], _join(path, "metric"))
        resume = (
            _bool(block.get("resume", False), _join(path, "resume"))
            if block.get("resume") is not None
            else False
        )
        self.resource_name = resource_name
        if self.space.is_discrete and self.space.size is not None:
            first = hb.n_configs(max_iter, eta, brackets - 1)
            if self.space.size < first:
                self.warnings.append(
                    f"{path}: the largest bracket starts {first} configurations but the "
                    f"all-discrete space has only {self.space.size}; brackets draw at most "
                    f"{self.space.size} distinct ones"
                )
        if resource_type == "int":
            # Polyaxon's int() truncation, kept: 729 * 3**-6 is 0.9999999999999999, hence 0.
            zero = [r for r in hb.schedule(max_iter, eta, "int") if r.resource < 1]
            if zero:
                self.warnings.append(
                    f"{path}: int() truncates the resource of bracket {zero[0].bracket} rung "
                    f"{zero[0].rung} to {zero[0].resource} "
                    f"({hb.rung_resource(max_iter, eta, zero[0].bracket, zero[0].rung, 'float')!r}),"
                    " as Polyaxon did; use resource type float, or a larger max_iter"
                )
        return HyperbandSettings(
            max_iter=max_iter,
            eta=eta,
            resource_name=resource_name,
            resource_type=cast(Literal["int", "float"], resource_type),
            metric=metric,
            resume=resume,
        )

    def _resource(self, resource: Any, path: str) -> tuple[str, str]:
        """A multi-fidelity resource: ``{name, type}`` (or, in the earliest hyperband schema,
        the name alone, typed float)."""
        if isinstance(resource, str):
            return _str(resource, path), "float"
        resource = _mapping(resource, path, "a mapping {name, type}")
        _check_keys(resource, path, ("name", "type"))
        if "name" not in resource:
            raise ConfigError(f"{path}.name", "is required")
        name = _str(resource["name"], f"{path}.name")
        return name, _enum(resource.get("type", "float"), f"{path}.type", ("int", "float"))

    def _asha(
        self, block: dict[Any, Any], path: str, *, aliases: Mapping[str, str]
    ) -> ASHASettings:
        """polytune's ``asha`` block. ``aliases`` are the v1 camelCase names of the keys."""
        values: dict[str, tuple[str, Any]] = {}
        for key in _ASHA_KEYS:
            given = [k for k in (key, aliases.get(key)) if k is not None and k in block]
            if len(given) > 1:
                raise ConfigError(_join(path, given[1]), f"give either {given[0]} or {given[1]}")
            if given and block[given[0]] is not None:
                values[key] = (_join(path, given[0]), block[given[0]])
        for key in ("min_resource", "max_resource", "resource", "metric", "n_experiments"):
            if key not in values:
                shown = aliases.get(key, key)
                raise ConfigError(_join(path, shown), "is required for asha")
        resource_path, resource_raw = values["resource"]
        resource_name, resource_type = self._resource(resource_raw, resource_path)
        bounds: list[int | float] = []
        for key in ("min_resource", "max_resource"):
            key_path, raw = values[key]
            number = _number(raw, key_path)
            if number <= 0:
                raise ConfigError(key_path, "must be above 0", raw)
            bounds.append(raw if isinstance(raw, int) else number)
        min_resource, max_resource = bounds
        if max_resource < min_resource:
            raise ConfigError(
                values["max_resource"][0],
                f"must be at least min_resource ({min_resource})",
                max_resource,
            )
        if resource_type == "int" and min_resource < 1:
            raise ConfigError(
                values["min_resource"][0], "must be at least 1 for an int resource", min_resource
            )
        eta = 3.0
        if "eta" in values:
            eta_path, raw_eta = values["eta"]
            eta = _number(raw_eta, eta_path)
            if eta <= 1:
                raise ConfigError(eta_path, "must be above 1 (the rung reduction factor)", raw_eta)
        # Count before building the list: eta = 1.000001 would give millions of rungs.
        count = asha_rung_count(min_resource, max_resource, eta)
        if count <= 100 * MAX_BRACKETS:  # integer rounding may merge some
            count = len(asha_rungs(min_resource, max_resource, eta, cast(Any, resource_type)))
        if count > MAX_BRACKETS:
            raise ConfigError(
                path,
                f"min_resource={min_resource}, max_resource={max_resource} with eta={eta:g} give "
                f"{count} rungs; polytune supports at most {MAX_BRACKETS} (raise eta)",
            )
        if count == 1:
            self.warnings.append(
                f"{path}: min_resource and max_resource give a single rung, so asha runs a random "
                "search at max_resource"
            )
        n_path, n_raw = values["n_experiments"]
        n = self._cap_discrete(_int(n_raw, n_path, minimum=1), n_path, "asha")
        resume = _bool(values["resume"][1], values["resume"][0]) if "resume" in values else False
        self.resource_name, self.resource_owner = resource_name, "asha"
        return ASHASettings(
            min_resource=min_resource,
            max_resource=max_resource,
            eta=eta,
            resource_name=resource_name,
            resource_type=cast(Literal["int", "float"], resource_type),
            metric=self._metric(values["metric"][1], values["metric"][0]),
            n_experiments=n,
            resume=resume,
        )

    def _utility_function(self, value: Any, path: str, *, v1: bool) -> dict[str, Any]:
        """BO's utility function block (snake_case in v0, camelCase in v1) → BOSettings kwargs."""
        if value is None:
            return {}
        block = _mapping(value, path)
        names = (
            {
                "acquisitionFunction": "acquisition_function",
                "kappa": "kappa",
                "eps": "eps",
                "numWarmup": "n_warmup",
                "numIterations": "n_iter",
                "gaussianProcess": "gaussian_process",
            }
            if v1
            else {
                k: k
                for k in (
                    "acquisition_function",
                    "kappa",
                    "eps",
                    "n_warmup",
                    "n_iter",
                    "gaussian_process",
                )
            }
        )
        _check_keys(block, path, tuple(names))
        out: dict[str, Any] = {}
        for key, raw in block.items():
            if raw is None:
                continue
            field_name, key_path = names[key], _join(path, key)
            if field_name == "acquisition_function":
                out[field_name] = _enum(raw, key_path, ("ucb", "ei", "poi"))
            elif field_name in ("kappa", "eps"):
                out[field_name] = _positive(raw, key_path, allow_zero=True)
            elif field_name in ("n_warmup", "n_iter"):
                out[field_name] = _int(raw, key_path, minimum=1)
            else:
                out.update(self._gaussian_process(raw, key_path, v1=v1))
        return out

    def _gaussian_process(self, value: Any, path: str, *, v1: bool) -> dict[str, Any]:
        block = _mapping(value, path)
        names = (
            {
                "kernel": "kernel",
                "lengthScale": "length_scale",
                "nu": "nu",
                "numRestartsOptimizer": "n_restarts_optimizer",
            }
            if v1
            else {k: k for k in ("kernel", "length_scale", "nu", "n_restarts_optimizer")}
        )
        _check_keys(block, path, tuple(names))
        out: dict[str, Any] = {}
        for key, raw in block.items():
            if raw is None:
                continue
            field_name, key_path = names[key], _join(path, key)
            if field_name == "kernel":
                out[field_name] = _enum(raw, key_path, ("matern", "rbf"))
            elif field_name in ("length_scale", "nu"):
                out[field_name] = _positive(raw, key_path)
            else:
                out[field_name] = _int(raw, key_path, minimum=0)
        return out

    def _bo(
        self,
        block: dict[Any, Any],
        path: str,
        *,
        initial_key: str,
        iterations_key: str,
        v1: bool,
    ) -> BOSettings:
        for key in (initial_key, iterations_key, "metric"):
            if block.get(key) is None:
                raise ConfigError(_join(path, key), "is required for bayesian optimization")
        n_initial = _int(block[initial_key], _join(path, initial_key), minimum=1)
        n_iterations = _int(block[iterations_key], _join(path, iterations_key), minimum=0)
        n_initial = self._cap_discrete(n_initial, _join(path, initial_key), "the initial trials")
        metric = self._metric(block["metric"], _join(path, "metric"))
        uf_key = "utilityFunction" if v1 else "utility_function"
        extra = self._utility_function(block.get(uf_key), _join(path, uf_key), v1=v1)
        return BOSettings(
            n_initial_trials=n_initial, n_iterations=n_iterations, metric=metric, **extra
        )

    # ----- early stopping ---------------------------------------------------------------------
    def _early_stopping(self, value: Any, path: str, *, v1: bool) -> list[EarlyStopping]:
        if value is None:
            return []
        items = _list(value, path, "a list of early-stopping rules")
        rules: list[EarlyStopping] = []
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]"
            rules.append(self._early_stopping_item(item, item_path, v1=v1))
        return rules

    def _early_stopping_item(self, item: Any, path: str, *, v1: bool) -> EarlyStopping:
        item = _mapping(item, path, "a mapping such as {metric, value, optimization}")
        kinds = ("metric_early_stopping", "failure_early_stopping")
        kind = "metric_early_stopping"
        if v1 and item.get("kind") is not None:
            kind = _enum(item["kind"], f"{path}.kind", kinds)
        elif v1 and "percent" in item and "metric" not in item:
            kind = "failure_early_stopping"
        if kind == "failure_early_stopping":
            _check_keys(item, path, ("kind", "percent"))
            if item.get("percent") is None:
                raise ConfigError(f"{path}.percent", "is required")
            percent = _percent(item["percent"], f"{path}.percent")
            if percent < 1:
                self.warnings.append(
                    f"{path}.percent: {percent:g} is a percentage: {percent:g} % of the "
                    "experiments, so a single failure stops the group (did you mean "
                    f"{percent * 100:g}?)"
                )
            return FailureEarlyStopping(percent=percent)
        allowed = (
            ("kind", "metric", "value", "optimization", "policy")
            if v1
            else ("metric", "value", "optimization", "higher", "policy")
        )
        _check_keys(item, path, allowed)
        if item.get("metric") is None:
            raise ConfigError(f"{path}.metric", "is required")
        metric = _str(item["metric"], f"{path}.metric")
        policy = None
        if item.get("policy") is not None:
            policy = self._policy(item["policy"], f"{path}.policy", v1=v1)
        value: float | None = None
        if item.get("value") is not None:
            value = _number(item["value"], f"{path}.value")
        elif policy is None:
            raise ConfigError(f"{path}.value", "is required (the threshold that stops the group)")
        if "higher" in item and "optimization" in item:
            raise ConfigError(f"{path}.higher", "give either higher or optimization, not both")
        optimization: str
        given = True
        if item.get("optimization") is not None:
            optimization = _enum(item["optimization"], f"{path}.optimization", _OPTIMIZATIONS)
        elif item.get("higher") is not None:
            optimization = "maximize" if _bool(item["higher"], f"{path}.higher") else "minimize"
        else:
            optimization, given = "maximize", False
            if value is not None:
                self.warnings.append(
                    f"{path}: no optimization given; as in Polyaxon the rule maximizes, so it "
                    f"stops the group once {metric} >= {value:g}"
                )
        return MetricEarlyStopping(
            metric=metric,
            value=value,
            optimization=cast(Optimization, optimization),
            optimization_given=given,
            policy=policy,
        )

    def _policy(self, value: Any, path: str, *, v1: bool) -> StoppingPolicy:
        block = _mapping(value, path, "a mapping {kind, ...}")
        names = _V1_POLICY_KEYS if v1 else {k: k for k in _V0_POLICY_KEYS}
        _check_keys(block, path, tuple(names))
        if block.get("kind") is None:
            raise ConfigError(f"{path}.kind", f"is required ({', '.join(_POLICY_KINDS)})")
        kind = _enum(block["kind"], f"{path}.kind", _POLICY_KINDS)
        out: dict[str, Any] = {}
        for key, raw in block.items():
            field_name, key_path = names[key], _join(path, key)
            if field_name == "kind" or raw is None:
                continue
            if field_name in ("evaluation_interval", "min_interval", "min_samples"):
                out[field_name] = _int(raw, key_path, minimum=1)
            elif field_name == "percent":
                if kind not in ("truncation", "diff"):
                    raise ConfigError(key_path, f"a {kind} policy takes no percent", raw)
                out[field_name] = _percent(raw, key_path)
            else:
                out[field_name] = _bool(raw, key_path)
        if kind in ("truncation", "diff") and "percent" not in out:
            raise ConfigError(_join(path, "percent"), f"is required for a {kind} policy")
        return StoppingPolicy(kind=cast(Any, kind), **out)

    # ----- v0 layouts -------------------------------------------------------------------------
    def _v0(
        self,
    ) -> tuple[
        Algorithm,
        AlgorithmSettings,
        int,
        int | None,
        list[EarlyStopping],
        dict[str, Any],
        CommandTemplate | None,
        str | None,
    ]:
        doc, layout = self.doc, self.layout
        for key in ("urlRef", "pathRef", "hubRef", "dagRef", "component"):
            if key in doc:
                raise ConfigError(key, f"belongs to v1/v2 operations, not to a {layout} file")
        if layout == "hptuning":
            path = "hptuning"
            section = _mapping(doc["hptuning"], path)
            _check_keys(section, path, _HPTUNING_KEYS)
            matrix, matrix_path = section.get("matrix"), f"{path}.matrix"
        elif layout == "settings":
            path = "settings"
            section = _mapping(doc["settings"], path)
            _check_keys(section, path, _SETTINGS_KEYS)
            matrix, matrix_path = section.get("matrix"), f"{path}.matrix"
        else:  # settings+matrix, matrix-top
            path = "settings"
            section = _mapping(doc["settings"], path) if doc.get("settings") is not None else {}
            _check_keys(section, path, _SETTINGS_KEYS)
            if "matrix" in section:
                raise ConfigError(f"{path}.matrix", "the matrix is given twice")
            matrix, matrix_path = doc.get("matrix"), "matrix"

        if "concurrency" in section and "concurrent_experiments" in section:
            raise ConfigError(
                f"{path}.concurrent_experiments",
                "give either concurrency or concurrent_experiments",
            )
        concurrency_key = (
            "concurrent_experiments" if "concurrent_experiments" in section else "concurrency"
        )
        concurrency = self._concurrency(section.get(concurrency_key), f"{path}.{concurrency_key}")
        seed = _seed(section["seed"], f"{path}.seed") if section.get("seed") is not None else None

        chosen = [k for k in _V0_ALGORITHMS if k in section]
        if "search_method" in section:
            chosen.append("search_method")
        if len(chosen) > 1:
            raise ConfigError(
                path, f"only one search algorithm can be used; found {', '.join(chosen)}"
            )
        if matrix is None:
            if chosen:
                raise ConfigError(matrix_path, f"is required: {chosen[0]} needs a search space")
            raise ConfigError(matrix_path, "is required (the search space)")
        if "n_experiments" in section and chosen and chosen[0] != "search_method":
            raise ConfigError(f"{path}.n_experiments", f"give n_experiments inside {chosen[0]}")

        params, param_sources = self._v0_params()
        self.space = self._space(matrix, matrix_path)

        algorithm: Algorithm = "grid"
        settings: AlgorithmSettings
        algo_key = chosen[0] if chosen else None
        if algo_key == "search_method" or (algo_key is None and "n_experiments" in section):
            algorithm, settings = self._settings_era(section, path)
        elif algo_key is None or algo_key == "grid_search":
            block = self._v0_block(section, path, "grid_search", ("n_experiments",))
            n = None
            if block.get("n_experiments") is not None:
                n = _int(block["n_experiments"], f"{path}.grid_search.n_experiments", minimum=1)
            settings = GridSettings(n_experiments=n)
        elif algo_key == "random_search":
            algorithm = "random"
            block = self._v0_block(section, path, algo_key, ("n_experiments",))
            n_path = f"{path}.random_search.n_experiments"
            if block.get("n_experiments") is None:
                raise ConfigError(n_path, "is required for random search")
            n = _int(block["n_experiments"], n_path, minimum=1)
            settings = RandomSettings(self._cap_discrete(n, n_path, "random search"))
        elif algo_key == "hyperband":
            algorithm = "hyperband"
            block = self._v0_block(
                section, path, algo_key, ("max_iter", "eta", "resource", "metric", "resume")
            )
            settings = self._hyperband(block, f"{path}.hyperband", max_iter_key="max_iter")
        elif algo_key == "asha":
            algorithm = "asha"
            block = self._v0_block(section, path, algo_key, _ASHA_KEYS)
            settings = self._asha(block, f"{path}.asha", aliases={})
        elif algo_key == "bo":
            algorithm = "bo"
            block = self._v0_block(
                section,
                path,
                algo_key,
                ("n_initial_trials", "n_iterations", "metric", "utility_function"),
            )
            settings = self._bo(
                block,
                f"{path}.bo",
                initial_key="n_initial_trials",
                iterations_key="n_iterations",
                v1=False,
            )
        else:  # tpe: polytune's extension in the hptuning layout
            algorithm = "tpe"
            block = self._v0_block(
                section,
                path,
                "tpe",
                ("n_experiments", "metric", "n_initial_trials", "algorithm", "n_ei_candidates"),
            )
            tpe_path = f"{path}.tpe"
            for required in ("n_experiments", "metric"):
                if block.get(required) is None:
                    raise ConfigError(f"{tpe_path}.{required}", "is required for tpe")
            tpe_kwargs: dict[str, Any] = {}
            if block.get("n_initial_trials") is not None:
                tpe_kwargs["n_initial_trials"] = _int(
                    block["n_initial_trials"], f"{tpe_path}.n_initial_trials", minimum=1
                )
            if block.get("algorithm") is not None:
                tpe_kwargs["algorithm"] = _enum(
                    block["algorithm"], f"{tpe_path}.algorithm", ("tpe", "rand", "anneal")
                )
            if block.get("n_ei_candidates") is not None:
                tpe_kwargs["n_ei_candidates"] = _int(
                    block["n_ei_candidates"], f"{tpe_path}.n_ei_candidates", minimum=1
                )
            n_path = f"{tpe_path}.n_experiments"
            settings = TPESettings(
                n_experiments=self._cap_discrete(
                    _int(block["n_experiments"], n_path, minimum=1), n_path, "tpe"
                ),
                metric=self._metric(block["metric"], f"{tpe_path}.metric"),
                **tpe_kwargs,
            )
        self._check_algorithm_space(algorithm, path)
        early = self._early_stopping(
            section.get("early_stopping"), f"{path}.early_stopping", v1=False
        )
        self._check_collisions(params, param_sources)
        params = self._v0_inputs(params)
        command, note = self._v0_command(params)
        return algorithm, settings, concurrency, seed, early, params, command, note

    def _v0_block(
        self, section: dict[Any, Any], path: str, key: str, allowed: Sequence[str]
    ) -> dict[Any, Any]:
        value = section.get(key)
        if value is None:
            return {}
        block = _mapping(value, f"{path}.{key}")
        _check_keys(block, f"{path}.{key}", allowed)
        return block

    def _settings_era(
        self, section: dict[Any, Any], path: str
    ) -> tuple[Algorithm, AlgorithmSettings]:
        """Jan–Mar 2018: ``search_method`` + ``n_experiments`` (an int, or a fraction of the
        space: ``< 1`` → ``int(space * n)``; ``>= space`` → the whole space; else ``int(n)``)."""
        method = "sequential"
        if section.get("search_method") is not None:
            method = _enum(
                section["search_method"], f"{path}.search_method", ("sequential", "random")
            )
        n_path = f"{path}.n_experiments"
        raw = section.get("n_experiments")
        size = self.space.size
        n: int | None = None
        if raw is not None:
            value = _number(raw, n_path)
            if value <= 0:
                raise ConfigError(n_path, "must be positive", raw)
            if value < 1:
                if size is None:
                    raise ConfigError(
                        n_path, "a fraction of the space needs an all-discrete matrix", raw
                    )
                n = int(size * value)
                if n < 1:
                    raise ConfigError(
                        n_path,
                        f"{value:g} of a space of {size} configurations is no experiment",
                        raw,
                    )
            elif size is not None and value >= size:
                n = None
            else:
                n = int(value)
        if method == "sequential":
            return "grid", GridSettings(n_experiments=n)
        if n is None:
            if size is None:
                raise ConfigError(n_path, "is required for random search over a continuous space")
            n = size
        return "random", RandomSettings(n_experiments=n)

    def _v0_params(self) -> tuple[dict[str, Any], dict[str, str]]:
        doc = self.doc
        if "params" in doc and "declarations" in doc:
            raise ConfigError("declarations", "give either params or declarations, not both")
        key = "declarations" if "declarations" in doc else "params"
        raw = doc.get(key)
        if raw is None:
            return {}, {}
        section = _mapping(raw, key, "a mapping of names to values")
        params: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for name, value in section.items():
            if not isinstance(name, str) or not name or _CONTROL_RE.search(name):
                raise ConfigError(key, "param names must be non-empty printable strings", name)
            params[name] = value
            sources[name] = f"{key}.{name}"
        return params, sources

    def _inputs(self, raw: Any, path: str) -> list[tuple[str, bool, Any, bool, str]]:
        """``inputs`` → (name, has_value, value, optional, key path) for each declared input."""
        if raw is None:
            return []
        items = _list(raw, path, "a list of inputs")
        out = []
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]"
            item = _mapping(item, item_path, "a mapping {name, type, ...}")
            name = _str(item.get("name"), f"{item_path}.name")
            value_key = "value" if item.get("value") is not None else "default"
            has_value = item.get(value_key) is not None
            optional_raw = item.get("isOptional", item.get("is_optional", False))
            optional = bool(optional_raw) if isinstance(optional_raw, bool) else False
            out.append((name, has_value, item.get(value_key), optional, item_path))
        return out

    def _v0_inputs(self, params: dict[str, Any]) -> dict[str, Any]:
        """v0 ``inputs``: a default is a constant param unless ``params`` gives the value."""
        merged = dict(params)
        for name, has_value, value, optional, path in self._inputs(
            self.doc.get("inputs"), "inputs"
        ):
            if name in params:
                continue
            if name in self.space.names or name == self.resource_name:
                if has_value:
                    raise ConfigError(
                        path,
                        f"input {name!r} has a default and is also a matrix parameter; Polyaxon "
                        "0.x let the default win and searched nothing (polyaxon#768): remove one",
                    )
                continue
            if has_value:
                merged[name] = value
            elif not optional:
                raise ConfigError(
                    path, f"required input {name!r} gets no value: give it in params or the matrix"
                )
        return merged

    def _v0_command(self, params: Mapping[str, Any]) -> tuple[CommandTemplate | None, str | None]:
        doc = self.doc
        if "run" in doc and "exec" in doc:
            raise ConfigError("exec", "give either run or exec (its older name), not both")
        key = "exec" if "exec" in doc else "run"
        raw = doc.get(key)
        if raw is None:
            if any(k in doc for k in ("model", "train")):
                return (
                    None,
                    "no run.cmd: the file describes a Polyaxon-library model; nothing to run",
                )
            return None, "no run.cmd: nothing to run"
        run = _mapping(raw, key)
        if "kind" in run or "container" in run:
            raise ConfigError(
                key, f"a {self.layout} polyaxonfile takes run: {{cmd: ...}}, not a v1 component run"
            )
        _check_keys(run, key, _V0_RUN_KEYS)
        if run.get("image"):
            self.notes.append(f"{key}.image is ignored: polytune runs commands on this machine")
        if any(run.get(k) for k in ("steps", "build_steps", "install")):
            self.notes.append(f"{key} build steps are not run: prepare the environment yourself")
        if run.get("env_vars"):
            self.notes.append(f"{key}.env_vars is ignored: use polytune.env")
        cmd_path = f"{key}.cmd"
        cmd = run.get("cmd")
        if cmd is None:
            return None, f"no {cmd_path}: nothing to run"
        if isinstance(cmd, dict):
            raise ConfigError(
                cmd_path,
                "conditional commands (if/cond/do/else_do) are not supported; write one shell "
                "command (use the shell's own if, or read the params in your script)",
            )
        if isinstance(cmd, str):
            parts = [cmd]
        elif isinstance(cmd, list) and cmd:
            parts = []
            for i, part in enumerate(cmd):
                if not isinstance(part, str):
                    raise ConfigError(f"{cmd_path}[{i}]", "must be a string", part)
                parts.append(part)
        else:
            raise ConfigError(cmd_path, "must be a command string or a list of them", cmd)
        cleaned = []
        for i, part in enumerate(parts):
            part_path = cmd_path if isinstance(cmd, str) else f"{cmd_path}[{i}]"
            if not part.strip():
                raise ConfigError(part_path, "is empty")
            new = _FOLDED_CONTINUATION_RE.sub(" ", part).strip()
            if new != part.strip():
                self.notes.append(
                    f"{cmd_path}: backslash line continuations folded into the line by YAML "
                    "(\\ followed by a space) are read as spaces"
                )
            cleaned.append(new)
        template = CommandTemplate("shell", tuple(cleaned))
        self._check_placeholders(template, cmd_path, params)
        return template, None

    # ----- collisions and placeholders --------------------------------------------------------
    def _check_collisions(self, params: Mapping[str, Any], sources: Mapping[str, str]) -> None:
        matrix_names = set(self.space.names) | set(self.mapping_keys)
        for name in params:
            where = f"-P {name}" if name in self.overridden else sources.get(name, name)
            if name in matrix_names:
                if name in self.overridden:
                    raise ConfigError(
                        where,
                        f"{name!r} is a matrix parameter; -P only sets constant params "
                        "(edit the matrix instead)",
                    )
                raise ConfigError(
                    where,
                    f"{name!r} is both a constant param and a matrix parameter (Polyaxon "
                    "silently used the constant, polyaxon#768); remove one of them",
                )
            if name == self.resource_name:
                raise ConfigError(
                    where,
                    f"{name!r} is {self.resource_owner}'s resource, which polytune sets for every rung; "
                    "remove the constant param",
                )
        if self.resource_name is not None and self.resource_name in matrix_names:
            raise ConfigError(
                self.space[self.resource_name].key_path
                if self.resource_name in self.space.names
                else "matrix.values",
                f"{self.resource_name!r} is {self.resource_owner}'s resource and cannot also be a matrix "
                "parameter",
            )

    def _check_placeholders(
        self, template: CommandTemplate, path: str, params: Mapping[str, Any]
    ) -> None:
        known = [*params, *self.space.names, *self.mapping_keys]
        if self.resource_name is not None:
            known.append(self.resource_name)
        for part in template.parts:
            for bad in ("{%", "{#"):
                if bad in part:
                    raise ConfigError(
                        path,
                        "Jinja statements and comments ({% ... %}, {# ... #}) are not supported; "
                        "only {{ name }} placeholders are",
                        part,
                    )
        for name in placeholders(template):
            if name in known or name in CONTEXT_NAMES:
                continue
            name = _clean(name)
            shown = ", ".join(map(_clean, dict.fromkeys(known))) or "none"
            if not re.match(r"^[A-Za-z_][\w\-.']*$", name):
                raise ConfigError(
                    path,
                    f"{{{{ {name} }}}} is not a name; only {{{{ name }}}} placeholders are "
                    f"supported (known names: {shown}, globals.*)",
                )
            hint = closest(name, [*known, *CONTEXT_NAMES])
            did_you_mean = f"did you mean {hint!r}? " if hint else ""
            raise ConfigError(
                path,
                f"unknown name {{{{ {name} }}}}: {did_you_mean}known names are {shown} and "
                f"{', '.join(CONTEXT_NAMES)}",
            )

    # ----- v1 / v2 ----------------------------------------------------------------------------
    def _v1(
        self,
    ) -> tuple[
        Algorithm,
        AlgorithmSettings,
        int,
        int | None,
        list[EarlyStopping],
        dict[str, Any],
        CommandTemplate | None,
        str | None,
    ]:
        doc = self.doc
        for key in ("hptuning", "settings", "declarations"):
            if key in doc:
                raise ConfigError(key, "belongs to Polyaxon 0.x files, not to a v1/v2 operation")
        self._reject_dag(doc, "")
        if isinstance(doc.get("component"), dict):
            self._reject_dag(doc["component"], "component")
        path = "matrix"
        block = _mapping(doc["matrix"], path)
        if block.get("kind") is None:
            raise ConfigError(f"{path}.kind", f"is required ({', '.join(_V1_KINDS)})")
        kind = _enum(block["kind"], f"{path}.kind", _V1_KINDS)
        if kind == "iterative":
            raise ConfigError(
                f"{path}.kind",
                "iterative needs a custom tuner; polytune does not run custom tuners (use grid, "
                "random, hyperband, asha, bayes, tpe or mapping)",
                block["kind"],
            )
        _check_keys(block, path, _V1_MATRIX_KEYS[kind])
        algorithm = _V1_ALGORITHM[kind]
        concurrency = self._concurrency(block.get("concurrency"), f"{path}.concurrency")
        seed = _seed(block["seed"], f"{path}.seed") if block.get("seed") is not None else None
        if block.get("tuner") is not None:
            self.notes.append(
                f"{path}.tuner is ignored: polytune uses its own {algorithm} implementation"
            )
        settings: AlgorithmSettings
        if kind == "mapping":
            settings = self._mapping_values(block.get("values"), f"{path}.values")
        else:
            if block.get("params") is None:
                raise ConfigError(f"{path}.params", f"is required for {kind}")
            self.space = self._space(block["params"], f"{path}.params")
            if kind == "grid":
                n = None
                if block.get("numRuns") is not None:
                    n = _int(block["numRuns"], f"{path}.numRuns", minimum=1)
                settings = GridSettings(n_experiments=n)
            elif kind == "random":
                n_path = f"{path}.numRuns"
                if block.get("numRuns") is None:
                    raise ConfigError(n_path, "is required for random search")
                n = _int(block["numRuns"], n_path, minimum=1)
                settings = RandomSettings(self._cap_discrete(n, n_path, "random search"))
            elif kind == "hyperband":
                settings = self._hyperband(block, path, max_iter_key="maxIterations")
            elif kind == "asha":
                settings = self._asha(
                    block,
                    path,
                    aliases={
                        "min_resource": "minResource",
                        "max_resource": "maxResource",
                        "n_experiments": "numRuns",
                    },
                )
            elif kind == "bayes":
                iterations_key = "maxIterations"
                if "numIterations" in block:
                    if "maxIterations" in block:
                        raise ConfigError(
                            f"{path}.numIterations", "give either maxIterations or numIterations"
                        )
                    iterations_key = "numIterations"
                    self.notes.append(
                        f"{path}.numIterations is read as maxIterations (its name in early v1)"
                    )
                settings = self._bo(
                    block,
                    path,
                    initial_key="numInitialRuns",
                    iterations_key=iterations_key,
                    v1=True,
                )
            else:
                settings = self._tpe_v1(block, path, kind)
            self._check_algorithm_space(algorithm, path)
        early = self._early_stopping(block.get("earlyStopping"), f"{path}.earlyStopping", v1=True)
        params, sources = self._v1_params()
        command, note, params = self._v1_component(params, sources)
        return algorithm, settings, concurrency, seed, early, params, command, note

    def _tpe_v1(self, block: dict[Any, Any], path: str, kind: str) -> TPESettings:
        for key in ("numRuns", "metric"):
            if block.get(key) is None:
                raise ConfigError(f"{path}.{key}", f"is required for {kind}")
        num_runs = _int(block["numRuns"], f"{path}.numRuns", minimum=1)
        iterations = 1
        if block.get("maxIterations") is not None:
            iterations = _int(block["maxIterations"], f"{path}.maxIterations", minimum=1)
        elif kind == "tpe":
            self.notes.append(
                f"{path}: no maxIterations; Polyaxon's tpe would iterate without end, polytune "
                f"runs numRuns={num_runs} experiments"
            )
        kwargs: dict[str, Any] = {}
        if kind == "hyperopt" and block.get("algorithm") is not None:
            kwargs["algorithm"] = _enum(
                block["algorithm"], f"{path}.algorithm", ("tpe", "rand", "anneal")
            )
        if block.get("numInitialRuns") is not None:
            kwargs["n_initial_trials"] = _int(
                block["numInitialRuns"], f"{path}.numInitialRuns", minimum=1
            )
        return TPESettings(
            n_experiments=self._cap_discrete(num_runs * iterations, f"{path}.numRuns", kind),
            metric=self._metric(block["metric"], f"{path}.metric"),
            **kwargs,
        )

    def _mapping_values(self, value: Any, path: str) -> MappingSettings:
        if value is None:
            raise ConfigError(path, "is required for mapping (a list of {name: value} mappings)")
        items = _list(value, path, "a non-empty list of {name: value} mappings")
        if not items:
            raise ConfigError(path, "must list at least one mapping")
        keys: list[str] | None = None
        out: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]"
            item = _mapping(item, item_path, "a mapping of names to values")
            if not item:
                raise ConfigError(item_path, "is empty")
            for name in item:
                if not isinstance(name, str) or not name:
                    raise ConfigError(item_path, "names must be non-empty strings", name)
            if keys is None:
                keys = list(item)
            elif set(item) != set(keys):
                raise ConfigError(
                    item_path,
                    f"every mapping must have the same names as the first ({', '.join(keys)}); "
                    f"this one has {', '.join(map(_clean, item))}",
                )
            out.append(dict(item))
        self.mapping_keys = list(keys or [])
        return MappingSettings(values=tuple(out))

    def _v1_params(self) -> tuple[dict[str, Any], dict[str, str]]:
        raw = self.doc.get("params")
        if raw is None:
            return {}, {}
        section = _mapping(raw, "params", "a mapping of names to {value: ...}")
        params: dict[str, Any] = {}
        sources: dict[str, str] = {}
        allowed = ("value", "ref", "connection", "contextOnly", "toInit", "toEnv")
        for name, spec in section.items():
            path = f"params.{name}"
            if not isinstance(name, str) or not name or _CONTROL_RE.search(name):
                raise ConfigError("params", "param names must be non-empty printable strings", name)
            spec = _mapping(spec, path, "a mapping {value: ...} (a v1/v2 param)")
            _check_keys(spec, path, allowed)
            if spec.get("ref") is not None:
                self.notes.append(
                    f"{path}: a reference to another run ({spec['ref']}) is not available "
                    "locally; the param is left out"
                )
                continue
            if "value" not in spec:
                if spec.get("connection") is not None:
                    self.notes.append(f"{path}: connections are not available locally; left out")
                    continue
                raise ConfigError(f"{path}.value", "is required")
            params[name] = spec["value"]
            sources[name] = path
        return params, sources

    def _v1_component(
        self, params: dict[str, Any], sources: dict[str, str]
    ) -> tuple[CommandTemplate | None, str | None, dict[str, Any]]:
        doc = self.doc
        refs = [k for k in _REF_KEYS if doc.get(k) is not None]
        top_kind = doc.get("kind")
        is_component = isinstance(top_kind, str) and top_kind.lower() == "component"
        if len(refs) > 1:
            raise ConfigError(refs[1], f"give one of {', '.join(_REF_KEYS)}, not several")
        if refs and "component" in doc:
            raise ConfigError(refs[0], "give either an inline component or a reference, not both")
        self._check_collisions(params, sources)
        if refs:
            ref = refs[0]
            return (
                None,
                f"{ref} {doc[ref]}: the component lives elsewhere and polytune does not follow "
                "references, so there is no command to run (check validates the search only)",
                params,
            )
        if "component" in doc:
            component = _mapping(doc["component"], "component")
            prefix = "component"
        elif is_component or "run" in doc:
            component, prefix = doc, ""
        else:
            return None, "no component: nothing to run", params
        params = dict(params)
        provided = set(params) | set(self.space.names) | set(self.mapping_keys)
        if self.resource_name is not None:
            provided.add(self.resource_name)
        for name, has_value, value, optional, path in self._inputs(
            component.get("inputs"), _join(prefix, "inputs")
        ):
            if name in provided:
                continue  # the matrix, the resource or params give this input its value
            if has_value:
                params[name] = value
            elif not optional:
                raise ConfigError(
                    path, f"required input {name!r} gets no value: give it in params or the matrix"
                )
        run_path = _join(prefix, "run")
        if component.get("run") is None:
            return None, f"no {run_path}: nothing to run", params
        run = _mapping(component["run"], run_path)
        kind = run.get("kind", "job")
        if not isinstance(kind, str) or kind.lower() != "job":
            raise ConfigError(
                _join(run_path, "kind"),
                "polytune runs jobs (run.kind: job); this kind is not supported",
                kind,
            )
        if run.get("container") is None:
            return None, f"no {run_path}.container: nothing to run", params
        container_path = f"{run_path}.container"
        container = _mapping(run["container"], container_path)
        if container.get("image"):
            self.notes.append(
                f"{container_path}.image ({container['image']}) is ignored: polytune runs the "
                "command on this machine"
            )
        if container.get("workingDir"):
            self.notes.append(
                f"{container_path}.workingDir is ignored: commands run from the "
                "polyaxonfile's directory"
            )
        if container.get("env"):
            self.notes.append(f"{container_path}.env is ignored: use polytune.env")
        if run.get("init"):
            self.notes.append(
                f"{run_path}.init steps are not run: prepare the environment yourself"
            )
        command = container.get("command")
        args = container.get("args")
        if command is None:
            return (
                None,
                f"{container_path} has no command (the image's entrypoint is not available "
                "locally): nothing to run",
                params,
            )
        if isinstance(command, str):
            if args is not None:
                raise ConfigError(
                    f"{container_path}.command",
                    "a command string with args is ambiguous; write the command as a list",
                    command,
                )
            template = CommandTemplate("shell", (command,))
            self._check_placeholders(template, f"{container_path}.command", params)
            return template, None, params
        argv = self._argv(command, f"{container_path}.command")
        if args is not None:
            argv += self._argv([args] if isinstance(args, str) else args, f"{container_path}.args")
        if not argv:
            raise ConfigError(f"{container_path}.command", "is empty")
        template = CommandTemplate("argv", tuple(argv))
        self._check_placeholders(template, container_path, params)
        return template, None, params

    def _argv(self, value: Any, path: str) -> list[str]:
        items = _list(value, path, "a list of strings")
        out = []
        for i, item in enumerate(items):
            if isinstance(item, bool):
                out.append("true" if item else "false")
            elif isinstance(item, str | int | float):
                out.append(str(item))
            else:
                raise ConfigError(f"{path}[{i}]", "must be a string", item)
        return out
