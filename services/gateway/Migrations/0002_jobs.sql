-- The gateway's read model of jobs: written when a job is accepted, then moved forward by the events
-- of the scheduler and rewards.
create table jobs (
    id text primary key,
    client_account_id text not null,
    kernel text not null,
    spec jsonb not null,
    status text not null,
    status_rank int not null,
    outputs jsonb,
    cost numeric(20, 6),
    error_reason text,
    error_detail text,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    completed_at timestamptz
);
create index jobs_by_client on jobs (client_account_id, created_at desc, id desc);

create table job_attempts (
    attempt_id text primary key,
    job_id text not null references jobs (id),
    worker_id text not null,
    status text not null,
    signature text,
    updated_at timestamptz not null
);
create index job_attempts_job on job_attempts (job_id);
