-- The operator's view of a connection (`unfurld status --connection`):
-- when its upstream credential was last refreshed, why it needs
-- reconnecting and its last failures. The events are JSON (eventJSON in
-- records.go) in bytea, NULL while there are none; existing rows read as
-- never refreshed and never failed.

ALTER TABLE connections
    ADD COLUMN upstream_refreshed_at int8,
    ADD COLUMN reconnect bytea,
    ADD COLUMN failures bytea;
