"""The gRPC server of `palm.router.v1.Router`.

`RouterServer` puts together the model loop (engine.py), the servicer below, standard
health checking and reflection, the bearer-token interceptor, Prometheus metrics and
the portfolio reloader (reload.py). Errors map to one status each: InputError is
INVALID_ARGUMENT, a full queue RESOURCE_EXHAUSTED, shutting down UNAVAILABLE, anything
else INTERNAL. Every call logs exactly one INFO line.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from palm.errors import InputError, PalmError
from palm.portfolio import Member, Portfolio, load_portfolio, normalise_weights
from palm.router.v1 import router_pb2 as pb
from palm.router.v1 import router_pb2_grpc as pb_grpc
from palm.store import local_folder
from services.router.config import RouterConfig
from services.router.engine import (
    Engine,
    Job,
    QueueFull,
    Sampling,
    ShuttingDown,
    load_model,
)
from services.router.metrics import RouterMetrics

log = logging.getLogger(__name__)

SERVICE = pb.DESCRIPTOR.services_by_name["Router"].full_name
MAX_TEMPERATURE = 2.0


@dataclass(frozen=True)
class Served:
    """One portfolio version and the adapter name of each of its members."""

    portfolio: Portfolio
    adapters: dict[str, str]  # member id -> adapter name in the model
    locations: dict[str, str]  # adapter location -> adapter name, for reuse
    certificate: pb.Certificate  # built once per version, sent with every Route


def adapter_name(version: int, member_id: str) -> str:
    """Adapters of different versions live side by side; peft forbids '.' only."""
    return f"v{version}/{member_id}"


class RouterServer:
    """The router process: build it, `start()`, and `stop()` on SIGTERM."""

    def __init__(self, config: RouterConfig, *, step_hook=None):
        self.config = config
        portfolio = load_portfolio(config.portfolio)
        adapters = {
            m.id: adapter_name(portfolio.version, m.id) for m in portfolio.members
        }
        folders = {adapters[m.id]: local_folder(m.adapter) for m in portfolio.members}
        model, tokenizer = load_model(
            local_folder(portfolio.base_model, published=False),
            folders,
            config.device,
            config.threads,
        )
        self.engine = Engine(
            model,
            tokenizer,
            max_batch_size=config.max_batch_size,
            max_wait_ms=config.max_wait_ms,
            max_queue=config.max_queue,
            step_hook=step_hook,
        )
        self.metrics = RouterMetrics(self.engine)
        self.engine.on_batch = self.metrics.observe_batch
        self._lock = threading.Lock()
        self._served = _served(portfolio, adapters)
        self.metrics.portfolio_version.set(portfolio.version)
        self.health = health.HealthServicer()
        self._server = self._grpc_server(config)
        self.port = self._bind(config)
        from services.router.reload import Reloader  # reload.py imports this module

        self.reloader = Reloader(self, config)
        self._stopped = threading.Event()

    # -- assembly ------------------------------------------------------------
    def _grpc_server(self, config: RouterConfig) -> grpc.Server:
        token = config.read_token()
        # Outermost first: a caller without the token is refused before its bytes
        # are read, and bytes that are no message are the caller's error.
        interceptors = [MalformedRequests()] + ([BearerToken(token)] if token else [])
        server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=config.handler_threads, thread_name_prefix="router-rpc"
            ),
            interceptors=interceptors,
            maximum_concurrent_rpcs=config.handler_threads,
        )
        pb_grpc.add_RouterServicer_to_server(RouterServicer(self), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        return server

    def _bind(self, config: RouterConfig) -> int:
        address = f"{config.host}:{config.port}"
        tls = config.read_tls()
        if tls is None:
            port = self._server.add_insecure_port(address)
        else:
            port = self._server.add_secure_port(
                address, grpc.ssl_server_credentials([tls])
            )
        if port == 0:
            raise InputError(f"cannot listen on {address}: is the port taken?")
        return port

    # -- portfolio versions --------------------------------------------------
    def served(self) -> Served:
        with self._lock:
            return self._served

    def submit(self, choose, job_for) -> tuple[Served, Member, Job]:
        """Pick the member on the version being served and queue its job.

        `choose(portfolio)` picks the member; `job_for(adapter)` makes the job. Both
        run under the lock that switch() takes, so a version is never retired
        between choosing its adapter and queueing the job.
        """
        with self._lock:
            served = self._served
            member = choose(served.portfolio)
            job = job_for(served.adapters[member.id])
            self.engine.submit(job)
        return served, member, job

    def switch(self, portfolio: Portfolio, folders: dict[str, str]) -> None:
        """Serve `portfolio` from now on; `folders` maps members to local adapters.

        Adapters already loaded for the same location are reused; the new ones are
        loaded beside the old (the old version keeps serving meanwhile), and the old
        version's adapters go when its last request is done.
        """
        current = self.served()
        adapters, fresh = {}, {}
        for m in portfolio.members:
            name = current.locations.get(m.adapter)
            if name is None:
                name = adapter_name(portfolio.version, m.id)
                fresh[name] = folders[m.id]
            adapters[m.id] = name
        self.engine.load_adapters(fresh)
        with self._lock:
            old = set(self._served.adapters.values())
            self._served = _served(portfolio, adapters)
            self.engine.retire(sorted(old - set(adapters.values())))
        self.metrics.portfolio_version.set(portfolio.version)
        log.info(
            "serving portfolio version %d of build %s: %d members, %d adapters loaded",
            portfolio.version,
            portfolio.build,
            len(portfolio.members),
            len(fresh),
        )

    # -- life cycle ----------------------------------------------------------
    def start(self) -> None:
        self.engine.start()
        self._server.start()
        self.metrics.serve(self.config.host, self.config.metrics_port)
        for service in ("", SERVICE):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self.reloader.start()
        served = self.served().portfolio
        log.info(
            "router listening on %s:%d: build %s version %d, %d members",
            self.config.host,
            self.port,
            served.build,
            served.version,
            len(served.members),
        )

    def stop(self, grace: float | None = None) -> None:
        """Drain and stop: NOT_SERVING first, in-flight requests get `grace` seconds."""
        if self._stopped.is_set():
            return
        grace = self.config.grace_s if grace is None else grace
        deadline = time.monotonic() + grace
        self.health.enter_graceful_shutdown()
        self.engine.refuse_new()
        self.reloader.stop()
        log.info("router draining: up to %.1f s for requests in flight", grace)
        if not self.engine.wait_idle(grace):
            log.warning("grace period over with requests in flight; stopping anyway")
        # Replies already generated still need a moment to be written out.
        remaining = max(deadline - time.monotonic(), 1.0)
        self._server.stop(remaining).wait()
        self.engine.stop()
        self.metrics.shutdown()
        self._stopped.set()
        log.info("router stopped")

    def wait(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)


class BearerToken(grpc.ServerInterceptor):
    """Refuses calls without `authorization: Bearer <token>` (health is exempt)."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

        def deny(request: Any, context: grpc.ServicerContext) -> None:
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "authorization metadata is missing or wrong: send "
                "'authorization: Bearer <token>' with the router's token",
            )

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(f"/{health.SERVICE_NAME}/"):
            return continuation(handler_call_details)
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization" and hmac.compare_digest(
                str(value).encode(), self._expected
            ):
                return continuation(handler_call_details)
        return self._deny


