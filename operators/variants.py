"""Variant selection per campaign: Thompson sampling over genuine engagement.

Each variant of a campaign (subject line, template, send-time strategy, ...) is
an arm of a Bernoulli bandit. Its posterior probability of genuine engagement
is a River `proba.Beta` (uniform prior, one update per delivered message whose
label resolved: engaged or not).

River's `bandit.ThompsonSampling` picks one arm per message by drawing once
from each arm's Beta and taking the best. Sending systems do not ask us per
message: they read a traffic split from the compacted `mailflow.variants`
topic. The split we publish is therefore the distribution of Thompson
sampling's choices, P(variant is best | evidence), estimated with `draws`
vectorised numpy draws from the same Beta posteriors. Every variant keeps at
least `min_share` of the traffic (evidence keeps coming in for all of them) and
shares are rounded to 4 decimals, the residual going to the largest share, so
they sum to 1.

Determinism: the Monte-Carlo generator is re-seeded on every estimate from
``(seed, zlib.crc32(campaign_id))`` (never Python's randomised ``hash``), so an
allocation is a pure function of the evidence: the same evidence gives the same
split in any process, `allocation()` is an inspection that changes nothing,
and MC noise alone can never trigger a publication.

Publication (what `reward()` returns): a campaign's first reward, then whenever
``publish_min_interval_s`` of event time has passed since its last publication,
or some share moved by at least ``publish_min_change`` from the published one.
An estimate costs ~165 µs, so between publications `reward()` re-estimates only
once the campaign has gathered ``recheck_fraction`` (1 %) more rewards than at
its last estimate (every reward while it has fewer than 100). Over 1 % more
rewards posterior means drift by ~0.1 of their standard error, which moves a
share by ~0.04 at most: a move of ``publish_min_change`` is published at most
1 % of the evidence late, and a campaign of n rewards is estimated
~100 + 100·ln(n / 100) times (plus once per interval). ``recheck_fraction=0``
re-estimates on every reward.

Cost, CPython 3.11, numpy 2, 2-core development VM (best of several runs):

- `allocation()` (2000 draws): ~165 µs for 2 variants, ~235 µs for 3, ~405 µs
  for 5, ~775 µs for 10; ~1 µs for a campaign with one variant (no draws);
- `reward()`: ~0.3 µs when it does not re-estimate, ~160 µs when it does;
  amortised over a 2-variant campaign of 6,000 rewards ~14 µs, of 100,000
  rewards ~1.6 µs.

>>> bandit = VariantBandit(seed=7)
>>> bandit.seen("spring-sale", "A")
>>> bandit.seen("spring-sale", "B")
>>> first = bandit.reward("spring-sale", "A", False, ts_ms=1_000)
>>> first.allocation, first.pulls  # exactly, P(Beta(1, 1) > Beta(1, 2)) = 2/3
({'A': 0.337, 'B': 0.663}, {'A': 1, 'B': 0})
>>> for i in range(300):  # B engages every 4th reader, A every 20th
...     _ = bandit.reward("spring-sale", "A", i % 20 == 0, ts_ms=2_000 + i)
...     _ = bandit.reward("spring-sale", "B", i % 4 == 0, ts_ms=2_000 + i)
>>> bandit.allocation("spring-sale", ts_ms=5_000)
Allocation(campaign_id='spring-sale', allocation={'A': 0.05, 'B': 0.95}, as_of_ms=5000, \
pulls={'A': 301, 'B': 300}, successes={'A': 15, 'B': 75})
>>> bandit.reward("", "A", True, ts_ms=5_000) is None  # no campaign: nothing to choose
True
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from river import proba

__all__ = ["Allocation", "VariantBandit"]

_SNAPSHOT_VERSION = 1
_DECIMALS = 4
_PRIOR = 1  # Beta(1, 1): uniform prior on every variant's engagement rate


class Allocation(NamedTuple):
    """A campaign's traffic split, as published on `mailflow.variants`, with its evidence."""

    campaign_id: str
    allocation: dict[str, float]  # variant -> share of traffic; sums to 1
    as_of_ms: int
    pulls: dict[str, int]  # rewards (resolved labels) observed per variant
    successes: dict[str, int]  # of which genuinely engaged


