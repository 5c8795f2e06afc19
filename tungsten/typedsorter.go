package tungsten

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// Sorter sorts key-value pairs by key on an ExternalSorter: each pair is encoded into a page as
// [4-byte key length][key][value] with its key prefix (the key's first 8 bytes), so the task's
// memory is the exact bytes of its pages and pointer array. Keys whose prefix is the whole key
// (Int64Key) sort by radix sort alone; others compare the key bytes when prefixes tie. With
// Int64Key keys and values each pair is kept in the sort array itself, 16 bytes, with no page
// (inlinesorter.go).
//
// It mirrors collection.ExternalSorter's use: Insert, then Iterator once, then Close (always).
// Equal keys come back in no particular order. Not safe for concurrent use.
type Sorter[K, V any] struct {
	s      *ExternalSorter
	keys   KeyCodec[K]
	values storage.Codec[V]
	buf    []byte
	out    *sortedPairs[K, V]
}

// NewSorter returns an empty sorter of task tm spilling into scope. cfg's Prefix.Descending
// sorts in descending key order; its Records and CanUseRadixSort are set from keys.
func NewSorter[K, V any](ctx context.Context, tm *memory.TaskManager, scope *storage.Scope, keys KeyCodec[K],
	values storage.Codec[V], cfg SorterConfig) (*Sorter[K, V], error) {
	if keys == nil || values == nil {
		return nil, errors.New("tungsten: NewSorter needs key and value codecs")
	}
	cfg.Prefix = PrefixComparator{Descending: cfg.Prefix.Descending}
	cfg.Records, cfg.CanUseRadixSort = compareKeys, keys.PrefixIsKey()
	if cfg.Prefix.Descending {
		cfg.Records = func(a, b []byte) int { return compareKeys(b, a) }
	}
	if cfg.Name == "" {
		cfg.Name = "Sorter"
	}
	s, err := NewExternalSorter(ctx, tm, scope, cfg)
	if err != nil {
		return nil, err
	}
	out := &Sorter[K, V]{s: s, keys: keys, values: values}
	_, intKeys := any(keys).(Int64Key)
	if _, ok := any(values).(Int64Key); ok && intKeys {
		s.setInline()
	}
	return out, nil
}

// Insert adds a pair. It may spill the sorter and may block acquiring memory (ctx cancels).
func (s *Sorter[K, V]) Insert(ctx context.Context, k K, v V) error {
	if s.s.inline {
		return s.s.insertInline(ctx, inlineWord(asInt64(k)), asInt64(v))
	}
	b := append(s.buf[:0], 0, 0, 0, 0)
	b = s.keys.Append(b, k)
	klen := len(b) - uao
	order.PutUint32(b, uint32(klen))
	b = s.values.Append(b, v)
	s.buf = b
	return s.s.InsertRecord(ctx, b, BytesPrefix(b[uao:uao+klen]), false)
}

// InsertAll inserts every pair of records (and closes it), as Insert does.
func (s *Sorter[K, V]) InsertAll(ctx context.Context, records storage.Iterator[Pair[K, V]]) (err error) {
	defer func() { err = errors.Join(err, records.Close()) }()
	if s.s.inline {
		return s.insertInlineAll(ctx, records)
	}
	for n := 1; records.Next(); n++ {
		p := records.Value()
		if err := s.Insert(ctx, p.Key, p.Value); err != nil {
			return err
		}
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	return records.Err()
}

// insertInlineAll is InsertAll for inline pairs: after each insert that checks everything, the
// pairs that fit the array before a threshold or a growth is due go straight into it.
func (s *Sorter[K, V]) insertInlineAll(ctx context.Context, records storage.Iterator[Pair[K, V]]) error {
	es := s.s
	room := 0
	for n := 1; records.Next(); n++ {
		p := records.Value()
		w, v := inlineWord(asInt64(p.Key)), asInt64(p.Value)
		if room > 0 {
			es.inMem.appendInline(v, int64(w^es.flip))
			room--
		} else {
			if err := es.insertInline(ctx, w, v); err != nil {
				return err
			}
			room = es.inlineRoom()
		}
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	return records.Err()
}

// Used is the bytes of the pages and pointer array held.
func (s *Sorter[K, V]) Used() int64 { return s.s.Used() }

// Metrics returns the spill counters.
func (s *Sorter[K, V]) Metrics() SpillMetrics { return s.s.Metrics() }

// Unwrap is the ExternalSorter underneath (the task's memory.Consumer).
func (s *Sorter[K, V]) Unwrap() *ExternalSorter { return s.s }

// Iterator returns the pairs in key order (once).
func (s *Sorter[K, V]) Iterator(ctx context.Context) (storage.Iterator[Pair[K, V]], error) {
	it, err := s.s.SortedIterator(ctx)
	if err != nil {
		return nil, err
	}
	s.out = &sortedPairs[K, V]{s: s, it: it}
	return s.out, nil
}

// Close frees the memory and deletes the spill files. It is idempotent.
func (s *Sorter[K, V]) Close() error { return s.s.Close() }

type sortedPairs[K, V any] struct {
	s   *Sorter[K, V]
	it  *SortedIterator
	cur Pair[K, V]
	err error
}

func (p *sortedPairs[K, V]) Next() bool {
	if p.err != nil || !p.it.Next() {
		if p.err == nil {
			p.err = p.it.Err()
		}
		return false
	}
	rec := p.it.Record()
	if p.s.s.inline {
		if len(rec) != inlineRecordBytes || order.Uint32(rec) != 8 {
			p.err = fmt.Errorf("%w: tungsten: %s: record of %d bytes, want an 8-byte key and value", storage.ErrCorrupt, p.s.s.name, len(rec))
			return false
		}
		p.cur = Pair[K, V]{Key: fromInt64[K](int64(inlineWord(int64(binary.BigEndian.Uint64(rec[uao:]))))),
			Value: fromInt64[V](int64(inlineWord(int64(binary.BigEndian.Uint64(rec[uao+8:])))))}
		return true
	}
	kb, vb, err := splitKV(rec)
	if err == nil {
		p.cur, err = decodePair(p.s.keys, p.s.values, kb, vb)
	}
	p.err = err
	return err == nil
}
func (p *sortedPairs[K, V]) Value() Pair[K, V] { return p.cur }
func (p *sortedPairs[K, V]) Err() error        { return p.err }
func (p *sortedPairs[K, V]) Close() error      { return p.it.Close() }
