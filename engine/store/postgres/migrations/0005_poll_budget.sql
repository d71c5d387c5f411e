-- Several replicas poll within one budget (store.SharedPollBudget).
--
-- poll_budget holds each provider's polling token bucket
-- (max_requests_per_hour, live/budget.go): the tokens left as of at (Unix
-- nanoseconds), so that the budget holds across all replicas together,
-- not for each. granted is what the last reservation took, for its
-- RETURNING.

CREATE TABLE poll_budget (
    provider bytea PRIMARY KEY,
    tokens   float8 NOT NULL,
    at       int8 NOT NULL,
    granted  int8 NOT NULL DEFAULT 0
);
