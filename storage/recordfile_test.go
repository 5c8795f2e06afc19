package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

var compressions = []Compression{CompressionNone, CompressionS2, CompressionZstd}

// testRecords returns n records of varying, compressible content (some empty, some large).
func testRecords(rng *rand.Rand, n int) [][]byte {
	recs := make([][]byte, n)
	for i := range recs {
		size := rng.IntN(64)
		if i%97 == 0 {
			size = 0
		}
		if i%1013 == 5 {
			size = 5000 + rng.IntN(3000)
		}
		rec := make([]byte, size)
		for j := range rec {
			rec[j] = "abcdefgh"[rng.IntN(8)]
		}
		recs[i] = rec
	}
	return recs
}

func writeRecords(t testing.TB, w io.Writer, cfg RecordWriterConfig, recs [][]byte) *RecordWriter {
	t.Helper()
	rw, err := NewRecordWriter(w, cfg)
	require.NoError(t, err)
	for _, r := range recs {
		require.NoError(t, rw.Write(r))
	}
	require.NoError(t, rw.Close())
	return rw
}

func readAll(r *RecordReader) ([][]byte, error) {
	var out [][]byte
	for rec, err := range r.All() {
		if err != nil {
			return out, err
		}
		out = append(out, bytes.Clone(rec))
	}
	return out, nil
}

// scanBatches lists the batches of r with ScanBatches, failing on an error.
func scanBatches(t *testing.T, r io.ReaderAt, size int64) []BatchInfo {
	t.Helper()
	var out []BatchInfo
	for b, err := range ScanBatches(r, size) {
		require.NoError(t, err)
		out = append(out, b)
	}
	return out
}

func TestRecordFileRoundTrip(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, comp := range compressions {
		for _, tc := range []struct {
			n            int
			batchRecords int
			batchBytes   int
		}{{0, 0, 0}, {1, 0, 0}, {2500, 0, 0}, {2500, 7, 0}, {3000, 0, 4096}} {
			t.Run(fmt.Sprintf("%s/n=%d/batch=%d,%dB", comp, tc.n, tc.batchRecords, tc.batchBytes), func(t *testing.T) {
				recs := testRecords(rng, tc.n)
				var buf bytes.Buffer
				rw := writeRecords(t, &buf, RecordWriterConfig{Compression: comp, BatchRecords: tc.batchRecords, BatchBytes: tc.batchBytes}, recs)
				require.Equal(t, int64(buf.Len()), rw.BytesWritten())
				require.Equal(t, int64(tc.n), rw.Records())
				var sum, recSum int64
				batches := scanBatches(t, bytes.NewReader(buf.Bytes()), rw.BytesWritten())
				require.Len(t, batches, rw.NumBatches())
				for i, b := range batches {
					require.Equal(t, sum, b.Offset, "batch %d offset", i)
					sum += b.Size
					recSum += int64(b.Records)
				}
				require.Equal(t, rw.BytesWritten(), sum)
				require.Equal(t, rw.Records(), recSum)

				for _, size := range []int64{int64(buf.Len()), -1} {
					r := NewRecordReader(bytes.NewReader(buf.Bytes()), size)
					got, err := readAll(r)
					require.NoError(t, err)
					require.Equal(t, len(recs), len(got))
					for i := range recs {
						require.True(t, bytes.Equal(recs[i], got[i]), "record %d", i)
					}
					require.Equal(t, int64(tc.n), r.Records())
					require.Equal(t, int64(buf.Len()), r.Offset())
					require.NoError(t, r.Close())
				}
			})
		}
	}
}

