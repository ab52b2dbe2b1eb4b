"""A small client of the router for scripts, product backends and the CLI.

    client = RouterClient("127.0.0.1:50051")
    client.route([0.2, 0.5, 0.3])            # {"member_id": ..., "value": ...}
    client.generate("my parcel is late", weights=[0.2, 0.5, 0.3])
    for chunk in client.stream("my parcel is late", member_id="p0003"):
        print(chunk, end="")

Errors from the router come back as `grpc.RpcError`, except INVALID_ARGUMENT,
which is raised as palm's InputError with the router's message.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc

from palm.errors import InputError
from palm.router.v1 import router_pb2 as pb
from palm.router.v1 import router_pb2_grpc as pb_grpc


class RouterClient:
    """A connection to one router; use it as a context manager or call close()."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls_root: str | Path | None = None,
        timeout: float = 60.0,
    ):
        self.target = target
        self.timeout = timeout
        if tls_root is None:
            self._channel = grpc.insecure_channel(target)
        else:
            root = Path(tls_root).read_bytes()
            credentials = grpc.ssl_channel_credentials(root_certificates=root)
            self._channel = grpc.secure_channel(target, credentials)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._stub = pb_grpc.RouterStub(self._channel)

    def __enter__(self) -> RouterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def route(self, weights: Sequence[float]) -> dict[str, Any]:
        """The member that serves `weights`, its rewards, value and the certificate."""
        reply = self._call(self._stub.Route, pb.RouteRequest(weights=list(weights)))
        return {
            "member_id": reply.member_id,
            "rewards": list(reply.rewards),
            "value": reply.value,
            "weights": list(reply.weights),
            "portfolio_version": reply.portfolio_version,
            "certificate": _certificate(reply.certificate),
        }

    def generate(
        self,
        prompt: str,
        weights: Sequence[float] | None = None,
        member_id: str | None = None,
        **sampling: Any,
    ) -> dict[str, Any]:
        """One reply: text, member_id, portfolio_version, tokens, finish_reason.

        `sampling` takes max_new_tokens, temperature, top_p and seed.
        """
        request = _request(prompt, weights, member_id, sampling)
        reply = self._call(self._stub.Generate, request)
        return {
            "text": reply.text,
            "member_id": reply.member_id,
            "portfolio_version": reply.portfolio_version,
            "tokens": reply.tokens,
            "finish_reason": reply.finish_reason,
        }

    def stream(
        self,
        prompt: str,
        weights: Sequence[float] | None = None,
        member_id: str | None = None,
        **sampling: Any,
    ) -> Iterator[str]:
        """The reply's text, chunk by chunk as the router generates it."""
        request = _request(prompt, weights, member_id, sampling)
        try:
            for chunk in self._stub.GenerateStream(
                request, timeout=self.timeout, metadata=self._metadata
            ):
                if chunk.text:
                    yield chunk.text
        except grpc.RpcError as e:
            raise _translated(e) from e

    def portfolio(self) -> dict[str, Any]:
        """The portfolio being served."""
        reply = self._call(self._stub.GetPortfolio, pb.GetPortfolioRequest())
        return {
            "build": reply.build,
            "version": reply.version,
            "objectives": list(reply.objectives),
            "members": [
                {"id": m.id, "weight": list(m.weight), "rewards": list(m.rewards)}
                for m in reply.members
            ],
            "certificate": _certificate(reply.certificate),
            "solver": reply.solver,
            "epsilon": reply.epsilon,
            "delta": reply.delta,
        }

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise _translated(e) from e


def _request(
    prompt, weights, member_id, sampling: dict[str, Any]
) -> pb.GenerateRequest:
    if (weights is None) == (member_id is None):
        raise InputError("give exactly one of weights or member_id")
    known = {"max_new_tokens", "temperature", "top_p", "seed"}
    unknown = sorted(set(sampling) - known)
    if unknown:
        raise InputError(
            f"unknown sampling parameter(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    params = pb.SamplingParams(**{k: v for k, v in sampling.items() if v is not None})
    if member_id is not None:
        return pb.GenerateRequest(prompt=prompt, member_id=member_id, sampling=params)
    return pb.GenerateRequest(
        prompt=prompt, weights=pb.Weights(values=list(weights)), sampling=params
    )


def _translated(error: grpc.RpcError) -> Exception:
    if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return InputError(error.details())
    return error


def _certificate(c: pb.Certificate) -> dict[str, Any]:
    return {
        "multiplicative": {
            "gap": c.multiplicative.gap,
            "weight": list(c.multiplicative.weight),
        },
        "additive": {"gap": c.additive.gap, "weight": list(c.additive.weight)},
    }
