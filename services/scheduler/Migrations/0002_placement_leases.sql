alter table workers add column memory_mb bigint not null default 0;
alter table workers add column device_kinds text[] not null default '{cpu}';
alter table workers add column reputation double precision not null default 1.0;

alter table jobs add column priority int not null default 0;
alter table jobs add column policy text;
alter table jobs add column region text;
alter table jobs add column device text not null default 'any';
alter table jobs add column min_memory_mb bigint not null default 0;
alter table jobs add column input_bytes bigint not null default 0;
create index jobs_leased on jobs (lease_deadline) where status in ('assigned', 'running');

-- Network totals fed by other services' events (credits minted, bytes pinned), for GET /v1/network.
create table network_totals (
    name text primary key,
    value numeric(30, 6) not null
);
insert into network_totals (name, value) values ('credits_minted', 0), ('bytes_pinned', 0), ('blobs_pinned', 0);

-- When the job last got a worker: a client's recent usage, for fair share.
alter table jobs add column last_assigned_at timestamptz;
create index jobs_recently_assigned on jobs (last_assigned_at) where last_assigned_at is not null;
