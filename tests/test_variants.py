"""operators/variants.py: Thompson-sampling traffic splits per campaign, and when they publish."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from operators.variants import Allocation, VariantBandit

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_795_000_000_000  # epoch ms of the first reward in these tests
MIN = 60_000  # ms


def outcomes(rate: float, n: int, seed: int) -> list[bool]:
    """Deterministic synthetic engagement outcomes."""
    return (np.random.default_rng(seed).random(n) < rate).tolist()


def feed(bandit: VariantBandit, campaign: str, streams: dict[str, list[bool]],
         step_ms: int = 1_000) -> list[Allocation]:
    """Interleave the variants' outcomes (one reward each per step); the publications."""
    published = []
    for i, row in enumerate(zip(*streams.values(), strict=True)):
        for variant, engaged in zip(streams, row, strict=True):
            result = bandit.reward(campaign, variant, engaged, T0 + i * step_ms)
            if result is not None:
                published.append(result)
    return published


def assert_valid(allocation: Allocation, min_share: float = 0.05) -> None:
    shares = allocation.allocation
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(share >= min(min_share, 1 / len(shares)) - 1e-12 for share in shares.values())
    assert all(round(share, 4) == share for share in shares.values())


def test_clearly_better_variant_takes_the_traffic() -> None:
    bandit = VariantBandit()
    bandit.seen("c1", "A")
    bandit.seen("c1", "B")
    feed(bandit, "c1", {"A": outcomes(0.04, 3000, 1), "B": outcomes(0.12, 3000, 2)})
    result = bandit.allocation("c1", T0)
    assert result.allocation["B"] >= 0.9
    assert result.allocation["A"] >= 0.05
    assert result.allocation == {"A": 0.05, "B": 0.95}  # P(B best) ~ 1: A held at the floor
    assert result.pulls == {"A": 3000, "B": 3000}
    assert 0.03 < result.successes["A"] / 3000 < 0.05
    assert 0.10 < result.successes["B"] / 3000 < 0.14
    assert_valid(result)


def test_three_variants_the_best_wins_the_others_keep_exploring() -> None:
    bandit = VariantBandit()
    feed(bandit, "c1", {"A": outcomes(0.04, 3000, 1), "B": outcomes(0.12, 3000, 2),
                        "C": outcomes(0.05, 3000, 3)})
    result = bandit.allocation("c1", T0)
    assert result.allocation == {"A": 0.05, "B": 0.9, "C": 0.05}
    assert_valid(result)


def test_equal_variants_stay_near_half_and_half() -> None:
    # The same outcomes for both: identical evidence, so only the MC error separates them.
    same = outcomes(0.08, 2000, 3)
    bandit = VariantBandit()
    feed(bandit, "c1", {"A": same, "B": same})
    result = bandit.allocation("c1", T0)
    assert 0.2 <= result.allocation["A"] <= 0.8 and 0.2 <= result.allocation["B"] <= 0.8
    assert result.allocation["A"] == pytest.approx(0.5, abs=0.05)
    assert_valid(result)


def test_equal_rates_with_independent_noise_keep_every_variant_above_the_floor() -> None:
    # Under equal true rates P(best) follows the sampling noise (it is ~uniform over seeds),
    # so only the invariants hold for any one seed; the floor keeps evidence coming for both.
    for seed in range(5):
        bandit = VariantBandit()
        feed(bandit, "c1", {"A": outcomes(0.08, 2000, 10 + seed),
                            "B": outcomes(0.08, 2000, 20 + seed)})
        assert_valid(bandit.allocation("c1", T0))


def test_every_publication_sums_to_one_and_respects_the_floor() -> None:
    bandit = VariantBandit(min_share=0.1)
    for variant in "ABCD":
        bandit.seen("c1", variant)
    published = feed(bandit, "c1", {"A": outcomes(0.02, 1500, 1), "B": outcomes(0.2, 1500, 2),
                                    "C": outcomes(0.1, 1500, 3), "D": outcomes(0.1, 1500, 4)})
    assert len(published) > 3
    for allocation in published:
        assert_valid(allocation, min_share=0.1)
        assert set(allocation.allocation) == {"A", "B", "C", "D"}


def test_more_variants_than_floors_fit_get_equal_shares() -> None:
    bandit = VariantBandit()
    for i in range(25):  # 25 x 0.05 > 1
        bandit.reward("c1", f"v{i:02d}", i == 0, T0)
    result = bandit.allocation("c1", T0)
    assert len(result.allocation) == 25
    assert_valid(result)
    assert max(result.allocation.values()) - min(result.allocation.values()) <= 0.0001


def test_single_variant_gets_everything() -> None:
    bandit = VariantBandit()
    bandit.seen("solo", "only")
    assert bandit.allocation("solo", T0).allocation == {"only": 1.0}
    first = bandit.reward("solo", "only", True, T0)
    assert first == Allocation("solo", {"only": 1.0}, T0, {"only": 1}, {"only": 1})
    for i in range(100):
        assert bandit.reward("solo", "only", i % 3 == 0, T0 + i) is None  # nothing moves
    assert bandit.reward("solo", "only", False, T0 + 10 * MIN).allocation == {"only": 1.0}


