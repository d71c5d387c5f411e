package notion

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/unfurld/unfurld/engine/config"
)

// UpdateObject is R7 (protocol 7): it PATCHes /v1/external/object with env
// as the body and the Notion access token from R2 as Bearer. Any 2xx is
// success and its body is ignored, because Notion does not document one
// (protocol 7.4, 10 #22). Other answers are *APIError: use IsAuth to drop
// the subscription, IsRateLimited and IsRetryable to schedule a retry.
// PATCH with a full attribute set is idempotent, so retrying is safe.
func (c *Client) UpdateObject(ctx context.Context, token config.Secret, env Envelope) error {
	switch {
	case token.IsZero():
		return errors.New("notion update object: token is empty")
	case env.URI == "":
		return errors.New("notion update object: uri is empty")
	case len(env.Operations) == 0:
		return errors.New("notion update object: no operations")
	}
	body, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("notion update object: encode body: %w", err)
	}
	scrub := []string{token.Reveal()}
	resp, err := c.do(ctx, request{
		op:      "update object",
		method:  http.MethodPatch,
		path:    objectPath,
		version: c.objectVersion,
		auth:    func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token.Reveal()) },
		body:    body,
		scrub:   scrub,
	})
	if err != nil {
		return err
	}
	if resp.status < 200 || resp.status > 299 {
		return fmt.Errorf("notion update object: %w", parseAPIError(resp, scrub))
	}
	return nil
}
