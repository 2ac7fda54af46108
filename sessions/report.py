"""Latency reports of a bench run or any session: JSON with `vllm bench serve` field names, Markdown,
per-request CSV, and one self-contained HTML file with inline SVG charts; SLO checks and run comparison."""
from __future__ import annotations

import csv
import html
import io
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sessions.errors import SessionsError
from sessions.metrics import (
    LATENCY_METRICS,
    PERCENTILES,
    RequestRecord,
    SloCheck,
    check_slo,
    compare,
    compute_metrics,
)
from sessions.queries import resolve_prefix
from sessions.store import Store

FORMATS = ("html", "md", "json", "csv")


@dataclass(slots=True)
class RunData:
    info: dict[str, Any]  # run_id, kind, model, backend, workload, ...
    records: list[RequestRecord]
    duration_s: float


# ---- loading ----

def resolve_run_id(store: Store, prefix: str) -> str:
    """A bench run or a session id, or a unique prefix of one (runs are sessions too)."""
    return resolve_prefix(store, "sessions", prefix, missing=f"no bench run or session with id {prefix!r}",
                          ambiguous=f"id {prefix!r} is ambiguous ({{n}} match); give more characters")


def load_run(store: Store, run_or_session: str) -> RunData:
    rid = resolve_run_id(store, run_or_session)
    cur = store.cursor()
    s = cur.execute("SELECT kind, model, backend, created_at, title FROM sessions WHERE id = ?", [rid]).fetchone()
    info: dict[str, Any] = {"run_id": rid, "kind": s[0], "model_id": s[1], "backend": s[2],
                            "date": s[3].isoformat() if isinstance(s[3], datetime) else s[3], "title": s[4]}
    run = cur.execute(
        "SELECT workload, base_url, num_requests, concurrency, request_rate, max_tokens, seed, status, started_ns,"
        " finished_ns FROM bench_runs WHERE id = ?", [rid]).fetchone()
    if run is not None:
        info.update(zip(("workload", "base_url", "num_prompts_requested", "max_concurrency", "request_rate",
                         "max_tokens", "seed", "status", "started_ns", "finished_ns"), run))
    rows = cur.execute(
        """SELECT r.id, r.arrival_ns, r.first_token_ns, r.finished_ns, coalesce(r.prompt_tokens, 0),
                  coalesce(r.output_tokens, 0), r.finish_reason, r.error, b.item
           FROM requests r LEFT JOIN bench_requests b ON b.request_id = r.id AND b.run_id = r.session_id
           WHERE r.session_id = ? ORDER BY coalesce(b.seq, 0), r.arrival_ns""", [rid]).fetchall()
    records = [RequestRecord(arrival_ns=row[1], first_token_ns=row[2], finished_ns=row[3], prompt_tokens=row[4],
                             output_tokens=row[5], request_id=row[0], finish_reason=row[6], error=row[7], item=row[8])
               for row in rows]
    by_id = {r.request_id: r for r in records}
    # idx < output_tokens leaves out the text-only row written when held-back text is flushed
    times = cur.execute(
        """SELECT t.request_id, t.t_ns FROM token_events t JOIN requests r ON r.id = t.request_id
           WHERE r.session_id = ? AND t.idx < r.output_tokens ORDER BY t.request_id, t.idx""", [rid]).fetchall()
    for req_id, t in times:
        by_id[req_id].token_times_ns.append(t)
    return RunData(info, records, _duration_s(info, records))


def _duration_s(info: dict[str, Any], records: list[RequestRecord]) -> float:
    start = info.get("started_ns") or min((r.arrival_ns for r in records), default=None)
    ends = [r.finished_ns for r in records if r.finished_ns is not None]
    end = info.get("finished_ns") or (max(ends) if ends else None)
    if start is None or end is None or end <= start:
        return 0.0
    return (end - start) / 1e9


# ---- the JSON report ----

def build_report(store: Store, run_or_session: str, slo: dict[str, float] | None = None,
                 compare_to: str | None = None) -> dict[str, Any]:
    data = load_run(store, run_or_session)
    report = report_from(data, slo)
    if compare_to:
        other = load_run(store, compare_to)
        report["compare"] = {"other_run_id": other.info["run_id"],
                             **compare(report, report_from(other, slo), data.records, other.records)}
    return report


