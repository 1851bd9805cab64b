"""Deterministic journey simulator with ground truth.

A world is a set of people who arrive on the website through a marketing channel,
identify themselves, receive email, move through the lifecycle (lead, MQL, SQL,
opportunity, customer, repeat, loyal, advocate), may lapse or churn, and leave
observable traces in three vendors: the CRM (HubSpot), web tracking (Segment) and
email (Mailchimp). Every step is drawn with numpy over whole arrays (never a Python
loop per person or event) so a million contacts generate in minutes.

The world is simulated past its ``now`` (by ``horizon_days``) so that ground truth
knows what happens next (who converts within 30 days), while the emulated vendors
only ever serve what happened before ``now``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

DAY = 86_400
#: Forward stages in order; lapsed and churned are states a customer falls into.
FORWARD_STAGES = (
    "awareness",
    "subscriber",
    "lead",
    "mql",
    "sql",
    "opportunity",
    "customer",
    "repeat_customer",
    "loyal",
    "advocate",
)
HUBSPOT_STAGE = {
    "subscriber": "subscriber",
    "lead": "lead",
    "mql": "marketingqualifiedlead",
    "sql": "salesqualifiedlead",
    "opportunity": "opportunity",
    "customer": "customer",
    "advocate": "evangelist",
}
CHANNELS = np.array(["organic_search", "paid_search", "paid_social", "email", "referral", "direct"])
CHANNEL_P = np.array([0.30, 0.20, 0.18, 0.07, 0.10, 0.15])
#: (utm_source, utm_medium) per channel; direct has none.
CHANNEL_UTM = {
    "organic_search": ("google", "organic"),
    "paid_search": ("google", "cpc"),
    "paid_social": ("facebook", "paid_social"),
    "email": ("newsletter", "email"),
    "referral": ("partner", "referral"),
    "direct": (None, None),
}
CHANNEL_ENGAGEMENT = np.array([0.1, 0.2, -0.2, 0.3, 0.4, 0.0])
INDUSTRIES = np.array(["software", "finance", "retail", "healthcare", "education", "manufacturing"])
INDUSTRY_FIT = np.array([0.8, 0.5, 0.2, 0.1, -0.6, -0.2])
SIZES = np.array(["1-10", "11-50", "51-200", "201-1000", "1001+"])
SIZE_EMPLOYEES = np.array([5, 30, 120, 500, 3000])
SIZE_FIT = np.array([-0.8, -0.1, 0.5, 0.7, 0.4])
TITLES = np.array(
    [
        "CEO",
        "VP Marketing",
        "Marketing Director",
        "Marketing Manager",
        "Marketing Specialist",
        "Developer",
        "Student",
    ]
)
TITLE_FIT = np.array([0.6, 0.9, 0.8, 0.5, 0.0, -0.3, -1.2])
TITLE_P = np.array([0.06, 0.08, 0.12, 0.22, 0.22, 0.18, 0.12])
COUNTRIES = np.array(["US", "GB", "DE", "PL", "HU", "FR", "CA", "AU", "BR", "IN"])
COUNTRY_P = np.array([0.34, 0.12, 0.1, 0.07, 0.05, 0.07, 0.07, 0.05, 0.06, 0.07])
FIRST_NAMES = np.array(
    [
        "Anna",
        "Ben",
        "Chloé",
        "Dawid",
        "Eszter",
        "Farid",
        "Grace",
        "Hugo",
        "Ilona",
        "Jonas",
        "Kasia",
        "Liam",
        "Maria",
        "Noah",
        "Olga",
        "Piotr",
        "Réka",
        "Sam",
    ]
)
LAST_NAMES = np.array(
    [
        "Smith",
        "Kowalski",
        "Nagy",
        "Müller",
        "Dubois",
        "Silva",
        "O'Brien",
        "Kumar",
        "Novak",
        "Tóth",
        "Garcia",
        "Lee",
        "Brown",
        "Wiśniewska",
        "Horváth",
        "Martin",
    ]
)
BROWSE_PAGES = np.array(
    [
        "/",
        "/blog/lifecycle-marketing",
        "/blog/lead-scoring",
        "/docs/getting-started",
        "/docs/api",
        "/product/automation",
        "/product/segments",
        "/customers",
    ]
)
INTENT_PAGES = np.array(["/pricing", "/pricing", "/demo", "/product/automation"])


@dataclass(frozen=True)
class WorldConfig:
    """What to simulate: size, randomness and the calendar."""

    contacts: int = 1_000
    seed: int = 42
    start: date = date(2025, 7, 1)
    #: The world's "now": vendors serve only what happened before midnight of this day.
    now: date = date(2026, 7, 1)
    #: How far past ``now`` the truth is simulated (for "converts within N days").
    horizon_days: int = 60
    lapse_after_days: int = 90
    churn_after_days: int = 180
    anonymous_visitors_ratio: float = 0.3
    campaign_every_days: int = 7
    token: str = field(default="sandbox-hubspot-token", repr=False)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["start"], d["now"] = self.start.isoformat(), self.now.isoformat()
        return d


def _epoch(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _ids(prefix: str, n: int, seed: int, start: int = 0) -> np.ndarray:
    """Stable opaque ids (16 hex digits) that do not reveal the row order.

    A keyed splitmix64 over ``start..start+n-1``: a bijection, so ids never collide
    within a prefix (blocks of a world take consecutive ranges), and vectorised (a
    million ids in a fraction of a second).
    """
    digest = hashlib.blake2b(f"{seed}:{prefix}".encode(), digest_size=8).digest()
    key = np.frombuffer(digest, dtype=np.uint64)[0]
    x = np.arange(start, start + n, dtype=np.uint64) + key
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    hexes = np.frombuffer(x.astype(">u8").tobytes().hex().encode(), dtype="S16").astype("U16")
    return np.char.add(prefix, hexes) if prefix else hexes


@dataclass
class World:
    """All tables of one simulated world (timestamps are int64 epoch seconds, NaN = never)."""

    config: WorldConfig
    companies: pd.DataFrame
    contacts: pd.DataFrame
    orders: pd.DataFrame
    deals: pd.DataFrame
    events: pd.DataFrame
    campaigns: pd.DataFrame
    email_activity: pd.DataFrame

    @property
    def now_ts(self) -> int:
        return _epoch(self.config.now)

    @property
    def start_ts(self) -> int:
        return _epoch(self.config.start)

    def stage_on(self, day: date) -> pd.Series:
        """True lifecycle stage of every person at the end of ``day`` (None before first visit)."""
        return true_stage_at(self, _epoch(day + timedelta(days=1)))


#: People are simulated in blocks of this many, each block from its own random stream
#: (the first continues the world's stream, so a world of one block is drawn exactly as
#: a single pass would). Memory then grows with the finished tables, not with the
#: working arrays of every event at once, and the world does not depend on the machine.
BLOCK_PEOPLE = 50_000


@dataclass(frozen=True)
class _Companies:
    ids: np.ndarray
    industry: np.ndarray
    size: np.ndarray
    country: np.ndarray
    domain: np.ndarray


@dataclass(frozen=True)
class _Offsets:
    """Rows already made by earlier blocks: where this block's ids start."""

    orders: int = 0
    deals: int = 0
    events: int = 0


