"""Shared by the report programs of bench/run.sh, nat.sh and overlay.sh.

Each script's program (REPORT_PY, run by harness.sh's report_py with this
directory on PYTHONPATH) does `from harness import *`, defines
line(RDIR, PATH), the figures of one path in one round, and
report(WORK, OUT, ELAPSED, ROUNDS, PATHS), the table, the ratios and the
JSON, and ends with main(line, report). harness.sh passes the settings in
B_* environment variables.
"""
import datetime
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys

E = os.environ
# TCP congestion controls measured (one TCP test each, in this order);
# empty for a script without --cc.
CCS = E.get("B_CCS", "").split()
UDP_LEN = int(E.get("B_UDP_LEN", "64"))
# With WEFT_B, every weft path NAME is measured a second time, with the
# second binary, as NAME + TWIN.
TWIN = "-b"
HAS_B = bool(E.get("B_WEFT_B"))
_WEFT = E.get("B_WEFT_PATHS", "").split()


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def cmd(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return None


def first_line(s):
    return (s or "").split("\n")[0] or None


def summary(vals):
    """median, min, max and the values of the figures that are there, or None."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "values": vals}


def ratio(x, b):
    return x / b if x is not None and b else None


def first_text(work, rounds, name):
    """The file r<N>/name of the first round that has it, or None."""
    for i in range(1, rounds + 1):
        c = read(os.path.join(work, f"r{i}", name))
        if c:
            return c
    return None


def last_json(work, rounds, name):
    """(round, parsed JSON) of the last round whose r<N>/name parses, or (None, None)."""
    for i in range(rounds, 0, -1):
        raw = read(os.path.join(work, f"r{i}", name))
        if raw:
            try:
                return i, json.loads(raw)
            except ValueError:
                pass
    return None, None


def link_stats(path):
    """An interface as `ip -j [-s] link show dev IF` saved it at path: ifname,
    mtu and (with -s) the rx/tx byte and packet counters; None if there is
    no file."""
    raw = read(path)
    if not raw:
        return None
    v = json.loads(raw)[0]
    r = {"ifname": v.get("ifname"), "mtu": v.get("mtu")}
    st = v.get("stats64", v.get("stats"))
    if st:
        r.update(rx_bytes=st["rx"]["bytes"], tx_bytes=st["tx"]["bytes"],
                 rx_packets=st["rx"]["packets"], tx_packets=st["tx"]["packets"])
    return r


# --------------------------------------------------------- the two builds --

def weft_paths():
    """The script's weft paths, each followed by its twin NAME-b when
    WEFT_B is set."""
    return tuple(q for w in _WEFT for q in ((w, w + TWIN) if HAS_B else (w,)))


def twin_of(p):
    """The weft path that p repeats with WEFT_B (p = NAME-b), or None."""
    if HAS_B and p.endswith(TWIN) and p[:-len(TWIN)] in _WEFT:
        return p[:-len(TWIN)]
    return None


def twin_name(s):
    """'weft-tap' -> 'weft-tap-b'; 'weft-tap (busy-poll 0 ms)' -> 'weft-tap-b (busy-poll 0 ms)'."""
    head, sep, tail = s.partition(" (")
    return head + TWIN + sep + tail


def with_twins(d, f=twin_name):
    """d, with d[NAME-b] = f(d[NAME]) for each weft path NAME when WEFT_B is set."""
    if HAS_B:
        for w in _WEFT:
            if w in d:
                d[w + TWIN] = f(d[w])
    return d


def weft_info(orig, copy):
    """The measured binary: its path, and sha256, mtime and version of the copy that ran."""
    info = {"path": orig}
    try:
        with open(copy, "rb") as f:
            info["sha256"] = hashlib.sha256(f.read()).hexdigest()
        info["mtime"] = datetime.datetime.fromtimestamp(
            os.stat(copy).st_mtime, datetime.timezone.utc).isoformat(timespec="seconds")
        info["version"] = cmd(copy, "--version")
    except OSError:
        pass
    return info


def weft_tools(used):
    """tools.weft (and with WEFT_B tools.weft_b) and tools.weft_git."""
    t = {"weft": weft_info(E["B_WEFT"], E["B_WEFT_COPY"]) if used else None}
    if used and HAS_B:
        t["weft_b"] = weft_info(E["B_WEFT_B"], E["B_WEFT_B_COPY"])
    t["weft_git"] = cmd("git", "-C", E["B_REPO"], "describe", "--always", "--dirty") or None
    return t


# ------------------------------------------------------------ the report --

def loadavg(s):
    v = [float(x) for x in s.split()[:3]]
    return {"1min": v[0], "5min": v[1], "15min": v[2]}


def doc_head(schema, elapsed, benchmark=None, one_min=False):
    """The JSON's first fields: schema, benchmark, timestamp, elapsed_s, host."""
    cpu = None
    for l in (read("/proc/cpuinfo") or "").splitlines():
        if l.startswith("model name"):
            cpu = l.split(":", 1)[1].strip()
            break
    before, after = loadavg(E["B_LOAD_BEFORE"]), loadavg(E["B_LOAD_AFTER"])
    host = {"kernel": platform.release(), "cpus": os.cpu_count(), "cpu_model": cpu,
            "loadavg_before": before, "loadavg_after": after}
    if one_min:
        host.update(loadavg_1min_before=before["1min"], loadavg_1min_after=after["1min"])
    # CPU busy over 1 s with the script idle, just before and after the run
    host.update(cpu_busy_pct_before=int(E["B_BUSY_BEFORE"]), cpu_busy_pct_after=int(E["B_BUSY_AFTER"]))
    doc = {"schema": schema}
    if benchmark:
        doc["benchmark"] = benchmark
    doc.update(timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               elapsed_s=elapsed, host=host)
    return doc


def cc_doc():
    """The JSON's tcp_congestion_control: the machine's default is what TCP
    uses here unless told otherwise; the TCP figures are per congestion control."""
    return {"machine_default": E["B_CC_DEFAULT"], "available": E["B_CC_AVAILABLE"].split(),
            "measured": CCS, "skipped": E["B_CC_SKIPPED"].split()}


def leftovers(work):
    return [l for l in (read(os.path.join(work, "leftovers")) or "").splitlines() if l]


def write_json(doc, out):
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, out)


