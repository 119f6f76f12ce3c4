"""The hedge figures of `sit hedge`, computed with numpy from the same CSV files.

Usage: hedge_numpy.py COSTS.csv INDEX.csv TIER WINDOW
Prints JSON: h, effectiveness, correlation, sd_unhedged, sd_hedged, basis_mean, basis_sd,
basis_change_sd, rolling_last_h, rolling_last_r2, observations. Daily dates only.
"""

import csv
import json
import sys

import numpy as np


def read(path, cols):
    with open(path, newline="") as f:
        return [tuple(r[c] for c in cols) for r in csv.DictReader(f)]


costs = {d: float(c) / float(u) for d, c, u in read(sys.argv[1], ("date", "cost", "units"))}
tier = sys.argv[3]
index = {d: float(v) for t, d, v in read(sys.argv[2], ("tier", "date", "value")) if t == tier and v != ""}
window = int(sys.argv[4])
dates = sorted(set(costs) & set(index))
s = np.array([costs[d] for d in dates])
f = np.array([index[d] for d in dates])
ds, df = np.diff(s), np.diff(f)
c = np.cov(ds, df, ddof=1)
h = c[0, 1] / c[1, 1]
hedged = ds - h * df
basis = s - h * f
w_ds, w_df = ds[-window:], df[-window:]
wc = np.cov(w_ds, w_df, ddof=1)
print(json.dumps({
    "observations": len(dates),
    "h": h,
    "effectiveness": 1 - np.var(hedged, ddof=1) / np.var(ds, ddof=1),
    "correlation": np.corrcoef(ds, df)[0, 1],
    "sd_unhedged": np.std(ds, ddof=1),
    "sd_hedged": np.std(hedged, ddof=1),
    "basis_mean": basis.mean(),
    "basis_sd": np.std(basis, ddof=1),
    "basis_change_sd": np.std(np.diff(basis), ddof=1),
    "rolling_last_h": wc[0, 1] / wc[1, 1],
    "rolling_last_r2": wc[0, 1] ** 2 / (wc[0, 0] * wc[1, 1]),
}))
