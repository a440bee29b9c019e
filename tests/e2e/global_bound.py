#!/usr/bin/env python3
"""global_bound.py - the measured overshoot of one global bucket (mode replicate) next to the
documented bound, from what the hosts admitted (tests/e2e/lt_gload's lines: send ns, answer ns,
status) and what each host measured (GET /api/v1/global/status: tau per origin).

    global_bound.py --capacity C --rate R --cost N  a=LOADFILE=STATUSFILE  b=...  [c=...]

The bucket: capacity C tokens, leak R tokens/s; every request costs N tokens. The bound (README
"Global limits across hosts"): over any window of length t, the hosts together admit at most

    C + R*t + max over i of  sum over j != i of  min(W_j(tau_ij), C + R*tau_ij)

where tau_ij is the longest time host j's spend stayed unseen at host i (measured by i from the
records' event times) and W_j(tau) the most host j admitted in any window of length tau (the
measured lambda_j * tau). Everything here is taken conservatively from the client's side: an
admission happened somewhere between its send and its answer, so
  * a window from admission k to admission m is taken as t = send_m - answer_k (never longer
    than the true one, so C + R*t is never larger than the true allowance), holding k, m and
    every admission whose [send, answer] lies inside [answer_k, send_m] (never more than truly
    in it); the overshoot is the largest over all such windows ("overshoot"), and over the
    whole run ("overshoot_run");
  * W_j counts every admission whose [send, answer] meets the window: never fewer than truly in it.
Prints one JSON object; exit status 0 when measured <= bound, 1 otherwise.
"""
import argparse
import bisect
import json
import sys


def load(path):
    out = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) == 3:
                out.append((int(p[0]), int(p[1]), int(p[2])))
    return out


def most_in_window(adm, tau_ns):
    """Most admissions whose [send, answer] meets one window of length tau_ns."""
    # [s, r] meets [w, w + tau] iff w lies in [s - tau, r]: the deepest overlap of those
    ev = []
    for s, r, _ in adm:
        ev.append((s - tau_ns, 0))  # opens before closes at one instant
        ev.append((r, 1))
    ev.sort()
    best = cur = 0
    for _, kind in ev:
        if kind == 0:
            cur += 1
            best = max(best, cur)
        else:
            cur -= 1
    return best


def worst_window(every, cap, rate, cost):
    """The largest admitted - (C + R*t) over windows between two admissions (see above)."""
    by_send = sorted(every)
    best = cost - cap  # one admission alone
    for k in by_send:
        inside = sorted(r for s, r, _ in by_send if s >= k[1])
        for m in by_send:
            if m[0] < k[1]:
                continue
            n = bisect.bisect_right(inside, m[0]) + 2
            best = max(best, n * cost - (cap + rate * (m[0] - k[1]) / 1e9))
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capacity", type=float, required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--cost", type=int, required=True)
    ap.add_argument("hosts", nargs="+")
    a = ap.parse_args()
    hosts, adm, status = [], {}, {}
    for spec in a.hosts:
        h, lf, sf = spec.split("=", 2)
        hosts.append(h)
        adm[h] = [x for x in load(lf) if x[2] == 200]
        with open(sf) as f:
            status[h] = json.load(f)
    every = sorted(x for h in hosts for x in adm[h])
    if not every:
        print(json.dumps({"error": "nothing admitted"}))
        return 1
    first_answer = min(x[1] for x in every)
    last_send = max(x[0] for x in every)
    t = max(0, last_send - first_answer) / 1e9
    admitted = len(every) * a.cost
    allowance = a.capacity + a.rate * t
    tau = {}
    for i in hosts:
        for o in status[i].get("origins", []):
            j = o["host"].removeprefix("host-")
            if j in hosts and j != i:
                tau[(i, j)] = o["tauMsMax"] / 1e3
    terms = {}
    for i in hosts:
        s = 0.0
        for j in hosts:
            if j == i:
                continue
            if (i, j) not in tau:
                print(json.dumps({"error": f"host {i} measured no tau for {j}"}))
                return 1
            tij = tau[(i, j)]
            w = most_in_window(adm[j], int(tij * 1e9)) * a.cost
            s += min(w, a.capacity + a.rate * tij)
        terms[i] = s
    term = max(terms.values())
    run = admitted - allowance
    measured = max(run, worst_window(every, a.capacity, a.rate, a.cost))
    out = {
        "hosts": len(hosts),
        "window_s": round(t, 3),
        "admitted": admitted,
        "per_host": {h: len(adm[h]) * a.cost for h in hosts},
        "allowance": round(allowance, 1),
        "overshoot": round(measured, 1),
        "overshoot_run": round(run, 1),
        "bound": round(term, 1),
        "tau_ms": {f"{i}<-{j}": round(v * 1e3) for (i, j), v in sorted(tau.items())},
        "within": measured <= term,
    }
    print(json.dumps(out))
    return 0 if measured <= term else 1


if __name__ == "__main__":
    sys.exit(main())
