-- Several replicas drain one outbox (store.SharedOutbox).
--
-- lease_until: a replica that claims an item leases it until then; no
-- other replica claims it meanwhile, and a killed replica's lease simply
-- runs out. slot_at: the pacing slot reserved for the item when it was
-- deferred to it, so that claiming it then does not reserve a second one.
-- due_at is when the item may next be claimed: the later of next_at and
-- the lease (NULL times are the zero time, before every other), kept in
-- a generated column so that the index serves the claim's scan.
--
-- outbox_pace holds each connection's pacing state (live/pacing.go: the
-- theoretical arrival time of its next PATCH, and a Retry-After hold), so
-- that the pace to Notion holds across all replicas together.

ALTER TABLE outbox
    ADD COLUMN lease_until int8,
    ADD COLUMN slot_at int8,
    ADD COLUMN due_at int8 GENERATED ALWAYS AS
        (greatest(coalesce(next_at, -9223372036854775808), coalesce(lease_until, -9223372036854775808))) STORED;
DROP INDEX outbox_by_due;
CREATE INDEX outbox_by_due ON outbox (due_at, provider, uri, connection_id);

CREATE TABLE outbox_pace (
    connection_id bytea PRIMARY KEY,
    tat           int8,
    hold          int8
);
