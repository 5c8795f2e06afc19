package collection

import (
	"context"
	"errors"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// SortConfig configures Sort: how to order the records (required) and how to spill them.
type SortConfig[T any] struct {
	// Compare orders the records (cmp.Compare's contract; required). Records it calls equal
	// come out in no particular order.
	Compare func(a, b T) int
	// Spill is the spill policy and spill-file format (zero: Spark's defaults).
	Spill SpillConfig
	// Name names the sort in logs and memory usage reports. "" means "Sort".
	Name string
}

// Validate reports every invalid field.
func (c SortConfig[T]) Validate() error {
	var errs []error
	if c.Compare == nil {
		errs = append(errs, errors.New("collection: SortConfig.Compare is nil"))
	}
	return errors.Join(append(errs, c.Spill.Validate())...)
}

// Sort sorts plain records (no key-value pairs, no value type) under task tm's memory budget,
// spilling sorted runs, encoded with codec, into scope when memory runs short, and returns them
// in Compare's order. It is an ExternalSorter keyed by the record itself (so T must be
// comparable) with an empty value, so its memory and spilling behave the same (Spark's sortBy
// runs the same sorter on the reduce side). It reads and closes records, then returns an
// iterator that owns the sorter: close it, also after an error or an early stop, to release the
// memory and delete the spill files.
//
// It returns the errors of its arguments (a nil codec, cfg's), and the errors of InsertAll
// (records' error, a cancelled ctx, a failed spill), with nothing left held.
func Sort[T comparable](ctx context.Context, tm *memory.TaskManager, scope *storage.Scope, codec storage.Codec[T],
	records Iterator[T], cfg SortConfig[T]) (*Sorted[T], error) {
	err := cfg.Validate()
	if codec == nil {
		err = errors.Join(errors.New("collection: Sort's codec is nil"), err)
	}
	if err != nil {
		_ = records.Close()
		return nil, err
	}
	name := cfg.Name
	if name == "" {
		name = "Sort"
	}
	s, err := NewExternalSorter(tm, scope, codec, emptyCodec{}, SorterConfig[T, struct{}, struct{}]{
		Ordering: cfg.Compare,
		Spill:    cfg.Spill,
		Name:     name,
	})
	if err != nil {
		_ = records.Close()
		return nil, err
	}
	in := storage.FuncIterator(func() (Pair[T, struct{}], bool, error) {
		if records.Next() {
			return Pair[T, struct{}]{Key: records.Value()}, true, nil
		}
		return Pair[T, struct{}]{}, false, records.Err()
	}, records.Close)
	if err := s.InsertAll(ctx, in); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	out, err := s.Iterator(ctx)
	if err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return &Sorted[T]{out: out, s: s}, nil
}

// Sorted is the iterator Sort returns: the records in order, and the sort's spill metrics.
type Sorted[T comparable] struct {
	out Iterator[Pair[T, struct{}]]
	s   *ExternalSorter[T, struct{}, struct{}]
}

// Next implements Iterator.
func (it *Sorted[T]) Next() bool { return it.out.Next() }

// Value implements Iterator.
func (it *Sorted[T]) Value() T { return it.out.Value().Key }

// Err implements Iterator.
func (it *Sorted[T]) Err() error { return it.out.Err() }

// Close implements Iterator: it releases the sort's memory and deletes its spill files.
func (it *Sorted[T]) Close() error { return errors.Join(it.out.Close(), it.s.Close()) }

// Metrics returns the sort's spill metrics so far (spills, bytes spilled, peak memory).
func (it *Sorted[T]) Metrics() SpillMetrics { return it.s.Metrics() }

// emptyCodec encodes struct{} as no bytes: the values of Sort's sorter.
type emptyCodec struct{}

func (emptyCodec) Append(dst []byte, _ struct{}) []byte { return dst }

func (emptyCodec) Decode([]byte) (struct{}, int, error) { return struct{}{}, 0, nil }
