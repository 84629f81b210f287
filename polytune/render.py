"""Render ``run.cmd`` templates into the shell command one experiment runs (pure).

Polyaxon rendered ``{{ name }}`` with Jinja2 and ``str()`` and pasted the text into the command
unquoted, so a value with a space or ``$(...)`` changed the command. polytune quotes every value
*for the shell context it lands in*:

* outside quotes: ``shlex.quote`` (``--act={{ act }}`` → ``--act='relu 2'``);
* inside double quotes: ``\\``, ``"``, ``$`` and backtick are backslash-escaped;
* inside single quotes: ``'`` becomes ``'\\''``.

So a value always reaches the program as literal text and never executes, whichever way the user
wrote the template. ``argv`` templates (v1/v2 ``container.command`` + ``args``) are rendered
element by element and each element is quoted as one word.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

from polytune.model import CommandTemplate

__all__ = ["PLACEHOLDER", "format_value", "render_command", "render_text"]

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def format_value(value: Any) -> str:
    """Text of a value in a command: Python's ``str()`` for scalars (Polyaxon's rendering: ``True``,
    ``0.05500000000000001``), JSON for lists and mappings."""
    if isinstance(value, list | dict):
        return json.dumps(value)
    if value is None:
        return ""
    return str(value)


def _quote_for(state: str, text: str) -> str:
    if state == "single":
        return text.replace("'", "'\\''")
    if state == "double":
        return re.sub(r'([\\"$`])', r"\\\1", text)
    return shlex.quote(text)


def _scan_state(segment: str, state: str) -> str:
    """Quoting state of a POSIX shell after reading ``segment`` starting in ``state``."""
    i, n = 0, len(segment)
    while i < n:
        c = segment[i]
        if state == "none":
            if c == "\\":
                i += 1
            elif c == "'":
                state = "single"
            elif c == '"':
                state = "double"
        elif state == "single":
            if c == "'":
                state = "none"
        else:  # double
            if c == "\\":
                i += 1
            elif c == '"':
                state = "none"
        i += 1
    return state


def render_text(template: str, values: Mapping[str, Any], *, shell: bool = True) -> str:
    """Substitute every ``{{ name }}``; with ``shell`` the value is quoted for its context.

    Unknown names raise ``KeyError`` (the config validated the template already, so this is a
    programming error, not a user error).
    """
    out: list[str] = []
    state = "none"
    pos = 0
    for match in PLACEHOLDER.finditer(template):
        literal = template[pos : match.start()]
        out.append(literal)
        state = _scan_state(literal, state)
        text = format_value(values[match.group(1)])
        out.append(_quote_for(state, text) if shell else text)
        pos = match.end()
    out.append(template[pos:])
    return "".join(out)


def render_command(template: CommandTemplate, values: Mapping[str, Any]) -> str:
    """The full shell command (for ``/bin/sh -c``) of one experiment."""
    if template.kind == "argv":
        return shlex.join(render_text(part, values, shell=False) for part in template.parts)
    return " && ".join(f"{render_text(part, values)}" for part in template.parts)