// SP-01 (SpillableSuite "spill method in ExternalAppendOnlyMap"): bytes written == file length and
// records written == count, for 0, 10000 and 10001 records with the default batch size 10000.
func TestSP01_SpillMetricsMatchFile(t *testing.T) {
	for _, tc := range []struct{ n, batches int }{{0, 0}, {10000, 1}, {10001, 2}} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "temp_local_1")
			f, err := os.Create(path)
			require.NoError(t, err)
			rw, err := NewRecordWriter(f, RecordWriterConfig{})
			require.NoError(t, err)
			tw := NewTypedWriter(rw, NewPairCodec[int, int](VarintCodec[int]{}, VarintCodec[int]{}))
			for i := range tc.n {
				require.NoError(t, tw.Write(Pair[int, int]{i, i}))
			}
			require.NoError(t, rw.Close())
			require.NoError(t, f.Close())
			st, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, st.Size(), rw.BytesWritten())
			require.Equal(t, int64(tc.n), rw.Records())
			require.Equal(t, tc.batches, rw.NumBatches())
			f, err = os.Open(path)
			require.NoError(t, err)
			defer f.Close()
			require.Len(t, scanBatches(t, f, st.Size()), tc.batches)
		})
	}
}

// EAOM-14 (derived from ExternalAppendOnlyMap's spill file format): batch size 10 with 25 records gives batches of 10, 10 and 5
// records whose sizes sum to the file length; each batch can be read alone by offset.
func TestEAOM14_SpillFileBatches(t *testing.T) {
	for _, comp := range compressions {
		t.Run(comp.String(), func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "spill"))
			require.NoError(t, err)
			defer f.Close()
			rw, err := NewRecordWriter(f, RecordWriterConfig{Compression: comp, BatchRecords: 10})
			require.NoError(t, err)
			tw := NewTypedWriter(rw, NewPairCodec[int64, string](VarintCodec[int64]{}, StringCodec{}))
			for i := range 25 {
				require.NoError(t, tw.Write(Pair[int64, string]{int64(i), fmt.Sprint("v", i)}))
			}
			require.NoError(t, rw.Close())
			st, err := f.Stat()
			require.NoError(t, err)
			var records []int
			var sum int64
			batches := scanBatches(t, f, rw.BytesWritten())
			for _, b := range batches {
				records = append(records, b.Records)
				sum += b.Size
			}
			require.Equal(t, []int{10, 10, 5}, records)
			require.Equal(t, st.Size(), sum)

			next := int64(0)
			for bi, b := range batches {
				tr := NewTypedReader(NewRecordReader(io.NewSectionReader(f, b.Offset, b.Size), b.Size),
					NewPairCodec[int64, string](VarintCodec[int64]{}, StringCodec{}))
				n := 0
				for p, err := range tr.All() {
					require.NoError(t, err)
					require.Equal(t, Pair[int64, string]{next, fmt.Sprint("v", next)}, p, "batch %d", bi)
					next++
					n++
				}
				require.Equal(t, b.Records, n)
				require.NoError(t, tr.Reader().Close())
			}
			require.Equal(t, int64(25), next)
		})
	}
}

// Every single flipped byte and every truncation is reported as ErrCorrupt, never a misread.
func TestRecordFileCorruption(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, comp := range compressions {
		t.Run(comp.String(), func(t *testing.T) {
			var buf bytes.Buffer
			recs := testRecords(rng, 40)
			writeRecords(t, &buf, RecordWriterConfig{Compression: comp, BatchRecords: 16}, recs)
			data := buf.Bytes()
			for i := range data {
				bad := bytes.Clone(data)
				bad[i] ^= 1 << (i % 8)
				_, err := readAll(NewRecordReader(bytes.NewReader(bad), int64(len(bad))))
				require.ErrorIs(t, err, ErrCorrupt, "flip at byte %d of %d", i, len(data))
			}
			for cut := range data {
				_, err := readAll(NewRecordReader(bytes.NewReader(data[:cut]), int64(len(data))))
				require.ErrorIs(t, err, ErrCorrupt, "truncated to %d of %d", cut, len(data))
			}
		})
	}
}

