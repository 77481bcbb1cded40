-- How much of its worker's slot an active job holds, in units of Scheduler:TinyJobsPerSlot: a job takes a whole
-- slot (all its units), a tiny job one unit, so one slot holds many tiny jobs at once. Null (jobs assigned before
-- this column) counts as a whole slot.
alter table jobs add column slot_units int;
