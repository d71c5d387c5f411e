package canary

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// baselineVersion is the baseline file's schema version.
const baselineVersion = 1

// Baseline is what `unfurld canary --record FILE` keeps of a run: per
// sample, the status and the attribute ids with their kinds. Values are
// left out on purpose: they change legitimately between runs.
type Baseline struct {
	// V is the schema version.
	V int `json:"v"`
	// RecordedAt is when the run was recorded.
	RecordedAt time.Time `json:"recorded_at"`
	// Samples are the recorded samples, in run order.
	Samples []BaselineSample `json:"samples"`

	index map[sampleKey]*BaselineSample
}

// BaselineSample is one sample as recorded.
type BaselineSample struct {
	Provider   string            `json:"provider"`
	Pattern    string            `json:"pattern"`
	URL        string            `json:"url"`
	Status     int               `json:"status"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

type sampleKey struct{ provider, pattern, url string }

// NewBaseline keeps what a run found. Samples whose upstream failed
// (timeout, 5xx...) are left out, since a failure is not how the sample
// should look; they are returned as the second result so the caller can
// say so.
func NewBaseline(r *Report) (*Baseline, []string) {
	b := &Baseline{V: baselineVersion, RecordedAt: r.FinishedAt, Samples: []BaselineSample{}}
	var left []string
	for _, p := range r.Providers {
		for _, s := range p.Samples {
			if s.Error != "" {
				left = append(left, fmt.Sprintf("%s %s: %s", p.Provider, s.URL, s.Error))
				continue
			}
			b.Samples = append(b.Samples, BaselineSample{
				Provider: p.Provider, Pattern: s.Pattern, URL: s.URL, Status: s.Status, Attributes: s.Attributes,
			})
		}
	}
	b.reindex()
	return b, left
}

// Merge keeps old's samples of the providers this run did not cover
// (skipped or not asked for), so that recording one provider does not
// drop the others.
func (b *Baseline) Merge(old *Baseline, covered []string) {
	if old == nil {
		return
	}
	seen := map[string]bool{}
	for _, p := range covered {
		seen[p] = true
	}
	for _, s := range old.Samples {
		if !seen[s.Provider] {
			b.Samples = append(b.Samples, s)
		}
	}
	b.reindex()
}

func (b *Baseline) reindex() {
	b.index = make(map[sampleKey]*BaselineSample, len(b.Samples))
	for i := range b.Samples {
		s := &b.Samples[i]
		b.index[sampleKey{s.Provider, s.Pattern, s.URL}] = s
	}
}

// lookup returns the recorded sample, or nil (also for a nil Baseline).
func (b *Baseline) lookup(provider, pattern, url string) *BaselineSample {
	if b == nil {
		return nil
	}
	return b.index[sampleKey{provider, pattern, url}]
}

// ReadBaseline reads a baseline file.
func ReadBaseline(path string) (*Baseline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read canary baseline: %w", err)
	}
	var b Baseline
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("canary baseline %s: %w", path, err)
	}
	if b.V != baselineVersion {
		return nil, fmt.Errorf("canary baseline %s: version %d, want %d: record it again with unfurld canary --record", path, b.V, baselineVersion)
	}
	b.reindex()
	return &b, nil
}

// Write stores the baseline at path: a temporary file beside it, synced
// and renamed over it, so a crash leaves the old baseline or the new one,
// never half of one.
func (b *Baseline) Write(path string) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("encode canary baseline: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write canary baseline: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write canary baseline: %w", err)
	}
	return nil
}