func TestRecordReaderErrorMessages(t *testing.T) {
	var buf bytes.Buffer
	writeRecords(t, &buf, RecordWriterConfig{Compression: CompressionNone}, [][]byte{[]byte("hello"), []byte("world")})
	data := buf.Bytes()
	tests := []struct {
		name string
		data []byte
		size int64
		msg  string
	}{
		{"truncated header", data[:10], -1, "truncated batch header at offset 0: 10 of 24 bytes"},
		{"truncated payload", data[:30], -1, "truncated batch payload at offset 24: 6 of 12 bytes"},
		{"short stream", data, int64(len(data)) + 24, fmt.Sprintf("record data ends after %d bytes, expected %d", len(data), len(data)+24)},
		{"past section end", data, int64(len(data)) - 1, fmt.Sprintf("batch at offset 0 of %d bytes runs past the end of the %d-byte data", len(data), len(data)-1)},
		{"bad magic", append([]byte("XX"), data[2:]...), -1, "bad batch magic"},
		{"payload flip", flip(data, 30), -1, "batch payload checksum mismatch at offset 0 (12 bytes)"},
		{"header flip", flip(data, 5), -1, "batch header checksum mismatch at offset 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readAll(NewRecordReader(bytes.NewReader(tt.data), tt.size))
			require.ErrorIs(t, err, ErrCorrupt)
			require.ErrorContains(t, err, tt.msg)
		})
	}
	// With an unknown size a stream cut at a batch boundary looks complete (documented): the
	// reader is given the size whenever it is known.
	got, err := readAll(NewRecordReader(bytes.NewReader(nil), -1))
	require.NoError(t, err)
	require.Empty(t, got)
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x10
	return c
}

func TestRecordReaderStopsAtSize(t *testing.T) {
	var buf bytes.Buffer
	rw := writeRecords(t, &buf, RecordWriterConfig{}, [][]byte{[]byte("a"), []byte("b")})
	buf.WriteString("trailing garbage that belongs to the next section")
	src := bytes.NewReader(buf.Bytes())
	got, err := readAll(NewRecordReader(src, rw.BytesWritten()))
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte("a"), []byte("b")}, got)
	require.Equal(t, int64(buf.Len())-rw.BytesWritten(), int64(src.Len()), "the reader must not consume past its size")
}

func TestTypedReaderRejectsTrailingBytes(t *testing.T) {
	var buf bytes.Buffer
	writeRecords(t, &buf, RecordWriterConfig{}, [][]byte{{1, 9}})
	tr := NewTypedReader(NewRecordReader(bytes.NewReader(buf.Bytes()), int64(buf.Len())), BoolCodec{})
	_, err := tr.Next()
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "1 bytes left after the value of 1 bytes")
	buf.Reset()
	writeRecords(t, &buf, RecordWriterConfig{}, [][]byte{{3, 'a'}})
	tr2 := NewTypedReader(NewRecordReader(bytes.NewReader(buf.Bytes()), int64(buf.Len())), StringCodec{})
	_, err = tr2.Next()
	require.ErrorIs(t, err, ErrCorrupt)
}

type failingWriter struct {
	left int
	err  error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, w.err
	}
	w.left -= len(p)
	return len(p), nil
}

func TestRecordWriterErrorsAreSticky(t *testing.T) {
	boom := errors.New("disk full")
	fw := &failingWriter{left: 40 << 10, err: boom}
	rw, err := NewRecordWriter(fw, RecordWriterConfig{Compression: CompressionNone, BatchRecords: 100})
	require.NoError(t, err)
	rec := bytes.Repeat([]byte{'x'}, 1000)
	var werr error
	for i := 0; i < 1000 && werr == nil; i++ {
		werr = rw.Write(rec)
	}
	require.ErrorIs(t, werr, boom)
	require.ErrorContains(t, werr, "storage: writing batch")
	require.ErrorIs(t, rw.Write(rec), boom)
	require.ErrorIs(t, rw.Close(), boom)
	require.ErrorIs(t, rw.Close(), boom)
}

