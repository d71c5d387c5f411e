package memory_test

import (
	"testing"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/memory"
	"github.com/unfurld/unfurld/engine/store/storetest"
)

func TestSealedConformance(t *testing.T) {
	storetest.RunSealed(t, func(*testing.T) store.Store { return memory.New() })
}
