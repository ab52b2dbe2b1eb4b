"""The build spec: one TOML file that says what to train, how, and how to prune.

::

    name = "tiny"                  # build name prefix
    task = "support"               # a bundled task (palm.tasks)
    seed = 0
    [model]
    base = "support"               # the bundled model of that task, or a local HF path
    [model.pretrain]               # PretrainSettings, for the bundled model only
    steps = 400
    [[objectives]]                 # two or more, names unique
    name = "brevity"
    reward = "brevity"             # built-in | python:module:function
                                   # | hf-classifier:PATH[:LABEL]; default: the name
    [grid]                         # GridConfig
    [training]                     # TrainingConfig: GRPO + LoRA, per policy
    [evaluation]                   # EvaluationConfig
    [cover]                        # CoverConfig

A spec is checked in full when it is loaded: unknown keys (with the closest valid
key), types, ranges and cross-field rules are all collected and raised together in
one SpecError, so a build that cannot run is refused before its first task.
Relative paths (a base model, an hf-classifier) are taken from the spec file's folder
and stored absolute. ``python:`` rewards are only looked up (the module must be
findable), not imported; `BuildSpec.reward_functions` imports and loads them.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from palm.errors import SpecError
from palm.pretrain import PretrainSettings
from palm.rewards import CLASSIFIER_PREFIX, RewardFn, resolve, spec_problems
from palm.tasks import task_names

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
SOLVERS = ("greedy", "exact")
ALL_LINEAR = "all-linear"


def _check(obj: object, source: str) -> None:
    """Raise every problem `obj.problems()` reports, as one SpecError."""
    problems = obj.problems()
    if problems:
        raise SpecError(problems, source=source)


def _positive(obj: object, *names: str) -> list[str]:
    return [
        f"{n}: {getattr(obj, n)} must be above 0" for n in names if getattr(obj, n) <= 0
    ]


@dataclass(frozen=True)
class Objective:
    """One objective: a name users' weight vectors refer to, and its reward."""

    name: str
    """Lower-case letters, digits, '-' or '_'; unique within the spec."""
    reward: str = ""
    """A reward spec (see palm.rewards); empty means the built-in called `name`."""

    def __post_init__(self) -> None:
        if not self.reward:
            object.__setattr__(self, "reward", self.name)
        _check(self, "objective")

    def problems(self) -> list[str]:
        out = []
        if not _NAME.match(self.name):
            out.append(
                f"name: {self.name!r} must be lower-case letters, digits, '-' or '_'"
            )
        return out + [f"reward: {p}" for p in spec_problems(self.reward)]


@dataclass(frozen=True)
class ModelConfig:
    """The base model every policy fine-tunes."""

    base: str = "support"
    """A task name for that task's bundled model (pre-trained by PALM, cached), or
    the folder of a local Hugging Face causal LM."""
    pretrain: PretrainSettings | None = None
    """How the bundled model is pre-trained; None when `base` is a folder."""

    def __post_init__(self) -> None:
        if self.pretrain is None and self.is_bundled:
            object.__setattr__(self, "pretrain", PretrainSettings())
        _check(self, "model")

    @property
    def is_bundled(self) -> bool:
        return self.base in task_names()

    def problems(self) -> list[str]:
        if self.is_bundled:
            return []
        if not Path(self.base).is_dir():
            return [
                f"base: {self.base!r} is neither a bundled model "
                f"({', '.join(task_names())}) nor an existing folder; give one"
            ]
        if self.pretrain is not None:
            return [
                "pretrain: settings apply only to a bundled base model; remove "
                f"[model.pretrain] or set base to one of {', '.join(task_names())}"
            ]
        return []


@dataclass(frozen=True)
class GridConfig:
    """The geometric grid of weight vectors (DESIGN §1)."""

    alpha: float = 0.3
    """Smallest non-zero level, in (0, 1): larger means a coarser, smaller grid."""
    mu: float = 1.0
    """Multiplicative step between levels, above 0."""

    def __post_init__(self) -> None:
        _check(self, "grid")

    def problems(self) -> list[str]:
        out = _positive(self, "mu")
        if not 0 < self.alpha < 1:
            out.append(f"alpha: {self.alpha} must lie strictly between 0 and 1")
        return out


