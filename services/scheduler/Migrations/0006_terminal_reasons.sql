-- Every ending has a reason (a code of Platform.Contracts.JobReasons): a job that is completed, failed,
-- cancelled or rejected, and an attempt that failed, was rejected or was cancelled. Rows from before
-- completions had one are "accepted" (that is what a completion was); anything else without one is "unknown".
update jobs set reason = 'accepted' where status = 'completed' and reason is null;
update jobs set reason = 'unknown' where status in ('failed', 'cancelled', 'rejected') and reason is null;
update attempts set reason = 'unknown' where status in ('failed', 'rejected', 'cancelled') and reason is null;
alter table jobs add constraint jobs_terminal_has_reason
    check (status not in ('completed', 'failed', 'cancelled', 'rejected') or reason is not null);
alter table attempts add constraint attempts_ended_has_reason
    check (status not in ('failed', 'rejected', 'cancelled') or reason is not null);
