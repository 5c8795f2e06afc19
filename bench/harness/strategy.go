package harness

import (
	"fmt"
	"strings"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// Victim names a memory.VictimOrder: which consumer of a task is asked to spill first when the
// task is short of execution memory.
type Victim string

// The victim orders a run can select.
const (
	// VictimSpark is memory.SparkOrder, Spark's TaskMemoryManager policy (the default).
	VictimSpark Victim = "spark"
	// VictimLargest is memory.LargestFirstOrder.
	VictimLargest Victim = "largest"
	// VictimRequester is memory.RequesterFirstOrder.
	VictimRequester Victim = "requester"
)

// Order returns the memory.VictimOrder v names; "" means Spark's.
func (v Victim) Order() (memory.VictimOrder, error) {
	switch v {
	case "", VictimSpark:
		return memory.SparkOrder{}, nil
	case VictimLargest:
		return memory.LargestFirstOrder{}, nil
	case VictimRequester:
		return memory.RequesterFirstOrder{}, nil
	}
	return nil, fmt.Errorf("harness: unknown victim order %q (want spark, largest or requester)", string(v))
}

// Strategy is one choice of the knobs a benchmark compares. Each workload uses the knobs that
// matter to it (the victim order needs several consumers in one task; compression needs
// spills) and ignores the others, and Label names only the knobs that were set.
type Strategy struct {
	// Victim is the spill victim order (memory.TaskConfig.VictimOrder). "" means Spark's.
	Victim Victim `json:"victim,omitempty"`
	// NoCompress turns spill compression off (collection.SpillConfig.Compression =
	// storage.CompressionNone); the default compresses spills with S2, as Spark compresses them
	// with its default codec.
	NoCompress bool `json:"no_compress,omitempty"`
}

// Compression is the spill compression the strategy selects.
func (s Strategy) Compression() storage.Compression {
	if s.NoCompress {
		return storage.CompressionNone
	}
	return storage.CompressionDefault
}

// Validate reports an unknown victim order.
func (s Strategy) Validate() error {
	_, err := s.Victim.Order()
	return err
}

// Label is a short name of the strategy such as "victim=largest,nocompress", or "default" when
// every knob has Spark's setting.
func (s Strategy) Label() string {
	var parts []string
	if s.Victim != "" {
		parts = append(parts, "victim="+string(s.Victim))
	}
	if s.NoCompress {
		parts = append(parts, "nocompress")
	}
	if len(parts) == 0 {
		return "default"
	}
	return strings.Join(parts, ",")
}

// ParseStrategy parses a Label back ("default" or comma-separated victim=…, nocompress,
// compress).
func ParseStrategy(label string) (Strategy, error) {
	var s Strategy
	label = strings.TrimSpace(label)
	if label == "" || label == "default" {
		return s, nil
	}
	for part := range strings.SplitSeq(label, ",") {
		k, v, hasValue := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case k == "victim" && hasValue:
			s.Victim = Victim(v)
		case k == "nocompress" && !hasValue:
			s.NoCompress = true
		case k == "compress" && !hasValue:
			s.NoCompress = false
		default:
			return Strategy{}, fmt.Errorf("harness: bad strategy part %q in %q (want victim=…, nocompress or compress)", part, label)
		}
	}
	return s, s.Validate()
}
