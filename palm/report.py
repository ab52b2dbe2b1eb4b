"""The build report: a Markdown page with PNG plots, made from the store alone.

- the trained policies' reward vectors, one panel per pair of objectives, members
  marked;
- for three objectives, the simplex of weight vectors coloured by the member that
  serves each one;
- portfolio size against certified worst-case gap (the budget mode at each size);
- PALM against `uniform` and `random` portfolios of equal size on held-out weight
  vectors: worst and mean gaps of both kinds and member usage perplexity.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from palm import builds
from palm.pruning import reward_matrix
from palm.store import Store

log = logging.getLogger(__name__)

HELD_OUT = 4000  # held-out weight vectors for the comparison table
RANDOM_DRAWS = 20  # random portfolios averaged per size


def write_report(store: Store, build: str, out: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display is needed or wanted

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    portfolio = store.read_json(builds.portfolio_path(build))
    matrix = reward_matrix(store, build)
    members = [matrix.ids.index(m["id"]) for m in portfolio["members"]]
    held_out = _held_out(len(matrix.objectives), seed=12345)
    base = _base_rewards(store, build)

    plots = [_plot_rewards(out, matrix, members, base)]
    if len(matrix.objectives) == 3:
        plots.append(_plot_simplex(out, matrix, members))
    sizes = _size_curve(matrix)
    plots.append(_plot_size_curve(out, sizes, len(members)))
    table = compare(matrix, members, held_out)
    path = out / "report.md"
    path.write_text(_markdown(build, portfolio, matrix, base, table, sizes, plots))
    log.info("report %s: written to %s with %d plots", build, path, len(plots))
    return path


def compare(matrix, members: list[int], weights: np.ndarray) -> list[dict[str, Any]]:
    """PALM against `uniform` and `random` at PALM's size, on held-out weights."""
    from palm.metrics import gaps, random_portfolio, uniform_portfolio, usage_perplexity

    k = len(members)
    rows = [_row("PALM", matrix, members, weights, gaps, usage_perplexity)]
    if matrix.weights is not None:
        uniform = uniform_portfolio(matrix.weights, k)
        rows.append(_row("uniform", matrix, uniform, weights, gaps, usage_perplexity))
    draws = [
        _row(
            "random",
            matrix,
            random_portfolio(len(matrix.ids), k, seed),
            weights,
            gaps,
            usage_perplexity,
        )
        for seed in range(RANDOM_DRAWS)
    ]
    mean_random = {
        key: float(np.mean([d[key] for d in draws]))
        for key in draws[0]
        if key != "name"
    }
    rows.append({"name": f"random (mean of {RANDOM_DRAWS})", **mean_random})
    return rows


def _row(name, matrix, members, weights, gaps, usage_perplexity) -> dict[str, Any]:
    g = gaps(matrix.rewards, list(members), weights)
    return {
        "name": name,
        "size": len(set(int(m) for m in members)),
        **{k: float(v) for k, v in g.items()},
        "perplexity": float(usage_perplexity(matrix.rewards, list(members), weights)),
    }


def _held_out(d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(d), size=HELD_OUT)


def _base_rewards(store: Store, build: str) -> list[float] | None:
    path = builds.rewards_path(build, builds.BASE)
    return store.read_json(path)["rewards"] if store.exists(path) else None


def _size_curve(matrix) -> list[dict[str, float]]:
    """Certified gaps of the best greedy portfolio of each size 1..n (capped)."""
    from palm.certify import certify
    from palm.cover import budget_cover

    weights = _held_out(len(matrix.objectives), seed=7)
    curve = []
    for k in range(1, min(len(matrix.ids), 10) + 1):
        result = budget_cover(matrix.rewards, weights, k, solver="greedy")
        cert = certify(matrix.rewards, list(result.members)).to_json()
        curve.append(
            {
                "size": len(result.members),
                "multiplicative": cert["multiplicative"]["gap"],
                "additive": cert["additive"]["gap"],
            }
        )
        if cert["multiplicative"]["gap"] <= 1e-9:
            break
    return curve


