"""The one exception tree of PALM.

    PalmError
     ├── InputError          bad input from a person or a client: never retried
     │    ├── SpecError      a build spec that cannot run (lists every problem)
     │    └── RewardError    a reward outside [0, 1] or NaN
     ├── StoreError          the store could not be read or written
     │    └── NotFound       the thing asked for is not in the store
     ├── RetryableError      a passing failure (broker, network): try again
     └── PermanentError      a task that will fail the same way every time

The CLI maps InputError to exit status 2 with its one-line message; the router maps
InputError to INVALID_ARGUMENT; workers retry RetryableError and fail the task on
anything else.
"""


class PalmError(Exception):
    """Base of every error PALM raises on purpose."""


class InputError(PalmError, ValueError):
    """Bad input: the message names the value, the rule and the way out."""


class SpecError(InputError):
    """A build spec with one or more problems, all listed in the message."""

    def __init__(self, problems: list[str], source: str = "spec"):
        self.problems = list(problems)
        self.source = source
        if len(self.problems) == 1:
            message = f"{source}: {self.problems[0]}"
        else:
            lines = "; ".join(f"({i}) {p}" for i, p in enumerate(self.problems, 1))
            message = f"{source}: {len(self.problems)} problems: {lines}"
        super().__init__(message)


class RewardError(InputError):
    """A reward function returned a value outside [0, 1] or NaN."""


class StoreError(PalmError):
    """The store could not be read or written."""


class NotFound(StoreError, KeyError):
    """The object asked for is not in the store."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want plain text
        return str(self.args[0]) if self.args else "not found"


class RetryableError(PalmError):
    """A failure that may pass: the broker, the network, a busy resource."""


class PermanentError(PalmError):
    """A failure that will repeat on every attempt; the task is marked failed."""
