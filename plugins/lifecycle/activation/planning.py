"""Planning and guards: what one sync would send, and whether it may.

1. Guards that need no plan: the latest quality gate must not have failed; the audience
   table has its primary key and identifier columns; the key is unique.
2. Read the audience with the destination's consent applied: a row is sendable only when
   every purpose the destination declares is granted in ``marts.dim_contact_consent``
   (:mod:`lifecycle.activation.consent`); the destination turns rows into members.
3. Diff in DuckDB against ``ops.audience_membership`` (what this destination last
   accepted from us): adds, updates (payload hash changed; not in ``add_only``) and
   removes. A remove of a member whose required consent is no longer granted is a
   *consent removal*: sent in every mode, never held back by a rejection's backoff and
   never counted toward ``max_removal_pct``. Other removes are sent in ``mirror`` mode
   only. Members whose last rejection is still backing off, who were given up on, or
   who are inside a job the vendor has not finished, are *deferred*.
4. Guards on the plan: an audience that is empty but was not, and ordinary removals
   above ``max_removal_pct`` of the previous membership, abort before anything is sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from lifecycle.activation import consent, hashing, store
from lifecycle.activation.audiences import Sync
from lifecycle.activation.base import Destination, Member, SyncAborted

__all__ = ["Plan", "SyncAborted", "guard", "plan", "quality_gate"]


@dataclass
class Plan:
    audience_size: int
    sendable: int
    adds: list[Member] = field(default_factory=list)
    updates: list[Member] = field(default_factory=list)
    removes: list[Member] = field(default_factory=list)
    deferred: int = 0
    previous_size: int = 0
    without_consent: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def consent_removes(self) -> list[Member]:
        return [m for m in self.removes if m.cause == "consent"]

    @property
    def ordinary_removes(self) -> list[Member]:
        return [m for m in self.removes if m.cause != "consent"]


def quality_gate(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """``(status, detail)`` of the latest quality-gate run: pass, fail or unknown."""
    if not store.table_exists(con, "ops", "quality_results"):
        return "unknown", "ops.quality_results does not exist (no quality gate has run)"
    latest = con.execute(
        "select run_id from ops.quality_results order by checked_at desc limit 1"
    ).fetchall()
    if not latest:
        return "unknown", "ops.quality_results is empty (no quality gate has run)"
    failed = con.execute(
        "select check_name, offending_rows, description from ops.quality_results "
        "where run_id = ? and status = 'fail' order by check_name",
        [latest[0][0]],
    ).fetchall()
    if failed:
        detail = "; ".join(f"{c} ({n} offending rows: {d})" for c, n, d in failed)
        return "fail", f"quality gate run {latest[0][0]} failed: {detail}"
    return "pass", f"quality gate run {latest[0][0]} passed"


def _check_contract(con, sync: Sync) -> list[str]:
    """The audience table exists with its key and identifier columns."""
    where = f"{sync.audience} -> {sync.destination}"
    if not store.table_exists(con, "audiences", sync.model):
        raise SyncAborted(f"{where}: audience table audiences.{sync.model} does not exist")
    cols = store.columns(con, "audiences", sync.model)
    missing = [c for c in (sync.primary_key, *sync.identifiers) if c not in cols]
    if missing:
        raise SyncAborted(
            f"{where}: audiences.{sync.model} lacks column(s) {', '.join(missing)} "
            f"(primary key / identifiers declared in audiences.yml)"
        )
    return cols


def _read(con, sync: Sync, dest: Destination, where: str, cols: list[str]) -> tuple[str, bool]:
    """SQL of the sendable audience rows (``contact_id`` the primary key as text, plus a
    ``consent_<purpose>`` column per purpose), and whether consent applies.

    With consent, the flags per contact are the temp table ``plan_consent`` and a row is
    sendable only when every purpose the destination declares is granted.
    """
    table = f'audiences."{sync.model}"'
    pk = f'"{sync.primary_key}"'
    rest = "* exclude (contact_id)" if "contact_id" in cols else "*"
    if not dest.purposes:  # e.g. the CRM write-back: no marketing consent applies
        return f"(select {rest}, {pk}::varchar as contact_id from {table})", False
    try:
        flags = consent.flags(con, dest.purposes)
    except SyncAborted as exc:
        raise SyncAborted(f"{where}: {exc}") from None
    con.execute(f"create or replace temp table plan_consent as select * from {flags}")
    picked = ", ".join(f"f.{consent.column(p)}" for p in dest.purposes)
    rows = f"""(select a.{rest}, a.{pk}::varchar as contact_id, {picked}
                from {table} a join plan_consent f on f.contact_id = a.{pk}::varchar
                where f.all_granted)"""
    return rows, True


def _current(con, sync: Sync, dest: Destination, rows: str, p: Plan) -> str:
    """The sendable members, one per key (``contact_id, member_key, payload``); returns
    the temp table that holds them.

    Built inside DuckDB from the destination's :meth:`~Destination.members_sql` when it
    has one (normalise and hash the whole audience in one pass); otherwise the rows are
    read into pandas and given to :meth:`~Destination.members`.
    """
    sql = dest.members_sql(rows, sync)
    if sql is not None:
        hashing.install(con)
        con.execute(f"create or replace temp table plan_members as {sql}")
    else:
        frame = con.execute(f"select * from {rows}").df()
        members = dest.members(frame, sync)[["contact_id", "member_key", "payload"]]
        con.register("plan_members_frame", members)
        try:
            con.execute("create or replace temp table plan_members as from plan_members_frame")
        finally:
            con.unregister("plan_members_frame")
    total, distinct = con.execute(
        "select count(*), count(distinct member_key) from plan_members"
    ).fetchall()[0]
    p.sendable = int(distinct)
    dupes = int(total - distinct)
    if not dupes:
        return "plan_members"
    p.warnings.append(f"{dupes} rows share a member key with another row; sent once")
    # a key shared by several rows is sent once: the lowest contact id's (deterministic)
    con.execute(
        """create or replace temp table plan_current as
           select * from plan_members
           qualify row_number() over (partition by member_key order by contact_id) = 1"""
    )
    return "plan_current"


def plan(
    con: duckdb.DuckDBPyConnection, sync: Sync, dest: Destination, now: datetime | None = None
) -> Plan:
    """Current sendable members vs last accepted membership: adds, updates, removes."""
    now = now or store.now()
    where = f"{sync.audience} -> {sync.destination}"
    cols = _check_contract(con, sync)
    table = f'audiences."{sync.model}"'
    pk = f'"{sync.primary_key}"'
    total, distinct, nulls = con.execute(
        f"select count(*), count(distinct {pk}), count(*) - count({pk}) from {table}"
    ).fetchall()[0]
    if distinct != total:
        raise SyncAborted(
            f"{where}: primary key '{sync.primary_key}' is not unique in {sync.model} "
            f"({total} rows, {distinct} distinct keys, {nulls} null)"
        )
    p = Plan(audience_size=int(total), sendable=0)
    temps = ("plan_consent", "plan_members", "plan_current", "plan_changes")
    try:
        rows, has_consent = _read(con, sync, dest, where, cols)
        if has_consent:
            sendable_rows = con.execute(f"select count(*) from {rows}").fetchall()[0][0]
            p.without_consent = int(total) - int(sendable_rows)
        current = _current(con, sync, dest, rows, p)
        warn = getattr(dest, "warnings", None)
        if warn:
            p.warnings.extend(warn)
        _diff(con, sync, current, "plan_consent" if has_consent else None, p, now)
    finally:
        for name in temps:
            con.execute(f"drop table if exists {name}")
    return p


def _diff(con, sync: Sync, current: str, flags: str | None, p: Plan, now: datetime) -> None:
    """One join of the current members with what this destination last accepted."""
    membership, rejections = store.membership(con), store.rejections(con)
    params = [sync.audience, sync.destination]
    p.previous_size = con.execute(
        f"select count(*) from {membership} where audience = ? and destination = ?", params
    ).fetchall()[0][0]
    # only what changed leaves DuckDB: adds, updates (payload hash changed), removes; the
    # join reads keys and hashes only, the previous payloads of the changes come after
    kinds = ["m.member_key is null", "c.member_key is null"]
    if sync.mode != "add_only":
        kinds.append("md5(c.payload) is distinct from m.payload_hash")
    con.execute(
        f"""create or replace temp table plan_changes as
            with prev as (
                select member_key, contact_id, payload_hash from {membership}
                where audience = ? and destination = ?
            )
            select case when m.member_key is null then 'add'
                        when c.member_key is null then 'remove' else 'update' end as change,
                   coalesce(c.contact_id, m.contact_id) as contact_id,
                   coalesce(c.member_key, m.member_key) as member_key,
                   c.payload
            from {current} c full outer join prev m on m.member_key = c.member_key
            where {" or ".join(kinds)}""",
        params,
    )
    withdrawn = "(f.contact_id is not null and not f.all_granted)" if flags else "false"
    joined = f"left join {flags} f on f.contact_id = x.contact_id" if flags else ""
    changes = con.execute(
        f"""select x.change, x.contact_id, x.member_key, x.payload, m.payload as previous,
                   x.change = 'remove' and {withdrawn} as withdrawn
            from plan_changes x
            left join (
                select member_key, payload from {membership}
                where audience = ? and destination = ?
                  and member_key in (select member_key from plan_changes where change <> 'add')
            ) m on m.member_key = x.member_key
            {joined}""",
        params,
    ).df()
    if sync.mode != "mirror":  # only consent removals are sent outside mirror mode
        changes = changes[(changes.change != "remove") | changes.withdrawn.astype(bool)]
    # members whose last rejection is still backing off, or who were given up on
    held = {
        k
        for (k,) in con.execute(
            f"""select member_key from {rejections}
                where audience = ? and destination = ?
                  and (status = 'gave_up' or (status = 'pending' and next_attempt_at > ?))""",
            [*params, now],
        ).fetchall()
    }
    in_flight = store.in_flight(con, sync.audience, sync.destination)
    before = len(changes)
    if held or in_flight:
        key = changes.member_key
        # a consent removal never waits for a rejection's backoff
        keep = ~key.isin(in_flight) & (changes.withdrawn.astype(bool) | ~key.isin(held))
        changes = changes[keep]
    p.deferred = before - len(changes)
    adds = changes[changes.change == "add"]
    updates = changes[changes.change == "update"]
    removes = changes[changes.change == "remove"]
    p.adds = [
        Member(c, k, json.loads(pl))
        for c, k, pl in adds[["contact_id", "member_key", "payload"]].itertuples(index=False)
    ]
    p.updates = [
        Member(c, k, json.loads(pl), json.loads(pr) if pr else None)
        for c, k, pl, pr in updates[["contact_id", "member_key", "payload", "previous"]].itertuples(
            index=False
        )
    ]
    p.removes = [
        Member(
            c,
            k,
            json.loads(pr) if pr else {},
            json.loads(pr) if pr else None,
            "consent" if bool(w) else "left",
        )
        for c, k, pr, w in removes[
            ["contact_id", "member_key", "previous", "withdrawn"]
        ].itertuples(index=False)
    ]


def guard(sync: Sync, p: Plan) -> None:
    """Abort (raise :class:`SyncAborted`) on a plan that looks like broken data."""
    where = f"{sync.audience} -> {sync.destination}"
    only_withdrawals = bool(p.removes) and not p.ordinary_removes
    if (
        p.previous_size
        and not p.sendable
        and not sync.guards["allow_empty"]
        and not only_withdrawals
    ):
        raise SyncAborted(
            f"{where}: audience is empty ({p.audience_size} rows, 0 sendable) but "
            f"{p.previous_size} members were synced last time; refusing to empty it "
            f"(set guards.allow_empty: true to allow)"
        )
    ordinary = p.ordinary_removes
    if p.previous_size and ordinary:
        pct = 100.0 * len(ordinary) / p.previous_size
        if pct > sync.max_removal_pct:
            withdrawals = len(p.consent_removes)
            also = f"; {withdrawals} consent withdrawals are not counted" if withdrawals else ""
            raise SyncAborted(
                f"{where}: would remove {len(ordinary)} of {p.previous_size} members "
                f"({pct:.1f}% > {sync.max_removal_pct:g}% allowed by guards.max_removal_pct"
                f"{also})"
            )
