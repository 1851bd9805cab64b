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
from functools import lru_cache

import numpy as np
import pandas as pd

from lifecycle.sandbox import subscriptions as _subscriptions
from lifecycle.sandbox.noise import NoiseProfile, crm_records, load_profile
from lifecycle.sandbox.subscriptions import add_subscriptions
from lifecycle.sandbox.truth_score import (
    ScoreRules,
    event_signals,
    first_crossings,
    fit_scores,
    load_rules,
)

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
#: Pages an email link points to (the click-through's landing page).
CLICK_PAGES = np.array(
    ["/blog/lifecycle-marketing", "/blog/lead-scoring", "/product/automation", "/customers"]
)
#: Every page a crawler may fetch.
ALL_PAGES = np.array(list(BROWSE_PAGES) + ["/pricing", "/demo", "/signup", "/refer"])
#: Forms whose submission makes a lead (form ids as the site's forms send them) ...
LEAD_FORMS = np.array(["ebook-lifecycle-guide", "webinar-registration", "contact-us"])
#: ... and forms that do not (preferences, feedback): the form id decides.
OTHER_FORMS = np.array(["newsletter-preferences", "event-feedback"])
#: Gated content a download of which makes a lead.
CONTENT_IDS = np.array(["lead-scoring-checklist", "lifecycle-benchmark-report"])
#: Role addresses people at one company share.
ROLE_PREFIXES = np.array(["info", "sales", "hello", "team"])
#: A referral-channel sign-up carries a customer's referral code this often.
REFERRAL_CODE_SHARE = 0.5
#: Browsers: first devices are desktops, second devices phones; then crawlers and a
#: link scanner (a mail-security gateway that fetches every link of a delivered email).
DESKTOP_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
)
MOBILE_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
)
CRAWLER_AGENTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "python-requests/2.31.0",
)
SCANNER_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/124.0.0.0 Safari/537.36",
)
USER_AGENTS = np.array(DESKTOP_AGENTS + MOBILE_AGENTS + CRAWLER_AGENTS + SCANNER_AGENTS, object)
UA_MOBILE = len(DESKTOP_AGENTS)
UA_CRAWLER = UA_MOBILE + len(MOBILE_AGENTS)
UA_SCANNER = UA_CRAWLER + len(CRAWLER_AGENTS)
#: Where an email action came from (``email_activity.ip_kind``): a reader's own network,
#: Apple's mail-privacy proxies, relay egress shared with VPN users, such a VPN, a scanner.
IP_HOME, IP_PROXY, IP_RELAY, IP_VPN, IP_SCANNER = range(5)
#: The few values of the events' low-cardinality text columns, stored as categoricals
#: (tens of millions of events: a code per row instead of a string).
EVENT_TYPES = ("identify", "page", "track")
EVENT_NAMES = (
    "Signed Up",
    "Form Submitted",
    "Content Downloaded",
    "Demo Requested",
    "Checkout Started",
    "Order Completed",
    # issue 10: the website's consent banner (sandbox/accounts.py appends these)
    "Segment Consent Preference Updated",
)
EMAIL_ACTIONS = ["open", "click", "bounce"]
TRACK_PATHS = (
    "/signup",
    "/resources",
    "/preferences",
    "/checkout",
    "/checkout/complete",
    "/account",
    "/webinar",
    "/login",
)
# issue 12: the billing page's subscription events (sandbox/subscriptions.py appends them)
EVENT_NAMES += _subscriptions.EVENT_NAMES
TRACK_PATHS += (_subscriptions.BILLING_PATH,)
#: Separates a block's noise stream from its journey stream (``default_rng([seed, b, tag])``).
NOISE_STREAM = 0x6E6F697365


@dataclass(frozen=True)
class WorldConfig:
    """What to simulate: size, randomness, the calendar and the noise profile."""

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
    #: What the vendors record of the journeys (``include/noise_profiles.yml``).
    profile: str = "clean"

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
    """All tables of one simulated world (timestamps are epoch seconds, NaN = never).

    ``contacts`` is the truth per person (journey, true stage dates, who they are);
    ``crm`` the CRM's records of them (noisy dates, duplicates), ``deals`` and
    ``deal_stages`` the sales pipeline, ``events`` every web event (bots included,
    ``person`` -1), ``email_activity`` every email action (``is_machine`` for proxies and
    scanners), ``noise`` the log of what the profile did to whom. Vendor emulators read
    only what their vendor would know from these (never fit_z, eng_z or true dates).
    """

    config: WorldConfig
    companies: pd.DataFrame
    contacts: pd.DataFrame
    orders: pd.DataFrame
    deals: pd.DataFrame
    events: pd.DataFrame
    campaigns: pd.DataFrame
    email_activity: pd.DataFrame
    crm: pd.DataFrame
    deal_stages: pd.DataFrame
    noise: pd.DataFrame
    #: Subscribers and their truth (theta, periods paid): sandbox/subscriptions.py (issue 12).
    subscriptions: pd.DataFrame | None = None

    @property
    def now_ts(self) -> int:
        return _epoch(self.config.now)

    @property
    def start_ts(self) -> int:
        return _epoch(self.config.start)

    def stage_on(self, day: date) -> pd.Series:
        """True lifecycle stage of every person at the end of ``day`` (None before first visit)."""
        return true_stage_at(self, _epoch(day + timedelta(days=1)))

    def email_at(self, now: float) -> np.ndarray:
        """Every person's email address (normalised) as of ``now`` (after any change)."""
        c = self.contacts
        changed = np.nan_to_num(c.email_changed_at.to_numpy(), nan=np.inf) < now
        return np.where(changed, c.email_new.to_numpy(dtype=object), c.email.to_numpy(object))


#: People are simulated in blocks of this many, each block from its own random streams
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


@dataclass(frozen=True)
class _Block:
    """What every block of people shares."""

    config: WorldConfig
    profile: NoiseProfile
    rules: ScoreRules
    comp: _Companies
    campaigns: pd.DataFrame
    t0: int
    t_end: int
    index: int
    count: int


_PARTS = ("contacts", "orders", "deals", "deal_stages", "events", "email_activity", "crm", "noise")


