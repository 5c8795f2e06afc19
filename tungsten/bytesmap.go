package tungsten

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/bits"
	"sync"

	"go.uber.org/zap"

	"github.com/spillway/spillway/memory"
	"github.com/spillway/spillway/storage"
)

// MaxCapacity is the most keys a BytesToBytesMap holds (Spark's MAX_CAPACITY, 2^29).
const MaxCapacity = 1 << 29

// deadKey marks, in a record's key-length word, a record replaced by a newer one of the same key
// (Aggregator's grown values); iterators skip it. Spark has no counterpart.
const deadKey = 1 << 31

// MapConfig configures a BytesToBytesMap. Its zero value is Spark's defaults.
type MapConfig struct {
	// InitialCapacity is the number of keys the slot array first holds, rounded up to a power of
	// 2 of at least 64. Default 64.
	InitialCapacity int
	// PageSize is the size of data pages. Default the memory manager's page size.
	PageSize int64
	// LoadFactor is the share of slots used before the array doubles. Default 0.5, which lets the
	// slot array be reused as a sort buffer.
	LoadFactor float64
	// Spill configures the spill files (compression, batches). BatchBytes defaults to 64 KiB:
	// each run being read holds about two batches. In memory.Strict accounting the readers' and
	// writers' buffers are acquired from the task (see the package doc); with
	// memory.SparkAllowances they are not, as in Spark.
	Spill storage.RecordWriterConfig
	// Name names the map in logs and memory reports. Default "BytesToBytesMap".
	Name string
	// Logger receives spill logs. Default: none.
	Logger *zap.Logger
}

// Validate reports every invalid field, naming it and its value (errors.Join).
func (c MapConfig) Validate() error {
	var errs []error
	if c.InitialCapacity < 0 {
		errs = append(errs, fmt.Errorf("tungsten: MapConfig.InitialCapacity %d must be greater than 0 (or 0 for the default)", c.InitialCapacity))
	} else if c.InitialCapacity > MaxCapacity {
		errs = append(errs, fmt.Errorf("tungsten: MapConfig.InitialCapacity %d exceeds maximum capacity of %d", c.InitialCapacity, MaxCapacity))
	}
	if c.PageSize < 0 || c.PageSize > memory.MaxPageSize {
		errs = append(errs, fmt.Errorf("tungsten: MapConfig.PageSize %d cannot exceed %d", c.PageSize, memory.MaxPageSize))
	}
	if c.LoadFactor < 0 || c.LoadFactor >= 1 {
		errs = append(errs, fmt.Errorf("tungsten: MapConfig.LoadFactor %v not in (0, 1)", c.LoadFactor))
	}
	return errors.Join(append(errs, c.Spill.Validate())...)
}

// BytesToBytesMap is Spark's BytesToBytesMap
// (core/src/main/java/org/apache/spark/unsafe/map/BytesToBytesMap.java): an append-only,
// multi-valued hash map of byte strings. Records live in pages of the task's TaskManager as
// [4-byte key+value+4 length][4-byte key length][key][value][8-byte address of the key's previous
// record]; each page starts with a 4-byte record count. An open-addressing array of (record
// address, 64-bit hash) pairs, probed triangularly, indexes the newest record of each key.
//
// It is a memory.Consumer whose Used is exactly its pages and slot array. A map being built never
// spills: when memory is short Append returns false. Its destructive iterator frees pages as it
// leaves them, and another consumer may force the unread pages to disk while it runs.
//
// Use from one goroutine; Close always (it frees the memory and deletes spill files).
type BytesToBytesMap struct {
	base
	cfg   MapConfig
	scope *storage.Scope
	log   *zap.Logger
	seed  maphash.Seed

	array           *longArray // nil once a destructive iterator took it, or after Close
	mask            int
	growthThreshold int
	canGrowArray    bool
	// fullLoadFactor, when above LoadFactor, is the load the array may reach once it cannot grow
	// (Aggregator's policy: spill when the pages are full, not when the slots are half used).
	fullLoadFactor float64
	numKeys        int
	numValues      int
	// link is the size of a record's trailing address of the key's previous record: 8, or 0 in
	// a single-valued map (singleValued), whose records are not chained.
	link          int64
	numProbes     int64
	numKeyLookups int64

	// mu guards the pages and spill files against a forced spill of the destructive iterator.
	mu          sync.Mutex
	dataPages   []*memory.Page
	cur         *memory.Page
	cursor      int64
	spills      []spillFile
	destructive *MapIterator
	// spillHook, when set, is Spill's work instead of destructive's (an inline Aggregator's
	// iterator).
	spillHook func(size int64) (int64, error)
	metrics   SpillMetrics
	closed    bool

	loc Location
}

