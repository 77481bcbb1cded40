-- Stakes, earnings per worker, energy history and penalties.

-- An operator's stake is an account of its own, stake:<operator account>: it keeps a balance row that may not go
-- below zero, like people's accounts, so a slash can never take more than was staked.
alter table accounts drop constraint accounts_kind_check;
alter table accounts add constraint accounts_kind_check
    check (kind in ('client', 'operator', 'admin', 'mint', 'escrow', 'fees', 'stake'));

-- The worker whose attempt a payout, mint or slash was for: operators see their earnings per node.
alter table postings add column worker_id text;
-- (The ledger endpoint pages an account's postings newest first on the existing postings_account index,
-- read backwards.)

-- Joules per GFLOP of accepted attempts: the network median of the recent ones decides the efficiency bonus.
create table attempt_energy (
    seq bigint generated always as identity primary key,
    attempt_id text not null unique,
    job_id text not null,
    worker_id text not null,
    operator_account_id text not null,
    joules_per_gflop double precision not null check (joules_per_gflop >= 0),
    -- Read from a sensor, or estimated from calibrated power and time; both count today, kept so a policy may differ.
    joules_estimated boolean not null,
    created_at timestamptz not null default now()
);

-- One row per penalty (its attempt): a redelivered WorkerPenalized changes nothing, even when the first
-- delivery found no stake to slash and the operator has staked since.
create table penalties (
    attempt_id text primary key,
    job_id text not null,
    worker_id text not null,
    operator_account_id text not null,
    reason text not null,
    slashed numeric(20, 6) not null,
    created_at timestamptz not null default now()
);

-- A posting's own id: the ledger endpoint's cursor needs a total order, and one transaction may hold several
-- postings for one account (a mint and its efficiency bonus; two paid attempts of one operator).
alter table postings add column id bigint generated always as identity;
