"""The one exception type for bad user input (config, data, checkpoints, paths), and the
one way to echo a bad value in its message.

Its message names the thing at fault and what was expected; the CLI prints it as one
line without a traceback and exits with status 2.
"""

from __future__ import annotations

from typing import Any

BRIEF_CHARS = 80  # longest echo of a bad value in a message


class UserError(Exception):
    """Bad input from the user; ``str(err)`` is the whole message."""


def brief(value: Any, limit: int = BRIEF_CHARS) -> str:
    """``repr(value)`` on one line, cut to ``limit`` characters (ending ``...``): a hostile
    value never makes a long or multi-line message.  Large or deeply nested containers
    are never rendered in full first (reprlib bounds the work)."""
    import reprlib

    shortener = reprlib.Repr()
    shortener.maxlevel, shortener.maxstring, shortener.maxother = 3, limit, limit
    shortener.maxlist = shortener.maxtuple = shortener.maxdict = shortener.maxset = 8
    text = shortener.repr(value)
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def one_line(text: str, limit: int = 300) -> str:
    """``text`` (e.g. an error from a library) with its whitespace runs collapsed to one
    space and cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
