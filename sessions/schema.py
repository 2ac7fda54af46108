"""The DuckDB schema as an ordered list of migrations; version N is the state after migration N.

Add a migration at the end; never edit one that has shipped."""
from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "sessions, messages, requests, token events, engine steps",
        """
        CREATE TABLE sessions (
            id VARCHAR PRIMARY KEY,
            created_at TIMESTAMPTZ NOT NULL,
            kind VARCHAR NOT NULL,            -- chat | serve | bench | replay
            title VARCHAR,
            model VARCHAR,
            backend VARCHAR,
            system_prompt VARCHAR,
            clock_offset_ns BIGINT            -- wall ns minus perf_counter ns, to place ns stamps in time
        );
        CREATE TABLE messages (
            session_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,
            role VARCHAR NOT NULL,
            content VARCHAR NOT NULL,
            request_id VARCHAR,
            created_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (session_id, seq)
        );
        CREATE TABLE requests (
            id VARCHAR PRIMARY KEY,
            session_id VARCHAR,
            model VARCHAR,
            backend VARCHAR,
            status VARCHAR NOT NULL,          -- running | finished | cancelled | error
            finish_reason VARCHAR,
            error VARCHAR,
            params JSON,
            text VARCHAR,
            arrival_ns BIGINT NOT NULL,
            scheduled_ns BIGINT,
            first_token_ns BIGINT,
            finished_ns BIGINT,
            prompt_tokens INTEGER,
            output_tokens INTEGER,
            cached_prompt_tokens INTEGER,
            spec_draft_tokens INTEGER,
            spec_accepted_tokens INTEGER,
            ttft_ms DOUBLE,
            tpot_ms DOUBLE,
            e2el_ms DOUBLE,
            queue_time_ms DOUBLE,
            prefill_time_ms DOUBLE,
            created_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX requests_session ON requests(session_id);
        CREATE TABLE token_events (
            request_id VARCHAR NOT NULL,
            idx INTEGER NOT NULL,             -- position of the token in the output
            token_id INTEGER NOT NULL,
            t_ns BIGINT NOT NULL,
            text VARCHAR                      -- text delta released with this token
        );
        CREATE INDEX token_events_request ON token_events(request_id);
        CREATE TABLE steps (
            session_id VARCHAR,
            step BIGINT NOT NULL,
            t_start_ns BIGINT NOT NULL,
            t_end_ns BIGINT NOT NULL,
            batch_size INTEGER,
            prefill_tokens INTEGER,
            decode_tokens INTEGER,
            running INTEGER,
            waiting INTEGER,
            kv_blocks_used INTEGER,
            kv_blocks_free INTEGER,
            roofline_fraction DOUBLE,
            spec_draft_tokens INTEGER,
            spec_accepted_tokens INTEGER
        );
        """,
    ),
    (
        2,
        "imported agent traces: traces, spans, conversation messages, replay links",
        """
        CREATE TABLE traces (
            id VARCHAR PRIMARY KEY,           -- sha256(format, file content, trace key)[:16]
            content_hash VARCHAR NOT NULL,    -- sha256 of the whole source file
            format VARCHAR NOT NULL,
            source VARCHAR,                   -- the file it came from
            name VARCHAR,
            imported_at TIMESTAMPTZ NOT NULL,
            start_ns BIGINT,                  -- NULL when the format records no times
            end_ns BIGINT,
            has_timings BOOLEAN NOT NULL,
            span_count INTEGER NOT NULL,
            attributes JSON
        );
        CREATE TABLE trace_spans (
            trace_id VARCHAR NOT NULL,
            span_id VARCHAR NOT NULL,
            parent_id VARCHAR,
            seq INTEGER NOT NULL,             -- order of issue within the trace
            kind VARCHAR NOT NULL,            -- llm | tool | agent | retrieval | other
            name VARCHAR,
            start_ns BIGINT,                  -- unix ns; NULL = not recorded (never invented)
            end_ns BIGINT,
            duration_ns BIGINT,               -- known alone in some formats
            first_token_ns BIGINT,
            status VARCHAR,
            tool_name VARCHAR,
            tool_call_id VARCHAR,
            tool_arguments JSON,
            tool_result VARCHAR,
            model VARCHAR,
            input_tokens INTEGER,
            output_tokens INTEGER,
            input_upto INTEGER,               -- llm span input = first N trace messages ...
            input_messages JSON,              -- ... or its own messages
            output_messages JSON,
            attributes JSON,                  -- OpenTelemetry GenAI names
            PRIMARY KEY (trace_id, span_id)
        );
        CREATE TABLE trace_messages (
            trace_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,
            message JSON NOT NULL,
            PRIMARY KEY (trace_id, seq)
        );
        CREATE TABLE trace_replays (
            session_id VARCHAR NOT NULL,      -- sessions.id of kind 'replay'
            trace_id VARCHAR NOT NULL,
            span_id VARCHAR NOT NULL,         -- the llm span replayed
            request_id VARCHAR,               -- requests.id of the replayed call
            created_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX trace_replays_trace ON trace_replays(trace_id);
        """,
    ),
    (
        3,
        "semantic cache: entries, lookups, audits",
        """
        CREATE TABLE IF NOT EXISTS semantic_cache_entries (
            id VARCHAR PRIMARY KEY,
            scope_key VARCHAR NOT NULL,       -- hash of model, system prompt, tools, history, sampling
            model VARCHAR,
            prompt VARCHAR NOT NULL,          -- the user turn that was embedded
            answer VARCHAR NOT NULL,
            embedding BLOB NOT NULL,          -- unit float32 vector, little-endian
            dim INTEGER NOT NULL,
            created_unix DOUBLE NOT NULL,     -- wall seconds: TTL outlives the process
            last_used_unix DOUBLE NOT NULL,   -- LRU eviction
            hits INTEGER NOT NULL DEFAULT 0,
            meta JSON
        );
        CREATE TABLE IF NOT EXISTS semantic_cache_lookups (
            t DOUBLE NOT NULL,
            scope_key VARCHAR,
            model VARCHAR,
            hit BOOLEAN NOT NULL,
            similarity DOUBLE,                -- best candidate within the near-miss band, else NULL
            refused_by VARCHAR,               -- guard that refused a candidate above threshold
            entry_id VARCHAR,
            lookup_ms DOUBLE
        );
        CREATE TABLE IF NOT EXISTS semantic_cache_audits (
            t DOUBLE NOT NULL,
            entry_id VARCHAR,
            similarity DOUBLE,
            differed BOOLEAN NOT NULL,        -- fresh answer != cached answer (case and spacing aside)
            answer_similarity DOUBLE,         -- cosine of the two answers' embeddings when they differ
            cached_prompt VARCHAR,
            prompt VARCHAR,
            cached_answer VARCHAR,
            fresh_answer VARCHAR
        );
        """,
    ),
    (
        4,
        "bench runs and their requests",
        """
        CREATE TABLE bench_runs (
            id VARCHAR PRIMARY KEY,           -- also the id of the run's session (kind 'bench')
            created_at TIMESTAMPTZ NOT NULL,
            workload VARCHAR NOT NULL,
            backend VARCHAR,
            model VARCHAR,
            base_url VARCHAR,                 -- set for --backend openai
            num_requests INTEGER NOT NULL,    -- asked for
            concurrency INTEGER,              -- fixed concurrency, or NULL
            request_rate DOUBLE,              -- Poisson arrivals per second, or NULL
            max_tokens INTEGER,
            seed BIGINT,
            status VARCHAR NOT NULL,          -- running | finished | interrupted | error
            started_ns BIGINT,                -- perf_counter ns, same clock as requests.arrival_ns
            finished_ns BIGINT,
            options JSON,
            summary JSON                      -- vllm bench serve field names
        );
        CREATE TABLE bench_requests (
            run_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,             -- order of submission
            request_id VARCHAR NOT NULL,      -- requests.id; its token times are in token_events
            item VARCHAR,                     -- workload entry, e.g. 'mixed:long'
            remote_id VARCHAR,                -- the server's response id (openai backend)
            PRIMARY KEY (run_id, seq)
        );
        """,
    ),
    (
        5,
        "chat messages answered from the semantic cache",
        """
        ALTER TABLE messages ADD COLUMN cache_entry_id VARCHAR;   -- semantic_cache_entries.id when served from the cache
        ALTER TABLE messages ADD COLUMN cache_similarity DOUBLE;  -- cosine similarity of the hit
        """,
    ),
    (
        6,
        "speculative decoding sweeps: workload x batch size x speculation, one bench run per cell",
        """
        CREATE TABLE spec_sweep_cells (
            sweep_id VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            workload VARCHAR NOT NULL,
            batch_size INTEGER NOT NULL,      -- requests kept in flight
            speculation VARCHAR NOT NULL,     -- off | ngram | draft | self | auto
            run_id VARCHAR NOT NULL,          -- bench_runs.id of this cell
            output_throughput DOUBLE,         -- output tokens per second
            speedup DOUBLE,                   -- output_throughput / the same cell with speculation off
            spec_draft_tokens BIGINT,
            spec_accepted_tokens BIGINT,
            acceptance_rate DOUBLE,
            mean_accepted_length DOUBLE,
            identical_to_off BOOLEAN,         -- greedy output token-identical to the off cell
            policy_reason VARCHAR,            -- the auto policy's last decision and why
            PRIMARY KEY (sweep_id, workload, batch_size, speculation)
        );
        """,
    ),
    (
        7,
        "prefix-cache report per request: blocks hit, first miss and what broke the match",
        """
        ALTER TABLE requests ADD COLUMN prefix_report JSON;  -- engine.torch.prefix_inspector (torch engine)
        """,
    ),
    (
        8,
        "preemptions per request, for latency tail attribution",
        """
        ALTER TABLE requests ADD COLUMN preemptions INTEGER;  -- times its KV was dropped and recomputed; NULL = not recorded
        """,
    ),
    (
        9,
        "tool-routing examples: user turns and the tool they called, learned from traces or files",
        """
        CREATE TABLE route_examples (
            query VARCHAR NOT NULL,           -- the user turn (first 2,000 characters)
            tool VARCHAR NOT NULL,            -- the tool called for it
            source VARCHAR NOT NULL,          -- trace | file
            trace_id VARCHAR,                 -- traces.id when learned from a trace
            span_id VARCHAR,                  -- the llm or tool span the call was read from
            created_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (query, tool)
        );
        """,
    ),
]

MIGRATIONS.sort(key=lambda m: m[0])
assert [m[0] for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1)), "migration versions must be 1..N"
SCHEMA_VERSION = MIGRATIONS[-1][0]
