create table pins (
    cid text primary key,
    size bigint not null,
    sha256 text not null,
    owner text,
    node_id text not null,
    pinned_at timestamptz not null default now(),
    last_verified_at timestamptz not null default now()
);
