-- Job arrays (POST /v1/jobs:batch): the batch, and each job's place in it. A batch is a gateway concept only: the rest
-- of the network sees its jobs one by one.
create table job_batches (
    id text primary key,
    client_account_id text not null,
    total int not null,
    created_at timestamptz not null
);
alter table jobs add column batch_id text, add column batch_index int;
create index jobs_by_batch on jobs (batch_id, batch_index) where batch_id is not null;

-- The batch event stream follows every job of a batch at once: it reads the changes recorded since its last poll
-- (recorded_at, the insert's own clock) and numbers them (seq) for Last-Event-ID.
alter table job_events
    add column seq bigint generated always as identity,
    add column recorded_at timestamptz not null default clock_timestamp();
create index job_events_recorded on job_events (recorded_at);
create unique index job_events_seq on job_events (seq);

-- An Idempotency-Key names a job (POST /v1/jobs) or a batch (POST /v1/jobs:batch).
alter table idempotency_keys alter column job_id drop not null, add column batch_id text;
