package metrics_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/unfurld/unfurld/engine/metrics"
)

// metricName finds the series names a PromQL expression reads: ours, the
// Go runtime's and the process collector's.
var metricName = regexp.MustCompile(`\b(?:unfurld|go|process)_[a-z0-9_]+`)

// TestExamplesUseExistingMetrics: every metric the Grafana dashboard and
// the alert rules in examples/monitoring read exists in the registry, so
// a renamed series cannot leave a silent panel or an alert that never
// fires.
func TestExamplesUseExistingMetrics(t *testing.T) {
	m := metrics.New()
	feed(m)
	fams, err := m.Registry().Gather()
	require.NoError(t, err)
	known := map[string]bool{}
	for _, f := range fams {
		known[f.GetName()] = true
		if f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				known[f.GetName()+suffix] = true
			}
		}
	}

	dir := filepath.Join("..", "..", "examples", "monitoring")
	dash, err := os.ReadFile(filepath.Join(dir, "grafana-dashboard.json"))
	require.NoError(t, err)
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(dash, &d))
	exprs := map[string]string{} // expression → where
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs[tg.Expr] = "dashboard panel " + p.Title
		}
	}

	rules, err := os.ReadFile(filepath.Join(dir, "alerts.yaml"))
	require.NoError(t, err)
	var r struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(rules, &r))
	for _, g := range r.Groups {
		for _, rule := range g.Rules {
			exprs[rule.Expr] = "alert " + rule.Alert
		}
	}
	require.Greater(t, len(exprs), 10)

	used := 0
	for expr, where := range exprs {
		for _, name := range metricName.FindAllString(expr, -1) {
			used++
			assert.True(t, known[name], "%s reads %s, which unfurld does not export", where, name)
		}
	}
	assert.Greater(t, used, 10)
}
