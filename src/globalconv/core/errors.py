"""The project's error types that more than one layer raises or catches."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem, phrased for the user (the CLI exits with code 2)."""


class SequenceTooLongError(ValueError):
    """A sequence longer than a model, mixer or kernel was built for (its ``max_len``); the
    message names both lengths and the fix. Callers that can skip such an input (the length
    study's "n/a") catch this type rather than reading the message."""


__all__ = ["ConfigError", "SequenceTooLongError"]
