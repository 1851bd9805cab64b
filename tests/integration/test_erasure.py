"""Erasure in the warehouse (issue 10 item 6, contract B), over HTTP against the sandbox.

Two nights of a 2,000-contact world: between them HubSpot archives and deletes contacts
and Mailchimp archives and deletes members (sandbox/accounts.py). After the second
night every erased person is in ``ops.erasures`` as hashes only, and nowhere else: not
in a raw table, a model, the logs or dlt's files. ``lifecycle forget`` does the same at
once for one person. The oracle is the world's own account facts, hashed here.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from lifecycle.sandbox.accounts import accounts
from lifecycle.sandbox.expected import expected_counts
from lifecycle.sandbox.server import SandboxServer, connection_env, prepare
from lifecycle.sandbox.world import DAY, WorldConfig

ROOT = Path(__file__).resolve().parents[2]
DBT = str(Path(sys.executable).parent / "dbt")
NIGHT = "2026-07-01"
FIRST_NIGHT_DAYS_BEFORE = 120
HEX64 = set("0123456789abcdef")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def email_hash(email: str) -> str:
    return sha(email.strip().lower())


def run_dbt(warehouse: Path, *args: str) -> None:
    project = str(ROOT / "dbt_project")
    cmd = [DBT, *args, "--project-dir", project, "--profiles-dir", project]
    cmd += ["--target-path", str(warehouse.parent / "dbt_target")]
    cmd += ["--log-path", str(warehouse.parent / "dbt_logs"), "--vars", f"{{as_of: '{NIGHT}'}}"]
    env = {
        **os.environ,
        "LIFECYCLE_WAREHOUSE_PATH": str(warehouse),
        "LIFECYCLE_DBT_TARGET": "duckdb",
    }
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]


def before(values, ts: float) -> np.ndarray:
    return np.nan_to_num(np.asarray(values, dtype=float), nan=np.inf) < ts


def erased_people(world, t1: float, t2: float) -> dict[str, set[int]]:
    """Who the two nights at ``t1`` and ``t2`` can see erased, by origin, from the
    account facts alone: archived records are listed by the vendor; a deleted one is
    noticed when it was loaded the night before and is gone now."""
    acc = accounts(world)
    c = world.contacts
    hs = acc.hubspot
    p = hs.person.to_numpy()
    sub = c.subscriber_at.to_numpy()[p]
    arch = hs.archived_at.to_numpy()
    dele = hs.deleted_at.to_numpy()
    out = {}
    out["hubspot_archived"] = set(p[(before(arch, t1) & ~before(dele, t1) & (sub < t1))]) | set(
        p[before(arch, t2) & ~before(dele, t2) & (sub < t2)]
    )
    loaded = (sub < t1) & ~before(arch, t1) & ~before(dele, t1)
    out["hubspot_deleted"] = set(p[loaded & before(dele, t2)])
    m = acc.members
    mp = m.person.to_numpy()
    joined = m.joined_at.to_numpy()
    marc = m.archived_at.to_numpy()
    mdel = m.deleted_at.to_numpy()
    out["mailchimp_archived"] = set(mp[before(marc, t1) & (joined < t1) & ~before(mdel, t1)]) | set(
        mp[before(marc, t2) & (joined < t2) & ~before(mdel, t2)]
    )
    m_loaded = (joined < t1) & ~before(mdel, t1)
    out["mailchimp_deleted"] = set(mp[m_loaded & before(mdel, t2)])
    return out


def text_columns(con) -> list[tuple[str, str, str]]:
    return con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_catalog = current_database() and data_type in ('VARCHAR', 'JSON') "
        "order by 1, 2, 3"
    ).fetchall()


def holding(con, needles: set[str]) -> list[str]:
    """Every ``schema.table.column`` whose text holds one of ``needles`` (substring)."""
    if not needles:
        return []
    con.execute("create or replace temp table _needles (n varchar)")
    con.executemany("insert into _needles values (?)", [[n] for n in needles])
    hits = []
    for schema, table, column in text_columns(con):
        n = con.execute(
            f'select count(*) from "{schema}"."{table}" t, _needles '
            f'where contains(lower(cast(t."{column}" as varchar)), _needles.n)'
        ).fetchone()[0]
        if n:
            hits.append(f"{schema}.{table}.{column} ({n})")
    return hits


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory):
    """Night 1 at now - 120 days, night 2 at now: ingest, erase, dbt build (the second
    one incremental)."""
    from sources_support import set_clock

    from lifecycle.tasks import SOURCES, erase, ingest

    data = tmp_path_factory.mktemp("erasure")
    env = {
        "LIFECYCLE_DATA_DIR": str(data),
        "DLT_DATA_DIR": str(data / "dlt"),
        "LIFECYCLE_WAREHOUSE_PATH": str(data / "warehouse.duckdb"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    world = prepare(WorldConfig(contacts=2000, seed=9), data / "landing")
    t1 = float(world.now_ts - FIRST_NIGHT_DAYS_BEFORE * DAY)
    handler = _Capture()
    logging.getLogger().addHandler(handler)
    root_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.DEBUG)
    nights = []
    try:
        with SandboxServer(world) as srv:
            conn = connection_env(srv.base_url, data / "landing")
            saved.update({k: os.environ.get(k) for k in conn})
            os.environ.update(conn)
            for ts in (t1, float(world.now_ts)):
                set_clock(srv, ts)
                loaded = {s: ingest(s) for s in SOURCES}
                nights.append({"loaded": loaded, "erased": erase()})
                if ts == t1:
                    # night 1's models: the incremental ones keep their rows into night 2,
                    # so people erased on night 2 must leave them too
                    run_dbt(data / "warehouse.duckdb", "build")
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(root_level)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    warehouse = data / "warehouse.duckdb"
    run_dbt(warehouse, "build")
    return {
        "world": world,
        "t1": t1,
        "warehouse": warehouse,
        "data": data,
        "log": "\n".join(handler.lines),
        "nights": nights,
    }


def _plain(path: Path) -> bytes:
    """A file's bytes, gunzipped when it is gzip (dlt compresses its load files)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except OSError:
            return data
    return data


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def test_every_archived_or_deleted_person_is_recorded_by_hash_only(two_nights):
    world, warehouse = two_nights["world"], two_nights["warehouse"]
    want = erased_people(world, two_nights["t1"], float(world.now_ts))
    for origin, people in want.items():
        assert people, f"the world must hold {origin} records between the two nights"
    con = duckdb.connect(str(warehouse), read_only=True)
    rows = con.execute(
        "select erasure_id, origin, email_sha256, contact_id_sha256, status, requested_at "
        "from ops.erasures"
    ).fetchall()
    con.close()
    emails = world.contacts.email.to_numpy()
    ids = world.contacts.hubspot_id.to_numpy()
    got: dict[str, set[str]] = {}
    for erasure_id, origin, e_hash, c_hash, status, requested_at in rows:
        got.setdefault(origin, set()).add(e_hash)
        assert status == "recorded" and requested_at is not None
        for value in (erasure_id, e_hash, c_hash):
            assert value is None or set(value) <= HEX64, f"not a hash: {value!r}"
    everyone = set().union(*want.values())
    assert set().union(*got.values()) == {email_hash(emails[p]) for p in everyone}
    # a contact erased from Mailchimp or HubSpot carries both hashes when the CRM knows it
    for origin in ("hubspot_archived", "hubspot_deleted"):
        assert got[origin] == {email_hash(emails[p]) for p in want[origin]}
        con = duckdb.connect(str(warehouse), read_only=True)
        c_hashes = {
            r[0]
            for r in con.execute(
                "select contact_id_sha256 from ops.erasures where origin = ?", [origin]
            ).fetchall()
        }
        con.close()
        assert c_hashes == {sha(ids[p]) for p in want[origin]}


