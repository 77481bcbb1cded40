-- No statistics for payloads nothing selects by (see the outbox's 0003): ANALYZE would sort their jsonb documents.
alter table jobs alter column spec set statistics 0;
alter table jobs alter column outputs set statistics 0;
alter table job_attempts alter column metrics set statistics 0;
