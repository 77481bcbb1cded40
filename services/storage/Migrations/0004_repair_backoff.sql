-- A copy that cannot be repaired (no peer has it intact) is retried with exponential backoff instead of at
-- every sweep, so one unrepairable blob cannot take all of the scrubber's time. repair_failures counts the
-- failed repairs in a row; retry_at is when the scrubber tries again (null unless the copy is lost).
alter table replicas add column repair_failures int not null default 0;
alter table replicas add column retry_at timestamptz;
update replicas set retry_at = verified_at where status = 'lost';