def report_from(data: RunData, slo: dict[str, float] | None = None) -> dict[str, Any]:
    info = dict(data.info)
    info.pop("started_ns", None)
    info.pop("finished_ns", None)
    rate = info.get("request_rate")
    info["request_rate"] = rate if rate else "inf"
    info.setdefault("max_concurrency", None)
    out = {**info, **compute_metrics(data.records, data.duration_s, slo)}
    recs = data.records
    out["input_lens"] = [r.prompt_tokens for r in recs]
    out["output_lens"] = [r.output_tokens for r in recs]
    out["ttfts"] = [None if r.ttft_ms is None else r.ttft_ms / 1e3 for r in recs]  # seconds, as vLLM writes
    out["itls"] = [[x / 1e3 for x in r.itl_ms] for r in recs]
    out["errors"] = [r.error or "" for r in recs]
    if slo:
        checks = check_slo(recs, out, slo)
        out["slo"] = {"limits": slo, "passed": all(c.passed for c in checks),
                      "checks": [{"name": c.name, "limit_ms": c.limit_ms, "passed": c.passed, "detail": c.detail}
                                 for c in checks]}
    return out


def slo_passed(report: dict[str, Any]) -> bool:
    return report.get("slo", {}).get("passed", True)


# ---- rendering ----

def render(fmt: str, report: dict[str, Any], data: RunData, other: RunData | None = None, latency=None) -> str:
    """`latency` (a sessions.latency.LatencyReport) adds each request's stages to the CSV; the other
    formats read its summary from report["latency"]."""
    if fmt == "json":
        return json.dumps(report, indent=2, default=str, ensure_ascii=False) + "\n"
    if fmt == "md":
        return render_markdown(report)
    if fmt == "csv":
        if other is not None:
            raise SessionsError("--compare works with the html, md and json formats; csv lists one run's requests")
        return render_csv(data, latency)
    if fmt == "html":
        return render_html(report, data, other)
    raise SessionsError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")


def _f(v: Any, nd: int = 2) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _latency_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for m in LATENCY_METRICS:
        row = [m.upper(), _f(report.get(f"mean_{m}_ms")), _f(report.get(f"median_{m}_ms")), _f(report.get(f"std_{m}_ms"))]
        row += [_f(report.get(f"p{q}_{m}_ms")) for q in PERCENTILES]
        rows.append(row)
    return rows


LATENCY_HEADER = ["metric (ms)", "mean", "median", "std", *(f"p{q}" for q in PERCENTILES)]
THROUGHPUT_FIELDS = ["duration", "completed", "failed", "cancelled", "total_input_tokens", "total_output_tokens",
                     "request_throughput", "request_goodput", "output_throughput", "total_token_throughput",
                     "max_concurrent_requests"]
INFO_FIELDS = ["run_id", "kind", "date", "model_id", "backend", "base_url", "workload", "status", "request_rate",
               "max_concurrency", "max_tokens"]


def _compare_rows(report: dict[str, Any]) -> list[list[str]]:
    cmp = report["compare"]
    rows = []
    keys = [f"{s}_{m}_ms" for m in LATENCY_METRICS for s in ("mean", "median", "p99")] + [
        "request_throughput", "output_throughput"]
    for k in keys:
        d = cmp["deltas"].get(k)
        if d:
            pct = "n/a" if d["delta_pct"] is None else f"{d['delta_pct']:+.1f}%"
            rows.append([k, _f(d["base"]), _f(d["other"]), f"{d['delta']:+.2f}", pct])
    return rows


