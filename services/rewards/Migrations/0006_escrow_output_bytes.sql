-- The output size the kernel's shape model planned for the job (JobSubmitted.OutputBytes): the job pays its output
-- fee by it (Pricing:PinFeePerGib) when it completes. Zero for escrows taken before the gateway sent it.
alter table escrows add column output_bytes bigint not null default 0;
