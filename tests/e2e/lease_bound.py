#!/usr/bin/env python3
"""lease_bound.py - the measured overshoot of one lease bucket (global mode lease) next to the
documented bound, from what the hosts admitted (tests/e2e/lt_gload's lines: send ns, answer ns,
status) and what each agent measured (GET /api/v1/global/status: lease.lateMsMax, delta).

    lease_bound.py --limit L --window-ms W --rate R --interval-ms S --cost N [--conns K] \
        a=LOADFILE=STATUSFILE b=... [c=...]

The bound (README "Global limits across hosts", mode lease): in every window w of W ms aligned
to unix time, the hosts together admit at most

    L + N * R * delta

with L = R * W the tokens a window and delta the latest any host's tick ran after its time
(measured by the agents: GET /api/v1/global/status .lease.lateMsMax). Counted conservatively
from the client's side: an admission counts in every window its [send, answer] meets, so the
measured figure is never below the true one; it is above it by at most the admissions in flight
across the window's two edges, one per connection of each host at each edge: the resolution,
2 * N * K * cost tokens. "within" is measured <= bound + resolution (the truth is then within
the bound up to the resolution); "within_strict" is measured <= bound. Only whole windows inside
the run are taken. Prints one JSON object; exit status 0 when "within", 1 otherwise.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, required=True)
    ap.add_argument("--window-ms", type=int, required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--interval-ms", type=int, required=True)
    ap.add_argument("--cost", type=int, required=True)
    ap.add_argument("--conns", type=int, default=1)
    ap.add_argument("hosts", nargs="+")
    a = ap.parse_args()
    w_ns = a.window_ms * 1000000
    per = {}
    delta = 0
    first, last = None, None
    for spec in a.hosts:
        h, lf, sf = spec.split("=")
        adm = []
        with open(lf) as f:
            for line in f:
                p = line.split()
                if len(p) != 3:
                    continue
                s, r, st = int(p[0]), int(p[1]), int(p[2])
                first = s if first is None else min(first, s)
                last = r if last is None else max(last, r)
                if st == 200:
                    adm.append((s, r))
        per[h] = adm
        with open(sf) as f:
            delta = max(delta, json.load(f).get("lease", {}).get("lateMsMax", 0))
    n = len(per)
    windows = {}
    if first is not None:
        k0 = first // w_ns + 1  # whole windows only
        k1 = last // w_ns  # exclusive
        for k in range(k0, k1):
            lo, hi = k * w_ns, (k + 1) * w_ns
            tot = {}
            for h, adm in per.items():
                tot[h] = a.cost * sum(1 for s, r in adm if r >= lo and s < hi)
            windows[k * a.window_ms] = tot
    bound = a.limit + n * a.rate * delta / 1000.0
    resolution = 2 * n * a.conns * a.cost
    sums = {w: sum(t.values()) for w, t in windows.items()}
    worst = max(sums.values()) if sums else 0
    out = {
        "limit": a.limit,
        "hosts": n,
        "delta_ms": delta,
        "bound": round(bound, 1),
        "windows": len(windows),
        "admitted_max": worst,
        "overshoot": worst - a.limit,
        "overshoot_bound": round(bound - a.limit, 1),
        "resolution": resolution,
        "per_window": {str(w): t for w, t in sorted(windows.items())},
        "within": bool(windows) and worst <= bound + resolution,
        "within_strict": bool(windows) and worst <= bound,
    }
    print(json.dumps(out))
    return 0 if out["within"] else 1


if __name__ == "__main__":
    sys.exit(main())
