"""Web-search text to a prefix-aware PostgreSQL tsquery, every word a bound parameter."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_SEARCH_LENGTH", "SearchQuery", "build_search_query"]

#: Longest search text accepted; anything longer is a misuse, not a search.
MAX_SEARCH_LENGTH = 256
#: At most this many words of a search are used (each adds a few tsquery terms).
MAX_SEARCH_WORDS = 12
#: A typed word is also matched through its truncations down to this length, so a
#: partly typed word ("runn") meets the stem of the finished one ("running" → 'run').
MIN_TRUNCATION = 3
MAX_TRUNCATION = 3

_WORD = re.compile(r"[^\W_]+")
#: A quoted phrase (also negated, `-"a b"`, and unclosed at the end) or a run of
#: non-space characters, as websearch_to_tsquery splits its input.
_TOKEN = re.compile(r'-?"[^"]*"?|\S+')


@dataclass(frozen=True)
class SearchQuery:
    """A tsquery as SQL with bound parameters (never user text inside the SQL)."""

    sql: str
    params: tuple[Any, ...]


def build_search_query(text: str) -> SearchQuery | None:
    """Translate web-search text into a prefix-aware tsquery; None when nothing to search.

    Syntax as websearch_to_tsquery: words are ANDed, `or` separates alternatives,
    `-word` and `-"a phrase"` exclude, `"a phrase"` matches the phrase. Every plain
    word is matched as typed so far: its stem as a prefix (`sho` → 'sho':*) or one of
    its last letters missing (`runn` → 'run', the stem of "running"). Words are reduced
    to letters and digits and always passed as bound parameters.
    """
    groups: list[list[str]] = [[]]
    params: list[Any] = []
    words_used = 0
    for token in _TOKEN.findall(text):
        if token.lower() == "or":
            if groups[-1]:
                groups.append([])
            continue
        if token.startswith(('"', '-"')):
            phrase = " ".join(_WORD.findall(token))
            if phrase:
                negate = "!! " if token.startswith("-") else ""
                groups[-1].append(f"({negate}phraseto_tsquery('english', %s))")
                params.append(phrase)
            continue
        negated = token.startswith("-")
        words = _WORD.findall(token)[: max(0, MAX_SEARCH_WORDS - words_used)]
        words_used += len(words)
        if not words:
            continue
        if negated:
            groups[-1].append("(!! plainto_tsquery('english', %s))")
            params.append(" ".join(words))
            continue
        terms: list[str] = []
        for word in (w.lower() for w in words):
            alternatives = ["to_tsquery('english', %s)"]
            params.append(f"{word}:*")
            shortest = max(MIN_TRUNCATION, len(word) - MAX_TRUNCATION)
            for end in range(len(word) - 1, shortest - 1, -1):
                alternatives.append("to_tsquery('english', %s)")
                params.append(word[:end])
            terms.append("(" + " || ".join(alternatives) + ")")
        term = " && ".join(terms)
        if len(words) > 1:
            # Codes such as SKU "SOX-003" are indexed whole by the parser ('sox', '-003'):
            # also match the token as the parser reads it (plain text, no operators).
            term = f"(({term}) || plainto_tsquery('simple', %s))"
            params.append(token)
        groups[-1].append(term)
    parts = ["(" + " && ".join(group) + ")" for group in groups if group]
    if not parts:
        return None
    return SearchQuery(sql=" || ".join(parts), params=tuple(params))
