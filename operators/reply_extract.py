"""What a reply says beyond its intent: return date, new contact, order number.

Pure functions on the reply's *stripped* text (quotes and signatures removed by
the caller), deterministic, standard library only, no I/O.

**Return date** (`return_date`, `find_return`): the day an out-of-office sender
is back, in English, German, French, Spanish and Dutch. Every date mention is
found (ISO, numeric, month names, weekdays, tomorrow / next week / in 3 days /
for two weeks) and kept only when absence wording stands next to it:

- *until* words (until, through, bis, jusqu'au, hasta, tot, t/m, after...) mean
  absent through that day: back the **next** day;
- *back* words (back on, returning, wieder im Büro am, de retour le, de vuelta,
  terug op, "ab / vanaf / à partir du X" with wieder / weer / again...) mean
  back **on** that day; the end of a range ("10-18 Dec", "vom 10.12. bis
  18.12.") counts as *until*; "for two weeks" is counted from the reply's day.

A date named both ways prefers the *back* wording. A date without a year is the
next occurrence on or after the reply's day, except within 14 days before it
(a stale notice: unsure, no date). A weekday is the next such day strictly after
the reply's day; "next week" is its Monday. Numeric dates: slashed and dashed
are month first for English (``en``, ``en-US``, or no language and
English-looking text) and day first for German, French, Spanish, Dutch and
``en-GB``-like tags, dotted ``dd.mm`` day first, unless a number above 12 makes
the order plain; when both orders are dates and the rule's reading is more than
90 days away while the other is within 90, the nearer one is taken (a return is
weeks away; "Back 7/12" from a British sender in December). A date outside
[reply day, reply day + 366] is discarded; with no candidate left the answer is
None. Only the first 20,000 characters are read.

>>> import datetime as dt
>>> got = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
>>> return_date("I am out of the office until 18 December.", got)
datetime.date(2026, 12, 19)
>>> return_date("Ab dem 19.12. bin ich wieder erreichbar.", got)
datetime.date(2026, 12, 19)
>>> return_date("De retour le 5 janvier.", got)
datetime.date(2027, 1, 5)
>>> find_return("Back on Monday!", got).evidence
'Back on Monday'
>>> contacts("I left the company, please write to Jane.Doe@acme.example instead.")
['jane.doe@acme.example']
>>> references("Your ticket #98765 has been received (order 4711-0815).")
['98765', '4711-0815']
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
import unicodedata
from collections.abc import Iterable
from typing import NamedTuple

MAX_CHARS = 20_000  # an out-of-office says its dates near the top; bounds the cost
MAX_CONTACT_CHARS = 100_000


# ---------------------------------------------------------------------------
# normalisation: one output character per input character, so spans map back
# ---------------------------------------------------------------------------

_APOSTROPHES = "\u2019\u2018\u02bc\u00b4`"


def _fold_char(c: str) -> str:
    if c.isascii():
        return c.lower()
    if c in _APOSTROPHES:
        return "'"
    base = unicodedata.normalize("NFKD", c)[:1] or c
    low = base.lower()[:1] or base
    return low if low else c


def _fold(text: str) -> str:
    """Lower-case, accents dropped, same length as ``text`` (ß stays ß)."""
    return "".join(_fold_char(c) for c in text)


# ---------------------------------------------------------------------------
# vocabulary (folded: lower case, no accents)
# ---------------------------------------------------------------------------

_MONTHS: dict[str, int] = {}
for _num, _names in enumerate(
    (
        "january jan januar janner jaenner janvier janv enero ene januari",
        "february feb februar fevrier fevr fev febrero febr februari",
        "march mar marz maerz mars marzo maart mrt",
        "april apr avril avr abril abr",
        "may mai mayo mei",
        "june jun juni juin junio",
        "july jul juli juillet juil julio",
        "august aug aout agosto augustus",
        "september sept sep septembre septiembre setiembre",
        "october oct oktober okt octobre octubre",
        "november nov novembre noviembre",
        "december dec dezember dez decembre diciembre dic",
    ),
    start=1,
):
    for _n in _names.split():
        _MONTHS[_n] = _num
_MONTH_ALT = "|".join(sorted(_MONTHS, key=len, reverse=True))

_WEEKDAYS: dict[str, int] = {}
for _num, _names in enumerate(
    (
        "monday montag lundi lunes maandag",
        "tuesday dienstag mardi martes dinsdag",
        "wednesday mittwoch mercredi miercoles woensdag",
        "thursday donnerstag jeudi jueves donderdag",
        "friday freitag vendredi viernes vrijdag",
        "saturday samstag sonnabend samedi sabado zaterdag",
        "sunday sonntag dimanche domingo zondag",
    )
):
    for _n in _names.split():
        _WEEKDAYS[_n] = _num
_WEEKDAY_ALT = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))

_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "ein": 1, "eine": 1, "einen": 1, "einer": 1, "un": 1,
    "une": 1, "una": 1, "uno": 1, "een": 1,
    "two": 2, "zwei": 2, "deux": 2, "dos": 2, "twee": 2, "couple of": 2,
    "three": 3, "drei": 3, "trois": 3, "tres": 3, "drie": 3,
    "four": 4, "vier": 4, "quatre": 4, "cuatro": 4,
    "five": 5, "funf": 5, "fuenf": 5, "cinq": 5, "cinco": 5, "vijf": 5,
    "six": 6, "sechs": 6, "seis": 6, "zes": 6,
    "seven": 7, "sieben": 7, "sept": 7, "siete": 7, "zeven": 7,
    "eight": 8, "acht": 8, "huit": 8, "ocho": 8,
    "nine": 9, "neun": 9, "neuf": 9, "nueve": 9, "negen": 9,
    "ten": 10, "zehn": 10, "dix": 10, "diez": 10, "tien": 10,
    "quinze": 15, "quince": 15,
}
_NUMBER_ALT = r"\d{1,3}|" + "|".join(
    sorted((re.escape(k) for k in _NUMBER_WORDS), key=len, reverse=True)
)
_UNITS = {
    "day": 1, "days": 1, "tag": 1, "tage": 1, "tagen": 1, "jour": 1, "jours": 1,
    "dia": 1, "dias": 1, "dag": 1, "dagen": 1, "werktage": 1, "werktagen": 1,
    "working days": 1, "business days": 1,
    "week": 7, "weeks": 7, "woche": 7, "wochen": 7, "semaine": 7, "semaines": 7,
    "semana": 7, "semanas": 7, "weken": 7,
    "month": 30, "months": 30, "monat": 30, "monate": 30, "monaten": 30,
    "mois": 30, "mes": 30, "meses": 30, "maand": 30, "maanden": 30,
}
_UNIT_ALT = "|".join(sorted((re.escape(k) for k in _UNITS), key=len, reverse=True))

# ---------------------------------------------------------------------------
# date mentions
# ---------------------------------------------------------------------------

_ORD = r"(?:st|nd|rd|th|er|e|eme|o|º|ª|\.)?"
_DAY = r"(?<![\d.,/:])(\d{1,2})" + _ORD
_YEAR = r"(?:\s*,?\s*(?:de\s+|del\s+)?(\d{4})(?!\d))?"
_RE_DAY_MONTH = re.compile(
    _DAY + r"(?:\s*|-)(?:de\s+|of\s+|d'\s*)?(" + _MONTH_ALT + r")\b\.?" + _YEAR
)
_RE_MONTH_DAY = re.compile(
    r"\b(" + _MONTH_ALT + r")\b\.?\s*(?:the\s+)?(\d{1,2})(?:st|nd|rd|th)?(?!\d|[.:]\d)" + _YEAR
)
_RE_MONTH_RANGE = re.compile(
    r"\b(" + _MONTH_ALT + r")\b\.?\s*(\d{1,2})(?:st|nd|rd|th)?\s*"
    r"(?:-|–|—|to|through|thru|until|till)\s*(\d{1,2})(?:st|nd|rd|th)?(?!\d|[.:]\d)" + _YEAR
)
_RE_ISO = re.compile(r"(?<![\d.])(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?![\d])")
_RE_DOTTED = re.compile(
    r"(?<![\d.,:])(\d{1,2})\.\s?(\d{1,2})(?:\.(\d{4}|\d{2})|\.)?(?![\d]|\.\d|\s*(?:uhr|h\b|am\b|pm\b))"
)
_RE_SLASHED = re.compile(r"(?<![\d/.])(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?(?![\d/])")
_RE_DASHED = re.compile(r"(?<![\d-])(\d{1,2})-(\d{1,2})-(\d{4}|\d{2})(?![\d-])")
_RE_DASHED_SHORT = re.compile(
    r"(?<![\d-])(\d{1,2})-(\d{1,2})(?![\d-]|\.?\s*(?:" + _MONTH_ALT + r"|uhr|h)\b)"
)
_RE_DAY_ONLY = re.compile(
    r"\b(?:the\s+(\d{1,2})(?:st|nd|rd|th)|(?:den|zum|am)\s+(\d{1,2})\.|(?:le|el)\s+(\d{1,2})(?:er)?)"
    r"(?![\d.:]\d|\d|\s*(?:h\b|uhr|%|€|\$|:))"
)
_RE_WEEKDAY_DAY = re.compile(
    r"\b(?:" + _WEEKDAY_ALT + r")\b[\s,]+(?:the\s+|den\s+|le\s+|el\s+)?(\d{1,2})"
    r"(?:st|nd|rd|th|er|\.)?"
    r"(?![\d.:/-]?\d|\s*(?:h\b|uhr|:|(?:of\s+|de\s+)?(?:" + _MONTH_ALT + r")\b))"
)
_RE_WEEKDAY = re.compile(r"\b(" + _WEEKDAY_ALT + r")s?\b")
_RE_TOMORROW = re.compile(
    r"\b(?:the\s+day\s+after\s+tomorrow|ubermorgen|uebermorgen|apres[- ]demain"
    r"|pasado\s+manana|overmorgen)\b|\b(tomorrow|demain|manana|(?<!guten\s)(?<!goede\s)morgen)\b"
)
_RE_NEXT_WEEK = re.compile(
    # "bis Ende nächster Woche" / "end of next week" name no day: no date from them.
    r"(?<!ende\s)(?<!end\sof\s)"
    r"\b(?:next\s+week|nachste[nr]?\s+woche|naechste[nr]?\s+woche|kommende[nr]?\s+woche"
    r"|(?:la\s+)?semaine\s+prochaine|(?:la\s+)?(?:proxima\s+semana|semana\s+que\s+viene)"
    r"|volgende\s+week|komende\s+week)\b"
)
_RE_NEXT_MONTH = re.compile(
    r"\b(?:next\s+month|nachste[n]?\s+monat|naechste[n]?\s+monat|kommende[n]?\s+monat"
    r"|(?:le\s+)?mois\s+prochain|(?:el\s+)?(?:proximo\s+mes|mes\s+que\s+viene)"
    r"|volgende\s+maand)\b"
)
_RE_IN_N = re.compile(
    r"\b(?:in|within|dans|en|over|binnen)\s+(?:the\s+next\s+)?(" + _NUMBER_ALT + r")\s+("
    + _UNIT_ALT + r")\b"
)
_RE_FOR_N = re.compile(
    r"\b(?:for|fur|fuer|pendant|durante|voor|die\s+nachsten|die\s+naechsten"
    r"|in\s+den\s+nachsten|in\s+den\s+naechsten|in\s+the\s+next|over\s+the\s+next"
    r"|les\s+prochain(?:e?s)?|las\s+proximas|los\s+proximos|de\s+komende)\s+"
    r"(?:the\s+next\s+|les\s+|las\s+|los\s+|de\s+komende\s+|about\s+|ca\.\s*|etwa\s+)?("
    + _NUMBER_ALT + r")\s+(" + _UNIT_ALT + r")\b"
)

# ---------------------------------------------------------------------------
# cue words next to a date
# ---------------------------------------------------------------------------

_UNTIL = re.compile(
    r"\b(?:until|till|til|through|thru|up\s+to\s+and\s+including|to\s+and\s+including"
    r"|(?:bis|b\.)\s*(?:einschliesslich|einschl\.?|inklusive|inkl\.?|zum|zur|am|auf)?"
    r"|jusqu'?\s*(?:au|a|aux)|jusqu\s+(?:au|a)|inclus"
    r"|hasta(?:\s+el(?:\s+dia)?)?|tot\s+en\s+met|t/m|tot(?:\s+op)?"
    r"|after|nach\s+dem|apres\s+le|despues\s+del|na)(?=\s|$|\d)"
)
_BACK = re.compile(
    r"\b(?:back|return(?:ing|s)?|will\s+return|be\s+in\s+the\s+office|in\s+the\s+office"
    r"|available\s+again|reachable\s+again|reopen(?:s|ing)?|wieder\s+geoffnet|rouvr\w*"
    r"|zuruck|zurueck|wieder(?:\s+(?:da|im\s+buro|im\s+buero|erreichbar|verfugbar|im\s+hause"
    r"|anwesend|im\s+dienst|zuruck|zurueck|fur\s+sie\s+da))?"
    r"|de\s+retour|retour|je\s+reviendrai|reviendrai|serai\s+la|reprendrai|rentre|rentrerai"
    r"|reviens|serai\s+de\s+nouveau"
    r"|de\s+vuelta|de\s+regreso|regreso|regresare|regresar[eé]|volvere|vuelvo|me\s+reincorporo"
    r"|me\s+reincorporare"
    r"|terug|weer(?:\s+(?:aanwezig|bereikbaar|beschikbaar|op\s+kantoor))?)\b"
)
_FROM = re.compile(
    r"\b(?:from|as\s+of|starting|ab|vom|von|vanaf|van|a\s+partir\s+du|a\s+partir\s+de[l]?"
    r"|des\s+le|du|del|desde|dal)(?=\s|\d)"
)
_RETURN_WORDS = re.compile(
    r"(?<!nicht )(?<!not )(?<!niet )(?<!no )(?<!pas )(?<!kein )"
    r"\b(?:again|back|return|wieder|zuruck|zurueck|weer|terug|retour|de\s+nouveau|nuevo"
    r"|nuevamente|vuelta|regres\w*|reincorpor\w*|disponible|available|reachable|erreichbar"
    r"|respond\w*|answer\w*|beantwort\w*|bearbeit\w*|zur\s+verfugung"
    r"|repondr\w*|traite\w*|responder\w*|contestar\w*|beantwoord\w*|behandel\w*"
    r"|bereikbaar|aanwezig|in\s+the\s+office|im\s+buro)\b"
)
_RANGE_LINK = re.compile(
    r"(?:^\.?|\d\.?|\d(?:st|nd|rd|th|er)|\b(?:" + _MONTH_ALT + r")\.?)\s*"
    r"(?:-|–|—|to|bis|au|al|a|tot|through|thru|till|until|t/m|y)\s*(?:the\s+|el\s+|le\s+|zum\s+|en\s+met\s+)?$"
)
_RANGE_START_DAY = re.compile(
    r"(?:(?<![\d.,/:])(\d{1,2})(?:[./]\d{1,2}\.?|\.?\s*(?:de\s+)?(?:" + _MONTH_ALT + r")\b\.?"
    r"|\.|st|nd|rd|th|er)?\s*(?:-|–|—|to|bis|au|al|a|tot|through|thru"
    r"|till|until|t/m|y)"
    r"|\b(?:between|zwischen|entre|tussen)\s+(?:the\s+|dem\s+|le\s+|el\s+)?(\d{1,2})"
    r"(?:\.|st|nd|rd|th|er)?\s*(?:and|und|et|y|en))"
    r"\s*(?:the\s+|el\s+|le\s+|zum\s+|dem\s+|en\s+met\s+)?$"
)
_BREAK = re.compile(r"[\n!?;]|(?<!\d)\.\s+(?=[a-z])")  # "7. und" is no sentence end

_EUROPEAN_LANGS = ("de", "fr", "es", "nl", "it", "pt")
_DAY_FIRST_EN = ("en-gb", "en-ie", "en-au", "en-nz", "en-in", "en-za")
_NON_EN_HINTS = re.compile(
    r"\b(?:ich|bin|nicht|wieder|und|der|die|das|je|suis|le|la|les|et|bureau|estoy|el|los|y"
    r"|oficina|ik|ben|het|niet|kantoor|de|van|een)\b"
)
_EN_HINTS = re.compile(r"\b(?:i|am|the|and|office|will|be|until|back|on|my|out)\b")


class ReturnDate(NamedTuple):
    """The day the sender is back, the rule that read it and the words it read."""

    date: dt.date
    rule: str  # "back", "until", "range", "duration"
    evidence: str


class _Mention(NamedTuple):
    start: int
    end: int
    date: dt.date | None  # None: a day of an unknown year to be inferred later
    kind: str  # "point", "range_end", "period", "duration", "relative"


def _day_first(language: str, folded: str) -> bool:
    lang = (language or "").strip().lower().replace("_", "-")
    if lang:
        if lang.startswith(_DAY_FIRST_EN):
            return True
        return lang[:2] in _EUROPEAN_LANGS
    sample = folded[:2000]
    return len(_NON_EN_HINTS.findall(sample)) > len(_EN_HINTS.findall(sample))


def _make(year: int | None, month: int, day: int, today: dt.date) -> dt.date | None:
    """A calendar date; without a year the next occurrence on or after ``today``."""
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    if year is not None:
        if year < 100:
            year += 2000
        try:
            return dt.date(year, month, day)
        except ValueError:
            return None
    for y in (today.year, today.year + 1):
        try:
            d = dt.date(y, month, day)
        except ValueError:
            continue
        if d >= today:
            return d
        if (today - d).days <= 14:
            return None  # a stale notice left on: unsure rather than a year away
    return None


def _order(a: int, b: int, day_first: bool) -> tuple[int, int]:
    """(month, day) of two numbers by the documented rule."""
    if a > 12 >= b:
        return b, a
    if b > 12 >= a:
        return a, b
    return (b, a) if day_first else (a, b)


def _year(s: str | None) -> int | None:
    return int(s) if s else None


def _mentions(folded: str, today: dt.date, day_first: bool) -> list[_Mention]:
    found: list[tuple[int, int, dt.date | None, str]] = []

    def add(m: re.Match[str], d: dt.date | None, kind: str) -> None:
        if d is not None:
            found.append((m.start(), m.end(), d, kind))

    for m in _RE_MONTH_RANGE.finditer(folded):
        add(m, _make(_year(m.group(4)), _MONTHS[m.group(1)], int(m.group(3)), today), "range_end")
    for m in _RE_ISO.finditer(folded):
        add(m, _make(int(m.group(1)), int(m.group(2)), int(m.group(3)), today), "point")
    for m in _RE_DAY_MONTH.finditer(folded):
        add(m, _make(_year(m.group(3)), _MONTHS[m.group(2)], int(m.group(1)), today), "point")
    for m in _RE_MONTH_DAY.finditer(folded):
        add(m, _make(_year(m.group(3)), _MONTHS[m.group(1)], int(m.group(2)), today), "point")
    numeric = [_RE_DOTTED, _RE_SLASHED, _RE_DASHED] + ([_RE_DASHED_SHORT] if day_first else [])
    for rx in numeric:
        for m in rx.finditer(folded):
            if m.group(0) == "24/7":
                continue
            a, b = int(m.group(1)), int(m.group(2))
            year = _year(m.group(3)) if m.re.groups >= 3 else None
            month, day = _order(a, b, day_first or rx is _RE_DOTTED)
            d = _make(year, month, day, today)
            if a <= 12 and b <= 12 and a != b and not (day_first and rx is _RE_DOTTED):
                # both orders possible: a return is weeks away, not months
                other = _make(year, day, month, today)
                if other is not None and (other - today).days <= 90 and (
                    d is None or not 0 <= (d - today).days <= 90
                ):
                    d = other
            add(m, d, "point")
    for m in [*_RE_DAY_ONLY.finditer(folded), *_RE_WEEKDAY_DAY.finditer(folded)]:
        day = int(next(g for g in m.groups() if g))
        y, mo = today.year, today.month
        for _ in range(3):
            try:
                d = dt.date(y, mo, day)
            except ValueError:
                d = None
            if d is not None and d >= today:
                add(m, d, "point")
                break
            y, mo = (y + 1, 1) if mo == 12 else (y, mo + 1)
    for m in _RE_WEEKDAY.finditer(folded):
        ahead = (_WEEKDAYS[m.group(1)] - today.weekday()) % 7 or 7
        add(m, today + dt.timedelta(days=ahead), "point")
    for m in _RE_TOMORROW.finditer(folded):
        add(m, today + dt.timedelta(days=1 if m.group(1) else 2), "point")
    for m in _RE_NEXT_WEEK.finditer(folded):
        add(m, today + dt.timedelta(days=7 - today.weekday()), "period")
    for m in _RE_NEXT_MONTH.finditer(folded):
        first = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        add(m, first, "period")
    for rx, kind in ((_RE_FOR_N, "duration"), (_RE_IN_N, "relative")):
        for m in rx.finditer(folded):
            n = m.group(1)
            count = int(n) if n.isdigit() else _NUMBER_WORDS.get(n, 0)
            days = count * _UNITS[m.group(2)]
            if 0 < days <= 366:
                add(m, today + dt.timedelta(days=days), kind)

    # the longest reading of the same words wins ("the 18th of December")
    found.sort(key=lambda f: (-(f[1] - f[0]), f[0]))
    kept_by_start: dict[int, int] = {}
    starts: list[int] = []  # kept spans, sorted and disjoint: a bisect finds a clash
    kept: list[_Mention] = []
    for start, end, d, kind in found:
        k = bisect.bisect_right(starts, start)
        if (k and kept_by_start[starts[k - 1]] > start) or (k < len(starts) and starts[k] < end):
            continue
        bisect.insort(starts, start)
        kept_by_start[start] = end
        kept.append(_Mention(start, end, d, kind))
    kept.sort()
    # "Friday, 18 December": the weekday only names the date after it
    merged: list[_Mention] = []
    for i, m in enumerate(kept):
        nxt = kept[i + 1] if i + 1 < len(kept) else None
        if (
            nxt is not None
            and _RE_WEEKDAY.fullmatch(folded[m.start:m.end])
            and re.fullmatch(r"[\s,(]*(?:the|den|der|le|el|de)?[\s,(]*", folded[m.end:nxt.start])
        ):
            merged.append(_Mention(m.start, nxt.end, nxt.date, nxt.kind))
            kept[i + 1] = _Mention(-1, -1, None, "skip")
            continue
        if m.kind != "skip":
            merged.append(m)
    return merged


def _last(rx: re.Pattern[str], window: str) -> re.Match[str] | None:
    found = None
    for found in rx.finditer(window):  # noqa: B007 - the last one is the nearest
        continue
    return found


def _classify(
    folded: str, mentions: list[_Mention], i: int
) -> tuple[str, int] | None:
    """("back" | "until" | "range" | "duration", where its words start), or None."""
    m = mentions[i]
    if m.kind == "duration":
        return "duration", m.start
    lo = max(mentions[i - 1].end if i else 0, m.start - 60)
    window = folded[lo:m.start]
    cut = _last(_BREAK, window)
    if cut is not None:
        lo, window = lo + cut.end(), window[cut.end():]
    # a range's end: "10-18 Dec", "vom 10.12. bis 18.12.", "du 10 au 18 décembre"
    if m.kind == "range_end":
        return "range", m.start
    prev = mentions[i - 1] if i else None
    if prev is not None and prev.end >= m.start - 12 and _RANGE_LINK.search(
        folded[prev.start:m.start]
    ):
        return "range", prev.start
    start_day = _RANGE_START_DAY.search(window)
    if start_day is not None:
        return "range", lo + start_day.start()
    hits = [(h.start(), "until") for h in [_last(_UNTIL, window)] if h is not None]
    hits += [(h.start(), "back") for h in [_last(_BACK, window)] if h is not None]
    after = _after(folded, mentions, i)
    f = _last(_FROM, window)
    if f is not None and (
        _RETURN_WORDS.search(window, max(0, f.start() - 30)) or _RETURN_WORDS.search(after)
    ):
        hits.append((f.start(), "back"))
    if hits:
        pos, rule = max(hits)  # the nearest words decide
        return rule, lo + pos
    if _BACK.search(after[:40]):
        return "back", m.start
    return None


def _after(folded: str, mentions: list[_Mention], i: int) -> str:
    """The words after a date that still speak of it ("19.12. bin ich wieder da").

    Up to the end of the clause; words right before the next date are that
    date's own ("starting Dec 2 and returning Dec 9").
    """
    m = mentions[i]
    nxt = mentions[i + 1].start if i + 1 < len(mentions) else len(folded)
    after = folded[m.end:min(nxt, m.end + 60)]
    cut = _BREAK.search(after)
    if cut is not None:
        after = after[:cut.start()]
    elif i + 1 < len(mentions) and m.end + len(after) == nxt:
        after = after[:max(0, len(after) - 15)]
    return after


_PRIORITY = {"back": 3, "until": 2, "range": 2, "duration": 1}
_LONG_DIGITS = re.compile(r"\d{5,}")


def _evidence(text: str, start: int, end: int) -> str:
    phrase = " ".join(text[start:end].split()).rstrip(".,")
    return _LONG_DIGITS.sub("…", phrase)[:120]


def find_return(text: str, received: dt.datetime, language: str = "") -> ReturnDate | None:
    """The day the sender is back, with the rule and the phrase that said so."""
    if not isinstance(text, str) or not text or not isinstance(received, dt.datetime):
        return None
    if received.tzinfo is not None:
        received = received.astimezone(dt.UTC)
    today = received.date()
    text = text[:MAX_CHARS]
    folded = _fold(text)
    mentions = _mentions(folded, today, _day_first(language, folded))
    best: tuple[int, int, ReturnDate, bool] | None = None
    latest_until: dt.date | None = None
    for i, m in enumerate(mentions):
        if m.date is None:
            continue
        got = _classify(folded, mentions, i)
        if got is None:
            continue
        rule, cue_start = got
        day = m.date
        bare_weekday = bool(_RE_WEEKDAY.fullmatch(folded[m.start:m.end]))
        if rule in ("until", "range") and m.kind != "period":
            day = day + dt.timedelta(days=1)
        if not (today <= day <= today + dt.timedelta(days=366)):
            continue
        if rule in ("until", "range") and not bare_weekday:
            latest_until = max(day, latest_until or day)
        found = ReturnDate(day, rule, _evidence(text, cue_start, m.end))
        key = (_PRIORITY[rule], -m.start)
        if best is None or key > best[:2]:
            best = (key[0], key[1], found, bare_weekday)
    if best is None:
        return None
    found = best[2]
    if found.rule == "back" and best[3] and latest_until and found.date < latest_until:
        # "until Wednesday, 9 December. Back on Thursday": that Thursday follows the absence,
        # not the reply's day.
        ahead = (found.date.weekday() - latest_until.weekday()) % 7
        found = found._replace(date=latest_until + dt.timedelta(days=ahead))
    return found


def return_date(text: str, received: dt.datetime, language: str = "") -> dt.date | None:
    """The day an out-of-office sender is back, or None when the text is unsure."""
    got = find_return(text, received, language)
    return got.date if got else None


def return_date_evidence(
    text: str, received: dt.datetime, language: str = ""
) -> tuple[dt.date | None, str]:
    """(return day, the phrase that gave it, long digit runs scrubbed)."""
    got = find_return(text, received, language)
    return (got.date, got.evidence) if got else (None, "")


# ---------------------------------------------------------------------------
# contacts
# ---------------------------------------------------------------------------

_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+'-")
_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\.){1,8}[a-z]{2,24}", re.IGNORECASE)
_CONTACT_CUE = re.compile(
    r"\b(?:contact|write\s+to|(?:e-?mail|mail)(?!\s*:)|reach|ask|use|instead|forward|send|alternat\w*"
    r"|colleague|replace\w*|successor|deputy|cover\w*|in\s+charge|responsible|urgent\w*"
    r"|emergenc\w*|new\s+address|now\s+at|help|assist\w*|direct\w*|enquir\w*|inquir\w*"
    r"|taken\s+over|take\s+over|no\s+longer|left\s+the\s+company|send\s+(?:your\s+)?\w+\s+to"
    r"|nicht\s+mehr|richten|anfragen?|an\s+meine|plus\s+partie|adresser|envoyer|ya\s+no"
    r"|envie|envien|correos?|dirigir\w*|niet\s+meer|stuur|naar"
    r"|kontakt\w*|wenden|schreiben|kollegin|kollege|vertret\w*|ubernimmt|uebernimmt|dringend\w*"
    r"|eilig\w*|stattdessen|neue\s+adresse|erreichbar|zustandig\w*|zustaendig\w*|fragen\s+sie"
    r"|nachfolger\w*|ansprechpartner\w*"
    r"|contacter|contactez|ecrire|ecrivez|collegue|remplac\w*|urgence|a\s+la\s+place"
    r"|nouvelle\s+adresse|demandez|adressez"
    r"|contacta\w*|escrib\w*|companer[oa]|sustitut[oa]|urgen\w*|en\s+su\s+lugar"
    r"|nueva\s+direccion|pregunte|dirijase"
    r"|neem\s+contact|mail\s+naar|collega|vervang\w*|dringend\w*|in\s+plaats|nieuwe\s+adres"
    r"|vraag|bereikbaar)\b"
)
_HEADER_LINE = re.compile(
    r"\s*(?:from|to|cc|bcc|sent|von|an|gesendet|de|a|para|envoye|enviado|van|aan|verzonden"
    r"|reply-to|return-path)\s*:",
    re.IGNORECASE,
)
_MACHINE_LOCAL = re.compile(
    r"^(?:no-?reply|do-?not-?reply|donotreply|mailer-daemon|postmaster|bounces?)\b", re.IGNORECASE
)


def _addresses(text: str) -> Iterable[tuple[int, int, str]]:
    """Every address, found from each '@' outward (linear: no regex backtracking run)."""
    at = text.find("@")
    while at != -1:
        begin = at
        while begin > max(0, at - 64) and text[begin - 1] in _LOCAL_CHARS:
            begin -= 1
        right = _DOMAIN.match(text, at + 1, min(len(text), at + 256))
        if begin < at and right:
            local = text[begin:at].lstrip(".'-")
            start = at - len(local)
            if local and not local.endswith("."):
                yield start, right.end(), f"{local}@{right.group(0)}".lower()
        at = text.find("@", at + 1)


def contacts(text: str, exclude: str | Iterable[str] | None = None) -> list[str]:
    """Substitute or new addresses the reply offers, lower-cased, deduplicated, in order.

    An address counts when contact wording (contact, write to, mein Kollege,
    in dringenden Fällen, contactez, escriba a, neem contact op...) stands in its
    paragraph within 200 characters before it or 80 after. Header lines (From:,
    Von:, De :...), machine addresses (no-reply, mailer-daemon) and ``exclude``
    are left out.

    >>> contacts("In dringenden Fällen: Max.Muster@acme.example\\nVon: me@acme.example")
    ['max.muster@acme.example']
    """
    if not isinstance(text, str) or "@" not in text:
        return []
    if isinstance(exclude, str):
        excluded = {exclude.strip().lower()}
    else:
        excluded = {e.strip().lower() for e in exclude or () if isinstance(e, str)}
    text = text[:MAX_CONTACT_CHARS]
    folded = _fold(text)
    out: list[str] = []
    for start, end, address in _addresses(text):
        if address in excluded or address in out:
            continue
        if _MACHINE_LOCAL.match(address):
            continue
        line_start = text.rfind("\n", 0, start) + 1
        if _HEADER_LINE.match(text, line_start, start):
            continue
        before = folded[max(0, start - 200):start]
        para = before.rfind("\n\n")
        if para != -1:
            before = before[para:]
        after = folded[end:end + 80].split("\n\n", 1)[0]
        if _CONTACT_CUE.search(before) or _CONTACT_CUE.search(after):
            out.append(address)
    return out


# ---------------------------------------------------------------------------
# order and ticket numbers
# ---------------------------------------------------------------------------

_REF_WORDS = (
    r"order(?:\s+(?:number|no\.?|nr\.?|id|ref(?:erence)?))?|purchase\s+order|po"
    r"|ticket(?:\s+(?:number|no\.?|id|nr\.?))?|case(?:\s+(?:number|no\.?|id))?"
    r"|incident(?:\s+(?:number|no\.?|id))?|request(?:\s+(?:number|no\.?|id))?"
    r"|reference(?:\s+(?:number|no\.?))?|ref\.?|invoice(?:\s+(?:number|no\.?))?|tracking\s+number"
    r"|bestell(?:ung|nummer|nr\.?)(?:\s+(?:nummer|nr\.?))?|auftrag(?:snummer|snr\.?)?"
    r"|rechnung(?:snummer|snr\.?)?|vorgang(?:snummer|snr\.?)?|ticketnummer|fallnummer"
    r"|referenz(?:nummer)?|aktenzeichen|sendungsnummer"
    r"|(?:numero\s+de\s+)?commande|n°\s+de\s+commande|dossier|facture|reference|demande"
    r"|(?:numero\s+de\s+)?pedido|caso|incidencia|factura|referencia|solicitud"
    r"|bestelling|bestelnummer|ordernummer|zaak(?:nummer)?|factuurnummer|referentienummer"
    r"|klantnummer|kundennummer|customer\s+(?:number|no\.?|id)"
)
_RE_REF = re.compile(
    r"(?<![\w])(?:" + _REF_WORDS + r")\s*(?:(?:number|nummer|numero|no\.?|nr\.?|n°|nº|n\.|id"
    r"|#|:|-|\[)\s*){0,3}(?:is\s+|est\s+|ist\s+|es\s+|is:\s*)?"
    r"#?\s?([a-z]{0,6}[-/]?\d[\w/-]{1,30})",
    re.IGNORECASE,
)


def references(text: str) -> list[str]:
    """Order, ticket and case numbers the reply names, deduplicated, in order.

    The value must follow an order / ticket word (order #, Bestellnummer,
    commande n°, pedido, bestelling, Case:, ...) and hold at least three digits.

    >>> references("Bestellnummer 4711-0815, Case: 00123456, commande n° FR-2231")
    ['4711-0815', '00123456', 'FR-2231']
    """
    if not isinstance(text, str) or not text:
        return []
    out: list[str] = []
    for m in _RE_REF.finditer(_fold_keep_case(text[:MAX_CONTACT_CHARS])):
        value = m.group(1).strip("-/.,")
        if sum(c.isdigit() for c in value) < 3 or value in out:
            continue
        out.append(value)
    return out


def _fold_keep_case(text: str) -> str:
    """Accents dropped, case kept, same length: references keep their own letters."""
    return "".join(
        c if c.isascii() else (unicodedata.normalize("NFKD", c)[:1] or c) for c in text
    )
