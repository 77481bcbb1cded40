-- How many status changes the job has published: each JobStatusChanged carries its number.
alter table jobs add column status_version int not null default 0;
