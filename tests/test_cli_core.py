"""`palm grid`, `palm cover`, `palm certify`: through main() and one subprocess."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from palm.cli import main
from palm.grid import geometric_grid

OBJECTIVES = ["brevity", "informativeness", "warmth"]


def _reward_matrix(n=30, seed=0):
    """Policies on a concave front with a little noise, as training produces."""
    rng = np.random.default_rng(seed)
    weight = rng.dirichlet(np.ones(3), size=n)
    front = 0.9 * weight / np.linalg.norm(weight, axis=1, keepdims=True)
    rewards = np.clip(front + rng.normal(0, 0.02, front.shape), 0, 1)
    return {
        "objectives": OBJECTIVES,
        "policies": [
            {"id": f"p{i:02d}", "weight": weight[i].tolist(), "rewards": r.tolist()}
            for i, r in enumerate(rewards)
        ],
    }


@pytest.fixture
def rewards_file(tmp_path):
    path = tmp_path / "R.json"
    path.write_text(json.dumps(_reward_matrix()))
    return str(path)


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _write(tmp_path, name, obj):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


# --------------------------------------------------------------------------- grid


def test_cli_grid_json_lists_vectors_size_and_bound(capsys):
    code, out, _ = _run(
        capsys, "grid", "--objectives", "3", "--alpha", "0.2", "--mu", "1", "--json"
    )
    data = json.loads(out)
    assert code == 0
    assert data["size"] == len(data["weights"]) == len(geometric_grid(3, 0.2, 1.0))
    assert data["bound"] == 3 * len(data["levels"]) ** 2


def test_cli_grid_human_output_is_a_table(capsys):
    code, out, _ = _run(
        capsys, "grid", "--objectives", "2", "--alpha", "0.5", "--mu", "1"
    )
    lines = out.splitlines()
    assert code == 0
    assert lines[0].startswith("grid: 5 weight vectors (bound 6)")
    assert lines[2].split() == ["w1", "w2"]
    assert len(lines) == 4 + 5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--alpha", "1.5"], r"alpha is 1.5; it must be a number in the open interval"),
        (["--alpha", "0"], "alpha is 0.0"),
        (["--alpha", "abc"], "alpha is 'abc'; it must be a number"),
        (["--mu", "-1"], "mu is -1.0"),
        (["--objectives", "1"], "objectives is 1"),
    ],
    ids=["alpha-above", "alpha-zero", "alpha-text", "mu", "objectives"],
)
def test_cli_grid_bad_values_exit_2_with_one_line(capsys, argv, message):
    args = ["grid", "--objectives", "3", *argv]
    code, out, err = _run(capsys, *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("palm grid: ")
    assert re.search(message, err)


# --------------------------------------------------------------------------- cover


def test_cli_cover_json_lists_members_with_ids_weights_rewards(capsys, rewards_file):
    code, out, _ = _run(
        capsys,
        "cover",
        "--rewards",
        rewards_file,
        "--epsilon",
        "0.05",
        "--delta",
        "0",
        "--solver",
        "exact",
        "--samples",
        "300",
        "--json",
    )
    data = json.loads(out)
    matrix = _reward_matrix()
    by_id = {p["id"]: p for p in matrix["policies"]}
    assert code == 0
    assert data["solver"] == "exact" and data["covered"] == 1.0
    assert data["epsilon"] == 0.05 and data["delta"] == 0.0
    assert data["weights"] == len(geometric_grid(3, 0.1, 0.5)) + 300
    for member in data["members"]:
        assert member["rewards"] == by_id[member["id"]]["rewards"]
        assert member["weight"] == pytest.approx(by_id[member["id"]]["weight"])


def test_cli_cover_with_weight_file_and_human_table(capsys, tmp_path, rewards_file):
    weights = _write(tmp_path, "W.json", {"weights": [[1, 0, 0], [0, 1, 0], [1, 1, 1]]})
    code, out, _ = _run(
        capsys, "cover", "--rewards", rewards_file, "--weights", weights
    )
    lines = out.splitlines()
    assert code == 0
    assert "cover 100.0% of 3 weight vectors" in lines[0]
    assert lines[3].split() == ["id", "weight", *OBJECTIVES]
    assert lines[4].startswith("--")


def test_cli_cover_budget_reports_epsilon_reached(capsys, rewards_file):
    args = ["cover", "--rewards", rewards_file, "--samples", "200", "--budget", "2"]
    code, out, _ = _run(capsys, *args, "--solver", "exact", "--json")
    exact = json.loads(out)
    _, out, _ = _run(capsys, *args, "--json")
    greedy = json.loads(out)
    assert code == 0
    assert exact["budget"] == 2 and exact["kind"] == "multiplicative"
    assert len(exact["members"]) <= 2
    assert 0 < exact["epsilon"] <= greedy["epsilon"]
    code, out, _ = _run(capsys, *args)
    assert out.startswith("budget 2: ") and "reach epsilon" in out


def test_cli_cover_additive_budget_reports_delta(capsys, rewards_file):
    code, out, _ = _run(
        capsys,
        "cover",
        "--rewards",
        rewards_file,
        "--samples",
        "100",
        "--budget",
        "3",
        "--budget-kind",
        "additive",
        "--json",
    )
    data = json.loads(out)
    assert code == 0 and data["kind"] == "additive" and data["delta"] > 0


def _policy_with(rewards):
    return {"objectives": ["a", "b"], "policies": [{"id": "bad", "rewards": rewards}]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"objectives": ["a", "b"], '
            '"policies": [{"id": "bad", "rewards": [NaN, 0.5]}]}',
            "policy 'bad' has rewards entry nan",
        ),
        (
            _policy_with([-0.2, 0.5]),
            r"policy 'bad' has reward -0.2; rewards must be in \[0, 1\]",
        ),
        (_policy_with([1.5, 0.5]), "policy 'bad' has reward 1.5"),
        (
            _policy_with([0.5]),
            "policy 'bad' has 1 rewards entries, the reward matrix has 2 objectives",
        ),
        ({"objectives": ["a", "b"], "policies": []}, '"policies" is \\[\\]'),
        ('{"objectives": ["a"], "policies": [', "is not valid JSON"),
    ],
    ids=["nan", "negative", "above-one", "mismatched", "empty", "malformed"],
)
def test_cli_cover_bad_reward_matrix_exits_2_with_one_line(
    capsys, tmp_path, content, message
):
    path = _write(tmp_path, "R.json", content)
    code, out, err = _run(capsys, "cover", "--rewards", path)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--solver", "ilp"], "solver is 'ilp'; it must be one of greedy, exact"),
        (["--alpha", "1"], "alpha is 1.0"),
        (["--epsilon", "1.2"], r"epsilon is 1.2; it must be in \[0, 1\)"),
        (["--delta", "-1"], "delta is -1.0"),
        (["--budget", "0"], "budget is 0"),
        (["--budget", "2", "--budget-kind", "ratio"], "kind is 'ratio'"),
        (["--time-limit", "0", "--solver", "exact"], "time limit is 0.0"),
        (["--samples", "many"], "samples is 'many'; it must be an integer"),
        (["--weights", "/nonexistent/W.json"], "cannot be read"),
    ],
    ids=[
        "solver",
        "alpha",
        "epsilon",
        "delta",
        "budget",
        "kind",
        "time",
        "samples",
        "file",
    ],
)
def test_cli_cover_bad_options_exit_2_with_one_line(
    capsys, rewards_file, argv, message
):
    code, out, err = _run(capsys, "cover", "--rewards", rewards_file, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err)


def test_cli_cover_weights_of_wrong_length_exit_2(capsys, tmp_path, rewards_file):
    weights = _write(tmp_path, "W.json", [[1, 0]])
    code, _, err = _run(
        capsys, "cover", "--rewards", rewards_file, "--weights", weights
    )
    assert (
        code == 2
        and "vector #0 has 2 weight entries, the reward matrix has 3 objectives" in err
    )


# --------------------------------------------------------------------------- certify


def test_cli_certify_reads_cover_output(capsys, tmp_path, rewards_file):
    _, out, _ = _run(
        capsys, "cover", "--rewards", rewards_file, "--samples", "200", "--json"
    )
    portfolio = _write(tmp_path, "P.json", out)
    code, out, _ = _run(
        capsys, "certify", "--rewards", rewards_file, "--portfolio", portfolio, "--json"
    )
    data = json.loads(out)
    assert code == 0
    assert set(data) == {"multiplicative", "additive"}
    assert 0 <= data["multiplicative"]["gap"] < 1
    assert len(data["additive"]["weight"]) == 3


def test_cli_certify_accepts_plain_ids_and_prints_a_table(
    capsys, tmp_path, rewards_file
):
    ids = [p["id"] for p in _reward_matrix()["policies"]]
    portfolio = _write(tmp_path, "P.json", {"members": ids})
    code, out, _ = _run(
        capsys, "certify", "--rewards", rewards_file, "--portfolio", portfolio
    )
    lines = out.splitlines()
    assert code == 0
    assert lines[0].startswith("certificate: 30 members against 30 policies")
    assert lines[2].split()[:2] == ["gap", "value"]
    assert lines[4].split()[:2] == ["multiplicative", "0"]
    assert lines[5].split()[:2] == ["additive", "0"]


@pytest.mark.parametrize(
    ("portfolio", "message"),
    [
        ({"members": ["p01", "nope"]}, "policy id 'nope' is not in the reward matrix"),
        ({"members": []}, 'no "members" list'),
        ({"ids": ["p01"]}, 'no "members" list'),
        ({"members": [{"name": "p01"}]}, "neither an id string nor an object"),
        ("{not json", "is not valid JSON"),
    ],
    ids=["unknown-id", "empty", "no-members", "no-id", "malformed"],
)
def test_cli_certify_bad_portfolio_exits_2_with_one_line(
    capsys, tmp_path, rewards_file, portfolio, message
):
    path = _write(tmp_path, "P.json", portfolio)
    code, out, err = _run(
        capsys, "certify", "--rewards", rewards_file, "--portfolio", path
    )
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert message in err


def test_cli_core_commands_have_help(capsys):
    for command in ("grid", "cover", "certify"):
        with pytest.raises(SystemExit) as stop:
            main([command, "--help"])
        assert stop.value.code == 0
        assert "--json" in capsys.readouterr().out


def test_cli_installed_palm_exits_2_with_one_line_on_bad_input(tmp_path):
    palm = Path(sys.executable).parent / "palm"
    path = _write(tmp_path, "R.json", _policy_with([float("nan"), 0.5]))
    done = subprocess.run(
        [str(palm), "cover", "--rewards", path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("palm cover: policy 'bad' has rewards entry nan")
