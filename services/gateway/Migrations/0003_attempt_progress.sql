-- How far a running attempt's kernel has got (0..1), from the worker's AttemptProgressed reports.
alter table job_attempts add column progress real;
