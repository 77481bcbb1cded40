-- What a worker reports about its compute beyond the rates: which backend runs each kernel, whether its
-- power figure was measured, and notes for its operator (such as why OpenCL is not in use).
alter table workers add column backends jsonb not null default '{}';
alter table workers add column power_measured boolean not null default false;
alter table workers add column notes text[] not null default '{}';
