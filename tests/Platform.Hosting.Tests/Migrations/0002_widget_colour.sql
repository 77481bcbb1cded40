-- Depends on 0001: fails if the migrations run out of order.
alter table widgets add column colour text not null default 'blue';

insert into migration_trace (migration, outbox_present) values ('0002_widget_colour', to_regclass('outbox') is not null);
