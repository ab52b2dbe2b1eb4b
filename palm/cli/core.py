"""`palm grid`, `palm cover`, `palm certify`: the mathematics from the command line."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from palm.certify import certify
from palm.cli._common import add_json_flag, print_json, read_json_file
from palm.cover import (
    BUDGET_KINDS,
    DEFAULT_SAMPLES,
    DEFAULT_TIME_LIMIT,
    SOLVERS,
    CoverResult,
    RewardMatrix,
    budget_cover,
    cover,
    default_weights,
    load_weights,
)
from palm.errors import InputError
from palm.grid import (
    DEFAULT_ALPHA,
    DEFAULT_MU,
    geometric_grid,
    grid_levels,
    grid_size_bound,
)


def register(sub: argparse._SubParsersAction) -> None:
    _register_grid(sub)
    _register_cover(sub)
    _register_certify(sub)


# Numbers are parsed in the handlers, not by argparse, so that a bad value exits
# with status 2 and one line like every other bad input.
def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{name} is {text!r}; it must be a number") from None


def _integer(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{name} is {text!r}; it must be an integer") from None


def _add_grid_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--alpha",
        default=str(DEFAULT_ALPHA),
        metavar="A",
        help=f"smallest non-zero grid level, in (0, 1) (default: {DEFAULT_ALPHA})",
    )
    p.add_argument(
        "--mu",
        default=str(DEFAULT_MU),
        metavar="M",
        help=f"multiplicative step between grid levels, > 0 (default: {DEFAULT_MU})",
    )


# --------------------------------------------------------------------------- grid


def _register_grid(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "grid",
        help="print the geometric grid of weight vectors",
        description="Print the geometric grid of weight vectors (one policy is "
        "trained per vector), its size and the bound d*|L|^(d-1).",
    )
    p.add_argument(
        "--objectives",
        required=True,
        metavar="D",
        help="number of objectives d, an integer >= 2",
    )
    _add_grid_options(p)
    add_json_flag(p)
    p.set_defaults(func=_run_grid)


def _run_grid(args: argparse.Namespace) -> int:
    d = _integer(args.objectives, "objectives")
    alpha, mu = _number(args.alpha, "alpha"), _number(args.mu, "mu")
    grid = geometric_grid(d, alpha, mu)
    levels = grid_levels(alpha, mu)
    bound = grid_size_bound(d, alpha, mu)
    if args.json:
        print_json(
            {
                "objectives": d,
                "alpha": alpha,
                "mu": mu,
                "levels": levels.tolist(),
                "size": len(grid),
                "bound": bound,
                "weights": grid.tolist(),
            }
        )
        return 0
    print(
        f"grid: {len(grid)} weight vectors (bound {bound}) for {d} objectives, "
        f"alpha {alpha:g}, mu {mu:g}"
    )
    print("levels: " + " ".join(f"{x:.4g}" for x in levels))
    headers = [f"w{i + 1}" for i in range(d)]
    print(_table(headers, [[f"{x:.4f}" for x in w] for w in grid]))
    return 0


# --------------------------------------------------------------------------- cover


def _register_cover(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cover",
        help="choose a small portfolio covering every weight vector",
        description="Choose the members of a portfolio: policies such that every "
        "weight vector w is covered, w.r_p >= (1-epsilon)*V(w) - delta. With "
        "--budget K, the smallest epsilon (or delta) reachable with K members.",
    )
    p.add_argument(
        "--rewards", required=True, metavar="R.json", help="the reward matrix"
    )
    p.add_argument(
        "--weights",
        metavar="W.json",
        help='weight vectors to cover: a list of vectors or {"weights": [...]} '
        "(default: the geometric grid plus --samples uniform vectors)",
    )
    p.add_argument(
        "--epsilon",
        default="0.05",
        metavar="E",
        help="multiplicative tolerance, in [0, 1) (default: 0.05)",
    )
    p.add_argument(
        "--delta",
        default="0",
        metavar="D",
        help="additive tolerance, >= 0 (default: 0)",
    )
    p.add_argument(
        "--solver",
        default="greedy",
        metavar="|".join(SOLVERS),
        help="greedy (fast) or exact (integer program; falls back to greedy "
        "past --time-limit) (default: greedy)",
    )
    p.add_argument(
        "--budget",
        metavar="K",
        help="at most K members: report the smallest tolerance reachable instead",
    )
    p.add_argument(
        "--budget-kind",
        default="multiplicative",
        metavar="|".join(BUDGET_KINDS),
        help="with --budget, minimise epsilon (multiplicative) or delta (additive) "
        "(default: multiplicative)",
    )
    p.add_argument(
        "--time-limit",
        default=str(DEFAULT_TIME_LIMIT),
        metavar="S",
        help=f"seconds the exact solver may run (default: {DEFAULT_TIME_LIMIT:g})",
    )
    p.add_argument(
        "--samples",
        default=str(DEFAULT_SAMPLES),
        metavar="N",
        help="uniform weight vectors added to the default grid "
        f"(default: {DEFAULT_SAMPLES})",
    )
    p.add_argument(
        "--seed", default="0", metavar="S", help="seed of those samples (default: 0)"
    )
    _add_grid_options(p)
    add_json_flag(p)
    p.set_defaults(func=_run_cover)


def _cover_weights(args: argparse.Namespace, matrix: RewardMatrix) -> np.ndarray:
    if args.weights is not None:
        return load_weights(read_json_file(args.weights, "weights"), matrix.d)
    return default_weights(
        matrix.d,
        _number(args.alpha, "alpha"),
        _number(args.mu, "mu"),
        samples=_integer(args.samples, "samples"),
        seed=_integer(args.seed, "seed"),
    )


def _run_cover(args: argparse.Namespace) -> int:
    matrix = RewardMatrix.from_json(read_json_file(args.rewards, "rewards"))
    weights = _cover_weights(args, matrix)
    time_limit = _number(args.time_limit, "time limit")
    if args.budget is not None:
        result = budget_cover(
            matrix.rewards,
            weights,
            _integer(args.budget, "budget"),
            solver=args.solver,
            kind=args.budget_kind,
            time_limit=time_limit,
        )
    else:
        result = cover(
            matrix.rewards,
            weights,
            _number(args.epsilon, "epsilon"),
            _number(args.delta, "delta"),
            solver=args.solver,
            time_limit=time_limit,
        )
    if args.json:
        print_json(_cover_json(matrix, result))
    else:
        _print_cover(matrix, result)
    return 0


def _member_json(matrix: RewardMatrix, i: int) -> dict[str, Any]:
    weight = None if matrix.weights is None else matrix.weights[i].tolist()
    return {
        "id": matrix.ids[i],
        "weight": weight,
        "rewards": matrix.rewards[i].tolist(),
    }


def _cover_json(matrix: RewardMatrix, result: CoverResult) -> dict[str, Any]:
    out = result.to_json()
    out["members"] = [_member_json(matrix, i) for i in result.members]
    out["objectives"] = list(matrix.objectives)
    out["policies"] = matrix.n
    return out


def _print_cover(matrix: RewardMatrix, result: CoverResult) -> None:
    k = len(result.members)
    if result.budget is not None:
        name = "epsilon" if result.kind == "multiplicative" else "delta"
        reached = result.epsilon if result.kind == "multiplicative" else result.delta
        print(
            f"budget {result.budget}: {k} members reach {name} {reached:.4g} on "
            f"{result.n_weights} weight vectors (solver: {result.solver})"
        )
    else:
        print(
            f"portfolio: {k} of {matrix.n} policies cover {100 * result.covered:.1f}% "
            f"of {result.n_weights} weight vectors at epsilon {result.epsilon:g}, "
            f"delta {result.delta:g} (solver: {result.solver})"
        )
    print(
        f"worst gap on these weight vectors: multiplicative "
        f"{result.worst_multiplicative:.4g}, additive {result.worst_additive:.4g}"
    )
    print()
    headers = ["id", "weight", *matrix.objectives]
    rows = []
    for i in result.members:
        weight = "-" if matrix.weights is None else _vector(matrix.weights[i])
        rows.append([matrix.ids[i], weight, *(f"{x:.4f}" for x in matrix.rewards[i])])
    print(_table(headers, rows))


# --------------------------------------------------------------------------- certify


def _register_certify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "certify",
        help="exact worst-case gaps of a portfolio over the whole simplex",
        description="Certify a portfolio: its exact worst-case multiplicative and "
        "additive gaps against every trained policy, over every weight vector.",
    )
    p.add_argument(
        "--rewards", required=True, metavar="R.json", help="the reward matrix"
    )
    p.add_argument(
        "--portfolio",
        required=True,
        metavar="P.json",
        help='any JSON with a "members" list of ids or of objects with an "id" '
        "(palm cover --json output, a portfolio.json)",
    )
    add_json_flag(p)
    p.set_defaults(func=_run_certify)


def _portfolio_ids(obj: Any) -> list[str]:
    members = obj.get("members") if isinstance(obj, dict) else None
    if not isinstance(members, list) or not members:
        raise InputError(
            'the portfolio has no "members" list; give {"members": [id, ...]} or '
            "the output of palm cover --json"
        )
    ids = []
    for m in members:
        pid = m.get("id") if isinstance(m, dict) else m
        if not isinstance(pid, str):
            raise InputError(
                f"portfolio member {m!r} is neither an id string nor an object "
                'with an "id"'
            )
        ids.append(pid)
    return ids


def _run_certify(args: argparse.Namespace) -> int:
    matrix = RewardMatrix.from_json(read_json_file(args.rewards, "rewards"))
    ids = _portfolio_ids(read_json_file(args.portfolio, "portfolio"))
    members = matrix.indices_of(ids)
    cert = certify(matrix.rewards, members)
    if args.json:
        print_json(cert.to_json())
        return 0
    print(
        f"certificate: {len(set(members))} members against {matrix.n} policies, "
        "worst case over the whole simplex"
    )
    print()
    headers = ["gap", "value", *(f"w {name}" for name in matrix.objectives)]
    named = (("multiplicative", cert.multiplicative), ("additive", cert.additive))
    rows = [
        [name, f"{g.gap:.4g}", *(f"{x:.3f}" for x in g.weight)] for name, g in named
    ]
    print(_table(headers, rows))
    return 0


# --------------------------------------------------------------------------- output


def _vector(v: np.ndarray) -> str:
    return " ".join(f"{x:.3f}" for x in v)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns two spaces apart, the header underlined."""
    cells = [headers, *rows]
    widths = [max(len(str(r[c])) for r in cells) for c in range(len(headers))]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True))
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
