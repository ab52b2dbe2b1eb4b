"""Taking up new portfolio versions without dropping a request.

Two sources say a version is out: the pruner's message on the Redis channel
`palm:portfolios` (`{"build", "version", "portfolio": URL}`), and a periodic read
of the configured portfolio.json (so a missed message costs at most one interval).
A newer version of the build being served is read and checked, its adapters are
loaded beside the old ones, then the router switches. Anything that fails (corrupt
JSON, a missing or incomplete adapter, a different base model) is logged and the
version being served carries on.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING

from palm.errors import PalmError
from palm.portfolio import PORTFOLIO_CHANNEL, load_portfolio
from palm.store import local_folder

if TYPE_CHECKING:
    from services.router.config import RouterConfig
    from services.router.server import RouterServer

log = logging.getLogger(__name__)

# Seconds between attempts to reach a Redis that went away.
BROKER_RETRY_S = 5.0


class Reloader:
    """Watches for newer portfolio versions and hands them to the server."""

    def __init__(self, router: RouterServer, config: RouterConfig):
        self.router = router
        self.config = config
        self.attempts = 0  # versions tried, taken up or not
        self.failures = 0
        self.last_error: str | None = None
        self.changed = threading.Condition()
        self._take_up_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.subscribed = threading.Event()

    def start(self) -> None:
        if self.config.broker:
            self._spawn(self._listen, "router-reload-broker")
        if self.config.reload_interval_s > 0:
            self._spawn(self._poll, "router-reload-store")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def wait_for(self, predicate, timeout: float) -> bool:
        """Block until `predicate(self)` holds, or `timeout` passes."""
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self), timeout)

    def take_up(self, url: str) -> bool:
        """Serve the portfolio at `url` if it is newer; False when it is not taken."""
        with self._take_up_lock:
            try:
                return self._take_up(url)
            except (PalmError, OSError, ValueError) as e:
                self._record(
                    f"portfolio {url} not taken up, still serving version "
                    f"{self.router.served().portfolio.version}: {e}"
                )
                return False

    def _take_up(self, url: str) -> bool:
        portfolio = load_portfolio(url)
        current = self.router.served().portfolio
        if portfolio.version <= current.version:
            return False
        if portfolio.base_model != current.base_model:
            raise PalmError(
                f"its base model {portfolio.base_model} differs from the one loaded "
                f"({current.base_model}); a new base model needs a router restart"
            )
        folders = {m.id: local_folder(m.adapter) for m in portfolio.members}
        self.router.switch(portfolio, folders)
        self._record(None)
        return True

    def _record(self, error: str | None) -> None:
        if error is not None:
            log.error("%s", error)
        with self.changed:
            self.attempts += 1
            if error is not None:
                self.failures += 1
                self.last_error = error
            self.changed.notify_all()

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll(self) -> None:
        while not self._stop.wait(self.config.reload_interval_s):
            try:
                latest = load_portfolio(self.config.portfolio)
            except (PalmError, OSError, ValueError) as e:
                log.warning("periodic check of %s failed: %s", self.config.portfolio, e)
                continue
            if latest.version > self.router.served().portfolio.version:
                self.take_up(self.config.portfolio)

    def _listen(self) -> None:
        import redis

        client = redis.Redis.from_url(self.config.broker)
        while not self._stop.is_set():
            try:
                self._subscribe_and_read(client)
            except redis.RedisError as e:
                self.subscribed.clear()
                log.warning(
                    "broker %s unreachable (%s); retrying in %.0f s",
                    _redacted(self.config.broker),
                    e,
                    BROKER_RETRY_S,
                )
                self._stop.wait(BROKER_RETRY_S)
        client.close()

    def _subscribe_and_read(self, client) -> None:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(PORTFOLIO_CHANNEL)
            self.subscribed.set()
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=0.5)
                if message is not None:
                    self._on_message(message["data"])
        finally:
            pubsub.close()

    def _on_message(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
            build, version, url = (
                message["build"],
                int(message["version"]),
                str(message["portfolio"]),
            )
        except (ValueError, KeyError, TypeError) as e:
            log.warning("ignoring a malformed message on %s: %s", PORTFOLIO_CHANNEL, e)
            return
        current = self.router.served().portfolio
        if build != current.build or version <= current.version:
            log.debug("ignoring %s version %d", build, version)
            return
        self.take_up(url)


def _redacted(url: str | None) -> str:
    """The broker URL without a password, for logs."""
    if not url or "@" not in url:
        return str(url)
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
