"""The portfolio: the members a build keeps, their reward vectors and its certificate.

The pruner writes it as `<store>/builds/<build>/portfolio.json` (and every version
under `portfolios/`), then announces the version on the Redis channel
`PORTFOLIO_CHANNEL` with `publish_version`. The router reads it with
`load_portfolio` and routes each weight vector to the member with the highest
scalarised value. The format::

    {"format": "palm.portfolio/1", "build": "tiny-20261203-ab12cd", "version": 1,
     "created": "2026-12-03T13:00:00Z", "objectives": ["brevity", ...],
     "base_model": "<path or fsspec URL of the base model folder>",
     "solver": "greedy", "epsilon": 0.05, "delta": 0.0, "trained": 12,
     "members": [{"id": "p0003", "weight": [...], "rewards": [...],
                  "stderr": [...], "adapter": "<path or URL of the adapter folder>"}],
     "certificate": {"multiplicative": {"gap": 0.012, "weight": [...]},
                     "additive": {"gap": 0.004, "weight": [...]}}}

Every field is checked when the file is read: a portfolio that loads is one the
router can serve.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from palm.certify import Certificate, Gap
from palm.errors import InputError
from palm.store import Store

FORMAT = "palm.portfolio/1"
PORTFOLIO_CHANNEL = "palm:portfolios"

# Member ids become adapter names (peft forbids '.') and appear in metrics labels.
_MEMBER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Member:
    """One policy kept in the portfolio: a LoRA adapter with its reward vector."""

    id: str
    weight: tuple[float, ...]
    rewards: tuple[float, ...]
    stderr: tuple[float, ...]
    adapter: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "weight": list(self.weight),
            "rewards": list(self.rewards),
            "stderr": list(self.stderr),
            "adapter": self.adapter,
        }


@dataclass(frozen=True)
class Portfolio:
    """One version of a build's portfolio, validated."""

    build: str
    version: int
    created: str
    objectives: tuple[str, ...]
    base_model: str
    solver: str
    epsilon: float
    delta: float
    trained: int
    members: tuple[Member, ...]
    certificate: Certificate

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "portfolio") -> Portfolio:
        """Check every field of `d` and build the portfolio; InputError otherwise."""
        return _Parser(source).portfolio(d)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "build": self.build,
            "version": self.version,
            "created": self.created,
            "objectives": list(self.objectives),
            "base_model": self.base_model,
            "solver": self.solver,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "trained": self.trained,
            "members": [m.to_dict() for m in self.members],
            "certificate": self.certificate.to_json(),
        }

    def member(self, member_id: str) -> Member:
        """The member called `member_id`; InputError naming the known ids if none."""
        for m in self.members:
            if m.id == member_id:
                return m
        known = ", ".join(m.id for m in self.members)
        raise InputError(
            f"member_id {member_id!r} is not in portfolio version {self.version} "
            f"of build {self.build}; its members are: {known}"
        )

    def route(self, weights: Sequence[float]) -> tuple[Member, float]:
        """The member with the highest w·r for normalised `weights`, and that value.

        `weights` must already be checked and normalised (see `normalise_weights`).
        Ties go to the member listed first.
        """
        best, best_value = self.members[0], -math.inf
        for m in self.members:
            value = math.fsum(w * r for w, r in zip(weights, m.rewards, strict=True))
            if value > best_value:
                best, best_value = m, value
        return best, best_value


def normalise_weights(
    weights: Sequence[float], objectives: Sequence[str]
) -> list[float]:
    """Check a user's weight vector against the objectives and scale it to sum 1."""
    d = len(objectives)
    if len(weights) != d:
        raise InputError(
            f"weights has {len(weights)} entries, the portfolio has {d} objectives "
            f"({', '.join(objectives)}): give one weight per objective"
        )
    for name, w in zip(objectives, weights, strict=True):
        if not math.isfinite(w):
            raise InputError(f"weights: the weight of {name} is {w}; it must be finite")
        if w < 0:
            raise InputError(
                f"weights: the weight of {name} is {w}; weights must be >= 0"
            )
    try:
        total = math.fsum(weights)
    except OverflowError:  # huge weights: scale by the largest first, ratios stay
        top = max(weights)
        weights = [w / top for w in weights]
        total = math.fsum(weights)
    if total <= 0:
        raise InputError("weights are all zero: at least one weight must be > 0")
    return [w / total for w in weights]


def load_portfolio(url: str) -> Portfolio:
    """Read and check the portfolio file at `url` (a local path or fsspec URL)."""
    parent, name = posixpath.split(str(url).rstrip("/"))
    data = Store(parent or ".").read_json(name)
    return Portfolio.from_dict(data, source=str(url))


def publish_version(redis_client: Any, portfolio: Portfolio, url: str) -> int:
    """Announce a new portfolio version on `PORTFOLIO_CHANNEL`.

    The pruner calls this after `url` is written whole; routers that serve the
    same build load it. Returns the number of subscribers that got the message.
    """
    message = {"build": portfolio.build, "version": portfolio.version, "portfolio": url}
    return int(redis_client.publish(PORTFOLIO_CHANNEL, json.dumps(message)))


