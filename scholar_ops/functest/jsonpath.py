"""A small JSON path: ``$``, ``.name``, ``[index]``, ``[*]`` (all items) and ``length()``.

Enough for conditions on API answers (``$.results[0].score``, ``$.results[*].title``,
``$.results.length()``) without another dependency.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r"\.length\(\)|\.([A-Za-z_][\w-]*)|\[(\d+|\*)\]")


class JsonPathError(ValueError):
    pass


_MISSING = object()


def extract(doc: Any, path: str) -> Any:
    """The value at ``path``; a ``[*]`` gives a list. Raises JsonPathError when a part of
    the path is missing, naming the part."""
    if not path.startswith("$"):
        raise JsonPathError(f"{path!r}: a JSON path starts with $")
    rest = path[1:]
    values: list[Any] = [doc]
    spread = False
    pos = 0
    while pos < len(rest):
        m = _TOKEN.match(rest, pos)
        if m is None:
            raise JsonPathError(f"{path!r}: cannot read {rest[pos:]!r}")
        pos = m.end()
        name, index = m.group(1), m.group(2)
        nxt: list[Any] = []
        for v in values:
            if m.group(0) == ".length()":
                if not isinstance(v, (list, str, dict)):
                    raise JsonPathError(f"{path}: length() of a {type(v).__name__}")
                nxt.append(len(v))
            elif name is not None:
                if not isinstance(v, dict) or name not in v:
                    raise JsonPathError(f"{path}: no field {name!r}")
                nxt.append(v[name])
            elif index == "*":
                if not isinstance(v, list):
                    raise JsonPathError(f"{path}: [*] of a {type(v).__name__}")
                nxt.extend(v)
                spread = True
            else:
                if not isinstance(v, list) or int(index) >= len(v):
                    raise JsonPathError(f"{path}: no item [{index}]")
                nxt.append(v[int(index)])
        values = nxt
    return values if spread else values[0]
