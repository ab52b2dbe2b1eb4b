"""The generation loop: one thread owns the model and batches requests across members.

Handlers turn a request into a `Job` and `submit` it; the loop collects the jobs that
arrive together (up to `max_batch_size`, waiting at most `max_wait_ms` after the
first), left-pads their prompts and decodes them step by step with one forward pass
per step. peft's per-row `adapter_names` applies each row's own LoRA member inside
that one pass. Each step's new text goes to the job's event queue, which Generate
drains whole and GenerateStream forwards as it comes.

A padded row gives the tokens it would give alone: the attention mask hides the pad
positions and position ids count only real tokens. Rows that finish (end of
sequence, length, a cancelled or expired call) leave the batch and the KV cache.

Adapter loads and deletions are commands run by the same thread between batches, so
the model is never changed under a forward pass. An adapter is deleted only when no
job that named it is still waiting or running.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import random
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch

from palm.errors import PermanentError, RetryableError

log = logging.getLogger(__name__)


class QueueFull(RetryableError):
    """More requests are waiting than the router's max_queue allows."""


class ShuttingDown(RetryableError):
    """The router is stopping and takes no new generation requests."""


@dataclass(frozen=True)
class Sampling:
    """Checked sampling parameters of one request."""

    max_new_tokens: int
    temperature: float = 0.0  # 0 is greedy decoding
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class Job:
    """One generation request as the loop sees it."""

    adapter: str
    prompt_ids: list[int]
    sampling: Sampling
    cancelled: threading.Event = field(default_factory=threading.Event)
    finished: bool = False
    # ("text", chunk, tokens so far) per step, then ("done", finish_reason, tokens)
    # or ("error", exception, 0).
    events: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)

    def cancel(self) -> None:
        self.cancelled.set()


@dataclass
class _Row:
    """A job's decoding state inside a running batch."""

    job: Job
    generator: torch.Generator | None
    ids: list[int] = field(default_factory=list)
    text: str = ""


