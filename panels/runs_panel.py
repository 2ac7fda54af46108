"""The Runs tab: a form that starts a bench run (workload, requests, concurrency or rate, local engine
or an OpenAI-compatible URL), live progress, every recorded run with its percentiles and SLO verdict,
and the selected run's detail: charts, SLO checks, a comparison, where its p95 goes, export status."""
from __future__ import annotations

from typing import Any, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Select, Static

from panels.charts import Chart, braille_cdf, histogram, timeline
from panels.latency_view import LatencyView
from panels.messages import BenchRequested, RunSelected

BACKENDS = (("this engine", "local"), ("OpenAI-compatible URL", "openai"))


def _ms(v: Any) -> str:
    return "-" if v is None else f"{v:.0f}" if v >= 100 else f"{v:.1f}"


class RunsPanel(Widget):
    DEFAULT_CSS = """
    RunsPanel { layout: vertical; height: 1fr; }
    RunsPanel #bench-form { height: auto; }
    RunsPanel #bench-form Input { width: 15; }
    RunsPanel #bench-form #bench-url { width: 1fr; }
    RunsPanel #bench-form Select { width: 22; }
    RunsPanel #bench-form Label { padding: 1 0 0 1; }
    RunsPanel #bench-live { height: auto; }
    RunsPanel #bench-progress { width: 40; }
    RunsPanel #runs-table { height: 10; }
    RunsPanel #run-detail { height: 1fr; }
    RunsPanel #run-charts { height: auto; }
    RunsPanel #run-charts > Vertical { width: 58; height: auto; }
    RunsPanel #chart-timeline { width: 1fr; }
    """

    def __init__(self, workloads: Sequence[str] = ("chat",), **kw: Any) -> None:
        super().__init__(**kw)
        self.workloads = list(workloads)
        self.rows: list[dict[str, Any]] = []
        self.marked: str | None = None  # the run a comparison is made against
        self.detail_id: str | None = None
        self.compare_text = ""
        self.export_text = ""

    def compose(self) -> ComposeResult:
        with Horizontal(id="bench-form"):
            yield Select([(w, w) for w in self.workloads], value=self.workloads[0], allow_blank=False, id="bench-workload")
            yield Input("4", placeholder="requests", id="bench-requests", tooltip="number of requests")
            yield Input("", placeholder="concurrency", id="bench-concurrency", tooltip="keep this many in flight (default 1)")
            yield Input("", placeholder="rate/s", id="bench-rate", tooltip="Poisson arrivals per second, instead of a concurrency")
            yield Input("32", placeholder="max tokens", id="bench-max-tokens", tooltip="output tokens per request")
            yield Select(BACKENDS, value="local", allow_blank=False, id="bench-backend")
            yield Input("", placeholder="http://127.0.0.1:8000/v1", id="bench-url", tooltip="base URL of an OpenAI-compatible server")
            yield Button("Start", id="bench-start", variant="primary")
        with Horizontal(id="bench-live"):
            yield ProgressBar(total=None, show_eta=False, id="bench-progress")
            yield Static("no bench running", id="bench-status")
        table: DataTable = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(" ", "when", "workload", "backend", "n", "p50 ttft", "p95 ttft", "p99 ttft", "tpot",
                          "tok/s", "SLO", "status", "id")
        yield table
        with VerticalScroll(id="run-detail"):
            yield Static("select a run (enter) to see its charts", id="run-summary")
            yield Static("", id="run-slo")
            with Horizontal(id="run-charts"):
                with Vertical():
                    yield Chart("TTFT CDF", id="chart-ttft")
                    yield Chart("ITL histogram", id="chart-itl")
                yield Chart("per-request timeline (░ waiting, █ streaming)", id="chart-timeline")
            yield Static("", id="run-compare")
            yield Static("", id="run-export")
            yield LatencyView(id="run-latency")

    def focus(self, scroll_visible: bool = True) -> RunsPanel:
        """The panel itself takes no focus: its table does."""
        self.query_one("#runs-table", DataTable).focus(scroll_visible)
        return self

    # ---- the form ----
    def form_options(self) -> dict[str, Any] | str:
        """The form as bench_config keyword arguments, or a line saying what is wrong with it."""
        def number(wid: str, kind: type, what: str) -> Any:
            raw = self.query_one(wid, Input).value.strip()
            if not raw:
                return None
            try:
                v = kind(raw)
            except ValueError:
                raise ValueError(f"{what} must be a number, not {raw!r}") from None
            if v <= 0:
                raise ValueError(f"{what} must be positive")
            return v

        try:
            requests = number("#bench-requests", int, "requests")
            concurrency = number("#bench-concurrency", int, "concurrency")
            rate = number("#bench-rate", float, "rate")
            max_tokens = number("#bench-max-tokens", int, "max tokens")
        except ValueError as e:
            return str(e)
        if concurrency is not None and rate is not None:
            return "give a concurrency or a rate, not both"
        backend = self.query_one("#bench-backend", Select).value
        url = self.query_one("#bench-url", Input).value.strip()
        if backend == "openai" and not url:
            return "an OpenAI-compatible backend needs its base URL, e.g. http://127.0.0.1:8000/v1"
        return {"workload": str(self.query_one("#bench-workload", Select).value), "requests": requests or 4,
                "concurrency": concurrency, "rate": rate, "max_tokens": max_tokens or 32, "backend": backend,
                "base_url": url if backend == "openai" else None}

    def request_bench(self) -> None:
        opts = self.form_options()
        if isinstance(opts, str):
            self.set_status(Text(opts, style="bold red"))
            return
        self.post_message(BenchRequested(opts))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "bench-start":
            event.stop()
            self.request_bench()

    # ---- live progress ----
    def set_status(self, text: str | Text) -> None:
        self.query_one("#bench-status", Static).update(text)

    def bench_started(self, total: int, where: str) -> None:
        bar = self.query_one("#bench-progress", ProgressBar)
        bar.update(total=total, progress=0)
        self.set_status(f"starting {total} request(s) on {where}")

    def bench_progress(self, finished: int, submitted: int, total: int, live: dict[str, Any]) -> None:
        self.query_one("#bench-progress", ProgressBar).update(total=total, progress=finished)
        self.set_status(f"{finished}/{total} done, {submitted - finished} in flight · ttft p50 {_ms(live.get('p50_ttft_ms'))}"
                        f" p95 {_ms(live.get('p95_ttft_ms'))} p99 {_ms(live.get('p99_ttft_ms'))} ms"
                        f" · tpot p50 {_ms(live.get('p50_tpot_ms'))} ms · {live.get('output_tokens_per_s') or 0:.1f} tok/s")
        if live.get("ttft_ms"):
            self.query_one("#chart-ttft", Chart).show(braille_cdf(live["ttft_ms"]), "TTFT CDF (live)")

    def bench_finished(self, run_id: str | None, status: str, error: str | None) -> None:
        bar = self.query_one("#bench-progress", ProgressBar)
        if bar.total is not None:
            bar.update(progress=bar.total)
        if error:
            self.set_status(Text(f"bench failed: {error}", style="bold red"))
        else:
            self.set_status(f"run {run_id} {status}")

    # ---- the runs ----
    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        """rows: sessions.bench.list_runs(), each with `slo_passed` (None when no SLO is set)."""
        self.rows = rows
        table = self.query_one("#runs-table", DataTable)
        cursor = table.cursor_row
        table.clear()
        for r in rows:
            when = r["created_at"].strftime("%m-%d %H:%M") if r.get("created_at") else "-"
            backend = r.get("backend") or "-"
            if r.get("base_url"):
                backend = f"{backend} {r['base_url']}"[:28]
            tps = r.get("output_throughput")
            slo = r.get("slo_passed")
            table.add_row("•" if r["id"] == self.marked else " ", when, r["workload"], backend, r["num_requests"],
                          _ms(r.get("median_ttft_ms")), _ms(r.get("p95_ttft_ms")), _ms(r.get("p99_ttft_ms")),
                          _ms(r.get("median_tpot_ms")), "-" if tps is None else f"{tps:.1f}",
                          "-" if slo is None else ("PASS" if slo else "FAIL"), r["status"], r["id"], key=r["id"])
        if rows:
            table.move_cursor(row=min(max(cursor, 0), len(rows) - 1))

    @property
    def current_id(self) -> str | None:
        table = self.query_one("#runs-table", DataTable)
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]["id"]

    def toggle_mark(self) -> str | None:
        """Mark the run under the cursor as the base of a comparison (again: unmark it)."""
        rid = self.current_id
        self.marked = None if rid is None or rid == self.marked else rid
        self.set_rows(self.rows)
        return self.marked

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.post_message(RunSelected(str(event.row_key.value)))

    # ---- one run ----
    def show_detail(self, run_id: str, report: dict[str, Any], ttft_ms: list[float], itl_ms: list[float],
                    rows: list[tuple[float, float | None, float]]) -> None:
        self.detail_id = run_id
        r = report
        where = r.get("backend") or ""
        if r.get("base_url"):
            where += f" {r['base_url']}"
        arrivals = (f"rate {r['request_rate']}/s" if r.get("request_rate") not in (None, "inf")
                    else f"concurrency {r.get('max_concurrency') or 1}")
        lines = [f"run {run_id} · {r.get('workload') or r.get('kind')} · {where} · {r.get('model_id')} · {arrivals} · {r.get('status')}",
                 f"{r['completed']}/{r['num_prompts']} completed · {r['failed']} failed · {r['duration']:.2f} s · "
                 f"{r['request_throughput'] or 0:.2f} req/s · {r['output_throughput'] or 0:.1f} tok/s"]
        for m in ("ttft", "tpot", "itl", "e2el"):
            lines.append(f"{m:>5} ms  mean {_ms(r.get(f'mean_{m}_ms'))}  p50 {_ms(r.get(f'median_{m}_ms'))}"
                         f"  p95 {_ms(r.get(f'p95_{m}_ms'))}  p99 {_ms(r.get(f'p99_{m}_ms'))}")
        self.query_one("#run-summary", Static).update("\n".join(lines))
        self.query_one("#run-slo", Static).update(slo_text(r.get("slo")))
        self.query_one("#chart-ttft", Chart).show(braille_cdf(ttft_ms), f"TTFT CDF ({len(ttft_ms)} requests)")
        self.query_one("#chart-itl", Chart).show(histogram(itl_ms), f"ITL histogram ({len(itl_ms)} gaps, up to p99)")
        self.query_one("#chart-timeline", Chart).show(timeline(rows), "per-request timeline (░ waiting, █ streaming)")
        if self.compare_text and run_id not in self.compare_text:
            self.show_compare_text("")

    def show_compare(self, base_id: str, other_id: str, cmp: dict[str, Any]) -> None:
        t = Text(f"{other_id} compared with {base_id} (other − base)\n", style="bold")
        for k in ("median_ttft_ms", "p95_ttft_ms", "p99_ttft_ms", "median_tpot_ms", "median_e2el_ms", "output_throughput"):
            d = cmp["deltas"].get(k)
            if d:
                pct = "" if d["delta_pct"] is None else f" ({d['delta_pct']:+.1f}%)"
                t.append(f"  {k:<18} {_ms(d['base'])} → {_ms(d['other'])}{pct}\n")
        for m, v in cmp["noise"].items():
            p = "" if v["p_value"] is None else f" (Mann-Whitney p = {v['p_value']:.3f})"
            style = "green" if v["verdict"] == "faster" else "red" if v["verdict"] == "slower" else "dim"
            t.append(f"  {m.upper()}: ", style="bold")
            t.append(v["verdict"] + p + "\n", style=style)
        self.show_compare_text(t)

    def show_compare_text(self, text: str | Text) -> None:
        self.compare_text = text.plain if isinstance(text, Text) else text
        self.query_one("#run-compare", Static).update(text)

    def show_export(self, text: str | Text) -> None:
        self.export_text = text.plain if isinstance(text, Text) else text
        self.query_one("#run-export", Static).update(text)

    def set_latency(self, report: Any) -> None:
        self.query_one("#run-latency", LatencyView).set_report(report)


def slo_text(slo: dict[str, Any] | None) -> Text:
    if not slo:
        return Text("no SLOs in the config ([slo] ttft_p95_ms = ..., e2el_p95_ms = ..., tpot_p95_ms = ...)", style="dim")
    t = Text("SLO ")
    t.append("PASS" if slo["passed"] else "FAIL", style="bold green" if slo["passed"] else "bold red")
    for c in slo["checks"]:
        t.append("\n  ")
        t.append("PASS" if c["passed"] else "FAIL", style="green" if c["passed"] else "red")
        t.append(f" {c['detail']}")
    return t
