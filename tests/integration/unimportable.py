"""A reward module that fails as it is imported, for the CLI fuzz tests: a build spec
naming `python:tests.integration.unimportable:score` must be refused in one line."""

raise RuntimeError("this module fails on import, on purpose")


def score(prompts, responses):  # pragma: no cover - never reached
    return [0.5] * len(prompts)
