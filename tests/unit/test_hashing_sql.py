"""Identifiers normalised and SHA-256'd inside DuckDB, against hashes made by hand here.

The oracle never calls the code under test: each expected value is the normalised string
written out by hand from the vendors' rules, hashed with ``hashlib`` in this file.

- Meta Marketing API, "Customer File Custom Audiences", section "Hashing and Normalizing
  Data": email trimmed and lowercased; phone digits only with the country code, no ``+``
  and no leading zeros; first/last name lowercase letters only, special characters kept
  as UTF-8; country the ISO 3166-1 alpha-2 code in lowercase; SHA-256 as lowercase hex.
- Google Ads API, "Customer Match" ("Upload Customer Match data": normalise and hash
  user-provided data) and "Manage online click conversions" (enhanced conversions:
  email format): trim, lowercase, remove every dot before ``@gmail.com`` /
  ``@googlemail.com`` (only there; ``+`` tags are kept); phone in E.164, i.e. with the
  ``+``, then SHA-256.
- Mailchimp Marketing API, "Manage Subscribers with the Mailchimp API": the member id is
  the MD5 of the lowercased address (the address itself is sent in plain text).
"""

from __future__ import annotations

import hashlib
import json

import duckdb
import pandas as pd
import pytest

from lifecycle.activation import hashing
from lifecycle.activation.audiences import Sync
from lifecycle.activation.base import canonical
from lifecycle.activation.google_ads import GoogleAdsCustomerMatch
from lifecycle.activation.mailchimp import MailchimpAudience
from lifecycle.activation.meta import MetaCustomAudiences


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.fixture()
def con():
    c = duckdb.connect()
    hashing.install(c)
    yield c
    c.close()


def sql_one(con, expr: str, value):
    return con.execute(f"select {expr}", [value]).fetchall()[0][0]


# (raw input, normalised by hand per the docs above; None: nothing may be sent)
EMAILS = [
    ("  Test@Example.COM ", "test@example.com"),  # the documented example
    ("\tJohn.Doe@Example.com\n", "john.doe@example.com"),  # dots kept off Gmail
    ("\u00a0Ann+News@Example.org\u3000", "ann+news@example.org"),  # NBSP, ideographic space
    ("Jane.Doe+ads@GMail.com", "jane.doe+ads@gmail.com"),  # Meta keeps Gmail dots
    ("ÉLODIE@Exemple.fr", "élodie@exemple.fr"),  # unicode lowercased, kept as UTF-8
    ("not an email", None),
    ("two@@example.com", None),
    ("   ", None),
]
GOOGLE_EMAILS = [
    ("  Test@Example.COM ", "test@example.com"),
    ("Jane.Doe+ads@GMail.com", "janedoe+ads@gmail.com"),  # dots gone, the +tag stays
    (" j.o.h.n@googlemail.COM", "john@googlemail.com"),
    ("john.doe@gmail.com.au", "john.doe@gmail.com.au"),  # not a Gmail domain
    ("Mary.Ann@Example.com", "mary.ann@example.com"),
    ("nope", None),
]
PHONES = [  # (raw, Meta PHONE, Google E.164)
    ("+1 (650) 555-1212", "16505551212", "+16505551212"),
    ("650.555.1212", "16505551212", "+16505551212"),  # national: default country code 1
    ("(800) 555-0100", "18005550100", "+18005550100"),
    ("0044 20 7946 0958", "442079460958", "+442079460958"),  # 00 international prefix
    (" +48 600-700-800 ", "48600700800", "+48600700800"),
    ("call me", None, None),
    ("123", None, None),  # too short once the country code is added
]
NAMES = [
    ("  Mary-Ann ", "maryann"),
    ("O'Neil", "oneil"),
    ("RÉKA", "réka"),
    ("Re\u0301ka", "réka"),  # decomposed accent composed (NFC) before hashing
    ("Zoë 2nd", "zoënd"),
    ("--", None),
]
COUNTRIES = [(" US ", "us"), ("gb", "gb"), ("USA", None), ("u1", None)]


@pytest.mark.parametrize(("raw", "want"), EMAILS)
def test_meta_email_hash_in_duckdb(con, raw, want):
    assert sql_one(con, hashing.sql_hashed("EMAIL", "?"), raw) == (sha(want) if want else None)


def test_documented_email_hash_in_duckdb(con):
    assert sql_one(con, hashing.sql_hashed("EMAIL", "?"), "  Test@Example.COM ") == (
        "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
    )


@pytest.mark.parametrize(("raw", "want"), GOOGLE_EMAILS)
def test_google_email_hash_in_duckdb(con, raw, want):
    assert sql_one(con, "sha256(lc_email_google(?))", raw) == (sha(want) if want else None)


@pytest.mark.parametrize(("raw", "meta", "google"), PHONES)
def test_phone_hashes_in_duckdb(con, raw, meta, google):
    assert sql_one(con, hashing.sql_hashed("PHONE", "?"), raw) == (sha(meta) if meta else None)
    assert sql_one(con, "sha256(lc_phone_e164(?))", raw) == (sha(google) if google else None)


@pytest.mark.parametrize(("raw", "want"), NAMES)
def test_name_hash_in_duckdb(con, raw, want):
    for kind in ("FN", "LN"):
        assert sql_one(con, hashing.sql_hashed(kind, "?"), raw) == (sha(want) if want else None)


@pytest.mark.parametrize(("raw", "want"), COUNTRIES)
def test_country_hash_in_duckdb(con, raw, want):
    assert sql_one(con, hashing.sql_hashed("COUNTRY", "?"), raw) == (sha(want) if want else None)


