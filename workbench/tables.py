"""Tables for CLI listings (the TUI has its own widgets), laid out by rich: each column as wide as
its widest cell, a dashed rule under the header, nothing wrapped or cut."""
from __future__ import annotations

import sys
from typing import Any, Sequence


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, right: set[int] | None = None) -> None:
    """The table on stdout: bold headers on a terminal, plain text when piped. `right` holds the
    indices of the columns aligned right (numbers)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    rule = box.Box("    \n    \n -  \n" + "    \n" * 5, ascii=True)  # only the line under the header
    table = Table(box=rule, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    for i, h in enumerate(headers):
        table.add_column(h, justify="right" if right and i in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(fmt(v) for v in row))
    # as wide as the table needs, however narrow the terminal: ids stay whole, to be copied
    console = Console(width=1 << 16, markup=False, highlight=False, emoji=False)
    with console.capture() as out:
        console.print(table)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in out.get().splitlines()))