// NewBytesToBytesMap returns an empty map of task tm that spills into scope (only its destructive
// iterator spills), with its slot array allocated.
func NewBytesToBytesMap(ctx context.Context, tm *memory.TaskManager, scope *storage.Scope, cfg MapConfig) (*BytesToBytesMap, error) {
	if tm == nil || scope == nil {
		return nil, errors.New("tungsten: NewBytesToBytesMap needs a TaskManager and a disk scope")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.InitialCapacity == 0 {
		cfg.InitialCapacity = 64
	}
	if cfg.LoadFactor == 0 {
		cfg.LoadFactor = 0.5
	}
	if cfg.Name == "" {
		cfg.Name = "BytesToBytesMap"
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	m := &BytesToBytesMap{cfg: cfg, scope: scope, log: cfg.Logger.Named("tungsten"), seed: maphash.MakeSeed(), canGrowArray: true, link: 8}
	m.base.init(tm, m, cfg.Name, cfg.PageSize, cfg.Spill)
	m.loc.m = m
	if err := m.allocate(ctx, cfg.InitialCapacity); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *BytesToBytesMap) allocate(ctx context.Context, capacity int) error {
	capacity = max(min(MaxCapacity, 1<<bits.Len(uint(capacity-1))), 64)
	a, err := m.allocateArray(ctx, 2*capacity)
	if err != nil {
		return err
	}
	clear(a.a)
	m.array, m.mask = a, capacity-1
	m.growthThreshold = int(float64(capacity) * m.cfg.LoadFactor)
	return nil
}

// singleValued makes the empty map's records [key+value+4][key length][key][value], without the
// address of the key's previous record (8 bytes less a record): an Append of a defined key then
// points its slot at the new record, leaving the old one unreachable but to iterators (the
// Aggregator marks it dead), and NextValue finds none.
func (m *BytesToBytesMap) singleValued() {
	if m.numValues > 0 || m.cur != nil {
		panic("tungsten: singleValued on a map holding records")
	}
	m.link = 0
}

// NumKeys is the number of distinct keys; NumValues the number of records.
func (m *BytesToBytesMap) NumKeys() int   { return m.numKeys }
func (m *BytesToBytesMap) NumValues() int { return m.numValues }

// Capacity is the number of slots (maxNumKeysIndex).
func (m *BytesToBytesMap) Capacity() int { return m.mask + 1 }

// NumDataPages is the number of data pages held.
func (m *BytesToBytesMap) NumDataPages() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.dataPages)
}

// AvgHashProbesPerKey is the mean number of slots a lookup visited (getAvgHashProbesPerKey).
func (m *BytesToBytesMap) AvgHashProbesPerKey() float64 {
	if m.numKeyLookups == 0 {
		return 0
	}
	return float64(m.numProbes) / float64(m.numKeyLookups)
}

// PeakMemoryUsedBytes is the most page and array bytes the map held at once.
func (m *BytesToBytesMap) PeakMemoryUsedBytes() int64 { return m.peak.Load() }

// Metrics returns the spill counters of the destructive iterator.
func (m *BytesToBytesMap) Metrics() SpillMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.metrics
	s.PeakMemoryUsedBytes = m.peak.Load()
	return s
}

// Hash is the map's hash of a key (a seeded maphash, per map).
func (m *BytesToBytesMap) Hash(key []byte) uint64 { return maphash.Bytes(m.seed, key) }

// Lookup finds key and returns the map's shared Location, valid until the next Lookup
// (lookup). A Location that is not defined can Append the key.
func (m *BytesToBytesMap) Lookup(key []byte) *Location {
	return m.LookupHash(key, m.Hash(key))
}

// LookupHash is Lookup with the caller's hash of key.
func (m *BytesToBytesMap) LookupHash(key []byte, hash uint64) *Location {
	m.safeLookup(key, hash, &m.loc)
	return &m.loc
}

