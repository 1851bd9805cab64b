"""Normalisation and hashing against the vendors' documented examples."""

from __future__ import annotations

import hashlib

import pytest

from lifecycle.activation.hashing import (
    hashed,
    normalize_country,
    normalize_email,
    normalize_name,
    normalize_phone,
    sha256,
)


def test_sha256_of_documented_email():
    # Meta's and Google's docs hash "test@example.com" to this lowercase hex digest.
    assert hashed("EMAIL", "  Test@Example.COM ") == (
        "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
    )


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        (" John.Doe@Example.com\t", "john.doe@example.com"),
        ("not-an-email", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_email(raw, want):
    assert normalize_email(raw) == want


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("+1 (650) 555-1212", "16505551212"),  # Meta's example: country code, digits only
        ("650-555-1212", "16505551212"),  # national number gets the default country code
        ("0044 20 7946 0958", "442079460958"),  # international prefix 00 dropped
        ("+48 600 700 800", "48600700800"),
        ("abc", None),
    ],
)
def test_normalize_phone(raw, want):
    assert normalize_phone(raw) == want


def test_names_and_country():
    assert normalize_name("  Mary-Ann O'Neil ") == "maryannoneil"
    assert normalize_name("Réka") == "réka"
    assert normalize_country(" US ") == "us"
    assert normalize_country("USA") is None


def test_never_hash_empty():
    assert sha256("") is None
    assert hashed("EMAIL", "   ") is None
    assert hashed("FN", "Ann") == hashlib.sha256(b"ann").hexdigest()


def test_google_email_rules_drop_gmail_dots_only():
    from lifecycle.activation.hashing import normalize_email_google

    assert normalize_email_google(" Jane.Doe@GMail.com ") == "janedoe@gmail.com"
    assert normalize_email_google("jane.doe@googlemail.com") == "janedoe@googlemail.com"
    assert normalize_email_google("Jane.Doe@Example.com") == "jane.doe@example.com"


def test_google_phone_is_e164_then_hashed():
    from lifecycle.activation.hashing import normalize_phone_e164

    # Google's Customer Match example: +1 800 555 0100 in E.164
    assert normalize_phone_e164("+1 (800) 555-0100") == "+18005550100"
    assert normalize_phone_e164("800-555-0100") == "+18005550100"
    assert hashlib.sha256(b"+18005550100").hexdigest() == sha256(
        normalize_phone_e164("+1 800 555 0100")
    )
    assert normalize_phone_e164("n/a") is None


def test_mailchimp_subscriber_hash_is_md5_of_lowercase_email():
    from lifecycle.activation.mailchimp import subscriber_hash

    # Mailchimp's documented example: the MD5 of "urist.mcvankab@freddiesjokes.com"
    assert subscriber_hash(" Urist.McVankab@FreddiesJokes.com") == (
        "62eeb292278cc15f5817cb78f7790b08"
    )
    assert subscriber_hash("a@b.co") == hashlib.md5(b"a@b.co").hexdigest()
