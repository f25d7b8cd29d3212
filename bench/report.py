#!/usr/bin/env python3
"""Summarise a bench/run directory: OUT/raw/*.json (hyperfine) and *.time (GNU time) -> results.md, results.json.

Usage: report.py OUT MODE REPS TOOLS CTX_MB CTX_FILES ELAPSED CASES (bench/run calls it; rerun it on an old OUT
to reprint a table).
"""
import datetime
import glob
import json
import os
import platform
import re
import statistics
import sys

out, mode, reps, tools, ctx_mb, ctx_files, elapsed, cases = sys.argv[1:9]
tools = tools.split(",")
cases = cases.split()
ctx = f"{int(ctx_mb) // 1024} GiB" if int(ctx_mb) >= 1024 else f"{ctx_mb} MiB"

TITLES = {
    "base-import": "0 setup: import the Go base (613 MB), unpacked",
    "go-cold": "1 Go example, cold build (`--target release`)",
    "go-noop": "1 Go example, no-op rebuild",
    "go-edit": "1 Go example, rebuild after editing main.go",
    "go-target": "1 Go example, `--target builder` after `--target release`",
    "copy-cold": f"2 COPY {ctx} in {int(ctx_files):,} files, cold",
    "copy-noop": f"2 COPY {ctx}, no-op rebuild",
    "copy-edit": f"2 COPY {ctx}, one file changed",
    "stages-cold": "3 four independent stages + final, cold",
    "cache-deps": "4 `RUN --mount=type=cache` package install, one dependency added",
    "export-oci": "5 export as OCI tarball (BuildKit: `docker save`)",
    "push": "5 push to the local registry",
    "run-rm": "6 `run --rm IMAGE true` (default network)",
    "run-rm-none": "6 `run --rm --network none IMAGE true`",
}
# Targets for hoist / BuildKit (issue 8; issue 5 for go-edit-outside).
TARGETS = {"go-noop": 0.2, "go-edit": 0.8, "go-cold": 0.95, "copy-cold": 0.5, "stages-cold": 0.9, "run-rm": 0.5,
           "go-edit-outside": 0.5}
# Derived rows (issue 5): a build's time outside one command, the step found by a pattern on its `--progress plain`
# name line. For the Go cases that is the compiler (`RUN CGO_ENABLED=0 go build … && echo compiled`), the same work
# for every tool, so what is left is the tool's own share: starting up, planning, the context, the other steps,
# recording the compile step's changes, the export. Only starting the step's container counts as compile time.
OUTSIDE = {
    "go-cold": ("go-cold-outside", "1 Go example, cold build, time outside the compile step", r"RUN .*go build"),
    "go-edit": ("go-edit-outside", "1 Go example, edit rebuild, time outside the compile step", r"RUN .*go build"),
}


def measurements(case, tool):
    times, rss = [], []
    for path in sorted(glob.glob(f"{out}/raw/{case}.{tool}.*.json")):
        try:
            results = json.load(open(path))["results"]
        except json.JSONDecodeError:  # a measurement still running (reporting on a run in progress)
            continue
        for result in results:
            times.extend(result["times"])
    for path in sorted(glob.glob(f"{out}/raw/{case}.{tool}.*.time")):
        for line in open(path):
            parts = line.split()
            # GNU time writes "Command exited with non-zero status N" before the numbers of a failed run.
            if len(parts) == 2 and parts[1].isdigit():
                rss.append(int(parts[1]))
    failed = len(glob.glob(f"{out}/logs/{case}.{tool}.*.hyperfine")) - len(
        glob.glob(f"{out}/raw/{case}.{tool}.*.json"))
    return times, rss, failed


# The line the scenario's compile command prints when the compiler is done (bench/scenarios/go/Dockerfile).
STEP_END_MARKER = "compiled"
# Tools whose plain progress output gives step times (buildah prints none).
STEP_TIMES = ("hoist", "buildkit")