class Engine:
    """Owns the base model, its LoRA adapters and the thread that runs them."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        step_hook: Callable[[], None] | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        # Called before every decoding step; tests use it to hold a batch in flight.
        self.step_hook = step_hook
        self.device = next(model.parameters()).device
        self.context_length = _context_length(model)
        self.eos_ids = _eos_ids(model, tokenizer)
        self.batch_sizes: list[int] = []  # recent sizes, for metrics and tests
        self.on_batch: Callable[[list[Job]], None] | None = None
        self._tok_lock = threading.Lock()
        self._cond = threading.Condition()
        self._jobs: collections.deque[Job] = collections.deque()
        self._commands: collections.deque[tuple[Callable[[], None], Future]] = (
            collections.deque()
        )
        self._uses: collections.Counter[str] = collections.Counter()
        self._retired: set[str] = set()
        self._accepting = True
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="router-engine")

    # -- used by handlers ----------------------------------------------------
    def encode(self, prompt: str) -> list[int]:
        with self._tok_lock:
            return list(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])

    def submit(self, job: Job) -> None:
        """Queue `job`; QueueFull when max_queue jobs already wait."""
        with self._cond:
            if not self._accepting:
                raise ShuttingDown("the router is shutting down; retry elsewhere")
            if len(self._jobs) >= self.max_queue:
                raise QueueFull(
                    f"{len(self._jobs)} requests are waiting, the router's max_queue "
                    f"is {self.max_queue}: retry later or add routers"
                )
            self._uses[job.adapter] += 1
            self._jobs.append(job)
            self._cond.notify_all()

    def queued(self) -> int:
        with self._cond:
            return len(self._jobs)

    # -- adapters ------------------------------------------------------------
    def load_adapters(
        self, paths: dict[str, str], timeout: float | None = None
    ) -> None:
        """Load every adapter in `paths` (name → local folder) on the loop thread.

        All or nothing: when one fails, the ones loaded by this call are deleted and
        the error is raised here.
        """
        self._command(lambda: self._load(paths)).result(timeout)

    def retire(self, names: list[str]) -> None:
        """Delete these adapters once no queued or running job uses them."""
        with self._cond:
            self._retired.update(names)
            self._cond.notify_all()

    def adapters(self) -> list[str]:
        return list(getattr(self.model, "peft_config", {}))

    # -- life cycle ----------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def refuse_new(self) -> None:
        """Stop taking jobs; those already queued or running still finish."""
        with self._cond:
            self._accepting = False

    def idle(self) -> bool:
        """True when no job is queued or running."""
        with self._cond:
            return not self._jobs and sum(self._uses.values()) == 0

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._jobs or sum(self._uses.values()) > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def stop(self) -> None:
        """End the loop; jobs still queued get a ShuttingDown error."""
        with self._cond:
            self._accepting = False
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        while self._jobs:
            job = self._jobs.popleft()
            job.events.put(("error", ShuttingDown("the router stopped"), 0))

    # -- the loop ------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run_commands()
            self._delete_retired()
            if batch:
                self._run_batch(batch)

    def _next_batch(self) -> list[Job] | None:
        """Wait for work; None when stopping, [] when only commands wait."""
        with self._cond:
            while not (self._jobs or self._commands or self._stopping):
                self._cond.wait(timeout=1.0)
                if any(self._uses[n] == 0 for n in self._retired):
                    return []
            if self._stopping:
                return None
            if not self._jobs:
                return []
            # Give requests arriving together the chance to share this batch.
            deadline = time.monotonic() + self.max_wait_s
            while len(self._jobs) < self.max_batch_size and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            n = min(len(self._jobs), self.max_batch_size)
            return [self._jobs.popleft() for _ in range(n)]

    def _command(self, fn: Callable[[], None]) -> Future:
        future: Future = Future()
        with self._cond:
            if self._stopping:
                raise ShuttingDown("the router is stopping")
            self._commands.append((fn, future))
            self._cond.notify_all()
        return future

    def _run_commands(self) -> None:
        while True:
            with self._cond:
                if not self._commands:
                    return
                fn, future = self._commands.popleft()
            try:
                future.set_result(fn())
            except Exception as e:  # the caller decides; the loop carries on
                future.set_exception(e)

    def _load(self, paths: dict[str, str]) -> None:
        done: list[str] = []
        try:
            for name, path in paths.items():
                self.model.load_adapter(path, adapter_name=name, is_trainable=False)
                done.append(name)
        except Exception as e:
            for name in done:
                self.model.delete_adapter(name)
            raise PermanentError(f"adapter {path} cannot be loaded: {e}") from e
        self.model.eval()

    def _delete_retired(self) -> None:
        with self._cond:
            idle = [n for n in self._retired if self._uses[n] == 0]
            self._retired.difference_update(idle)
        if not idle:
            return
        live = [n for n in self.adapters() if n not in idle]
        if not live:
            return
        # peft warns when the active adapter goes; make a survivor the active one.
        if self.model.active_adapter in idle:
            self.model.set_adapter(live[0])
        for name in idle:
            if name in self.model.peft_config:
                self.model.delete_adapter(name)
        log.debug("deleted adapters %s", ", ".join(sorted(idle)))

    def _release(self, job: Job) -> None:
        with self._cond:
            self._uses[job.adapter] -= 1
            if self._uses[job.adapter] <= 0:
                del self._uses[job.adapter]
            self._cond.notify_all()

    # -- one batch -----------------------------------------------------------
    def _run_batch(self, jobs: list[Job]) -> None:
        live = [j for j in jobs if not j.cancelled.is_set()]
        for job in jobs:
            if job.cancelled.is_set():
                self._finish(job, "cancelled", 0)
        if not live:
            return
        self.batch_sizes.append(len(live))
        del self.batch_sizes[:-1000]
        if self.on_batch is not None:
            self.on_batch(live)
        try:
            with torch.inference_mode():
                self._decode(live)
        except Exception as e:
            log.exception("batch of %d failed", len(live))
            for job in live:
                if not job.finished:
                    job.finished = True
                    job.events.put(("error", e, 0))
                    self._release(job)

    def _decode(self, jobs: list[Job]) -> None:
        rows = [_Row(j, _generator(j.sampling, self.device)) for j in jobs]
        input_ids, mask = self._left_pad([j.prompt_ids for j in jobs])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        past = None
        for _ in range(max(j.sampling.max_new_tokens for j in jobs)):
            if self.step_hook is not None:
                self.step_hook()
            out = self.model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=positions,
                cache=past,
                use_cache=True,
                adapter_names=[r.job.adapter for r in rows],
            )
            past = out.cache
            tokens = [
                _pick(out.logits[i, -1], r.job.sampling, r.generator)
                for i, r in enumerate(rows)
            ]
            keep = [i for i, r in enumerate(rows) if self._advance(r, tokens[i])]
            if not keep:
                return
            # Drop finished rows from every tensor the next step uses.
            if len(keep) < len(rows):
                index = torch.tensor(keep, device=self.device)
                past.batch_select_indices(index)
                mask, positions = mask[index], positions[index]
                rows = [rows[i] for i in keep]
                tokens = [tokens[i] for i in keep]
            input_ids = torch.tensor(tokens, device=self.device)[:, None]
            mask = torch.cat([mask, torch.ones_like(input_ids)], dim=1)
            positions = positions[:, -1:] + 1

    def _advance(self, row: _Row, token: int) -> bool:
        """Add `token` to the row and send its text; False once the row is done."""
        job = row.job
        if job.cancelled.is_set():
            self._finish(job, "cancelled", len(row.ids))
            return False
        if token in self.eos_ids:
            self._finish(job, "stop", len(row.ids))
            return False
        row.ids.append(token)
        with self._tok_lock:
            text = self.tokenizer.decode(row.ids, skip_special_tokens=True)
        # Hold back a partly decoded multi-byte character until it is whole.
        if not text.endswith("\ufffd") and text.startswith(row.text):
            chunk, row.text = text[len(row.text) :], text
            if chunk:
                job.events.put(("text", chunk, len(row.ids)))
        if len(row.ids) >= job.sampling.max_new_tokens:
            self._finish(job, "length", len(row.ids))
            return False
        return True

    def _finish(self, job: Job, reason: str, tokens: int) -> None:
        job.finished = True
        job.events.put(("done", reason, tokens))
        self._release(job)

    def _left_pad(self, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        ids = [[pad] * (width - len(p)) + p for p in prompts]
        mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
        return (
            torch.tensor(ids, device=self.device),
            torch.tensor(mask, device=self.device),
        )


def load_model(
    base_dir: str, adapters: dict[str, str], device: str, threads: int = 0
) -> tuple:
    """The base model from a local folder with every adapter in `adapters` loaded.

    Nothing is fetched from a hub and no code from the folder is run.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if threads:
        torch.set_num_threads(threads)
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
        base = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True)
    except (OSError, ValueError) as e:
        raise PermanentError(f"base model {base_dir} cannot be loaded: {e}") from e
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    base.to(device)
    (first, path), *rest = adapters.items()
    try:
        with peft_deprecations_quiet():
            model = PeftModel.from_pretrained(base, path, adapter_name=first)
    except (OSError, ValueError) as e:
        raise PermanentError(f"adapter {path} cannot be loaded: {e}") from e
    engine_model = model
    for name, path in rest:
        try:
            engine_model.load_adapter(path, adapter_name=name, is_trainable=False)
        except (OSError, ValueError) as e:
            raise PermanentError(f"adapter {path} cannot be loaded: {e}") from e
    engine_model.eval()
    return engine_model, tokenizer