@dataclass(frozen=True)
class TrainingConfig:
    """GRPO with a LoRA adapter, once per weight vector."""

    steps: int = 20
    """Optimizer steps per policy."""
    prompts: int = 64
    """Train-split prompts in each policy's dataset."""
    batch_size: int = 8
    """Completions per step; a multiple of num_generations (trl's GRPO groups)."""
    num_generations: int = 4
    """Completions per prompt whose rewards are compared; 2 or more."""
    learning_rate: float = 1e-3
    """AdamW learning rate of the adapter."""
    max_new_tokens: int = 48
    """Longest completion in tokens (trl's max_completion_length)."""
    temperature: float = 1.0
    """Sampling temperature while training; above 0."""
    beta: float = 0.0
    """KL penalty towards the base model; 0 turns it off."""
    lora_rank: int = 8
    """LoRA rank r."""
    lora_alpha: float = 16.0
    """LoRA scaling numerator (the update is scaled by lora_alpha / lora_rank)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA path, in [0, 1)."""
    target_modules: tuple[str, ...] | str = ALL_LINEAR
    """Module names that get adapters, or "all-linear"."""
    time_limit_s: float = 600.0
    """Hard limit on one policy's training, in seconds."""

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, list):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))
        _check(self, "training")

    def problems(self) -> list[str]:
        out = _positive(
            self,
            "steps",
            "prompts",
            "batch_size",
            "learning_rate",
            "max_new_tokens",
            "temperature",
            "lora_rank",
            "lora_alpha",
            "time_limit_s",
        )
        if self.num_generations < 2:
            out.append(
                f"num_generations: {self.num_generations} must be 2 or more; GRPO "
                "compares completions of the same prompt"
            )
        elif self.batch_size > 0 and self.batch_size % self.num_generations:
            out.append(
                f"batch_size: {self.batch_size} is not a multiple of num_generations "
                f"{self.num_generations}, as trl's GRPO requires; use "
                f"{_round_up(self.batch_size, self.num_generations)}"
            )
        if self.beta < 0:
            out.append(f"beta: {self.beta} must be 0 or more")
        if not 0 <= self.lora_dropout < 1:
            out.append(f"lora_dropout: {self.lora_dropout} must lie in [0, 1)")
        if self.target_modules != ALL_LINEAR and (
            isinstance(self.target_modules, str) or not self.target_modules
        ):
            out.append(
                f"target_modules: {self.target_modules!r} must be a non-empty list "
                f"of module names or {ALL_LINEAR!r}"
            )
        return out


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


@dataclass(frozen=True)
class EvaluationConfig:
    """How each policy's reward vector is measured on eval-split prompts."""

    prompts: int = 32
    """Eval-split prompts."""
    samples_per_prompt: int = 2
    """Completions sampled per prompt."""
    max_new_tokens: int = 48
    """Longest completion in tokens."""
    temperature: float = 0.7
    """Sampling temperature; 0 is greedy."""
    top_p: float = 1.0
    """Nucleus sampling mass, in (0, 1]."""

    def __post_init__(self) -> None:
        _check(self, "evaluation")

    def problems(self) -> list[str]:
        out = _positive(self, "prompts", "samples_per_prompt", "max_new_tokens")
        if self.temperature < 0:
            out.append(f"temperature: {self.temperature} must be 0 or more")
        if not 0 < self.top_p <= 1:
            out.append(f"top_p: {self.top_p} must lie in (0, 1]")
        return out


@dataclass(frozen=True)
class CoverConfig:
    """Pruning the trained policies to a portfolio (DESIGN §1)."""

    epsilon: float = 0.05
    """Multiplicative slack of coverage, in [0, 1)."""
    delta: float = 0.0
    """Additive slack of coverage, 0 or more."""
    solver: str = "greedy"
    """"greedy" (the paper's) or "exact" (integer programming, time-limited)."""
    budget: int | None = None
    """At most this many members: answers the smallest epsilon instead."""
    time_limit_s: float = 30.0
    """Time limit of the exact solver, in seconds."""
    samples: int = 2000
    """Weight vectors sampled densely from the simplex for coverage."""

    def __post_init__(self) -> None:
        _check(self, "cover")

    def problems(self) -> list[str]:
        out = _positive(self, "time_limit_s", "samples")
        if not 0 <= self.epsilon < 1:
            out.append(f"epsilon: {self.epsilon} must lie in [0, 1)")
        if self.delta < 0:
            out.append(f"delta: {self.delta} must be 0 or more")
        if self.solver not in SOLVERS:
            out.append(f"solver: {self.solver!r} must be one of {', '.join(SOLVERS)}")
        if self.budget is not None and self.budget < 1:
            out.append(f"budget: {self.budget} must be 1 or more, or left out")
        return out


