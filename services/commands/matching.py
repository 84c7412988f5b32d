"""What a typed phrase names among the organisation's products or people, with typo tolerance.

Tiers, first one that finds anything wins:
1. an exact key (an offer id `CFQ7TTC0LDPB:0001` or product id, a user name / e-mail);
2. an exact name or alias ("Business Standard" for "Microsoft 365 Business Standard", a first name);
3. every typed word is a word of the name ("E3" → Office 365 E3 *and* Microsoft 365 E3: a choice);
4. every typed word is close to a word of the name (rapidfuzz ratio), the best ones within a margin.
Several candidates in the winning tier make the answer ambiguous (the admin picks one); nothing
found gives the closest names as suggestions. Pure functions: the candidates come from the caller.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from rapidfuzz import fuzz, process

T = TypeVar("T")

_SHORTHANDS = {"m365": "microsoft 365", "o365": "office 365", "ms": "microsoft", "ems": "enterprise mobility security"}
_PUNCTUATION = re.compile(r"[()+,/&:;]|(?<!\w)-|-(?!\w)")
_BRAND_PREFIXES = ("microsoft 365 ", "office 365 ", "microsoft ", "dynamics 365 ")
WORD_SCORE = 75  # a typed word is "close" to a name's word at this rapidfuzz ratio or above
MARGIN = 6  # fuzzy candidates this close to the best one are offered as a choice too
SUGGESTION_SCORE = 50


def normalise(text: str) -> str:
    text = _PUNCTUATION.sub(" ", text.lower())
    words = [_SHORTHANDS.get(word, word) for word in text.split()]
    return " ".join(" ".join(words).split())


@dataclass(frozen=True)
class Candidate(Generic[T]):
    value: T
    name: str  # as a person reads it
    keys: tuple[str, ...] = ()  # exact identifiers
    aliases: tuple[str, ...] = ()  # other names it answers to

    def names(self) -> list[str]:
        """The name, the aliases, and the name without its brand ("Teams Essentials")."""
        found = [normalise(self.name), *(normalise(alias) for alias in self.aliases if alias)]
        for name in list(found):
            for prefix in _BRAND_PREFIXES:
                if name.startswith(prefix) and len(name) > len(prefix):
                    found.append(name[len(prefix) :])
        return list(dict.fromkeys(name for name in found if name))


@dataclass(frozen=True)
class Match(Generic[T]):
    found: tuple[Candidate[T], ...] = ()
    suggestions: tuple[str, ...] = ()
    fuzzy: bool = False  # found only by typo tolerance
    typed: str = ""

    @property
    def one(self) -> Candidate[T] | None:
        return self.found[0] if len(self.found) == 1 else None

    @property
    def ambiguous(self) -> bool:
        return len(self.found) > 1


@dataclass
class Matcher(Generic[T]):
    """Matches phrases against one set of candidates. `min_prefix`: a typed word at least this long
    may be the start of a name's word ("meg" → Megan); 0 turns that off. `strict_keys`: a phrase that
    looks like a key (an e-mail) matches keys only — never by closeness."""

    candidates: Sequence[Candidate[T]]
    min_prefix: int = 0
    strict_keys: bool = False
    _names: list[list[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._names = [candidate.names() for candidate in self.candidates]

    def match(self, typed: str) -> Match[T]:
        query = normalise(typed)
        if not query:
            return Match(typed=typed)
        raw = " ".join(typed.lower().split())
        keyed = [c for c in self.candidates if any(raw == key.lower() for key in c.keys)]
        if keyed:
            return Match(tuple(keyed), typed=typed)
        if self.strict_keys and "@" in query:
            return Match(suggestions=self._suggest(query.split("@", 1)[0]), typed=typed)
        exact = [c for c, names in zip(self.candidates, self._names, strict=True) if query in names]
        if exact:
            return Match(tuple(exact), typed=typed)
        words = query.split()
        contained = [
            c
            for c, names in zip(self.candidates, self._names, strict=True)
            if any(self._contains(name.split(), words) for name in names)
        ]
        if contained:
            return Match(tuple(contained), typed=typed)
        scored = [
            (score, c)
            for c, names in zip(self.candidates, self._names, strict=True)
            if (score := max((self._closeness(name.split(), words) for name in names), default=0.0)) > 0
        ]
        if scored:
            best = max(score for score, _ in scored)
            close = tuple(c for score, c in sorted(scored, key=lambda item: -item[0]) if score >= best - MARGIN)
            return Match(close, fuzzy=True, typed=typed)
        return Match(suggestions=self._suggest(query), typed=typed)

    def _contains(self, name_words: list[str], typed_words: list[str]) -> bool:
        return all(
            any(
                word == name_word or (self.min_prefix and len(word) >= self.min_prefix and name_word.startswith(word))
                for name_word in name_words
            )
            for word in typed_words
        )

    @staticmethod
    def _closeness(name_words: list[str], typed_words: list[str]) -> float:
        """The mean closeness of each typed word to its best word of the name; 0 when one is not close.
        Short words (E3, 2) must be exact: "E3" is not a typo of "E5"."""
        scores = []
        for word in typed_words:
            if len(word) <= 2:
                best = 100.0 if word in name_words else 0.0
            else:
                best = max((fuzz.ratio(word, name_word) for name_word in name_words), default=0.0)
            if best < WORD_SCORE:
                return 0.0
            scores.append(best)
        return sum(scores) / len(scores) if scores else 0.0

    def _suggest(self, query: str, limit: int = 3) -> tuple[str, ...]:
        choices = {c.name: " ".join(names) for c, names in zip(self.candidates, self._names, strict=True)}
        ranked = process.extract(
            query, choices, scorer=fuzz.WRatio, limit=limit, score_cutoff=SUGGESTION_SCORE, processor=None
        )
        return tuple(str(key) for _, _, key in ranked)
