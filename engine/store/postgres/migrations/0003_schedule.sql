-- The live-update schedule (store.Schedule, issue 11), kept in the
-- subscriptions rows so that replicas share the polling work with row
-- locks: a claim is SELECT ... FOR UPDATE SKIP LOCKED over an index, and
-- its lease (owner, until) is written in the same statement.
--
-- next_poll_at is int8 nanoseconds like every time column, but never
-- NULL: a never-scheduled subscription holds the smallest int8, so it
-- is due at once and "due" is one range of the index. Every existing
-- row gets that default, which PostgreSQL records without rewriting the
-- table. Leases are NULL while there are none; unfurled_at is NULL for
-- rows written before it was kept (expiry then goes by updated_at).

ALTER TABLE subscriptions
    ADD COLUMN next_poll_at int8 NOT NULL DEFAULT -9223372036854775808,
    ADD COLUMN poll_owner bytea,
    ADD COLUMN poll_until int8,
    ADD COLUMN pending_owner bytea,
    ADD COLUMN pending_until int8,
    ADD COLUMN unfurled_at int8;

-- ClaimDuePolls and NextPollDue: a provider's subscriptions by next poll.
CREATE INDEX subs_by_next_poll ON subscriptions (provider, next_poll_at, connection_id, uri);

-- NextPollDue: the leases that run, a few rows at any time.
CREATE INDEX subs_poll_leased ON subscriptions (provider, poll_until) WHERE poll_until IS NOT NULL;

-- ClaimPending: the webhook marks (store.RefreshPending), oldest first.
CREATE INDEX subs_pending ON subscriptions (refresh_at, provider, connection_id, uri)
    WHERE refresh_outcome = 'pending'::bytea;

-- ExpireSubscriptions: by the time a link was last unfurled.
CREATE INDEX subs_by_unfurled ON subscriptions
    (provider, (coalesce(unfurled_at, updated_at, -9223372036854775808)), connection_id, uri);
