"""A build's plan and its place in the store, shared by every task and command.

A build is a validated spec, the policies of its weight grid (one per weight vector)
and, as tasks finish, their adapters, reward vectors and portfolio versions. Everything
here reads or writes the store: nothing about a build lives only in memory.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from palm.errors import InputError, NotFound
from palm.store import Store, local_folder

log = logging.getLogger(__name__)

BASE = "base"  # the id under which the base model itself is evaluated


# -- paths in the store ------------------------------------------------------
def prefix(build: str) -> str:
    if not build or "/" in build or build.startswith("."):
        raise InputError(f"build id {build!r} is not valid: no '/' and no leading '.'")
    return f"builds/{build}"


def spec_path(build: str) -> str:
    return f"{prefix(build)}/spec.json"


def policies_path(build: str) -> str:
    return f"{prefix(build)}/policies.json"


def adapter_path(build: str, policy: str) -> str:
    return f"{prefix(build)}/policies/{policy}/adapter"


def rewards_path(build: str, policy: str) -> str:
    return f"{prefix(build)}/rewards/{policy}.json"


def failure_path(build: str, policy: str) -> str:
    return f"{prefix(build)}/failures/{policy}.json"


def portfolio_path(build: str) -> str:
    return f"{prefix(build)}/portfolio.json"


def portfolio_version_path(build: str, version: int) -> str:
    return f"{prefix(build)}/portfolios/v{version:06d}.json"


# -- planning ----------------------------------------------------------------
def new_build_id(name: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"{name}-{stamp}-{secrets.token_hex(3)}"


def plan_policies(spec) -> list[dict[str, Any]]:
    """One policy per weight vector of the spec's grid, ids in grid order."""
    from palm.grid import geometric_grid

    grid = geometric_grid(len(spec.objectives), spec.grid.alpha, spec.grid.mu)
    width = max(3, len(str(len(grid) - 1)))
    return [
        {"id": f"p{i:0{width}d}", "weight": [round(float(x), 12) for x in w]}
        for i, w in enumerate(grid)
    ]


def prepare(spec, store: Store, build: str | None = None) -> str:
    """Write a new build's spec and policy list, with its base model in the store."""
    build = build or new_build_id(spec.name)
    spec.reward_functions()  # every reward loads here, before any task is enqueued
    base = ensure_base_model(spec, store)
    record = {"build": build, "base_model": base, "spec": spec.to_dict()}
    store.write_json(spec_path(build), record, exclusive=True)
    policies = plan_policies(spec)
    store.write_json(policies_path(build), policies, exclusive=True)
    log.info("build %s: prepared, %d policies", build, len(policies))
    return build


def ensure_base_model(spec, store: Store) -> str:
    """The base model's location as workers will open it.

    The bundled model is pretrained here (cached) and published to the store, so
    workers on other machines find it; a model given by path is used in place.
    """
    if spec.model.base != spec.task:
        return spec.model.base
    from palm.pretrain import pretrain

    local = Path(pretrain(spec.task, model_cache_dir(), spec.model.pretrain))
    rel = f"models/{local.name}"
    store.put_dir(local, rel)
    return store.uri(rel)


def model_cache_dir() -> Path:
    """Where pretrained bundled models are cached on this machine."""
    root = os.environ.get("PALM_CACHE") or Path.home() / ".cache" / "palm"
    return Path(root) / "models"


# -- reading a build back ----------------------------------------------------
@functools.lru_cache(maxsize=32)
def _load_record(store_url: str, build: str) -> dict[str, Any]:
    store = Store(store_url)
    try:
        return store.read_json(spec_path(build))
    except NotFound as e:
        raise InputError(f"build {build!r} is not in the store {store_url}") from e


def load_record(store: Store, build: str) -> dict[str, Any]:
    return _load_record(store.url, build)


def load_spec(store: Store, build: str):
    from palm.spec import BuildSpec

    return BuildSpec.from_dict(load_record(store, build)["spec"])


def base_model_dir(store: Store, build: str) -> str:
    """A local folder holding the build's base model."""
    return local_folder(load_record(store, build)["base_model"], published=False)


def load_policies(store: Store, build: str) -> list[dict[str, Any]]:
    return store.read_json(policies_path(build))


def policy_weight(store: Store, build: str, policy: str) -> list[float]:
    for p in load_policies(store, build):
        if p["id"] == policy:
            return p["weight"]
    raise InputError(f"policy {policy!r} is not in build {build!r}")


def policy_seed(spec, policy: str) -> int:
    """Each policy's seed: the spec's seed and the policy's index, so reruns agree."""
    index = 0 if policy == BASE else int(policy.lstrip("p")) + 1
    return spec.seed * 100_003 + index


def write_json_file(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")


# -- what is done, what is missing ---------------------------------------------
def progress(store: Store, build: str) -> dict[str, Any]:
    """What the store holds for the build: the source of truth for status/resume."""
    ids = [p["id"] for p in load_policies(store, build)]
    trained = [p for p in ids if store.has_dir(adapter_path(build, p))]
    evaluated = [p for p in ids if store.exists(rewards_path(build, p))]
    failed = {
        name.removesuffix(".json")
        for name in store.list(f"{prefix(build)}/failures")
        if name.endswith(".json")
    }
    return {
        "policies": ids,
        "trained": trained,
        "evaluated": evaluated,
        "base_evaluated": store.exists(rewards_path(build, BASE)),
        "failed": sorted(failed - set(evaluated)),
        "portfolio": store.exists(portfolio_path(build)),
    }
