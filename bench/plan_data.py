"""The planning benchmark's warehouse: N subscribers with history, generated in DuckDB and cached.

Everything is made by SQL over `range()` (no Python per row) into a warehouse that mailflow's own
`connect` has migrated, then kept under bench/out/plan-cache/ keyed by N and GENERATOR_VERSION, so a
re-run skips generation. The data carries every rule a plan applies: statuses (~3% not active),
suppressions (of those addresses, as `aggregate` leaves them, of ~0.7% of active subscribers, and of
1% addresses of no subscriber), block rules (a domain, a regex, an address, one allow), three past
campaigns (~3 deliveries per 10 subscribers, hard and soft bounces, soft-bounce suppressions as
`aggregate` leaves them) for frequency capping, two lists, and attributes (country, source, and a
`timezone` on ~30%). Times are relative to the generation instant (`anchor`), so a cache older than
MAX_AGE_DAYS is made again: the capping window would otherwise drift.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import log

GENERATOR_VERSION = 2  # 2: past campaigns have planned_at (the frequency cap reads it)
CACHE = Path(os.environ.get("BENCH_PLAN_CACHE", Path(__file__).resolve().parent / "out" / "plan-cache"))
MAX_AGE_DAYS = 5
PAST_CAMPAIGN_DAYS = (25, 12, 3)  # days before the anchor: all within the capping window
TLDS = ["com", "net", "org", "co.jp", "de", "fr", "com.br", "co.uk", "in"]
BLOCKED_DOMAIN = f"d20.{TLDS[20 % 9]}"  # a tail domain (~0.03% of rows)
BLOCKED_REGEX = r"^test\.[0-9]+@"  # local parts `test.<n>` (~0.2% of rows)
RULES = [("*@" + BLOCKED_DOMAIN, "block"), ("re:" + BLOCKED_REGEX, "block"),
         ("blocked.exactly.1@gmail.com", "block"), ("allowed.anyway.41@" + BLOCKED_DOMAIN, "allow")]

# h(i, salt, m): a hash of (i, salt) mod m, each property its own stream. Not hash(i, salt): DuckDB
# combines the two hashes so that streams of different salts agree modulo small numbers.
MACRO = "CREATE TEMP MACRO h(i, salt, m) AS (hash(i::UBIGINT * 1000003 + hash(salt) % 1000003) % m)::BIGINT"
SUBSCRIBERS = """
INSERT INTO subscribers (subscriber_id, email, email_original, first_name, last_name, status, status_changed_at,
                         opted_in_at, consent_source, double_opt_in, attributes, created_at, updated_at)