func (m *BytesToBytesMap) safeLookup(key []byte, hash uint64, loc *Location) {
	if m.array == nil {
		panic("tungsten: BytesToBytesMap used after a destructive iterator or Close")
	}
	m.numKeyLookups++
	a, mask := m.array.a, m.mask
	pos, step := int(hash)&mask, 1
	for {
		m.numProbes++
		addr := a[2*pos]
		if addr == 0 {
			loc.set(pos, hash, false, 0)
			return
		}
		if uint64(a[2*pos+1]) == hash {
			loc.set(pos, hash, true, addr)
			if bytes.Equal(loc.key, key) {
				return
			}
		}
		pos = (pos + step) & mask
		step++
	}
}

// touchSlots loads the first slot of each hash, then follows each one's probe sequence to the
// slot of that hash (a few probes at most) and loads the start of the record it points to and
// the byte 8 past its key (the end of an 8-byte value), each group in a tight loop so that the
// cache misses overlap (Go has no prefetch instruction); the lookups that follow find them in
// cache. keyEnds are the keys' ends in the buffer they were encoded into, one key after
// another. It changes nothing.
func (m *BytesToBytesMap) touchSlots(hashes []uint64, keyEnds []int) {
	a, mask := m.array.a, m.mask
	var addrs [64]int64
	hashes = hashes[:min(len(hashes), len(addrs))]
	for i, h := range hashes {
		addrs[i] = a[2*(int(h)&mask)]
	}
	for i, h := range hashes {
		addr := addrs[i]
		for pos, step := int(h)&mask, 1; addr != 0 && uint64(a[2*pos+1]) != h && step <= touchProbes; step++ {
			pos = (pos + step) & mask
			addr = a[2*pos]
		}
		addrs[i] = addr
	}
	var sink byte
	start := 0
	for i, addr := range addrs[:len(hashes)] {
		klen := int64(keyEnds[i] - start)
		start = keyEnds[i]
		if addr == 0 {
			continue
		}
		if n := memory.DecodePageNumber(addr); n < len(m.table) {
			data, off := m.table[n], memory.DecodeOffset(addr)
			if end := off + 2*uao + klen + 7; uint64(end) < uint64(len(data)) {
				sink |= data[off] | data[end]
			}
		}
	}
	m.base.touched = sink
}

// touchProbes is how many slots past the first touchSlots follows a probe sequence.
const touchProbes = 3

// Location is a slot of the map and, when defined, the record it points to (Spark's Location).
type Location struct {
	m       *BytesToBytesMap
	pos     int
	hash    uint64
	defined bool
	addr    int64
	key     []byte
	value   []byte
}

func (l *Location) set(pos int, hash uint64, defined bool, addr int64) {
	l.pos, l.hash, l.defined, l.addr = pos, hash, defined, addr
	l.key, l.value = nil, nil
	if defined {
		l.key, l.value = l.m.kv(addr)
	}
}

// IsDefined reports whether the key was found.
func (l *Location) IsDefined() bool { return l.defined }

// Key is the record's key, aliasing its page.
func (l *Location) Key() []byte { return l.key }

// Value is the record's value, aliasing its page: writes to it update the map in place.
func (l *Location) Value() []byte { return l.value }

// KeyIndex is the slot index (getKeyIndex), in [0, Capacity).
func (l *Location) KeyIndex() int { return l.pos }

// NextValue moves to the key's previous value and reports whether there is one (values are
// chained newest to oldest).
func (l *Location) NextValue() bool {
	if l.m.link == 0 {
		return false
	}
	_, page, off := l.m.locate(l.addr)
	next := int64(order.Uint64(page[off+uao+int64(order.Uint32(page[off:])):]))
	if next == 0 {
		return false
	}
	l.addr = next
	l.key, l.value = l.m.kv(next)
	return true
}

