#!/usr/bin/env python3
"""Summarise `careline triage --jsonl` output for bench/triage-vs-medspacy.sh.

  count --input CORPUS --output OUT          flagged counts over the corpus
  eval  --dev DEV --output OUT               recall / routine flag rate on dev.jsonl
  strip --dev DEV                            dev.jsonl without labels, to stdout

The disposition of an output line is read from a "disposition" field (at any
depth); failing that, from the first string value that is one of
emergency/urgent/routine. A line is *flagged* when its disposition is
emergency or urgent. Output lines are matched to input lines by "id" when
present, else by position. Stdlib only, so it runs with the system python3.
"""

import argparse
import json
import sys

LEVELS = ("emergency", "urgent", "routine")


def find_disposition(obj):
    if isinstance(obj, dict):
        v = obj.get("disposition")
        if isinstance(v, str):
            return v.lower()
        if isinstance(v, dict):
            d = find_disposition(v)
            if d:
                return d
        for v in obj.values():
            d = find_disposition(v)
            if d:
                return d
    elif isinstance(obj, list):
        for v in obj:
            d = find_disposition(v)
            if d:
                return d
    elif isinstance(obj, str) and obj.lower() in LEVELS:
        return obj.lower()
    return None


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def dispositions(inputs, outputs):
    """Return a list of dispositions aligned with inputs."""
    by_id = {}
    for i, o in enumerate(outputs):
        if isinstance(o, dict) and "id" in o:
            by_id[o["id"]] = o
    res = []
    for i, rec in enumerate(inputs):
        o = by_id.get(rec.get("id")) if by_id else (outputs[i] if i < len(outputs) else None)
        res.append(find_disposition(o) if o is not None else None)
    return res


def cmd_count(args):
    inputs = read_jsonl(args.input)
    outputs = read_jsonl(args.output)
    disp = dispositions(inputs, outputs)
    counts = {k: sum(d == k for d in disp) for k in LEVELS}
    counts["unknown"] = sum(d is None for d in disp)
    print(json.dumps({
        "engine": "careline", "messages": len(inputs), "output_lines": len(outputs),
        "by_disposition": counts,
        "flagged": counts["emergency"] + counts["urgent"],
    }))


def cmd_eval(args):
    dev = read_jsonl(args.dev)
    disp = dispositions(dev, read_jsonl(args.output))
    stats = {}
    for rec, d in zip(dev, disp):
        s = stats.setdefault(rec["expected"], {"n": 0, "flagged": 0, "exact": 0,
                                               "under_triaged": 0})
        s["n"] += 1
        s["flagged"] += d in ("emergency", "urgent")
        s["exact"] += d == rec["expected"]
        s["under_triaged"] += (rec["expected"] == "emergency" and d != "emergency") or \
                              (rec["expected"] == "urgent" and d not in ("emergency", "urgent"))
    red = [stats.get(k, {"n": 0, "flagged": 0}) for k in ("emergency", "urgent")]
    n_red = sum(s["n"] for s in red)
    rout = stats.get("routine", {"n": 0, "flagged": 0})
    print(json.dumps({
        "engine": "careline", "by_expected": stats,
        "recall": round(sum(s["flagged"] for s in red) / max(n_red, 1), 3),
        "routine_flagged": round(rout["flagged"] / max(rout["n"], 1), 3),
        "exact_accuracy": round(sum(s["exact"] for s in stats.values()) / max(len(dev), 1), 3),
    }))


def cmd_strip(args):
    for rec in read_jsonl(args.dev):
        sys.stdout.write(json.dumps({k: rec[k] for k in ("id", "text", "channel", "language")},
                                    ensure_ascii=False) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("count")
    c.add_argument("--input", required=True)
    c.add_argument("--output", required=True)
    e = sub.add_parser("eval")
    e.add_argument("--dev", required=True)
    e.add_argument("--output", required=True)
    s = sub.add_parser("strip")
    s.add_argument("--dev", required=True)
    args = ap.parse_args()
    {"count": cmd_count, "eval": cmd_eval, "strip": cmd_strip}[args.cmd](args)


if __name__ == "__main__":
    main()
