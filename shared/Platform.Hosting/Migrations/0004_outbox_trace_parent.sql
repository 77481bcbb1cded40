-- The W3C trace context (traceparent) of the work that wrote the row: the relay sends the message as part of that
-- trace, however much later and from whichever instance (shared/Platform.Hosting/Tracing).
alter table outbox add column trace_parent text;
