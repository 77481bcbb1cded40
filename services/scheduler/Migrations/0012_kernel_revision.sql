-- The revision of the kernels' arithmetic a worker announced (WorkerOnline.KernelRevision; null: an older node), and
-- the one its worker had when an attempt was assigned. Results of two attempts at the same reproducible revision
-- agree only when their output CIDs are equal; any other pair is compared within the tolerance. The attempt keeps
-- the revision it was assigned under, so a node that announces itself again mid-attempt cannot pick its comparison.
alter table workers add column kernel_revision int;
alter table attempts add column kernel_revision int;
