"""The bundled task: synthetic customer-support tickets that carry facts.

A prompt is a ticket in three lines::

    Record: order #4163 | shipped March 3 | tracking TRK-5521
    Customer: Hi, my order #4163 has not arrived yet. Where is it?
    Agent:

The ``Record:`` line holds the ticket's facts (order numbers, dates, amounts, steps,
tracking and case codes) as ``label value`` pairs; the model continues after
``Agent:``. Rewards read the facts back from that line with `SupportTask.facts_of`.

Replies in the pre-training corpus vary in three independent ways, which are the
conflicts PALM's objectives pull apart: length (short or long), how many of the
record's facts they state (0 to all), and warmth (cold, neutral or warm phrasing).

Everything is drawn from `random.Random` seeded by strings, so a (split, n, seed)
always gives the same prompts on every machine and Python version. A prompt's split
is decided by a hash of its text, so train and eval can never share a prompt.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Literal

from palm.errors import InputError
from palm.tasks import SPLITS, Prompt

RECORD_PREFIX = "Record: "
AGENT_CUE = "\nAgent:"

# One prompt in EVAL_BUCKETS (by text hash) is held out for evaluation.
EVAL_BUCKETS = 5

Length = Literal["short", "long"]
Warmth = Literal["cold", "neutral", "warm"]


@dataclass(frozen=True)
class ReplyStyle:
    """How a corpus reply is written; each choice is drawn independently."""

    length: Length
    """"short": an opener and the fact sentences; "long": adds filler and a closer."""
    n_facts: int
    """How many of the prompt's facts the reply states (0 to all of them)."""
    warmth: Warmth
    """The tone of the opener, filler and closer."""


# -- fact values -----------------------------------------------------------------

# Each kind of fact appears in the record as "<label> <value>"; replies state a fact
# with the same label word right before the value, which is what lets a small model
# learn to copy it from the record.
LABELS = {
    "order": "order",
    "shipped": "shipped",
    "tracking": "tracking",
    "eta": "arriving",
    "amount": "amount",
    "refunded": "refunded",
    "window": "allow",
    "account": "account",
    "step1": "first",
    "step2": "then",
    "case": "case",
    "item": "item",
    "rma": "label",
    "charged": "charged",
    "card": "card ending",
}
# Spelled out rather than taken from `calendar`, whose names follow the locale.
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_STEPS = (
    "restart the app",
    "clear the browser cache",
    "sign out and back in",
    "update the app",
    "reset your password",
    "check the spam folder",
    "unplug the router for ten seconds",
    "reinstall the app",
    "turn on two-step login",
    "open the link on a computer",
)
_ITEMS = (
    "blue kettle",
    "desk lamp",
    "coffee grinder",
    "wool blanket",
    "phone case",
    "travel mug",
    "table fan",
    "rice cooker",
)
_DAYS = (2, 5, 9, 14, 18, 23, 27)
_WINDOWS = ("3 business days", "5 business days", "7 business days", "10 days")


def _pools() -> dict[str, tuple[str, ...]]:
    """Codes, amounts and accounts come from fixed pools of about a dozen values:
    each becomes one token of the bundled model's vocabulary, seen often enough
    for a small model to learn to copy it within a minute of training."""
    rng = random.Random("support/pools")

    def codes(prefix: str, n: int = 12) -> tuple[str, ...]:
        return tuple(f"{prefix}{n}" for n in rng.sample(range(1000, 10000), n))

    names = ("ana", "ben", "chloe", "dev", "emma", "farid", "grace", "hugo", "ivy")
    return {
        "order": codes("#"),
        "tracking": codes("TRK-"),
        "case": codes("CASE-"),
        "rma": codes("RMA-"),
        "card": codes("", 10),
        "amount": tuple(
            f"${rng.randint(8, 240)}.{rng.choice((0, 20, 49, 75, 99)):02d}"
            for _ in range(12)
        ),
        "account": tuple(
            f"{rng.choice(names)}{rng.randint(2, 99)}@mail.com" for _ in range(10)
        ),
        "step1": _STEPS,
        "step2": _STEPS,
        "item": _ITEMS,
        "window": _WINDOWS,
    }


