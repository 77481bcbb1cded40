-- The dispatcher chooses jobs from its in-memory ready queue: it no longer ranks the clients' queue heads in SQL.
drop index if exists jobs_queued_by_client;
-- Every pass reads the requeued jobs (retries, replicas) so any path or scheduler that queues one again is heard at once.
create index jobs_requeued on jobs (priority desc, queued_at, id) where status = 'queued' and attempt_count > 0;