WITH base AS (
    SELECT i,
        h(i, 'domain', 1000) AS pd,
        floor(5000 * pow(h(i, 'tail', 1000003) / 1000003.0, 2))::INTEGER AS tail,
        ['Aiko', 'Ben', 'Chloe', 'Dmitri', 'Emma', 'Farid', 'Grace', 'Hiro', 'Ines', 'Jonas', 'Kenji', 'Lena',
         'Mateo', 'Nora', 'Omar', 'Priya', 'Quinn', 'Rosa', 'Sven', 'Yuki'][h(i, 'first', 20) + 1] AS first,
        ['Sato', 'Smith', 'Muller', 'Garcia', 'Kim', 'Rossi', 'Nowak', 'Silva', 'Tanaka', 'Dubois'][h(i, 'last', 10) + 1] AS last,
        h(i, 'status', 1000) AS ps,
        h(i, 'country', 100) AS pc,
        h(i, 'zone', 10) < 3 AS zoned,
        ['form', 'import', 'api', 'event'][h(i, 'source', 4) + 1] AS source,
        $anchor::TIMESTAMPTZ - to_seconds(h(i, 'age', 3 * 365 * 86400)) AS created
    FROM range($n) AS t(i)
),
shaped AS (
    SELECT *,
        CASE WHEN i = 1 THEN 'blocked.exactly'
             WHEN i = 41 THEN 'allowed.anyway'
             WHEN h(i, 'test', 500) = 0 THEN 'test'
             ELSE lower(first) || '.' || lower(last) END || '.' || i || '@' ||
        CASE WHEN i = 1 THEN 'gmail.com' WHEN i = 41 THEN $blocked_domain
             WHEN pd < 290 THEN 'gmail.com' WHEN pd < 300 THEN 'googlemail.com'
             WHEN pd < 360 THEN 'outlook.com' WHEN pd < 430 THEN 'hotmail.com' WHEN pd < 450 THEN 'live.com'
             WHEN pd < 530 THEN 'yahoo.com' WHEN pd < 550 THEN 'yahoo.co.jp' WHEN pd < 590 THEN 'icloud.com'
             ELSE 'd' || tail || '.' || $tlds[tail % 9 + 1] END AS email,
        CASE WHEN ps < 15 THEN 'unsubscribed' WHEN ps < 25 THEN 'bounced' WHEN ps < 30 THEN 'complained'
             ELSE 'active' END AS status,
        CASE WHEN pc < 22 THEN 'US' WHEN pc < 40 THEN 'JP' WHEN pc < 50 THEN 'DE' WHEN pc < 58 THEN 'GB'
             WHEN pc < 65 THEN 'FR' WHEN pc < 72 THEN 'BR' WHEN pc < 82 THEN 'IN' WHEN pc < 88 THEN 'KR'
             WHEN pc < 94 THEN 'AU' ELSE 'MX' END AS country
    FROM base
),
final AS (
    SELECT i + 1 AS subscriber_id, email, email AS email_original, first AS first_name, last AS last_name, status,
        CASE WHEN status <> 'active' THEN created + INTERVAL 30 DAY END AS status_changed_at,
        created AS opted_in_at, source AS consent_source, 'confirmed' AS double_opt_in,
        CASE WHEN zoned THEN json_object('country', country, 'timezone',
                 CASE country WHEN 'US' THEN 'America/New_York' WHEN 'JP' THEN 'Asia/Tokyo'
                      WHEN 'DE' THEN 'Europe/Berlin' WHEN 'GB' THEN 'Europe/London' WHEN 'FR' THEN 'Europe/Paris'
                      WHEN 'BR' THEN 'America/Sao_Paulo' WHEN 'IN' THEN 'Asia/Kolkata' WHEN 'KR' THEN 'Asia/Seoul'
                      WHEN 'AU' THEN 'Australia/Sydney' ELSE 'America/Mexico_City' END, 'source', source)
             ELSE json_object('country', country, 'source', source) END AS attributes,
        created AS created_at, created AS updated_at
    FROM shaped
)
SELECT * FROM final ORDER BY subscriber_id
"""

MEMBERSHIPS = """
INSERT INTO list_memberships (list_id, subscriber_id, created_at)
SELECT l.list_id, s.subscriber_id, s.created_at
FROM subscribers AS s, lists AS l
WHERE (l.name = 'newsletter' AND h(s.subscriber_id, 'newsletter', 100) < 80)
   OR (l.name = 'promotions' AND h(s.subscriber_id, 'promotions', 100) < 40)
"""

# Who got which past campaign: ~10% each, independently, plus a soft-bounce group (0.2%) that got
# all three and soft-bounced each time (3 in 30 days: suppressed, as `aggregate` does it). Single
# soft bounces only where a subscriber got one campaign, so whether a frequency cap counts
# deliveries or recipients, a subscriber it may cap has the same count either way.
HISTORY = """
CREATE TEMP TABLE history AS
WITH picked AS (
    SELECT subscriber_id, email, status,
        h(subscriber_id, 'soft', 500) = 0 AND status = 'active' AS soft_group,
        h(subscriber_id, 'past-1', 10) = 0 AS m1,
        h(subscriber_id, 'past-2', 10) = 0 AS m2,
        h(subscriber_id, 'past-3', 10) = 0 AS m3,
        h(subscriber_id, 'once', 50) = 0 AS soft_once
    FROM subscribers
)
SELECT subscriber_id, email, status, soft_group,
    soft_group OR m1 AS m1, soft_group OR m2 AS m2, soft_group OR m3 AS m3,
    soft_once AND m1::INT + m2::INT + m3::INT = 1 AS soft_once
