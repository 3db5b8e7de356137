#!/usr/bin/env python3
"""bench/report.py RESULTS_DIR [--allow-disturbed] [--no-charts] — turn bench/run.sh's raw.tsv into
tables (stdout), results.json, results.csv and PNG charts (gnuplot, bench/plot.gp). Standard library only.

Exit 0; 3 when some row other than `direct` is still disturbed (another process took BENCH_BG_MAX % or
more of the relay CPU during one of its kept samples, default 10): the tables and files are written, but
the run must not be reported (BENCH_ALLOW_DISTURBED=1 or --allow-disturbed accepts it); 1 on bad input."""
import csv
import json
import os
import statistics
import subprocess
import sys

TITLES = {
    "1": "W1  Plaintext TCP bulk relay (client -> relay -> upstream)",
    "2": "W2  TLS-terminated bulk relay (TLS 1.3 client -> relay -> plaintext upstream)",
    "3": "W3  HTTP/1.1 keep-alive, 64 connections (wrk, closed loop)",
    "4": "W4  New TLS 1.3 connections (X25519 + ECDSA P-256), one 100 B request each",
    "5": "W5  Memory per idle relayed connection (RSS growth of the relay / connections)",
    "6": "W6  Latency at a fixed request rate (open loop, from the intended send time)",
    "7": "W7  SSH bulk (scp): outpost = through proxy eu to the agent; direct = the agent SSH server on a port",
    "8": "W8  Web terminal keystroke echo (client -> relay -> agent -> PTY -> back), open loop",
    "9": "W9  Memory per idle web-terminal WebSocket held through the relay",
}
BASE = "outpost"


def fmt(v, unit):
    if v is None:
        return "-"
    if unit in ("req/s", "conn/s", "conn/CPU-s", "bytes"):
        return f"{v:,.0f}"
    if unit in ("MB/s", "MB/CPU-s"):
        return f"{v:,.0f}"
    if unit == "us":
        return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"
    return f"{v:g}"


