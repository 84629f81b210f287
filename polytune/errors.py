"""One exception root for polytune; ``cli.py`` is the only place that maps these to exit codes.

Every message is complete on its own: what is wrong, where (YAML key path, file, group or
experiment id) and the offending value.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "GroupBusy",
    "GroupNotFound",
    "Interrupted",
    "PolytuneError",
    "StoreError",
    "UsageError",
]

_MISSING: Any = object()


def show_value(value: Any, limit: int = 80) -> str:
    """A short ``repr`` of a user's value, for one-line messages."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text.replace("\n", "\\n")


class PolytuneError(Exception):
    """Root of every error polytune raises on purpose."""

    exit_code = 1


class UsageError(PolytuneError):
    """A command-line usage problem (bad option value, unknown group...)."""

    exit_code = 2


class ConfigError(PolytuneError):
    """An invalid polyaxonfile: names the YAML key path, what is wrong and the bad value."""

    exit_code = 2

    def __init__(self, key_path: str, message: str, value: Any = _MISSING) -> None:
        self.key_path = key_path
        self.message = message
        self.value = value
        text = f"{key_path}: {message}" if key_path else message
        if value is not _MISSING:
            text += f" (got {show_value(value)})"
        super().__init__(text)


class GroupNotFound(UsageError):
    """No such group in the workspace."""


class StoreError(PolytuneError):
    """The group directory cannot be read or written as needed."""


class GroupBusy(PolytuneError):
    """Another live driver holds the group's lock."""

    exit_code = 3


class Interrupted(PolytuneError):
    """The driver was interrupted (Ctrl-C, SIGTERM, ``polytune stop``); the group is resumable."""

    exit_code = 130
