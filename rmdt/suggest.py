"""The one did-you-mean helper behind every "unknown name" error."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name, known: Iterable[str], prefix: str = "", list_known: bool = True) -> str:
    """``" (did you mean PREFIX+closest?)"`` when a known name is close to ``name``, else ``" (known: a, b)"``
    (or ``""`` when not ``list_known``, for messages that list the choices already)."""
    known = [str(k) for k in known]
    close = difflib.get_close_matches(str(name), known, n=1)
    if close:
        return f" (did you mean {prefix}{close[0]}?)"
    return f" (known: {', '.join(known)})" if list_known else ""