def footer(out, elapsed, left):
    before, after = loadavg(E["B_LOAD_BEFORE"]), loadavg(E["B_LOAD_AFTER"])
    print()
    print(f"load average (1 min): {before['1min']:.2f} before, {after['1min']:.2f} after "
          f"({os.cpu_count()} CPUs); CPU busy with the script idle: "
          f"{E['B_BUSY_BEFORE']}% before, {E['B_BUSY_AFTER']}% after")
    if left:
        print(f"leftovers stopped between paths: {len(left)} (see the JSON)")
    print(f"results: {out} ({elapsed} s)")


def main(line, report):
    if sys.argv[1] == "line":
        line(sys.argv[2], sys.argv[3])
    else:
        report(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6:])


# ---------------------------------- ping, TCP and UDP (harness measure_l3) --

def parse_ping(ping, median=False):
    """RTT figures (µs) and loss of ping's output; with median, also the
    median of the per-packet times."""
    m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", ping)
    if not m:
        raise ValueError("no RTT in ping output: " + ping.strip()[-200:])
    loss = re.search(r"([\d.]+)% packet loss", ping)
    mn, avg, mx, md = (float(x) * 1000 for x in m.groups())
    r = dict(rtt_us=avg, rtt_min_us=mn, rtt_max_us=mx, rtt_mdev_us=md)
    if median:
        times = [float(x) * 1000 for x in re.findall(r"time=([\d.]+) ms", ping)]
        r["rtt_median_us"] = statistics.median(times) if times else None
    r["ping_loss_pct"] = float(loss.group(1)) if loss else None
    return r


def parse_tcp(raw, cc):
    """iperf3's end section of the TCP test with congestion control cc, and
    its figures."""
    if not raw:
        raise ValueError(f"no TCP ({cc}) results")
    tcp = json.loads(raw)
    if "error" in tcp:
        raise ValueError(f"iperf3 tcp ({cc}): {tcp['error']}")
    end = tcp["end"]
    # What the sender really used (iperf3 -C fails if the kernel refuses,
    # but check: the figure is labelled with it).
    used = end.get("sender_tcp_congestion")
    if used is not None and used != cc:
        raise ValueError(f"iperf3 tcp: asked for {cc}, the sender used {used}")
    return end, {"gbps": end["sum_received"]["bits_per_second"] / 1e9,
                 "retransmits": end["sum_sent"].get("retransmits"),
                 "sender_cc": used,
                 "receiver_cc": end.get("receiver_tcp_congestion")}


