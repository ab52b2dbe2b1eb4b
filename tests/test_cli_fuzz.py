"""Fuzzing the CLI: malformed values, reward files, portfolios and build specs.

Every command either does its job (exit 0) or refuses with exit status 2 and one
line that starts with the command's name; none raises a traceback. Commands run in
this process through `palm.cli.main`, so an escaping exception fails the test with
its shrunk input. `palm build run` never trains here: the embedded build is replaced
by a stand-in that only resolves the spec's rewards, as the real one does first.
"""

from __future__ import annotations

import io
import json
import math
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from palm.cli import main

MICRO = Path(__file__).resolve().parent / "data" / "micro.toml"

FUZZ = settings(
    max_examples=50,
    deadline=None,  # a shared CPU makes single examples slow now and then
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def assert_done_or_refused(command: str, code: int, err: str) -> None:
    assert "Traceback" not in err
    if code == 0:
        return
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"palm {command}: "), err


# -- values ------------------------------------------------------------------------
NASTY_NUMBERS = [
    "0", "-0", "1", "-1", "0.5", "1e-300", "1e308", "1e400", "-1e400", "nan", "NaN",
    "inf", "-inf", "", " ", "abc", "0x10", "1_000", "½", "٣", "2.5", "10" * 30,
]  # fmt: skip
numbers_text = st.one_of(
    st.sampled_from(NASTY_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
)
# Valid sizes stay small: a valid grid is printed whole, one line per vector.
grid_numbers = st.one_of(
    st.sampled_from(NASTY_NUMBERS), st.floats(0.05, 5).map(repr), numbers_text
)
objectives_text = st.one_of(
    st.integers(-3, 6).map(str), st.sampled_from(["10" * 9, "1e3", "2.0", "x", ""])
)


@FUZZ
@given(d=objectives_text, alpha=grid_numbers, mu=grid_numbers, as_json=st.booleans())
@example(d="100000000", alpha="0.5", mu="1", as_json=False)  # once hung for minutes
def test_fuzz_cli_grid_refuses_bad_values_in_one_line(d, alpha, mu, as_json):
    # OPTION=VALUE: argparse would read a value like "-inf" as an option's name.
    argv = ["grid", f"--objectives={d}", f"--alpha={alpha}", f"--mu={mu}"]
    code, _, err = run(*argv, *(["--json"] if as_json else []))
    assert_done_or_refused("grid", code, err)


# -- reward matrices and portfolios ----------------------------------------------------
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-(10**20), 10**20)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
rewards = st.one_of(
    st.lists(st.floats(0, 1), min_size=2, max_size=2),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=3),
    json_values,
)


@st.composite
def reward_matrices(draw):
    """Near-valid R.json documents: right shape, any values."""
    objectives = draw(st.one_of(st.just(["a", "b"]), json_values))
    policies = draw(
        st.lists(
            st.fixed_dictionaries(
                {"id": st.one_of(st.sampled_from(["p0", "p1", "p2"]), json_values)},
                optional={
                    "rewards": rewards,
                    "weight": rewards,
                    "stderr": rewards,
                },
            ),
            max_size=4,
        )
        | json_values
    )
    return {"objectives": objectives, "policies": policies}


documents = st.one_of(
    reward_matrices().map(json.dumps),  # NaN and Infinity are written as such
    json_values.map(json.dumps),
    st.text(max_size=40),
).map(str.encode) | st.binary(max_size=40)


@FUZZ
@example(
    document=b"\xff\xfe{", epsilon="0.05", solver="greedy", budget=None, samples="10"
)
@given(
    document=documents,
    epsilon=numbers_text,
    solver=st.sampled_from(["greedy", "exact", "", "ilp"]),
    budget=st.one_of(st.none(), numbers_text),
    samples=st.sampled_from(["0", "10", "-5", "x", "1e3"]),
)
def test_fuzz_cli_cover_refuses_bad_reward_files_in_one_line(
    tmp_path, document, epsilon, solver, budget, samples
):
    path = tmp_path / "R.json"
    path.write_bytes(document)
    argv = ["cover", f"--rewards={path}", f"--epsilon={epsilon}", f"--solver={solver}"]
    argv += [f"--samples={samples}", "--time-limit=2", "--json"]
    if budget is not None:
        argv.append(f"--budget={budget}")
    code, _, err = run(*argv)
    assert_done_or_refused("cover", code, err)


