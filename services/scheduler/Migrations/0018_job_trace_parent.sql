-- The job's W3C trace context as its submission reached this scheduler: the dispatch pass that assigns it, however
-- much later, continues the job's trace from here (shared/Platform.Hosting/Tracing).
alter table jobs add column trace_parent text;
