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
]

SCHEMA_VERSION = MIGRATIONS[-1][0]