def test_messages_without_campaign_or_variant_are_ignored() -> None:
    bandit = VariantBandit()
    bandit.seen("c1", "")
    bandit.seen("", "A")
    assert bandit.reward("c1", "", True, T0) is None
    assert bandit.reward("", "A", True, T0) is None
    assert bandit.campaigns() == []
    with pytest.raises(KeyError):
        bandit.allocation("c1", T0)


def test_seen_registers_arms_and_campaigns() -> None:
    bandit = VariantBandit()
    bandit.seen("c2", "B")
    bandit.seen("c1", "A")
    bandit.seen("c1", "B")
    bandit.seen("c1", "A")
    assert bandit.campaigns() == ["c1", "c2"]
    result = bandit.allocation("c1", T0)
    assert result.allocation == pytest.approx({"A": 0.5, "B": 0.5}, abs=0.05)  # priors only
    assert result.pulls == {"A": 0, "B": 0} and result.successes == {"A": 0, "B": 0}
    # A reward for a variant never seen delivered still counts (and registers it).
    bandit.reward("c1", "C", True, T0)
    assert set(bandit.allocation("c1", T0).allocation) == {"A", "B", "C"}


def test_the_split_does_not_depend_on_which_variant_came_first() -> None:
    one, two = VariantBandit(), VariantBandit()
    one.seen("c1", "A")
    one.seen("c1", "B")
    two.seen("c1", "B")
    two.seen("c1", "A")
    for bandit in (one, two):
        bandit.reward("c1", "A", True, T0)
        bandit.reward("c1", "B", False, T0)
    assert one.allocation("c1", T0) == two.allocation("c1", T0)


# --- publication throttling -------------------------------------------------------------

def test_first_reward_publishes_then_quiet_until_the_interval_passes() -> None:
    # A change threshold no move between near-equal variants can reach: only time publishes.
    bandit = VariantBandit(publish_min_interval_s=600, publish_min_change=0.5,
                           recheck_fraction=0.0)
    bandit.seen("c1", "A")
    bandit.seen("c1", "B")
    first = bandit.reward("c1", "A", False, T0)
    assert first is not None and first.as_of_ms == T0
    quiet = [bandit.reward("c1", "B", False, T0)]  # A and B now have equal evidence
    for i in range(1, 200):  # identical evidence for both: the split stays ~50/50
        quiet.append(bandit.reward("c1", "A", i % 10 == 0, T0 + i * 1_000))
        quiet.append(bandit.reward("c1", "B", i % 10 == 0, T0 + i * 1_000))
    assert quiet.count(None) == len(quiet)
    heartbeat = bandit.reward("c1", "A", False, T0 + 600_000)  # 10 min after the first
    assert heartbeat is not None and heartbeat.as_of_ms == T0 + 600_000
    assert bandit.reward("c1", "B", False, T0 + 600_001) is None  # the interval restarts


def test_a_share_move_publishes_before_the_interval() -> None:
    bandit = VariantBandit(publish_min_interval_s=3600, publish_min_change=0.05,
                           recheck_fraction=0.0, recheck_min_rewards=0)
    last = None
    published = 0
    for i in range(400):
        ts = T0 + i * 1_000  # 400 s in all: under the interval
        for variant, engaged in (("A", i % 25 == 0), ("B", i % 8 == 0)):
            before = last
            result = bandit.reward("c1", variant, engaged, ts)
            now = bandit.allocation("c1", ts)
            if before is None:
                assert result is not None  # the first reward
            else:
                moved = max(abs(now.allocation[v] - before.get(v, 0.0)) for v in now.allocation)
                # A publication exactly when some share moved enough: no more, no fewer.
                assert (result is not None) == (moved >= 0.05 - 1e-9), (i, moved)
            if result is not None:
                assert result == now
                last = result.allocation
                published += 1
    assert published >= 5
    assert last["B"] >= 0.9


def test_publications_with_the_default_recheck_are_never_spurious() -> None:
    bandit = VariantBandit()
    last: Allocation | None = None
    ts_of = {}
    for i, (a, b) in enumerate(zip(outcomes(0.04, 3000, 1), outcomes(0.12, 3000, 2),
                                   strict=True)):
        ts = T0 + i * 500
        for variant, engaged in (("A", a), ("B", b)):
            result = bandit.reward("c1", variant, engaged, ts)
            if result is None:
                continue
            if last is not None:
                moved = max(abs(result.allocation[v] - last.allocation.get(v, 0.0))
                            for v in result.allocation)
                assert moved >= 0.05 - 1e-9 or ts - last.as_of_ms >= 600_000
            ts_of[i] = ts
            last = result
    assert last is not None and last.allocation["B"] >= 0.9
    # Every 10 min of event time (1500 s of stream here) at least one publication.
    assert max(b - a for a, b in zip(sorted(ts_of.values()), sorted(ts_of.values())[1:],
                                     strict=False)) <= 600_000 + 500


