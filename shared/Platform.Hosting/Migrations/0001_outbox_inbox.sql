-- Transactional outbox: a state change and the messages it publishes commit together; the relay
-- publishes unsent rows with the row's message_id so consumers can deduplicate.
create table outbox (
    id bigint generated always as identity primary key,
    message_id uuid not null unique,
    message_type text not null,
    destination text,
    body jsonb not null,
    created_at timestamptz not null default now(),
    sent_at timestamptz,
    attempts int not null default 0,
    last_error text
);
create index outbox_unsent on outbox (id) where sent_at is null;

-- Inbox: consumers whose effect is not idempotent by construction record (consumer, message id) in the
-- same transaction as the effect and skip a message they have seen.
create table inbox (
    consumer text not null,
    message_id uuid not null,
    processed_at timestamptz not null default now(),
    primary key (consumer, message_id)
);
