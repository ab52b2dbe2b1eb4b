"""Tasks: prompt generators with held-out splits and a corpus for pre-training.

A task is what PALM fine-tunes on and measures with. It hands out prompts by split
(``train`` for GRPO, ``eval`` for the evaluator; the two never share a prompt),
recovers the facts a prompt carries from its text alone (so a reward needs nothing
but the prompt string), and writes a corpus of prompt + reply texts whose replies mix
every style the objectives pull apart. `corpus_parts` gives the same texts split
into what a model is only given (unpredictable context) and what it should learn.

The project ships one task, ``support``; ``get_task`` finds tasks by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from palm.errors import InputError

SPLITS = ("train", "eval")


@dataclass(frozen=True)
class Prompt:
    """One prompt: the exact text a model is given, and the facts it carries."""

    text: str
    """What the model sees; it ends where the agent's reply begins."""
    facts: tuple[str, ...]
    """The facts stated in the prompt's record line, in order."""


class Task(Protocol):
    """What the trainer, the evaluator and the rewards need from a task."""

    name: str
    default_objectives: tuple[str, ...]

    def prompts(self, split: str, n: int, seed: int = 0) -> list[Prompt]: ...

    def corpus(self, n: int, seed: int = 0) -> list[str]: ...

    def corpus_parts(self, n: int, seed: int = 0) -> list[tuple[str, str]]: ...

    def facts_of(self, prompt_text: str) -> tuple[str, ...]: ...


def task_names() -> tuple[str, ...]:
    """The names of the tasks this installation knows."""
    return tuple(sorted(_registry()))


def get_task(name: str) -> Task:
    """The task called `name`; an unknown name is an InputError listing the known."""
    registry = _registry()
    if name not in registry:
        known = ", ".join(sorted(registry))
        raise InputError(f"unknown task {name!r}; the known tasks are: {known}")
    return registry[name]


def _registry() -> dict[str, Task]:
    # Imported here so that `palm.tasks.Prompt` is defined before the task modules
    # that use it are loaded.
    from palm.tasks.support import SUPPORT

    return {SUPPORT.name: SUPPORT}