class MalformedRequests(grpc.ServerInterceptor):
    """Bytes that do not decode as the request message are INVALID_ARGUMENT.

    grpcio answers them with INTERNAL, as if the server had failed; the fault is
    the caller's, so the caller is told so. Streaming requests are left as they are
    (only reflection takes one).
    """

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if (
            handler is None
            or handler.request_streaming
            or handler.request_deserializer is None
        ):
            return handler
        method = handler_call_details.method
        parse = handler.request_deserializer

        def deserialize(raw: bytes) -> Any:
            try:
                return parse(raw)
            except DecodeError as e:
                return _Malformed(
                    f"the request to {method} is not a valid message: {e}"
                )

        if handler.response_streaming:
            stream = handler.unary_stream

            def unary_stream(request, context):
                _refuse_malformed(request, context, method)
                yield from stream(request, context)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, deserialize, handler.response_serializer
            )
        unary = handler.unary_unary

        def unary_unary(request, context):
            _refuse_malformed(request, context, method)
            return unary(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, deserialize, handler.response_serializer
        )


@dataclass(frozen=True)
class _Malformed:
    """Stands for a request that could not be decoded, with the reason."""

    reason: str


def _refuse_malformed(request: Any, context: grpc.ServicerContext, method: str):
    if isinstance(request, _Malformed):
        log.info("%s code=INVALID_ARGUMENT malformed request", method)
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)