def simulate(config: WorldConfig, progress: Callable[[int, int], None] | None = None) -> World:
    """Simulate a world. Same config, same world, byte for byte.

    ``progress(done, total)`` is called after each block of :data:`BLOCK_PEOPLE` people
    (a million contacts are 26 blocks).
    """
    rng = np.random.default_rng(config.seed)
    t0, now = _epoch(config.start), _epoch(config.now)
    t_end = now + config.horizon_days * DAY
    n_people = config.contacts + int(config.contacts * config.anonymous_visitors_ratio)

    # --- companies -------------------------------------------------------------------
    n_comp = max(1, config.contacts // 4)
    comp_industry = rng.integers(0, len(INDUSTRIES), n_comp)
    comp_size = rng.choice(len(SIZES), n_comp, p=[0.3, 0.3, 0.2, 0.12, 0.08])
    comp_country = rng.choice(len(COUNTRIES), n_comp, p=COUNTRY_P)
    comp_ids = np.arange(1, n_comp + 1) + 5_000_000
    companies = pd.DataFrame(
        {
            "company_id": comp_ids.astype(str),
            "name": [f"Company {i}" for i in range(n_comp)],
            "domain": [f"company{i}.example" for i in range(n_comp)],
            "industry": INDUSTRIES[comp_industry],
            "size_band": SIZES[comp_size],
            "numberofemployees": SIZE_EMPLOYEES[comp_size],
            "country": COUNTRIES[comp_country],
        }
    )

    comp = _Companies(comp_ids, comp_industry, comp_size, comp_country, companies.domain.to_numpy())
    campaigns = _campaigns(config, t0, t_end)

    parts: list[tuple[pd.DataFrame, ...]] = []
    first = _Offsets()
    for b, lo in enumerate(range(0, n_people, BLOCK_PEOPLE)):
        hi = min(n_people, lo + BLOCK_PEOPLE)
        block_rng = rng if b == 0 else np.random.default_rng([config.seed, b])
        part = _simulate_people(block_rng, config, comp, campaigns, lo, hi, first, t0, t_end)
        parts.append(part)
        _, orders, deals, events, _ = part
        first = _Offsets(
            first.orders + len(orders), first.deals + len(deals), first.events + len(events)
        )
        if progress is not None:
            progress(hi, n_people)
    contacts, orders, deals, events, activity = (
        _concat([part[i] for part in parts]) for i in range(5)
    )
    log.info(
        "simulated world: %d people (%d known), %d web events, %d email activities, %d orders",
        n_people,
        config.contacts,
        len(events),
        len(activity),
        len(orders),
    )
    world = World(config, companies, contacts, orders, deals, events, campaigns, activity)
    # issue 10: the accounts' own web events (consent banner), from sandbox/accounts.py
    from lifecycle.sandbox.accounts import with_account_events  # noqa: PLC0415

    return with_account_events(world)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack the blocks' frames; text columns stay text even in a block that has none."""
    frames = [_text_columns(f) for f in frames]
    if len(frames) == 1:
        return frames[0]
    # column by column, each taken out of the blocks as it is stacked: the blocks and
    # the world never both exist whole (a million contacts: 6 GB, not 12)
    columns = list(frames[0].columns)
    return pd.DataFrame(
        {c: pd.concat([f.pop(c) for f in frames], ignore_index=True) for c in columns}
    )


def _text_columns(df: pd.DataFrame) -> pd.DataFrame:
    # a column that is all None in one block (no identifies among anonymous visitors)
    # would otherwise be `object` there and turn the whole column into `object`
    obj = [c for c in df.columns if df[c].dtype == object]
    return df.astype(dict.fromkeys(obj, "str")) if obj else df


def _simulate_people(
    rng,
    config: WorldConfig,
    comp: _Companies,
    campaigns: pd.DataFrame,
    lo: int,
    hi: int,
    first: _Offsets,
    t0: int,
    t_end: int,
) -> tuple[pd.DataFrame, ...]:
    """People ``lo..hi-1`` of the world and everything they do.

    Inside a block a person is a position ``0..hi-lo-1``; the returned frames carry the
    world's person numbers.
    """
    n = hi - lo
    now = _epoch(config.now)
    company = rng.integers(0, len(comp.ids), n)
    title = rng.choice(len(TITLES), n, p=TITLE_P)
    channel = rng.choice(len(CHANNELS), n, p=CHANNEL_P)
    fit_z = (
        INDUSTRY_FIT[comp.industry[company]]
        + SIZE_FIT[comp.size[company]]
        + TITLE_FIT[title]
        + rng.normal(0, 0.35, n)
    )
    eng_z = rng.normal(0, 1, n) + CHANNEL_ENGAGEMENT[channel]
    first_seen = t0 + rng.uniform(0, 0.92, n) * (now - t0)
    # The first `contacts` people identify themselves; the rest stay anonymous forever.
    known = lo + np.arange(n) < config.contacts
    subscriber_at = np.where(known, first_seen + rng.exponential(2.0, n) * DAY, np.nan)

    def step(prev: np.ndarray, logit: np.ndarray, mean_days: float) -> np.ndarray:
        """Time of the next stage, NaN when the person never gets there."""
        reached = (~np.isnan(prev)) & (rng.random(n) < _sigmoid(logit))
        delay = rng.gamma(2.0, mean_days / 2.0, n) * DAY
        out = np.where(reached, prev + delay, np.nan)
        return np.where(out <= t_end, out, np.nan)

    lead_at = step(subscriber_at, 0.6 + 0.4 * fit_z + 0.9 * eng_z, 12)
    mql_at = step(lead_at, -0.2 + 1.2 * fit_z + 0.8 * eng_z, 15)
    sql_at = step(mql_at, 0.3 + 1.0 * fit_z + 0.5 * eng_z, 10)
    opportunity_at = step(sql_at, 0.8 + 0.6 * fit_z, 7)
    customer_at = step(opportunity_at, 0.2 + 0.9 * fit_z + 0.3 * eng_z, 20)

    # Orders: the first one closes the deal, then repeat purchases with gaps that let
    # some customers lapse (gap > lapse_after_days) and come back, or churn for good.
    is_cust = ~np.isnan(customer_at)
    cust_idx = np.flatnonzero(is_cust)
    loyalty = _sigmoid(0.2 + 0.8 * eng_z[cust_idx] + 0.4 * fit_z[cust_idx])
    n_orders = 1 + rng.geometric(1.0 - 0.85 * loyalty) - 1
    n_orders = np.minimum(n_orders, 40)
    o_person = np.repeat(cust_idx, n_orders)
    o_rank = np.arange(len(o_person)) - np.repeat(np.cumsum(n_orders) - n_orders, n_orders)
    gap = rng.exponential(np.repeat(25 + 60 * (1 - loyalty), n_orders)) * DAY
    gap[o_rank == 0] = 0.0
    o_time = customer_at[o_person] + pd.Series(gap).groupby(o_person).cumsum().to_numpy()
    size_mult = np.repeat(SIZE_EMPLOYEES[comp.size[company[cust_idx]]], n_orders) ** 0.35
    revenue = np.round(rng.lognormal(4.6, 0.5, len(o_person)) * size_mult, 2)
    keep = o_time <= t_end
    orders = pd.DataFrame(
        {
            "person": o_person[keep],
            "order_n": o_rank[keep] + 1,
            "ordered_at": o_time[keep],
            "revenue_usd": revenue[keep],
        }
    )
    orders["order_id"] = _ids("ord_", len(orders), config.seed, start=first.orders)

    # Advocates: loyal customers (4+ orders) who refer someone.
    fourth = orders.loc[orders.order_n == 4, ["person", "ordered_at"]]
    adv_p = rng.random(len(fourth)) < _sigmoid(-0.3 + eng_z[fourth.person.to_numpy()])
    advocate_at = np.full(n, np.nan)
    adv_time = fourth.ordered_at.to_numpy() + rng.exponential(15, len(fourth)) * DAY
    sel = adv_p & (adv_time <= t_end)
    advocate_at[fourth.person.to_numpy()[sel]] = adv_time[sel]

    # Email status: some subscribers unsubscribe, a few hard-bounce (cleaned).
    unsub_at = np.where(
        rng.random(n) < _sigmoid(-2.6 - 0.6 * eng_z),
        subscriber_at + rng.exponential(60, n) * DAY,
        np.nan,
    )
    cleaned_at = np.where(
        rng.random(n) < 0.015, subscriber_at + rng.exponential(30, n) * DAY, np.nan
    )
    machine_opener = rng.random(n) < 0.15
    devices = 1 + (rng.random(n) < 0.25)

    hubspot_id = (lo + np.arange(n) + 1_000_001).astype(str)
    user_id = np.char.add("usr_", _ids("", n, config.seed, start=lo).astype(str))
    anon_1 = _ids("a1-", n, config.seed, start=lo)
    anon_2 = _ids("a2-", n, config.seed, start=lo)
    first_name = FIRST_NAMES[rng.integers(0, len(FIRST_NAMES), n)]
    last = LAST_NAMES[rng.integers(0, len(LAST_NAMES), n)]
    email_local = np.char.add(
        np.char.add(np.char.lower(first_name.astype(str)), "."), (lo + np.arange(n)).astype(str)
    )
    domains = comp.domain[company]
    # Some people type their email with capitals and spaces: normalisation must cope.
    messy = rng.random(n) < 0.1
    email = np.char.add(np.char.add(email_local, "@"), domains.astype(str))
    email_typed = np.where(messy, np.char.add(np.char.upper(email), " "), email)

    contacts = pd.DataFrame(
        {
            "person": np.arange(n),
            "is_known": known,
            "hubspot_id": hubspot_id,
            "user_id": user_id,
            "anonymous_id": anon_1,
            "anonymous_id_2": np.where(devices == 2, anon_2, None),
            "email": email,
            "email_typed": email_typed,
            "firstname": first_name,
            "lastname": last,
            "phone": np.char.add("+1555", rng.integers(1_000_000, 9_999_999, n).astype(str)),
            "country": COUNTRIES[comp.country[company]],
            "jobtitle": TITLES[title],
            "company_id": comp.ids[company].astype(str),
            "channel": CHANNELS[channel],
            "fit_z": fit_z,
            "eng_z": eng_z,
            "first_seen_at": first_seen,
            "subscriber_at": subscriber_at,
            "lead_at": lead_at,
            "mql_at": mql_at,
            "sql_at": sql_at,
            "opportunity_at": opportunity_at,
            "customer_at": customer_at,
            "advocate_at": advocate_at,
            "unsubscribed_at": unsub_at,
            "cleaned_at": cleaned_at,
            "is_machine_opener": machine_opener,
            "ad_consent": rng.random(n) < 0.8,
        }
    )
    orders = orders.merge(contacts[["person", "user_id"]], on="person")

    deals = _deals(rng, contacts, orders, t_end, first.deals)
    events = _web_events(rng, config, contacts, orders, t0, t_end, first.events)
    activity = _email(rng, contacts, campaigns, t_end)
    for frame in (contacts, orders, deals, events, activity):
        frame["person"] += lo
    return contacts, orders, deals, events, activity


def _deals(
    rng, contacts: pd.DataFrame, orders: pd.DataFrame, t_end: float, first_id: int = 0
) -> pd.DataFrame:
    opp = contacts[contacts.opportunity_at.notna()]
    first_order = orders[orders.order_n == 1].set_index("person").revenue_usd
    won = opp.customer_at.notna().to_numpy()
    lost_at = opp.opportunity_at.to_numpy() + rng.gamma(2.0, 15.0, len(opp)) * DAY
    # A deal that is not won is lost after a while, unless still open at the horizon.
    lost = (~won) & (lost_at <= t_end)
    close = np.where(won, opp.customer_at.to_numpy(), np.where(lost, lost_at, np.nan))
    amount = first_order.reindex(opp.person).to_numpy()
    amount = np.where(np.isnan(amount), np.round(rng.lognormal(6, 0.5, len(opp)), 2), amount)
    return pd.DataFrame(
        {
            "deal_id": (first_id + np.arange(len(opp)) + 9_000_001).astype(str),
            "person": opp.person.to_numpy(),
            "hubspot_contact_id": opp.hubspot_id.to_numpy(),
            "createdate": opp.opportunity_at.to_numpy(),
            "closedate": close,
            "won_at": np.where(won, close, np.nan),
            "lost_at": np.where(lost, close, np.nan),
            "amount": amount,
        }
    )


def _web_events(rng, config, contacts, orders, t0, t_end, first_id: int = 0) -> pd.DataFrame:
    """Sessions of page views and track/identify events for every person."""
    n = len(contacts)
    eng = contacts.eng_z.to_numpy()
    first_seen = contacts.first_seen_at.to_numpy()
    sub_at = contacts.subscriber_at.to_numpy()
    life_end = np.full(n, float(t_end))

    # Browsing sessions across each person's life, the first one at first_seen.
    n_sess = 1 + rng.poisson(np.exp(0.9 + 0.5 * eng))
    s_person = np.repeat(np.arange(n), n_sess)
    s_rank = np.arange(len(s_person)) - np.repeat(np.cumsum(n_sess) - n_sess, n_sess)
    s_start = first_seen[s_person] + rng.random(len(s_person)) * (
        life_end[s_person] - first_seen[s_person]
    )
    s_start[s_rank == 0] = first_seen[s_person[s_rank == 0]]
    s_intent = np.zeros(len(s_person), dtype=bool)

    # Buying signals: sessions on pricing/demo pages in the days before each step.
    extra = []
    for col in ("mql_at", "sql_at", "opportunity_at", "customer_at"):
        t = contacts[col].to_numpy()
        has = np.flatnonzero(~np.isnan(t))
        k = 1 + rng.poisson(1.0, len(has))
        p = np.repeat(has, k)
        start = np.repeat(t[has], k) - rng.uniform(0.2, 12, len(p)) * DAY
        extra.append((p, np.maximum(start, first_seen[p])))
    for p, st in extra:
        s_person = np.concatenate([s_person, p])
        s_start = np.concatenate([s_start, st])
        s_intent = np.concatenate([s_intent, np.ones(len(p), dtype=bool)])
        s_rank = np.concatenate([s_rank, np.ones(len(p), dtype=np.int64)])
    n_s = len(s_person)

    # Page views within each session, two minutes apart on average.
    n_pv = 1 + rng.poisson(1.8, n_s)
    pv_sess = np.repeat(np.arange(n_s), n_pv)
    pv_rank = np.arange(len(pv_sess)) - np.repeat(np.cumsum(n_pv) - n_pv, n_pv)
    pv_gap = rng.exponential(120, len(pv_sess))
    pv_gap[pv_rank == 0] = 0
    pv_time = s_start[pv_sess] + pd.Series(pv_gap).groupby(pv_sess).cumsum().to_numpy()
    intent_pv = s_intent[pv_sess]
    # object arrays hold pointers to a few shared strings (fixed-width numpy strings would
    # cost 100 bytes per page view: gigabytes at a million contacts)
    path = np.where(
        intent_pv,
        INTENT_PAGES.astype(object)[rng.integers(0, len(INTENT_PAGES), len(pv_sess))],
        BROWSE_PAGES.astype(object)[rng.integers(0, len(BROWSE_PAGES), len(pv_sess))],
    )
    pv = pd.DataFrame(
        {
            "person": s_person[pv_sess],
            "ts": pv_time,
            "type": "page",
            "event": None,
            "path": path,
            "first_session": s_rank[pv_sess] == 0,
            "revenue": np.nan,
            "order_id": None,
        }
    )

    tracks = [pv]

    def track(col: str, name: str, path: str) -> None:
        t = contacts[col].to_numpy()
        has = np.flatnonzero(~np.isnan(t))
        tracks.append(
            pd.DataFrame(
                {
                    "person": has,
                    "ts": t[has],
                    "type": "track",
                    "event": name,
                    "path": path,
                    "first_session": False,
                    "revenue": np.nan,
                    "order_id": None,
                }
            )
        )

    track("subscriber_at", "Signed Up", "/signup")
    track("lead_at", "Form Submitted", "/ebook/lifecycle-guide")
    track("mql_at", "Demo Requested", "/demo")
    track("advocate_at", "Referral Sent", "/refer")
    tracks.append(
        pd.DataFrame(
            {
                "person": orders.person.to_numpy(),
                "ts": orders.ordered_at.to_numpy(),
                "type": "track",
                "event": "Order Completed",
                "path": "/checkout/complete",
                "first_session": False,
                "revenue": orders.revenue_usd.to_numpy(),
                "order_id": orders.order_id.to_numpy(),
            }
        )
    )
    # Checkout abandoners: started a checkout and did not buy.
    aband = np.flatnonzero((rng.random(n) < 0.06) & ~np.isnan(sub_at))
    a_t = sub_at[aband] + rng.uniform(0, 1, len(aband)) * (t_end - sub_at[aband])
    tracks.append(
        pd.DataFrame(
            {
                "person": aband,
                "ts": a_t,
                "type": "track",
                "event": "Checkout Started",
                "path": "/checkout",
                "first_session": False,
                "revenue": np.nan,
                "order_id": None,
            }
        )
    )
    # Identify on the first device at sign-up.
    known = np.flatnonzero(~np.isnan(sub_at))
    tracks.append(
        pd.DataFrame(
            {
                "person": known,
                "ts": sub_at[known] + 1,
                "type": "identify",
                "event": None,
                "path": "/signup",
                "first_session": False,
                "revenue": np.nan,
                "order_id": None,
            }
        )
    )
    ev = pd.concat(tracks, ignore_index=True)
    ev = ev[ev.ts < t_end]

    # Which device: second devices appear only after sign-up (a log-in links them).
    anon2 = contacts.anonymous_id_2.to_numpy()
    has2 = pd.notna(anon2[ev.person.to_numpy()])
    after_sub = ev.ts.to_numpy() > np.nan_to_num(sub_at[ev.person.to_numpy()], nan=np.inf) + DAY
    on_dev2 = has2 & after_sub & (rng.random(len(ev)) < 0.4) & (ev.type.to_numpy() == "page")
    ev["device"] = np.where(on_dev2, 2, 1)
    # A login identify on device 2 just before its first event there.
    d2 = ev[ev.device == 2].groupby("person", as_index=False).ts.min()
    login = pd.DataFrame(
        {
            "person": d2.person,
            "ts": d2.ts - 5,
            "type": "identify",
            "event": None,
            "path": "/login",
            "first_session": False,
            "revenue": np.nan,
            "order_id": None,
            "device": 2,
        }
    )
    ev = pd.concat([ev, login], ignore_index=True)
    ev = ev.sort_values(["ts", "person"], kind="stable").reset_index(drop=True)

    p = ev.person.to_numpy()
    ts = ev.ts.to_numpy()
    dev = ev.device.to_numpy()
    ident_dev1 = np.nan_to_num(sub_at[p], nan=np.inf)
    ident_dev2 = ev[ev.type == "identify"].query("device == 2").groupby("person").ts.min()
    ident_dev2 = ident_dev2.reindex(p).fillna(np.inf).to_numpy()
    identified = np.where(dev == 1, ts >= ident_dev1 + 1, ts >= ident_dev2)
    anon_id = np.where(dev == 1, contacts.anonymous_id.to_numpy()[p], anon2[p])
    first_sess = ev.first_session.to_numpy()
    utm_src = np.array([CHANNEL_UTM[c][0] for c in CHANNELS], dtype=object)
    utm_med = np.array([CHANNEL_UTM[c][1] for c in CHANNELS], dtype=object)
    utm_camp = np.array([f"spring_{c}" for c in CHANNELS], dtype=object)
    ch_idx = pd.Categorical(contacts.channel, categories=CHANNELS).codes[p]
    # Later sessions mostly come from email or direct; the first carries the channel.
    src = np.where(first_sess, utm_src[ch_idx], None)
    med = np.where(first_sess, utm_med[ch_idx], None)
    has_utm = pd.notna(src)
    camp = np.where(first_sess & has_utm, utm_camp[ch_idx], None)
    ev_ids = _ids("msg-", len(ev), config.seed, start=first_id)
    return pd.DataFrame(
        {
            "message_id": ev_ids,
            "type": ev.type.to_numpy(),
            "event": ev.event.to_numpy(),
            "anonymous_id": anon_id,
            "user_id": np.where(identified, contacts.user_id.to_numpy()[p], None),
            "person": p,
            "ts": ts,
            "path": ev.path.to_numpy(),
            "utm_source": src,
            "utm_medium": med,
            "utm_campaign": camp,
            "email": np.where(
                ev.type.to_numpy() == "identify", contacts.email_typed.to_numpy()[p], None
            ),
            "revenue": ev.revenue.to_numpy(),
            "order_id": ev.order_id.to_numpy(),
        }
    )


def _campaigns(config: WorldConfig, t0: int, t_end: int) -> pd.DataFrame:
    """Weekly email campaigns over the whole simulated calendar."""
    sends = np.arange(t0 + 3 * DAY, t_end, config.campaign_every_days * DAY, dtype=np.int64)
    return pd.DataFrame(
        {
            "campaign_id": _ids("cmp", len(sends), config.seed),
            "send_time": sends.astype(float),
            "subject": [f"Lifecycle tips #{i + 1}" for i in range(len(sends))],
        }
    )


def _email(rng, contacts: pd.DataFrame, campaigns: pd.DataFrame, t_end: int) -> pd.DataFrame:
    """What everyone subscribed at a campaign's send time did with it."""
    sends = campaigns.send_time.to_numpy().astype(np.int64)
    sub_at = contacts.subscriber_at.to_numpy()
    left = np.fmin(contacts.unsubscribed_at.to_numpy(), contacts.cleaned_at.to_numpy())
    left = np.nan_to_num(left, nan=np.inf)
    sub = np.nan_to_num(sub_at, nan=np.inf)
    parts = []
    eng = contacts.eng_z.to_numpy()
    machine = contacts.is_machine_opener.to_numpy()
    open_p = _sigmoid(-0.9 + 0.9 * eng)
    click_p = _sigmoid(-1.6 + 0.8 * eng)
    for ci, st in enumerate(sends):
        rec = np.flatnonzero((sub <= st) & (left > st))
        if len(rec) == 0:
            continue
        r = rng.random((len(rec), 3))
        bounced = r[:, 0] < 0.01
        human_open = (~bounced) & (r[:, 1] < open_p[rec])
        mopen = (~bounced) & machine[rec]
        clicked = human_open & (r[:, 2] < click_p[rec])
        rows = [
            (rec[bounced], "bounce", 30.0),
            (rec[mopen], "open", 1.0),  # machine opens: seconds after delivery
            (rec[human_open], "open", 3600.0 * 8),
            (rec[clicked], "click", 3600.0 * 9),
        ]
        for who, action, delay in rows:
            if len(who) == 0:
                continue
            parts.append(
                pd.DataFrame(
                    {
                        "campaign_id": campaigns.campaign_id.iat[ci],
                        "person": who,
                        "action": action,
                        "ts": st
                        + rng.exponential(delay, len(who))
                        + (1 if action == "open" else 0),
                        "is_machine": (action == "open") and delay == 1.0,
                    }
                )
            )
    if not parts:  # a block of anonymous visitors receives no email
        parts.append(
            pd.DataFrame(
                {
                    "campaign_id": pd.Series([], dtype="str"),
                    "person": np.array([], dtype=np.int64),
                    "action": pd.Series([], dtype="str"),
                    "ts": np.array([], dtype=float),
                    "is_machine": np.array([], dtype=bool),
                }
            )
        )
    act = pd.concat(parts, ignore_index=True)
    return act[act.ts < t_end].reset_index(drop=True)


def true_stage_at(world: World, ts: int) -> pd.Series:
    """Ground-truth stage of every person at epoch second ``ts`` (index = person)."""
    c = world.contacts
    o = world.orders[world.orders.ordered_at <= ts]
    per = o.groupby("person").agg(n=("order_n", "size"), last=("ordered_at", "max"))
    n_orders = per.n.reindex(c.person).fillna(0).to_numpy()
    last = per["last"].reindex(c.person).to_numpy()
    stage = _stage_rules(world, c.person.to_numpy(), np.full(len(c), float(ts)), n_orders, last)
    return pd.Series(stage, index=c.person, name="stage")


def truth_table(world: World) -> pd.DataFrame:
    """Ground truth per known contact: stage dates, stage on ``now`` and 30-day outcomes."""
    c = world.contacts[world.contacts.is_known]
    now = world.now_ts
    cols = [
        "subscriber_at",
        "lead_at",
        "mql_at",
        "sql_at",
        "opportunity_at",
        "customer_at",
        "advocate_at",
        "unsubscribed_at",
        "cleaned_at",
    ]
    out = c[["person", "hubspot_id", "user_id", "email", "channel"]].copy()
    for col in cols:
        out[col] = pd.to_datetime(c[col], unit="s", utc=True)
    stage_now = true_stage_at(world, now)
    out["stage_at_now"] = stage_now.reindex(c.person).to_numpy()
    out["is_customer_within_30d"] = (c.customer_at.to_numpy() > now) & (
        c.customer_at.to_numpy() <= now + 30 * DAY
    )
    out["is_known_at_now"] = c.subscriber_at.to_numpy() < now
    return out.reset_index(drop=True)


_STAGE_DATE_COLUMNS = (
    ("first_seen_at", "awareness"),
    ("subscriber_at", "subscriber"),
    ("lead_at", "lead"),
    ("mql_at", "mql"),
    ("sql_at", "sql"),
    ("opportunity_at", "opportunity"),
    ("customer_at", "customer"),
)


def _stage_rules(
    world: World, person: np.ndarray, ts: np.ndarray, n_orders: np.ndarray, last: np.ndarray
) -> np.ndarray:
    """The lifecycle rules: stage of ``person[i]`` at ``ts[i]`` given their orders by then.

    ``n_orders`` and ``last`` (time of the latest of them) are counted by the caller:
    one instant for everyone (:func:`true_stage_at`) or one per row (:func:`_stage_of`).
    """
    c = world.contacts
    cfg = world.config
    stage = np.full(len(person), None, dtype=object)
    for col, name in _STAGE_DATE_COLUMNS:
        t = np.nan_to_num(c[col].to_numpy()[person], nan=np.inf)
        stage[t <= ts] = name
    stage[n_orders >= 2] = "repeat_customer"
    stage[n_orders >= 4] = "loyal"
    adv = np.nan_to_num(c.advocate_at.to_numpy()[person], nan=np.inf)
    stage[adv <= ts] = "advocate"
    idle = (ts - np.nan_to_num(last, nan=0.0)) / DAY
    stage[(n_orders >= 1) & (idle > cfg.lapse_after_days)] = "lapsed"
    stage[(n_orders >= 1) & (idle > cfg.churn_after_days)] = "churned"
    return stage


def _stage_of(world: World, person: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Ground-truth stage of ``person[i]`` at ``ts[i]``, orders counted per row by search."""
    o = world.orders.sort_values(["person", "ordered_at"])
    o_person = o.person.to_numpy().astype(np.int64)
    o_time = np.floor(o.ordered_at.to_numpy()).astype(np.int64)
    keys = (o_person << 32) + o_time
    first = np.searchsorted(o_person, np.arange(len(world.contacts)), side="left")
    q = (person.astype(np.int64) << 32) + np.floor(ts).astype(np.int64)
    upto = np.searchsorted(keys, q, side="right")
    n_orders = upto - first[person]
    last = np.where(n_orders > 0, o_time[np.maximum(upto - 1, 0)], -1)
    return _stage_rules(world, person, ts, n_orders, last)


def stage_history(world: World, known_only: bool = True) -> pd.DataFrame:
    """Every person's true lifecycle stage as intervals ``[valid_from, valid_to)``.

    One row per (person, stage spell); ``valid_to`` is NaT for the spell still open at
    the end of the simulated horizon. The stage on any day is the spell covering it, so
    this is the compact form of "true stage per day" (a million contacts stay small).
    Computed at every instant a stage can change (stage dates, orders, and the lapse and
    churn thresholds after each order), vectorised over all people.
    """
    c = world.contacts
    cfg = world.config
    t_end = world.now_ts + cfg.horizon_days * DAY
    people = np.flatnonzero(c.is_known.to_numpy()) if known_only else np.arange(len(c))
    wanted = np.zeros(len(c), dtype=bool)
    wanted[people] = True
    pts_p, pts_t = [], []
    for col in [col for col, _ in _STAGE_DATE_COLUMNS] + ["advocate_at"]:
        t = c[col].to_numpy()
        has = np.flatnonzero(~np.isnan(t) & wanted)
        pts_p.append(has)
        pts_t.append(t[has])
    o = world.orders[wanted[world.orders.person.to_numpy()]]
    op, ot = o.person.to_numpy(), o.ordered_at.to_numpy()
    for shift in (0.0, cfg.lapse_after_days * DAY + 1, cfg.churn_after_days * DAY + 1):
        pts_p.append(op)
        pts_t.append(ot + shift)
    p = np.concatenate(pts_p).astype(np.int64)
    t = np.concatenate(pts_t)
    keep = t < t_end
    p, t = p[keep], np.ceil(t[keep])
    order = np.lexsort((t, p))
    p, t = p[order], t[order]
    stage = _stage_of(world, p, t)
    prev_same = np.r_[False, (p[1:] == p[:-1]) & (stage[1:] == stage[:-1])]
    p, t, stage = p[~prev_same], t[~prev_same], stage[~prev_same]
    nxt_same_person = np.r_[p[1:] == p[:-1], False]
    valid_to = np.where(nxt_same_person, np.r_[t[1:], np.nan], np.nan)
    return pd.DataFrame(
        {
            "person": p,
            "hubspot_id": c.hubspot_id.to_numpy()[p],
            "user_id": c.user_id.to_numpy()[p],
            "stage": stage,
            "valid_from": pd.to_datetime(t, unit="s", utc=True),
            "valid_to": pd.to_datetime(valid_to, unit="s", utc=True),
        }
    )
