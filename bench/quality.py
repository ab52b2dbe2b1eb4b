"""Benchmark: portfolio quality, PALM against `uniform` and `random` at equal size.

    .venv/bin/python bench/quality.py                  # synthetic fronts, plots
    .venv/bin/python bench/quality.py --store store --build ID   # plus a real build

Synthetic reward landscapes stand in for training. A landscape is a front of reachable
reward vectors; the policy trained for a weight vector `w` lands on the front point
best for `w`, plus Gaussian noise. Four shapes:

- `concave`: the positive orthant of a sphere (radius 0.9), objectives in strong
  conflict; the best point for `w` is 0.9·w/|w|.
- `mild`: the positive orthant of the 4-norm sphere, a flatter concave front where one
  policy does fairly well for many weight vectors.
- `dent`: the same sphere pushed in around a random direction, so the front is not
  concave there and no weight vector's best point lies inside the dent.
- `split`: the sphere with a band of directions cut out and the piece beyond the band
  shrunk, so the front comes in two disconnected pieces.

Because the landscape is ours, `uniform` is trained exactly at its k evenly spread
weight vectors (as the paper does): those policies are added to the reference set and
every portfolio is measured against the trained set plus them. `uniform (nearest)` is
what a real build can do instead: the trained policies nearest the uniform vectors.

Progress goes to stderr, the markdown tables to stdout, the curves to `--out`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from palm.certify import certify
from palm.cover import budget_cover, cover, default_weights
from palm.grid import geometric_grid
from palm.metrics import (
    gaps,
    random_portfolio,
    uniform_portfolio,
    uniform_weights,
    usage_perplexity,
)

SHAPES = ("concave", "mild", "dent", "split")
# The p of each shape's p-norm sphere: 2 is a round front, larger p a flatter one.
POWER = {"concave": 2.0, "mild": 4.0, "dent": 2.0, "split": 2.0}
DIMS = (2, 3, 4, 5)
SEEDS = (0, 1, 2)
BUDGETS = (3, 5, 7)  # the sizes in the tables
CURVE = tuple(range(1, 9))  # the sizes on the curves
EPSILON = 0.02  # cover mode: the paper's gaps at five members are about this
NOISE = 0.01  # standard deviation of a trained policy's miss, per objective
RADIUS = 0.9
DENT_DEPTH, DENT_WIDTH = 0.2, 0.3  # share of the radius pushed in; angular width
SPLIT_GAP, SPLIT_SHRINK = 0.2, 0.92  # width of the cut band; scale of the far piece
FRONT_POINTS = 20_000
HELD_OUT = 4_000  # fresh Dirichlet(1) weight vectors, never seen by the pruner
COVER_SAMPLES = 1_000  # Dirichlet(1) samples added to the grid for pruning
RANDOM_DRAWS = 10  # random portfolios per size; their gaps are averaged
RANDOM_CERTIFIED = 3  # of those, how many are certified (each costs a few LPs)
EXACT_SECONDS = 1.0  # time limit of each exact solve; a miss is reported
# d -> (alpha, mu, policies): the geometric grid the trained set is built on, topped up
# with Dirichlet(1) weight vectors to `policies`. The default grid (0.1, 0.5) has 1,695
# vectors at d = 4 and 15,961 at d = 5, so those use coarser grids.
TRAINED = {
    2: (0.1, 0.5, 60),
    3: (0.1, 0.5, 200),
    4: (0.1, 1.5, 400),
    5: (0.25, 3.0, 300),
}
# Rows of the tables, in order, and the curves that also get certificates.
COVER_ROWS = ("PALM greedy", "PALM exact", "uniform", "uniform (nearest)", "random")
BUDGET_ROWS = (
    "PALM budget greedy",
    "PALM budget exact",
    "uniform",
    "uniform (nearest)",
    "random",
)
CERTIFIED_CURVES = ("PALM budget greedy", "uniform")
METRICS = (
    "size",
    "worst_multiplicative",
    "mean_multiplicative",
    "worst_additive",
    "mean_additive",
    "certified_multiplicative",
    "certified_additive",
    "perplexity",
)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- landscape


@dataclass(frozen=True)
class Landscape:
    """A front of reachable reward vectors and how training lands on it."""

    shape: str
    front: np.ndarray  # (F, d) noiseless reward vectors, a dense sample of the front
    noise: float = NOISE
    power: float = 2.0  # the p of the p-norm sphere the front is cut from

    @property
    def d(self) -> int:
        return self.front.shape[1]

    def best(self, weights: np.ndarray) -> np.ndarray:
        """The noiseless front point with the highest w·r, per weight vector."""
        weights = np.atleast_2d(weights)
        if self.shape in ("concave", "mild"):
            # Exact on a whole p-sphere (r_i ∝ w_i^(1/(p−1))): no sampling error.
            pull = weights ** (1.0 / (self.power - 1.0))
            norm = np.linalg.norm(pull, ord=self.power, axis=1, keepdims=True)
            return RADIUS * pull / norm
        picks = [
            np.argmax(chunk @ self.front.T, axis=1)
            for chunk in np.array_split(weights, max(1, len(weights) // 256))
        ]
        return self.front[np.concatenate(picks)]

    def train(self, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Reward vectors of policies trained for `weights`: best point plus noise."""
        best = self.best(weights)
        return np.clip(best + rng.normal(0.0, self.noise, best.shape), 0.0, 1.0)


