"""The generated stubs in palm/router/v1 are those the proto gives today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("router_pb2.py", "router_pb2.pyi", "router_pb2_grpc.py")


def test_router_stubs_are_current(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-Iproto"]
        + [f"--python_out={tmp_path}", f"--pyi_out={tmp_path}"]
        + [f"--grpc_python_out={tmp_path}", "proto/palm/router/v1/router.proto"],
        cwd=ROOT,
        check=True,
    )
    for name in GENERATED:
        fresh = (tmp_path / "palm/router/v1" / name).read_text()
        committed = (ROOT / "palm/router/v1" / name).read_text()
        assert fresh == committed, (
            f"palm/router/v1/{name} is stale: run `python -m grpc_tools.protoc "
            "-Iproto --python_out=. --pyi_out=. --grpc_python_out=. "
            "proto/palm/router/v1/router.proto` from the repository root"
        )
