"""Notes for the reader (what was skipped and why), each said once.

>>> merge_notes(["site 'a' skipped", "site 'b' skipped", "done", "done"])
["sites 'a', 'b' skipped", 'done']
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["merge_notes", "RELN_SKIPPED", "reln_skipped"]

#: How a note that says why no ReLN was fitted begins.
RELN_SKIPPED = "ReLN skipped"

#: A quoted name inside a note: the part that differs between notes of one kind.
_QUOTED = re.compile(r"'[^']*'")


def merge_notes(notes: Iterable[str]) -> list[str]:
    """Each note once, in first-seen order; notes that differ only in one quoted name become
    one note that lists the names.

    Two notes are of one kind when they are equal after every ``'…'`` is replaced by a
    placeholder and hold exactly one quoted name each; the merged note lists the names in
    order (``'a', 'b'``) and puts the word before them in the plural (``site`` →
    ``sites``). Other notes are only de-duplicated.
    """
    merged: dict[str, list[str]] = {}
    names: dict[str, list[str]] = {}
    for note in notes:
        text = " ".join(str(note).split())
        quoted = _QUOTED.findall(text)
        key = _QUOTED.sub("'…'", text) if len(quoted) == 1 else text
        if key not in merged:
            merged[key] = [text]
            names[key] = []
        elif text not in merged[key]:
            merged[key].append(text)
        if len(quoted) == 1 and quoted[0] not in names[key]:
            names[key].append(quoted[0])
    out = []
    for key, texts in merged.items():
        if len(texts) == 1:
            out.append(texts[0])
            continue
        head, _, tail = key.partition("'…'")
        words = head.rstrip().rsplit(" ", 1)
        if words and words[-1] and not words[-1].endswith("s"):
            words[-1] += "s"
        head = " ".join(words) + (" " if head.endswith(" ") else "")
        out.append(f"{head}{', '.join(names[key])}{tail}")
    return out


def reln_skipped(notes: Iterable[str]) -> str | None:
    """The note saying why no ReLN was fitted (it begins with :data:`RELN_SKIPPED`), or None."""
    return next((" ".join(str(n).split()) for n in notes if str(n).startswith(RELN_SKIPPED)), None)
