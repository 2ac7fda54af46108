"""The model runner: owns the model and the paged KV cache, packs a scheduled batch into tensors,
runs the forward pass (on a GPU, CUDA graphs per row-count bucket for steps of decode and verify
rows, over static block tables and context lengths) and samples."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from engine.torch import sampler
from engine.torch.attention import AttentionMetadata, DecodeGroup, KernelRows, PrefillChunk, causal_mask
from engine.torch.config import TorchConfig
from engine.torch.cpu_kernels import kernel_status, paged_attention_kernel
from engine.torch.kernels import resolve_kernels
from engine.torch.llama import LlamaForCausalLM
from engine.torch.scheduler import ScheduledSeq
from engine.torch.sequence import Sequence
from engine.types import TokenLogprob

# chunks this short (speculative verify rows, the last bit of a prompt) attend through the CPU
# kernel with the decode rows; longer ones are compute-bound and go to SDPA
KERNEL_MAX_CHUNK = 16


@dataclass(slots=True)
class RunResult:
    """What one step's forward pass produced: tokens by sequence, and the figures of the step event
    and the roofline meter."""

    tokens: dict[str, list[int]] = field(default_factory=dict)  # seq_id -> accepted drafts + the sampled token
    logprobs: dict[str, list[TokenLogprob]] = field(default_factory=dict)  # for the sequences that asked
    prefill_tokens: int = 0
    decode_tokens: int = 0
    context_tokens: int = 0  # tokens the decode rows attended to
    used_graph: bool = False
    # a verify step (speculative decoding)
    draft_tokens: int = 0
    accepted_tokens: int = 0
    draft_ns: int = 0  # the model drafter's passes, inside the step
    draft_passes: int = 0

    @classmethod
    def of(cls, batch: list[ScheduledSeq]) -> "RunResult":
        """The token counts of a batch, before anything is sampled."""
        decodes = [s for s in batch if s.num_tokens == 1]
        return cls(prefill_tokens=sum(s.num_tokens for s in batch) - len(decodes), decode_tokens=len(decodes),
                   context_tokens=sum(s.seq.num_computed_tokens + 1 for s in decodes))


class ModelRunner:
    def __init__(self, model: LlamaForCausalLM, config: TorchConfig):
        assert config.max_num_seqs and config.max_model_len, "a resolved config"
        self.model = model
        self.cfg = cfg = model.cfg
        self.config = config
        w = model.embed_tokens.weight
        self.device, self.dtype = device, dtype = w.device, w.dtype
        self.block_size = config.block_size
        # engine.torch.triton_kernels (attention, KV write, norm, rope, SiLU-mul), or None
        self.kernels = resolve_kernels(config.kernels, device)
        model.triton = self.kernels
        self.sm_count = (torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda"
                         else 1)  # under the interpreter: no split-K (its tests run it directly)
        self.graph_capture_ms = 0.0
        self.num_kv_blocks = config.num_kv_blocks or self._auto_num_blocks()
        # one extra block at the end: padded CUDA-graph rows write their keys there
        shape = (cfg.num_layers, cfg.num_kv_heads, self.num_kv_blocks + 1, self.block_size, cfg.head_dim)
        self.kv_cache = (torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device))
        self.trash_slot = self.num_kv_blocks * self.block_size
        self.decode_group_tokens = 2048
        self.graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.use_graphs = device.type == "cuda" and config.cuda_graphs
        # the C++ paged attention (CPU, fp32); None: the torch paths
        cpp = self.kernels is None and device.type == "cpu" and dtype == torch.float32
        self.attn_kernel = paged_attention_kernel() if cpp else None
        if self.kernels is not None:
            self.attention_path = "Triton paged attention" + (" in CUDA graphs" if self.use_graphs else "")
        else:
            self.attention_path = (kernel_status() if cpp else
                                   "torch paged decode attention" + (" in CUDA graphs" if self.use_graphs else ""))
        if self.use_graphs:
            self._init_graph_buffers()

    # ---- KV sizing ----
    @property
    def kv_bytes_per_token(self) -> int:
        c = self.cfg
        return 2 * c.num_layers * c.num_kv_heads * c.head_dim * torch.finfo(self.dtype).bits // 8

    def _auto_num_blocks(self) -> int:
        per_block = self.kv_bytes_per_token * self.block_size
        if self.device.type == "cuda":
            free, total = torch.cuda.mem_get_info(self.device)
            used = total - free
            budget = total * self.config.gpu_memory_utilization - used - self.activation_bytes()
            if self.kernels is None:
                # the torch-reference decode graph gathers one layer's keys and values for every
                # sequence at once (and its graph pool keeps that copy)
                c, elt = self.cfg, torch.finfo(self.dtype).bits // 8
                budget -= 2 * self.config.max_num_seqs * self.config.max_model_len * c.num_kv_heads * c.head_dim * elt * 2
        else:
            budget = self.config.kv_cache_gb * 1024**3
        wanted = -(-self.config.max_num_seqs * self.config.max_model_len // self.block_size)
        return max(16, min(int(budget // per_block), wanted))

    def activation_bytes(self) -> int:
        """What one step may allocate besides weights and KV: the widest step's activations (a
        full token budget of prefill), the graphs' and a step's logits in fp32, a prefill chunk's
        GQA-expanded keys and values, split-K partials, and 1 GiB for cuBLAS workspaces, the
        graph pool's own bookkeeping and fragmentation."""
        c, cfg, elt = self.cfg, self.config, torch.finfo(self.dtype).bits // 8
        qkv = (c.num_heads + 2 * c.num_kv_heads) * c.head_dim
        per_token = qkv + c.num_heads * c.head_dim + 3 * c.intermediate_size + 4 * c.hidden_size
        acts = cfg.max_num_batched_tokens * per_token * elt
        # fp32 logits: the graphs' shared output buffer, a step's own and sampling's copies
        logits = 3 * cfg.max_num_seqs * c.vocab_size * 4
        chunk_kv = 2 * cfg.max_model_len * c.num_heads * c.head_dim * elt
        splits = cfg.max_num_seqs * c.num_heads * (c.head_dim + 1) * 4 * 32
        return acts + logits + chunk_kv + splits + 1024**3

    # ---- inputs ----
    def _tensor(self, data, dtype=torch.long) -> torch.Tensor:
        t = torch.tensor(data, dtype=dtype)
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t

    def prepare(self, batch: list[ScheduledSeq]):
        """Pack the batch: decodes first, then prefill chunks (a verify step's rows are a chunk).
        Returns (input ids, positions, attention metadata, rows that produce a token, their seqs)."""
        bs = self.block_size
        # decodes sorted by length, so that neighbours share an attention group with little padding
        decodes = sorted((s for s in batch if s.num_tokens == 1), key=lambda s: len(s.seq.block_table))
        prefills = [s for s in batch if s.num_tokens > 1]
        order = decodes + prefills
        input_ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        for s in order:
            seq, start = s.seq, s.seq.num_computed_tokens
            end = start + s.num_tokens
            input_ids.extend(seq.tokens(start, end))
            positions.extend(range(start, end))
            bt = seq.block_table
            slots.extend(bt[p // bs] * bs + p % bs for p in range(start, end))
        meta = AttentionMetadata(slot_mapping=self._tensor(slots), num_decode=len(decodes))
        kernel = self.attn_kernel is not None or self.kernels is not None
        if decodes:
            lens = [s.seq.num_computed_tokens + 1 for s in decodes]
            if self.use_graphs and self.kernels is None:
                meta.decode_block_tables, meta.decode_context_lens = self._tables(decodes, lens)
            elif not kernel:
                meta.decode_groups = self._decode_groups(decodes, lens)
        row = len(decodes)
        for s in prefills:
            seq = s.seq
            ctx = seq.num_computed_tokens + s.num_tokens
            if not (kernel and s.num_tokens <= KERNEL_MAX_CHUNK):
                table = mask = None
                if seq.num_computed_tokens:
                    table = self._tensor(seq.block_table[: -(-ctx // bs)])
                    mask = causal_mask(s.num_tokens, ctx, self.device)  # once here, not in every layer
                meta.prefills.append(PrefillChunk(row, s.num_tokens, ctx, table, mask))
            row += s.num_tokens
        if kernel:
            meta.kernel_rows = self._kernel_rows(order)
        return self._tensor(input_ids), self._tensor(positions), meta, *_sample_rows(order)

    def _kernel_rows(self, order: list[ScheduledSeq]) -> KernelRows | None:
        """Per packed row: its sequence's block table and how many tokens it attends to (its
        position + 1, which makes a chunk causal); rows of long chunks get 0 (SDPA's)."""
        bs = self.block_size
        tables: list[list[int]] = []
        row_seq: list[int] = []
        row_ctx: list[int] = []
        for s in order:
            start = s.seq.num_computed_tokens
            if s.num_tokens > KERNEL_MAX_CHUNK:
                row_seq.extend([0] * s.num_tokens)
                row_ctx.extend([0] * s.num_tokens)
                continue
            row_seq.extend([len(tables)] * s.num_tokens)
            row_ctx.extend(range(start + 1, start + s.num_tokens + 1))
            tables.append(s.seq.block_table[: -(-(start + s.num_tokens) // bs)])
        if not tables:  # only long prefill chunks this step
            return None
        width = max(len(t) for t in tables)
        padded = [t + [0] * (width - len(t)) for t in tables]
        splits, leads = 1, None
        if self.kernels is not None:
            live = sum(1 for c in row_ctx if c)
            splits = self.kernels.num_splits_for(live, self.cfg.num_kv_heads, max(row_ctx), self.sm_count)
            group = self.cfg.num_heads // self.cfg.num_kv_heads
            leads = [x for s in order for x in ([0] * s.num_tokens if s.num_tokens > KERNEL_MAX_CHUNK else
                                                self.kernels.row_leads([s.num_tokens], group))]
            leads = self._tensor(leads)
        return KernelRows(self.attn_kernel, self._tensor(padded), self._tensor(row_seq), self._tensor(row_ctx),
                          self.kernels, splits, leads)

    def _tables(self, decodes: list[ScheduledSeq], lens: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s.seq.block_table) for s in decodes)
        tables = [s.seq.block_table + [0] * (width - len(s.seq.block_table)) for s in decodes]  # pad: masked
        return self._tensor(tables), self._tensor(lens)

    def _decode_groups(self, decodes: list[ScheduledSeq], lens: list[int]) -> list[DecodeGroup]:
        """Split the (length-sorted) decode rows into groups of at most ~decode_group_tokens padded
        tokens: gathering one group's KV and attending to it then stays within the CPU caches."""
        groups, start, n = [], 0, len(decodes)
        for i in range(1, n + 1):
            # rows start..i (sorted, so decodes[i] is the widest) would exceed the group budget
            if i == n or (i + 1 - start) * len(decodes[i].seq.block_table) * self.block_size > self.decode_group_tokens:
                groups.append(self._decode_group(start, i, decodes[start:i], lens[start:i]))
                start = i
        return groups

    def _decode_group(self, start: int, end: int, rows: list[ScheduledSeq], lens: list[int]) -> DecodeGroup:
        """Everything the layers need for these rows, built once per step instead of per layer."""
        bs = self.block_size
        if len(rows) == 1:
            table = rows[0].seq.block_table[: -(-lens[0] // bs)]
            b0 = table[0]
            if table[-1] - b0 == len(table) - 1 and table == list(range(b0, b0 + len(table))):
                return DecodeGroup(start, end, lens[0], first_block=b0)
        width = max(-(-n // bs) for n in lens)
        ids = [b for s in rows for b in s.seq.block_table[:width] + [0] * (width - len(s.seq.block_table[:width]))]
        length = width * bs
        lens_t = torch.tensor(lens)
        keep = torch.arange(length)[None, :] < lens_t[:, None]
        mask = torch.zeros(len(rows), 1, 1, length, dtype=self.dtype).masked_fill_(~keep.view(len(rows), 1, 1, length), float("-inf"))
        return DecodeGroup(start, end, max(lens), block_ids=self._tensor(ids), mask=mask.to(self.device))

    # ---- run ----
    @torch.inference_mode()
    def run(self, batch: list[ScheduledSeq]) -> RunResult:
        """One forward pass over the batch: a token for each sequence whose whole context is now
        computed, and the step's figures."""
        res = RunResult.of(batch)
        input_ids, positions, meta, rows, seqs = self.prepare(batch)
        if not rows:
            self.model(input_ids, positions, self.kv_cache, meta)
            return res
        if self._rows_graph_fits(input_ids, meta):
            logits = self._run_rows_graph(input_ids, positions, meta)
            if len(rows) != input_ids.shape[0]:
                logits = logits[self._tensor(rows)]
            res.used_graph = True
        elif self.use_graphs and self.kernels is None and not meta.prefills and len(rows) == meta.num_decode <= self.graph_max_bs:
            logits = self._run_graph(input_ids, positions, meta)[: len(rows)]
            res.used_graph = True
        else:
            hidden = self.model(input_ids, positions, self.kv_cache, meta)
            idx = self._tensor(rows) if len(rows) != hidden.shape[0] else None
            logits = self.model.compute_logits(hidden if idx is None else hidden[idx])
        res.tokens = {seq.seq_id: [tok] for seq, tok in zip(seqs, sampler.sample(logits, seqs))}
        for i, seq in enumerate(seqs):
            if seq.params.logprobs is not None:
                sampler.add_logprobs(res.logprobs, seq, logits[i : i + 1], res.tokens[seq.seq_id])
        return res

    # ---- CUDA graphs (decode only) ----
    def _init_graph_buffers(self) -> None:
        self.graph_max_bs = self.config.max_num_seqs
        self.graph_batch_sizes = graph_buckets(self.graph_max_bs)
        self.max_width = -(-self.config.max_model_len // self.block_size)
        n, dev = self.graph_max_bs, self.device
        self.g_input_ids = torch.zeros(n, dtype=torch.long, device=dev)
        self.g_positions = torch.zeros(n, dtype=torch.long, device=dev)
        self.g_slots = torch.full((n,), self.trash_slot, dtype=torch.long, device=dev)
        self.g_tables = torch.zeros(n, self.max_width, dtype=torch.long, device=dev)
        self.g_lens = torch.ones(n, dtype=torch.long, device=dev)
        # the Triton graphs' rows: which table row each packed row reads (g_tables), its context
        self.g_row_seq = torch.zeros(n, dtype=torch.long, device=dev)
        self.g_row_ctx = torch.ones(n, dtype=torch.long, device=dev)
        self.g_row_lead = torch.ones(n, dtype=torch.long, device=dev)
        self.g_logits = torch.zeros(n, self.cfg.vocab_size, dtype=torch.float32, device=dev)
        self.graph_pool = None

    # ---- CUDA graphs over kernel rows (Triton): one per row-count bucket, any context length ----
    def capture_graphs(self) -> float:
        """Capture every row-count bucket's graph now (at load, as vLLM does), so no request pays
        for it; returns the milliseconds it took. The Triton kernel loops over each row's context
        inside the graph, so a graph serves every context length."""
        if not (self.use_graphs and self.kernels is not None):
            return 0.0
        t0 = time.perf_counter()
        try:
            with torch.inference_mode():
                for b in reversed(self.graph_batch_sizes):  # widest first: the rest reuse its pool
                    if (b, -1) not in self.graphs:
                        self.graphs[(b, -1)] = self._capture_rows(b)
        except RuntimeError as e:  # a driver or kernel that refuses capture: run eagerly, and say so
            self.graphs.clear()
            self.use_graphs = False
            self.attention_path = f"Triton paged attention (CUDA graphs off: {str(e).splitlines()[0][:120]})"
        ms = (time.perf_counter() - t0) * 1e3
        self.graph_capture_ms += ms
        return ms

    def _rows_graph_fits(self, input_ids: torch.Tensor, meta: AttentionMetadata) -> bool:
        """Every row is a kernel row (decodes, verify rows, short chunks) and the graphs have a bucket."""
        return (self.use_graphs and self.kernels is not None and not meta.prefills and meta.kernel_rows is not None
                and input_ids.shape[0] <= self.graph_max_bs and meta.kernel_rows.tables.shape[0] <= self.graph_max_bs)

    def _capture_rows(self, b: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        splits = self.kernels.num_splits_for(b, self.cfg.num_kv_heads, self.config.max_model_len, self.sm_count)
        rows = KernelRows(None, self.g_tables, self.g_row_seq[:b], self.g_row_ctx[:b], self.kernels, splits,
                          self.g_row_lead[:b])
        meta = AttentionMetadata(self.g_slots[:b], b, kernel_rows=rows)
        return self._capture_forward(b, meta)

    def _run_rows_graph(self, input_ids, positions, meta: AttentionMetadata) -> torch.Tensor:
        """Logits of every packed row, through the bucket's graph: the step's rows copied into
        the static buffers, the padding rows pointed at the trash slot and one harmless token."""
        n = input_ids.shape[0]
        b = next(x for x in self.graph_batch_sizes if x >= n)
        kr = meta.kernel_rows
        s, w = kr.tables.shape
        self.g_slots[n:b].fill_(self.trash_slot)
        self.g_row_seq[n:b].zero_()
        self.g_row_ctx[n:b].fill_(1)
        self.g_row_lead[n:b].fill_(1)
        self.g_input_ids[:n].copy_(input_ids)
        self.g_positions[:n].copy_(positions)
        self.g_slots[:n].copy_(meta.slot_mapping)
        self.g_row_seq[:n].copy_(kr.row_seq)
        self.g_row_ctx[:n].copy_(kr.row_ctx)
        self.g_row_lead[:n].copy_(kr.row_lead)
        self.g_tables[:s, :w].copy_(kr.tables)  # columns past w are never read: rows stop at their context
        if (b, -1) not in self.graphs:
            t0 = time.perf_counter()
            self.graphs[(b, -1)] = self._capture_rows(b)
            self.graph_capture_ms += (time.perf_counter() - t0) * 1e3
        graph, logits = self.graphs[(b, -1)]
        graph.replay()
        return logits[:n]

    def _graph_key(self, batch: int, width: int) -> tuple[int, int]:
        b = next(x for x in self.graph_batch_sizes if x >= batch)
        w = 16
        while w < width:
            w *= 2
        return b, min(w, self.max_width)

    def _capture(self, b: int, w: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        meta = AttentionMetadata(self.g_slots[:b], b, self.g_tables[:b, :w], self.g_lens[:b])
        return self._capture_forward(b, meta)

    def _capture_forward(self, b: int, meta: AttentionMetadata) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        out = self.g_logits[:b]

        def forward():
            # into the one logits buffer all graphs share (one replays at a time; the caller
            # reads it before the next): the graph's own temporaries go back to the pool
            h = self.model(self.g_input_ids[:b], self.g_positions[:b], self.kv_cache, meta)
            out.copy_(self.model.compute_logits(h))

        if self.device.type != "cuda":  # the static-buffer path without CUDA (tests on a CPU)
            replay = _Replay(forward)
            return replay, out
        forward()  # warm-up outside capture (allocator, kernels)
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.graph_pool):
            forward()
        if self.graph_pool is None:
            self.graph_pool = graph.pool()
        torch.cuda.synchronize(self.device)
        return graph, out

    def _run_graph(self, input_ids, positions, meta: AttentionMetadata) -> torch.Tensor:
        n = input_ids.shape[0]
        key = self._graph_key(n, meta.decode_block_tables.shape[1])
        b, w = key
        # padded rows: write into the trash slot, attend to one harmless position
        self.g_slots[n:b].fill_(self.trash_slot)
        self.g_lens[n:b].fill_(1)
        self.g_tables[n:b, :w].zero_()
        self.g_input_ids[:n].copy_(input_ids)
        self.g_positions[:n].copy_(positions)
        self.g_slots[:n].copy_(meta.slot_mapping)
        width = meta.decode_block_tables.shape[1]
        self.g_tables[:n, :width].copy_(meta.decode_block_tables)
        self.g_tables[:n, width:w].zero_()
        self.g_lens[:n].copy_(meta.decode_context_lens)
        if key not in self.graphs:
            t0 = time.perf_counter()
            self.graphs[key] = self._capture(b, w)  # captured lazily, once per (batch, width) bucket
            self.graph_capture_ms += (time.perf_counter() - t0) * 1e3
        graph, logits = self.graphs[key]
        graph.replay()
        return logits

    # ---- speculative decoding (driven by engine/torch/speculation.py) ----
    @torch.inference_mode()
    def run_verify(self, batch: list[ScheduledSeq], rows_wanted: dict[str, int]):
        """One forward pass like run(), returning logits instead of samples: rows_wanted[seq_id]
        rows (a verify step: its last token + drafts) for the sequences named there, the last row
        for the others whose context is now computed. Returns (seqs, row counts, logits)."""
        input_ids, positions, meta, rows, seqs = self.prepare(batch)
        idx: list[int] = []
        counts: list[int] = []
        for r, seq in zip(rows, seqs):
            c = rows_wanted.get(seq.seq_id, 1)
            idx.extend(range(r - c + 1, r + 1))
            counts.append(c)
        if self._rows_graph_fits(input_ids, meta):  # verify rows are kernel rows: the decode graphs serve them
            logits = self._run_rows_graph(input_ids, positions, meta)
            return seqs, counts, (logits[self._tensor(idx)] if len(idx) != logits.shape[0] else logits) if idx else None
        hidden = self.model(input_ids, positions, self.kv_cache, meta)
        logits = self.model.compute_logits(hidden[self._tensor(idx)]) if idx else None
        return seqs, counts, logits

    @torch.inference_mode()
    def run_first_layers(self, batch: list[ScheduledSeq], num_layers: int):
        """Self-speculation's draft pass: the first num_layers layers, the final norm and the LM
        head, over the model's own KV cache (those layers write exactly the keys and values the
        full model writes for these tokens; the verify pass overwrites them). Returns (seqs, logits
        of their last rows)."""
        input_ids, positions, meta, rows, seqs = self.prepare(batch)
        x = self.model(input_ids, positions, self.kv_cache, meta, num_layers=num_layers)
        if len(rows) != x.shape[0]:
            x = x[self._tensor(rows)]
        return seqs, self.model.compute_logits(x)


def graph_buckets(max_rows: int) -> list[int]:
    """Row counts a CUDA graph is captured for: 1, 2, 4, 8, then every 16 up to max_rows."""
    return sorted({1, 2, 4, 8, *range(16, max_rows + 1, 16), max_rows})


class _Replay:
    """A CUDA graph's contract without CUDA: replay() runs the captured forward again over the same
    static buffers, into the same logits buffer. It lets the CPU test what the graphs depend on
    (static block tables and context lengths, padding rows, the trash slot)."""

    def __init__(self, forward):
        self.forward = forward
        forward()

    def replay(self) -> None:
        self.forward()


def _sample_rows(order: list[ScheduledSeq]) -> tuple[list[int], list[Sequence]]:
    """The packed rows whose chunk reaches the end of its sequence (drafts included): each of them
    produces a token. Returns (rows, their sequences)."""
    rows, seqs = [], []
    row = 0
    for s in order:
        row += s.num_tokens
        if s.seq.num_computed_tokens + s.num_tokens == s.seq.num_tokens_with_drafts:
            rows.append(row - 1)
            seqs.append(s.seq)
    return rows, seqs
