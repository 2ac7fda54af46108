"""The speculation panel: live acceptance and the auto policy's decision (from engine stats) and the
sweep grid (speedup by workload x batch size); plain dicts in, never touches the engine or the store."""
from __future__ import annotations

from typing import Any

from textual.widgets import Static


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def render_spec_live(st: dict[str, Any]) -> str:
    """Rich markup for engine.stats(): mode, decision + reason, acceptance (total and by position)."""
    g = st.get
    by_pos = g("acceptance_by_position") or []
    lines = [
        f"[b]speculation[/b] {g('speculation_mode', 'off')} · now [b]{g('speculation', 'off')}[/b]"
        + (f" k={g('spec_k')}" if g("spec_k") else ""),
        f"why: {g('speculation_reason') or '-'}",
        f"acceptance [b]{_pct(g('acceptance_rate'))}[/b] · mean accepted length "
        f"{'-' if g('mean_accepted_length') is None else format(g('mean_accepted_length'), '.2f')}"
        f" · drafted {g('spec_draft_tokens', 0)} accepted {g('spec_accepted_tokens', 0)}",
        "by position: " + (" ".join(f"{i + 1}:{_pct(a)}" for i, a in enumerate(by_pos)) or "-"),
    ]
    return "\n".join(lines)


def render_spec_grid(rows: list[dict[str, Any]]) -> str:
    """rows: sessions.spec_sweep.load_sweep() (workload, batch_size, speculation, speedup, ...)."""
    if not rows:
        return "no speculation sweep yet (workbench spec sweep)"
    modes = [m for m in dict.fromkeys(r["speculation"] for r in rows) if m != "off"]
    out = [f"{'workload':<10}{'batch':>6}" + "".join(f"{m:>9}" for m in modes)]
    cells = {(r["workload"], r["batch_size"], r["speculation"]): r for r in rows}
    for w, b in dict.fromkeys((r["workload"], r["batch_size"]) for r in rows):
        vals = []
        for m in modes:
            r = cells.get((w, b, m))
            s = None if r is None else r.get("speedup")
            v = "-" if s is None else f"{s:.2f}x"
            vals.append(f"[green]{v:>9}[/green]" if s and s > 1.03 else f"{v:>9}")
        out.append(f"{w:<10}{b:>6}" + "".join(vals))
    return "\n".join(out)


class SpecPanel(Static):
    """Call `update_stats(engine_stats)` on the app's refresh timer and `update_grid(rows)` after a sweep."""

    DEFAULT_CSS = """
    SpecPanel { height: auto; }
    """

    def __init__(self, stats: dict[str, Any] | None = None, grid: list[dict[str, Any]] | None = None, **kwargs: Any):
        self.stats: dict[str, Any] = dict(stats or {})
        self.grid: list[dict[str, Any]] = list(grid or [])
        super().__init__(self._markup(), **kwargs)
        self.border_title = "speculation"

    def _markup(self) -> str:
        return render_spec_live(self.stats) + "\n\n" + render_spec_grid(self.grid)

    def update_stats(self, stats: dict[str, Any]) -> None:
        if stats == self.stats:
            return
        self.stats = dict(stats)
        self.update(self._markup())

    def update_grid(self, rows: list[dict[str, Any]]) -> None:
        self.grid = list(rows)
        self.update(self._markup())
