"""Recompute a served SIT settlement value independently of the oracle's code.

Usage: recompute_settlement.py BASE_URL TIER PERIOD

Fetches the settlement record at BASE_URL/v1/settlement/TIER/PERIOD, then every daily record it
lists from BASE_URL/v1/index/TIER/DATE?version=N, and checks from those daily records alone:
- each listed version states the listed status and value and was published by the final
  settlement time, and the next version (if any) was published after it (so the listed one was
  in force);
- every calendar day of the period is listed (a FINAL record);
- the value: the arithmetic mean of the days' values (a SUSPENDED day per the contract's
  fallback), rounded once, half to even, at the contract's scale (Python's decimal module).
Prints one JSON line {"value", "days_counted", "status"} and exits 0, or names the difference
and exits 1. Standard library only.
"""

import datetime
import decimal
import json
import sys
import urllib.error
import urllib.request


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def fail(msg):
    print("MISMATCH " + msg)
    sys.exit(1)


def main():
    base, tier, period = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    status, body = get(f"{base}/v1/settlement/{tier}/{period}")
    if status != 200:
        fail(f"settlement endpoint answered {status}: {body[:200]!r}")
    rec = json.loads(body)
    contract = rec["contract"]
    cut = rec["final_settlement_time"] if rec["status"] == "FINAL" else rec["computed_at"]
    first = datetime.date.fromisoformat(rec["period"]["first"])
    last = datetime.date.fromisoformat(rec["period"]["last"])
    listed = {d["date"]: d for d in rec["days"]}
    if rec["status"] == "FINAL":
        day = first
        while day <= last:
            if day.isoformat() not in listed:
                fail(f"{day} of the period is not listed")
            day += datetime.timedelta(days=1)
    values = []
    for date, d in sorted(listed.items()):
        s, b = get(f"{base}/v1/index/{tier}/{date}?version={d['version']}")
        if s != 200:
            fail(f"{date} v{d['version']}: answered {s}")
        daily = json.loads(b)
        if daily["status"] != d["status"] or daily.get("value") != d.get("value"):
            fail(f"{date}: served {daily['status']} {daily.get('value')}, listed {d['status']} {d.get('value')}")
        if daily["published_at"] > cut:
            fail(f"{date} v{d['version']} published {daily['published_at']} after {cut}")
        s, b = get(f"{base}/v1/index/{tier}/{date}?version={d['version'] + 1}")
        if s == 200 and json.loads(b)["published_at"] <= cut:
            fail(f"{date}: version {d['version'] + 1} was in force at {cut}")
        st = daily["status"]
        if st == "BASE":
            fail(f"{date}: BASE is not a settlement value")
        if st == "SUSPENDED" and contract["suspended"] == "exclude":
            continue
        if daily.get("value") is None:
            fail(f"{date}: {st} with no value")
        values.append(decimal.Decimal(daily["value"]))
    if not values:
        fail("no day counts")
    ctx = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)
    mean = ctx.divide(sum(values, decimal.Decimal(0)), decimal.Decimal(len(values)))
    q = decimal.Decimal(1).scaleb(-contract["scale"])
    value = mean.quantize(q, rounding=decimal.ROUND_HALF_EVEN)
    if decimal.Decimal(rec["value"]) != value or rec["days_counted"] != len(values):
        fail(f"recomputed {value} over {len(values)} days, the record says {rec['value']} over {rec['days_counted']}")
    print(json.dumps({"value": str(value), "days_counted": len(values), "status": rec["status"]}))


if __name__ == "__main__":
    main()