def simulate(config: WorldConfig, progress: Callable[[int, int], None] | None = None) -> World:
    """Simulate a world. Same config, same world, byte for byte.

    ``progress(done, total)`` is called after each block of :data:`BLOCK_PEOPLE` people
    (a million contacts are 26 blocks).
    """
    profile = load_profile(config.profile)
    rules = load_rules()
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
    n_blocks = -(-n_people // BLOCK_PEOPLE)

    parts: list[dict[str, pd.DataFrame]] = []
    first = _Offsets()
    for b, lo in enumerate(range(0, n_people, BLOCK_PEOPLE)):
        hi = min(n_people, lo + BLOCK_PEOPLE)
        block_rng = rng if b == 0 else np.random.default_rng([config.seed, b])
        noise_rng = np.random.default_rng([config.seed, b, NOISE_STREAM])
        block = _Block(config, profile, rules, comp, campaigns, t0, t_end, b, n_blocks)
        part = _simulate_people(block_rng, noise_rng, block, lo, hi, first)
        parts.append(part)
        first = _Offsets(
            first.orders + len(part["orders"]),
            first.deals + len(part["deals"]),
            first.events + len(part["events"]),
        )
        if progress is not None:
            progress(hi, n_people)
    tables = {name: _concat([part.pop(name) for part in parts]) for name in _PARTS}
    log.info(
        "simulated world (%s profile): %d people (%d known), %d web events, "
        "%d email activities, %d orders",
        profile.name,
        n_people,
        config.contacts,
        len(tables["events"]),
        len(tables["email_activity"]),
        len(tables["orders"]),
    )
    world = World(config=config, companies=companies, campaigns=campaigns, **tables)
    # issue 12: subscription customers (renewals, cancellations) as Segment track events
    world = add_subscriptions(world)
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


#: Columns that hold text even where a block has no value at all.
_TEXT = {
    "event",
    "path",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "email",
    "order_id",
    "detail",
    "user_id",
    "anonymous_id_2",
    "email_new",
    "role_email",
    "duplicate_of",
    "duplicate_id",
    "dup_contact_id",
    "stage",
    "campaign_id",
    "action",
}


def _text_columns(df: pd.DataFrame) -> pd.DataFrame:
    # a column that is all None in one block (no identifies among anonymous visitors)
    # would otherwise be `object` there and turn the whole column into `object`
    obj = [
        c
        for c in df.columns
        if df[c].dtype == object
        or (c in _TEXT and df[c].isna().all() and not isinstance(df[c].dtype, pd.CategoricalDtype))
    ]
    return df.astype(dict.fromkeys(obj, "str")) if obj else df


def _simulate_people(
    rng: np.random.Generator,
    nrng: np.random.Generator,
    b: _Block,
    lo: int,
    hi: int,
    first: _Offsets,
) -> dict[str, pd.DataFrame]:
    """People ``lo..hi-1`` of the world, everything they do and what the vendors record.

    ``rng`` draws the journey (who they are, what they do and when), ``nrng`` what the
    noise profile does to the record of it. Inside a block a person is a position
    ``0..hi-lo-1``; the returned frames carry the world's person numbers.
    """
    config, prof, comp = b.config, b.profile, b.comp
    t0, t_end = b.t0, b.t_end
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
    first_seen = t0 + rng.uniform(0, 0.97, n) * (now - t0)
    # The first `contacts` people identify themselves; the rest stay anonymous forever.
    known = lo + np.arange(n) < config.contacts
    subscriber_at = np.where(known, first_seen + rng.exponential(2.0, n) * DAY, np.nan)

    def step(prev: np.ndarray, logit: np.ndarray, mean_days: float) -> np.ndarray:
        """Time of the next stage, NaN when the person never gets there."""
        reached = (~np.isnan(prev)) & (rng.random(n) < _sigmoid(logit))
        delay = rng.gamma(2.0, mean_days / 2.0, n) * DAY
        out = np.where(reached, prev + delay, np.nan)
        return np.where(out <= t_end, out, np.nan)

    # MQL is not a step of the journey: it is when the seed's lead score, applied to
    # what the person did, first crosses the threshold (computed below from the events).
    lead_at = step(subscriber_at, 0.6 + 0.4 * fit_z + 0.9 * eng_z, 12)
    sql_at = step(lead_at, -0.5 + 1.3 * fit_z + 0.8 * eng_z, 40)
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
    # Which systems record each order: both, only a closed-won deal, only the web shop.
    u = nrng.random(len(orders))
    on = prof.orders
    orders["recorded_in"] = np.where(
        u < on.deal_only, "deal", np.where(u < on.deal_only + on.web_only, "web", "both")
    )

    # Advocates: a referred person signs up with a customer's referral code; the
    # referrer is a customer with four orders by then, and advocates from that moment.
    referred_by, advocate_at = _referrals(rng, known, channel, subscriber_at, orders, n, t_end)

    # Email status: some subscribers unsubscribe, a few hard-bounce (cleaned).
    unsub_at = np.where(
        rng.random(n) < _sigmoid(-2.6 - 0.6 * eng_z),
        subscriber_at + rng.exponential(60, n) * DAY,
        np.nan,
    )
    cleaned_at = np.where(
        rng.random(n) < 0.015, subscriber_at + rng.exponential(30, n) * DAY, np.nan
    )
    ad_consent = rng.random(n) < 0.8

    hubspot_id = (lo + np.arange(n) + 1_000_001).astype(str)
    user_id = np.char.add("usr_", _ids("", n, config.seed, start=lo).astype(str))
    anon_1 = _ids("a1-", n, config.seed, start=lo)
    anon_2 = _ids("a2-", n, config.seed, start=lo)
    unique_email_id = _ids("", n, config.seed + 1, start=lo)
    referral_code = _ids("ref-", n, config.seed, start=lo)
    first_name = FIRST_NAMES[rng.integers(0, len(FIRST_NAMES), n)]
    last = LAST_NAMES[rng.integers(0, len(LAST_NAMES), n)]
    email_local = np.char.add(
        np.char.add(np.char.lower(first_name.astype(str)), "."), (lo + np.arange(n)).astype(str)
    )
    domains = comp.domain[company]
    # Some people type their email with capitals and spaces: normalisation must cope.
    messy = rng.random(n) < 0.1
    email = np.char.add(np.char.add(email_local, "@"), domains.astype(str)).astype(object)

    # --- identity noise ---------------------------------------------------------------
    idn = prof.identity
    has_dev2 = nrng.random(n) < idn.second_device
    dev2_identifies = has_dev2 & (nrng.random(n) < idn.second_device_identifies)
    machine_opener = nrng.random(n) < prof.email.machine_open_recipients
    link_scanned = nrng.random(n) < prof.bots.link_scanned_recipients
    role_email, role_share_at, role_owner = _role_addresses(
        nrng, b, known, company, subscriber_at, domains, t_end, idn.shared_role_address
    )
    email = np.where(role_owner, role_email, email)
    changes = known & ~role_owner & (nrng.random(n) < idn.email_change)
    email_changed_at = np.where(
        changes, subscriber_at + nrng.uniform(0.05, 1.0, n) * (t_end - subscriber_at), np.nan
    )
    email_new = np.where(changes, np.char.add(email_local, "@post.example").astype(object), None)
    email_typed = np.where(
        messy & ~role_owner, np.char.add(np.char.upper(email.astype(str)), " "), email
    ).astype(object)

    contacts = pd.DataFrame(
        {
            "person": np.arange(n),
            "is_known": known,
            "hubspot_id": hubspot_id,
            "user_id": user_id,
            "anonymous_id": anon_1,
            "anonymous_id_2": np.where(has_dev2, anon_2, None),
            "email": email,
            "email_typed": email_typed,
            "email_changed_at": email_changed_at,
            "email_new": email_new,
            "unique_email_id": unique_email_id,
            "referral_code": referral_code,
            "referred_by": np.where(referred_by >= 0, referred_by + lo, -1),
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
            "mql_at": np.nan,
            "sql_at": sql_at,
            "opportunity_at": opportunity_at,
            "customer_at": customer_at,
            "advocate_at": advocate_at,
            "unsubscribed_at": unsub_at,
            "cleaned_at": cleaned_at,
            "is_machine_opener": machine_opener,
            "is_link_scanned": link_scanned,
            "second_device_identifies": dev2_identifies,
            "role_email": role_email,
            "role_shared_at": role_share_at,
            "ad_consent": ad_consent,
        }
    )
    orders = orders.merge(contacts[["person", "user_id"]], on="person")

    activity = _email(rng, nrng, contacts, b.campaigns, t_end, prof)
    events = _web_events(rng, nrng, b, contacts, orders, activity, first.events)
    contacts["mql_at"] = _true_mql(b, contacts, company, title, events, activity)
    crm, crm_log = crm_records(nrng, contacts, prof, t_end, lo)
    deals, deal_stages = _deals(rng, nrng, contacts, orders, crm, prof, t_end, first.deals)
    noise_log = pd.concat([crm_log, _identity_log(contacts, orders)], ignore_index=True)

    out = {
        "contacts": contacts,
        "orders": orders,
        "deals": deals,
        "deal_stages": deal_stages,
        "events": events,
        "email_activity": activity,
        "crm": crm,
        "noise": noise_log,
    }
    for name in ("contacts", "orders", "deals", "email_activity", "crm", "noise"):
        out[name]["person"] += lo
    ev_person = events.person.to_numpy()
    events["person"] = np.where(ev_person >= 0, ev_person + lo, -1)
    return out


def _referrals(rng, known, channel, subscriber_at, orders, n, t_end):
    """Who referred whom: referral-channel sign-ups with a customer's code."""
    referred_by = np.full(n, -1)
    advocate_at = np.full(n, np.nan)
    ref_channel = int(np.flatnonzero(CHANNELS == "referral")[0])
    use_code = known & (channel == ref_channel) & (rng.random(n) < REFERRAL_CODE_SHARE)
    fourth = orders.loc[orders.order_n == 4, ["person", "ordered_at"]].sort_values("ordered_at")
    who = np.flatnonzero(use_code & (subscriber_at <= t_end))
    if len(fourth) == 0 or len(who) == 0:
        return referred_by, advocate_at
    s = subscriber_at[who]
    eligible = np.searchsorted(fourth.ordered_at.to_numpy(), s, side="left")
    pick = np.floor(rng.random(len(who)) * eligible).astype(np.int64)
    has = eligible > 0
    referrer = fourth.person.to_numpy()[pick[has]]
    referred_by[who[has]] = referrer
    np.fmin.at(advocate_at, referrer, s[has])
    return referred_by, advocate_at


def _role_addresses(nrng, b: _Block, known, company, subscriber_at, domains, t_end, share):
    """Pairs of colleagues who use one role address (info@, sales@...).

    The owner signed up with it (it is their CRM email); the sharer, who has their own
    address, later fills a form with it too. One owner per company, and owners only at
    companies of this block's residue (``company % blocks``) so no two blocks hand out
    the same address.
    """
    n = len(known)
    role_email = np.full(n, None, dtype=object)
    share_at = np.full(n, np.nan)
    owner = np.zeros(n, dtype=bool)
    if share <= 0:
        return role_email, share_at, owner
    mine = known & (company % b.count == b.index)
    p_owner = min(1.0, share / 2 * b.count)
    cand = np.flatnonzero(mine & (nrng.random(n) < p_owner))
    # the first candidate per company owns the address
    cand = cand[np.unique(company[cand], return_index=True)[1]]
    # colleagues sorted by (company, person): the owner's position among them, then a
    # random other colleague
    people = np.flatnonzero(known)
    key = company[people].astype(np.int64) * 2**32 + people
    order = np.argsort(key, kind="stable")
    people, key = people[order], key[order]
    comp_key = company[cand].astype(np.int64) * 2**32
    start = np.searchsorted(key, comp_key, side="left")
    count = np.searchsorted(key, comp_key + 2**32, side="left") - start
    ok = count >= 2
    cand, start, count = cand[ok], start[ok], count[ok]
    own_pos = np.searchsorted(key, company[cand].astype(np.int64) * 2**32 + cand) - start
    other = (own_pos + 1 + np.floor(nrng.random(len(cand)) * (count - 1)).astype(np.int64)) % count
    sharer = people[start + other]
    address = np.char.add(
        np.char.add(ROLE_PREFIXES[company[cand] % len(ROLE_PREFIXES)], "@"),
        domains[cand].astype(str),
    ).astype(object)
    owner[cand] = True
    role_email[cand] = address
    role_email[sharer] = address
    later = (
        np.fmax(subscriber_at[sharer], subscriber_at[cand]) + nrng.uniform(1, 200, len(cand)) * DAY
    )
    share_at[sharer] = np.where(later < t_end, later, np.nan)
    return role_email, share_at, owner


def _identity_log(contacts: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    """Noise applied to people's identity and orders, one row per person and kind."""
    c = contacts
    rows = []

    def add(mask, kind, at=None):
        idx = np.flatnonzero(mask)
        rows.append(
            pd.DataFrame(
                {
                    "person": c.person.to_numpy()[idx],
                    "hubspot_id": c.hubspot_id.to_numpy()[idx],
                    "kind": kind,
                    "stage": None,
                    "at": np.nan if at is None else at[idx],
                }
            )
        )

    add(c.is_known & c.email_changed_at.notna(), "email_change", c.email_changed_at.to_numpy())
    owner = c.role_email.notna() & c.role_shared_at.isna() & (c.email == c.role_email)
    add(c.is_known & owner, "role_address_owner")
    add(c.is_known & c.role_shared_at.notna(), "role_address_sharer", c.role_shared_at.to_numpy())
    add(c.is_known & c.anonymous_id_2.notna(), "second_device")
    add(c.is_known & c.second_device_identifies, "second_device_identifies")
    add(c.is_known & c.is_link_scanned, "link_scanned")
    for kind in ("deal", "web"):
        o = orders[orders.recorded_in == kind]
        rows.append(
            pd.DataFrame(
                {
                    "person": o.person.to_numpy(),
                    "hubspot_id": c.hubspot_id.to_numpy()[o.person.to_numpy()],
                    "kind": f"order_{kind}_only",
                    "stage": None,
                    "at": o.ordered_at.to_numpy(),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def _true_mql(b: _Block, contacts, company, title, events, activity) -> np.ndarray:
    """When the seed's lead score on the person's TRUE events first crosses the threshold.

    True events: every web event of the person on any device (identified or not), never
    a bot's, and their own email opens and clicks, never a proxy's or a scanner's.
    """
    rules = b.rules
    fit = fit_scores(
        rules,
        TITLES[title],
        INDUSTRIES[b.comp.industry[company]],
        SIZE_EMPLOYEES[b.comp.size[company]],
    )
    ev = events[events.person.to_numpy() >= 0]
    person = ev.person.to_numpy()
    ts = ev.ts.to_numpy()
    parts_p, parts_t, parts_s = [], [], []
    for mask, signal in event_signals(
        rules,
        ev.type.to_numpy(),
        ev.event.to_numpy(object),
        ev.path.to_numpy(object),
        np.where(ev.type.to_numpy() == "track", ev.detail.to_numpy(object), None),
    ):
        parts_p.append(person[mask])
        parts_t.append(ts[mask])
        parts_s.append(np.full(int(mask.sum()), signal, dtype=object))
    a = activity[~activity.is_machine.to_numpy()]
    for action in ("open", "click"):
        m = (a.action == action).to_numpy()
        parts_p.append(a.person.to_numpy()[m])
        parts_t.append(a.ts.to_numpy()[m])
        parts_s.append(np.full(int(m.sum()), f"email_{action}", dtype=object))
    return first_crossings(
        rules,
        fit,
        np.concatenate(parts_p),
        np.concatenate(parts_t),
        np.concatenate(parts_s),
    )


def _deals(
    rng,
    nrng,
    contacts: pd.DataFrame,
    orders: pd.DataFrame,
    crm: pd.DataFrame,
    prof,
    t_end,
    first_id,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sales pipeline: a deal per SQL, its stage history, and won deals for orders.

    A deal opens when the person becomes sales-qualified (appointmentscheduled), moves
    to presentationscheduled when it becomes an opportunity and to contractsent before
    the purchase, and is closed won with the first order, unless that order reached only
    the web shop (then the deal stays open), or closed lost after a while. Repeat orders
    that reach the CRM are deals created and won at once. A person with a duplicate CRM
    record has, half the time, the deals made after it on the duplicate until the merge.
    """
    lag_s = prof.orders.deal_close_lag_hours * 3600
    c = contacts
    sq = np.flatnonzero(~np.isnan(c.sql_at.to_numpy()))
    sql = c.sql_at.to_numpy()[sq]
    opp = c.opportunity_at.to_numpy()[sq]
    cust = c.customer_at.to_numpy()[sq]
    firsts = orders[orders.order_n == 1].set_index("person")
    rec = firsts.recorded_in.reindex(sq).to_numpy(dtype=object)
    won = ~np.isnan(cust) & (rec != "web") & pd.notna(rec)
    lag = nrng.exponential(lag_s, len(sq)) if lag_s > 0 else np.zeros(len(sq))
    won_at = np.where(won, cust + lag, np.nan)
    lost_at = np.where(np.isnan(opp), sql, opp) + rng.gamma(2.0, 15.0, len(sq)) * DAY
    lost = np.isnan(cust) & (lost_at <= t_end)
    lost_at = np.where(lost, lost_at, np.nan)
    amount = firsts.revenue_usd.reindex(sq).to_numpy()
    amount = np.where(np.isnan(amount), np.round(rng.lognormal(6, 0.5, len(sq)), 2), amount)
    journey = pd.DataFrame(
        {
            "person": sq,
            "createdate": sql,
            "closedate": np.fmin(won_at, lost_at),
            "won_at": won_at,
            "lost_at": lost_at,
            "amount": amount,
            "order_id": np.where(won, firsts.order_id.reindex(sq).to_numpy(dtype=object), None),
            "kind": "journey",
        }
    )
    rep = orders[(orders.order_n >= 2) & (orders.recorded_in != "web")]
    rep_lag = nrng.exponential(lag_s, len(rep)) if lag_s > 0 else np.zeros(len(rep))
    rep_won = rep.ordered_at.to_numpy() + rep_lag
    repeat = pd.DataFrame(
        {
            "person": rep.person.to_numpy(),
            "createdate": rep.ordered_at.to_numpy(),
            "closedate": rep_won,
            "won_at": rep_won,
            "lost_at": np.nan,
            "amount": rep.revenue_usd.to_numpy(),
            "order_id": rep.order_id.to_numpy(dtype=object),
            "kind": "repeat_order",
        }
    )
    deals = pd.concat([journey, repeat], ignore_index=True)
    deals = deals[deals.createdate.to_numpy() <= t_end].reset_index(drop=True)
    deals = deals[~(deals.won_at.to_numpy() > t_end)].reset_index(drop=True)
    deals.insert(0, "deal_id", (first_id + np.arange(len(deals)) + 9_000_001).astype(str))
    p = deals.person.to_numpy()
    deals.insert(2, "hubspot_contact_id", c.hubspot_id.to_numpy()[p])
    # deals on a duplicate record, until sales merges it into the primary
    prim = crm[~crm.is_duplicate.to_numpy() & crm.duplicate_id.notna().to_numpy()]
    on_dup = prim[nrng.random(len(prim)) < 0.5]
    dup_of = pd.Series(on_dup.duplicate_id.to_numpy(), index=on_dup.person.to_numpy())
    dups = crm[crm.is_duplicate.to_numpy()].set_index("hubspot_id")
    dup_id = dup_of.reindex(p).to_numpy(dtype=object)
    dup_created = dups.createdate.reindex(pd.Index(dup_id)).to_numpy()
    on = pd.notna(dup_id) & (deals.createdate.to_numpy() >= np.nan_to_num(dup_created, nan=np.inf))
    deals["dup_contact_id"] = np.where(on, dup_id, None)
    deals["dup_merged_at"] = np.where(
        on, dups.merged_at.reindex(pd.Index(dup_id)).to_numpy(), np.nan
    )

    # stage history (HubSpot's default sales pipeline)
    is_j = (deals.kind == "journey").to_numpy()
    j = deals[is_j]
    j_opp = c.opportunity_at.to_numpy()[j.person.to_numpy()]
    j_cust = c.customer_at.to_numpy()[j.person.to_numpy()]
    j_sql = j.createdate.to_numpy()
    hist = [
        (j.deal_id, "appointmentscheduled", j_sql),
        (
            j.deal_id,
            "qualifiedtobuy",
            np.where(np.isnan(j_opp), np.nan, j_sql + 0.4 * (j_opp - j_sql)),
        ),
        (j.deal_id, "presentationscheduled", j_opp),
        (j.deal_id, "contractsent", j_opp + 0.5 * (j_cust - j_opp)),
        (j.deal_id, "closedwon", j.won_at.to_numpy()),
        (j.deal_id, "closedlost", j.lost_at.to_numpy()),
        (deals.deal_id[~is_j], "closedwon", deals.won_at.to_numpy()[~is_j]),
    ]
    stages = pd.concat(
        [pd.DataFrame({"deal_id": d.to_numpy(), "stage": s, "at": t}) for d, s, t in hist],
        ignore_index=True,
    )
    at = stages["at"].to_numpy()
    stages = stages[~np.isnan(at) & (at <= t_end)]
    stages = stages.sort_values(["deal_id", "at"], kind="stable").reset_index(drop=True)
    return deals, stages


class _Parts:
    """Columns of event parts as numpy arrays, stacked once (no pandas frame per part:
    pandas would turn every text column into Arrow strings and back)."""

    #: Column -> (dtype, fill value for a part that lacks it).
    COLUMNS = {
        "person": (np.int64, -1),
        "ts": (float, np.nan),
        "type": (object, None),
        "event": (object, None),
        "path": (object, None),
        "first_session": (bool, False),
        "device": (np.int8, 1),
        "detail": (object, None),
        "email": (object, None),
        "revenue": (float, np.nan),
        "order_id": (object, None),
        "utm_source": (object, None),
        "utm_medium": (object, None),
        "utm_campaign": (object, None),
    }

    def __init__(self) -> None:
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, **cols) -> None:
        n = len(cols["person"])
        out = {}
        for name, (dtype, fill) in self.COLUMNS.items():
            v = cols.get(name, fill)
            arr = np.asarray(v, dtype=dtype) if not np.isscalar(v) and v is not None else None
            if arr is None or arr.ndim == 0:
                arr = np.full(n, v if v is not None else fill, dtype=dtype)
            out[name] = arr
        self.parts.append(out)

    def concat(self) -> dict[str, np.ndarray]:
        out = {name: np.concatenate([p.pop(name) for p in self.parts]) for name in self.COLUMNS}
        self.parts.clear()
        return out


def _web_events(rng, nrng, b: _Block, contacts, orders, activity, first_id: int = 0):
    """Sessions of page views, track and identify events of every person, and bots'."""
    config, prof = b.config, b.profile
    t_end = b.t_end
    n = len(contacts)
    eng = contacts.eng_z.to_numpy()
    first_seen = contacts.first_seen_at.to_numpy()
    sub_at = contacts.subscriber_at.to_numpy()
    cust_at = contacts.customer_at.to_numpy()
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

    # Buying signals: sessions on pricing/demo pages in the days before each sales step.
    extra = []
    for col in ("sql_at", "opportunity_at", "customer_at"):
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

    # Intent pages are not a clean signal: some buyers never look at them, and people
    # who never buy do (the profile's shares; a browsing session turns into one).
    ip = prof.intent_pages
    converter = ~np.isnan(cust_at)
    if ip.converters_skipping > 0:
        skip = converter & (nrng.random(n) < ip.converters_skipping)
        s_intent &= ~skip[s_person]
    if ip.never_converters_visiting is not None:
        seen = np.bincount(s_person[s_intent], minlength=n) > 0
        share = float(seen[~converter].mean()) if (~converter).any() else 1.0
        target = ip.never_converters_visiting
        p_add = max(0.0, (target - share) / (1.0 - share)) if share < 1 else 0.0
        add = ~converter & ~seen & (nrng.random(n) < p_add)
        starts = np.cumsum(n_sess) - n_sess
        pick = starts + np.floor(nrng.random(n) * n_sess).astype(np.int64)
        s_intent[pick[add]] = True

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
    pv_person = s_person[pv_sess]
    # A second device is used (for whole sessions) only after sign-up.
    has2 = contacts.anonymous_id_2.notna().to_numpy()
    s_after_sub = s_start > np.nan_to_num(sub_at[s_person], nan=np.inf) + DAY
    s_dev2 = has2[s_person] & s_after_sub & (nrng.random(n_s) < 0.4)
    on_dev2 = s_dev2[pv_sess]
    tracks = _Parts()
    tracks.add(
        person=pv_person,
        ts=pv_time,
        type="page",
        path=path,
        first_session=s_rank[pv_sess] == 0,
        device=np.where(on_dev2, 2, 1).astype(np.int8),
    )
    del pv_sess, pv_rank, pv_gap, pv_time, intent_pv, path, pv_person, s_dev2, on_dev2

    def track(person, ts, name, path, kind="track", **cols) -> None:
        tracks.add(person=person, ts=ts, type=kind, event=name, path=path, **cols)

    known = np.flatnonzero(~np.isnan(sub_at))
    code = contacts.referral_code.to_numpy(dtype=object)
    ref_by = contacts.referred_by.to_numpy()
    lo = int(contacts.person.iloc[0]) if n else 0  # referred_by holds world numbers
    used = np.where(ref_by[known] >= 0, code[np.clip(ref_by[known] - lo, 0, n - 1)], None)
    track(known, sub_at[known], "Signed Up", "/signup", detail=used)
    lead_at = contacts.lead_at.to_numpy()
    leads = np.flatnonzero(~np.isnan(lead_at))
    is_form = rng.random(len(leads)) < 0.8
    form = LEAD_FORMS.astype(object)[rng.integers(0, len(LEAD_FORMS), len(leads))]
    content = CONTENT_IDS.astype(object)[rng.integers(0, len(CONTENT_IDS), len(leads))]
    track(
        leads[is_form],
        lead_at[leads[is_form]],
        "Form Submitted",
        "/resources",
        detail=form[is_form],
    )
    track(
        leads[~is_form],
        lead_at[leads[~is_form]],
        "Content Downloaded",
        "/resources",
        detail=content[~is_form],
    )
    other = known[rng.random(len(known)) < 0.15]
    other_t = sub_at[other] + rng.random(len(other)) * (t_end - sub_at[other])
    track(
        other,
        other_t,
        "Form Submitted",
        "/preferences",
        detail=OTHER_FORMS.astype(object)[rng.integers(0, len(OTHER_FORMS), len(other))],
    )
    sql_at = contacts.sql_at.to_numpy()
    demo = np.flatnonzero(~np.isnan(sql_at) & (rng.random(n) < 0.5))
    demo_t = np.maximum(sql_at[demo] - rng.uniform(0.2, 3.0, len(demo)) * DAY, sub_at[demo] + 3600)
    track(demo, demo_t, "Demo Requested", "/demo")
    web_orders = orders[orders.recorded_in != "deal"]
    track(
        web_orders.person.to_numpy(),
        web_orders.ordered_at.to_numpy(),
        "Order Completed",
        "/checkout/complete",
        revenue=web_orders.revenue_usd.to_numpy(),
        order_id=web_orders.order_id.to_numpy(dtype=object),
    )
    # Checkout abandoners: started a checkout and did not buy.
    aband = np.flatnonzero((rng.random(n) < 0.06) & ~np.isnan(sub_at))
    a_t = sub_at[aband] + rng.uniform(0, 1, len(aband)) * (t_end - sub_at[aband])
    track(aband, a_t, "Checkout Started", "/checkout")

    # Identifies on the first device: at sign-up, after an email change, and the form a
    # colleague filled with a shared role address.
    email_typed = contacts.email_typed.to_numpy(dtype=object)
    track(
        known,
        sub_at[known] + 1,
        None,
        "/signup",
        kind="identify",
        email=email_typed[known],
        detail=code[known],
    )
    changed_at = contacts.email_changed_at.to_numpy()
    ch = np.flatnonzero(~np.isnan(changed_at))
    track(
        ch,
        changed_at[ch],
        None,
        "/account",
        kind="identify",
        email=contacts.email_new.to_numpy(dtype=object)[ch],
        detail=code[ch],
    )
    shared_at = contacts.role_shared_at.to_numpy()
    sh = np.flatnonzero(~np.isnan(shared_at))
    track(
        sh,
        shared_at[sh],
        None,
        "/webinar",
        kind="identify",
        email=contacts.role_email.to_numpy(dtype=object)[sh],
    )

    # Email click-throughs: the landing page carries Mailchimp's mc_cid / mc_eid, on
    # whichever device the person read the email; a couple of pages follow.
    clicks = activity[(activity.action == "click").to_numpy() & ~activity.is_machine.to_numpy()]
    cp = clicks.person.to_numpy()
    ueid = contacts.unique_email_id.to_numpy(dtype=object)
    query = (
        (
            "mc_cid="
            + clicks.campaign_id.astype(str)
            + "&mc_eid="
            + pd.Series(ueid[cp], dtype=str).to_numpy()
        ).to_numpy(dtype=object)
        if len(cp)
        else np.array([], dtype=object)
    )
    via2 = has2[cp] & (nrng.random(len(cp)) < prof.identity.click_through_on_second_device)
    land_t = clicks.ts.to_numpy() + rng.uniform(1, 20, len(cp))
    land_path = CLICK_PAGES.astype(object)[np.maximum(clicks.page.to_numpy(), 0)]
    tracks.add(
        person=cp,
        ts=land_t,
        type="page",
        path=land_path,
        device=np.where(via2, 2, 1).astype(np.int8),
        detail=query,
        utm_source="newsletter",
        utm_medium="email",
        utm_campaign=clicks.campaign_id.to_numpy(dtype=object),
    )
    more = rng.poisson(1.0, len(cp))
    f_idx = np.repeat(np.arange(len(cp)), more)
    f_rank = np.arange(len(f_idx)) - np.repeat(np.cumsum(more) - more, more)
    f_t = (
        land_t[f_idx]
        + pd.Series(rng.exponential(120, len(f_idx))).groupby(f_idx).cumsum().to_numpy()
    )
    del f_rank
    tracks.add(
        person=cp[f_idx],
        ts=f_t,
        type="page",
        path=BROWSE_PAGES.astype(object)[rng.integers(0, len(BROWSE_PAGES), len(f_idx))],
        device=np.where(via2[f_idx], 2, 1).astype(np.int8),
    )
    ev = tracks.concat()
    keep = ev["ts"] < t_end
    ev = {k: v[keep] for k, v in ev.items()}

    # A log-in identify on the second device just before its first event there, for the
    # devices that ever identify.
    ident2 = contacts.second_device_identifies.to_numpy()
    on2 = (ev["device"] == 2) & ident2[ev["person"]]
    d2 = pd.DataFrame({"person": ev["person"][on2], "ts": ev["ts"][on2]})
    d2 = d2.groupby("person", as_index=False).ts.min()
    d2p = d2.person.to_numpy()
    login_email = np.where(
        np.nan_to_num(changed_at[d2p], nan=np.inf) < d2.ts.to_numpy(),
        contacts.email_new.to_numpy(dtype=object)[d2p],
        email_typed[d2p],
    )
    tracks.add(**ev)
    tracks.add(
        person=d2p,
        ts=d2.ts.to_numpy() - 5,
        type="identify",
        path="/login",
        device=np.int8(2),
        email=login_email,
    )
    ev = tracks.concat()

    p = ev["person"]
    ts = ev["ts"]
    dev = ev["device"]
    ident_dev1 = np.nan_to_num(sub_at[p], nan=np.inf)
    ident_dev2 = np.full(n, np.inf)
    ident_dev2[d2p] = d2.ts.to_numpy() - 5
    identified = np.where(dev == 1, ts >= ident_dev1 + 1, ts >= ident_dev2[p])
    anon2 = contacts.anonymous_id_2.to_numpy(dtype=object)
    anon_id = np.where(dev == 1, contacts.anonymous_id.to_numpy(dtype=object)[p], anon2[p])
    first_sess = ev["first_session"]
    utm_src = np.array([CHANNEL_UTM[c][0] for c in CHANNELS], dtype=object)
    utm_med = np.array([CHANNEL_UTM[c][1] for c in CHANNELS], dtype=object)
    utm_camp = np.array([f"spring_{c}" for c in CHANNELS], dtype=object)
    ch_idx = pd.Categorical(contacts.channel, categories=CHANNELS).codes[p]
    # Later sessions mostly come from email or direct; the first carries the channel.
    src = np.where(first_sess, utm_src[ch_idx], ev["utm_source"])
    med = np.where(first_sess, utm_med[ch_idx], ev["utm_medium"])
    camp = np.where(
        first_sess & pd.notna(utm_src[ch_idx]),
        utm_camp[ch_idx],
        ev["utm_campaign"],
    )
    camp = np.where(first_sess & pd.isna(utm_src[ch_idx]), None, camp)
    ua = np.where(dev == 1, p % len(DESKTOP_AGENTS), UA_MOBILE + p % len(MOBILE_AGENTS)).astype(
        np.int8
    )
    human = {
        "type": ev["type"],
        "event": ev["event"],
        "anonymous_id": anon_id,
        "user_id": np.where(identified, contacts.user_id.to_numpy(dtype=object)[p], None),
        "person": p,
        "ts": ts,
        "path": ev["path"],
        "utm_source": src,
        "utm_medium": med,
        "utm_campaign": camp,
        "email": ev["email"],
        "revenue": ev["revenue"],
        "order_id": ev["order_id"],
        "detail": ev["detail"],
        "ua": ua,
        "device": dev,
    }
    del ev, p, ts, dev, anon_id, identified, src, med, camp, ua
    bots = _bots(nrng, b, contacts, activity, len(human["ts"]), first_id)
    cols = {k: np.concatenate([human.pop(k), bots.pop(k)]) for k in list(human)}
    order = np.lexsort((cols["person"], cols["ts"]))
    out = {"message_id": _ids("msg-", len(order), config.seed, start=first_id)}
    out.update({k: cols.pop(k)[order] for k in list(cols)})
    for name, values in _categories(b).items():
        out[name] = _categorical(name, out[name], values)
    # one frame, built once (text columns become pandas strings here, not per part)
    return pd.DataFrame(out)


def _categories(b: _Block) -> dict[str, list[str]]:
    """Every value the events' categorical columns can take (the same in every block)."""
    utm = [v for pair in CHANNEL_UTM.values() for v in pair if v] + ["newsletter", "email"]
    return {
        "type": list(EVENT_TYPES),
        "event": list(EVENT_NAMES),
        "path": sorted(
            set(BROWSE_PAGES)
            | set(INTENT_PAGES)
            | set(CLICK_PAGES)
            | set(ALL_PAGES)
            | set(TRACK_PATHS)
        ),
        "utm_source": sorted(set(utm)),
        "utm_medium": sorted(set(utm)),
        "utm_campaign": [f"spring_{c}" for c in CHANNELS] + list(b.campaigns.campaign_id),
    }


def _categorical(name: str, values: np.ndarray, categories: list[str]) -> pd.Categorical:
    """``values`` as a categorical of ``categories`` (hashing the few distinct values
    once); a value outside them is an error, never a silent NaN."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object))
    index = {c: i for i, c in enumerate(categories)}
    unknown = [str(u) for u in uniques if u not in index]
    if unknown:
        raise ValueError(f"{name}: values outside its categories: {unknown[:5]}")
    pos = np.array([index[u] for u in uniques], dtype=np.int32)
    cat = np.where(codes >= 0, pos[np.maximum(codes, 0)] if len(pos) else -1, -1)
    return pd.Categorical.from_codes(cat, categories=categories)


def _bots(nrng, b: _Block, contacts, activity, n_human: int, first_id: int) -> dict:
    """Crawlers and link scanners: web events no person made.

    A scanner fetches the links of an email at delivery (its landing carries the
    recipient's mc_eid); crawlers fetch any page. Together they make the profile's share
    of all web events.
    """
    share = b.profile.bots.web_event_share
    scans = activity[(activity.action == "click").to_numpy() & activity.is_machine.to_numpy()]
    ueid = contacts.unique_email_id.to_numpy(dtype=object)
    sp = scans.person.to_numpy()
    parts = _BotParts()
    parts.add(
        {
            "anonymous_id": _ids("scn-", len(sp), b.config.seed, start=first_id).astype(object),
            "ts": scans.ts.to_numpy() + 1,
            "path": CLICK_PAGES.astype(object)[np.maximum(scans.page.to_numpy(), 0)],
            "detail": (
                "mc_cid="
                + scans.campaign_id.astype(str)
                + "&mc_eid="
                + pd.Series(ueid[sp], dtype=str).to_numpy()
            ).to_numpy(dtype=object)
            if len(sp)
            else np.array([], dtype=object),
            "ua": np.full(len(sp), UA_SCANNER, dtype=np.int8),
        }
    )
    wanted = int(round(share / (1.0 - share) * n_human)) - len(sp) if share > 0 else 0
    visits = max(0, -(-wanted // 4))
    pages = 1 + nrng.poisson(3.0, visits)
    v_idx = np.repeat(np.arange(visits), pages)
    start = b.t0 + nrng.random(visits) * (b.t_end - b.t0)
    v_t = (
        start[v_idx]
        + pd.Series(nrng.exponential(5.0, len(v_idx))).groupby(v_idx).cumsum().to_numpy()
    )
    parts.add(
        {
            "anonymous_id": _ids("bot-", visits, b.config.seed, start=first_id).astype(object)[
                v_idx
            ],
            "ts": v_t,
            "path": ALL_PAGES.astype(object)[nrng.integers(0, len(ALL_PAGES), len(v_idx))],
            "ua": (UA_CRAWLER + nrng.integers(0, len(CRAWLER_AGENTS), visits)[v_idx]).astype(
                np.int8
            ),
        }
    )
    bots = parts.concat()
    keep = bots["ts"] < b.t_end
    return {k: v[keep] for k, v in bots.items()}


class _BotParts:
    """Bot events in the events table's columns (no person, no user, device 0)."""

    def __init__(self) -> None:
        self.parts: list[dict] = []

    def add(self, cols: dict) -> None:
        n = len(cols["ts"])
        none = np.full(n, None, dtype=object)
        self.parts.append(
            {
                "type": np.full(n, "page", dtype=object),
                "event": none,
                "anonymous_id": cols["anonymous_id"],
                "user_id": none,
                "person": np.full(n, -1, dtype=np.int64),
                "ts": cols["ts"].astype(float),
                "path": cols["path"],
                "utm_source": none,
                "utm_medium": none,
                "utm_campaign": none,
                "email": none,
                "revenue": np.full(n, np.nan),
                "order_id": none,
                "detail": cols.get("detail", none),
                "ua": cols["ua"],
                "device": np.zeros(n, dtype=np.int8),
            }
        )

    def concat(self) -> dict:
        return {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}


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


def _email(rng, nrng, contacts: pd.DataFrame, campaigns: pd.DataFrame, t_end: int, prof):
    """What everyone subscribed at a campaign's send time did with it, and what machines did.

    People open hours after delivery and click minutes after opening, from their own
    network (a few through a VPN whose ranges mail-privacy relays share). A privacy
    proxy opens every email of its recipients minutes to hours after delivery, from
    Apple's proxy ranges or relay egress; a mail-security scanner fetches every link of
    its recipients' emails seconds after delivery. ``is_machine`` marks both.
    """
    sends = campaigns.send_time.to_numpy().astype(np.int64)
    sub_at = contacts.subscriber_at.to_numpy()
    left = np.fmin(contacts.unsubscribed_at.to_numpy(), contacts.cleaned_at.to_numpy())
    left = np.nan_to_num(left, nan=np.inf)
    sub = np.nan_to_num(sub_at, nan=np.inf)
    parts = []
    eng = contacts.eng_z.to_numpy()
    machine = contacts.is_machine_opener.to_numpy()
    scanned = contacts.is_link_scanned.to_numpy()
    open_p = _sigmoid(-0.9 + 0.9 * eng)
    click_p = _sigmoid(-1.6 + 0.8 * eng)
    em = prof.email
    mu = np.log(max(em.machine_open_delay_minutes, 0.1) * 60)
    for ci, st in enumerate(sends):
        rec = np.flatnonzero((sub <= st) & (left > st))
        if len(rec) == 0:
            continue
        k = len(rec)
        r = rng.random((k, 3))
        bounced = r[:, 0] < 0.01
        human_open = (~bounced) & (r[:, 1] < open_p[rec])
        clicked = human_open & (r[:, 2] < click_p[rec])
        open_t = st + 1 + rng.exponential(3600.0 * 8, k)
        click_t = open_t + rng.exponential(1200.0, k)
        page = rng.integers(0, len(CLICK_PAGES), k).astype(np.int8)
        mopen = (~bounced) & machine[rec]
        scan = (~bounced) & scanned[rec]
        m_t = st + nrng.lognormal(mu, 1.2, k)
        s_t = st + nrng.uniform(2, 90, k)
        vpn = nrng.random(k) < em.human_opens_via_vpn
        relay = nrng.random(k) < em.relay_proxy_share
        human_ip = np.where(vpn, IP_VPN, IP_HOME)
        rows = [
            (bounced, "bounce", st + rng.exponential(30.0, k), False, IP_HOME, -1),
            (mopen, "open", m_t, True, np.where(relay, IP_RELAY, IP_PROXY), -1),
            (human_open, "open", open_t, False, human_ip, -1),
            (clicked, "click", click_t, False, human_ip, page),
            (scan, "click", s_t, True, IP_SCANNER, page),
        ]
        for mask, action, t, is_machine, ip_kind, pg in rows:
            if not mask.any():
                continue
            parts.append(
                pd.DataFrame(
                    {
                        "campaign_id": campaigns.campaign_id.iat[ci],
                        "person": rec[mask],
                        "action": action,
                        "ts": t[mask],
                        "is_machine": is_machine,
                        "ip_kind": np.broadcast_to(np.asarray(ip_kind, np.int8), (k,))[mask],
                        "page": np.broadcast_to(np.asarray(pg, np.int8), (k,))[mask],
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
                    "ip_kind": np.array([], dtype=np.int8),
                    "page": np.array([], dtype=np.int8),
                }
            )
        )
    act = pd.concat(parts, ignore_index=True)
    act = act[act.ts < t_end].reset_index(drop=True)
    # tens of millions of actions at a million contacts: a code per row, not a string
    act["campaign_id"] = _categorical(
        "campaign_id", act.campaign_id.to_numpy(dtype=object), list(campaigns.campaign_id)
    )
    act["action"] = _categorical("action", act.action.to_numpy(dtype=object), EMAIL_ACTIONS)
    return act


def true_stage_at(world: World, ts: int) -> pd.Series:
    """Ground-truth stage of every person at epoch second ``ts`` (index = person)."""
    c = world.contacts
    o = world.orders[world.orders.ordered_at <= ts]
    per = o.groupby("person").agg(n=("order_n", "size"), last=("ordered_at", "max"))
    n_orders = per.n.reindex(c.person).fillna(0).to_numpy()
    last = per["last"].reindex(c.person).to_numpy()
    stage = _stage_rules(world, c.person.to_numpy(), np.full(len(c), float(ts)), n_orders, last)
    return pd.Series(stage, index=c.person, name="stage")


#: Days after the world's now within which a scored lead counts as a positive: it
#: becomes sales-qualified (a deal opens) or a customer in that window.
LABEL_DAYS = 30


def truth_table(world: World) -> pd.DataFrame:
    """Ground truth per known contact: stage dates, stage on ``now`` and outcomes after it.

    ``is_customer_within_30d``: first purchase within 30 days after now;
    ``is_sales_ready_within_30d``: a deal opens (SQL) or a purchase happens within
    :data:`LABEL_DAYS` days after now (the lead score's label).
    """
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
    cust = c.customer_at.to_numpy()
    sql = c.sql_at.to_numpy()
    soon = now + LABEL_DAYS * DAY
    out["is_customer_within_30d"] = (cust > now) & (cust <= now + 30 * DAY)
    out["is_sales_ready_within_30d"] = ((sql > now) & (sql <= soon)) | (
        (cust > now) & (cust <= soon)
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


@lru_cache(maxsize=4)
def _min_orders(path: str | None = None) -> tuple[int, int]:
    """Orders that make a repeat customer and a loyal one (seed ``lifecycle_stages``)."""
    import csv  # noqa: PLC0415

    if path is None:
        from lifecycle.config import settings  # noqa: PLC0415

        path = str(settings().dbt_project_dir / "seeds" / "lifecycle_stages.csv")
    with open(path, newline="") as fh:
        rows = {r["stage"]: r for r in csv.DictReader(fh)}
    return int(rows["repeat_customer"]["min_orders"]), int(rows["loyal"]["min_orders"])


def _stage_rules(
    world: World, person: np.ndarray, ts: np.ndarray, n_orders: np.ndarray, last: np.ndarray
) -> np.ndarray:
    """The lifecycle rules: stage of ``person[i]`` at ``ts[i]`` given their orders by then.

    The highest forward stage reached (MQL by the score on true events, repeat and loyal
    by the seed's order counts, advocate by a referral), unless a customer has not
    ordered for the lapse / churn days. ``n_orders`` and ``last`` (time of the latest
    order) are counted by the caller: one instant for everyone (:func:`true_stage_at`)
    or one per row (:func:`_stage_of`).
    """
    c = world.contacts
    cfg = world.config
    repeat, loyal = _min_orders()
    stage = np.full(len(person), None, dtype=object)
    for col, name in _STAGE_DATE_COLUMNS:
        t = np.nan_to_num(c[col].to_numpy()[person], nan=np.inf)
        stage[t <= ts] = name
    stage[n_orders >= repeat] = "repeat_customer"
    stage[n_orders >= loyal] = "loyal"
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
