-- Each pin keeps its RFC 6962 Merkle tree: the leaf hashes of its 1 MiB chunks (32 bytes each, in order) and
-- the root. Reads verify the chunks they touch against these; proofs are built from them. Pins made before
-- this migration get theirs the first time they are read or scrubbed.
alter table pins add column leaves bytea;
alter table pins add column merkle_root bytea;

-- Which storage node holds a copy of which pin. Nodes share this database, as schedulers share theirs.
create table replicas (
    cid text not null references pins (cid),
    node_id text not null,
    -- copying: claimed by a node that is fetching it; ok: held and verified; lost: found missing or corrupt and
    -- not yet repaired.
    status text not null,
    verified_at timestamptz not null default now(),
    primary key (cid, node_id)
);
create index replicas_by_node on replicas (node_id, verified_at);

insert into replicas (cid, node_id, status, verified_at) select cid, node_id, 'ok', last_verified_at from pins;

-- The storage nodes and where their peers reach them; a node beats while it runs.
create table storage_nodes (
    node_id text primary key,
    url text not null,
    backend text not null,
    last_seen_at timestamptz not null
);
