-- A dispatch pass ranks each client's first jobs only (its queue head), not the whole queue: read in this order.
create index jobs_queued_by_client on jobs (client_account_id, priority desc, queued_at, id) where status = 'queued';
