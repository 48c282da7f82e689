"""Mailbox-provider keys and address splitting (schemas/mailbox_providers.py)."""

from __future__ import annotations

import pytest

from schemas.mailbox_providers import PROVIDERS, provider_key, split_address

ALIASES = [(alias, key) for key, aliases in PROVIDERS.items() for alias in aliases]


# --- provider_key ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "key"),
    [
        # the examples DESIGN.md gives for the throttle decision's `domain`
        ("googlemail.com", "gmail.com"),
        ("hotmail.com", "outlook.com"),
        ("live.com", "outlook.com"),
        ("msn.com", "outlook.com"),
        ("gmail.com", "gmail.com"),
        ("outlook.com", "outlook.com"),
    ],
)
def test_design_examples(domain: str, key: str) -> None:
    assert provider_key(domain) == key


@pytest.mark.parametrize(
    ("domain", "key"),
    [
        ("hotmail.co.uk", "outlook.com"),
        ("hotmail.de", "outlook.com"),
        ("live.de", "outlook.com"),
        ("outlook.de", "outlook.com"),
        ("passport.com", "outlook.com"),
        ("windowslive.com", "outlook.com"),
        ("yahoo.de", "yahoo.com"),
        ("yahoo.co.uk", "yahoo.com"),
        ("ymail.com", "yahoo.com"),
        ("rocketmail.com", "yahoo.com"),
        ("aol.com", "yahoo.com"),
        ("aol.de", "yahoo.com"),
        ("aim.com", "yahoo.com"),
        ("verizon.net", "yahoo.com"),
        ("me.com", "icloud.com"),
        ("mac.com", "icloud.com"),
        ("gmx.de", "gmx.net"),
        ("gmx.at", "gmx.net"),
        ("gmx.ch", "gmx.net"),
        ("gmx.com", "gmx.net"),
        ("mail.com", "gmx.net"),
        ("web.de", "web.de"),
        ("online.de", "online.de"),
        ("magenta.de", "t-online.de"),
        ("bluemail.ch", "bluewin.ch"),
        ("aon.at", "a1.net"),
        ("posteo.net", "posteo.de"),
        ("ya.ru", "yandex.ru"),
        ("bk.ru", "mail.ru"),
        ("foxmail.com", "qq.com"),
        ("126.com", "163.com"),
        ("yeah.net", "163.com"),
        ("wanadoo.fr", "orange.fr"),
        ("sbcglobal.net", "att.net"),
        ("bellsouth.net", "att.net"),
        ("pm.me", "proton.me"),
        ("protonmail.com", "proton.me"),
        ("o2.pl", "wp.pl"),
        ("email.cz", "seznam.cz"),
    ],
)
def test_known_aliases(domain: str, key: str) -> None:
    assert provider_key(domain) == key


def test_yahoo_japan_is_not_yahoo_inc() -> None:
    assert provider_key("yahoo.co.jp") == "yahoo.co.jp"


@pytest.mark.parametrize(("alias", "key"), ALIASES)
def test_every_alias_maps_to_its_key(alias: str, key: str) -> None:
    assert provider_key(alias) == key


def test_keys_are_their_own_first_alias() -> None:
    for key, aliases in PROVIDERS.items():
        assert aliases[0] == key
        assert provider_key(key) == key


def test_no_alias_belongs_to_two_providers() -> None:
    seen: dict[str, str] = {}
    for alias, key in ALIASES:
        assert alias not in seen, f"{alias} under {seen.get(alias)} and {key}"
        seen[alias] = key


def test_aliases_are_normalised_plausible_domains() -> None:
    for alias, _ in ALIASES:
        assert alias == alias.lower().strip()
        assert not alias.endswith(".")
        assert split_address(f"someone@{alias}") == ("someone", alias)


def test_covers_the_largest_providers() -> None:
    assert len(PROVIDERS) >= 25
    assert {
        "gmail.com", "outlook.com", "yahoo.com", "icloud.com", "gmx.net", "web.de",
        "t-online.de", "freenet.de", "bluewin.ch", "a1.net", "yandex.ru", "mail.ru",
        "qq.com", "163.com", "naver.com", "orange.fr", "comcast.net", "att.net",
    } <= PROVIDERS.keys()


@pytest.mark.parametrize(
    "domain", ["acme.example", "mail.acme.example", "gmail.co", "notgmail.com", "gmail.com.evil"]
)
def test_unknown_domain_is_its_own_key(domain: str) -> None:
    assert provider_key(domain) == domain


@pytest.mark.parametrize(
    ("domain", "key"),
    [
        ("GMail.COM", "gmail.com"),
        ("googlemail.com.", "gmail.com"),
        ("HOTMAIL.CO.UK.", "outlook.com"),
        ("Acme.Example.", "acme.example"),
        ("acme.example..", "acme.example"),
    ],
)
def test_case_and_trailing_dot_do_not_matter(domain: str, key: str) -> None:
    assert provider_key(domain) == key


def test_key_is_idempotent() -> None:
    for domain in ("googlemail.com", "Hotmail.de.", "acme.example", "AOL.com"):
        assert provider_key(provider_key(domain)) == provider_key(domain)


# --- split_address --------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "parts"),
    [
        ("jane@gmail.com", ("jane", "gmail.com")),
        ("Jane.Doe@GoogleMail.COM", ("Jane.Doe", "googlemail.com")),
        ("first.last+newsletter@hotmail.co.uk", ("first.last+newsletter", "hotmail.co.uk")),
        ("o'brien@sub.mail.example.org", ("o'brien", "sub.mail.example.org")),
        ("x_y-z@t-online.de", ("x_y-z", "t-online.de")),
        ("user@example.com.", ("user", "example.com")),
        ("müller@gmx.de", ("müller", "gmx.de")),
        ("info@bücher.de", ("info", "bücher.de")),
        ("a@xn--bcher-kva.de", ("a", "xn--bcher-kva.de")),
        ("a" * 64 + "@example.com", ("a" * 64, "example.com")),
    ],
)
def test_split_accepts_plausible_addresses(address: str, parts: tuple[str, str]) -> None:
    assert split_address(address) == parts


@pytest.mark.parametrize(
    "address",
    [
        "",
        "a@b",  # no dot in the domain
        "@x.com",  # empty local part
        "a@@x.com",
        "a@b@x.com",
        "plainaddress",
        "a@",
        "a@.",
        "a@.com",
        "a@x..com",
        "a@x.com..",
        "a@-.",
        "a b@x.com",
        "a@x .com",
        " a@x.com",
        "a@x.com ",
        "a\t@x.com",
        "a@x.com\n",
        "a\u00a0b@x.com",  # no-break space
        "a@x_y.com",
        "a@[192.0.2.1]",
        "Jane <jane@x.com>",
        "a" * 65 + "@example.com",  # local part too long
        "a@" + "b" * 249 + ".com",  # 255 chars in all
    ],
)
def test_split_rejects_implausible_addresses(address: str) -> None:
    assert split_address(address) is None


def test_split_length_limit_is_inclusive() -> None:
    address = "a@" + "b" * 248 + ".com"
    assert len(address) == 254
    assert split_address(address) == ("a", "b" * 248 + ".com")


def test_split_then_key() -> None:
    parts = split_address("Someone@HotMail.DE")
    assert parts is not None
    assert provider_key(parts[1]) == "outlook.com"
