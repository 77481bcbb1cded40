-- Verification. A job needs results_needed agreeing results (its replicas, or 2 when it was picked for a
-- spot check); each attempt keeps its signed result until enough agree.
alter table jobs add column results_needed int not null default 1;
alter table jobs add column spot_check boolean not null default false;
alter table attempts add column operator_account_id text;
alter table attempts add column outputs jsonb;
alter table attempts add column metrics jsonb;
alter table attempts add column signature text;
create index attempts_submitted on attempts (job_id) where status = 'submitted';

-- Operators' stakes as rewards last reported them (StakeChanged); version is rewards' ledger transaction id.
create table operator_stakes (
    operator_account_id text primary key,
    staked numeric(20, 6) not null,
    version bigint not null
);