// locate resolves a record address to its page bytes and offset, panicking for a page the map
// does not hold or an offset outside it.
func (m *BytesToBytesMap) locate(addr int64) (int, []byte, int64) {
	n, off := memory.DecodePageNumber(addr), memory.DecodeOffset(addr)
	var data []byte
	if n < len(m.table) {
		data = m.table[n]
	}
	if data == nil {
		panic(fmt.Sprintf("tungsten: %s: address %#x points into page %d, which is not held", m.name, addr, n))
	}
	if off+2*uao > int64(len(data)) {
		panic(fmt.Sprintf("tungsten: %s: address %#x: offset %d past the end of page %d (%d bytes)", m.name, addr, off, n, len(data)))
	}
	return n, data, off
}

// kv returns the key and value of the record at addr.
func (m *BytesToBytesMap) kv(addr int64) (key, value []byte) {
	_, data, off := m.locate(addr)
	total := int64(order.Uint32(data[off:]))
	klen := int64(order.Uint32(data[off+uao:]) &^ deadKey)
	end := off + uao + total
	if klen+uao > total || end+m.link > int64(len(data)) {
		panic(fmt.Sprintf("tungsten: %s: address %#x: record of %d bytes (key %d) at offset %d overruns page of %d bytes",
			m.name, addr, total, klen, off, len(data)))
	}
	ks := off + 2*uao
	return data[ks : ks+klen : ks+klen], data[ks+klen : end : end]
}

// Append adds a record for the key this Location was looked up with (append): a new key, or a
// new value of a defined key, which becomes the key's newest. It returns false, having written
// nothing, when memory is short (no page can be had, or the array is full and cannot grow); an
// error only for a cancelled ctx or a failed allocation other than out of memory.
func (l *Location) Append(ctx context.Context, key, value []byte) (bool, error) {
	m := l.m
	if m.array == nil {
		panic("tungsten: BytesToBytesMap.Append after a destructive iterator or Close")
	}
	if len(key)+len(value)+uao > MaxRecordSize {
		return false, fmt.Errorf("%w: key %d and value %d bytes, the maximum is %d in all", ErrRecordTooLarge, len(key), len(value), MaxRecordSize)
	}
	if m.numKeys == MaxCapacity-1 || (!m.canGrowArray && m.numKeys >= m.growthThreshold) {
		return false, nil
	}
	// The spill writer's buffers for the record as spilled ([key length][key][value]) first.
	if ok, err := m.reserveWriter(ctx, int64(uao+len(key)+len(value))); !ok {
		return false, err
	}
	recordLength := int64(2*uao+len(key)+len(value)) + m.link
	if m.cur == nil || m.cur.Size()-m.cursor < recordLength {
		ok, err := m.acquireNewPage(ctx, recordLength+uao)
		if !ok {
			return false, err
		}
	}
	data := m.cur.Bytes()
	off := m.cursor
	order.PutUint32(data[off:], uint32(len(key)+len(value)+uao))
	order.PutUint32(data[off+uao:], uint32(len(key)))
	copy(data[off+2*uao:], key)
	copy(data[off+2*uao+int64(len(key)):], value)
	if m.link > 0 {
		var next int64
		if l.defined {
			next = m.array.a[2*l.pos]
		}
		order.PutUint64(data[off+recordLength-8:], uint64(next))
	}
	order.PutUint32(data, order.Uint32(data)+1)
	m.cursor += recordLength
	addr := memory.EncodePageNumberAndOffset(m.cur.Number(), off)
	m.array.a[2*l.pos] = addr
	m.numValues++
	l.addr = addr
	l.key, l.value = m.kv(addr)
	if !l.defined {
		m.numKeys++
		m.array.a[2*l.pos+1] = int64(l.hash)
		l.defined = true
		if m.numKeys >= m.growthThreshold && m.canGrowArray {
			if m.Capacity() < MaxCapacity {
				if err := m.growAndRehash(ctx); err != nil {
					if !errors.Is(err, memory.ErrOutOfMemory) {
						return true, err
					}
					m.cannotGrow()
				}
			} else {
				m.cannotGrow()
			}
		}
	}
	return true, nil
}

// cannotGrow stops growth; with fullLoadFactor set, the array then fills up to that load.
func (m *BytesToBytesMap) cannotGrow() {
	m.canGrowArray = false
	if m.fullLoadFactor > m.cfg.LoadFactor {
		m.growthThreshold = int(float64(m.Capacity()) * m.fullLoadFactor)
	}
}

