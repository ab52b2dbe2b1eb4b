"""A reward that misbehaves on cue, for the fault tests (test_faults.py).

It scores exactly like the built-in `brevity`. When `PALM_TEST_FAULTS` names a
folder, files placed there by a test cue faults, and only inside a task run by a
worker (the lead process resolves rewards at submit time and must never be hit):

- ``hold``: the first training call that claims it (an atomic rename to
  ``held-<pid>``, which then holds "<task id> <policy>") stays in the reward until
  its process is killed or a ``release-<pid>`` file appears, so the test can act
  while a worker is in the middle of a task.
- ``poison``: holds a policy id; every training delivery of that policy kills its
  own process at its first reward call (and leaves ``poisoned-<pid>`` behind).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from palm.rewards.builtin import brevity as _brevity

FAULTS_ENV = "PALM_TEST_FAULTS"
HOLD_LIMIT_S = 300.0  # a held task gives up (and fails loudly) if left alone


def brevity(prompts, responses):
    folder = os.environ.get(FAULTS_ENV)
    if folder:
        _act_on_cues(Path(folder))
    return _brevity(prompts, responses)


def _training_task() -> tuple[str, str] | None:
    """(task id, policy) of the training task this process runs, if any."""
    from celery import current_task

    if current_task is None or current_task.name != "palm.train":
        return None
    return current_task.request.id, current_task.request.args[1]


def _act_on_cues(folder: Path) -> None:
    task = _training_task()
    if task is None:
        return
    task_id, policy = task
    poison = folder / "poison"
    if poison.exists() and poison.read_text().strip() == policy:
        (folder / f"poisoned-{os.getpid()}").write_text(f"{task_id} {policy}")
        os.kill(os.getpid(), signal.SIGKILL)
    held = folder / f"held-{os.getpid()}"
    try:
        os.rename(folder / "hold", held)  # only one caller can win the rename
    except FileNotFoundError:
        return
    held.write_text(f"{task_id} {policy}")
    release = folder / f"release-{os.getpid()}"
    deadline = time.monotonic() + HOLD_LIMIT_S
    while not release.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"held for {HOLD_LIMIT_S:.0f}s, never killed or let go")
        time.sleep(0.1)  # polling for the test's release, with a deadline