def test_null_is_never_hashed(con):
    for kind in hashing.SQL_NORMALIZERS:
        assert sql_one(con, hashing.sql_hashed(kind, "?"), None) is None


def audience() -> pd.DataFrame:
    """One row per tricky input, in the shape the engine hands a destination."""
    rows = [
        ("1", "  Jane.Doe+ads@GMail.com ", "+1 (650) 555-1212", " RÉKA ", "O'Neil", " US "),
        ("2", "ÉLODIE@Exemple.fr", None, "Re\u0301ka", None, "fr"),
        ("3", None, "(800) 555-0100", "Ann", "Lee", "USA"),
        ("4", "not an email", "call me", "Ann", "Lee", "us"),
    ]
    frame = pd.DataFrame(
        rows, columns=["contact_id", "email", "phone", "first_name", "last_name", "country_code"]
    )
    frame["consent_ad_user_data"] = [True, True, True, True]
    frame["consent_ad_personalization"] = [True, False, True, True]
    return frame


def members(dest, sync: Sync, frame: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """contact_id -> (member_key, payload) from the destination's SQL, run in DuckDB."""
    con = duckdb.connect()
    hashing.install(con)
    con.register("rows", frame)
    got = con.execute(dest.members_sql("rows", sync)).fetchall()
    con.close()
    return {c: (k, p) for c, k, p in got}


def test_meta_members_built_in_duckdb_match_hand_hashes():
    ids = ("email", "phone", "first_name", "last_name", "country_code")
    sync = Sync("a", "aud_a", "contact_id", "meta", "mirror", {"audience_id": "1"}, ids)
    got = members(MetaCustomAudiences(), sync, audience())
    assert set(got) == {"1", "2", "3"}  # 4 has neither a valid email nor a valid phone
    assert got["1"][0] == sha("jane.doe+ads@gmail.com")
    assert json.loads(got["1"][1]) == {
        "EMAIL": sha("jane.doe+ads@gmail.com"),
        "PHONE": sha("16505551212"),
        "FN": sha("réka"),
        "LN": sha("oneil"),
        "COUNTRY": sha("us"),
    }
    assert json.loads(got["2"][1]) == {
        "EMAIL": sha("élodie@exemple.fr"),
        "FN": sha("réka"),
        "COUNTRY": sha("fr"),
    }
    assert got["3"][0] == sha("18005550100")  # no email: keyed by the phone
    assert json.loads(got["3"][1]) == {
        "PHONE": sha("18005550100"),
        "FN": sha("ann"),
        "LN": sha("lee"),
    }


def test_google_members_built_in_duckdb_match_hand_hashes():
    sync = Sync("a", "aud_a", "contact_id", "google_ads", "mirror", {}, ("email", "phone"))
    got = members(GoogleAdsCustomerMatch(), sync, audience())
    assert set(got) == {"1", "2", "3"}
    assert got["1"][0] == sha("janedoe+ads@gmail.com")
    assert json.loads(got["1"][1]) == {
        "hashedEmail": sha("janedoe+ads@gmail.com"),
        "hashedPhoneNumber": sha("+16505551212"),
        "consent": {"adUserData": "GRANTED", "adPersonalization": "GRANTED"},
    }
    assert json.loads(got["2"][1]) == {
        "hashedEmail": sha("élodie@exemple.fr"),
        "consent": {"adUserData": "GRANTED", "adPersonalization": "DENIED"},
    }
    assert got["3"][0] == sha("+18005550100")


def test_mailchimp_members_built_in_duckdb():
    sync = Sync("a", "aud_a", "contact_id", "mailchimp", "mirror", {}, ("email", "first_name"))
    frame = audience()
    frame.loc[1, "first_name"] = 'Zoë "Z" \\ 😀'  # quotes, backslash, beyond the BMP
    got = members(MailchimpAudience(), sync, frame)
    assert set(got) == {"1", "2"}
    assert got["1"][0] == hashlib.md5(b"jane.doe+ads@gmail.com").hexdigest()
    assert json.loads(got["1"][1]) == {
        "email_address": "jane.doe+ads@gmail.com",
        "merge_fields": {"FNAME": " RÉKA "},  # merge fields are sent as written
    }
    assert json.loads(got["2"][1]) == {
        "email_address": "élodie@exemple.fr",
        "merge_fields": {"FNAME": 'Zoë "Z" \\ 😀'},
    }


def test_payloads_built_in_duckdb_are_canonical_json():
    """The engine diffs md5(payload) from DuckDB against md5(canonical(payload)) stored
    after a send: the SQL text must be byte for byte what ``json.dumps`` writes."""
    frame = audience()
    frame.loc[0, "first_name"] = 'tab\there, new\nline, \x01, \x7f, é, 😀, "q" \\'
    cases = [
        (
            MetaCustomAudiences(),
            Sync("a", "m", "contact_id", "meta", "mirror", {"audience_id": "1"}, ("email",)),
        ),
        (
            GoogleAdsCustomerMatch(),
            Sync("a", "m", "contact_id", "google_ads", "mirror", {}, ("email", "phone")),
        ),
        (
            MailchimpAudience(),
            Sync("a", "m", "contact_id", "mailchimp", "mirror", {}, ("email", "first_name")),
        ),
    ]
    con = duckdb.connect()
    hashing.install(con)
    con.register("rows", frame)
    for dest, sync in cases:
        got = con.execute(
            f"select payload, md5(payload) from ({dest.members_sql('rows', sync)})"
        ).fetchall()
        assert got
        for payload, md5 in got:
            assert payload == canonical(json.loads(payload))
            assert md5 == hashlib.md5(canonical(json.loads(payload)).encode()).hexdigest()
    con.close()
