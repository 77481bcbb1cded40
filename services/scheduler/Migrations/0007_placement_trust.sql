-- Why each worker did or did not get the jobs of its latest placements (GET /v1/workers/{id}/placement):
-- a JSON array of {at, jobId, kernel, code, message, fix, chosenWorkerId}, oldest first.
create table worker_placement (
    worker_id text primary key,
    decisions jsonb not null default '[]',
    updated_at timestamptz not null
);

-- Adaptive trust: per worker and kernel, the results accepted in a row since its last failed verification.
-- Below Scheduler:TrustThreshold every single-replica result is spot-checked; above it, with probability 1/streak.
create table worker_trust (
    worker_id text not null,
    kernel text not null,
    streak int not null default 0,
    accepted bigint not null default 0,
    checked bigint not null default 0,
    mismatches bigint not null default 0,
    updated_at timestamptz not null,
    primary key (worker_id, kernel)
);
