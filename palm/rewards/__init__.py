"""Named reward functions: a spec string in, a checked batch scorer out.

A reward spec is one of:

``brevity`` | ``informativeness`` | ``warmth``
    The built-ins (see `palm.rewards.builtin`).
``python:module.path:function``
    Any importable callable ``function(prompts, responses) -> sequence of float``.
    Resolving it imports the module and so runs its code: take such specs from
    trusted build specs only, never from a client request.
``hf-classifier:PATH[:LABEL]``
    A local ``AutoModelForSequenceClassification`` at PATH (no hub access). The
    reward is the softmax probability of LABEL (a label name from the model's
    config, or an index; default the last label) for the response text alone.
    PATH may not contain ":".

`resolve` turns a spec into a `RewardFn`; calling it, or `score`, checks that there
is one value per sample and that every value is in [0, 1] (RewardError otherwise).
`spec_problems` checks a spec's syntax without importing or loading anything, for
build-spec validation.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from palm.errors import InputError, RewardError
from palm.rewards.builtin import BUILTINS

log = logging.getLogger(__name__)

PYTHON_PREFIX = "python:"
CLASSIFIER_PREFIX = "hf-classifier:"
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_NAME = re.compile(r"^[A-Za-z_]\w*$")

RawReward = Callable[[Sequence[str], Sequence[str]], Sequence[float]]


class RewardFn:
    """A named reward: ``fn(prompts, responses) -> np.ndarray`` of values in [0, 1].

    It also accepts trl's keyword form ``fn(prompts=..., completions=..., **extra)``
    and has ``__name__``, so it can be handed to ``GRPOTrainer`` as it is.
    """

    def __init__(self, name: str, fn: RawReward):
        self.name = name
        self.__name__ = name
        self._fn = fn

    def __call__(
        self,
        prompts: Sequence[str],
        responses: Sequence[str] | None = None,
        **kwargs: object,
    ) -> np.ndarray:
        if responses is None:
            responses = kwargs.get("completions")  # trl's name for the responses
        if responses is None:
            raise InputError(f"reward {self.name!r} was called without responses")
        return _checked(self.name, self._fn(prompts, responses), len(prompts))

    def __repr__(self) -> str:
        return f"RewardFn({self.name!r})"


def score(
    fn: Callable[..., Sequence[float]],
    prompts: Sequence[str],
    responses: Sequence[str],
) -> np.ndarray:
    """Call a reward on a batch and check its output; RewardError if it is wrong."""
    if len(prompts) != len(responses):
        raise InputError(
            f"{len(prompts)} prompts but {len(responses)} responses; "
            "give one response per prompt"
        )
    name = getattr(fn, "name", getattr(fn, "__name__", repr(fn)))
    return _checked(name, fn(prompts, responses), len(prompts))


def _checked(name: str, values: object, expected: int) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as e:
        raise RewardError(f"reward {name!r} returned non-numbers: {e}") from e
    if array.shape != (expected,):
        raise RewardError(
            f"reward {name!r} returned shape {array.shape} for {expected} samples; "
            "it must return one value per (prompt, response) pair"
        )
    bad = np.flatnonzero(~((array >= 0.0) & (array <= 1.0)))  # NaN fails both
    if bad.size:
        i = int(bad[0])
        value = float(array[i])
        raise RewardError(
            f"reward {name!r} gave {value!r} for sample {i} ({bad.size} bad in all); "
            "rewards must lie in [0, 1] — rescale the function's output"
        )
    return array


def builtin_names() -> tuple[str, ...]:
    return tuple(sorted(BUILTINS))


def spec_problems(spec: str) -> list[str]:
    """What is wrong with a reward spec's syntax, without importing or loading it.

    A ``python:`` module must be findable on the path; an ``hf-classifier:`` path
    must be an existing folder.
    """
    if not isinstance(spec, str):
        return [f"reward {spec!r} is not a string; {_forms()}"]
    if spec.startswith(PYTHON_PREFIX):
        return _python_problems(spec)
    if spec.startswith(CLASSIFIER_PREFIX):
        path, _ = _split_classifier(spec)
        if not path:
            return [f"reward {spec!r} names no model folder; {_forms()}"]
        if not Path(path).is_dir():
            return [f"reward {spec!r}: {path!r} is not a folder; give a local model"]
        return []
    if spec not in BUILTINS:
        return [f"unknown reward {spec!r}; {_forms()}"]
    return []


def _python_problems(spec: str) -> list[str]:
    module, _, function = spec[len(PYTHON_PREFIX) :].partition(":")
    if not _DOTTED.match(module) or not _NAME.match(function):
        return [f"reward {spec!r} is not of the form python:module.path:function"]
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None:
        return [f"reward {spec!r}: module {module!r} is not importable here"]
    return []


def _forms() -> str:
    return (
        f"use a built-in ({', '.join(builtin_names())}), python:module:function or "
        "hf-classifier:PATH[:LABEL]"
    )


def resolve(spec: str) -> RewardFn:
    """The reward named by `spec` (see the module docstring); InputError if it
    cannot be had. Loads classifiers and imports python: modules."""
    problems = spec_problems(spec)
    if problems:
        raise InputError(problems[0])
    if spec.startswith(PYTHON_PREFIX):
        return RewardFn(spec, _import_callable(spec))
    if spec.startswith(CLASSIFIER_PREFIX):
        path, label = _split_classifier(spec)
        return RewardFn(spec, _Classifier(path, label))
    return RewardFn(spec, BUILTINS[spec])


def _import_callable(spec: str) -> RawReward:
    module_name, _, function = spec[len(PYTHON_PREFIX) :].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise InputError(f"reward {spec!r}: cannot import {module_name}: {e}") from e
    fn = getattr(module, function, None)
    if not callable(fn):
        raise InputError(
            f"reward {spec!r}: {module_name} has no callable {function!r}; "
            "name a function taking (prompts, responses)"
        )
    return fn


def _split_classifier(spec: str) -> tuple[str, str | None]:
    rest = spec[len(CLASSIFIER_PREFIX) :]
    path, sep, label = rest.rpartition(":")
    return (path, label or None) if sep else (rest, None)


class _Classifier:
    """A local sequence classifier; the reward is one label's probability."""

    batch_size = 32

    def __init__(self, path: str, label: str | None):
        from palm.models import device

        try:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(
                path, local_files_only=True
            )
        except OSError as e:
            raise InputError(
                f"hf-classifier {path!r} cannot be loaded: {e}; "
                "give a folder saved with save_pretrained"
            ) from e
        self.model = model.to(device()).eval()
        self.accepted = set(inspect.signature(model.forward).parameters)
        self.index = _label_index(model.config.id2label, label, path)
        log.debug("hf-classifier %s: label index %d", path, self.index)

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        import torch

        out = []
        for start in range(0, len(responses), self.batch_size):
            batch = list(responses[start : start + self.batch_size])
            inputs = self.tokenizer(
                batch, padding=True, truncation=True, return_tensors="pt"
            ).to(self.model.device)
            # Some tokenizers add inputs (token_type_ids) the model does not take.
            inputs = {k: v for k, v in inputs.items() if k in self.accepted}
            with torch.inference_mode():
                logits = self.model(**inputs).logits.float()
            out.append(torch.softmax(logits, dim=-1)[:, self.index].cpu().numpy())
        return np.concatenate(out) if out else np.empty(0)


def _label_index(id2label: dict[int, str], label: str | None, path: str) -> int:
    n = len(id2label)
    if label is None:
        return n - 1
    by_name = {name: int(i) for i, name in id2label.items()}
    if label in by_name:
        return by_name[label]
    if label.isdigit() and int(label) < n:
        return int(label)
    raise InputError(
        f"hf-classifier {path!r} has no label {label!r}; its labels are "
        f"{', '.join(sorted(by_name))} (or an index below {n})"
    )