class _Parser:
    """Field-by-field checks; every error names the source, the field and the rule."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str, rule: str) -> InputError:
        return InputError(f"{self.source}: {field} {rule}")

    def portfolio(self, d: Any) -> Portfolio:
        if not isinstance(d, dict):
            raise self.fail("the document", "must be a JSON object")
        fmt = d.get("format")
        if fmt != FORMAT:
            raise self.fail("format", f"is {fmt!r}; this reader knows only {FORMAT!r}")
        objectives = self.objectives(d.get("objectives"))
        n = len(objectives)
        members = self.members(d.get("members"), n)
        return Portfolio(
            build=self.text(d, "build"),
            version=self.integer(d, "version", minimum=1),
            created=self.text(d, "created"),
            objectives=objectives,
            base_model=self.text(d, "base_model"),
            solver=self.text(d, "solver"),
            epsilon=self.number(d.get("epsilon"), "epsilon", minimum=0.0),
            delta=self.number(d.get("delta"), "delta", minimum=0.0),
            trained=self.integer(d, "trained", minimum=len(members)),
            members=members,
            certificate=self.certificate(d.get("certificate"), n),
        )

    def text(self, d: dict, field: str, label: str | None = None) -> str:
        value = d.get(field)
        if not isinstance(value, str) or not value:
            raise self.fail(
                label or field, f"is {value!r}; it must be a non-empty string"
            )
        return value

    def integer(self, d: dict, field: str, *, minimum: int) -> int:
        value = d.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(field, f"is {value!r}; it must be an integer >= {minimum}")
        return value

    def number(self, value: Any, field: str, *, minimum: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(field, f"is {value!r}; it must be a number")
        if not math.isfinite(value):
            raise self.fail(field, f"is {value}; it must be finite (no NaN or inf)")
        if minimum is not None and value < minimum:
            raise self.fail(field, f"is {value}; it must be >= {minimum}")
        return float(value)

    def vector(self, value: Any, field: str, n: int) -> tuple[float, ...]:
        if not isinstance(value, list) or len(value) != n:
            size = len(value) if isinstance(value, list) else type(value).__name__
            raise self.fail(
                field, f"has {size} entries; it must have one per objective ({n})"
            )
        return tuple(self.number(v, f"{field}[{i}]") for i, v in enumerate(value))

    def objectives(self, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail("objectives", "must be a non-empty list of names")
        if not all(isinstance(v, str) and v for v in value):
            raise self.fail("objectives", f"is {value!r}; every name must be a string")
        if len(set(value)) != len(value):
            raise self.fail("objectives", f"is {value!r}; names must be distinct")
        return tuple(value)

    def members(self, value: Any, n: int) -> tuple[Member, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail("members", "must be a non-empty list of member objects")
        members = tuple(self.member(m, i, n) for i, m in enumerate(value))
        seen: set[str] = set()
        for m in members:
            if m.id in seen:
                raise self.fail(
                    "members", f"list the id {m.id!r} twice; ids are unique"
                )
            seen.add(m.id)
        return members

    def member(self, m: Any, i: int, n: int) -> Member:
        where = f"members[{i}]"
        if not isinstance(m, dict):
            raise self.fail(
                where, "must be an object with id, weight, rewards, adapter"
            )
        member_id = m.get("id")
        if not isinstance(member_id, str) or not _MEMBER_ID.match(member_id):
            raise self.fail(
                f"{where}.id",
                f"is {member_id!r}; ids are 1-64 letters, digits, '_' or '-', "
                "starting with a letter or digit",
            )
        rewards = self.vector(m.get("rewards"), f"{where}.rewards", n)
        for j, r in enumerate(rewards):
            if not 0.0 <= r <= 1.0:
                raise self.fail(
                    f"{where}.rewards[{j}]", f"is {r}; rewards are in [0, 1]"
                )
        stderr = m.get("stderr", [0.0] * n)
        return Member(
            id=member_id,
            weight=self.vector(m.get("weight"), f"{where}.weight", n),
            rewards=rewards,
            stderr=self.vector(stderr, f"{where}.stderr", n),
            adapter=self.text(m, "adapter", f"{where}.adapter"),
        )

    def certificate(self, value: Any, n: int) -> Certificate:
        if not isinstance(value, dict):
            raise self.fail(
                "certificate", "must be an object: multiplicative, additive"
            )
        return Certificate(
            multiplicative=self.gap(value.get("multiplicative"), "multiplicative", n),
            additive=self.gap(value.get("additive"), "additive", n),
        )

    def gap(self, value: Any, kind: str, n: int) -> Gap:
        field = f"certificate.{kind}"
        if not isinstance(value, dict):
            raise self.fail(field, "must be an object with gap and weight")
        return Gap(
            gap=self.number(value.get("gap"), f"{field}.gap", minimum=0.0),
            weight=self.vector(value.get("weight"), f"{field}.weight", n),
        )
