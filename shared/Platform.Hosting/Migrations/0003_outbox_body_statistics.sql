-- No statistics for the message bodies: nothing selects by them, and autovacuum's ANALYZE sorting thousands of jsonb
-- documents on this busy table was most of its cost (perf: analyze_rel was a sixth of Postgres' CPU under load).
alter table outbox alter column body set statistics 0;