@dataclass(slots=True)
class _Campaign:
    arms: dict[str, proba.Beta] = field(default_factory=dict)
    rewards: int = 0  # total over arms
    checked_at: int = -1  # `rewards` at the last estimate made by reward()
    clock_ms: int = 0  # latest event time of a reward: published as_of never goes back
    published: dict[str, float] | None = None
    published_ms: int = 0


class VariantBandit:
    """Thompson sampling per campaign over its variants, rewarded by genuine engagement.

    Parameters: ``seed`` of the Monte-Carlo draws; ``draws`` per estimate;
    ``min_share`` floor of every variant's share (``1/k`` when k variants cannot
    all have it); ``publish_min_interval_s`` of event time after which a
    campaign's split is published again even if unchanged;
    ``publish_min_change`` of some share that triggers a publication earlier;
    ``recheck_fraction`` of new evidence, and at least ``recheck_min_rewards``
    new rewards, that make `reward` re-estimate (an estimate is 2000 draws: with
    the fraction alone a young campaign re-estimated on every reward).
    """

    def __init__(self, seed: int = 42, draws: int = 2000, min_share: float = 0.05,
                 publish_min_interval_s: int = 600, publish_min_change: float = 0.05,
                 recheck_fraction: float = 0.01, recheck_min_rewards: int = 20):
        if draws < 1:
            raise ValueError("draws must be at least 1")
        if not 0.0 <= min_share < 1.0:
            raise ValueError("min_share must be in [0, 1)")
        self.seed = seed
        self.draws = draws
        self.min_share = min_share
        self.publish_min_interval_s = publish_min_interval_s
        self.publish_min_change = publish_min_change
        self.recheck_fraction = recheck_fraction
        self.recheck_min_rewards = recheck_min_rewards
        self._campaigns: dict[str, _Campaign] = {}

    # --- the stream -------------------------------------------------------------------
    def seen(self, campaign_id: str, variant: str) -> None:
        """A message of this variant was delivered: the variant becomes an arm."""
        if campaign_id and variant:
            self._arm(campaign_id, variant)

    def reward(self, campaign_id: str, variant: str, engaged: bool,
               ts_ms: int) -> Allocation | None:
        """A delivered message's label resolved; the split to publish, if it is due."""
        if not (campaign_id and variant):
            return None
        campaign, arm = self._arm(campaign_id, variant)
        arm.update(bool(engaged))
        campaign.rewards += 1
        if ts_ms > campaign.clock_ms:
            campaign.clock_ms = ts_ms
        now = campaign.clock_ms
        due = (campaign.published is None or len(campaign.published) != len(campaign.arms)
               or now - campaign.published_ms >= self.publish_min_interval_s * 1000)
        if not due and (campaign.rewards - campaign.checked_at
                        < max(campaign.checked_at * self.recheck_fraction,
                              self.recheck_min_rewards)):
            return None
        campaign.checked_at = campaign.rewards
        shares = self._shares(campaign_id, campaign)
        if not due:
            published = campaign.published or {}
            moved = max(abs(share - published.get(variant, 0.0))
                        for variant, share in shares.items())
            # The rounding to 4 decimals must not decide: compare with a tolerance.
            if moved < self.publish_min_change - 1e-9:
                return None
        campaign.published, campaign.published_ms = shares, now
        return self._allocation(campaign_id, campaign, shares, now)

    # --- inspection -------------------------------------------------------------------
    def allocation(self, campaign_id: str, ts_ms: int) -> Allocation:
        """The campaign's split now (KeyError if no variant of it was ever seen)."""
        campaign = self._campaigns[campaign_id]
        return self._allocation(campaign_id, campaign, self._shares(campaign_id, campaign),
                                ts_ms)

    def campaigns(self) -> list[str]:
        """Campaigns with at least one variant, sorted."""
        return sorted(self._campaigns)

    # --- recovery ---------------------------------------------------------------------
    def snapshot(self) -> object:
        """A picklable copy of the whole state (plain dicts, lists and ints)."""
        return {
            "version": _SNAPSHOT_VERSION,
            "params": {"seed": self.seed, "draws": self.draws, "min_share": self.min_share,
                       "publish_min_interval_s": self.publish_min_interval_s,
                       "publish_min_change": self.publish_min_change,
                       "recheck_fraction": self.recheck_fraction,
                       "recheck_min_rewards": self.recheck_min_rewards},
            "campaigns": {
                campaign_id: {
                    # [successes, failures]: the counts, not River objects, so a
                    # snapshot survives River upgrades.
                    "arms": {variant: [arm.alpha - _PRIOR, arm.beta - _PRIOR]
                             for variant, arm in campaign.arms.items()},
                    "rewards": campaign.rewards, "checked_at": campaign.checked_at,
                    "clock_ms": campaign.clock_ms,
                    "published": None if campaign.published is None else dict(campaign.published),
                    "published_ms": campaign.published_ms,
                }
                for campaign_id, campaign in self._campaigns.items()
            },
        }

    @classmethod
    def restore(cls, state: Any) -> VariantBandit:
        """The bandit a `snapshot` was taken of."""
        if state.get("version") != _SNAPSHOT_VERSION:
            raise ValueError(f"unsupported VariantBandit snapshot version: "
                             f"{state.get('version')!r}")
        bandit = cls(**state["params"])
        for campaign_id, saved in state["campaigns"].items():
            campaign = _Campaign(rewards=saved["rewards"], checked_at=saved["checked_at"],
                                 clock_ms=saved["clock_ms"],
                                 published=None if saved["published"] is None
                                 else dict(saved["published"]),
                                 published_ms=saved["published_ms"])
            for variant, (successes, failures) in saved["arms"].items():
                arm = bandit._new_arm()
                arm.alpha += successes
                arm.beta += failures
                campaign.arms[variant] = arm
            bandit._campaigns[campaign_id] = campaign
        return bandit

    # --- internals --------------------------------------------------------------------
    def _new_arm(self) -> proba.Beta:
        # Uniform prior. The seed only spares River's unused per-arm RNG an os.urandom call:
        # draws come from numpy below.
        return proba.Beta(_PRIOR, _PRIOR, seed=self.seed)

    def _arm(self, campaign_id: str, variant: str) -> tuple[_Campaign, proba.Beta]:
        campaign = self._campaigns.get(campaign_id)
        if campaign is None:
            campaign = self._campaigns[campaign_id] = _Campaign()
        arm = campaign.arms.get(variant)
        if arm is None:
            arm = campaign.arms[variant] = self._new_arm()
        return campaign, arm

    def _shares(self, campaign_id: str, campaign: _Campaign) -> dict[str, float]:
        # Sorted, so the split depends on the evidence, not on which variant came first.
        variants = sorted(campaign.arms)
        k = len(variants)
        if k == 1:
            return {variants[0]: 1.0}
        alpha = np.array([campaign.arms[v].alpha for v in variants], dtype=float)
        beta = np.array([campaign.arms[v].beta for v in variants], dtype=float)
        rng = np.random.default_rng([self.seed, zlib.crc32(campaign_id.encode())])
        wins = np.bincount(rng.beta(alpha, beta, size=(self.draws, k)).argmax(axis=1),
                           minlength=k)
        return dict(zip(variants, _floored(wins / self.draws, self.min_share), strict=True))

    @staticmethod
    def _allocation(campaign_id: str, campaign: _Campaign, shares: dict[str, float],
                    ts_ms: int) -> Allocation:
        return Allocation(
            campaign_id, dict(shares), ts_ms,
            {v: campaign.arms[v].n_samples for v in shares},
            {v: campaign.arms[v].alpha - _PRIOR for v in shares})


def _floored(p: np.ndarray, min_share: float) -> list[float]:
    """Shares with every one >= min_share (others scaled down in proportion), 4 decimals, sum 1.

    >>> _floored(np.array([0.999, 0.001, 0.0]), 0.05)
    [0.9, 0.05, 0.05]
    >>> _floored(np.array([0.5, 0.5, 0.0]), 0.4)  # 3 x 0.4 > 1: equal shares
    [0.3334, 0.3333, 0.3333]
    """
    k = len(p)
    floor = min_share
    if floor * k >= 1.0:
        shares = [1.0 / k] * k
    else:
        fixed = np.zeros(k, dtype=bool)
        while True:  # water-filling: at most k rounds
            scaled = p * ((1.0 - floor * fixed.sum()) / p[~fixed].sum())
            low = ~fixed & (scaled < floor)
            if not low.any():
                break
            fixed |= low
        shares = np.where(fixed, floor, scaled).tolist()
    rounded = [round(share, _DECIMALS) for share in shares]
    largest = max(range(k), key=rounded.__getitem__)
    rounded[largest] = round(rounded[largest] + 1.0 - math.fsum(rounded), _DECIMALS)
    return rounded