class _Call:
    """What one call's INFO line reports."""

    def __init__(self, rpc: str):
        self.rpc = rpc
        self.member = "-"
        self.version = 0
        self.tokens = 0
        self.finish = "-"
        self.code = grpc.StatusCode.OK


class RouterServicer(pb_grpc.RouterServicer):
    """The four RPCs of the contract; handlers named as in the proto."""

    def __init__(self, router: RouterServer):
        self.router = router
        self.config = router.config

    def Route(self, request, context):
        with self._observe("Route", context) as call:
            served = self.router.served()
            portfolio = served.portfolio
            weights = normalise_weights(request.weights, portfolio.objectives)
            member, value = portfolio.route(weights)
            call.member, call.version = member.id, portfolio.version
            return pb.RouteResponse(
                member_id=member.id,
                rewards=member.rewards,
                value=value,
                certificate=served.certificate,
                portfolio_version=portfolio.version,
                weights=weights,
            )

    def Generate(self, request, context):
        with self._observe("Generate", context) as call:
            served, member, job = self._start(request, context, call)
            parts = []
            for kind, value, tokens in _events(job):
                if kind == "text":
                    parts.append(value)
                call.tokens = tokens
            call.finish = value
            return pb.GenerateResponse(
                text="".join(parts),
                member_id=member.id,
                portfolio_version=served.portfolio.version,
                tokens=call.tokens,
                finish_reason=value,
            )

    def GenerateStream(self, request, context):
        with self._observe("GenerateStream", context) as call:
            served, member, job = self._start(request, context, call)
            version = served.portfolio.version
            for kind, value, tokens in _events(job):
                call.tokens = tokens
                text, finish = (value, "") if kind == "text" else ("", value)
                call.finish = finish or call.finish
                if kind == "done" and value == "cancelled":
                    return
                yield pb.GenerateChunk(
                    text=text,
                    member_id=member.id,
                    finish_reason=finish,
                    portfolio_version=version,
                    tokens=tokens,
                )

    def GetPortfolio(self, request, context):
        with self._observe("GetPortfolio", context) as call:
            served = self.router.served()
            portfolio = served.portfolio
            call.version = portfolio.version
            return pb.Portfolio(
                build=portfolio.build,
                version=portfolio.version,
                objectives=portfolio.objectives,
                members=[
                    pb.Member(id=m.id, weight=m.weight, rewards=m.rewards)
                    for m in portfolio.members
                ],
                certificate=served.certificate,
                solver=portfolio.solver,
                epsilon=portfolio.epsilon,
                delta=portfolio.delta,
            )

    # -- shared steps --------------------------------------------------------
    def _start(self, request, context, call: _Call) -> tuple[Served, Member, Job]:
        """Check a generation request, queue its job and tie it to the call."""
        prompt_ids = self._prompt(request.prompt)
        sampling = self._sampling(request.sampling)
        room = self.router.engine.context_length - len(prompt_ids)
        if sampling.max_new_tokens > room:
            raise InputError(
                f"prompt has {len(prompt_ids)} tokens and sampling.max_new_tokens is "
                f"{sampling.max_new_tokens}; together they exceed the model's context "
                f"of {self.router.engine.context_length} tokens: shorten one"
            )
        served, member, job = self.router.submit(
            self._chooser(request), lambda adapter: Job(adapter, prompt_ids, sampling)
        )
        # Fires when the call ends for any reason: a cancel or a passed deadline
        # then stops the job's generation at the next step.
        if not context.add_callback(job.cancel):
            job.cancel()
        call.member, call.version = member.id, served.portfolio.version
        self.router.metrics.members.labels(member.id).inc()
        return served, member, job

    def _chooser(self, request) -> Callable[[Portfolio], Member]:
        """How to pick the member once the version to serve is fixed."""
        target = request.WhichOneof("target")
        if target == "member_id":
            member_id = request.member_id[:100]
            return lambda portfolio: portfolio.member(member_id)
        if target == "weights":
            values = list(request.weights.values)
            return lambda portfolio: portfolio.route(
                normalise_weights(values, portfolio.objectives)
            )[0]
        raise InputError("target is not set: give weights or member_id")

    def _prompt(self, prompt: str) -> list[int]:
        if not prompt.strip():
            raise InputError("prompt is empty: give the text to answer")
        if len(prompt) > self.config.max_prompt_chars:
            raise InputError(
                f"prompt has {len(prompt)} characters; the router's max_prompt_chars "
                f"is {self.config.max_prompt_chars}: shorten it"
            )
        ids = self.router.engine.encode(prompt)
        if not ids:
            raise InputError("prompt encodes to no tokens: give some text")
        return ids

    def _sampling(self, s) -> Sampling:
        cap = self.config.max_new_tokens
        n = s.max_new_tokens or self.config.default_new_tokens
        if not 1 <= n <= cap:
            raise InputError(
                f"sampling.max_new_tokens is {s.max_new_tokens}; it must be in "
                f"[1, {cap}] (0 means the default, {self.config.default_new_tokens})"
            )
        if not (math.isfinite(s.temperature) and 0 <= s.temperature <= MAX_TEMPERATURE):
            raise InputError(
                f"sampling.temperature is {s.temperature}; it must be in "
                f"[0, {MAX_TEMPERATURE}] (0 is greedy decoding)"
            )
        top_p = s.top_p or 1.0
        if not (math.isfinite(top_p) and 0 < top_p <= 1):
            raise InputError(
                f"sampling.top_p is {s.top_p}; it must be in (0, 1] (0 means 1)"
            )
        seed = s.seed if s.HasField("seed") else None
        return Sampling(n, float(s.temperature), float(top_p), seed)

    @contextlib.contextmanager
    def _observe(self, rpc: str, context) -> Iterator[_Call]:
        """Map errors to statuses, then log one INFO line and record metrics."""
        call, start, detail = _Call(rpc), time.perf_counter(), ""
        failed = True
        try:
            yield call
            failed = False
        except InputError as e:
            call.code, detail = grpc.StatusCode.INVALID_ARGUMENT, str(e)
        except QueueFull as e:
            call.code, detail = grpc.StatusCode.RESOURCE_EXHAUSTED, str(e)
        except ShuttingDown as e:
            call.code, detail = grpc.StatusCode.UNAVAILABLE, str(e)
        except Exception as e:  # a bug or a failed batch: the caller sees INTERNAL
            log.exception("%s failed", rpc)
            call.code, detail = grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}"
        finally:
            if call.finish == "cancelled" or not context.is_active():
                call.code = grpc.StatusCode.CANCELLED
            seconds = time.perf_counter() - start
            self.router.metrics.observe_call(rpc, call.code.name, seconds)
            log.info(
                "%s member=%s version=%d tokens=%d finish=%s code=%s seconds=%.4f",
                rpc,
                call.member,
                call.version,
                call.tokens,
                call.finish,
                call.code.name,
                seconds,
            )
        # A failure is always ended by abort, even on a call the client has left:
        # a handler that just returned would hand grpc no reply (None) to send.
        if failed or call.code not in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
            context.abort(call.code, detail or "the call was cancelled")


def _events(job: Job) -> Iterator[tuple[str, Any, int]]:
    """The job's events up to and including the last; an error is raised."""
    while True:
        kind, value, tokens = job.events.get()
        if kind == "error":
            if isinstance(value, PalmError):
                raise value
            raise PalmError(f"generation failed: {value}") from value
        yield kind, value, tokens
        if kind == "done":
            return


def _served(portfolio: Portfolio, adapters: dict[str, str]) -> Served:
    locations = {m.adapter: adapters[m.id] for m in portfolio.members}
    return Served(portfolio, adapters, locations, _certificate(portfolio))


def _certificate(portfolio: Portfolio) -> pb.Certificate:
    c = portfolio.certificate
    return pb.Certificate(
        multiplicative=pb.Gap(gap=c.multiplicative.gap, weight=c.multiplicative.weight),
        additive=pb.Gap(gap=c.additive.gap, weight=c.additive.weight),
    )


def serve(config: RouterConfig) -> int:
    """Run the router until SIGTERM or SIGINT, then drain within the grace period."""
    import signal

    router = RouterServer(config)
    router.start()
    stopping = threading.Event()

    def on_signal(signum, frame):
        log.info("received %s", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stopping.wait(1.0):
        pass
    router.stop()
    return 0
