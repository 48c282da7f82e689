"""The assignment service: who is in a control group (schemas/assignment.py, settings)."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from flows.settings import ConfigError, Settings, load_settings
from schemas.assignment import Assigner, Assignment
from schemas.hashing import DEV_HASH_KEY, RecipientHasher

KEY = b"test-key-for-assignment"
N = 100_000
HASHER = RecipientHasher(KEY)


def recipients(n: int = N, seed: int = 19) -> list[str]:
    """n distinct recipient hashes, from seeded addresses (the same in every run)."""
    rng = random.Random(seed)
    return [HASHER.recipient(f"r{i}-{rng.getrandbits(32):08x}@example.com") for i in range(n)]


HASHES = recipients()


def within(observed: int, n: int, p: float, z: float = 5.0) -> bool:
    """observed is within z binomial standard errors of n * p: at z = 5 a correct share
    fails by chance about once in 3.5 million runs, and the inputs are fixed anyway."""
    return abs(observed - n * p) <= z * math.sqrt(n * p * (1 - p)) + 1


def assigner(**kw) -> Assigner:
    args = {"key": KEY, "salt": "control-1", "version": 1, "global_share": 0.05,
            "flow_share": 0.1, "flow_shares": {"onboarding": 0.2, "winback": 0.0},
            "transactional": frozenset({"receipts"})}
    return Assigner(**{**args, **kw})


def test_the_same_inputs_give_the_same_answer_in_every_instance_and_process():
    a, b = assigner(), assigner()
    sample = HASHES[:200]
    mine = [tuple(a.assign(h, "onboarding")) for h in sample]
    assert mine == [tuple(b.assign(h, "onboarding")) for h in sample]
    code = ("import sys, json; from schemas.assignment import Assigner\n"
            "a = Assigner(sys.argv[1].encode(), 'control-1', 1, 0.05, 0.1, "
            "{'onboarding': 0.2, 'winback': 0.0}, frozenset({'receipts'}))\n"
            "print(json.dumps([list(a.assign(h, 'onboarding')) for h in sys.argv[2:]]))")
    out = subprocess.run([sys.executable, "-c", code, KEY.decode(), *sample],
                         capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345", "PATH": ""},
                         cwd=Path(__file__).resolve().parent.parent).stdout
    assert [tuple(x) for x in json.loads(out)] == mine


def test_a_pinned_answer_never_changes_between_releases():
    """The split is a contract: a code change that reshuffled it would silently mix the
    control and treated groups of a running measurement."""
    a = Assigner(b"pinned", "control-1", 1, 0.5, 0.5)
    h = RecipientHasher(b"pinned").recipient("ann@example.com")
    assert (a.draw(h, None), a.draw(h, "f")) == (0.9015488231689294, 0.24692226347679713)
    assert [a.assign(RecipientHasher(b"pinned").recipient(f"p{i}@example.com"), "f").group
            for i in range(12)] == PINNED


PINNED = ["flow", "global", "treated", "treated", "global", "global", "global", "treated",
          "treated", "treated", "global", "global"]


def test_the_global_share_is_hit_within_binomial_error():
    a = assigner()
    held = sum(a.assign(h).group == "global" for h in HASHES)
    assert within(held, N, 0.05)
    assert all(a.assign(h).group in ("global", "treated") for h in HASHES[:1000])


def test_flow_holdouts_hit_their_share_among_those_not_in_the_global_group():
    a = assigner()
    for flow, share in (("welcome", 0.1), ("onboarding", 0.2)):
        groups = [a.assign(h, flow).group for h in HASHES]
        outside_global = [g for g in groups if g != "global"]
        assert within(groups.count("global"), N, 0.05)
        assert within(outside_global.count("flow"), len(outside_global), share)
        assert a.expected_control_share(flow) == share
    assert a.expected_control_share("") == 0.05


def test_the_global_draw_is_the_same_for_every_flow_and_independent_of_the_flow_draws():
    a = assigner(global_share=0.3, flow_share=0.4, flow_shares={})
    in_global = [a.assign(h).holdout for h in HASHES]
    for flow in ("welcome", "winback2"):
        groups = [a.assign(h, flow).group for h in HASHES]
        assert [g == "global" for g in groups] == in_global  # one draw per recipient
    # independence: the flow draw's share is the same inside and outside the global group
    for inside in (True, False):
        draws = [a.draw(h, "welcome") < 0.4 for h, g in zip(HASHES, in_global, strict=True)
                 if g == inside]
        assert within(sum(draws), len(draws), 0.4)


def test_two_flows_draw_independently():
    a = assigner(global_share=0.0, flow_share=0.5, flow_shares={})
    x = [a.assign(h, "welcome").holdout for h in HASHES]
    y = [a.assign(h, "onboarding").holdout for h in HASHES]
    both = sum(p and q for p, q in zip(x, y, strict=True))
    assert within(both, N, 0.25)  # dependent draws would give ~0.5 or ~0
    assert within(sum(x), N, 0.5) and within(sum(y), N, 0.5)


def test_a_new_salt_or_version_starts_a_new_independent_control_group():
    old = [assigner(global_share=0.5).assign(h).holdout for h in HASHES]
    for new in (assigner(global_share=0.5, salt="control-2"),
                assigner(global_share=0.5, version=2)):
        now = [new.assign(h).holdout for h in HASHES]
        assert within(sum(p and q for p, q in zip(old, now, strict=True)), N, 0.25)
    assert assigner(salt="control-2").assign(HASHES[0]).version == "v1:control-2"
    assert assigner(version=2).assign(HASHES[0]).version == "v2:control-1"


def test_another_key_gives_another_split():
    a, b = assigner(global_share=0.5), assigner(global_share=0.5, key=b"another key")
    same = sum(a.assign(h).holdout == b.assign(h).holdout for h in HASHES)
    assert within(same, N, 0.5)


def test_transactional_flows_are_exempt_from_both_groups():
    a = assigner(global_share=0.5, flow_share=0.5)
    assert {a.assign(h, "receipts") for h in HASHES[:2000]} == {
        Assignment(h, "receipts", "treated", False, "v1:control-1") for h in HASHES[:2000]}
    assert any(a.assign(h, "welcome").group == "global" for h in HASHES[:100])
    assert a.expected_control_share("receipts") == 0.0


def test_overrides_replace_the_default_share_and_zero_exempts_a_flow_from_its_holdout():
    a = assigner(global_share=0.1, flow_share=0.3)
    groups = [a.assign(h, "winback").group for h in HASHES]
    assert "flow" not in groups and within(groups.count("global"), N, 0.1)
    assert a.expected_control_share("winback") == 0.0
    assert a.expected_control_share("onboarding") == 0.2
    assert a.expected_control_share("anything-else") == 0.3


def test_an_address_and_its_hash_give_the_same_answer():
    a = assigner(global_share=0.3, flow_share=0.5)
    for i in range(300):
        address = f"Person.{i}@Example.COM "
        h = HASHER.recipient(address)
        assert a.recipient_hash(address) == h
        assert a.assign(address, "welcome") == a.assign(h, "welcome")
        assert a.assign(address) == a.assign(h.upper())


def test_zero_shares_hold_nobody_out():
    a = assigner(global_share=0.0, flow_share=0.0, flow_shares={})
    assert not any(a.assign(h, "welcome").holdout for h in HASHES[:5000])


@pytest.mark.parametrize("kw, message", [
    ({"global_share": 1.0}, "global_share must be a share from 0 up to"),
    ({"flow_share": -0.1}, "flow_share must be"),
    ({"flow_share": float("nan")}, "flow_share must be"),
    ({"flow_shares": {"x": "0.1"}}, r"flow_shares\['x'\] must be"),
    ({"global_share": True}, "global_share must be"),
    ({"salt": ""}, "salt must be 1-128"),
    ({"salt": "a:b"}, "salt must be"),
    ({"version": 0}, "version must be"),
    ({"key": b""}, "MAILFLOW_HASH_KEY"),
])
def test_bad_shares_and_salts_are_refused_with_a_clear_message(kw, message):
    with pytest.raises(ValueError, match=message):
        assigner(**kw)


def test_an_empty_recipient_is_refused():
    with pytest.raises(ValueError, match="recipient"):
        assigner().assign("  ", "welcome")


def test_the_key_never_shows_in_its_repr():
    assert "test-key" not in repr(assigner()) and "v1:control-1" in repr(assigner())


# -- settings -------------------------------------------------------------------------

def test_the_settings_default_to_no_control_groups(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={})
    assert (s.holdout_share, s.global_control_share, s.holdout_salt, s.holdout_version,
            s.holdouts, s.transactional_flows) == (0.0, 0.0, "control-1", 1, {}, [])
    a = Assigner.from_settings(s, key=DEV_HASH_KEY)
    assert not any(a.assign(h, "welcome").holdout for h in HASHES[:1000])


def test_the_settings_come_from_the_file_and_the_environment(tmp_path):
    cfg = tmp_path / "m.toml"
    cfg.write_text('holdout_share = 0.1\nholdout_salt = "spring"\nholdout_version = 2\n'
                   'transactional_flows = ["receipts"]\n'
                   '[holdouts]\nonboarding = 0.2\n"shop.cart" = 0\n')
    env = {"MAILFLOW_GLOBAL_CONTROL_SHARE": "0.05", "MAILFLOW_HOLDOUT_SHARE": "0.15",
           "MAILFLOW_TRANSACTIONAL_FLOWS": "receipts, password-reset",
           "MAILFLOW_HASH_KEY": "k" * 32}
    s = load_settings(str(cfg), environ=env)
    assert (s.global_control_share, s.holdout_share, s.holdout_salt, s.holdout_version) == (
        0.05, 0.15, "spring", 2)
    assert s.holdouts == {"onboarding": 0.2, "shop.cart": 0}
    assert s.transactional_flows == ["receipts", "password-reset"]
    a = Assigner.from_settings(s)
    assert a.assign(HASHES[0]).version == "v2:spring"
    assert (a.expected_control_share(""), a.expected_control_share("welcome"),
            a.expected_control_share("onboarding"), a.expected_control_share("shop.cart"),
            a.expected_control_share("password-reset")) == (0.05, 0.15, 0.2, 0.0, 0.0)
    # keyed by MAILFLOW_HASH_KEY: the same as an assigner built with that key
    direct = Assigner(b"k" * 32, "spring", 2, 0.05, 0.15, {"onboarding": 0.2})
    assert all(a.assign(h, "welcome") == direct.assign(h, "welcome") for h in HASHES[:500])


@pytest.mark.parametrize("content, env, message", [
    ("holdout_share = 1.5", {}, r"holdout_share \(MAILFLOW_HOLDOUT_SHARE\) must be a share"),
    ("", {"MAILFLOW_GLOBAL_CONTROL_SHARE": "1"}, "MAILFLOW_GLOBAL_CONTROL_SHARE"),
    ("", {"MAILFLOW_HOLDOUT_SHARE": "lots"}, "MAILFLOW_HOLDOUT_SHARE: cannot use"),
    ("", {"MAILFLOW_HOLDOUT_SHARE": "nan"}, "must be a share"),
    ('[holdouts]\nonboarding = "10%"', {}, r"\[holdouts\] onboarding must be a share"),
    ("[holdouts]\nshop.cart = 0.1", {}, "quote a flow id with dots"),
    ('holdout_salt = "two words"', {}, "holdout_salt"),
    ("holdout_version = 0", {}, "holdout_version must be"),
])
def test_bad_control_group_settings_are_a_config_error(tmp_path, content, env, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(str(cfg), environ=env)


def test_from_settings_without_a_key_says_which_setting_is_missing():
    with pytest.raises(ValueError, match="MAILFLOW_HASH_KEY"):
        Assigner.from_settings(Settings())