_POOLS = _pools()


def _value(kind: str, rng: random.Random) -> str:
    """A value for a fact of this kind."""
    if kind in ("shipped", "eta", "refunded", "charged"):
        return f"{rng.choice(_MONTHS)} {rng.choice(_DAYS)}"
    return rng.choice(_POOLS[kind])


# -- tickets ---------------------------------------------------------------------

# Each issue: the fact kinds of its record (the first is always kept) and what the
# customer may write, with {kind} slots filled from the record.
_ISSUES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "late": (
        ("order", "shipped", "tracking", "eta"),
        (
            "My order {order} has not arrived yet. Where is it?",
            "Order {order} is late and I need it this week.",
            "Can you tell me when order {order} will get here?",
        ),
    ),
    "refund": (
        ("order", "amount", "refunded", "window"),
        (
            "I returned order {order} and I am still waiting for my refund.",
            "Where is my refund of {amount} for order {order}?",
            "You promised a refund for order {order}. Nothing has come.",
        ),
    ),
    "login": (
        ("account", "step1", "step2", "case"),
        (
            "I cannot log in to my account {account}.",
            "The app keeps rejecting my password.",
            "I am locked out of {account} since this morning.",
        ),
    ),
    "damaged": (
        ("order", "item", "amount", "rma"),
        (
            "The {item} from order {order} arrived broken.",
            "My {item} was damaged in the box. What now?",
            "Order {order} came with a cracked {item}.",
            "Something in order {order} arrived damaged.",
        ),
    ),
    "billing": (
        ("amount", "charged", "card", "case"),
        (
            "I was charged {amount} twice this month.",
            "There is a charge of {amount} on my card that I do not know.",
            "Why did you bill me {amount} on {charged}?",
        ),
    ),
}
_OPENINGS = ("", "", "Hello. ", "Hi, ", "This is my second message. ")


def _record(issue: str, rng: random.Random) -> dict[str, str]:
    """The facts of one ticket: the issue's kinds, one of the last three dropped
    half the time, so tickets carry three or four facts."""
    kinds = list(_ISSUES[issue][0])
    if rng.random() < 0.5:
        kinds.pop(rng.randrange(1, len(kinds)))
    record: dict[str, str] = {}
    for kind in kinds:
        value = _value(kind, rng)
        # Two equal values would make "share of facts stated" ambiguous.
        while value in record.values():
            value = _value(kind, rng)
        record[kind] = value
    return record


def _customer_message(issue: str, record: dict[str, str], rng: random.Random) -> str:
    usable = [t for t in _ISSUES[issue][1] if _slots(t) <= record.keys()]
    text = rng.choice(usable).format(**record)
    opening = rng.choice(_OPENINGS)
    if opening.endswith(", ") and not text.startswith("I "):
        text = text[0].lower() + text[1:]
    return opening + text


