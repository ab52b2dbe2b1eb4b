"""The router's one configuration object, built once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from palm.errors import InputError


@dataclass(frozen=True)
class RouterConfig:
    """Everything the router needs to know, checked in one place."""

    portfolio: str
    """Location of the portfolio.json to serve: a local path or an fsspec URL."""
    host: str = "127.0.0.1"
    """Interface to listen on; 0.0.0.0 to accept connections from other machines."""
    port: int = 50051
    """gRPC port; 0 picks a free one (the server reports which)."""
    max_batch_size: int = 16
    """Most requests generated together in one batch, across members."""
    max_wait_ms: float = 5.0
    """How long the loop waits for more requests to fill a batch once one arrives."""
    max_queue: int = 256
    """Most generation requests waiting for the model; beyond, RESOURCE_EXHAUSTED."""
    max_new_tokens: int = 256
    """Cap on the tokens one request may ask for."""
    default_new_tokens: int = 64
    """Tokens generated when a request leaves max_new_tokens at 0."""
    max_prompt_chars: int = 8192
    """Longest prompt accepted, in characters."""
    reload_interval_s: float = 30.0
    """How often the store is checked for a newer portfolio; 0 turns the check off."""
    broker: str | None = None
    """Redis URL whose `palm:portfolios` channel announces new versions; optional."""
    tls_cert: str | None = None
    """PEM certificate chain file; with tls_key, the server speaks TLS."""
    tls_key: str | None = None
    """PEM private key file for tls_cert."""
    token_file: str | None = None
    """File holding the bearer token clients must send; read once at start-up."""
    token_env: str = "PALM_ROUTER_TOKEN"
    """Environment variable holding the bearer token when token_file is not set."""
    metrics_port: int | None = None
    """HTTP port for Prometheus metrics; None serves none."""
    grace_s: float = 30.0
    """On SIGTERM, how long requests in flight may take to finish."""
    device: str = "auto"
    """torch device for the model: cpu, cuda, cuda:N, or auto (cuda when present)."""
    threads: int = 0
    """torch intra-op threads on CPU; 0 keeps torch's default (one per core). A
    small model on a shared machine is much faster with 1."""
    workers: int = 0
    """gRPC handler threads; 0 sizes it from max_queue and max_batch_size."""

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise InputError("router config: " + "; ".join(problems))

    def _problems(self):
        if not self.portfolio:
            yield "portfolio is empty: give the location of a portfolio.json"
        if not 0 <= self.port <= 65535:
            yield f"port is {self.port}; it must be in [0, 65535]"
        for name in ("max_batch_size", "max_queue", "max_new_tokens"):
            if getattr(self, name) < 1:
                yield f"{name} is {getattr(self, name)}; it must be >= 1"
        if not 1 <= self.default_new_tokens <= self.max_new_tokens:
            yield (
                f"default_new_tokens is {self.default_new_tokens}; it must be in "
                f"[1, max_new_tokens={self.max_new_tokens}]"
            )
        if self.max_prompt_chars < 1:
            yield f"max_prompt_chars is {self.max_prompt_chars}; it must be >= 1"
        for name in ("max_wait_ms", "reload_interval_s", "grace_s"):
            if getattr(self, name) < 0:
                yield f"{name} is {getattr(self, name)}; it must be >= 0"
        if (self.tls_cert is None) != (self.tls_key is None):
            yield "tls_cert and tls_key go together: give both or neither"
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            yield f"metrics_port is {self.metrics_port}; it must be in [0, 65535]"
        if self.threads < 0:
            yield f"threads is {self.threads}; it must be >= 0 (0: torch's default)"
        if self.workers < 0:
            yield f"workers is {self.workers}; it must be >= 0 (0 picks a size)"

    @property
    def handler_threads(self) -> int:
        """Threads for gRPC handlers: every queued request holds one while it waits."""
        return self.workers or self.max_queue + 2 * self.max_batch_size + 8

    def read_token(self) -> str | None:
        """The bearer token clients must send, or None when none is configured."""
        if self.token_file:
            try:
                token = Path(self.token_file).read_text().strip()
            except OSError as e:
                raise InputError(
                    f"token_file {self.token_file!r} cannot be read: {e.strerror}"
                ) from e
            if not token:
                raise InputError(f"token_file {self.token_file!r} is empty")
            return token
        return os.environ.get(self.token_env) or None

    def read_tls(self) -> tuple[bytes, bytes] | None:
        """(private key, certificate chain) as PEM bytes, or None without TLS."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        try:
            return Path(self.tls_key).read_bytes(), Path(self.tls_cert).read_bytes()
        except OSError as e:
            raise InputError(
                f"TLS file {e.filename!r} cannot be read: {e.strerror}"
            ) from e
