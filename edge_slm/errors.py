"""Error types. Each carries the process exit code the CLI maps it to (CONTRACT §1)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CONFIG = 3


class EdgeSlmError(Exception):
    """Base error: one clear line of text and the exit code it maps to."""

    exit_code: int = EXIT_CONFIG

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class ConfigError(EdgeSlmError):
    """Invalid configuration; the message names the dotted key."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        super().__init__(f"config error: {key}: {problem}" if key else f"config error: {problem}")


class StartupError(EdgeSlmError):
    """The daemon could not start (broker unreachable with no retry allowed, missing files)."""


class ModelError(EdgeSlmError):
    """A model is missing, corrupt, unloadable or too large for the memory budget."""


class ModelUnavailable(EdgeSlmError):
    """The model cannot serve a request right now (not loaded, broken, shut down)."""


class ModelTimeout(EdgeSlmError):
    """A generation missed its deadline and was cancelled."""


class DecodeError(EdgeSlmError):
    """A telemetry or transcript payload was rejected; the message is the dead-letter reason."""

    exit_code = 1


class DependencyMissing(EdgeSlmError):
    """An optional native dependency is not installed; the message names the install command."""
