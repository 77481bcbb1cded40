-- Liveness and claims on the network's own terms.
-- last_seen_at is now the scheduler's clock at the moment it consumed the worker's latest message; the node's
-- own clock (OccurredAt) only orders that node's messages among themselves: node_clock_at is the newest
-- OccurredAt heard from it, offline_node_at the OccurredAt of the WorkerOffline that took it offline (a beat
-- sent before it, delivered after it, does not bring the worker back).
alter table workers add column node_clock_at timestamptz;
alter table workers add column offline_node_at timestamptz;

-- Every attempt has a deadline of its own, from the job's GFLOP estimate and the worker's effective rate with
-- slack; the lease monitor ends an attempt past it (attempt_overdue) even while its worker beats and lists it.
-- concurrent is how many attempts the worker held, this one included, when it was assigned: the observed rate
-- of an attempt that shared the worker's device is scaled up by it.
alter table jobs add column attempt_deadline timestamptz;
alter table attempts add column deadline timestamptz;
alter table attempts add column concurrent int not null default 1;
create index jobs_attempt_deadline on jobs (attempt_deadline) where status in ('assigned', 'running');

-- What the scheduler measured of each worker per kernel: GFLOP/s of its accepted attempts (job GFLOP estimate
-- over the scheduler-clock wall time, times the attempts it was running), the latest few, for the median that
-- bounds the rate placement believes.
create table worker_speed (
    worker_id text not null,
    kernel text not null,
    samples bigint not null default 0,
    rates double precision[] not null default '{}',
    updated_at timestamptz not null,
    primary key (worker_id, kernel)
);