def spread(s, med):
    """(max - min) / median in %, or None."""
    if len(s) < 2 or not med:
        return None
    return 100.0 * (max(s) - min(s)) / abs(med)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = {a for a in sys.argv[1:] if a.startswith("--")}
    if len(args) != 1 or flags - {"--allow-disturbed", "--no-charts"}:
        print(__doc__.strip(), file=sys.stderr)
        return 1
    res = args[0]
    bg_max = float(os.environ.get("BENCH_BG_MAX", "10"))
    allow = "--allow-disturbed" in flags or os.environ.get("BENCH_ALLOW_DISTURBED") == "1"
    here = os.path.dirname(os.path.abspath(__file__))
    meta = {}
    try:
        with open(os.path.join(res, "meta.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        pass
    rows = []
    with open(os.path.join(res, "raw.tsv")) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            rows.append(r)

    # (workload, case, metric) -> peer -> {samples, status, notes}; keep first-seen order everywhere.
    groups = {}
    bg = {}  # (workload, case, peer) -> [% of the relay CPU taken by other processes, per sample]
    retries = {}  # (workload, case, peer) -> repetitions measured again because they were disturbed
    disturbed = []
    for r in rows:
        if r["metric"] == "_retries":
            k = (r["workload"], r["case"], r["peer"])
            retries[k] = retries.get(k, 0) + int(float(r["value"] or 0))
            continue
        if r["metric"] == "_bg":
            try:
                bg.setdefault((r["workload"], r["case"], r["peer"]), []).append(float(r["value"]))
            except ValueError:
                pass
            continue
        key = (r["workload"], r["case"], r["metric"])
        g = groups.setdefault(key, {"unit": r["unit"], "better": r["better"], "peers": {}})
        p = g["peers"].setdefault(r["peer"], {"samples": [], "status": "ok", "notes": []})
        v = r["value"]
        try:
            p["samples"].append(float(v))
        except ValueError:
            if v == "n/a":
                p["status"] = "n/a"
            else:
                p["status"] = "error" if not p["samples"] else p["status"]
                p["errors"] = p.get("errors", 0) + 1
        if r["note"] and r["note"] not in p["notes"]:
            p["notes"].append(r["note"])

    results = []
    out = []
    last_wl = None
    for (wl, case, metric), g in groups.items():
        unit, better = g["unit"], g["better"]
        base = g["peers"].get(BASE)
        base_med = statistics.median(base["samples"]) if base and base["samples"] else None
        if wl != last_wl:
            out.append("")
            out.append("=" * 100)
            out.append(TITLES.get(wl, f"W{wl}"))
            out.append("=" * 100)
            last_wl = wl
        arrow = "higher is better" if better == "higher" else "lower is better"
        out.append(f"-- {case}: {metric} [{unit}] ({arrow}; 'vs outpost' = peer / outpost)")
        out.append(f"   {'peer':<16}{'median':>12}  {'min-max':<23}{'spread':>7}{'vs outpost':>11}  n  bg")
        for peer, p in g["peers"].items():
            s = p["samples"]
            med = statistics.median(s) if s else None
            lo, hi = (min(s), max(s)) if s else (None, None)
            ratio = med / base_med if (med is not None and base_med) else None
            status = p["status"] if not s else ("partial" if p.get("errors") else "ok")
            bgs = bg.get((wl, case, peer), [])
            bgmax = max(bgs) if bgs else None
            if s:
                rng = f"{fmt(lo, unit)}-{fmt(hi, unit)}"
                rs = f"{ratio:.2f}x" if ratio is not None else "n/a"
                extra = f"  ({p['errors']} failed)" if p.get("errors") else ""
                # The direct path does not use the relay CPU (other jobs migrate there while CPU 0 is full).
                bgc = "" if bgmax is None else ("-" if peer == "direct" else
                                                f"{bgmax:.0f}%" + ("!" if bgmax >= bg_max else ""))
                if peer != "direct" and bgmax is not None and bgmax >= bg_max:
                    disturbed.append(f"W{wl} {case} {peer}")
                nre = retries.get((wl, case, peer), 0)
                if nre:
                    extra += f"  ({nre} disturbed repetition{'s' if nre > 1 else ''} measured again)"
                sp = spread(s, med)
                spc = "-" if sp is None else f"{sp:.0f}%"
                out.append(f"   {peer:<16}{fmt(med, unit):>12}  {rng:<23}{spc:>7}{rs:>11}  {len(s)}  {bgc}{extra}")
            else:
                why = "; ".join(p["notes"])
                cell = "n/a" if p["status"] == "n/a" else "error"
                out.append(f"   {peer:<16}{cell + (' (' + why + ')' if why else ''):>12}")
            results.append({
                "workload": int(wl), "title": TITLES.get(wl, ""), "case": case, "metric": metric, "unit": unit,
                "better": better, "peer": peer, "status": status, "samples": s, "median": med, "min": lo,
                "max": hi, "spread_pct": spread(s, med), "ratio_vs_outpost": ratio, "notes": p["notes"],
                "relay_cpu_background_pct": bgs, "disturbed_repetitions_retried": retries.get((wl, case, peer), 0),
            })
    print("\n".join(out))
    print()
    print("bg = the most CPU that other processes took on the relay CPU during that peer's samples;")
    print(f"     '!' (>= {bg_max:g}%) marks rows disturbed by other jobs: rerun them on a quiet machine.")
    print("spread = (max - min) / median of the kept samples.")

    with open(os.path.join(res, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    with open(os.path.join(res, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["workload", "case", "metric", "unit", "better", "peer", "status", "median", "min", "max",
                    "ratio_vs_outpost", "n", "samples", "relay_cpu_background_pct", "notes"])
        for r in results:
            w.writerow([r["workload"], r["case"], r["metric"], r["unit"], r["better"], r["peer"], r["status"],
                        r["median"], r["min"], r["max"], r["ratio_vs_outpost"], len(r["samples"]),
                        ";".join(f"{x:g}" for x in r["samples"]),
                        ";".join(f"{x:g}" for x in r["relay_cpu_background_pct"]), "; ".join(r["notes"])])

    # Charts: one PNG per (workload, metric), cases on the x axis, one bar (median, min-max bar) per peer.
    charts = {}
    for r in ([] if "--no-charts" in flags else results):
        c = charts.setdefault((r["workload"], r["metric"], r["unit"]), {"cases": [], "peers": [], "v": {}})
        if r["case"] not in c["cases"]:
            c["cases"].append(r["case"])
        if r["peer"] not in c["peers"]:
            c["peers"].append(r["peer"])
        c["v"][(r["case"], r["peer"])] = (r["median"], r["min"], r["max"])
    made = []
    for (wl, metric, unit), c in charts.items():
        if not any(v[0] is not None for v in c["v"].values()):
            continue
        slug = f"w{wl}-" + "".join(ch if ch.isalnum() else "-" for ch in metric.lower()).strip("-")
        dat = os.path.join(res, slug + ".dat")
        with open(dat, "w") as f:
            f.write('"case" ' + " ".join(f'"{p}" "min" "max"' for p in c["peers"]) + "\n")
            for case in c["cases"]:
                cols = []
                for p in c["peers"]:
                    m, lo, hi = c["v"].get((case, p), (None, None, None))
                    cols += ["?", "?", "?"] if m is None else [f"{m:g}", f"{lo:g}", f"{hi:g}"]
                f.write(f'"{case}" ' + " ".join(cols) + "\n")
        png = os.path.join(res, slug + ".png")
        title = f"{TITLES.get(str(wl), '').split('  ', 1)[-1]}: {metric}"
        args = (f"datafile='{dat}'; outfile='{png}'; ttl='{title}'; ylab='{metric} [{unit}]'; "
                f"npeers={len(c['peers'])}")
        try:
            p = subprocess.run(["gnuplot", "-e", args, os.path.join(here, "plot.gp")], capture_output=True,
                               text=True, timeout=60)
            if p.returncode == 0:
                made.append(os.path.basename(png))
            else:
                print(f"report: gnuplot failed for {slug}: {p.stderr.strip()[:300]}", file=sys.stderr)
        except (OSError, subprocess.TimeoutExpired) as e:
            print(f"report: gnuplot: {e}", file=sys.stderr)
    m = meta
    if m:
        print(f"mode={m.get('mode')} reps={m.get('reps')} kernel={m.get('kernel')} cpu={m.get('cpu')} "
              f"nginx={m.get('nginx')} haproxy={m.get('haproxy')} relay on CPU {m.get('relay_cpu')}, "
              f"load generator + upstream on CPU {m.get('load_cpu')}")
        print(f"background CPU use before the run: {m.get('busy_before', '?').strip()}; after: "
              f"{m.get('busy_after', '?').strip()} (anything above a few % means noisy numbers)")
    print(f"results: {res}/results.json, results.csv, {len(made)} charts (*.png)")
    if disturbed:
        uniq = list(dict.fromkeys(disturbed))
        verdict = "accepted anyway (--allow-disturbed)" if allow else "REFUSED: not a report"
        print(f"disturbed rows ({len(uniq)}), {verdict}: " + "; ".join(uniq))
        if not allow:
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