func TestRecordWriterConfigValidate(t *testing.T) {
	tests := []struct {
		cfg RecordWriterConfig
		msg string
	}{
		{RecordWriterConfig{}, ""},
		{RecordWriterConfig{Compression: 9}, "Compression 9 unknown"},
		{RecordWriterConfig{BatchRecords: -1}, "BatchRecords -1 is negative"},
		{RecordWriterConfig{BatchBytes: 1 << 30}, "BatchBytes 1073741824 not in [0, 67108864]"},
		{RecordWriterConfig{BufferSize: 4096}, "BufferSize 4096 below the minimum 32768"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if tt.msg == "" {
			require.NoError(t, err)
			continue
		}
		require.ErrorContains(t, err, tt.msg)
		_, err = NewRecordWriter(io.Discard, tt.cfg)
		require.ErrorContains(t, err, tt.msg)
	}
	rw, err := NewRecordWriter(io.Discard, RecordWriterConfig{})
	require.NoError(t, err)
	require.NoError(t, rw.Close())
	require.ErrorContains(t, rw.Write([]byte("x")), "used after Close")
}

// FuzzRecordReader: arbitrary bytes never panic the reader; every failure wraps ErrCorrupt; and
// every batch that reads back re-encodes, with its codec, to exactly the bytes it came from.
func FuzzRecordReader(f *testing.F) {
	// Small seeds (two batches, about 200 bytes) keep each execution, and above all the
	// minimization of each new interesting input, which costs executions quadratic in its
	// length, cheap.
	rng := rand.New(rand.NewPCG(1, 2))
	for _, comp := range compressions {
		var buf bytes.Buffer
		writeRecords(f, &buf, RecordWriterConfig{Compression: comp, BatchRecords: 2}, testRecords(rng, 4))
		f.Add(buf.Bytes())
	}
	f.Add([]byte{})
	f.Add(craftBatch(codecS2, 1<<30, 1, append(binary.AppendUvarint(nil, 1<<30), make([]byte, 13)...)))
	f.Add(craftBatch(codecZstd, 1<<20, 1, zstdZeros(16, 1<<20)))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Also read a copy whose checksums are recomputed, so mutations get past the CRCs and
		// exercise the header checks, decompressors and record framing.
		for _, data := range [][]byte{data, fixCRCs(data)} {
			checkRecordData(t, data)
		}
	})
}

func checkRecordData(t *testing.T, data []byte) {
	{
		for _, size := range []int64{int64(len(data)), -1} {
			r := NewRecordReader(bytes.NewReader(data), size)
			type batch struct {
				at    int64
				codec byte
				recs  [][]byte
			}
			var batches []batch
			var err error
			for {
				var rec []byte
				rec, err = r.Next()
				if err != nil {
					break
				}
				if len(batches) == 0 || batches[len(batches)-1].at != r.batchAt {
					batches = append(batches, batch{at: r.batchAt, codec: r.hdr[3]})
				}
				b := &batches[len(batches)-1]
				b.recs = append(b.recs, bytes.Clone(rec))
			}
			require.NoError(t, r.Close())
			if size >= 0 {
				checkScanBatches(t, data, err == io.EOF, func() (at []int64) {
					for _, b := range batches {
						at = append(at, b.at)
					}
					return at
				}())
			}
			if err != io.EOF {
				require.ErrorIs(t, err, ErrCorrupt)
				continue
			}
			var re bytes.Buffer
			for _, b := range batches {
				comp := map[byte]Compression{codecNone: CompressionNone, codecS2: CompressionS2, codecZstd: CompressionZstd}[b.codec]
				raw := 0 // BatchBytes above the batch's payload, not more: the writer preallocates it
				for _, rec := range b.recs {
					raw += uvarintLen(len(rec)) + len(rec)
				}
				writeRecords(t, &re, RecordWriterConfig{Compression: comp, BatchRecords: len(b.recs), BatchBytes: min(raw+1, maxBatchBytes)}, b.recs)
			}
			require.True(t, bytes.Equal(data, re.Bytes()), "re-encoding what was read:\n%x\n%x", data, re.Bytes())
		}
	}
}

