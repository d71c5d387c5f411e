package provider

// TryLaterResult is the "try later" error operation for uri, for failures
// outside the provider's own run, such as a failed upstream token refresh
// (protocol 5.4).
func (p *Provider) TryLaterResult(uri string) *Result {
	return p.errorResult(uri, &unfurlError{status: 503, msg: p.messages.TryLater, cause: "upstream credential unavailable"})
}
