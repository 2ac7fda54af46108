"""Roofline meter: measure the device's memory bandwidth once, then rate each decode step by the
bytes it must read (weights + the KV it attends to) against step time x bandwidth."""
from __future__ import annotations

import time

import torch


def measure_bandwidth_gbps(device: torch.device, size_mb: int | None = None, repeats: int = 5) -> float:
    """Copy bandwidth (bytes read + written per second, in GB/s), best of `repeats` copies."""
    if size_mb is None:
        size_mb = 1024 if device.type == "cuda" else 128
    n = size_mb * 1024 * 1024 // 4
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm-up: page in both buffers
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        dst.copy_(src)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    del src, dst
    return 2 * n * 4 / best / 1e9


class RooflineMeter:
    __slots__ = ("weight_bytes", "kv_bytes_per_token", "bandwidth_gbps")

    def __init__(self, weight_bytes: int, kv_bytes_per_token: int, bandwidth_gbps: float):
        self.weight_bytes = weight_bytes
        self.kv_bytes_per_token = kv_bytes_per_token  # all layers, keys and values
        self.bandwidth_gbps = bandwidth_gbps

    def step_bytes(self, context_tokens: int) -> int:
        return self.weight_bytes + context_tokens * self.kv_bytes_per_token

    def fraction(self, step_ns: int, context_tokens: int) -> float | None:
        if step_ns <= 0 or self.bandwidth_gbps <= 0:
            return None
        return self.step_bytes(context_tokens) / (step_ns * self.bandwidth_gbps)  # GB/s == bytes/ns
