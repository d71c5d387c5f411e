package main

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProvidersGolden pins `unfurld providers`, text and JSON: every
// built-in file once, with its variants as further ways to include it.
// Rewrite with go test -update after changing a built-in.
func TestProvidersGolden(t *testing.T) {
	for _, tc := range []struct {
		name, golden string
		args         []string
	}{
		{"text", "testdata/providers.txt.golden", nil},
		{"json", "testdata/providers.json.golden", []string{"--format", "json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, out, errb := testEnv(nil)
			require.Equal(t, exitOK, run(t.Context(), append([]string{"providers"}, tc.args...), e), errb.String())
			if *update {
				require.NoError(t, os.WriteFile(tc.golden, out.Bytes(), 0o644))
			}
			want, err := os.ReadFile(tc.golden)
			require.NoError(t, err)
			assert.Equal(t, string(want), out.String())
			assert.Empty(t, errb.String())
		})
	}
}

// TestProvidersVariants: github is listed once, with github-oauth as its
// oauth variant, the new kinds and gist.github.com among its domains.
func TestProvidersVariants(t *testing.T) {
	e, out, errb := testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"providers", "--format", "json"}, e), errb.String())
	var got struct {
		Providers []builtinInfo `json:"providers"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	var names []string
	var github builtinInfo
	for _, p := range got.Providers {
		names = append(names, p.Name)
		if p.Name == "github" {
			github = p
		}
	}
	assert.NotContains(t, names, "github-oauth", "a variant is not a provider of its own")
	assert.Equal(t, []builtinAuth{
		{Include: "builtin:github", Type: "none"},
		{Include: "builtin:github-oauth", Variant: "oauth", Type: "oauth2"},
	}, github.Auth)
	assert.Equal(t, []string{"github.com", "gist.github.com"}, github.Domains)
	assert.Subset(t, github.Kinds, []string{"discussion", "release", "workflow-run", "gist"})
}

// TestProvidersUsage: a bad format or an argument is a usage error.
func TestProvidersUsage(t *testing.T) {
	for _, args := range [][]string{{"--format", "yaml"}, {"github"}} {
		e, _, errb := testEnv(nil)
		assert.Equal(t, exitUsage, run(t.Context(), append([]string{"providers"}, args...), e), args)
		assert.NotEmpty(t, errb.String())
	}
}
