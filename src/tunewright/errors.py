"""User-facing errors: one clear line and a documented exit code, never a traceback."""

from __future__ import annotations


class TunewrightError(Exception):
    """An error the user can fix; `exit_code` is what the CLI exits with."""

    exit_code = 2


class ConfigError(TunewrightError):
    """Bad config file or override (exit 2)."""


class DataError(TunewrightError):
    """Unusable data: the file cannot be read or has errors that stop a run (exit 2)."""


class ModelError(TunewrightError):
    """The base model or an adapter cannot be found or loaded (exit 2)."""


EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_NO_GO = 3
EXIT_INTERRUPTED = 130