def _slots(template: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", template))


def _prompt_text(record: dict[str, str], message: str) -> str:
    pairs = " | ".join(f"{LABELS[kind]} {value}" for kind, value in record.items())
    return f"{RECORD_PREFIX}{pairs}\nCustomer: {message}{AGENT_CUE}"


# -- replies ---------------------------------------------------------------------

# Full sentences for long replies; {v} is the fact's value, always right after its
# record label.
_FACT_SENTENCES = {
    "order": ("Your order {v} is on file.", "I checked order {v}."),
    "shipped": ("It was shipped {v}.", "The package was shipped {v}."),
    "tracking": ("Follow it with tracking {v}.", "The tracking {v} shows it moving."),
    "eta": ("It is arriving {v}.", "It should be arriving {v}."),
    "amount": ("The amount {v} is confirmed.", "I see the full amount {v}."),
    "refunded": ("It was refunded {v}.", "The money was refunded {v}."),
    "window": ("Please allow {v} for the money.", "Banks may need you to allow {v}."),
    "account": ("The account {v} is active.", "I found account {v}."),
    "step1": ("Please first {v}.", "To fix it, first {v}."),
    "step2": ("And then {v}.", "If that fails, then {v}."),
    "case": ("Your case {v} is open.", "I opened case {v} for this."),
    "item": ("The item {v} is covered.", "We will replace the item {v}."),
    "rma": ("Use return label {v}.", "Print the return label {v}."),
    "charged": ("It was charged {v}.", "The card was charged {v}."),
    "card": ("It went to the card ending {v}.", "I checked the card ending {v}."),
}
_OPENERS = {
    "warm": (
        "Thank you so much for reaching out, I am happy to help!",
        "Hi there, thanks for your patience, I would love to help.",
        "Thanks so much for your message, glad to help!",
        "Great question, and thanks for writing to us!",
    ),
    "neutral": (
        "Your ticket was received.",
        "Hello.",
        "I looked into this.",
        "Here is the status.",
    ),
    "cold": (
        "Noted.",
        "This is your mistake, not ours.",
        "Unfortunately this request is denied.",
        "Read the details below.",
    ),
}
_FILLERS = {
    "warm": (
        "We really appreciate your patience.",
        "Please do not hesitate to write back if anything else comes up.",
        "I hope the rest of your week is wonderful.",
        "It is a pleasure to help you with this.",
    ),
    "neutral": (
        "Let us know if you have more questions.",
        "The team will review the ticket.",
        "Updates will appear in your account.",
        "This ticket will stay open for a week.",
    ),
    "cold": (
        "Do not open another ticket for this.",
        "Further delays are your problem.",
        "We cannot help with anything else.",
        "Complaints will not change the outcome.",
    ),
}
_CLOSERS = {
    "warm": ("Have a wonderful day!", "Thanks again, take care!", "Best wishes!"),
    "neutral": ("Regards.", "Ticket desk.", ""),
    "cold": (
        "That is all.",
        "No further action is needed.",
        "Stop sending duplicates.",
    ),
}


def compose_reply(record: dict[str, str], style: ReplyStyle, rng: random.Random) -> str:
    """A reply to a ticket with this record, written in `style`."""
    stated = rng.sample(list(record.items()), style.n_facts)
    if style.length == "short":
        parts = _short_reply(stated, style.warmth, rng)
    else:
        parts = _long_reply(stated, style.warmth, rng)
    return " ".join(p for p in parts if p)


def _short_reply(
    stated: list[tuple[str, str]], warmth: Warmth, rng: random.Random
) -> list[str]:
    # A short reply without facts still says something in its tone.
    if not stated:
        return [rng.choice(_OPENERS[warmth])]
    # Each fact costs a sentence, short reply or long: stating facts and brevity
    # are in real conflict, as PALM's objectives should be.
    facts = [
        rng.choice(_FACT_SENTENCES[kind]).format(v=value) for kind, value in stated
    ]
    if warmth != "neutral" or rng.random() < 0.5:
        facts.insert(0, rng.choice(_OPENERS[warmth]))
    return facts


def _long_reply(
    stated: list[tuple[str, str]], warmth: Warmth, rng: random.Random
) -> list[str]:
    facts = [
        rng.choice(_FACT_SENTENCES[kind]).format(v=value) for kind, value in stated
    ]
    fillers = rng.sample(_FILLERS[warmth], rng.randint(1, 2))
    return [
        rng.choice(_OPENERS[warmth]),
        *facts,
        *fillers,
        rng.choice(_CLOSERS[warmth]),
    ]


# -- the task --------------------------------------------------------------------


class SupportTask:
    """Customer-support tickets with facts; see the module docstring."""

    name = "support"
    default_objectives = ("brevity", "informativeness", "warmth")

    def prompts(self, split: str, n: int, seed: int = 0) -> list[Prompt]:
        """`n` distinct prompts of `split` ("train" or "eval"), the same for the
        same arguments."""
        _check_split(split)
        rng = random.Random(f"support/prompts/{split}/{seed}")
        return [Prompt(text, facts) for text, facts, _ in self._tickets(split, n, rng)]

    def corpus(self, n: int, seed: int = 0) -> list[str]:
        """`n` prompt + reply texts from the train split, for pre-training."""
        return [given + learned for given, learned in self.corpus_parts(n, seed)]

    def corpus_parts(self, n: int, seed: int = 0) -> list[tuple[str, str]]:
        """The corpus split in two: the ``Record:`` line, random draws a model can
        only be given, and the rest (customer message, reply), which it learns.

        Tickets may repeat (with different replies) once the draw runs long; the
        replies' length, fact count and warmth are drawn independently.
        """
        rng = random.Random(f"support/corpus/{seed}")
        parts = []
        for text, _, record in self._tickets("train", n, rng, distinct=False):
            style = ReplyStyle(
                length=rng.choice(("short", "long")),
                n_facts=rng.randint(0, len(record)),
                warmth=rng.choice(("cold", "neutral", "warm")),
            )
            record_line, _, rest = text.partition("\n")
            reply = compose_reply(record, style, rng)
            parts.append((record_line + "\n", f"{rest} {reply}"))
        return parts

    def facts_of(self, prompt_text: str) -> tuple[str, ...]:
        """The facts of a prompt, read from its ``Record:`` line."""
        return tuple(self.record_of(prompt_text).values())

    def record_of(self, prompt_text: str) -> dict[str, str]:
        """The prompt's record as {kind: value}, read from its ``Record:`` line."""
        for line in prompt_text.splitlines():
            if line.startswith(RECORD_PREFIX):
                pairs = line[len(RECORD_PREFIX) :].split(" | ")
                return dict(_split_pair(p) for p in pairs if p)
        raise InputError(
            f"prompt {prompt_text[:60]!r} has no line starting with "
            f"{RECORD_PREFIX.strip()!r}; facts can only be read from support-task "
            "prompts"
        )

    def _tickets(
        self, split: str, n: int, rng: random.Random, distinct: bool = True
    ) -> list[tuple[str, tuple[str, ...], dict[str, str]]]:
        """Draw tickets until `n` of them fall in `split` (distinct if asked)."""
        if n < 0:
            raise InputError(f"n is {n}; ask for zero or more prompts")
        seen: set[str] = set()
        tickets = []
        # The space holds millions of tickets; this bound only stops a runaway loop.
        for _ in range(50 * n + 1000):
            if len(tickets) == n:
                return tickets
            issue = rng.choice(sorted(_ISSUES))
            record = _record(issue, rng)
            text = _prompt_text(record, _customer_message(issue, record, rng))
            if split_of(text) != split or (distinct and text in seen):
                continue
            seen.add(text)
            tickets.append((text, tuple(record.values()), record))
        if len(tickets) == n:
            return tickets
        raise InputError(f"could only draw {len(tickets)} of {n} {split} prompts")


def _split_pair(pair: str) -> tuple[str, str]:
    """("card", "4417") from "card ending 4417"; an unknown label is kept as is."""
    # Longest label first: "card ending 4417" is a card, not a "card" fact.
    for kind, label in sorted(LABELS.items(), key=lambda kv: -len(kv[1])):
        if pair.startswith(label + " "):
            return kind, pair[len(label) + 1 :]
    label, _, value = pair.partition(" ")
    return label, value


def split_of(prompt_text: str) -> str:
    """The split a prompt belongs to, fixed by a hash of its text."""
    digest = hashlib.sha256(prompt_text.encode()).digest()
    return "eval" if int.from_bytes(digest[:4], "big") % EVAL_BUCKETS == 0 else "train"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise InputError(f"split is {split!r}; use one of {', '.join(SPLITS)}")


SUPPORT = SupportTask()