FROM picked
WHERE soft_group OR m1 OR m2 OR m3
"""

DELIVERIES = """
INSERT INTO deliveries (campaign_id, subscriber_id, variant, chunk_id, status, smtp_code, enhanced_status, detail,
                        attempts, sent_at, kind, reason, provider)
WITH sent AS (
    SELECT 'past-' || k AS campaign_id, h.*, $anchor::TIMESTAMPTZ - to_days([$d1, $d2, $d3][k]) AS sent_at
    FROM history AS h, range(1, 4) AS c(k)
    WHERE [h.m1, h.m2, h.m3][k]
),
final AS (
    SELECT campaign_id, subscriber_id, 'A' AS variant, (subscriber_id // 1000)::INTEGER AS chunk_id,
        CASE WHEN status = 'bounced' OR soft_group OR soft_once THEN 'bounced' ELSE 'delivered' END AS status,
        CASE WHEN status = 'bounced' THEN 550 WHEN soft_group OR soft_once THEN 552 ELSE 250 END AS smtp_code,
        CASE WHEN status = 'bounced' THEN '5.1.1' WHEN soft_group OR soft_once THEN '5.2.2' ELSE '2.0.0' END,
        NULL AS detail, 1 AS attempts, sent_at,
        CASE WHEN status = 'bounced' THEN 'hard' WHEN soft_group OR soft_once THEN 'soft' END AS kind,
        CASE WHEN status = 'bounced' THEN 'user_unknown' WHEN soft_group OR soft_once THEN 'mailbox_full' END,
        CASE split_part(email, '@', 2) WHEN 'gmail.com' THEN 'gmail' WHEN 'googlemail.com' THEN 'gmail'
             WHEN 'outlook.com' THEN 'microsoft' WHEN 'hotmail.com' THEN 'microsoft' WHEN 'live.com' THEN 'microsoft'
             WHEN 'yahoo.com' THEN 'yahoo' WHEN 'yahoo.co.jp' THEN 'yahoo' ELSE 'other' END AS provider
    FROM sent
)
SELECT * FROM final ORDER BY campaign_id, subscriber_id
"""

PAST_RECIPIENTS = """
INSERT INTO campaign_recipients (campaign_id, subscriber_id, variant, chunk_id)
SELECT campaign_id, subscriber_id, variant, chunk_id FROM deliveries ORDER BY campaign_id, subscriber_id
"""

PAST_CAMPAIGNS = """
INSERT INTO campaigns (campaign_id, name, status, spec, audience_size, chunk_count, planned_at, created_at, updated_at)
SELECT campaign_id, campaign_id, 'sent', $spec::JSON, count(*), count(DISTINCT chunk_id), min(sent_at), min(sent_at),
       max(sent_at)
FROM deliveries GROUP BY campaign_id
"""

# Hard bounces, complaints and unsubscribes as `aggregate` and the tracking service leave them;
# 0.5% of active subscribers suppressed by a log not yet folded into their status; soft-bounce
# suppressions of the soft group; and addresses of no subscriber (an imported suppression list).
SUPPRESSIONS = """
INSERT INTO suppressions (email, cause, created_at)
WITH causes AS (
    SELECT email,
        CASE status WHEN 'bounced' THEN 'bounce:user_unknown' WHEN 'complained' THEN 'complaint'
             WHEN 'unsubscribed' THEN 'unsubscribe'
             ELSE CASE WHEN h(subscriber_id, 'suppressed', 200) = 0 THEN 'unsubscribe' END END AS cause,
        coalesce(status_changed_at, created_at) AS created_at
    FROM subscribers
    WHERE subscriber_id NOT IN (SELECT subscriber_id FROM history WHERE soft_group)
),
soft AS (
    SELECT email, 'soft_bounces' AS cause, $anchor::TIMESTAMPTZ - to_days($d3) AS created_at
    FROM history WHERE soft_group
),
elsewhere AS (
    SELECT 'gone.' || i || '@' || ['gmail.com', 'yahoo.com', 'example.org'][i % 3 + 1] AS email, 'import' AS cause,
        $anchor::TIMESTAMPTZ - INTERVAL 400 DAY AS created_at
    FROM range($n // 100) AS t(i)
)
SELECT * FROM causes WHERE cause IS NOT NULL
UNION ALL SELECT * FROM soft
UNION ALL SELECT * FROM elsewhere
"""


def cached_warehouse(n: int) -> tuple[Path, dict]:
    """The cached warehouse of `n` subscribers (made if missing or stale) and its meta: anchor, seconds."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"plan-{n}-v{GENERATOR_VERSION}.duckdb"
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() and path.exists() else None
    if meta and datetime.now(UTC) - datetime.fromisoformat(meta["anchor"]) < timedelta(days=MAX_AGE_DAYS):
        log(f"plan: cached warehouse of {n:,} subscribers ({path.stat().st_size / 2**20:.0f} MB, made "
            f"{meta['anchor'][:16]} in {meta['seconds']:.1f}s): generation skipped")
        return path, {**meta, "cached": True}
    for old in CACHE.glob(f"plan-{n}-v*"):  # an older generator's files, or this one's stale ones
        old.unlink()
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    log(f"plan: generating a warehouse of {n:,} subscribers in {CACHE}")
    meta = generate(tmp, n)
    tmp.rename(path)
    meta_path.write_text(json.dumps(meta) + "\n")
    log(f"plan: generated {path.name} ({path.stat().st_size / 2**20:.0f} MB) in {meta['seconds']:.1f}s: "
        f"{meta['counts']}")
    return path, {**meta, "cached": False}


def generate(path: Path, n: int, anchor: datetime | None = None) -> dict:
    """Write the scenario's data into a fresh warehouse at `path`, migrated by mailflow itself."""
    from mailflow.tasks.core.rules import add_rule
    from mailflow.tasks.core.warehouse import connect, transaction
    from mailflow.tasks.plan.campaign import CampaignSpec

    anchor = anchor or datetime.now(UTC).replace(microsecond=0)
    start = time.perf_counter()
    params = {"n": n, "anchor": anchor, "d1": PAST_CAMPAIGN_DAYS[0], "d2": PAST_CAMPAIGN_DAYS[1],
              "d3": PAST_CAMPAIGN_DAYS[2]}
    spec = CampaignSpec(name="past", campaign_id="past", from_addr="News <news@example.com>", subject="News",
                        template="newsletter").as_dict()
    with connect(path, memory_limit="8GB") as con:
        con.execute("SET enable_progress_bar = false")
        con.execute(MACRO)
        with transaction(con):
            con.execute(SUBSCRIBERS, {"n": n, "anchor": anchor, "tlds": TLDS, "blocked_domain": BLOCKED_DOMAIN})
            con.execute("INSERT INTO lists (name) VALUES ('newsletter'), ('promotions')")
            con.execute(MEMBERSHIPS)
            con.execute(HISTORY)
            con.execute(DELIVERIES, {k: params[k] for k in ("anchor", "d1", "d2", "d3")})
            con.execute(PAST_RECIPIENTS)
            con.execute(PAST_CAMPAIGNS, {"spec": json.dumps(spec)})
            con.execute(SUPPRESSIONS, {k: params[k] for k in ("n", "anchor", "d3")})
            for pattern, action in RULES:
                add_rule(con, pattern, action)
        counts = {table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                  for table in ("subscribers", "list_memberships", "deliveries", "suppressions", "address_rules")}
        con.execute("CHECKPOINT")
    return {"n": n, "version": GENERATOR_VERSION, "anchor": anchor.isoformat(),
            "seconds": time.perf_counter() - start, "counts": counts}


def copy_warehouse(source: Path, target: Path) -> Path:
    """A private copy to plan on: planning writes, and the cache must stay as generated."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target
