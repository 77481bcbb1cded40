-- Nodes' identities, registered by their operators (POST /v1/nodes with the operator's API key). A worker id keeps
-- the key and the operator it was first registered with; a key belongs to one worker id. The operator credited for
-- a worker's work is the one here, never the one a message names. broker_user is the node's own RabbitMQ login.
create table node_registrations (
    worker_id text primary key,
    operator_account_id text not null,
    public_key text not null unique,
    broker_user text not null,
    registered_at timestamptz not null,
    enrolled_at timestamptz not null
);

-- Node-to-network messages the scheduler dropped, by reason (unregistered_worker, key_mismatch, wrong_exchange):
-- what strangers tried, shown as rejectedNodeMessages on GET /v1/network.
create table rejected_node_messages (
    reason text primary key,
    count bigint not null default 0,
    last_at timestamptz not null
);
