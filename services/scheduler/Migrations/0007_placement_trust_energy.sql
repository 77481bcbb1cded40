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

-- Energy of accepted attempts per worker and kernel, as their workers reported it (measured or estimated). The
-- energy placement policy ranks workers by joules / gflop once a kernel has a few attempts; the views show it.
create table worker_energy (
    worker_id text not null,
    kernel text not null,
    attempts bigint not null default 0,
    measured_attempts bigint not null default 0,
    joules double precision not null default 0,
    gflop double precision not null default 0,
    updated_at timestamptz not null,
    primary key (worker_id, kernel)
);

-- The network view reads the latest completed jobs (jobs per minute, verification and energy of the last 1,000).
create index jobs_completed on jobs (finished_at) where status = 'completed';