@contextlib.contextmanager
def peft_deprecations_quiet() -> Iterator[None]:
    """Silence the FutureWarning peft 0.21 triggers in transformers 5.

    TODO: remove once peft stops reading `is_gradient_checkpointing` (it warns on
    every PeftModel built, which our warnings-as-errors tests would fail on).
    Start-up only: catch_warnings is not thread-safe.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="`is_gradient_checkpointing` is deprecated",
            category=FutureWarning,
        )
        yield


def _pick(logits: torch.Tensor, sampling: Sampling, generator: Any) -> int:
    """The next token: argmax when greedy, else a top-p sample at the temperature."""
    if sampling.temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
    sorted_probs, order = torch.sort(probs, descending=True)
    # Keep the smallest head whose mass reaches top_p (always at least one token).
    outside = sorted_probs.cumsum(-1) - sorted_probs >= sampling.top_p
    sorted_probs[outside] = 0.0
    choice = torch.multinomial(sorted_probs, 1, generator=generator)
    return int(order[choice])


def _generator(sampling: Sampling, device: torch.device) -> torch.Generator | None:
    if sampling.temperature <= 0:
        return None
    seed = sampling.seed if sampling.seed is not None else random.getrandbits(63)
    return torch.Generator(device=device).manual_seed(seed)


def _context_length(model: Any) -> int:
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1 << 30


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for value in (model.config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    return ids
