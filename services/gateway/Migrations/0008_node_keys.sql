-- Node keys: API keys an operator makes for its nodes (POST /v1/account/node-keys). A node key stands for the
-- operator's account but with the role 'node' (scope), which may only fetch and pin blobs and enroll: a node's
-- machine never holds the operator's own key. It has an id (shown to the operator, used to revoke it) and is bound
-- to the first worker id it enrolls (worker_id), so a stolen node key cannot register other nodes.
alter table api_keys
    add column id text unique,
    add column scope text check (scope in ('node')),
    add column worker_id text,
    add constraint api_keys_scoped_key_has_id check (scope is null or id is not null);
create index api_keys_node_keys on api_keys (account_id) where scope is not null;
