"""The HTML report opens offline in headless Chromium and its three charts are painted: the
screenshot holds each chart's series colour."""
import importlib.util
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from engine import Engine
from sessions.bench import BenchConfig, run_bench
from sessions.report import COLOR_DECODE, COLOR_ITL, COLOR_TTFT, COLOR_TTFT_OTHER, COLOR_WAIT, write_report
from sessions.store import Store

PERF = Path(__file__).resolve().parents[1] / "perf" / "bench_client_overhead.py"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def read_png(path: Path) -> np.ndarray:
    """An 8-bit RGB(A) PNG (as Chromium writes screenshots) as a height x width x 3 array."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, width * bpp + 1)
    out = np.zeros((height, width * bpp), dtype=np.uint8)
    prev = np.zeros(width * bpp, dtype=np.int32)
    for y in range(height):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if f == 1:  # Sub: a running sum per channel
            line = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) & 255
        elif f == 2:  # Up
            line = (line + prev) & 255
        elif f in (3, 4):  # Average, Paeth: sequential along the row
            line = line.copy()
            for i in range(width * bpp):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                if f == 3:
                    line[i] = (line[i] + (a + b) // 2) & 255
                else:
                    c = prev[i - bpp] if i >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out[y] = line
        prev = line.astype(np.int32)
    return out.reshape(height, width, bpp)[:, :, :3]


def count_color(img: np.ndarray, hex_color: str, tol: int = 6) -> int:
    want = np.frombuffer(bytes.fromhex(hex_color.lstrip("#")), dtype=np.uint8).astype(np.int16)
    return int((np.abs(img.astype(np.int16) - want) <= tol).all(axis=2).sum())


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package (.ci/run installs it)")
def test_charts_paint_in_headless_chromium(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_client_overhead", PERF)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ids = []
    with Store(tmp_path / "c.duckdb") as store:
        for ttft in (15.0, 30.0):
            proc, url = mod.start_server(ttft, 4.0, 8)
            try:
                engine = Engine.load(backend="openai", base_url=url)
                ids.append(run_bench(engine, store, BenchConfig(num_requests=10, concurrency=5, max_tokens=8)).run_id)
                engine.close()
            finally:
                proc.terminate()
                proc.wait(10)
        page, _ = write_report(store, ids[0], "html", compare_to=ids[1])
    html_path = tmp_path / "report.html"
    html_path.write_text(page)
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1500,1700", f"--screenshot={shot}",
           html_path.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert shot.exists(), proc.stderr[-2000:]
    img = read_png(shot)
    painted = {name: count_color(img, color) for name, color in
               [("ttft cdf", COLOR_TTFT), ("ttft cdf, other run", COLOR_TTFT_OTHER), ("itl histogram", COLOR_ITL),
                ("timeline wait", COLOR_WAIT), ("timeline decode", COLOR_DECODE)]}
    assert all(n > 150 for n in painted.values()), painted
    assert count_color(img, "#fafafa", tol=0) > 3 * 200 * 200  # three plot areas drawn
