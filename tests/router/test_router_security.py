"""Security: no client field reaches a file or an import; TLS; the token stays secret.

Also covered elsewhere: a call without the bearer token is UNAUTHENTICATED, and a
token over TLS is accepted (test_router_ops.py); the broker takes JSON only and
refuses a pickle (tests/integration/test_workers.py::
test_worker_refuses_a_pickled_message).
"""

from __future__ import annotations

import logging
import subprocess
import sys

import grpc
import pytest

from palm.cli import build_parser
from palm.router.v1 import router_pb2 as pb
from palm.router.v1 import router_pb2_grpc as pb_grpc

from .conftest import WAIT_S, channel_to

MARKER = "palm-audit-marker"
_seen: list[tuple[str, str]] = []  # audit events that mentioned MARKER
_recording = False


def _audit(event: str, args: tuple) -> None:
    # The interpreter calls this for every audited action (open, import, exec,
    # os.system, subprocess...) in every thread, the router's included.
    if _recording and event in _WATCHED and MARKER in repr(args):
        _seen.append((event, repr(args)[:200]))


_WATCHED = {
    "open",
    "import",
    "exec",
    "compile",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "subprocess.Popen",
    "shutil.copyfile",
    "os.listdir",
    "os.scandir",
}
sys.addaudithook(_audit)  # cannot be removed; idle unless a test records


HOSTILE_MEMBER_IDS = [
    f"../../{MARKER}/etc/passwd",
    f"/{MARKER}",
    f"file:///{MARKER}",
    f"python:{MARKER.replace('-', '_')}:run",
    f"python:os:system;{MARKER}",
    f"hf-classifier:/{MARKER}",
    f"p0000/../../{MARKER}",
    f"memory://{MARKER}/adapter",
]


@pytest.mark.parametrize("member_id", HOSTILE_MEMBER_IDS)
@pytest.mark.parametrize("rpc", ["Generate", "GenerateStream"])
def test_security_member_id_reaches_no_file_and_no_import(stub, rpc, member_id):
    global _recording
    request = pb.GenerateRequest(prompt="thanks", member_id=member_id)
    _seen.clear()
    _recording = True
    try:
        with pytest.raises(grpc.RpcError) as info:
            reply = getattr(stub, rpc)(request, timeout=WAIT_S)
            if rpc == "GenerateStream":
                list(reply)
    finally:
        _recording = False
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "member_id" in info.value.details()
    assert _seen == []
    assert MARKER.replace("-", "_") not in sys.modules


def test_security_token_is_never_logged(start_router, monkeypatch, caplog):
    token = "tok-3f9a-never-in-a-log"
    monkeypatch.setenv("PALM_TEST_ROUTER_TOKEN", token)
    caplog.set_level(logging.DEBUG)
    server = start_router(token_env="PALM_TEST_ROUTER_TOKEN")
    good = (("authorization", f"Bearer {token}"),)
    with channel_to(server) as channel:
        stub = pb_grpc.RouterStub(channel)
        for metadata in ((), (("authorization", f"Bearer {token}x"),)):
            with pytest.raises(grpc.RpcError) as info:
                stub.Route(pb.RouteRequest(weights=[1, 1, 1]), metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert token not in info.value.details()
        assert stub.Route(pb.RouteRequest(weights=[1, 1, 1]), metadata=good).member_id
        request = pb.GenerateRequest(prompt="thanks", member_id="p0001")
        assert stub.Generate(request, metadata=good, timeout=WAIT_S).tokens > 0
        assert list(stub.GenerateStream(request, metadata=good, timeout=WAIT_S))
        with pytest.raises(grpc.RpcError) as info:  # a refusal that echoes input
            stub.Route(pb.RouteRequest(weights=[1]), metadata=good)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    server.stop(grace=5.0)
    assert len(caplog.records) > 5  # the calls were logged...
    for record in caplog.records:  # ...and none of it holds the token
        assert token not in record.getMessage()
    assert token not in caplog.text


@pytest.mark.parametrize(
    "argv",
    [
        ["router", "serve", "--portfolio", "p.json"],
        ["route", "--weights", "1,1,1"],
        ["generate", "--member", "p0", "--prompt", "hi"],
    ],
    ids=["serve", "route", "generate"],
)
def test_security_token_is_not_taken_on_the_command_line(argv):
    """A token in argv would show in `ps` and shell history: a file or a variable
    holds it, and the command line only names which."""
    options = vars(build_parser().parse_args(argv))
    assert "token_env" in options
    assert not {"token", "bearer", "password"} & set(options)


@pytest.fixture(scope="module")
def tls_router(start_router, tls_files):
    key, cert = tls_files
    return start_router(tls_cert=str(cert), tls_key=str(key))


def test_security_tls_router_refuses_a_plaintext_client(tls_router):
    with (
        grpc.insecure_channel(f"127.0.0.1:{tls_router.port}") as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        pb_grpc.RouterStub(channel).Route(
            pb.RouteRequest(weights=[1, 1, 1]), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_security_tls_client_refuses_a_certificate_it_does_not_trust(
    tls_router, tls_files, tmp_path
):
    other_key, other_cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(other_key), "-out", str(other_cert)]
        + ["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
        check=True,
        capture_output=True,
    )
    for root, code in (
        (other_cert, grpc.StatusCode.UNAVAILABLE),  # a stranger's certificate
        (tls_files[1], grpc.StatusCode.OK),  # the router's own
    ):
        credentials = grpc.ssl_channel_credentials(root_certificates=root.read_bytes())
        with grpc.secure_channel(f"localhost:{tls_router.port}", credentials) as ch:
            try:
                pb_grpc.RouterStub(ch).Route(
                    pb.RouteRequest(weights=[1, 1, 1]), timeout=10
                )
                got = grpc.StatusCode.OK
            except grpc.RpcError as e:
                got = e.code()
        assert got == code