def test_erased_people_are_in_no_raw_table_no_model_and_no_log(two_nights):
    world, warehouse = two_nights["world"], two_nights["warehouse"]
    want = erased_people(world, two_nights["t1"], float(world.now_ts))
    people = set().union(*want.values())
    c = world.contacts
    emails = {c.email.to_numpy()[p].lower() for p in people}
    ids = {c.hubspot_id.to_numpy()[p] for p in people}
    users = {c.user_id.to_numpy()[p] for p in people}
    con = duckdb.connect(str(warehouse), read_only=True)
    assert holding(con, emails) == []
    assert holding(con, users) == []
    # ids are numbers that can occur inside other text: compare whole values
    id_hits = [
        f"{s}.{t}.{col}"
        for s, t, col in text_columns(con)
        if col in ("id", "contact_id", "record_key", "deciding_record_id")
        and con.execute(
            f'select count(*) from "{s}"."{t}" where cast("{col}" as varchar) in '
            f"(select unnest(?::varchar[]))",
            [sorted(ids)],
        ).fetchone()[0]
    ]
    assert id_hits == []
    n_contacts = con.execute("select count(*) from marts.dim_contacts").fetchone()[0]
    purged = con.execute("select sum(rows_deleted) from ops.erasure_purges").fetchone()[0]
    con.close()
    # the marts hold every active CRM contact except the erased
    hs = accounts(world).hubspot
    active = expected_counts(world, world.now_ts)["hubspot_contacts"]
    gone = hs.person.to_numpy()[
        before(hs.archived_at, world.now_ts) | before(hs.deleted_at, world.now_ts)
    ]
    assert n_contacts == active - len(people - set(gone))
    assert purged > 0
    log = two_nights["log"].lower()
    assert "erasure" in log
    assert [e for e in emails if e in log] == []
    # dlt keeps no copy of loaded records (their emails) in its pipeline folder
    leftovers = [
        str(f)
        for f in (two_nights["data"] / "dlt").rglob("*")
        if f.is_file() and any(e.encode() in _plain(f) for e in emails)
    ]
    assert leftovers == []


