"""The normalized, typed configuration every polyaxonfile layout is turned into.

``config.load`` builds a ``Config``; nothing downstream re-checks user input. All classes are
frozen; plain JSON types only (``to_json`` is what ``group.json`` records).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from polytune.space import Space

Optimization = Literal["minimize", "maximize"]
Algorithm = Literal["grid", "random", "mapping", "hyperband", "asha", "bo", "tpe"]
ALGORITHMS: tuple[str, ...] = ("grid", "random", "mapping", "hyperband", "asha", "bo", "tpe")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    optimization: Optimization = "maximize"


@dataclass(frozen=True)
class GridSettings:
    n_experiments: int | None = None  # None: the whole grid


@dataclass(frozen=True)
class RandomSettings:
    n_experiments: int


@dataclass(frozen=True)
class MappingSettings:
    values: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class HyperbandSettings:
    max_iter: int | float
    eta: float
    resource_name: str
    resource_type: Literal["int", "float"]
    metric: MetricSpec
    resume: bool = False


@dataclass(frozen=True)
class ASHASettings:
    """Asynchronous successive halving: ``n_experiments`` fresh configurations, rungs with
    resources ``min_resource * eta^k`` below ``max_resource``, then ``max_resource``."""

    min_resource: int | float
    max_resource: int | float
    eta: float
    resource_name: str
    resource_type: Literal["int", "float"]
    metric: MetricSpec
    n_experiments: int
    resume: bool = False


@dataclass(frozen=True)
class BOSettings:
    n_initial_trials: int
    n_iterations: int
    metric: MetricSpec
    acquisition_function: Literal["ucb", "ei", "poi"] = "ei"
    kappa: float = 2.576
    eps: float = 0.0
    n_warmup: int = 2048  # quasi-random candidates per suggestion (Optuna: 2048; 10000 broke the latency budget)
    n_iter: int = 10
    kernel: Literal["matern", "rbf"] = "matern"
    length_scale: float = 1.0
    nu: float = 2.5
    n_restarts_optimizer: int = 5


@dataclass(frozen=True)
class TPESettings:
    n_experiments: int
    metric: MetricSpec
    n_initial_trials: int = 10
    algorithm: Literal["tpe", "rand", "anneal"] = "tpe"
    #: Candidates drawn from the good-set estimator per suggestion (Bergstra et al.: 24).
    n_ei_candidates: int = 24


AlgorithmSettings = (
    GridSettings
    | RandomSettings
    | MappingSettings
    | HyperbandSettings
    | ASHASettings
    | BOSettings
    | TPESettings
)


@dataclass(frozen=True)
class StoppingPolicy:
    """A per-experiment early-stopping policy (median / truncation / diff)."""

    kind: Literal["median", "truncation", "diff", "average"]
    evaluation_interval: int = 1
    min_interval: int = 1
    min_samples: int = 1
    percent: float | None = None
    include_succeeded: bool = True


@dataclass(frozen=True)
class MetricEarlyStopping:
    """Group threshold (``metric`` reaching ``value``), optionally with a per-experiment policy."""

    metric: str
    value: float | None
    optimization: Optimization = "maximize"
    optimization_given: bool = True
    policy: StoppingPolicy | None = None


@dataclass(frozen=True)
class FailureEarlyStopping:
    percent: float


EarlyStopping = MetricEarlyStopping | FailureEarlyStopping


@dataclass(frozen=True)
class CommandTemplate:
    """How to build the experiment's shell command.

    ``kind == "shell"``: ``parts`` are shell command strings (v0 ``run.cmd``; a list is joined
    with `` && ``), placeholders ``{{ name }}`` are replaced by shell-quoted values.
    ``kind == "argv"``: ``parts`` are argv elements (v1/v2 ``container.command + args``); each is
    rendered then quoted as a whole word.
    """

    kind: Literal["shell", "argv"]
    parts: tuple[str, ...]


@dataclass(frozen=True)
class PolytuneSettings:
    """polytune's own extension section (``polytune:``), ignored by Polyaxon."""

    metric: MetricSpec | None = None
    timeout: float | None = None
    max_restarts: int = 0
    stop_grace: float = 10.0
    executor: str = "local"
    #: Dask executor: the scheduler's address (``tcp://HOST:PORT``) or its scheduler file.
    scheduler: str | None = None
    scheduler_file: str | None = None
    #: GPU slots (local executor): device ids handed out as ``CUDA_VISIBLE_DEVICES``.
    gpus: tuple[str, ...] = ()
    gpus_per_experiment: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    stdout_metrics: bool = False
    #: Seconds an experiment may go without a new metric line or output (None: no limit).
    stall_timeout: float | None = None
    #: What a group's early stop does to running experiments: stop them, or let them finish.
    on_early_stop: Literal["stop", "finish"] = "stop"


@dataclass(frozen=True)
class Config:
    """One validated experiment group."""

    layout: str  # "hptuning" | "settings" | "settings+matrix" | "matrix-top" | "v1"
    space: Space
    algorithm: Algorithm
    settings: AlgorithmSettings
    concurrency: int = 1
    seed: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    command: CommandTemplate | None = None
    command_note: str | None = None  # e.g. "urlRef component: no command to run"
    early_stopping: tuple[EarlyStopping, ...] = ()
    polytune: PolytuneSettings = field(default_factory=PolytuneSettings)
    base_dir: Path = field(default_factory=Path.cwd)
    sources: tuple[str, ...] = ()
    name: str | None = None
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    document: Mapping[str, Any] = field(default_factory=dict)  # the merged YAML, as loaded

    @property
    def metric(self) -> MetricSpec | None:
        """The group's objective: the algorithm's metric, else polytune.metric, else the first
        early-stopping metric, else None (status then lists experiments by id)."""
        algo_metric = getattr(self.settings, "metric", None)
        if isinstance(algo_metric, MetricSpec):
            return algo_metric
        if self.polytune.metric is not None:
            return self.polytune.metric
        for rule in self.early_stopping:
            if isinstance(rule, MetricEarlyStopping):
                return MetricSpec(rule.metric, rule.optimization)
        return None

    def to_json(self) -> dict[str, Any]:
        """JSON form recorded in ``group.json`` (informational; the source of truth to rebuild a
        Config is the saved ``polyaxonfile.yml``)."""
        return {
            "layout": self.layout,
            "algorithm": self.algorithm,
            "settings": asdict(self.settings),
            "concurrency": self.concurrency,
            "seed": self.seed,
            "params": dict(self.params),
            "space": self.space.to_json(),
            "command": asdict(self.command) if self.command else None,
            "early_stopping": [asdict(r) for r in self.early_stopping],
            "polytune": asdict(self.polytune),
            "metric": asdict(self.metric) if self.metric else None,
            "base_dir": str(self.base_dir),
            "sources": list(self.sources),
        }
