"""`palm route`, `palm generate` and `palm router serve` from a terminal."""

from __future__ import annotations

import json

import pytest

from palm.cli import main


def test_cli_route_prints_member_as_json(router, capsys):
    code = main(
        ["route", "--target", f"127.0.0.1:{router.port}", "--weights", "0.2,0.5,0.3"]
        + ["--json"]
    )
    reply = json.loads(capsys.readouterr().out)
    assert code == 0
    assert reply["member_id"].startswith("p") and reply["portfolio_version"] == 1


def test_cli_generate_streams_text(router, capsys):
    target = f"127.0.0.1:{router.port}"
    args = ["generate", "--target", target, "--member", "p0001", "--prompt", "thanks"]
    assert main(args + ["--max-new-tokens", "4", "--stream"]) == 0
    streamed = capsys.readouterr().out
    assert main(args + ["--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out == streamed and streamed.strip()


def test_cli_bad_weights_exit_2(router, capsys):
    target = f"127.0.0.1:{router.port}"
    assert main(["route", "--target", target, "--weights", "0.2,x"]) == 2
    assert "--weights entry 2 is 'x'" in capsys.readouterr().err
    assert main(["route", "--target", target, "--weights", "0.5,0.5"]) == 2
    assert "weights has 2 entries" in capsys.readouterr().err


def test_cli_router_serve_has_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["router", "serve", "--help"])
    assert info.value.code == 0
    assert "--portfolio" in capsys.readouterr().out