def step_times(case, tool, pattern):
    """How long the command of the step whose name matches `pattern` ran, per build, from the timed builds' plain
    progress output: OUT/logs/CASE.TOOL.REP.builds.log, where bench/run appends every timed build's output
    (hyperfine's own --output file keeps only the last run's), else CASE.TOOL.REP.log. The scenario's command ends
    with `echo compiled`, whose line both tools stamp with the milliseconds since the step started (`#10 3.412
    compiled`); without that line, the step's `#N DONE 3.4s` (tenths of a second, both tools; it also holds the
    tool's own work after the command). A build in which the step did not run (`#N CACHED`) or whose log lacks it
    gives None."""
    durations = []
    name_line = re.compile(r"^#(\d+) (.*)$")
    done_line = re.compile(r"^#(\d+) DONE ([0-9.]+)s$")
    marker_line = re.compile(r"^#(\d+) ([0-9]+\.[0-9]+) " + re.escape(STEP_END_MARKER) + r"$")
    for raw in sorted(glob.glob(f"{out}/raw/{case}.{tool}.*.json")):
        stem = os.path.basename(raw)[: -len(".json")]
        path = f"{out}/logs/{stem}.builds.log"
        if not os.path.exists(path):
            path = f"{out}/logs/{stem}.log"
        if not os.path.exists(path):
            continue
        current, step, started, marked = None, None, False, False
        for line in open(path, errors="replace"):
            line = line.rstrip("\n")
            # Every build's output starts with vertex #1, loading the Dockerfile.
            if line.startswith("#1 [internal] load build definition"):
                if started:
                    durations.append(current)
                current, step, started, marked = None, None, True, False
                continue
            marker = marker_line.match(line)
            if marker and marker.group(1) == step:
                current, marked = float(marker.group(2)), True
                continue
            done = done_line.match(line)
            if done and done.group(1) == step and not marked:
                current = float(done.group(2))
                continue
            named = name_line.match(line)
            if named and step is None and re.search(pattern, named.group(2)) and named.group(2).startswith("["):
                step = named.group(1)
        if started:
            durations.append(current)
    return durations


def outside_row(row, new_case, title, pattern):
    """`row`'s builds minus the named step: per tool, each run's total less its step time."""
    derived = {"case": new_case, "title": title, "target_vs_buildkit": TARGETS.get(new_case), "tools": {},
               "derived_from": row["case"], "step_pattern": pattern,
               "note": "total wall time minus the time from the step's start to the command's end marker line "
                       "(milliseconds; the step's DONE time in tenths of a second without the marker), per build"}
    for tool, entry in row["tools"].items():
        if tool not in STEP_TIMES:
            continue
        steps = step_times(row["case"], tool, pattern)
        totals = entry.get("times_s", [])
        pairs = [(t, s) for t, s in zip(totals, steps) if s is not None] if len(steps) == len(totals) else []
        new = {"runs": len(pairs), "failed_measurements": entry.get("failed_measurements", 0)}
        if pairs:
            outside = [t - s for t, s in pairs]
            new.update(median_s=statistics.median(outside), min_s=min(outside), max_s=max(outside),
                       times_s=outside, step_s=[s for _, s in pairs], step_median_s=statistics.median(
                           [s for _, s in pairs]))
        derived["tools"][tool] = new
    return derived


def fmt_time(seconds):
    if seconds is None:
        return "—"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_spread(values):
    if len(values) < 2:
        return ""
    return f" ({fmt_time(min(values))}–{fmt_time(max(values))})"


rows = []
for case in cases:
    row = {"case": case, "title": TITLES.get(case, case), "target_vs_buildkit": TARGETS.get(case), "tools": {}}
    for tool in tools:
        times, rss, failed = measurements(case, tool)
        entry = {"runs": len(times), "failed_measurements": failed}
        if times:
            entry.update(median_s=statistics.median(times), min_s=min(times), max_s=max(times), times_s=times)
            if len(times) > 1:
                entry["stdev_s"] = statistics.stdev(times)
        if rss:
            entry["peak_rss_kb"] = max(rss)
        row["tools"][tool] = entry
    rows.append(row)
    if case in OUTSIDE:
        rows.append(outside_row(row, *OUTSIDE[case]))
