#!/usr/bin/env python3
"""Export list prices from the `genai-prices` catalogue (PyPI, maintained by Pydantic) to the
JSON that `sit prices diff|import --catalog FILE` reads.

    python3 -m venv /tmp/gp && /tmp/gp/bin/pip install genai-prices
    /tmp/gp/bin/python scripts/export-genai-prices.py [--all] > prices/genai-prices.json

By default only the models `providers.toml` names are exported (the file stays small enough to
keep in the repository; `--all` exports every model of the catalogue). Prices are USD per million tokens, as decimal strings exactly as the
catalogue writes them; each model's dated history (StartDateConstraint) becomes entries with
`effective_from`; the first entry of a history has none (in force since before the catalogue's
earliest date). Variants (service tiers, batch) are left out: the oracle probes the default tier.
Prices tiered by context length give their base tier (the probes' prompts are far shorter).
"""
import datetime
import json
import sys
from importlib import metadata

import tomllib

import genai_prices.data as data
from genai_prices import types

PROVIDERS = {"openai", "anthropic", "google", "together", "fireworks", "groq", "deepinfra",
             "mistral", "openrouter", "x-ai"}


def names(clause):
    """Every literal model name a match clause accepts (equals, starts_with)."""
    out = []
    if clause is None:
        return out
    for attr in ("equals", "starts_with"):
        v = getattr(clause, attr, None)
        if isinstance(v, str):
            out.append(v)
    for attr in ("or_", "and_"):
        for c in getattr(clause, attr, None) or []:
            out.extend(names(c))
    return out


def price(p):
    # Tiered prices (by context length) give their base tier: the probes' prompts are short.
    d = lambda x: None if x is None else str(getattr(x, "base", x))
    return {"input": d(p.input_mtok), "output": d(p.output_mtok), "cached_input": d(p.cache_read_mtok)}


def history(prices):
    if isinstance(prices, types.ModelPrice):
        return [dict(effective_from=None, **price(prices))]
    out = []
    for cp in prices:  # ConditionalPrice, oldest first
        c = cp.constraint
        start = getattr(c, "start_date", None)
        when = None if start is None else f"{start.isoformat()}T00:00:00Z"
        out.append(dict(effective_from=when, **price(cp.prices)))
    return out


def configured():
    """(provider, model name) of every endpoint in providers.toml, with the catalogue's
    spelling of Fireworks' model paths."""
    with open("providers.toml", "rb") as f:
        eps = tomllib.load(f).get("endpoints", [])
    return {(e["provider"], e["model"].removeprefix("accounts/fireworks/models/")) for e in eps}


def main():
    everything = "--all" in sys.argv
    wanted = None if everything else configured()
    providers = []
    for p in data.providers:
        if not everything and p.id not in PROVIDERS:
            continue
        models = []
        for m in p.models:
            if isinstance(m.prices, types.ModelPrice) and m.prices.input_mtok is None:
                continue
            if wanted is not None and not any((p.id, n) in wanted for n in [m.id] + names(m.match)):
                continue
            models.append({"id": m.id, "names": sorted(set([m.id] + names(m.match))),
                           "prices": history(m.prices)})
        if models or everything:
            providers.append({"id": p.id, "models": models})
    json.dump({
        "source": f"genai-prices {metadata.version('genai-prices')}",
        "exported_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "unit": "USD per 1,000,000 tokens",
        "providers": providers,
    }, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
