"""One-line commands read into a `Command`: deterministic, offline, no knowledge of the organisation.

The grammar is a table of patterns, tried in order; each names the command's kind and captures the
product and person phrases as typed (matched against the organisation's subscriptions, catalog and
users later, by `services.commands.matching`), a quantity and a term. A mistyped first word
("suspnd", "asign") is corrected to the closest command word (rapidfuzz) before the patterns are
tried again. Text that starts like a command but fits no pattern gets `NotUnderstood`: what is
missing, and the closest example commands.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from enum import StrEnum

from rapidfuzz import fuzz, process

from services.i18n import _


class Kind(StrEnum):
    ADD_SEATS = "add_seats"
    REMOVE_SEATS = "remove_seats"
    SET_SEATS = "set_seats"
    BUY = "buy"
    SUSPEND = "suspend"
    REACTIVATE = "reactivate"
    AUTORENEW_OFF = "autorenew_off"
    AUTORENEW_ON = "autorenew_on"
    CANCEL = "cancel"
    ASSIGN = "assign"
    UNASSIGN = "unassign"
    WHO_HAS = "who_has"
    FREE_SEATS = "free_seats"
    RENEWAL = "renewal"
    NEW_USER = "new_user"
    OFFBOARD = "offboard"


@dataclass(frozen=True)
class Command:
    """A command as typed: phrases still to be matched, the quantity as a number (any sign)."""

    kind: Kind
    text: str
    product: str = ""
    person: str = ""
    quantity: int | None = None
    term: str = ""  # P1M / P1Y / P3Y, or "" when not said
    billing: str = ""  # monthly / annual / triennial, or "" when not said
    corrected_from: str = ""  # the mistyped command word, when it was corrected …
    corrected_to: str = ""  # … and the command word it was read as


@dataclass(frozen=True)
class NotUnderstood:
    """Text that starts like a command but is not one: why, and the closest examples."""

    message: str
    suggestions: tuple[str, ...]


# Examples: the help card shows them, and "did you mean" ranks them against what was typed.
EXAMPLES: tuple[tuple[Kind, str], ...] = (
    (Kind.ADD_SEATS, "add 5 seats to Business Standard"),
    (Kind.REMOVE_SEATS, "remove 2 seats from E3"),
    (Kind.SET_SEATS, "set Teams Essentials to 12 seats"),
    (Kind.BUY, "buy 3 Microsoft 365 Business Basic monthly"),
    (Kind.BUY, "buy Visio Plan 2 annual billed monthly"),
    (Kind.SUSPEND, "suspend Visio"),
    (Kind.REACTIVATE, "reactivate Visio"),
    (Kind.AUTORENEW_OFF, "turn off auto-renew for E3"),
    (Kind.AUTORENEW_ON, "turn on auto-renew for E3"),
    (Kind.CANCEL, "cancel Project Plan 3"),
    (Kind.ASSIGN, "assign E3 to diego"),
    (Kind.UNASSIGN, "remove Business Standard from megan@contoso.com"),
    (Kind.WHO_HAS, "who has E3"),
    (Kind.FREE_SEATS, "how many Business Standard seats are free"),
    (Kind.RENEWAL, "when does E3 renew"),
    (Kind.NEW_USER, "new user Diego Siciliani with Business Standard"),
    (Kind.OFFBOARD, "offboard diego"),
)

_NUMBER_WORDS = {
    "zero": 0,
    "no": 0,
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
NUM = r"(?P<n>[+-]?\d{1,9}|" + "|".join(_NUMBER_WORDS) + r")"
SEATS = r"(?:seats?|licen[cs]es?|users?|places?)"
P = r"(?P<p>.+?)"
WHO = r"(?P<who>.+?)"
LICENCE = r"(?:\s+licen[cs]es?)?"
AUTO_RENEW = r"auto[- ]?renew(?:al|ing)?"
FOR = r"(?:for|of|on|to)"


def _pattern(kind: Kind, expression: str) -> tuple[Kind, re.Pattern[str]]:
    return kind, re.compile(expression, re.IGNORECASE)


# Order matters: "remove 2 seats from E3" is a seat change, "remove E3 from megan" a licence.
_PATTERNS: tuple[tuple[Kind, re.Pattern[str]], ...] = (
    _pattern(Kind.ADD_SEATS, rf"(?:add|increase by)\s+{NUM}\s+(?:more\s+|extra\s+)?(?:{SEATS}\s+)?{FOR}\s+{P}"),
    _pattern(Kind.ADD_SEATS, rf"add\s+{NUM}\s+(?:more\s+|extra\s+)?{P}\s+{SEATS}"),
    _pattern(Kind.ADD_SEATS, rf"add\s+{NUM}\s+(?:more\s+|extra\s+)?{P}"),
    _pattern(Kind.ADD_SEATS, rf"increase\s+{P}\s+by\s+{NUM}(?:\s+{SEATS})?"),
    _pattern(
        Kind.REMOVE_SEATS, rf"(?:remove|reduce by|drop|take away)\s+{NUM}\s+(?:{SEATS}\s+)?(?:from|of|on|for)\s+{P}"
    ),
    _pattern(Kind.REMOVE_SEATS, rf"(?:reduce|decrease|lower)\s+{P}\s+by\s+{NUM}(?:\s+{SEATS})?"),
    _pattern(Kind.REMOVE_SEATS, rf"(?:remove|drop)\s+{NUM}\s+{P}\s+{SEATS}"),
    _pattern(
        Kind.SET_SEATS,
        rf"(?:set|change|make)\s+(?:the\s+)?(?:{SEATS}\s+(?:of|for|on)\s+)?{P}\s+(?:{SEATS}\s+)?to\s+{NUM}(?:\s+{SEATS})?",
    ),
    _pattern(Kind.SET_SEATS, rf"(?:set|change)\s+{P}\s+{SEATS}\s+to\s+{NUM}"),
    _pattern(Kind.SET_SEATS, rf"(?:reduce|lower|decrease|increase)\s+{P}\s+to\s+{NUM}(?:\s+{SEATS})?"),
    _pattern(Kind.BUY, rf"(?:buy|order|purchase)\s+{NUM}\s+(?:{SEATS}\s+(?:of\s+)?)?{P}"),
    _pattern(Kind.BUY, rf"(?:buy|order|purchase)\s+{P}"),
    _pattern(Kind.SUSPEND, rf"(?:suspend|pause)\s+{P}"),
    _pattern(Kind.REACTIVATE, rf"(?:reactivate|resume|unsuspend|unpause|re-activate)\s+{P}"),
    _pattern(Kind.AUTORENEW_OFF, rf"(?:turn|switch|set)\s+off\s+{AUTO_RENEW}\s+{FOR}\s+{P}"),
    _pattern(Kind.AUTORENEW_OFF, rf"(?:turn|switch|set)\s+{AUTO_RENEW}\s+off\s+{FOR}\s+{P}"),
    _pattern(Kind.AUTORENEW_OFF, rf"(?:disable|stop|cancel)\s+(?:the\s+)?{AUTO_RENEW}\s+{FOR}\s+{P}"),
    _pattern(Kind.AUTORENEW_OFF, rf"{AUTO_RENEW}\s+off\s+(?:{FOR}\s+)?{P}"),
    _pattern(Kind.AUTORENEW_OFF, rf"(?:do not|don't|dont)\s+(?:auto[- ]?)?renew\s+{P}"),
    _pattern(Kind.AUTORENEW_ON, rf"(?:turn|switch|set)\s+on\s+{AUTO_RENEW}\s+{FOR}\s+{P}"),
    _pattern(Kind.AUTORENEW_ON, rf"(?:turn|switch|set)\s+{AUTO_RENEW}\s+on\s+{FOR}\s+{P}"),
    _pattern(Kind.AUTORENEW_ON, rf"(?:enable|start)\s+(?:the\s+)?{AUTO_RENEW}\s+{FOR}\s+{P}"),
    _pattern(Kind.AUTORENEW_ON, rf"{AUTO_RENEW}\s+on\s+(?:{FOR}\s+)?{P}"),
    _pattern(Kind.CANCEL, rf"cancel\s+(?:the\s+|my\s+|our\s+)?(?:subscription\s+(?:of|for|to)?\s*)?{P}"),
    _pattern(Kind.ASSIGN, rf"(?:assign|allocate)\s+(?:an?\s+)?{P}{LICENCE}\s+to\s+{WHO}"),
    _pattern(Kind.ASSIGN, rf"give\s+{WHO}\s+an?\s+{P}{LICENCE}"),
    _pattern(Kind.ASSIGN, rf"give\s+(?P<who>\S+)\s+{P}{LICENCE}"),
    _pattern(Kind.UNASSIGN, rf"(?:remove|unassign|revoke|take away|take)\s+(?:the\s+)?{P}{LICENCE}\s+from\s+{WHO}"),
    _pattern(Kind.WHO_HAS, rf"who\s+(?:has|uses|holds|is using|got|have)\s+(?:an?\s+)?{P}{LICENCE}"),
    _pattern(
        Kind.FREE_SEATS,
        rf"how many\s+(?:free\s+|unused\s+|spare\s+)?{P}(?:\s+{SEATS})?\s+(?:are\s+|do we have\s+|have we got\s+)?"
        r"(?:free|available|left|unused|unassigned|spare)(?:\s+(?:do we have|are there))?",
    ),
    _pattern(
        Kind.FREE_SEATS,
        rf"how many\s+(?:free|unused|spare|available)\s+{P}(?:\s+{SEATS})?(?:\s+(?:do we have|are there|are left))?",
    ),
    _pattern(
        Kind.RENEWAL, rf"when\s+(?:does|do|will|is)\s+(?:the\s+|my\s+|our\s+)?{P}\s+(?:renew|renewal|expire|end|due)"
    ),
    _pattern(Kind.RENEWAL, rf"(?:renewal|renewal date)\s+(?:of|for)\s+{P}"),
    _pattern(Kind.NEW_USER, rf"(?:new|add|create)\s+(?:a\s+)?user\s+{WHO}\s+with\s+(?:an?\s+)?{P}{LICENCE}"),
    _pattern(Kind.NEW_USER, rf"onboard\s+{WHO}\s+with\s+(?:an?\s+)?{P}{LICENCE}"),
    _pattern(Kind.OFFBOARD, rf"(?:offboard|off-board|off board)\s+{WHO}"),
    _pattern(Kind.OFFBOARD, rf"(?:remove|delete)\s+user\s+{WHO}"),
)

# The first words a command starts with (a mistyped one is corrected to the closest).
COMMAND_WORDS = (
    "add",
    "increase",
    "remove",
    "reduce",
    "decrease",
    "lower",
    "drop",
    "set",
    "change",
    "make",
    "buy",
    "order",
    "purchase",
    "suspend",
    "pause",
    "reactivate",
    "resume",
    "unsuspend",
    "turn",
    "switch",
    "disable",
    "enable",
    "cancel",
    "assign",
    "allocate",
    "give",
    "unassign",
    "revoke",
    "who",
    "how",
    "when",
    "renewal",
    "new",
    "create",
    "onboard",
    "offboard",
    "auto-renew",
    "autorenew",
    "auto",
    "stop",
    "do",
    "don't",
    "dont",
    "take",
    "delete",
    "off-board",
)
_FILLER = re.compile(r"^(?:please\s+|pls\s+|can you\s+|could you\s+|i want to\s+|i'd like to\s+|we need to\s+)+", re.I)
_TRAILING = re.compile(r"(?:\s+please)?[\s.!?]*$", re.I)
_TERM = re.compile(
    r"(?:\s*,?\s+(?:on\s+an?\s+|with\s+an?\s+|for\s+an?\s+|for\s+)?(?P<term>monthly|month-to-month|month to month|"
    r"per month|annual|annually|yearly|1[- ]?year|one[- ]year|12 months|3[- ]?years?|three[- ]years?|triennial|"
    r"p1m|p1y|p3y)(?:\s+(?:commitment|term|plan|subscription|contract))?)?"
    r"(?:\s*,?\s+(?:billed|paid|billing|payed|pay)\s+(?P<billing>monthly|annually|yearly|annual|upfront|"
    r"every 3 years|triennially|each month|every month|each year|every year))?$",
    re.I,
)
_TERMS = {
    "monthly": "P1M",
    "month-to-month": "P1M",
    "month to month": "P1M",
    "per month": "P1M",
    "p1m": "P1M",
    "annual": "P1Y",
    "annually": "P1Y",
    "yearly": "P1Y",
    "1 year": "P1Y",
    "1-year": "P1Y",
    "1year": "P1Y",
    "one year": "P1Y",
    "one-year": "P1Y",
    "12 months": "P1Y",
    "p1y": "P1Y",
    "3 years": "P3Y",
    "3 year": "P3Y",
    "3-year": "P3Y",
    "3-years": "P3Y",
    "3year": "P3Y",
    "3years": "P3Y",
    "three years": "P3Y",
    "three year": "P3Y",
    "three-year": "P3Y",
    "three-years": "P3Y",
    "triennial": "P3Y",
    "p3y": "P3Y",
}
_BILLING = {
    "monthly": "monthly",
    "each month": "monthly",
    "every month": "monthly",
    "annually": "annual",
    "yearly": "annual",
    "annual": "annual",
    "each year": "annual",
    "every year": "annual",
    "upfront": "",  # the whole term up front: annual for 1 year, triennial for 3 (below)
    "every 3 years": "triennial",
    "triennially": "triennial",
}
_PHRASE_NOISE = re.compile(r"^(?:the|my|our|a|an)\s+|\s+(?:subscription|subscriptions|plan seats|seats)$", re.I)


def _clean(text: str) -> str:
    text = " ".join(text.split())
    text = _FILLER.sub("", text)
    return _TRAILING.sub("", text)


def _phrase(value: str | None) -> str:
    value = " ".join((value or "").split()).strip(" ,'\"")
    previous = None
    while previous != value:
        previous, value = value, _PHRASE_NOISE.sub("", value).strip()
    return value


def _number(value: str | None) -> int | None:
    if value is None:
        return None
    word = value.lower()
    return _NUMBER_WORDS[word] if word in _NUMBER_WORDS else int(word)


def _split_term(product: str) -> tuple[str, str, str]:
    """The product phrase without a trailing term ("… annual billed monthly"), the term, the billing."""
    match = _TERM.search(product)
    if match is None or not (match.group("term") or match.group("billing")):
        return product, "", ""
    term = _TERMS.get((match.group("term") or "").lower(), "")
    billing = _BILLING.get((match.group("billing") or "").lower(), "")
    said = (match.group("billing") or "").lower()
    if said == "upfront":
        billing = {"P1Y": "annual", "P3Y": "triennial"}.get(term, "")
    if term == "P1M" and not billing:
        billing = "monthly"
    return product[: match.start()].rstrip(" ,"), term, billing


def _match(text: str) -> Command | None:
    for kind, pattern in _PATTERNS:
        found = pattern.fullmatch(text)
        if found is None:
            continue
        groups = found.groupdict()
        product = _phrase(groups.get("p"))
        term = billing = ""
        if kind is Kind.BUY:
            product, term, billing = _split_term(product)
            product = _phrase(product)
        person = _phrase(groups.get("who"))
        if (groups.get("p") is not None and not product) or (groups.get("who") is not None and not person):
            continue
        if re.fullmatch(SEATS, product, re.IGNORECASE):  # "remove seats from E3": the number is missing
            continue
        return Command(
            kind,
            text,
            product=product,
            person=person,
            quantity=_number(groups.get("n")),
            term=term,
            billing=billing,
        )
    return None


def command_word(text: str) -> tuple[str, str]:
    """The command word `text` starts with (corrected if mistyped) and the word as typed; ("", word)
    when the first word is not close to any command word."""
    cleaned = _clean(text)
    first = cleaned.split(" ", 1)[0].lower() if cleaned else ""
    if not first:
        return "", ""
    if first in COMMAND_WORDS:
        return first, first
    best = process.extractOne(first, COMMAND_WORDS, scorer=fuzz.ratio, score_cutoff=75)
    return (str(best[0]) if best else ""), first


# Words the conversation itself answers at any step ("cancel" stops the task waiting): never a command.
RESERVED = frozenset({"cancel", "stop", "quit", "exit", "help", "?", "menu", "hi", "hello", "hey", "start", "home"})


def looks_like_command(text: str) -> bool:
    """Whether `text` starts with a command word (or a mistyped one): then it is answered as a command,
    with "did you mean" when it is not one. The conversation's own words alone are never one."""
    if " ".join(text.lower().split()).rstrip(".!") in RESERVED:
        return False
    word, _ = command_word(text)
    return bool(word)


