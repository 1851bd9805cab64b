"""Normalise identifiers per the vendors' rules, then SHA-256 them.

Meta and Google Ads document the same basics: emails trimmed and lowercased; phones as
digits with country code (Meta: no ``+``, no leading zeros; Google: E.164 then hash);
names lowercase letters only; country ISO-2 lowercase. Hash the normalised UTF-8 string
to lowercase hex. A value that normalises to nothing is ``None`` (never hash "").
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def sha256(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def normalize_email(email: str | None) -> str | None:
    if email is None:
        return None
    e = email.strip().lower()
    return e if _EMAIL.match(e) else None


def normalize_phone(phone: str | None, default_country_code: str = "1") -> str | None:
    """Digits only with country code, no ``+`` and no leading zeros (Meta's PHONE)."""
    if phone is None:
        return None
    raw = phone.strip()
    digits = re.sub(r"[^0-9]", "", raw)  # ASCII digits: r"\D" would keep e.g. Arabic-Indic
    if not digits:
        return None
    if raw.startswith("00"):
        digits = digits[2:]
    elif not raw.startswith("+") and len(digits) <= 10:
        digits = default_country_code + digits.lstrip("0")
    digits = digits.lstrip("0")
    return digits if 7 <= len(digits) <= 15 else None


def normalize_name(name: str | None) -> str | None:
    """Lowercase letters only; accents kept as UTF-8 letters (Meta FN/LN)."""
    if name is None:
        return None
    n = unicodedata.normalize("NFC", name.strip().lower())
    n = "".join(ch for ch in n if ch.isalpha())
    return n or None


def normalize_country(code: str | None) -> str | None:
    if code is None:
        return None
    c = code.strip().lower()
    return c if re.fullmatch(r"[a-z]{2}", c) else None


NORMALIZERS = {
    "EMAIL": normalize_email,
    "PHONE": normalize_phone,
    "FN": normalize_name,
    "LN": normalize_name,
    "COUNTRY": normalize_country,
}


def hashed(kind: str, value: str | None) -> str | None:
    """Normalise ``value`` as identifier ``kind`` (Meta schema name) and hash it."""
    return sha256(NORMALIZERS[kind](value))


_GMAIL = ("@gmail.com", "@googlemail.com")


def normalize_email_google(email: str | None) -> str | None:
    """Google Customer Match: trimmed, lowercased; dots before @gmail.com removed."""
    e = normalize_email(email)
    if e and e.endswith(_GMAIL):
        local, domain = e.split("@", 1)
        e = f"{local.replace('.', '')}@{domain}"
    return e


def normalize_phone_e164(phone: str | None, default_country_code: str = "1") -> str | None:
    """Google Customer Match: E.164 (``+`` then country code and number)."""
    digits = normalize_phone(phone, default_country_code)
    return f"+{digits}" if digits else None


#: audience column -> Meta schema name
META_SCHEMA = {
    "email": "EMAIL",
    "phone": "PHONE",
    "first_name": "FN",
    "last_name": "LN",
    "country_code": "COUNTRY",
}


def hash_column(kind: str, values) -> list[str | None]:
    """Normalise and hash a whole column as identifier ``kind`` (Meta schema name)."""
    normalise = NORMALIZERS[kind]
    return [sha256(normalise(v)) if isinstance(v, str) else None for v in values]


# ---- the same rules as SQL, for the engine's hot path ----------------------------------
#
# The functions above are the reference; the engine normalises and hashes a whole
# audience inside DuckDB with the macros below (one vectorised pass, no Python per row).
# tests/unit/test_hashing_sql.py checks both against hashes computed by hand.
#
# Python's str.strip() and re's ``\s`` mean str.isspace(); RE2's ``\s`` is ASCII only, so
# the set is spelled out (every code point Python 3.11 calls whitespace). Known divergence:
# DuckDB's lower() is Unicode's simple case mapping, Python's the full one with context,
# so a capital sigma at the end of a word (Python: final "ς", DuckDB: "σ") and a dotted
# capital I ("İ", Python: "i" + U+0307) lowercase differently; ASCII is identical.
_WS = (
    r"\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}"
    r"\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
)

#: ``create or replace temp macro`` statements, in dependency order (see :func:`install`).
MACROS = {
    # A macro argument is pasted in wherever it is named, and DuckDB does not share it
    # between CASE branches, so the costly parts come once: validation is one
    # regexp_full_match (a DFA scan, far cheaper than a capturing regexp_extract), and
    # the strip's regexp_replace runs only on values that start or end with whitespace.
    "lc_strip": (
        "s",
        f"case when regexp_matches(s, '^[{_WS}]|[{_WS}]$')"
        f" then regexp_replace(s, '^[{_WS}]+|[{_WS}]+$', '', 'g') else s end",
    ),
    "lc_email": (
        "s",
        f"case when regexp_full_match(lower(s),"
        f" '[{_WS}]*[^@{_WS}]+@[^@{_WS}]+\\.[^@{_WS}]+[{_WS}]*') then lc_strip(lower(s)) end",
    ),
    # Google Customer Match: dots removed from the local part of gmail/googlemail
    # addresses; ``e`` is an address lc_email already normalised (a column, not a call)
    "lc_gmail": (
        "e",
        "case when suffix(e, '@gmail.com') or suffix(e, '@googlemail.com')"
        " then replace(split_part(e, '@', 1), '.', '') || '@' || split_part(e, '@', 2)"
        " else e end",
    ),
    "lc_email_google": ("s", "list_transform([lc_email(s)], lambda e: lc_gmail(e))[1]"),
    # normalize_phone after the strip: ``raw`` stripped, ``d`` its ASCII digits
    "lc_phone_digits": (
        "raw, d, cc",
        "ltrim(case when starts_with(raw, '00') then substr(d, 3)"
        " when not starts_with(raw, '+') and length(d) <= 10 then cc || ltrim(d, '0')"
        " else d end, '0')",
    ),
    "lc_phone_cc": (
        "p, cc",
        "list_transform([lc_strip(p)], lambda raw: list_transform("
        "[regexp_replace(raw, '[^0-9]', '', 'g')], lambda d:"
        " case when length(lc_phone_digits(raw, d, cc)) between 7 and 15"
        " then lc_phone_digits(raw, d, cc) end)[1])[1]",
    ),
    "lc_phone": ("p", "lc_phone_cc(p, '1')"),
    "lc_phone_e164": ("p", "'+' || lc_phone(p)"),
    # letters only (str.isalpha() is Unicode category L), NFC; whitespace is no letter,
    # so no strip is needed
    "lc_name": ("s", "nullif(regexp_replace(nfc_normalize(lower(s)), '[^\\p{L}]', '', 'g'), '')"),
    "lc_country": (
        "s",
        f"case when regexp_full_match(lower(s), '[{_WS}]*[a-z]{{2}}[{_WS}]*')"
        " then lc_strip(lower(s)) end",
    ),
    # one JSON character as json.dumps writes it (ensure_ascii: \uXXXX beyond ASCII)
    "lc_json_char": (
        "c",
        "case when c = '\"' then '\\\"' when c = '\\' then '\\\\'"
        " when c = chr(10) then '\\n' when c = chr(13) then '\\r' when c = chr(9) then '\\t'"
        " when c = chr(8) then '\\b' when c = chr(12) then '\\f'"
        " when unicode(c) between 32 and 126 then c"
        " when unicode(c) > 65535 then printf('\\u%04x\\u%04x',"
        " 55296 + ((unicode(c) - 65536) >> 10), 56320 + ((unicode(c) - 65536) & 1023))"
        " else printf('\\u%04x', unicode(c)) end",
    ),
    # a JSON string literal, byte for byte what base.canonical (json.dumps) writes
    "lc_json_str": (
        "s",
        "'\"' || case when regexp_matches(s, '[^ -~]|[\"\\\\]')"
        " then array_to_string(list_transform(string_split(s, ''), lambda c: lc_json_char(c)), '')"
        " else s end || '\"'",
    ),
}

#: identifier kind (Meta schema name) -> SQL macro that normalises it
SQL_NORMALIZERS = {
    "EMAIL": "lc_email",
    "PHONE": "lc_phone",
    "FN": "lc_name",
    "LN": "lc_name",
    "COUNTRY": "lc_country",
}


def install(con) -> None:
    """Create the normalisation macros as temp macros on ``con`` (idempotent, cheap)."""
    for name, (params, body) in MACROS.items():
        con.execute(f"create or replace temp macro {name}({params}) as ({body})")


def sql_hashed(kind: str, column: str) -> str:
    """SQL: ``column`` normalised as identifier ``kind`` and SHA-256 hex (NULL: nothing)."""
    return f"sha256({SQL_NORMALIZERS[kind]}(({column})::varchar))"


def quoted(name: str) -> str:
    """A SQL identifier in double quotes (audience column names come from YAML)."""
    return '"' + name.replace('"', '""') + '"'
