"""The built-in objectives of the support task: brevity, informativeness, warmth.

Each maps a batch of (prompt, response) texts to values in [0, 1], higher is better,
and depends on the texts alone, so trainer, evaluator and tests score alike.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np

from palm.errors import InputError, RewardError

BREVITY_FLOOR_WORDS = 5
"""Replies of 1 to this many words score 1 on brevity."""
BREVITY_CAP_WORDS = 60
"""Replies of this many words or more score 0; in between, brevity falls linearly."""


def brevity(prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    """Shorter is better, counted in whitespace-separated words.

    1 for 1 to BREVITY_FLOOR_WORDS words, falling linearly to 0 at
    BREVITY_CAP_WORDS. An empty reply scores 0: saying nothing is not a short
    answer, and rewarding it would teach a policy to stop before it starts.
    """
    words = np.array([len(r.split()) for r in responses], dtype=float)
    span = BREVITY_CAP_WORDS - BREVITY_FLOOR_WORDS
    values = np.clip((BREVITY_CAP_WORDS - words) / span, 0.0, 1.0)
    values[words == 0] = 0.0
    return values


def informativeness(prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    """The share of the prompt's facts that the response states.

    Facts come from the prompt text (the support task's ``Record:`` line); a fact
    counts when it appears in the response as a whole token sequence, ignoring
    case, so "March 3" is not found inside "March 30". A prompt with an empty
    record scores 1: there was nothing to state.
    """
    from palm.tasks import get_task

    task = get_task("support")
    values = np.empty(len(responses), dtype=float)
    for i, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        try:
            facts = task.facts_of(prompt)
        except InputError as e:
            raise RewardError(f"informativeness: sample {i}: {e}") from e
        stated = sum(_states(response, fact) for fact in facts)
        values[i] = stated / len(facts) if facts else 1.0
    return values


def _states(response: str, fact: str) -> bool:
    pattern = r"(?<!\w)" + re.escape(fact) + r"(?!\w)"
    return re.search(pattern, response, flags=re.IGNORECASE) is not None


def warmth(prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    """VADER's compound sentiment of the response, mapped from [-1, 1] to [0, 1].

    0.5 is neutral (an empty reply scores 0.5); thanks and apologies push it up,
    curt refusals and blame push it down.
    """
    analyzer = _vader()
    compound = [analyzer.polarity_scores(r)["compound"] for r in responses]
    return np.clip((np.array(compound, dtype=float) + 1.0) / 2.0, 0.0, 1.0)


@functools.cache
def _vader():
    # Loading the lexicon takes a moment; one analyzer serves every call.
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


BUILTINS = {f.__name__: f for f in (brevity, informativeness, warmth)}
