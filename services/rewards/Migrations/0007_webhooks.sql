-- An account's webhook (at most one): where its events are POSTed, and the secret that signs them.
create table webhooks (
    account_id text primary key references accounts (id),
    url text not null,
    secret text not null,
    created_at timestamptz not null default now()
);

-- Each event for a webhook, kept until it is delivered or given up on. message_id is the event's own message id
-- (a redelivered AccountBalanceLow is one delivery) and the webhook-id the receiver sees on every attempt. The body
-- is kept as the exact text that is signed.
create table webhook_deliveries (
    id bigint generated always as identity primary key,
    message_id uuid not null unique,
    account_id text not null references accounts (id),
    event_type text not null,
    body text not null,
    status text not null default 'pending' check (status in ('pending', 'delivered', 'failed', 'dropped')),
    attempts int not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_status int,
    last_error text,
    created_at timestamptz not null default now(),
    delivered_at timestamptz
);
create index webhook_deliveries_due on webhook_deliveries (next_attempt_at) where status = 'pending';
create index webhook_deliveries_account on webhook_deliveries (account_id, id);
