-- Why each attempt ended (a code of Platform.Contracts.JobReasons and its specifics), so a client can see why
-- its job was run again.
alter table job_attempts add column reason text, add column detail text;