VALID_MATRIX = {
    "objectives": ["a", "b"],
    "policies": [
        {"id": "p0", "rewards": [0.9, 0.1]},
        {"id": "p1", "rewards": [0.5, 0.5]},
        {"id": "p2", "rewards": [0.1, 0.9]},
    ],
}
portfolios = st.one_of(
    st.fixed_dictionaries(
        {
            "members": st.lists(
                st.one_of(
                    st.sampled_from(["p0", "p1", "p2", "p9"]),
                    st.fixed_dictionaries({"id": json_values}),
                    json_values,
                ),
                max_size=4,
            )
        }
    ),
    json_values,
).map(json.dumps)


@FUZZ
@given(document=documents, portfolio=portfolios, valid_rewards=st.booleans())
def test_fuzz_cli_certify_refuses_bad_files_in_one_line(
    tmp_path, document, portfolio, valid_rewards
):
    rewards_path, portfolio_path = tmp_path / "R.json", tmp_path / "P.json"
    if valid_rewards:  # then the portfolio is what is being fuzzed
        document = json.dumps(VALID_MATRIX).encode()
    rewards_path.write_bytes(document)
    portfolio_path.write_text(portfolio)
    argv = ["certify", "--rewards", str(rewards_path)]
    code, _, err = run(*argv, "--portfolio", str(portfolio_path), "--json")
    assert_done_or_refused("certify", code, err)


# -- build specs ---------------------------------------------------------------------
MICRO_SPEC = tomllib.loads(MICRO.read_text())
toml_values = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.booleans(),
    st.lists(st.integers(-3, 3), max_size=3),
    st.sampled_from(
        [
            "python:tests.integration.unimportable:score",
            "python:tests.integration.faulty:missing",
            "python:no_such_module:score",
            "python:os.path",
            "hf-classifier:/nonexistent",
            "hf-classifier:",
            "../../etc/passwd",
            "support",
            "",
        ]
    ),
)
KEYS = [
    (section, key)
    for section, table in MICRO_SPEC.items()
    if isinstance(table, dict)
    for key in table
] + [("objectives", "name"), ("objectives", "reward"), (None, "name"), (None, "seed")]


def toml_value(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is a JSON string
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


@st.composite
def broken_specs(draw) -> str:
    """micro.toml with one to three values replaced, or text that is not TOML."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.text(max_size=60))
    lines = MICRO.read_text().splitlines()
    for _ in range(draw(st.integers(1, 3))):
        section, key = draw(st.sampled_from(KEYS))
        value = toml_value(draw(toml_values))
        current = None
        for i, line in enumerate(lines):
            if line.startswith("["):
                current = line.strip("[] ")
            if line.split("=")[0].strip() == key and current in (section, None):
                lines[i] = f"{key} = {value}"
                break
    return "\n".join(lines) + "\n"


def _stand_in(spec, store, build=None, *, progress=True):
    spec.reward_functions()  # the real build resolves every reward first
    return {"accepted": spec.name}


@FUZZ
@given(text=broken_specs())
@example(text='name = "x"\nseed = "nope"\n[grid]\nalpha = 7\n')
def test_fuzz_cli_build_run_refuses_broken_specs_in_one_line(tmp_path, text):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    with mock.patch("palm.runner.run_build", _stand_in):
        code, _, err = run(
            "build", "run", str(path), f"--store={tmp_path / 's'}", "--json"
        )
    assert_done_or_refused("build", code, err)


def test_fuzz_cli_build_run_refuses_unimportable_reward_in_one_line(tmp_path):
    text = MICRO.read_text().replace(
        'name = "brevity"\n',
        'name = "brevity"\nreward = "python:tests.integration.unimportable:score"\n',
    )
    path = tmp_path / "spec.toml"
    path.write_text(text)
    with mock.patch("palm.runner.run_build", _stand_in):
        code, _, err = run(
            "build", "run", str(path), f"--store={tmp_path / 's'}", "--json"
        )
    assert code == 2
    assert "fails on import, on purpose" in err and len(err.splitlines()) == 1


def test_fuzz_cli_build_run_refuses_a_spec_that_is_not_text(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_bytes(b"\xff\xfename = 1\n")
    code, _, err = run("build", "run", str(path), f"--store={tmp_path / 's'}")
    assert code == 2
    assert "is not UTF-8 text" in err and len(err.splitlines()) == 1
