-- The JobCompleted a job's completion published, kept with the job, so the scheduler can announce the same completion
-- again when rewards finds the job's escrow still held long after (the message and its replays lost). Text, not jsonb:
-- nothing queries inside it, and it is written once per job on the hot path.
alter table jobs add column completion text;
