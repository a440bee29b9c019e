#!/usr/bin/env python3
"""metric_names.py SCRAPE FILE...: every metric a Grafana dashboard (JSON) or a Prometheus
rule file (YAML) queries is one the agent exports.

SCRAPE is a /metrics text of a live agent. A name counts as exported when a sample of that
exact name is in SCRAPE, or, for the names of a feature the scrape had off (GATED below),
when the agent's source writes it. Prints each missing name with the file and query that
uses it, and exits 1 if there is any; 2 on a file it cannot read.
"""
import json
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
# Series only present while a feature is on; the test's agent runs without it. They must be
# written by the agent's source.
GATED = {
    "lt_outbox_backlog": "kafka.enabled",
    "lt_outbox_max_events": "kafka.enabled",
    "lt_outbox_oldest_age_seconds": "kafka.enabled",
    "lt_outbox_dropped_total": "kafka.enabled",
    "lt_global_stale": "global",
}
# PromQL words that look like identifiers but name no metric
WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "and", "or", "unless", "offset", "rate", "irate", "increase", "delta", "idelta",
    "deriv", "histogram_quantile", "abs", "absent", "ceil", "floor", "round", "clamp",
    "clamp_min", "clamp_max", "label_replace", "label_join", "vector", "scalar", "time",
    "sort", "sort_desc", "changes", "resets", "avg_over_time", "max_over_time",
    "min_over_time", "sum_over_time", "last_over_time", "humanize", "inf", "nan",
}


def exprs_of(path):
    text = open(path).read()
    if path.endswith(".json"):
        out = []

        def walk(p):
            for t in p.get("targets", []):
                out.append(t["expr"])
            for sub in p.get("panels", []):
                walk(sub)

        walk(json.loads(text))
        return out
    return [m.group(1) for m in re.finditer(r"^\s*expr:\s*(.+)$", text, re.M)]


def names_of(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\$__\w+", "", e)  # Grafana variables
    ids = re.findall(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)", e)
    return {i for i in ids if i not in WORDS}


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        scrape = open(sys.argv[1]).read()
    except OSError as err:
        print(f"metric_names.py: {err}", file=sys.stderr)
        return 2
    live = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", scrape, re.M))
    src = ""
    for d in ("agent", "lib"):
        for f in sorted(os.listdir(os.path.join(ROOT, d))):
            if f.endswith(".c"):
                src += open(os.path.join(ROOT, d, f)).read()
    bad = 0
    checked = 0
    for path in sys.argv[2:]:
        try:
            exprs = exprs_of(path)
        except (OSError, ValueError, KeyError) as err:
            print(f"metric_names.py: {path}: {err}", file=sys.stderr)
            return 2
        for expr in exprs:
            for name in sorted(names_of(expr)):
                checked += 1
                if name in live:
                    continue
                if name in GATED and re.search(r"\b" + name + r"\b", src):
                    continue
                bad += 1
                print(f"{os.path.basename(path)}: {name} is not exported (in: {expr})")
    print(f"# {checked} metric references checked")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
