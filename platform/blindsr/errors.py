"""The one base of every error a user can fix: a bad value or key, a missing or unreadable file, a plan the
cluster cannot hold, a refused or absent registry, a run that cannot go on. Every job prints it as one
``error: …`` line and exits 2 (``console.job``); anything else is a bug and keeps its traceback."""


class UserError(Exception):
    """Raised with a one-line message that says what was wrong, where, and what to change."""


class InputError(UserError, ValueError):
    """An argument or input a command cannot use (a scale, a protocol's degradation, fp16 without CUDA)."""
