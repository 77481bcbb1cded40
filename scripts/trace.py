#!/usr/bin/env python3
"""A job's timeline, rebuilt from the spans the services and nodes write to their logs (category Platform.Spans).

Finds the spans that name the job (the gateway's request that submitted it, each service's step for it), takes every
span of their traces from every log, and prints them in order of start: milliseconds from the first span's start,
duration, service, step, indented under their parent. A job array's jobs share their request's trace. Spans are
written about a second after they end (Tracing:LogDelay): a job just finished may still be missing its last steps.

usage: trace.py [--logs DIR] [--json] JOB_ID
"""

import glob
import json
import os
import signal
import sys
from datetime import datetime

CATEGORY = "Platform.Spans"


def read_spans(logs, wanted):
    """The spans on the lines for which wanted(line) holds; only those lines are parsed."""
    for path in sorted(glob.glob(os.path.join(logs, "*.log"))):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if CATEGORY not in line or not wanted(line):
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
                if entry.get("Category") == CATEGORY and isinstance(entry.get("State"), dict):
                    yield entry["State"]


def spans_of(logs, job_id):
    """Every span of the traces that name the job: two passes over the logs, each parsing only the lines that can
    match, so a stack's logs of days (hundreds of MB) are read line by line, never held in memory."""
    traces = {s["TraceId"] for s in read_spans(logs, lambda line: job_id in line) if s.get("JobId") == job_id}
    if not traces:
        return []
    return [s for s in read_spans(logs, lambda line: any(t in line for t in traces)) if s["TraceId"] in traces]


def start_of(span):
    # Seven digits of fraction at most for fromisoformat before Python 3.11: keep microseconds.
    text = span["Start"].rstrip("Z")
    head, _, frac = text.partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}")


def timeline(spans, job_id):
    traces = {s["TraceId"] for s in spans if s.get("JobId") == job_id}
    chosen = [s for s in spans if s["TraceId"] in traces]
    chosen.sort(key=start_of)
    ids = {s["SpanId"] for s in chosen}
    parent_of = {s["SpanId"]: s.get("ParentSpanId") for s in chosen}

    def depth(span):
        d, parent, seen = 0, span.get("ParentSpanId"), set()
        while parent in ids and parent not in seen:
            seen.add(parent)
            d += 1
            parent = parent_of.get(parent)
        return d

    origin = start_of(chosen[0]) if chosen else None
    return [
        {
            "offsetMs": round((start_of(s) - origin).total_seconds() * 1000, 3),
            "durationMs": s["DurationMs"],
            "service": s["Service"],
            "step": s["Name"],
            "depth": depth(s),
            "traceId": s["TraceId"],
            "spanId": s["SpanId"],
            "parentSpanId": s.get("ParentSpanId"),
            "jobId": s.get("JobId"),
            "error": s.get("Error"),
        }
        for s in chosen
    ]


def main(argv):
    logs = os.path.join(os.environ.get("PLATFORM_STATE", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".platform")), "logs")
    as_json = False
    args = []
    i = 0
    while i < len(argv):
        if argv[i] == "--logs" and i + 1 < len(argv):
            logs = argv[i + 1]
            i += 2
            continue
        if argv[i] == "--json":
            as_json = True
        else:
            args.append(argv[i])
        i += 1
    if len(args) != 1:
        print(__doc__.strip().split("\n\n")[-1], file=sys.stderr)
        return 2
    job_id = args[0]
    rows = timeline(spans_of(logs, job_id), job_id)
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0 if rows else 1
    if not rows:
        print(f"no spans name {job_id} in {logs}/*.log (spans are written about a second after they end)", file=sys.stderr)
        return 1
    traces = sorted({r["traceId"] for r in rows})
    print(f"job {job_id}: {len(rows)} spans in trace {', '.join(traces)}, from {', '.join(sorted({r['service'] for r in rows}))}")
    print(f"{'start ms':>10} {'took ms':>10}  {'service':<10} step")
    for r in rows:
        mark = " !" if r["error"] else ""
        print(f"{r['offsetMs']:>10.1f} {r['durationMs']:>10.1f}  {r['service']:<10} {'  ' * r['depth']}{r['step']}{mark}")
    return 0


if __name__ == "__main__":
    # Piped into head or less: stop quietly when the reader has had enough.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main(sys.argv[1:]))