for row in rows:
    for peer in ("buildkit", "buildah"):
        hoist = row["tools"].get("hoist", {}).get("median_s")
        peer_median = row["tools"].get(peer, {}).get("median_s")
        if hoist is not None and peer_median:
            row[f"ratio_vs_{peer}"] = hoist / peer_median
    if row["target_vs_buildkit"] is not None and "ratio_vs_buildkit" in row:
        row["target_met"] = row["ratio_vs_buildkit"] <= row["target_vs_buildkit"]

setup = open(f"{out}/setup.txt").read().strip()
loads = [float(line.split()[3]) for line in open(f"{out}/load.txt")] if os.path.exists(f"{out}/load.txt") else []
peak_rss = max((r["tools"].get("hoist", {}).get("peak_rss_kb", 0) for r in rows), default=0)
summary = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "mode": mode,
    "repetitions": int(reps),
    "tools": tools,
    "context": {"mib": int(ctx_mb), "files": int(ctx_files)},
    "setup": setup.splitlines(),
    "machine": {"cores": os.cpu_count(), "kernel": platform.release()},
    "load_average_1min": {"min": min(loads), "max": max(loads), "mean": statistics.mean(loads)} if loads else None,
    "elapsed_s": int(elapsed),
    "hoist_peak_rss_kb": peak_rss,
    "cases": rows,
}
json.dump(summary, open(f"{out}/results.json", "w"), indent=2)

names = {"hoist": "hoist", "buildkit": "BuildKit", "buildah": "buildah"}
head = ["scenario"]
if "buildkit" in tools:
    head += ["hoist/BuildKit", "target"]
if "buildah" in tools:
    head += ["hoist/buildah"]
head += [f"{names[t]} median (min–max)" for t in tools] + ["hoist peak RSS"]
lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
for row in rows:
    cells = [row["title"]]
    if "buildkit" in tools:
        ratio = row.get("ratio_vs_buildkit")
        target = row["target_vs_buildkit"]
        cells.append(f"**{ratio:.2f}**" if ratio is not None else "—" if "derived_from" in row else "failed")
        if target is None:
            cells.append("")
        else:
            met = row.get("target_met")
            cells.append(f"≤ {target} " + ("" if met is None else "met" if met else "**missed**"))
    if "buildah" in tools:
        ratio = row.get("ratio_vs_buildah")
        if ratio is not None:
            cells.append(f"{ratio:.3f}" if ratio < 0.01 else f"{ratio:.2f}")
        else:
            cells.append("—" if "derived_from" in row else "failed")
    for tool in tools:
        entry = row["tools"].get(tool)
        if entry is None:
            cells.append("—")
            continue
        if "median_s" in entry:
            cells.append(fmt_time(entry["median_s"]) + fmt_spread(entry["times_s"]))
            if "step_median_s" in entry:
                cells[-1] += f" + {fmt_time(entry['step_median_s'])} step"
        else:
            cells.append("**failed**")
        if entry.get("failed_measurements"):
            cells[-1] += f" ({entry['failed_measurements']} failed)"
    rss = row["tools"].get("hoist", {}).get("peak_rss_kb")
    cells.append(f"{rss / 1024:.0f} MB" if rss else "—")
    lines.append("| " + " | ".join(cells) + " |")
load = summary["load_average_1min"]
lines += [
    "",
    f"{summary['date']}, `bench/run{' --quick' if mode == 'quick' else ''}`: {reps} repetition(s), tools interleaved; "
    f"took {int(elapsed) // 60} min {int(elapsed) % 60} s. Ratios are hoist's median over the peer's (< 1: hoist "
    f"faster). hoist's peak RSS over all runs: {peak_rss / 1024:.0f} MB (GNU time: the largest single process, "
    f"which for builds can be a RUN step's program)."
    + (f" 1-min load average during the run: {load['min']:.1f}–{load['max']:.1f}." if load else "")
    + (" \"Time outside the compile step\": each build's wall time minus the time from the start of its `RUN … go"
       " build` step to the command's `compiled` line, as the tool's progress output stamps it (milliseconds); the"
       " tool's work after the command, recording the step's changes, counts as outside." if any(
           "derived_from" in r for r in rows) else ""),
    "",
    "```",
    setup,
    "```",
]
text = "\n".join(lines) + "\n"
open(f"{out}/results.md", "w").write(text)
print(text)
