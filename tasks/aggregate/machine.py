"""Machine opens and clicks: flag the events of the recipients this run touched (is_machine, machine_reason).

The rules, first match wins (sql/queries/machine.sql applies them):
  opens  - an image proxy's user agent (machine_data.AGENTS), Apple Mail Privacy Protection (user agent
           "Mozilla/5.0" alone, from Apple's networks or from an address the log keeps hashed or not at all),
           Google's or Yahoo's image-proxy networks, or an open within fast_open_seconds of the delivery;
  clicks - a scanner's or link previewer's user agent, a burst over burst_links distinct links (every link of
           a message with fewer) before any human open, or a click within fast_click_seconds of the delivery
           before any human open.
User agents and addresses are classified once per distinct value in Polars, not per event in SQL.
"""

from __future__ import annotations

import json
from ipaddress import ip_address, ip_network
from pathlib import Path

import duckdb
import polars as pl

from mailflow.settings_engagement import EngagementSettings
from mailflow.tasks.aggregate.machine_data import AGENTS, NETWORKS
from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.core.warehouse import inputs

LINKS_FILE = "links.json"  # campaigns/<id>/links.json: the campaign's tracked links, by index
_IPV4 = r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$"


def flag_machine_events(con: duckdb.DuckDBPyConnection, home: Path, engagement: EngagementSettings) -> None:
    """Inside the aggregate's transaction, after new_events and touched_pairs are filled: TEMP machine_flags
    holds every open and click of the touched pairs (new and old) with its verdict."""
    con.execute(q("stage_machine_candidates"))
    con.execute(q("stage_earlier_human_opens"))
    agents = classify_agents(con.sql(q("candidate_agents")).pl().to_series())
    networks = classify_addresses(con.sql(q("candidate_addresses")).pl().to_series())
    campaigns = [row[0] for row in con.execute(q("touched_campaign_ids")).fetchall()]
    links = campaign_links(home, campaigns)
    with inputs(con, input_machine_agents=agents, input_machine_networks=networks, input_campaign_links=links):
        con.execute(q("stage_machine_flags"), {
            "fast_open": engagement.fast_open_seconds, "fast_click": engagement.fast_click_seconds,
            "burst_seconds": engagement.burst_seconds, "burst_links": engagement.burst_links})


def classify_agents(agents: pl.Series) -> pl.DataFrame:
    """(user_agent, applies_to, reason) for each distinct user agent a rule of AGENTS names."""
    lower = agents.str.to_lowercase()
    applies, reason = pl.Series([None] * len(agents), dtype=pl.String), pl.Series([None] * len(agents), dtype=pl.String)
    for pattern, scope, why in reversed(AGENTS):  # the first rule wins: applied last
        hit = lower.str.contains(pattern, literal=True).fill_null(False)
        applies = applies.zip_with(~hit, pl.Series([scope] * len(agents), dtype=pl.String))
        reason = reason.zip_with(~hit, pl.Series([why] * len(agents), dtype=pl.String))
    frame = pl.DataFrame({"user_agent": agents, "applies_to": applies, "reason": reason})
    return frame.filter(pl.col("reason").is_not_null())


def classify_addresses(addresses: pl.Series) -> pl.DataFrame:
    """(ip, network) for each distinct address as logged: a network of NETWORKS, or `unreadable` for one
    logged hashed (no network can be told); plain addresses elsewhere are left out."""
    frame = pl.DataFrame({"ip": addresses}).filter(pl.col("ip").is_not_null())
    v4 = frame.filter(pl.col("ip").str.contains(_IPV4))
    octets = v4["ip"].str.split(".").list.eval(pl.element().cast(pl.Int64))
    number = v4.with_columns(n=octets.list.get(0) * 2**24 + octets.list.get(1) * 2**16 + octets.list.get(2) * 2**8
                             + octets.list.get(3))
    network = pl.lit(None, dtype=pl.String)
    for name, cidrs in reversed(NETWORKS.items()):
        for cidr in cidrs:
            net = ip_network(cidr)
            if net.version == 4:
                inside = pl.col("n").is_between(int(net.network_address), int(net.broadcast_address))
                network = pl.when(inside).then(pl.lit(name)).otherwise(network)
    v6 = frame.filter(pl.col("ip").str.contains(":"))["ip"].to_list()
    hashed = frame.filter(~pl.col("ip").str.contains(_IPV4) & ~pl.col("ip").str.contains(":"))
    return pl.concat([
        number.select("ip", network.alias("network")),
        hashed.select("ip", pl.lit("unreadable").alias("network")),  # tracking.ip = hash: no network can be told
        pl.DataFrame({"ip": v6, "network": [_v6_network(text) for text in v6]}, schema={"ip": pl.String, "network": pl.String}),
    ]).filter(pl.col("network").is_not_null())


def _v6_network(text: str) -> str | None:
    try:
        address = ip_address(text)
    except ValueError:
        return "unreadable"
    return next((name for name, cidrs in NETWORKS.items() for cidr in cidrs
                 if ip_network(cidr).version == 6 and address in ip_network(cidr)), None)


def campaign_links(home: Path, campaign_ids: list[str]) -> pl.DataFrame:
    """(campaign_id, links): how many tracked links each campaign's message has, where links.json says."""
    rows = []
    for campaign_id in campaign_ids:
        try:
            links = json.loads((home / "campaigns" / campaign_id / LINKS_FILE).read_text(encoding="utf-8"))["links"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # no links.json (an old plan, or a campaign of another home): the burst_links rule alone
        rows.append((campaign_id, len(links)))
    return pl.DataFrame(rows, schema={"campaign_id": pl.String, "links": pl.Int64}, orient="row")