@dataclass(frozen=True)
class BuildSpec:
    """A whole build, checked; see the module docstring for the file form."""

    name: str
    """Build name prefix: lower-case letters, digits, '-' or '_'."""
    objectives: tuple[Objective, ...]
    """Two or more objectives with unique names, in weight-vector order."""
    task: str = "support"
    """The task whose prompts train and evaluate the policies."""
    seed: int = 0
    """Seeds prompts, training and sampling."""
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    grid: GridConfig = dataclasses.field(default_factory=GridConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    cover: CoverConfig = dataclasses.field(default_factory=CoverConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "objectives", tuple(self.objectives))
        _check(self, "spec")

    def problems(self) -> list[str]:
        return _top_problems(self.name, self.task, self.seed, self.model) + (
            _objective_list_problems(self.objectives)
        )

    @property
    def objective_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.objectives)

    def reward_functions(self) -> list[RewardFn]:
        """Resolve every objective's reward (imports python: modules, loads
        classifiers); one SpecError lists all that fail."""
        functions, problems = [], []
        for i, objective in enumerate(self.objectives):
            try:
                functions.append(resolve(objective.reward))
            except Exception as e:  # any import-time failure of user code
                problems.append(f"objectives[{i}].reward: {e}")
        if problems:
            raise SpecError(problems, source=f"spec {self.name!r}")
        return functions

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; `from_dict` reads it back to an equal spec."""
        data = dataclasses.asdict(self)
        if data["model"]["pretrain"] is None:
            del data["model"]["pretrain"]
        if data["cover"]["budget"] is None:
            del data["cover"]["budget"]
        modules = data["training"]["target_modules"]
        if not isinstance(modules, str):
            data["training"]["target_modules"] = list(modules)
        data["objectives"] = [dict(o) for o in data["objectives"]]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildSpec:
        return parse_spec(data, source="stored spec")


def _top_problems(name: str, task: str, seed: int, model: ModelConfig) -> list[str]:
    out = []
    if not _NAME.match(name):
        out.append(f"name: {name!r} must be lower-case letters, digits, '-' or '_'")
    if task not in task_names():
        out.append(f"task: {task!r} is unknown; use one of {', '.join(task_names())}")
    if seed < 0:
        out.append(f"seed: {seed} must be 0 or more")
    if model.is_bundled and model.base != task:
        out.append(
            f"model.base: {model.base!r} is the bundled model of another task than "
            f"{task!r}; set base = {task!r} or give a model folder"
        )
    return out


def _objective_list_problems(objectives: tuple[Objective, ...] | list) -> list[str]:
    out = []
    if len(objectives) < 2:
        out.append(
            f"objectives: {len(objectives)} given; PALM needs 2 or more "
            "[[objectives]] tables"
        )
    names = [o.name for o in objectives]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        out.append(f"objectives: names {', '.join(repeated)} repeat; make them unique")
    return out


# -- parsing ---------------------------------------------------------------------

_SECTIONS = {
    "grid": GridConfig,
    "training": TrainingConfig,
    "evaluation": EvaluationConfig,
    "cover": CoverConfig,
}
_TOP_KEYS = ("name", "task", "seed", "model", "objectives", *_SECTIONS)


def load_spec(path: str | Path) -> BuildSpec:
    """Read and check a TOML build spec; relative paths are from its folder."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError([f"cannot be read: {e.strerror}"], source=str(path)) from e
    except UnicodeDecodeError as e:
        raise SpecError(
            [f"is not UTF-8 text (byte {e.start}); a spec is a TOML file"],
            source=str(path),
        ) from e
    return parse_spec(text, source=str(path), base_dir=path.parent)


def parse_spec(
    spec: str | dict[str, Any],
    source: str = "spec",
    base_dir: str | Path | None = None,
) -> BuildSpec:
    """Check a spec given as TOML text or as a dict; every problem in one SpecError."""
    data = _toml(spec, source) if isinstance(spec, str) else spec
    if not isinstance(data, dict):
        raise SpecError([f"is a {type(data).__name__}, not a table"], source=source)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    problems = _unknown_keys(data, _TOP_KEYS, "")
    top = {k: data[k] for k in ("name", "task", "seed") if k in data}
    for key, kind in (("name", str), ("task", str), ("seed", int)):
        if key in top and not _is(top[key], kind):
            problems.append(_type_problem(key, top[key], kind))
            top.pop(key)
    if "name" not in data:
        problems.append("name: missing; give the build a name, e.g. name = 'tiny'")
    model = _parse_model(data.get("model", {}), base, problems)
    objectives, all_parsed = _parse_objectives(data.get("objectives"), base, problems)
    sections = {
        key: _section(cls, data.get(key, {}), key, problems)
        for key, cls in _SECTIONS.items()
    }
    # Rules across sections, checked on whatever parsed, so nothing hides another.
    if model is not None:
        problems += _top_problems(
            top.get("name", "x"), top.get("task", "support"), top.get("seed", 0), model
        )
    if all_parsed:
        problems += _objective_list_problems(objectives)
    if problems:
        raise SpecError(problems, source=source)
    return BuildSpec(model=model, objectives=tuple(objectives), **top, **sections)


