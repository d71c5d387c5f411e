-- The operator's view of a connection (`unfurld status --connection`):
-- when its upstream credential was last refreshed, why it needs
-- reconnecting and its last failures, and when Notion last accepted a
-- PATCH of each subscription. The events are JSON (eventsJSON in
-- records.go) in bytea, NULL while there are none; existing rows read as
-- never refreshed, never failed, never delivered.

ALTER TABLE connections
    ADD COLUMN upstream_refreshed_at int8,
    ADD COLUMN reconnect bytea,
    ADD COLUMN failures bytea;

ALTER TABLE subscriptions
    ADD COLUMN delivered_at int8;
