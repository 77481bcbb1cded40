-- Node keys: API keys an operator makes for its nodes (POST /v1/account/node-keys). A node key stands for the
-- operator's account but with the role 'node' (scope), which may only fetch and pin blobs and enroll: a node's
-- machine never holds the operator's own key. It has an id (shown to the operator, used to revoke it) and is bound
-- to the first max_workers worker ids it enrolls (worker_ids; 1 unless the operator asked for more, as replicas of
-- one compose service share a key), so a stolen node key cannot register further nodes under the operator.
alter table api_keys
    add column id text unique,
    add column scope text check (scope in ('node')),
    add column max_workers int,
    add column worker_ids text[] not null default '{}',
    add constraint api_keys_scoped_key check (scope is null or (id is not null and max_workers between 1 and 1000));
create index api_keys_node_keys on api_keys (account_id) where scope is not null;