def _directions(d: int, count: int, p: float, rng) -> np.ndarray:
    """Vectors of unit p-norm spread over the positive orthant, the d axes included."""
    raw = np.abs(rng.normal(size=(count, d)))
    raw = np.concatenate([np.eye(d), raw])
    return raw / np.linalg.norm(raw, ord=p, axis=1, keepdims=True)


def make_landscape(
    shape: str, d: int, seed: int, points: int = FRONT_POINTS, noise: float = NOISE
) -> Landscape:
    """A seeded front of the given shape; the dent and the cut move with the seed."""
    if shape not in SHAPES:
        raise ValueError(f"shape is {shape!r}; it must be one of {SHAPES}")
    rng = np.random.default_rng([seed, d, SHAPES.index(shape)])
    u = _directions(d, points, POWER[shape], rng)
    radius = np.full(len(u), RADIUS)
    if shape == "dent":
        centre = rng.dirichlet(np.full(d, 4.0))
        centre /= np.linalg.norm(centre)
        near = np.exp(-np.sum((u - centre) ** 2, axis=1) / (2 * DENT_WIDTH**2))
        radius *= 1.0 - DENT_DEPTH * near
    elif shape == "split":
        share = u[:, 0] / u.sum(axis=1)
        low = rng.uniform(0.2, 0.45)
        beyond = share > low + SPLIT_GAP
        keep = (share < low) | beyond
        radius = np.where(beyond, RADIUS * SPLIT_SHRINK, radius)[keep]
        u = u[keep]
    return Landscape(shape, radius[:, None] * u, noise, POWER[shape])


def trained_weights(d: int, seed: int) -> np.ndarray:
    """The weight vectors of the trained set: a geometric grid, topped up."""
    alpha, mu, policies = TRAINED[d]
    grid = geometric_grid(d, alpha, mu)
    rng = np.random.default_rng([seed, d, 101])
    extra = rng.dirichlet(np.ones(d), size=max(0, policies - len(grid)))
    return np.concatenate([grid, extra])


# --------------------------------------------------------------------------- setting


@dataclass
class Problem:
    """One seed of one setting: what the pruner sees and what it is judged on."""

    rewards: np.ndarray  # (n, d) the trained set T
    weights: np.ndarray  # (n, d) each policy's training weight vector
    cover_weights: np.ndarray  # the pruner's W: grid plus samples
    held_out: np.ndarray  # fresh weight vectors for the gaps
    landscape: Landscape | None = None  # None for a real build: no uniform training
    seed: int = 0


def synthetic_problem(shape: str, d: int, seed: int) -> Problem:
    landscape = make_landscape(shape, d, seed)
    weights = trained_weights(d, seed)
    rng = np.random.default_rng([seed, d, 202])
    alpha, mu, _ = TRAINED[d]
    return Problem(
        rewards=landscape.train(weights, rng),
        weights=weights,
        cover_weights=default_weights(d, alpha, mu, COVER_SAMPLES, seed=1000 + seed),
        held_out=rng.dirichlet(np.ones(d), size=HELD_OUT),
        landscape=landscape,
        seed=seed,
    )