def parse_udp(raw):
    """Packet rates of the 64-byte UDP test."""
    if not raw:
        raise ValueError("no UDP results")
    udp = json.loads(raw)
    if "error" in udp:
        raise ValueError(f"iperf3 udp: {udp['error']}")
    # Server side: what actually arrived. iperf3's own "packets" and
    # "lost_packets" don't add up with -O (the server's omit window is
    # not the client's; lost can exceed packets), so count the payload
    # bytes the server read in its measured interval.
    u, s = udp["end"]["sum_received"], udp["end"]["sum_sent"]
    kpps = u["bytes"] / UDP_LEN / u["seconds"] / 1e3
    sent = s["bytes"] / UDP_LEN / s["seconds"] / 1e3
    return {"udp_kpps": kpps, "udp_sent_kpps": sent,
            "udp_loss_pct": max(0.0, 100 * (1 - kpps / sent))}


def l3_round(rdir, p, extra=None, median=False):
    """One round of path p as harness.sh's measure_l3 left it: ok,
    loadavg_1min, tcp[cc] = {gbps, retransmits, sender_cc, receiver_cc}, the
    UDP rates and the RTT (with median, also the median RTT), or the error.
    extra(f, r, ends) adds a script's own figures and checks (f: the round's
    file of an extension, ends: iperf3's TCP end sections by congestion
    control); it may raise ValueError."""
    f = lambda ext: os.path.join(rdir, p + ext)
    r = {"ok": False}
    load = read(f(".load"))
    if load:
        r["loadavg_1min"] = float(load.split()[0])
    err = read(f(".error"))
    if err is not None:
        r["error"] = err.strip()
        return r
    try:
        ping = read(f(".ping")) or ""
        r["tcp"], ends = {}, {}
        for cc in CCS:
            ends[cc], r["tcp"][cc] = parse_tcp(read(f(f".tcp-{cc}.json")), cc)
        r.update(parse_udp(read(f(".udp.json"))))
        if extra:
            extra(f, r, ends)
        r.update(parse_ping(ping, median))
        r["ok"] = True
    except Exception as e:  # noqa: BLE001 - report, don't crash the summary
        r["error"] = f"could not parse results: {e}"
    return r


def l3_line(r, rtt, tail=lambda r: ""):
    """The line of one round of l3_round; rtt(r) gives the RTT part.
    Exits 1 if the round failed."""
    if not r["ok"]:
        print(f"   FAILED: {r.get('error', '?')[:200]}")
        sys.exit(1)
    tcp = ", ".join(f"{cc} {r['tcp'][cc]['gbps']:.2f}" for cc in CCS)
    print(f"   TCP {tcp} Gbit/s, UDP {r['udp_kpps']:.1f} kpps "
          f"(sent {r['udp_sent_kpps']:.1f}), RTT {rtt(r)}{tail(r)}")


def l3_cols():
    """median_table's columns of l3_round's figures: one TCP column per
    congestion control, UDP, its send rate, the average RTT."""
    def tcp_stat(cc):
        return lambda r: r["tcp"][cc]["stats"].get("gbps")
    return [(f"TCP {cc}", tcp_stat(cc), ".2f") for cc in CCS] + [
        ("UDP kpps", lambda r: r["stats"].get("udp_kpps"), ".1f"),
        ("(sent)", lambda r: r.get("udp_sent_kpps"), ".1f"),  # single value
        ("RTT avg µs", lambda r: r["stats"].get("rtt_us"), ".1f")]


def l3_ratios(x, b, median=False):
    """x's medians / b's: {tcp: {cc: ..}, udp, rtt (and rtt_median)}; rtt > 1
    means x's RTT is longer (worse)."""
    v = {"tcp": {cc: ratio(x["tcp"][cc].get("gbps"), b["tcp"][cc].get("gbps")) for cc in CCS},
         "udp": ratio(x.get("udp_kpps"), b.get("udp_kpps")),
         "rtt": ratio(x.get("rtt_us"), b.get("rtt_us"))}
    if median:
        v["rtt_median"] = ratio(x.get("rtt_median_us"), b.get("rtt_median_us"))
    return v


