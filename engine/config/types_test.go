package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestParseByteSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{in: "0", want: 0},
		{in: "123", want: 123},
		{in: " 64KiB ", want: 64 << 10},
		{in: "2MiB", want: 2 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "64KB", want: 64000},
		{in: "2MB", want: 2000000},
		{in: "1GB", want: 1000000000},
		{in: "512B", want: 512},
		{in: "16 KiB", want: 16 << 10},
		{in: "", err: true},
		{in: "-1", err: true},
		{in: "2.5MiB", err: true},
		{in: "2TiB", err: true},
		{in: "lots", err: true},
		{in: "99999999999999999999", err: true},
		{in: "4294967296GiB", want: 1 << 62},
		{in: "4294967297GiB", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseByteSize(tc.in)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestDurationYAML(t *testing.T) {
	t.Parallel()
	var v struct {
		D Duration `yaml:"d"`
	}
	require.NoError(t, yaml.Unmarshal([]byte("d: 1m30s"), &v))
	assert.Equal(t, 90*time.Second, v.D.D())
	out, err := yaml.Marshal(v)
	require.NoError(t, err)
	assert.Equal(t, "d: 1m30s\n", string(out))
	require.Error(t, yaml.Unmarshal([]byte("d: 5"), &v))
	require.Error(t, yaml.Unmarshal([]byte("d: -1s"), &v))
}

func TestCIDRYAML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "10.1.2.3/8", want: "10.0.0.0/8"},
		{in: "192.0.2.7", want: "192.0.2.7/32"},
		{in: "2001:db8::/32", want: "2001:db8::/32"},
		{in: "::1", want: "::1/128"},
		{in: "fe80::1%eth0"},
		{in: "10.0.0.0/33"},
		{in: "localhost"},
		{in: ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			var v struct {
				C CIDR `yaml:"c"`
			}
			err := yaml.Unmarshal([]byte("c: '"+tc.in+"'"), &v)
			if tc.want == "" {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, v.C.Prefix().String())
			out, err := yaml.Marshal(v)
			require.NoError(t, err)
			assert.Equal(t, "c: "+tc.want+"\n", string(out))
		})
	}
}

func TestPositionsOf(t *testing.T) {
	t.Parallel()
	p := Positions{
		"":                            {File: "c.yaml", Line: 1, Col: 1},
		"providers.github":            {File: "c.yaml", Line: 3, Col: 5},
		"providers.github.patterns":   {File: "c.yaml", Line: 9, Col: 5},
		"providers.github.samples[0]": {File: "c.yaml", Line: 12, Col: 9},
	}
	tests := []struct {
		path string
		want int
	}{
		{path: "providers.github.patterns", want: 9},
		{path: "providers.github.patterns.issue.regex", want: 9},
		{path: "providers.github.samples[0]", want: 12},
		{path: "providers.github.samples[1]", want: 3},
		{path: "providers.github.upstream.base_url", want: 3},
		{path: "server.mode", want: 1},
		{path: "", want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, p.Of(tc.path).Line)
		})
	}
	assert.Equal(t, Pos{}, Positions{}.Of("a.b"), "an empty index knows no place")
}

func TestErrors(t *testing.T) {
	t.Parallel()
	var es Errors
	es.Warn(Pos{File: "b.yaml", Line: 1, Col: 1}, "x", "warn %d", 1)
	es.Add(Pos{File: "a.yaml", Line: 10, Col: 2}, "p.q", "second %s", "line")
	es.Add(Pos{File: "a.yaml", Line: 2, Col: 9}, "p.b", "later column")
	es.Add(Pos{File: "a.yaml", Line: 2, Col: 3}, "p.z", "same place, path z")
	es.Add(Pos{File: "a.yaml", Line: 2, Col: 3}, "p.a", "same place, path a")
	es.Add(Pos{File: "a.yaml"}, "", "no line")
	es.Sort()
	assert.Equal(t, ""+
		"a.yaml: no line\n"+
		"a.yaml:2:3: p.a: same place, path a\n"+
		"a.yaml:2:3: p.z: same place, path z\n"+
		"a.yaml:2:9: p.b: later column\n"+
		"a.yaml:10:2: p.q: second line\n"+
		"b.yaml:1:1: warning: x: warn 1", es.Error())
	assert.True(t, es.HasErrors())
	require.Error(t, es.Err())

	warnings := Errors{{Pos: Pos{File: "a.yaml", Line: 1, Col: 1}, Msg: "w", Warning: true}}
	assert.False(t, warnings.HasErrors())
	require.NoError(t, warnings.Err())
}
