-- The network over time, as the dashboard charts it (GET /v1/network/history): one row per sample interval, keyed
-- by the interval's end, written by whichever scheduler instance samples it first. The queue, busy slots and online
-- nodes at that instant; the jobs completed during the interval and their latency from the scheduler taking the job
-- to its completion.
create table network_samples (
    at timestamptz primary key,
    queued int not null,
    active int not null,
    slots int not null,
    online int not null,
    completed int not null,
    latency_p50_ms double precision,
    latency_p99_ms double precision
);
-- Each online worker at the same instants (GET /v1/workers/{id}/history): busy slots, the GFLOP/s the scheduler
-- measured per kernel (median of its latest samples) and its checked energy so far: the chart shows J/GFLOP between
-- two samples.
create table worker_samples (
    worker_id text not null,
    at timestamptz not null,
    active int not null,
    slots int not null,
    gflops jsonb not null,
    joules double precision not null,
    gflop double precision not null,
    primary key (worker_id, at)
);
create index worker_samples_at on worker_samples (at);
