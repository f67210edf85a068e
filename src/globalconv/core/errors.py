"""The project's error types, for every layer to raise and for the command line to tell apart.

``InputError`` and its kinds are bad input named in one line (the CLI prints it and exits with
code 2): a config or option (``ConfigError``), a task's data (``DataError``), a sequence too long
for a model (``SequenceTooLongError``), and, in their own modules, a run file
(``core.io.RunFileError``), a checkpoint (``train.checkpoint.CheckpointError``) and a run
directory in use (``train.lock.LockedError``). A run whose loss stopped being finite is a
``DivergedError`` (exit code 3). Anything else is a bug, and the CLI shows its traceback.
All are ``ValueError``s, as they were before they had types of their own.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input, phrased for the user: the message names the problem and the fix."""


class ConfigError(InputError):
    """A configuration problem: a config key or value, a mixer's or kernel's options, a
    command-line value."""


class DataError(InputError):
    """A task's data that cannot be used: a data file or dataset that is missing, malformed or
    lacks the splits, columns or rows the task needs."""


class SequenceTooLongError(InputError):
    """A sequence longer than a model, mixer or kernel was built for (its ``max_len``); the
    message names both lengths and the fix. Callers that can skip such an input (the length
    study's "n/a") catch this type rather than reading the message."""


class DivergedError(ValueError):
    """The training loss became NaN or infinite (nothing is checkpointed past that)."""


__all__ = ["ConfigError", "DataError", "DivergedError", "InputError", "SequenceTooLongError"]
