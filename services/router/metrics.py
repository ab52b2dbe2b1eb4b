"""Prometheus metrics of the router, in a registry of its own.

palm_router_requests_total{rpc,code}       calls answered
palm_router_request_seconds{rpc}           call latency
palm_router_batch_size                     jobs per generation batch
palm_router_member_requests_total{member}  generation requests per member
palm_router_queue_depth                    jobs waiting for the model
palm_router_portfolio_version              version being served
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server

log = logging.getLogger(__name__)


class RouterMetrics:
    """The router's counters; served over HTTP only when a port is configured."""

    def __init__(self, engine: Any):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "palm_router_requests", "Calls answered", ["rpc", "code"], registry=r
        )
        self.seconds = Histogram(
            "palm_router_request_seconds", "Call latency", ["rpc"], registry=r
        )
        self.batch_size = Histogram(
            "palm_router_batch_size",
            "Jobs per generation batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.members = Counter(
            "palm_router_member_requests",
            "Generation requests per member",
            ["member"],
            registry=r,
        )
        queue = Gauge("palm_router_queue_depth", "Jobs waiting", registry=r)
        queue.set_function(engine.queued)
        self.portfolio_version = Gauge(
            "palm_router_portfolio_version", "Portfolio version served", registry=r
        )
        self._http: Any = None

    def observe_call(self, rpc: str, code: str, seconds: float) -> None:
        self.requests.labels(rpc, code).inc()
        self.seconds.labels(rpc).observe(seconds)

    def observe_batch(self, jobs: list) -> None:
        self.batch_size.observe(len(jobs))

    def serve(self, host: str, port: int | None) -> None:
        if port is None:
            return
        self._http, _ = start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", host, self._http.server_port)

    @property
    def port(self) -> int | None:
        return None if self._http is None else self._http.server_port

    def shutdown(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
