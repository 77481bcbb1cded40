-- Double-entry ledger. Every transaction's postings sum to zero; balances are kept beside the accounts
-- and changed only together with the postings that explain them.
create table accounts (
    id text primary key,
    kind text not null check (kind in ('client', 'operator', 'admin', 'mint', 'escrow', 'fees')),
    balance numeric(20, 6) not null default 0,
    created_at timestamptz not null default now(),
    -- Only the mint source may go below zero: it is where new credits come from.
    constraint balance_not_negative check (balance >= 0 or kind = 'mint')
);

insert into accounts (id, kind) values ('sys:mint', 'mint'), ('sys:escrow', 'escrow'), ('sys:fees', 'fees');

create table transactions (
    id bigint generated always as identity primary key,
    -- One key per effect (escrow:job_x, settle:job_x, mint:job_x...): redelivery cannot apply it twice.
    idempotency_key text not null unique,
    job_id text,
    created_at timestamptz not null default now()
);

create table postings (
    transaction_id bigint not null references transactions (id),
    account_id text not null references accounts (id),
    kind text not null,
    amount numeric(20, 6) not null
);
create index postings_account on postings (account_id, transaction_id);

create table escrows (
    job_id text primary key,
    client_account_id text not null,
    kernel text not null,
    amount numeric(20, 6) not null,
    status text not null check (status in ('held', 'rejected', 'settled', 'refunded')),
    cost numeric(20, 6),
    created_at timestamptz not null default now(),
    closed_at timestamptz
);
