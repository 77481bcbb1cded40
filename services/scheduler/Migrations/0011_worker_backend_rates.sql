-- What each worker's calibration measured on every backend it opened (backend -> kernel -> GFLOP/s), as it
-- announced them: shown in GET /v1/workers beside the backend chosen per kernel; placement does not use it.
alter table workers add column backend_rates jsonb not null default '{}'::jsonb;
