package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Options tune a Store beyond its DSN.
type Options struct {
	// RoundTrip, when set, is called once per exchange with the server
	// that pgx makes for the store: a statement (a transaction's BEGIN
	// and COMMIT included), a batch, a COPY, a statement's preparation.
	// It is the measure of what an operation costs the database: an
	// operator's metric, and the load tool's round trips per unfurl
	// (docs/operations.md, PostgreSQL performance). It must be cheap and
	// safe for concurrent use.
	RoundTrip func()
}

// roundTripTracer counts round trips through pgx's tracer hooks: each
// Start of a query, a batch (sent as one pipeline) or a copy is one
// exchange, and so is a preparation that reached the server. The hooks
// see every statement the pool runs, whichever code path issued it, so
// the count cannot drift from the SQL.
type roundTripTracer struct {
	count func()
}

var (
	_ pgx.QueryTracer    = roundTripTracer{}
	_ pgx.BatchTracer    = roundTripTracer{}
	_ pgx.CopyFromTracer = roundTripTracer{}
	_ pgx.PrepareTracer  = roundTripTracer{}
)

// TraceQueryStart implements pgx.QueryTracer.
func (t roundTripTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	t.count()
	return ctx
}

// TraceQueryEnd implements pgx.QueryTracer.
func (roundTripTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceBatchStart implements pgx.BatchTracer: a batch is sent and read
// as one pipeline, one round trip for all its statements.
func (t roundTripTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	t.count()
	return ctx
}

// TraceBatchQuery implements pgx.BatchTracer.
func (roundTripTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd implements pgx.BatchTracer.
func (roundTripTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TraceCopyFromStart implements pgx.CopyFromTracer.
func (t roundTripTracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	t.count()
	return ctx
}

// TraceCopyFromEnd implements pgx.CopyFromTracer.
func (roundTripTracer) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

// TracePrepareStart implements pgx.PrepareTracer; the count waits for
// the end, which says whether the server was asked at all.
func (roundTripTracer) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	return ctx
}

// TracePrepareEnd implements pgx.PrepareTracer: a statement already
// prepared on the connection cost nothing.
func (t roundTripTracer) TracePrepareEnd(_ context.Context, _ *pgx.Conn, data pgx.TracePrepareEndData) {
	if !data.AlreadyPrepared {
		t.count()
	}
}