def parse(text: str) -> Command | NotUnderstood:
    """The command in `text`, or why it is not one (with the closest examples)."""
    cleaned = _clean(text)
    word, typed = command_word(cleaned)
    found = _match(cleaned)
    if found is None and word and word != typed:
        found = _match(word + cleaned[len(typed) :])
        if found is not None:
            found = dataclasses.replace(found, corrected_from=typed, corrected_to=word)
    if found is not None:
        return dataclasses.replace(found, text=text)
    return NotUnderstood(_why(cleaned, word), suggest(cleaned))


def _why(text: str, word: str) -> str:
    """What is missing, for the forms people most often get half right."""
    lowered = text.lower()
    has_number = re.search(r"\b[+-]?\d+\b", lowered) or any(f" {w} " in f" {lowered} " for w in _NUMBER_WORDS)
    if word in ("add", "remove", "reduce", "increase") and re.search(rf"\b{SEATS}\b", lowered) and not has_number:
        return _("How many seats? Say the number, for example **add 5 seats to Business Standard**.")
    if word in ("set", "change") and not re.search(r"\bto\s+\S", lowered):
        return _("To how many seats? For example **set Teams Essentials to 12 seats**.")
    if word == "assign" and not re.search(r"\bto\s+\S", lowered):
        return _("To whom? For example **assign E3 to diego**.")
    if word in ("buy", "order", "purchase") and len(lowered.split()) == 1:
        return _("Buy what? For example **buy 3 Microsoft 365 Business Basic monthly**.")
    return _("I did not understand that command.")


def suggest(text: str, limit: int = 3) -> tuple[str, ...]:
    """The example commands closest to `text` (the same command word first)."""
    word, _ = command_word(text)
    examples = [example for _, example in EXAMPLES]
    ranked = process.extract(text, examples, scorer=fuzz.token_set_ratio, limit=len(examples))
    same_word = [str(choice) for choice, _, _ in ranked if word and str(choice).lower().startswith(word)]
    others = [str(choice) for choice, _, _ in ranked if str(choice) not in same_word]
    return tuple((same_word + others)[:limit])