// checkScanBatches checks ScanBatches over data against a reader of it: a failure wraps
// ErrCorrupt, and when the reader read the data whole (read) it lists the batches the reader
// read, which start at offsets at, and no error.
func checkScanBatches(t *testing.T, data []byte, read bool, at []int64) {
	var got []int64
	for b, err := range ScanBatches(bytes.NewReader(data), int64(len(data))) {
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			require.False(t, read, "ScanBatches fails on data a reader reads: %v", err)
			return
		}
		require.Positive(t, b.Records)
		got = append(got, b.Offset)
	}
	if read {
		require.Equal(t, at, got)
	}
}

// fixCRCs returns a copy of data in which every frame's payload and header checksums are
// recomputed (frames found by following the stored-length fields).
func fixCRCs(data []byte) []byte {
	d := bytes.Clone(data)
	tab := crc32.MakeTable(crc32.Castagnoli)
	for off := 0; off+BatchHeaderSize <= len(d); {
		h := d[off : off+BatchHeaderSize]
		n := int(min(uint64(binary.LittleEndian.Uint32(h[4:])), uint64(len(d)-off-BatchHeaderSize)))
		binary.LittleEndian.PutUint32(h[16:], crc32.Checksum(d[off+BatchHeaderSize:off+BatchHeaderSize+n], tab))
		binary.LittleEndian.PutUint32(h[20:], crc32.Checksum(h[:20], tab))
		off += BatchHeaderSize + n
	}
	return d
}

// Compressed writers and readers start no goroutines (zstd is used through EncodeAll/DecodeAll
// with concurrency 1) and Close releases the codec state.
func TestRecordFileLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	for _, comp := range compressions {
		var buf bytes.Buffer
		writeRecords(t, &buf, RecordWriterConfig{Compression: comp}, testRecords(rand.New(rand.NewPCG(1, 1)), 100))
		r := NewRecordReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		_, err := readAll(r)
		require.NoError(t, err)
		require.NoError(t, r.Close())
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), before, "goroutines left behind")
}

// craftBatch frames payload as one batch with the given codec and claimed raw length and record
// count, with valid checksums: what a hostile or fuzzed file looks like past the CRCs.
func craftBatch(codec byte, rawLen, count uint32, payload []byte) []byte {
	h := make([]byte, BatchHeaderSize, BatchHeaderSize+len(payload))
	h[0], h[1], h[2], h[3] = batchMagic0, batchMagic1, batchVersion, codec
	binary.LittleEndian.PutUint32(h[4:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[8:], rawLen)
	binary.LittleEndian.PutUint32(h[12:], count)
	return fixCRCs(append(h, payload...))
}

// zstdZeros returns a zstd frame of n RLE blocks of 128 KiB zeros (n × 4 bytes decoding to n ×
// 128 KiB: a decompression bomb), with window 1 MiB and the content size stated as fcs if it is
// non-negative.
func zstdZeros(n int, fcs int64) []byte {
	f := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 10 << 3} // magic, descriptor, window 2^(10+10)
	if fcs >= 0 {
		f[4] = 3 << 6 // an 8-byte content size follows the window
		f = binary.LittleEndian.AppendUint64(f, uint64(fcs))
	}
	for i := range n {
		hdr := uint32(1<<17)<<3 | 1<<1 // block size, type RLE
		if i == n-1 {
			hdr |= 1 // last block
		}
		f = append(f, byte(hdr), byte(hdr>>8), byte(hdr>>16), 0)
	}
	return f
}

