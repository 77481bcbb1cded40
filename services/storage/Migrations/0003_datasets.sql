-- Datasets: a manifest (itself a pinned blob, so the dataset has one citable CID) naming its blobs.
create table datasets (
    cid text primary key references pins (cid),
    name text not null,
    owner text,
    blob_count int not null,
    total_size bigint not null,
    created_at timestamptz not null default now()
);