@dataclass
class Portfolios:
    """Member index lists, keyed (method, k); random holds several draws."""

    chosen: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    draws: dict[int, list[list[int]]] = field(default_factory=dict)
    notes: dict[tuple[str, int], str] = field(default_factory=dict)


def palm_portfolios(problem: Problem, out: Portfolios) -> int:
    """PALM's cover and budget portfolios, chosen on W from T; returns greedy's size."""
    r, w = problem.rewards, problem.cover_weights
    greedy = cover(r, w, EPSILON, 0.0)
    exact = cover(r, w, EPSILON, 0.0, "exact", EXACT_SECONDS)
    size = len(greedy.members)
    out.chosen[("PALM greedy", size)] = greedy.members
    out.chosen[("PALM exact", size)] = exact.members
    out.notes[("PALM exact", size)] = exact.solver
    for k in CURVE:
        out.chosen[("PALM budget greedy", k)] = budget_cover(r, w, k).members
    for k in BUDGETS:
        result = budget_cover(r, w, k, "exact", time_limit=EXACT_SECONDS)
        out.chosen[("PALM budget exact", k)] = result.members
        out.notes[("PALM budget exact", k)] = result.solver
    return size


def baseline_portfolios(problem: Problem, sizes: list[int], out: Portfolios):
    """Uniform (nearest trained, and trained exactly) and random, at each size.

    Returns the reference reward matrix: T, then the uniform policies trained for the
    occasion (none for a real build).
    """
    n = len(problem.rewards)
    for k in sizes:
        out.chosen[("uniform (nearest)", k)] = uniform_portfolio(problem.weights, k)
        out.draws[k] = [
            random_portfolio(n, k, seed=1000 * problem.seed + draw)
            for draw in range(RANDOM_DRAWS)
        ]
    if problem.landscape is None:
        return problem.rewards
    # One policy per distinct uniform weight vector, shared by every size that has it.
    wanted = np.concatenate(
        [uniform_weights(problem.rewards.shape[1], k) for k in sizes]
    )
    distinct, where = np.unique(np.round(wanted, 12), axis=0, return_inverse=True)
    rng = np.random.default_rng([problem.seed, 303])
    extra = problem.landscape.train(distinct, rng)
    offset = 0
    for k in sizes:
        out.chosen[("uniform", k)] = sorted(
            set((n + where[offset : offset + k]).tolist())
        )
        offset += k
    return np.concatenate([problem.rewards, extra])


# --------------------------------------------------------------------------- metrics


def measure(reference: np.ndarray, members: list[int], held_out, certified=True):
    """Every metric of one portfolio, against the whole reference set."""
    out = {"size": float(len(members))}
    out.update(gaps(reference, members, held_out))
    out["perplexity"] = usage_perplexity(reference, members, held_out)
    if certified:
        cert = certify(reference, members)
        out["certified_multiplicative"] = cert.multiplicative.gap
        out["certified_additive"] = cert.additive.gap
    return out


def measure_random(reference, draws, held_out, certified=True) -> dict[str, float]:
    """Gaps averaged over every draw; certificates over the first few."""
    runs = [
        measure(reference, m, held_out, certified and i < RANDOM_CERTIFIED)
        for i, m in enumerate(draws)
    ]
    return {
        key: float(np.mean([run[key] for run in runs if key in run]))
        for key in METRICS
        if key in runs[0]
    }


def _certified(key: tuple[str, int], cover_size: int) -> bool:
    """Certificates for the table rows and the curves drawn with them, not the rest."""
    method, k = key
    return k in BUDGETS or k == cover_size or method in CERTIFIED_CURVES


def run_problem(problem: Problem) -> dict[tuple[str, int], dict[str, float]]:
    """All portfolios of one seed, measured; keyed (method, k), k = 0 for cover mode."""
    chosen = Portfolios()
    size = palm_portfolios(problem, chosen)
    sizes = sorted(set(CURVE) | set(BUDGETS) | {size})
    reference = baseline_portfolios(problem, sizes, chosen)
    results = {}
    for key, members in chosen.chosen.items():
        on = _certified(key, size)
        results[key] = measure(reference, members, problem.held_out, on)
        results[key]["proven"] = float(chosen.notes.get(key, "exact") == "exact")
    for k, draws in chosen.draws.items():
        on = _certified(("random", k), size)
        results[("random", k)] = measure_random(reference, draws, problem.held_out, on)
    # Cover mode compares at greedy's size, which differs by seed: file it under 0.
    for method in COVER_ROWS:
        if (method, size) in results:
            results[(method, 0)] = results[(method, size)]
    return results


