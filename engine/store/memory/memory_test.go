package memory_test

import (
	"testing"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/memory"
	"github.com/unfurld/unfurld/engine/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return memory.New() })
}

func TestOutboxConformance(t *testing.T) {
	storetest.RunOutbox(t, func(*testing.T) storetest.OutboxStore { return memory.New() })
}

func TestScheduleConformance(t *testing.T) {
	storetest.RunSchedule(t, func(*testing.T) storetest.ScheduleStore { return memory.New() })
}
