package bolt

import (
	"testing"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/storetest"
)

func TestSealedConformance(t *testing.T) {
	storetest.RunSealed(t, func(t *testing.T) store.Store { s, _ := openTemp(t); return s })
}