def _toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError([f"is not valid TOML: {e}"], source=source) from e


def _parse_model(table: Any, base_dir: Path, problems: list[str]) -> ModelConfig | None:
    if not isinstance(table, dict):
        problems.append(_type_problem("model", table, dict))
        return None
    problems += _unknown_keys(table, ("base", "pretrain"), "model.")
    base = table.get("base", "support")
    if not isinstance(base, str):
        problems.append(_type_problem("model.base", base, str))
        return None
    if base not in task_names():
        base = str((base_dir / base).resolve())
    pretrain = None
    if "pretrain" in table:
        pretrain = _section(
            PretrainSettings, table["pretrain"], "model.pretrain", problems
        )
        if pretrain is None:
            return None
    return _construct(
        ModelConfig, {"base": base, "pretrain": pretrain}, "model", problems
    )


def _parse_objectives(
    items: Any, base_dir: Path, problems: list[str]
) -> tuple[list[Objective], bool]:
    """The objectives that parse, and whether all of them did."""
    if items is None:
        items = []
    if not isinstance(items, list):
        problems.append(_type_problem("objectives", items, list))
        return [], False
    parsed, all_parsed = [], True
    for i, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("reward"), str):
            item = {**item, "reward": _absolute_classifier(item["reward"], base_dir)}
        objective = _section(Objective, item, f"objectives[{i}]", problems)
        if objective is None:
            all_parsed = False
        else:
            parsed.append(objective)
    return parsed, all_parsed


def _absolute_classifier(reward: str, base_dir: Path) -> str:
    if not reward.startswith(CLASSIFIER_PREFIX):
        return reward
    rest = reward[len(CLASSIFIER_PREFIX) :]
    path, sep, label = rest.rpartition(":")
    path, label = (path, sep + label) if sep else (rest, "")
    if not path:
        return reward
    return f"{CLASSIFIER_PREFIX}{(base_dir / path).resolve()}{label}"


def _section(cls: type, table: Any, where: str, problems: list[str]) -> Any:
    """Type-check a table against a config dataclass and build it; None (with the
    problems noted) when it cannot be built."""
    if not isinstance(table, dict):
        problems.append(_type_problem(where, table, dict))
        return None
    fields = {f.name: f for f in dataclasses.fields(cls)}
    found = _unknown_keys(table, tuple(fields), f"{where}.")
    kwargs = {}
    for key, value in table.items():
        if key not in fields:
            continue
        converted, problem = _convert(value, fields[key].type)
        if problem:
            found.append(f"{where}.{key}: {value!r} {problem}")
        else:
            kwargs[key] = converted
    missing = [
        name
        for name, f in fields.items()
        if name not in table
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    found += [f"{where}.{name}: missing; it has no default" for name in missing]
    problems += found
    if found:
        return None
    return _construct(cls, kwargs, where, problems)


def _construct(cls: type, kwargs: dict[str, Any], where: str, problems: list[str]):
    try:
        return cls(**kwargs)
    except SpecError as e:
        problems += [f"{where}.{p}" for p in e.problems]
        return None


def _convert(value: Any, type_name: str) -> tuple[Any, str | None]:
    """The value in the field's type, or a problem saying what was expected."""
    if "None" in type_name and value is None:
        return None, None
    if type_name.startswith("int"):
        ok = _is(value, int)
        return value, None if ok else "is not an integer"
    if type_name == "float":
        ok = _is(value, int) or _is(value, float)
        return (float(value), None) if ok else (value, "is not a number")
    if type_name == "str":
        return value, None if isinstance(value, str) else "is not a string"
    if type_name.startswith("tuple[str, ...]"):
        if isinstance(value, str) and type_name.endswith("| str"):
            return value, None
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(value), None
        return value, "is not a list of strings"
    raise AssertionError(f"no conversion for field type {type_name}")


def _is(value: Any, kind: type) -> bool:
    # TOML booleans are Python bools, which are ints; a flag is never a count.
    return isinstance(value, kind) and not isinstance(value, bool)


def _type_problem(where: str, value: Any, kind: type) -> str:
    names = {str: "a string", int: "an integer", dict: "a table", list: "a list"}
    return f"{where}: {value!r} is not {names[kind]}"


def _unknown_keys(table: dict, valid: tuple[str, ...], where: str) -> list[str]:
    out = []
    for key in table:
        if key in valid:
            continue
        close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(valid)}"
        out.append(f"{where}{key}: unknown key; {hint}")
    return out
