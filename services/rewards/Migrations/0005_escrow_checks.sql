-- When rewards last asked the scheduler how the job of an escrow still held ended (EscrowReconciler).
alter table escrows add column checked_at timestamptz;
create index escrows_held on escrows (created_at) where status = 'held';