def test_a_wrong_portal_does_not_erase_everyone(two_nights, tmp_path, monkeypatch):
    """Thousands of contacts 'vanishing' at once (another portal's token in the
    connection) stop the night with a clear error instead of erasing them."""
    from lifecycle import erasure

    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(two_nights["warehouse"], copy)
    con = duckdb.connect(str(copy))
    con.execute(
        "insert into raw_hubspot.contacts "
        "(id, email, updated_at, created_at, _dlt_load_id, _dlt_id) "
        "select 'ghost-' || range, 'ghost' || range || '@example.com', now(), now(), "
        "'ghost', 'ghost-' || range from range(1000)"
    )
    world = two_nights["world"]
    with SandboxServer(world) as srv:
        for k, v in connection_env(srv.base_url, tmp_path / "landing").items():
            monkeypatch.setenv(k, v)
        before_n = con.execute("select count(*) from ops.erasures").fetchone()[0]
        with pytest.raises(erasure.ErasureGuardError, match="refusing to erase"):
            erasure.detect(con, "hubspot")
        after_n = con.execute(
            "select count(*) from ops.erasures where origin = 'hubspot_deleted'"
        ).fetchone()[0]
    con.close()
    assert before_n > 0 and after_n == len(
        erased_people(world, two_nights["t1"], float(world.now_ts))["hubspot_deleted"]
    )