def test_late_rewards_count_but_do_not_move_as_of_back() -> None:
    bandit = VariantBandit(publish_min_interval_s=60)
    bandit.reward("c1", "A", True, T0 + 10 * MIN)
    late = bandit.reward("c1", "A", False, T0 + 20 * MIN)
    assert late is not None and late.as_of_ms == T0 + 20 * MIN
    assert bandit.reward("c1", "A", False, T0) is None  # late: counted, no publication
    assert bandit.allocation("c1", T0 + 21 * MIN).pulls == {"A": 3}


# --- determinism and recovery -----------------------------------------------------------

def _run(bandit: VariantBandit) -> list[Allocation]:
    published = feed(bandit, "c1", {"A": outcomes(0.05, 800, 1), "B": outcomes(0.07, 800, 2)})
    published += feed(bandit, "c2", {"X": outcomes(0.1, 300, 3), "Y": outcomes(0.1, 300, 4),
                                     "Z": outcomes(0.02, 300, 5)})
    return published + [bandit.allocation(c, T0) for c in bandit.campaigns()]


def test_same_calls_same_seed_same_allocations() -> None:
    assert _run(VariantBandit(seed=5)) == _run(VariantBandit(seed=5))
    assert _run(VariantBandit(seed=5)) != _run(VariantBandit(seed=6))  # the seed matters


def test_allocation_is_an_inspection() -> None:
    bandit = VariantBandit()
    feed(bandit, "c1", {"A": outcomes(0.05, 300, 1), "B": outcomes(0.07, 300, 2)})
    first = bandit.allocation("c1", T0)
    assert [bandit.allocation("c1", T0) for _ in range(3)] == [first] * 3
    untouched = VariantBandit()
    feed(untouched, "c1", {"A": outcomes(0.05, 300, 1), "B": outcomes(0.07, 300, 2)})
    assert bandit.reward("c1", "A", True, T0 + MIN) == untouched.reward("c1", "A", True, T0 + MIN)


def test_same_allocation_in_another_process_whatever_its_hash_seed() -> None:
    code = ("from operators.variants import VariantBandit\n"
            "b = VariantBandit(draws=500)\n"
            "for i in range(40):\n"
            "    b.reward('spring-sale', 'A', i % 5 == 0, i)\n"
            "    b.reward('spring-sale', 'B', i % 4 == 0, i)\n"
            "print(b.allocation('spring-sale', 0).allocation)\n")
    results = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                              capture_output=True, text=True, timeout=120)
        results.add(done.stdout.strip())
    here = VariantBandit(draws=500)
    for i in range(40):
        here.reward("spring-sale", "A", i % 5 == 0, i)
        here.reward("spring-sale", "B", i % 4 == 0, i)
    assert results == {str(here.allocation("spring-sale", 0).allocation)}


def test_snapshot_restore_round_trip() -> None:
    bandit = VariantBandit(seed=3, min_share=0.1, publish_min_interval_s=120)
    _run(bandit)
    state = bandit.snapshot()
    restored = VariantBandit.restore(pickle.loads(pickle.dumps(state)))
    assert restored.campaigns() == bandit.campaigns()
    for campaign in bandit.campaigns():
        assert restored.allocation(campaign, T0) == bandit.allocation(campaign, T0)
    # Identical next steps, publications included.
    tail = {"A": outcomes(0.05, 300, 7), "B": outcomes(0.07, 300, 8)}
    assert feed(restored, "c1", tail) == feed(bandit, "c1", tail)
    assert restored.reward("c2", "Z", True, T0 + 60 * MIN) == bandit.reward(
        "c2", "Z", True, T0 + 60 * MIN)
    assert restored.snapshot() == bandit.snapshot()


def test_snapshot_is_a_copy() -> None:
    bandit = VariantBandit()
    bandit.reward("c1", "A", True, T0)
    state = bandit.snapshot()
    frozen = pickle.dumps(state)
    bandit.reward("c1", "A", True, T0 + MIN)
    bandit.reward("c1", "B", True, T0 + 20 * MIN)
    assert pickle.dumps(state) == frozen


def test_restore_refuses_an_unknown_version() -> None:
    state = VariantBandit().snapshot()
    state["version"] = 99
    with pytest.raises(ValueError, match="version"):
        VariantBandit.restore(state)


def test_a_new_variant_is_published_at_its_first_reward() -> None:
    bandit = VariantBandit()
    assert bandit.reward("c1", "A", True, T0).allocation == {"A": 1.0}
    bandit.seen("c1", "B")  # delivered, no label yet: nothing to publish
    second = bandit.reward("c1", "A", False, T0 + 1_000)
    assert second is not None and set(second.allocation) == {"A", "B"}
    assert second.pulls == {"A": 2, "B": 0}


def test_a_young_campaign_is_not_re_estimated_on_every_reward() -> None:
    bandit = VariantBandit(publish_min_interval_s=3600, recheck_min_rewards=20)
    estimates = []
    bandit._shares = lambda cid, campaign, real=bandit._shares: (  # type: ignore[method-assign]
        estimates.append(campaign.rewards) or real(cid, campaign))
    for i in range(200):
        bandit.reward("c1", "AB"[i % 2], i % 7 == 0, T0 + i * 1_000)
    assert estimates[:3] == [1, 2, 22] and len(estimates) <= 11
