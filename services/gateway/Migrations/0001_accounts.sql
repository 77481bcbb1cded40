create table accounts (
    id text primary key,
    role text not null check (role in ('client', 'operator', 'admin')),
    name text not null,
    created_at timestamptz not null default now()
);

-- Keys are shown once and stored only as a SHA-256 hash: they are 256-bit random strings, so the hash
-- cannot be reversed or guessed, and lookups stay a single indexed read.
create table api_keys (
    key_hash bytea primary key,
    account_id text not null references accounts (id),
    created_at timestamptz not null default now()
);
