package memory

import "fmt"

// ConsumerUsage is one consumer's execution memory at one moment, as listed by
// TaskManager.ConsumerUsage. It is the data behind one line of Spark's showMemoryUsage
// ("Acquired by <consumer>: <size>").
type ConsumerUsage struct {
	// Name is the consumer formatted with %v (ConsumerBase.String for consumers that embed it).
	Name string
	Mode Mode
	// Used is Consumer.Used at the time of the call.
	Used int64
}

// ConsumerUsage returns every consumer the task has registered, in order of first acquisition,
// with its current Used, including consumers that hold nothing now (a read-only snapshot for
// monitoring, such as bench's memory timelines; Spark's showMemoryUsage reads the same list).
// Usage changes while the snapshot is taken, so the entries need not sum to the task's entry in
// the pool at any single instant. It takes only the task's leaf state lock, never the
// acquisition lock, so it is safe to call while the task acquires or spills.
func (t *TaskManager) ConsumerUsage() []ConsumerUsage {
	t.state.Lock()
	consumers := append([]Consumer(nil), t.consumers...)
	t.state.Unlock()
	out := make([]ConsumerUsage, len(consumers))
	for i, c := range consumers {
		out[i] = ConsumerUsage{Name: fmt.Sprint(c), Mode: c.Mode(), Used: c.Used()}
	}
	return out
}
