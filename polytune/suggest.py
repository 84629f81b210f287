"""'Did you mean' hints for unknown names (keys, methods, algorithms)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The valid name closest to ``word``, if any is reasonably close."""
    options = list(choices)
    lowered = {c.lower(): c for c in options}
    if word.lower() in lowered:
        return lowered[word.lower()]
    normalized = {c.replace("_", "").lower(): c for c in options}
    key = word.replace("_", "").replace("-", "").lower()
    if key in normalized:
        return normalized[key]
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return match[0] if match else None
