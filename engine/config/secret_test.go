package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// TestSecretNeverPrints covers TH-49: no way of printing a Secret shows it.
func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	const value = "s3cr3t-value-that-must-not-leak"
	s := Secret(value)
	holder := struct {
		Name   string
		Secret Secret `json:"secret" yaml:"secret"`
	}{Name: "x", Secret: s}

	printed := map[string]string{}
	for _, verb := range []string{"%v", "%s", "%q", "%#v", "%+v", "%x", "%X", "%10s", "%d"} {
		printed["fmt "+verb] = fmt.Sprintf(verb, s)
		printed["fmt struct "+verb] = fmt.Sprintf(verb, holder)
		printed["fmt pointer "+verb] = fmt.Sprintf(verb, &holder)
	}
	printed["fmt Sprint"] = fmt.Sprint(s)
	printed["fmt Sprintln"] = fmt.Sprintln(s)

	j, err := json.Marshal(holder)
	require.NoError(t, err)
	printed["json"] = string(j)

	y, err := yaml.Marshal(holder)
	require.NoError(t, err)
	printed["yaml"] = string(y)

	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"slog text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"slog json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		slog.New(h(&buf)).Info("msg", "secret", s, "group", slog.GroupValue(slog.Any("inner", s)))
		printed[name] = buf.String()
	}

	for name, out := range printed {
		assert.NotContains(t, out, value, name)
		assert.NotContains(t, out, fmt.Sprintf("%x", value), name)
	}
	var back map[string]string
	require.NoError(t, json.Unmarshal(j, &back))
	assert.Equal(t, "<redacted>", back["secret"])
	assert.Contains(t, printed["yaml"], "secret: <redacted>")
	assert.Contains(t, printed["slog json"], `"secret":"<redacted>"`)
	assert.Equal(t, "<redacted>", printed["fmt %v"])
	assert.Equal(t, value, s.Reveal())
}

func TestSecretEmpty(t *testing.T) {
	t.Parallel()
	var s Secret
	assert.True(t, s.IsZero())
	assert.Empty(t, s.String(), "an empty secret prints empty, so a missing one is visible")
	assert.False(t, Secret("x").IsZero())
}