def _plot_rewards(out: Path, matrix, members, base) -> str:
    import matplotlib.pyplot as plt

    pairs = list(itertools.combinations(range(len(matrix.objectives)), 2))
    fig, axes = plt.subplots(
        1, len(pairs), figsize=(4.2 * len(pairs), 4), squeeze=False
    )
    for ax, (i, j) in zip(axes[0], pairs, strict=True):
        r = matrix.rewards
        ax.scatter(r[:, i], r[:, j], c="#9aa5b1", s=24, label="trained policy")
        ax.scatter(
            r[members, i],
            r[members, j],
            c="#d1495b",
            s=60,
            marker="*",
            label="portfolio member",
        )
        for m in members:
            ax.annotate(
                matrix.ids[m],
                (r[m, i], r[m, j]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        if base is not None:
            ax.scatter(
                [base[i]], [base[j]], c="black", marker="x", s=50, label="base model"
            )
        ax.set_xlabel(matrix.objectives[i])
        ax.set_ylabel(matrix.objectives[j])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="best")
    fig.suptitle("Reward vectors of the trained policies")
    fig.tight_layout()
    fig.savefig(out / "rewards.png", dpi=110)
    plt.close(fig)
    return "rewards.png"


def _plot_simplex(out: Path, matrix, members) -> str:
    import matplotlib.pyplot as plt

    # A fine triangular mesh of weight vectors, each coloured by its member.
    n = 80
    pts = np.array([(a, b, n - a - b) for a in range(n + 1) for b in range(n + 1 - a)])
    w = pts / n
    chosen = np.asarray(members)[np.argmax(w @ matrix.rewards[members].T, axis=1)]
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    xy = w @ corners
    fig, ax = plt.subplots(figsize=(5.5, 5))
    palette = plt.get_cmap("tab10")
    for c, m in enumerate(members):
        sel = chosen == m
        ax.scatter(
            xy[sel, 0], xy[sel, 1], s=9, color=palette(c % 10), label=matrix.ids[m]
        )
    for corner, name in zip(corners, matrix.objectives, strict=True):
        ax.annotate(
            name,
            corner,
            ha="center",
            fontsize=10,
            xytext=(0, -14 if corner[1] == 0 else 6),
            textcoords="offset points",
        )
    ax.set_axis_off()
    ax.set_aspect("equal")
    ax.legend(title="member", fontsize=8, loc="upper right")
    ax.set_title("Which member serves each weight vector")
    fig.tight_layout()
    fig.savefig(out / "simplex.png", dpi=110)
    plt.close(fig)
    return "simplex.png"


def _plot_size_curve(out: Path, curve, chosen_size: int) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    sizes = [c["size"] for c in curve]
    ax.plot(sizes, [c["multiplicative"] for c in curve], "o-", label="multiplicative")
    ax.plot(sizes, [c["additive"] for c in curve], "s--", label="additive")
    ax.axvline(chosen_size, color="grey", ls=":", label="this portfolio's size")
    ax.set_xlabel("portfolio size")
    ax.set_ylabel("certified worst-case gap")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Size against certified gap")
    fig.tight_layout()
    fig.savefig(out / "size_gap.png", dpi=110)
    plt.close(fig)
    return "size_gap.png"


def _markdown(build, portfolio, matrix, base, table, curve, plots) -> str:
    objectives = list(matrix.objectives)
    cert = portfolio["certificate"]
    lines = [
        f"# PALM build `{build}`",
        "",
        f"{len(matrix.ids)} policies trained on objectives {', '.join(objectives)}; "
        f"portfolio version {portfolio['version']} keeps {len(portfolio['members'])} "
        f"(solver {portfolio['solver']}, ε = {portfolio['epsilon']}, "
        f"δ = {portfolio['delta']}).",
        "",
        "Certified worst case over the whole simplex: multiplicative gap "
        f"**{cert['multiplicative']['gap']:.4f}**, additive gap "
        f"**{cert['additive']['gap']:.4f}**.",
        "",
        "## Members",
        "",
        "| member | "
        + " | ".join(f"w {o}" for o in objectives)
        + " | "
        + " | ".join(objectives)
        + " |",
        "|---" * (1 + 2 * len(objectives)) + "|",
    ]
    for m in portfolio["members"]:
        lines.append(
            f"| {m['id']} | "
            + " | ".join(f"{x:.3f}" for x in m["weight"])
            + " | "
            + " | ".join(f"{x:.3f}" for x in m["rewards"])
            + " |"
        )
    if base is not None:
        lines.append(
            "| base model | "
            + " | ".join("–" for _ in objectives)
            + " | "
            + " | ".join(f"{x:.3f}" for x in base)
            + " |"
        )
    lines += [
        "",
        f"## PALM against baselines of equal size ({HELD_OUT} held-out weight vectors)",
        "",
        "| portfolio | size | worst mult. gap | mean mult. gap | worst add. gap | "
        "mean add. gap | usage perplexity |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table:
        cells = [
            row[k]
            for k in (
                "worst_multiplicative",
                "mean_multiplicative",
                "worst_additive",
                "mean_additive",
            )
        ]
        lines.append(
            f"| {row['name']} | {row['size']:.0f} | "
            + " | ".join(f"{x:.4f}" for x in cells)
            + f" | {row['perplexity']:.2f} |"
        )
    lines += [
        "",
        "`uniform` takes the trained policies nearest to evenly spread weight "
        "vectors; `random` draws members from the trained set.",
        "",
        "## Size against certified gap",
        "",
        "| size | multiplicative | additive |",
        "|---|---|---|",
    ]
    lines += [
        f"| {c['size']} | {c['multiplicative']:.4f} | {c['additive']:.4f} |"
        for c in curve
    ]
    lines += ["", "## Plots", ""]
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"
