-- Every status change of every job, numbered by the scheduler (version 0 is the gateway's own "pending"),
-- for the server-sent event stream: a redelivered change finds its row and adds nothing.
create table job_events (
    job_id text not null,
    version int not null,
    status text not null,
    attempt_id text,
    worker_id text,
    attempt_status text,
    reason text,
    detail text,
    occurred_at timestamptz not null,
    primary key (job_id, version)
);

-- Idempotency-Key on POST /v1/jobs: one job per (account, key); the request's hash tells a retry from a
-- different request reusing the key.
create table idempotency_keys (
    account_id text not null,
    key text not null,
    request_hash text not null,
    job_id text not null,
    created_at timestamptz not null default now(),
    primary key (account_id, key)
);
