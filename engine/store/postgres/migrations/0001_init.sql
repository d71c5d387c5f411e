-- The first schema: every record kind of store.Store.
--
-- Every string is bytea: Go strings are bytes, and keys may hold NUL and
-- bytes that are not UTF-8, which text refuses. bytea also compares
-- byte by byte, so ORDER BY gives Go's string order whatever the
-- database's collation. Every time is int8 nanoseconds since the Unix
-- epoch, NULL for Go's zero time ("never"): timestamptz keeps only
-- microseconds, and callers compare exact instants.

CREATE TABLE tokens (
    digest        bytea PRIMARY KEY,
    kind          bytea NOT NULL,
    provider      bytea NOT NULL,
    connection_id bytea NOT NULL,
    grant_id      bytea NOT NULL,
    created_at    int8,
    expires_at    int8,
    redirect_uri  bytea NOT NULL,
    consumed_at   int8,
    successor     bytea
);
CREATE INDEX tokens_by_conn ON tokens (connection_id);
CREATE INDEX tokens_by_grant ON tokens (grant_id);

CREATE TABLE connections (
    id                  bytea PRIMARY KEY,
    provider            bytea NOT NULL,
    account_key         bytea NOT NULL,
    account_name        bytea NOT NULL,
    workspace_id        bytea NOT NULL,
    workspace_name      bytea NOT NULL,
    bot_id              bytea NOT NULL,
    owner               bytea NOT NULL,
    notion_token        bytea,
    upstream_credential bytea,
    upstream_expiry     int8,
    status              bytea NOT NULL,
    created_at          int8,
    updated_at          int8
);
CREATE INDEX conns_by_owner ON connections (provider, account_key, workspace_id, owner, id);

CREATE TABLE flows (
    id         bytea PRIMARY KEY,
    provider   bytea NOT NULL,
    data       bytea,
    created_at int8,
    expires_at int8
);
CREATE INDEX flows_by_expiry ON flows (expires_at);

CREATE TABLE subscriptions (
    provider        bytea NOT NULL,
    connection_id   bytea NOT NULL,
    uri             bytea NOT NULL,
    attr_hash       bytea NOT NULL,
    etag            bytea NOT NULL,
    last_modified   bytea NOT NULL,
    created_at      int8,
    updated_at      int8,
    refresh_at      int8,
    refresh_trigger bytea NOT NULL,
    refresh_outcome bytea NOT NULL,
    refresh_status  int8 NOT NULL,
    refresh_detail  bytea NOT NULL,
    PRIMARY KEY (provider, connection_id, uri)
);
CREATE INDEX subs_by_uri ON subscriptions (provider, uri, connection_id);
CREATE INDEX subs_by_conn ON subscriptions (connection_id);

-- outbox_seq gives every Enqueue a new, larger Seq (store.OutboxItem).
CREATE SEQUENCE outbox_seq;

CREATE TABLE outbox (
    provider      bytea NOT NULL,
    connection_id bytea NOT NULL,
    uri           bytea NOT NULL,
    seq           int8 NOT NULL,
    body          bytea,
    attr_hash     bytea NOT NULL,
    enqueued_at   int8,
    next_at       int8,
    attempts      int8 NOT NULL,
    last_error    bytea NOT NULL,
    PRIMARY KEY (provider, connection_id, uri)
);
CREATE INDEX outbox_by_due ON outbox (next_at NULLS FIRST, provider, uri, connection_id);
CREATE INDEX outbox_by_conn ON outbox (connection_id);

-- probe is what Probe writes and deletes again (store.Store.Probe).
CREATE TABLE probe (id int4 PRIMARY KEY);
