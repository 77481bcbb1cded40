create table workers (
    id text primary key,
    operator_account_id text not null,
    region text not null,
    slots int not null,
    kernels text[] not null,
    devices jsonb not null,
    gflops jsonb not null,
    power_watts double precision not null,
    public_key text,
    online boolean not null,
    registered_at timestamptz not null default now(),
    last_seen_at timestamptz not null
);

-- A job row can be created by either JobSubmitted (spec) or JobFunded (funded), whichever arrives first;
-- it is queued once it has both.
create table jobs (
    id text primary key,
    client_account_id text,
    kernel text,
    spec jsonb,
    estimated_gflop double precision,
    funded boolean not null default false,
    status text not null,
    worker_id text,
    attempt_id text,
    lease_deadline timestamptz,
    attempt_count int not null default 0,
    outputs jsonb,
    reason text,
    detail text,
    created_at timestamptz not null default now(),
    queued_at timestamptz,
    finished_at timestamptz
);
create index jobs_queued on jobs (queued_at) where status = 'queued';
create index jobs_active_by_worker on jobs (worker_id) where status in ('assigned', 'running');

create table attempts (
    id text primary key,
    job_id text not null references jobs (id),
    worker_id text not null,
    status text not null,
    assigned_at timestamptz not null default now(),
    finished_at timestamptz,
    reason text,
    detail text
);
create index attempts_job on attempts (job_id);
