-- The stand-in service's first migration. migration_trace records every run of a test migration, so a test
-- sees the order they ran in and whether one ran twice, and whether the platform's tables came first.
create table widgets (
    id bigint generated always as identity primary key,
    name text not null
);

create table migration_trace (
    seq bigint generated always as identity primary key,
    migration text not null,
    outbox_present boolean not null
);

insert into migration_trace (migration, outbox_present) values ('0001_widgets', to_regclass('outbox') is not null);
