#!/usr/bin/env python3
"""Golden vectors for `sit audit stci`'s Python-arithmetic replay (crates/sit-core/src/stci).

STCI's reference indexer computes with Python floats: statistics.mean, a float blend,
statistics.stdev, round(x, 2). This script runs exactly those operations on constructed and
seeded-random baskets and writes what Python returns, so the Rust replay is checked against
the peer's own arithmetic. Regenerate (Python >= 3.11) with:

    python3 scripts/stci-python-golden.py > crates/sit-core/tests/data/stci-python.jsonl
"""
import json
import random
import statistics
import sys

assert sys.version_info >= (3, 11), "statistics.stdev changed in 3.11; use 3.11 or newer"


def case(name, inputs, outputs, ratio=3.0, places=2):
    xs = [float(t) for t in inputs]
    ys = [float(t) for t in outputs]
    avg_in = statistics.mean(xs)
    avg_out = statistics.mean(ys)
    blended = (avg_in + ratio * avg_out) / (1 + ratio)
    disp = statistics.stdev(xs) if len(xs) > 1 else None
    f = lambda v: format(round(v, places), f".{places}f")
    return {
        "name": name,
        "inputs": inputs,
        "outputs": outputs,
        "input_rate": f(avg_in),
        "output_rate": f(avg_out),
        "blended_rate": f(blended),
        "dispersion": None if disp is None else f(disp),
    }


def text(v):
    s = f"{v:.6f}".rstrip("0").rstrip(".")
    return s if s else "0"


cases = [
    # exact decimal means on a half: Python rounds the double, not the decimal
    case("half 1.135 -> 1.13", ["1.13", "1.14"], ["1.13", "1.14"]),
    case("half 1.145 -> 1.15", ["1.12", "1.17"], ["0", "0"]),
    case("half 1.075 single", ["1.075"], ["2.675"]),
    case("exact binary tie 0.125", ["0.1", "0.15"], ["0.125", "0.125"]),
    case("stdev of 1 2 4", ["1", "2", "4"], ["0.005", "0.015", "0.01"]),
]
rng = random.Random(20261130)
for i in range(300):
    n = rng.randint(1, 40)
    scale = rng.choice([1, 10, 100, 1000, 100000, 1000000])
    ins = [text(rng.randint(0, 20 * scale) / scale * rng.choice([0.01, 0.1, 1, 10])) for _ in range(n)]
    outs = [text(rng.randint(0, 80 * scale) / scale * rng.choice([0.01, 0.1, 1, 10])) for _ in range(n)]
    cases.append(case(f"random {i}", ins, outs))
for c in cases:
    print(json.dumps(c))
