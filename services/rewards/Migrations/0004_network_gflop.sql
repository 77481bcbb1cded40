-- The job's GFLOP as the gateway estimated it from the input shapes (JobSubmitted.EstimatedGflop): the price
-- and the mint of a completed job follow this figure, never the one a node reports. Null on rows escrowed
-- before it was kept and on the placeholders of jobs that ended before their JobSubmitted arrived.
alter table escrows add column gflop double precision;