def aggregate(work, rounds, p, parse_round, head, stat_keys, tcp_keys=None):
    """Every round of path p (parse_round(RDIR, p)) summarised: head, then
    ok, rounds_ok, rounds_total, with tcp_keys tcp[cc] = {medians, stats},
    the medians of stat_keys, their stats, and the errors. Returns the result
    and the rounds (the caller adds its own fields, then per_round)."""
    per_round = [dict(round=i, **parse_round(os.path.join(work, f"r{i}"), p))
                 for i in range(1, rounds + 1)]
    ok = [r for r in per_round if r["ok"]]
    res = dict(head, ok=bool(ok), rounds_ok=len(ok), rounds_total=rounds)
    if tcp_keys:
        # tcp[cc] = {gbps, retransmits, ... (medians), stats: {gbps, ...}}
        res["tcp"] = {}
        for cc in CCS:
            t, st = {}, {}
            res["tcp"][cc] = t
            for k in tcp_keys:
                s = summary([r["tcp"][cc].get(k) for r in ok])
                if s:
                    t[k], st[k] = s["median"], s
            t["stats"] = st
    stats = {}
    for k in stat_keys:
        s = summary([r.get(k) for r in ok])
        if s:
            res[k], stats[k] = s["median"], s
    res["stats"] = stats
    errors = [f"round {r['round']}: {r['error']}" for r in per_round if not r["ok"]]
    if errors:
        res["errors"] = errors
    return res, per_round


def median_table(caption, rows, cols, rounds):
    """Print rows [(label, result)] as a table: label, then per column
    (title, getter, format) "median [min-max]" (a getter returns a summary,
    a single value, a list or None), then the rounds that succeeded."""
    out = []
    for label, r in rows:
        if not r["ok"]:
            out.append((label, "FAILED: " + r.get("errors", ["?"])[0][:100]))
            continue
        cells = []
        for _, get, spec in cols:
            s = get(r)
            if isinstance(s, dict):
                cells.append((format(s["median"], spec), f"[{format(s['min'], spec)}-{format(s['max'], spec)}]"))
            elif s is not None:
                cells.append((format(s, spec) if not isinstance(s, list) else "/".join(map(str, s)),))
            else:
                cells.append(("-", ""))
        out.append((label, cells + [(f"{r['rounds_ok']}/{rounds}",)]))
    ok_rows = [c for _, c in out if isinstance(c, list)]
    titles = [t for t, _, _ in cols] + ["rounds"]
    n = len(titles)
    # widths: per column, of the median and of the range
    wm = [max([len(c[i][0]) for c in ok_rows] or [0]) for i in range(n)]
    wr = [max([len(c[i][1]) if len(c[i]) > 1 else 0 for c in ok_rows] or [0]) for i in range(n)]
    single = [all(len(c[i]) == 1 for c in ok_rows) and bool(ok_rows) for i in range(n)]
    single[-1] = True
    colw = [max(wm[i] if single[i] else wm[i] + 1 + wr[i], len(titles[i])) for i in range(n)]

    def fmt(i, cell):
        if single[i]:
            return f"{cell[0]:>{colw[i]}}" if i < n - 1 else cell[0]
        return f"{cell[0]:>{wm[i]}} {(cell[1] if len(cell) > 1 else ''):<{wr[i]}}".ljust(colw[i])
    w0 = max(len("path"), *(len(l) for l, _ in out))
    head = "  ".join([f"{'path':<{w0}}"] + [
        (f"{t:>{colw[i]}}" if single[i] and i < n - 1 else f"{t:<{colw[i]}}" if i < n - 1 else t)
        for i, t in enumerate(titles)])
    print()
    print(caption)
    print(head)
    for label, c in out:
        if not isinstance(c, list):
            print(f"{label:<{w0}}  {c}")
            continue
        print("  ".join([f"{label:<{w0}}"] + [fmt(i, cell) for i, cell in enumerate(c)]).rstrip())