# --------------------------------------------------------------------------- tables


def aggregate(runs: list[dict]) -> dict[tuple[str, int], dict[str, float]]:
    """Mean of every metric over the seeds, plus the largest worst gap of any seed."""
    out = {}
    for key in runs[0]:
        rows = [run[key] for run in runs if key in run]
        out[key] = {m: float(np.mean([r[m] for r in rows if m in r])) for m in rows[0]}
        out[key]["max_worst_multiplicative"] = max(
            r["worst_multiplicative"] for r in rows
        )
    return out


def wins(runs: list[dict], palm: str, baseline: str, k: int) -> str:
    """In how many seeds PALM's worst held-out gap is no higher than the baseline's."""
    pairs = [(r[(palm, k)], r[(baseline, k)]) for r in runs if (baseline, k) in r]
    if not pairs:
        return "–"
    ok = sum(
        a["worst_multiplicative"] <= b["worst_multiplicative"] + 1e-9 for a, b in pairs
    )
    return f"{ok}/{len(pairs)}"


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _size_label(k: int) -> str:
    return f"cover ε={EPSILON:g}" if k == 0 else f"k={k}"


def summary_rows(name: str, runs: list[dict]) -> list[list[str]]:
    """The criterion, one row per size: worst held-out ×gap, mean over seeds."""
    agg = aggregate(runs)
    rows = []
    for k in (0, *BUDGETS):
        palm = "PALM greedy" if k == 0 else "PALM budget exact"
        cells = [name, _size_label(k)]
        for method in (palm, "uniform", "uniform (nearest)", "random"):
            got = agg.get((method, k))
            cells.append("–" if got is None else f"{got['worst_multiplicative']:.4f}")
        cells += [wins(runs, palm, b, k) for b in ("uniform", "uniform (nearest)")]
        cells.append(wins(runs, palm, "random", k))
        rows.append(cells)
    return rows


SUMMARY_HEADERS = [
    "setting",
    "size",
    "PALM",
    "uniform",
    "uniform (nearest)",
    "random",
    "PALM ≤ uniform",
    "PALM ≤ nearest",
    "PALM ≤ random",
]


def setting_table(runs: list[dict]) -> str:
    """Every method at every table size, each metric the mean over the seeds."""
    agg = aggregate(runs)
    rows = []
    for k in (0, *BUDGETS):
        methods = COVER_ROWS if k == 0 else BUDGET_ROWS
        for method in methods:
            got = agg.get((method, k))
            if got is not None:
                rows.append(_detail_row(method, k, got, len(runs)))
    headers = [
        "size",
        "method",
        "members",
        "worst ×gap (max)",
        "mean ×gap",
        "worst +gap",
        "mean +gap",
        "certified ×",
        "certified +",
        "perplexity",
    ]
    return markdown(headers, rows)


def _detail_row(method: str, k: int, got: dict, seeds: int) -> list[str]:
    name = method
    if "exact" in method and got["proven"] < 1:
        name += f" ({round(got['proven'] * seeds)}/{seeds} proven)"
    return [
        _size_label(k),
        name,
        f"{got['size']:.1f}",
        f"{got['worst_multiplicative']:.4f} ({got['max_worst_multiplicative']:.4f})",
        f"{got['mean_multiplicative']:.4f}",
        f"{got['worst_additive']:.4f}",
        f"{got['mean_additive']:.4f}",
        f"{got.get('certified_multiplicative', float('nan')):.4f}",
        f"{got.get('certified_additive', float('nan')):.4f}",
        f"{got['perplexity']:.2f}",
    ]


# --------------------------------------------------------------------------- curves

# (method, colour, line style) for each curve; certified values are dotted.
CURVES = (
    ("PALM budget greedy", "tab:blue", "-"),
    ("PALM budget exact", "tab:purple", "none"),
    ("uniform", "tab:orange", "-"),
    ("uniform (nearest)", "tab:orange", "--"),
    ("random", "tab:grey", "-"),
)