// totalAlloc returns the bytes f allocates (the tests of a package run one at a time).
func totalAlloc(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Crafted batches whose header or compressed stream claims a huge payload are ErrCorrupt before
// anything near the claim is allocated: decompression never allocates more than the header's
// raw length, which is at most maxCompressedRaw for a compressed batch.
func TestRecordReaderRejectsBombs(t *testing.T) {
	const gib = 1 << 30
	// 42 bytes: a header claiming 1 GiB and an S2 block whose length prefix claims the same.
	s2Claim := craftBatch(codecS2, gib, 1, append(binary.AppendUvarint(nil, gib), make([]byte, 13)...))
	require.Len(t, s2Claim, 42)
	bomb := zstdZeros(8192, -1) // 32 KiB decoding to 1 GiB
	tests := []struct {
		name string
		data []byte
		msg  string
	}{
		{"s2 claims 1 GiB", s2Claim, fmt.Sprintf("claims %d raw bytes, above the limit %d", gib, maxCompressedRaw)},
		{"s2 block longer than its header", craftBatch(codecS2, 1000, 1, append(binary.AppendUvarint(nil, gib), make([]byte, 13)...)),
			fmt.Sprintf("s2 decoded length %d (err <nil>), header says 1000", gib)},
		{"zstd bomb claims 1 GiB", craftBatch(codecZstd, gib, 1, bomb), fmt.Sprintf("claims %d raw bytes, above the limit %d", gib, maxCompressedRaw)},
		{"zstd bomb without a content size", craftBatch(codecZstd, 1<<20, 1, bomb),
			"zstd frame content size 0 (stated false), header says 1048576"},
		{"zstd bomb stating 1 GiB", craftBatch(codecZstd, 1<<20, 1, zstdZeros(8192, gib)),
			fmt.Sprintf("zstd frame content size %d (stated true), header says 1048576", gib)},
		{"zstd bomb understating its size", craftBatch(codecZstd, 1<<20, 1, zstdZeros(8192, 1<<20)), "batch at offset 0 (32782 bytes, codec 2)"},
	}
	for _, tt := range tests {
		for _, size := range []int64{int64(len(tt.data)), -1} {
			t.Run(fmt.Sprintf("%s/size %d", tt.name, size), func(t *testing.T) {
				var err error
				alloc := totalAlloc(func() {
					r := NewRecordReader(bytes.NewReader(tt.data), size)
					_, err = r.Next()
					require.NoError(t, r.Close())
				})
				require.Less(t, alloc, uint64(4<<20), "bytes allocated reading %d crafted bytes", len(tt.data))
				require.ErrorIs(t, err, ErrCorrupt)
				require.ErrorContains(t, err, tt.msg)
			})
		}
	}
}

// A batch above maxCompressedRaw (it holds a record over 64 MiB) is stored uncompressed, so every
// compressed batch a writer produces is one a reader accepts.
func TestRecordWriterStoresLargeBatchesRaw(t *testing.T) {
	rec := bytes.Repeat([]byte("abcd"), 1000)
	for _, comp := range []Compression{CompressionS2, CompressionZstd} {
		t.Run(comp.String(), func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewRecordWriter(&buf, RecordWriterConfig{Compression: comp, BatchRecords: 1})
			require.NoError(t, err)
			w.maxComp = len(rec) // one byte short of the batch: prefix and record
			require.NoError(t, w.Write(rec))
			require.NoError(t, w.Write(rec[:len(rec)-2]))
			require.NoError(t, w.Close())
			data := buf.Bytes()
			second := scanBatches(t, bytes.NewReader(data), int64(len(data)))[1].Offset
			require.Equal(t, codecNone, data[3], "the batch above the limit is stored raw")
			require.NotEqual(t, codecNone, data[second+3], "the batch at the limit is compressed")
			got, err := readAll(NewRecordReader(bytes.NewReader(data), int64(len(data))))
			require.NoError(t, err)
			require.Equal(t, [][]byte{rec, rec[:len(rec)-2]}, got)
		})
	}
}
