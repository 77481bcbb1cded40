-- Keys are now stored as HMAC-SHA256 under the server secret Platform:KeyHashSecret, so a copy of the
-- database alone does not let anyone check a guessed key. Rows from before keep their plain SHA-256 hash,
-- marked 'sha256': they cannot be re-hashed without the key, so the gateway re-hashes each one the first
-- time its key is presented (and finds it by the old hash until then). Keys never used again stay 'sha256';
-- re-issue them, or delete those rows, to have none left.
alter table api_keys add column scheme text not null default 'sha256' check (scheme in ('sha256', 'hmac-sha256'));
alter table api_keys alter column scheme drop default;
