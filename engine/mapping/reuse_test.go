package mapping

import (
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEvalReusedVM: Eval reuses VMs (issue 2), so one evaluation must not
// see another's values: concurrent evaluations of one program on
// different documents, with let-variables, map/filter scopes and a
// failing run in between, each give their own answer.
func TestEvalReusedVM(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, `let t = issue.title; let ls = join(map(filter(issue.labels, .name != ""), .name), ","); t + "|" + ls + "|" + groups.number`)
	failing := mustCompile(t, `issue.title + 1`)
	env := func(i int) *Env {
		doc, err := NewDoc([]byte(`{"title":"t` + strconv.Itoa(i) + `","labels":[{"name":"a` + strconv.Itoa(i) + `"},{"name":"b"}]}`))
		require.NoError(t, err)
		return &Env{Groups: map[string]string{"number": strconv.Itoa(i)}, Docs: map[string]Doc{"issue": doc}}
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w * 100; i < w*100+100; i++ {
				e := env(i)
				if i%10 == 0 {
					_, err := failing.Eval(e)
					assert.Error(t, err)
				}
				got, err := p.Eval(e)
				if !assert.NoError(t, err) {
					return
				}
				n := strconv.Itoa(i)
				assert.Equal(t, "t"+n+"|a"+n+",b|"+n, got)
			}
		})
	}
	wg.Wait()

	// A missing document after a present one reads as nil, not as the
	// previous evaluation's value.
	q := mustCompile(t, `issue?.title ?? "none"`)
	got, err := q.Eval(env(1))
	require.NoError(t, err)
	assert.Equal(t, "t1", got)
	got, err = q.Eval(&Env{})
	require.NoError(t, err)
	assert.Equal(t, "none", got)
}
