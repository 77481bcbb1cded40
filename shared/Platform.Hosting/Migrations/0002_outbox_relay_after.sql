-- A row written through MessageOutbox is handed to its own process's relay at commit and published from memory;
-- relay_after keeps the polling relay (this or another instance) off it until then, so a message is not sent twice
-- in the normal case. A row whose process died before sending it is picked up by the poll once relay_after passes.
-- Rows written by SQL alone (relay_after null) are polled at once, as before.
alter table outbox add column relay_after timestamptz;

-- Sent rows are deleted after a retention period (OutboxOptions.SentRetention); this finds them without a scan.
create index outbox_sent on outbox (sent_at) where sent_at is not null;
