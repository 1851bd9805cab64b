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
    digits = re.sub(r"\D", "", raw)
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