def draw_panel(ax, runs: list[dict], title: str) -> None:
    """Worst held-out ×gap against size, mean over seeds; certificates dotted."""
    agg = aggregate(runs)
    for method, colour, style in CURVES:
        ks = [k for k in CURVE if (method, k) in agg]
        if not ks:
            continue
        worst = [agg[(method, k)]["worst_multiplicative"] for k in ks]
        marker = "s" if style == "none" else "o"
        ax.plot(
            ks, worst, color=colour, linestyle=style, marker=marker, ms=4, label=method
        )
        if method in CERTIFIED_CURVES:
            cert = [agg[(method, k)]["certified_multiplicative"] for k in ks]
            ax.plot(
                ks,
                cert,
                color=colour,
                linestyle=":",
                lw=1,
                label=f"{method}, certified",
            )
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("portfolio size k")
    ax.set_ylabel("worst multiplicative gap")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)


def save_curves(path: Path, panels: list[tuple[str, list[dict]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on a server
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(max(3.6 * len(panels), 8.0), 3.4))
    for ax, (title, runs) in zip(np.atleast_1d(axes), panels, strict=True):
        draw_panel(ax, runs, title)
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    progress(f"wrote {path}")


# --------------------------------------------------------------------------- main


def run_setting(name: str, problems) -> list[dict]:
    runs = []
    for problem in problems:
        started = time.perf_counter()
        runs.append(run_problem(problem))
        progress(
            f"{name} seed {problem.seed}: {len(problem.rewards)} policies, "
            f"{time.perf_counter() - started:.1f} s"
        )
    return runs


def store_problems(store_dir: str, build: str, seeds) -> list[Problem]:
    """The support build's reward matrix, with fresh held-out weights per seed."""
    from palm.pruning import reward_matrix
    from palm.store import Store

    matrix = reward_matrix(Store(store_dir), build)
    if matrix.weights is None:
        raise SystemExit(f"build {build} has no training weight vectors")
    problems = []
    for seed in seeds:
        rng = np.random.default_rng([seed, matrix.d, 404])
        problems.append(
            Problem(
                rewards=matrix.rewards,
                weights=matrix.weights,
                cover_weights=default_weights(
                    matrix.d, samples=COVER_SAMPLES, seed=1000 + seed
                ),
                held_out=rng.dirichlet(np.ones(matrix.d), size=HELD_OUT),
                seed=seed,
            )
        )
    return problems


def report(name: str, runs: list[dict], summary: list[list[str]]) -> None:
    summary += summary_rows(name, runs)
    print(f"### {name}\n")
    print(setting_table(runs) + "\n", flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", help="a PALM store folder holding --build")
    parser.add_argument("--build", help="the build id whose reward matrix to compare")
    parser.add_argument("--out", default="docs/quality", help="folder for the PNGs")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=SHAPES)
    parser.add_argument("--dims", nargs="+", type=int, default=list(DIMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    args = parser.parse_args(argv)
    if bool(args.store) != bool(args.build):
        parser.error("give --store and --build together")
    if any(d not in TRAINED for d in args.dims):
        parser.error(f"--dims must be among {sorted(TRAINED)}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    # Exact solves that time out say so in the tables ("proven"); spare the log lines.
    logging.basicConfig(level=logging.ERROR)
    started = time.perf_counter()
    summary: list[list[str]] = []
    print("## Settings\n")
    for shape in args.shapes:
        panels = []
        for d in args.dims:
            name = f"{shape} d={d}"
            problems = (synthetic_problem(shape, d, s) for s in args.seeds)
            runs = run_setting(name, problems)
            report(name, runs, summary)
            panels.append((name, runs))
        save_curves(Path(args.out) / f"curve_{shape}.png", panels)
    if args.store:
        name = f"support build {args.build}"
        runs = run_setting(name, store_problems(args.store, args.build, args.seeds))
        report(name, runs, summary)
        save_curves(Path(args.out) / "curve_support.png", [(name, runs)])
    else:
        progress(
            "support build skipped: run `palm build run examples/support.toml "
            "--store store`, then pass --store store --build <its id>"
        )
    print("## Summary: worst held-out multiplicative gap, mean over seeds\n")
    print(markdown(SUMMARY_HEADERS, summary) + "\n")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
