"""Include/exclude patterns for file backups, with gitignore-like semantics.

Patterns apply to paths relative to the backed-up root, with ``/`` separators:

- ``*`` matches any run of characters but ``/``, ``?`` one character but ``/``,
  ``[abc]``, ``[a-z]``, ``[!a-z]`` a character class, ``\\`` escapes the next
  character;
- ``**`` as a whole component matches any number of directories (zero
  included): ``**/cache``, ``docs/**/*.md``, ``build/**``;
- a pattern without a ``/`` (a trailing one aside) matches a single name at
  any depth (``*.tmp``, ``node_modules``); one with a leading or inner ``/`` is
  anchored at the root (``/build``, ``docs/*.md``);
- a trailing ``/`` matches directories only (``logs/``);
- a pattern matching a directory covers everything below it.

Negation (``!pattern``) is not supported and is refused rather than ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from scholar_ops.vault.errors import ConfigError

_ANY_DIRS = "(?:[^/]+/)*"


@dataclass(frozen=True)
class Pattern:
    text: str
    regex: re.Pattern[str]
    dir_only: bool

    def matches(self, path: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        return self.regex.fullmatch(path) is not None


def compile_pattern(text: str) -> Pattern:
    if not text or not text.strip("/"):
        raise ConfigError(f"empty file pattern {text!r}")
    if text.startswith("!"):
        raise ConfigError(
            f"file pattern {text!r}: negation is not supported (write \\! for a leading '!')"
        )
    pat = text
    dir_only = pat.endswith("/")
    pat = pat.rstrip("/")
    anchored = "/" in pat
    pat = pat.lstrip("/")
    segments = pat.split("/")
    parts: list[str] = [] if anchored else [_ANY_DIRS]
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "**":
            parts.append(".*" if last else _ANY_DIRS)
        elif seg:
            parts.append(_segment(seg, text) + ("" if last else "/"))
    return Pattern(text, re.compile("".join(parts), re.DOTALL), dir_only)


def _segment(seg: str, text: str) -> str:
    out: list[str] = []
    i, n = 0, len(seg)
    while i < n:
        c = seg[i]
        i += 1
        if c == "*":
            while i < n and seg[i] == "*":  # "a**b" is "a*b", as in gitignore
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i >= n:
                raise ConfigError(f"file pattern {text!r} ends with a lone backslash")
            out.append(re.escape(seg[i]))
            i += 1
        elif c == "[":
            cls, i = _char_class(seg, i)
            out.append(cls if cls else re.escape("["))
        else:
            out.append(re.escape(c))
    return "".join(out)


def _char_class(seg: str, i: int) -> tuple[str, int]:
    """Translate a class starting after '['; ("", i) when it is not closed (a literal '[')."""
    j = i
    negate = j < len(seg) and seg[j] in "!^"
    if negate:
        j += 1
    body: list[str] = []
    first = True
    while j < len(seg):
        c = seg[j]
        if c == "]" and not first:
            inner = "".join(body)
            return ("[^/" + inner + "]" if negate else "[" + inner + "]"), j + 1
        if c == "\\" and j + 1 < len(seg):
            body.append(re.escape(seg[j + 1]))
            j += 2
        else:
            body.append(c if c == "-" else re.escape(c))
            j += 1
        first = False
    return "", i


class PatternSet:
    """Any of several patterns."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = [compile_pattern(p) for p in patterns]

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, path: str, is_dir: bool) -> bool:
        return any(p.matches(path, is_dir) for p in self.patterns)
