-- The joules of an attempt as the scheduler checked them against the worker's calibrated power and the wall time it
-- measured itself (null: none, zero or implausible). Only these count toward worker_energy and the efficiency bonus.
alter table attempts add column checked_joules double precision;
alter table attempts add constraint attempts_checked_joules_bounded check (checked_joules is null or (checked_joules > 0 and checked_joules < 1e13));
-- worker_energy so far added up the workers' own figures (joules and GFLOP as they reported them); the ranking starts
-- again from checked joules and the network's GFLOP. Sums stay finite and non-negative (NaN sorts above every
-- number in Postgres, so "< 1e300" also keeps it out).
delete from worker_energy;
alter table worker_energy add constraint worker_energy_bounded
    check (joules >= 0 and joules < 1e300 and gflop >= 0 and gflop < 1e300 and attempts >= 0 and measured_attempts >= 0);