def _forget(data: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "LIFECYCLE_DATA_DIR": str(data),
        "LIFECYCLE_WAREHOUSE_PATH": str(data / "warehouse.duckdb"),
        "LIFECYCLE_SERVING_PATH": str(data / "serving.duckdb"),
        "PYTHONPATH": str(ROOT / "plugins"),
    }
    return subprocess.run(
        [sys.executable, "-m", "lifecycle.cli", "forget", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _a_contact_everywhere(con) -> tuple[str, str]:
    """A contact in marts, an audience, Mailchimp and Segment (its id and email)."""
    return con.execute(
        """select c.contact_id, c.email from marts.dim_contacts c
           where c.contact_id in (select contact_id from audiences.aud_nurture
                                  union select contact_id from audiences.aud_vip
                                  union select contact_id from audiences.aud_welcome)
             and c.email in (select lower(trim(email_address)) from raw_mailchimp.members)
             and c.email in (select lower(trim(traits_email)) from raw_segment.events)
           order by c.contact_id limit 1"""
    ).fetchone()


@pytest.mark.parametrize("by", ["email", "contact_id"])
def test_forget_purges_the_warehouse_and_the_snapshot_at_once(two_nights, tmp_path, by):
    from lifecycle.warehouse import publish

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(two_nights["warehouse"], data / "warehouse.duckdb")
    os.environ["LIFECYCLE_DATA_DIR"] = str(data)
    try:
        os.environ["LIFECYCLE_WAREHOUSE_PATH"] = str(data / "warehouse.duckdb")
        os.environ["LIFECYCLE_SERVING_PATH"] = str(data / "serving.duckdb")
        publish(night=NIGHT, run_id="night")
    finally:
        for k in ("LIFECYCLE_WAREHOUSE_PATH", "LIFECYCLE_SERVING_PATH"):
            os.environ.pop(k, None)
        os.environ["LIFECYCLE_DATA_DIR"] = str(two_nights["data"])
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    contact_id, email = _a_contact_everywhere(con)
    user_ids = {
        r[0]
        for r in con.execute(
            "select distinct user_id from raw_segment.events where lower(trim(traits_email)) = ?",
            [email],
        ).fetchall()
    }
    erasures_before = con.execute("select count(*) from ops.erasures").fetchone()[0]
    con.close()
    assert user_ids
    shown = email.upper() + "  "  # as typed by a person: any case, stray spaces
    proc = (
        _forget(data, "--email", "-", stdin=shown + "\n")
        if by == "email"
        else _forget(data, "--contact-id", contact_id)
    )
    assert proc.returncode == 0, proc.stderr
    assert email not in (proc.stdout + proc.stderr).lower()
    assert "raw_hubspot.contacts" in proc.stdout and "marts.dim_contacts" in proc.stdout
    for path in (data / "warehouse.duckdb", data / "serving.duckdb"):
        # not a byte of the address is left in either file (the warehouse was rewritten)
        raw = path.read_bytes()
        assert email.encode() not in raw and email.upper().encode() not in raw, path
        con = duckdb.connect(str(path), read_only=True)
        assert holding(con, {email} | user_ids) == [], path
        hits = [
            f"{s}.{t}"
            for s, t, col in text_columns(con)
            if col == "contact_id"
            and con.execute(
                f'select count(*) from "{s}"."{t}" where "{col}" = ?', [contact_id]
            ).fetchone()[0]
        ]
        assert hits == [], path
        if path.name == "warehouse.duckdb":
            row = con.execute(
                "select origin, email_sha256, contact_id_sha256 from ops.erasures "
                "where origin = 'request'"
            ).fetchall()
            n = con.execute("select count(*) from ops.erasures").fetchone()[0]
            assert row == [("request", email_hash(email), sha(contact_id))]
            assert n == erasures_before + 1
        else:
            night = con.execute("select max(night)::varchar from ops.serving_snapshot").fetchone()
            assert night == (NIGHT,)
        con.close()
    # a second request for the same person changes nothing
    again = _forget(data, "--contact-id", contact_id)
    assert again.returncode == 0 and "no rows of this person" in again.stdout


def test_forget_needs_an_identifier_and_says_so():
    proc = subprocess.run(
        [sys.executable, "-m", "lifecycle.cli", "forget"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--email or --contact-id" in proc.stderr