def render_markdown(report: dict[str, Any]) -> str:
    def table(header: list[str], rows: list[list[str]]) -> list[str]:
        return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]

    lines = [f"# Latency report: {report['run_id']}", ""]
    lines += table(["field", "value"], [[k, _f(report.get(k))] for k in INFO_FIELDS if report.get(k) is not None])
    lines += ["", "## Latency", ""] + table(LATENCY_HEADER, _latency_rows(report))
    lines += ["", "## Throughput", ""] + table(["field", "value"], [[k, _f(report.get(k))] for k in THROUGHPUT_FIELDS])
    if "slo" in report:
        lines += ["", f"## SLO: {'PASS' if report['slo']['passed'] else 'FAIL'}", ""]
        lines += [f"- {'PASS' if c['passed'] else 'FAIL'} {c['detail']}" for c in report["slo"]["checks"]]
    if report.get("latency"):
        lines += ["", "## Where the p95 goes", ""] + _latency_markdown(report["latency"], table)
    if "compare" in report:
        cmp = report["compare"]
        lines += ["", f"## Compared with {cmp['other_run_id']} (other - this run)", ""]
        lines += table(["field", "this run", "other", "delta", "delta %"], _compare_rows(report))
        lines += [""] + [f"- {m.upper()}: {v['verdict']}" + ("" if v["p_value"] is None else f" (Mann-Whitney p = {v['p_value']:.3f})")
                          for m, v in cmp["noise"].items()]
    return "\n".join(lines) + "\n"


CSV_FIELDS = ["seq", "request_id", "item", "finish_reason", "prompt_tokens", "output_tokens", "ttft_ms", "tpot_ms",
              "e2el_ms", "mean_itl_ms", "max_itl_ms", "arrival_offset_ms", "error"]
# from the latency analysis: the stages that add up to e2el, the tail features, and whether it is in the tail
CSV_LATENCY_FIELDS = ["queue_ms", "prefill_ms", "decode_ms", "cached_prompt_tokens", "preemptions", "batch_at_arrival",
                      "speculation", "in_p95_tail"]


def render_csv(data: RunData, latency=None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS + (CSV_LATENCY_FIELDS if latency is not None else []))
    rows = {r.id: r for r in latency.rows} if latency is not None else {}
    t0 = min((r.arrival_ns for r in data.records), default=0)
    for i, r in enumerate(data.records):
        itl = r.itl_ms
        out = [i, r.request_id, r.item or "", r.finish_reason or "running", r.prompt_tokens, r.output_tokens,
               _num(r.ttft_ms), _num(r.tpot_ms), _num(r.e2el_ms), _num(sum(itl) / len(itl) if itl else None),
               _num(max(itl) if itl else None), _num((r.arrival_ns - t0) / 1e6), r.error or ""]
        if latency is not None:
            lr = rows.get(r.request_id)  # absent: not completed, not measured
            st = lr.stages if lr else {}
            ft = lr.features if lr else {}
            out += [_num(st.get("queue")), _num(st.get("prefill")), _num(st.get("decode"))]
            out += ["" if ft.get(k) is None else int(ft[k]) for k in ("cached_prompt_tokens", "preemptions",
                                                                       "batch_at_arrival", "speculation")]
            out.append("" if lr is None else int(lr.in_tail))
        w.writerow(out)
    return buf.getvalue()


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}"


# ---- HTML with inline SVG (no scripts, no external resources) ----

