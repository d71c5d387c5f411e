package notion

import "encoding/json"

// UnfurlRequest is the body Notion POSTs to the Unfurl Callback URL
// (protocol 5.1).
type UnfurlRequest struct {
	URI string `json:"uri"`
}

// Envelope is the unfurl response body and the PATCH /v1/external/object
// body alike (protocol 5.3, 7.1).
type Envelope struct {
	// URI is echoed exactly as Notion sent it (protocol 5.3).
	URI        string      `json:"uri"`
	Operations []Operation `json:"operations"`
}

// Operation is one entry of Envelope.Operations. Path is ["attributes"]
// with Set holding []Attribute, or ["error"] with Set holding an
// ErrorSet (protocol 5.4, 7.2).
type Operation struct {
	Path []string `json:"path"`
	Set  any      `json:"set"`
}

// ErrorSet is the set of an error operation (protocol 5.4).
type ErrorSet struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

// AttributesOp returns the operation that sets the whole attribute list.
func AttributesOp(attrs []Attribute) Operation {
	return Operation{Path: []string{"attributes"}, Set: attrs}
}

// ErrorOp returns an error operation.
func ErrorOp(status int, message string) Operation {
	return Operation{Path: []string{"error"}, Set: ErrorSet{Status: status, Message: message}}
}

// Attribute is one unfurl attribute (protocol 6.1). Exactly one of Inline,
// Embed and Relation is set, and Type names it: we always emit type
// (protocol 10 #12).
type Attribute struct {
	ID       string          `json:"id"`
	Name     string          `json:"name"`
	Type     string          `json:"type"`
	Inline   *Inline         `json:"inline,omitempty"`
	Embed    *Embed          `json:"embed,omitempty"`
	Relation json.RawMessage `json:"relation,omitempty"`
}

// Inline holds exactly one inline sub-type (protocol 6.2).
type Inline struct {
	Title     *Text     `json:"title,omitempty"`
	PlainText *Text     `json:"plain_text,omitempty"`
	Enum      *Enum     `json:"enum,omitempty"`
	Date      *Text     `json:"date,omitempty"`
	Datetime  *Text     `json:"datetime,omitempty"`
	Color     *ColorVal `json:"color,omitempty"`
}

// Text is a string-valued inline sub-type.
type Text struct {
	Value   string `json:"value"`
	Section string `json:"section"`
}

// RGB is a color; components are 0-255 (protocol 6.2).
type RGB struct {
	R uint8 `json:"r"`
	G uint8 `json:"g"`
	B uint8 `json:"b"`
}

// Enum is the enum sub-type, with an optional color.
type Enum struct {
	Value   string `json:"value"`
	Color   *RGB   `json:"color,omitempty"`
	Section string `json:"section"`
}

// ColorVal is the color sub-type.
type ColorVal struct {
	Value   RGB    `json:"value"`
	Section string `json:"section"`
}

// Section is the object inside an embed sub-type.
type Section struct {
	Section string `json:"section"`
}

// Embed is an embed attribute: a source URL and exactly one sub-type
// (protocol 6.4).
type Embed struct {
	SrcURL string   `json:"src_url"`
	Image  *Section `json:"image,omitempty"`
	Video  *Section `json:"video,omitempty"`
	Audio  *Section `json:"audio,omitempty"`
	HTML   *Section `json:"html,omitempty"`
	PDF    *Section `json:"pdf,omitempty"`
}

// RelationValue is the pass-through relation object (protocol 6.5).
type RelationValue struct {
	URI     string  `json:"uri"`
	Mention Section `json:"mention"`
}

// AuthError is the small JSON body of a 401 on the unfurl route
// (protocol 5.5).
type AuthError struct {
	Error ErrorSet `json:"error"`
}
