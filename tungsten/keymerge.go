package tungsten

import "errors"

// keyMerger is the final merge of an Aggregator's runs (and its sorted in-memory rest): sources
// of key-value records ([4-byte key length][key][value]) in key order, every key sharing its
// first skip bytes. Like merger it is a binary heap of the sources at their current records, the
// source of the record last returned staying at the top until the next call; it orders them by
// the key's 8 bytes past the shared start, BytesPrefix(key[skip:]), then by key, so that keys
// sharing a long start ("user-1000…") are told apart by a number, not by comparing their bytes.
// It reads spill files directly rather than through source. Its prefix is that number.
type keyMerger struct {
	heap []keyEntry
	skip int
	cur  bool // heap[0] holds the record last returned
	e    error
	all  []source // for close
}

type keyEntry struct {
	pre  uint64 // BytesPrefix(key[skip:])
	rec  []byte
	file *spillReader // the source when it is a spill file
	src  source
}

// newKeyMerger merges srcs, taking them over: close closes them, also after an error.
func newKeyMerger(srcs []source, skip int) (*keyMerger, error) {
	m := &keyMerger{skip: skip, all: srcs, heap: make([]keyEntry, 0, len(srcs))}
	for _, s := range srcs {
		e := keyEntry{src: s}
		if f, ok := s.(fileSource); ok {
			e.file = f.spillReader
		}
		if !m.load(&e) {
			if m.e != nil {
				return m, m.e
			}
			continue
		}
		m.heap = append(m.heap, e)
		h := m.heap
		for i := len(h) - 1; i > 0; {
			p := (i - 1) / 2
			if !h[i].less(&h[p]) {
				break
			}
			h[i], h[p] = h[p], h[i]
			i = p
		}
	}
	return m, nil
}

// load moves e to its source's next record; false at its end or on an error (m.e).
func (m *keyMerger) load(e *keyEntry) bool {
	if e.file != nil {
		if !e.file.next() {
			m.e = e.file.err
			return false
		}
		e.rec = e.file.rec
	} else {
		if !e.src.next() {
			m.e = e.src.err()
			return false
		}
		e.rec = e.src.record()
	}
	e.pre = 0
	if rec := e.rec; len(rec) >= uao {
		if klen := int(order.Uint32(rec) &^ deadKey); m.skip <= klen && klen <= len(rec)-uao {
			e.pre = uint64(prefixAt(rec, uao+m.skip, uao+klen))
		}
	}
	return true
}

func (a *keyEntry) less(b *keyEntry) bool {
	if a.pre != b.pre {
		return a.pre < b.pre
	}
	return compareKeys(a.rec, b.rec) < 0
}

func (m *keyMerger) next() bool {
	if m.e != nil {
		return false
	}
	if m.cur {
		m.cur = false
		h := m.heap
		if !m.load(&h[0]) {
			if m.e != nil {
				return false
			}
			n := len(h) - 1
			h[0] = h[n]
			h[n] = keyEntry{}
			h = h[:n]
			m.heap = h
		}
		// down
		n := len(h)
		for i := 0; ; {
			l, least := 2*i+1, i
			if l >= n {
				break
			}
			if h[l].less(&h[least]) {
				least = l
			}
			if r := l + 1; r < n && h[r].less(&h[least]) {
				least = r
			}
			if least == i {
				break
			}
			h[i], h[least] = h[least], h[i]
			i = least
		}
	}
	if len(m.heap) == 0 {
		return false
	}
	m.cur = true
	return true
}

func (m *keyMerger) record() []byte { return m.heap[0].rec }
func (m *keyMerger) prefix() int64  { return int64(m.heap[0].pre) }
func (m *keyMerger) err() error     { return m.e }
func (m *keyMerger) close() error {
	var errs []error
	for _, s := range m.all {
		errs = append(errs, s.close())
	}
	m.heap, m.cur, m.all = nil, false, nil
	return errors.Join(errs...)
}