COLOR_TTFT = "#d62728"
COLOR_TTFT_OTHER = "#ff7f0e"
COLOR_ITL = "#2ca02c"
COLOR_WAIT = "#aec7e8"
COLOR_DECODE = "#1f77b4"
W, H, ML, MR, MT, MB = 720, 300, 60, 20, 20, 44
MAX_TIMELINE_ROWS = 300

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.pass{color:#116611;font-weight:600}.fail{color:#aa1111;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0}figcaption{color:#555;font-size:12px}
svg text{font:11px system-ui,sans-serif;fill:#444}
"""


def _nice_max(v: float) -> float:
    if v <= 0 or not math.isfinite(v):
        return 1.0
    mag = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= v:
            return m * mag
    return 10 * mag


def _axes(xmax: float, ymax: float, xlabel: str, ylabel: str, yfmt: str = "{:g}") -> list[str]:
    pw, ph = W - ML - MR, H - MT - MB
    out = [f'<rect x="{ML}" y="{MT}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#bbb"/>']
    for k in range(6):
        x = ML + pw * k / 5
        y = MT + ph - ph * k / 5
        out.append(f'<line x1="{x:.1f}" y1="{MT + ph}" x2="{x:.1f}" y2="{MT + ph + 4}" stroke="#888"/>')
        out.append(f'<text x="{x:.1f}" y="{MT + ph + 16}" text-anchor="middle">{xmax * k / 5:g}</text>')
        out.append(f'<line x1="{ML}" y1="{y:.1f}" x2="{ML + pw}" y2="{y:.1f}" stroke="#e6e6e6"/>')
        out.append(f'<text x="{ML - 6}" y="{y + 4:.1f}" text-anchor="end">{yfmt.format(ymax * k / 5)}</text>')
    out.append(f'<text x="{ML + pw / 2}" y="{H - 6}" text-anchor="middle">{html.escape(xlabel)}</text>')
    out.append(f'<text x="14" y="{MT + ph / 2}" text-anchor="middle" transform="rotate(-90 14 {MT + ph / 2})">'
               f'{html.escape(ylabel)}</text>')
    return out


def _svg(body: list[str], label: str, chart_id: str) -> str:
    return (f'<svg id="{chart_id}" role="img" aria-label="{html.escape(label)}" width="{W}" height="{H}" '
            f'viewBox="0 0 {W} {H}">' + "".join(body) + "</svg>")


def ttft_cdf_svg(series: list[tuple[str, list[float], str]]) -> str:
    """Step lines of the empirical CDF of TTFT (ms), one per run."""
    allv = [v for _, vals, _ in series for v in vals]
    xmax = _nice_max(max(allv, default=1.0))
    pw, ph = W - ML - MR, H - MT - MB
    body = _axes(xmax, 1.0, "TTFT (ms)", "fraction of requests", "{:.1f}")
    for name, vals, color in series:
        xs = sorted(vals)
        if not xs:
            continue
        pts = [f"M{ML:.1f},{MT + ph:.1f}"]
        for i, v in enumerate(xs):
            x = ML + pw * v / xmax
            pts.append(f"H{x:.1f}V{MT + ph - ph * (i + 1) / len(xs):.1f}")
        pts.append(f"H{ML + pw:.1f}")
        body.append(f'<path class="series" d="{"".join(pts)}" fill="none" stroke="{color}" stroke-width="3">'
                    f'<title>{html.escape(name)}</title></path>')
    return _svg(body, "TTFT cumulative distribution", "ttft-cdf")


def itl_histogram_svg(values: list[float], other: list[float] | None = None, bins: int = 30) -> str:
    """Bars for the ITL histogram (ms); the last bin also holds everything above the 99.5th percentile."""
    from engine.types import percentile

    pool = values + (other or [])
    top = _nice_max((percentile(pool, 99.5) or 1.0) * 1.05)
    pw, ph = W - ML - MR, H - MT - MB

    def counts(vals: list[float]) -> list[int]:
        c = [0] * bins
        for v in vals:
            c[min(bins - 1, max(0, int(v / top * bins)))] += 1
        return c

    base = counts(values)
    cmp_counts = counts(other) if other else None
    ymax = _nice_max(max(base + (cmp_counts or []), default=1) or 1)
    body = _axes(top, ymax, "inter-token latency (ms)", "tokens", "{:g}")
    bw = pw / bins
    for i, c in enumerate(base):
        if c:
            h = ph * c / ymax
            body.append(f'<rect class="bar" x="{ML + i * bw + 1:.1f}" y="{MT + ph - h:.1f}" width="{bw - 2:.1f}" '
                        f'height="{h:.1f}" fill="{COLOR_ITL}"><title>{c} gaps</title></rect>')
    if cmp_counts:
        pts = [f"M{ML},{MT + ph}"]
        for i, c in enumerate(cmp_counts):
            pts.append(f"V{MT + ph - ph * c / ymax:.1f}H{ML + (i + 1) * bw:.1f}")
        pts.append(f"V{MT + ph}")
        body.append(f'<path d="{"".join(pts)}" fill="none" stroke="{COLOR_TTFT_OTHER}" stroke-width="2"/>')
    return _svg(body, "ITL histogram", "itl-hist")


def timeline_svg(records: list[RequestRecord]) -> tuple[str, int]:
    """One row per request: arrival to first token (light), first token to finish (dark)."""
    recs = [r for r in records if r.finished_ns is not None]
    if len(recs) > MAX_TIMELINE_ROWS:
        step = len(recs) / MAX_TIMELINE_ROWS
        recs = [recs[int(i * step)] for i in range(MAX_TIMELINE_ROWS)]
    t0 = min((r.arrival_ns for r in recs), default=0)
    tmax = _nice_max(max(((r.finished_ns - t0) / 1e6 for r in recs), default=1.0))
    pw, ph = W - ML - MR, H - MT - MB
    body = _axes(tmax, max(len(recs), 1), "time since first arrival (ms)", "request", "{:.0f}")
    rh = ph / max(len(recs), 1)
    for i, r in enumerate(recs):
        y = MT + ph - (i + 1) * rh  # the first request at the bottom, next to 0 on the axis
        x0 = ML + pw * (r.arrival_ns - t0) / 1e6 / tmax
        x1 = ML + pw * ((r.first_token_ns or r.finished_ns) - t0) / 1e6 / tmax
        x2 = ML + pw * (r.finished_ns - t0) / 1e6 / tmax
        tip = html.escape(f"{r.request_id}: ttft {_f(r.ttft_ms)} ms, e2el {_f(r.e2el_ms)} ms")
        body.append(f'<rect x="{x0:.1f}" y="{y:.2f}" width="{max(x1 - x0, 0.8):.1f}" height="{max(rh - 0.5, 0.8):.2f}" '
                    f'fill="{COLOR_WAIT}"><title>{tip}</title></rect>')
        if r.first_token_ns is not None:
            body.append(f'<rect x="{x1:.1f}" y="{y:.2f}" width="{max(x2 - x1, 0.8):.1f}" '
                        f'height="{max(rh - 0.5, 0.8):.2f}" fill="{COLOR_DECODE}"><title>{tip}</title></rect>')
    return _svg(body, "per-request timeline", "timeline"), len(recs)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    b = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{b}</tbody></table>"


def render_html(report: dict[str, Any], data: RunData, other: RunData | None = None) -> str:
    done = [r for r in data.records if r.completed]
    series = [(report["run_id"], [r.ttft_ms for r in done], COLOR_TTFT)]
    other_itl = None
    if other is not None:
        odone = [r for r in other.records if r.completed]
        series.append((other.info["run_id"], [r.ttft_ms for r in odone], COLOR_TTFT_OTHER))
        other_itl = [x for r in odone for x in r.itl_ms]
    itl = [x for r in done for x in r.itl_ms]
    timeline, shown = timeline_svg(data.records)
    title = f"Latency report {report['run_id']}"
    parts = [f"<h1>{html.escape(title)}</h1>",
             _html_table(["field", "value"], [[k, _f(report.get(k))] for k in INFO_FIELDS if report.get(k) is not None])]
    if "slo" in report:
        ok = report["slo"]["passed"]
        parts.append(f'<h2>SLO: <span class="{"pass" if ok else "fail"}">{"PASS" if ok else "FAIL"}</span></h2><ul>')
        parts += [f'<li class="{"pass" if c["passed"] else "fail"}">{"PASS" if c["passed"] else "FAIL"} '
                  f'{html.escape(c["detail"])}</li>' for c in report["slo"]["checks"]]
        parts.append("</ul>")
    legend = "" if other is None else (f' <span style="color:{COLOR_TTFT}">&#9632; this run</span> '
                                       f'<span style="color:{COLOR_TTFT_OTHER}">&#9632; {html.escape(other.info["run_id"])}</span>')
    parts.append('<h2>Charts</h2><div class="charts">')
    parts.append(f"<figure>{ttft_cdf_svg(series)}<figcaption>TTFT CDF ({len(done)} completed requests){legend}</figcaption></figure>")
    parts.append(f"<figure>{itl_histogram_svg(itl, other_itl)}<figcaption>ITL histogram ({len(itl)} gaps)</figcaption></figure>")
    parts.append(f"<figure>{timeline}<figcaption>Per-request timeline ({shown} of {len(data.records)} requests): "
                 f'<span style="color:{COLOR_WAIT}">&#9632;</span> waiting for the first token, '
                 f'<span style="color:{COLOR_DECODE}">&#9632;</span> streaming</figcaption></figure></div>')
    parts.append("<h2>Latency</h2>" + _html_table(LATENCY_HEADER, _latency_rows(report)))
    parts.append("<h2>Throughput</h2>" + _html_table(["field", "value"], [[k, _f(report.get(k))] for k in THROUGHPUT_FIELDS]))
    if report.get("latency"):
        lat = report["latency"]
        parts.append("<h2>Where the p95 goes</h2>" + f'<p class="verdict">{html.escape(lat["verdict"])}</p>')
        for header, rows in _latency_tables(lat):
            parts.append(_html_table(header, rows))
        parts += [f"<p>note: {html.escape(n)}</p>" for n in lat["notes"]]
    if "compare" in report:
        cmp = report["compare"]
        parts.append(f"<h2>Compared with {html.escape(cmp['other_run_id'])} (other &minus; this run)</h2>")
        parts.append(_html_table(["field", "this run", "other", "delta", "delta %"], _compare_rows(report)))
        parts.append("<ul>" + "".join(
            f"<li>{m.upper()}: {html.escape(v['verdict'])}"
            + ("" if v["p_value"] is None else f" (Mann-Whitney p = {v['p_value']:.3f})") + "</li>"
            for m, v in cmp["noise"].items()) + "</ul>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")


def latency_section(store: Store, data: RunData, budgets: dict[str, float] | None = None):
    """The latency budget and tail analysis of a loaded run or session (sessions.latency), or None
    when it has no completed request to measure."""
    from sessions.latency import NoDataError, latency_for_run, latency_for_session

    sid = data.info["run_id"]
    try:
        if data.info.get("workload") is not None:
            return latency_for_run(store, sid, budgets)
        return latency_for_session(store, sid, budgets)
    except NoDataError:
        return None


def _latency_tables(lat: dict[str, Any]) -> list[tuple[list[str], list[list[str]]]]:
    unit = "step" if lat["unit"] == "step" else "e2el"
    stages = [["stage", "p50", "p95", "p99", "mean", "share of p95"],
              [[unit if s is lat["e2el"] else s["name"], _f(s["p50_ms"]), _f(s["p95_ms"]), _f(s["p99_ms"]),
                _f(s["mean_ms"]), f"{s['share_of_p95']:.0%}"] for s in [lat["e2el"], *lat["stages"], *lat["derived"]]]]
    out = [(stages[0], stages[1])]
    if lat["budgets"]:
        out.append((["budget", "limit ms", "value ms", "verdict", "stage"],
                    [[b["metric"], _f(b["limit_ms"]), _f(b["value_ms"]), "ok" if b["ok"] else "BLOWN", b["stage"]]
                     for b in lat["budgets"]]))
    out.append((["tail feature", "tail median", "rest median", "p (Holm)", "significant", "note"],
                [[f["feature"], f"{f['tail_value']:.0%}" if f["binary"] else _f(f["tail_value"]),
                  f"{f['rest_value']:.0%}" if f["binary"] else _f(f["rest_value"]),
                  "n/a" if f["p_value"] is None else f"{f['p_value']:.3g}", "yes" if f["significant"] else "no",
                  f["note"]] for f in lat["tail"]]))
    return out


def _latency_markdown(lat: dict[str, Any], table) -> list[str]:
    lines = [lat["verdict"], ""]
    for header, rows in _latency_tables(lat):
        lines += table(header, rows) + [""]
    lines += [f"- tail: {len(lat['tail_ids'])} request(s) at or above the p95"]
    lines += [f"- note: {n}" for n in lat["notes"]]
    return lines


def write_report(store: Store, run_or_session: str, fmt: str, *, slo: dict[str, float] | None = None,
                 compare_to: str | None = None, budgets: dict[str, float] | None = None) -> tuple[str, dict[str, Any]]:
    """The text of the report in `fmt` and the JSON report it came from (for the SLO verdict).
    `budgets` ([slo] table names: ttft_p95_ms, ...) are judged in the latency section."""
    if fmt not in FORMATS:
        raise SessionsError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    data = load_run(store, run_or_session)
    report = report_from(data, slo)
    latency = latency_section(store, data, budgets)
    if latency is not None:
        report["latency"] = latency.to_dict()
    other = None
    if compare_to:
        other = load_run(store, compare_to)
        report["compare"] = {"other_run_id": other.info["run_id"],
                             **compare(report, report_from(other, slo), data.records, other.records)}
    return render(fmt, report, data, other, latency), report


__all__ = ["FORMATS", "RunData", "SloCheck", "build_report", "latency_section", "load_run", "render", "report_from",
           "slo_passed", "write_report"]