// acquireNewPage starts a data page of at least required bytes; false when memory is short.
func (m *BytesToBytesMap) acquireNewPage(ctx context.Context, required int64) (bool, error) {
	p, err := m.allocatePage(ctx, required)
	if err != nil {
		if errors.Is(err, memory.ErrOutOfMemory) {
			return false, nil
		}
		return false, err
	}
	order.PutUint32(p.Bytes(), 0)
	m.mu.Lock()
	m.dataPages = append(m.dataPages, p)
	m.cur, m.cursor = p, uao
	m.mu.Unlock()
	return true, nil
}

// growAndRehash doubles the slot array and reinserts every key by its stored hash. On error the
// old array stays.
func (m *BytesToBytesMap) growAndRehash(ctx context.Context) error {
	return m.regrow(ctx, func(old []int64) {
		a, mask := m.array.a, m.mask
		for i := 0; i < len(old); i += 2 {
			addr := old[i]
			if addr == 0 {
				continue
			}
			hash := old[i+1]
			pos, step := int(hash)&mask, 1
			for a[2*pos] != 0 {
				pos = (pos + step) & mask
				step++
			}
			a[2*pos], a[2*pos+1] = addr, hash
		}
	})
}

// regrow doubles the slot array, has rehash move the old array's slots into the new one, and
// frees the old array. On error the old array stays.
func (m *BytesToBytesMap) regrow(ctx context.Context, rehash func(old []int64)) error {
	old, oldCap := m.array, m.Capacity()
	if err := m.allocate(ctx, min(2*oldCap, MaxCapacity)); err != nil {
		m.array, m.mask = old, oldCap-1
		m.growthThreshold = int(float64(oldCap) * m.cfg.LoadFactor)
		return err
	}
	rehash(old.a)
	m.freeArray(old)
	return nil
}

// markDead marks the record at addr as replaced: iterators skip it.
func (m *BytesToBytesMap) markDead(addr int64) {
	_, data, off := m.locate(addr)
	order.PutUint32(data[off+uao:], order.Uint32(data[off+uao:])|deadKey)
	m.numValues--
}

// Spill is memory.Consumer's Spill: a running destructive iterator writes its unread pages to
// disk (MapIterator.spill), an inline Aggregator's iterator its unread keys; otherwise nothing,
// as in Spark (a map being built never spills).
func (m *BytesToBytesMap) Spill(size int64, trigger memory.Consumer) (int64, error) {
	m.mu.Lock()
	it, hook := m.destructive, m.spillHook
	m.mu.Unlock()
	switch {
	case trigger == memory.Consumer(m):
		return 0, nil
	case hook != nil:
		return hook(size)
	case it == nil:
		return 0, nil
	}
	return it.Spill(size)
}

// Reset empties the map for reuse (reset): it frees the pages and the slot array and allocates
// a slot array of the initial capacity, which may fail; Close still works after a failed Reset.
func (m *BytesToBytesMap) Reset(ctx context.Context) error {
	m.reset(false)
	m.canGrowArray = true
	return m.allocate(ctx, m.cfg.InitialCapacity)
}

// reset frees the pages and, unless keepArray, the slot array (else it is cleared for reuse).
func (m *BytesToBytesMap) reset(keepArray bool) {
	m.updatePeak()
	m.numKeys, m.numValues = 0, 0
	if m.array != nil {
		if keepArray {
			clear(m.array.a)
		} else {
			m.freeArray(m.array)
			m.array = nil
		}
	}
	m.mu.Lock()
	for _, p := range m.dataPages {
		m.freePage(p)
	}
	m.dataPages, m.cur, m.cursor = nil, nil, 0
	m.mu.Unlock()
}

// Close frees the slot array and every page and deletes the spill files (free). It is
// idempotent.
func (m *BytesToBytesMap) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	it := m.destructive
	m.mu.Unlock()
	var errs []error
	if it != nil {
		errs = append(errs, it.Close())
	}
	m.reset(false)
	m.mu.Lock()
	for _, f := range m.spills {
		if err := f.remove(m.scope); err != nil {
			m.log.Warn("was unable to delete spill file", zap.Stringer("block", f.id), zap.Error(err))
			errs = append(errs, err)
		}
	}
	m.spills = nil
	m.mu.Unlock()
	m.writer.close()
	return errors.Join(errs...)
}
