"""Engagement personas per recipient, from the models' running scores.

Commercial engagement scoring sorts recipients into a handful of segments; we
derive ours from exponentially weighted averages of the engagement and
conversion scores each delivery got (alpha 0.2: about the last five messages):

- **loyal**: engages (score >= 0.25) and converts (>= 0.02);
- **browsing**: engages but rarely converts;
- **selective**: rarely engages but converts when it does;
- **dormant**: neither.

>>> book = PersonaBook()
>>> book.observe("r", 0.6, 0.05, 1000).persona
'loyal'
>>> book.observe("r", 0.0, 0.0, 2000) is None   # one cold message does not flip it
True
>>> book.forget("r"), book.forget("r"), "r" in book.recipients   # erasure (GDPR Art. 17)
(1, 0, False)
"""

from __future__ import annotations

from typing import NamedTuple

PERSONAS = ("dormant", "selective", "browsing", "loyal")


class Profile(NamedTuple):
    recipient_hash: str
    persona: str
    engagement_score: float
    conversion_score: float
    as_of_ms: int


class Scored(NamedTuple):
    """A delivery's scores, for its recipient's persona."""

    recipient_hash: str
    engagement: float
    conversion: float
    ts_ms: int


class PersonaBook:
    def __init__(self, alpha: float = 0.2, engaged_at: float = 0.25,
                 converts_at: float = 0.02):
        self.alpha, self.engaged_at, self.converts_at = alpha, engaged_at, converts_at
        self.recipients: dict[str, tuple[float, float, int]] = {}

    def observe(self, recipient: str, engagement: float, conversion: float,
                ts_ms: int) -> Profile | None:
        """Fold in one delivery's scores; a `Profile` when the persona changed."""
        old = self.recipients.get(recipient)
        if old is None:
            eng, conv, previous = engagement, conversion, -1
        else:
            a = self.alpha
            eng = old[0] + a * (engagement - old[0])
            conv = old[1] + a * (conversion - old[1])
            previous = old[2]
        persona = (2 if eng >= self.engaged_at else 0) + (1 if conv >= self.converts_at else 0)
        self.recipients[recipient] = (eng, conv, persona)
        if persona == previous:
            return None
        return Profile(recipient, PERSONAS[persona], round(eng, 6), round(conv, 6), ts_ms)

    def apply(self, items: list) -> list[Profile]:
        """`Scored` deliveries in order, and erasures (anything else with a
        `recipient_hash`); the profiles that changed.

        >>> from operators.analytics import ForgetRecipient
        >>> book = PersonaBook()
        >>> items = [Scored("r", 0.6, 0.05, 1000), ForgetRecipient(2000, "r"),
        ...          Scored("r", 0.0, 0.0, 3000)]
        >>> [p.persona for p in book.apply(items)]
        ['loyal', 'dormant']
        """
        profiles = []
        for item in items:
            if type(item) is Scored:
                profile = self.observe(item.recipient_hash, item.engagement, item.conversion,
                                       item.ts_ms)
                if profile is not None:
                    profiles.append(profile)
            else:
                self.forget(item.recipient_hash)
        return profiles

    def forget(self, recipient: str) -> int:
        """Drop everything held about one recipient (erasure); how many entries went."""
        return 1 if self.recipients.pop(recipient, None) is not None else 0
