package storage

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// benchRecords returns about 10 MiB of text-like key/value records (compressible, as spilled
// records usually are) and their total size.
func benchRecords() ([][]byte, int64) {
	recs := make([][]byte, 100_000)
	var total int64
	for i := range recs {
		recs[i] = fmt.Appendf(nil, "key-%09d\x00value-%d-%s", i*7919%1_000_003, i, "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz"[:40+i%20])
		total += int64(len(recs[i]))
	}
	return recs, total
}

// BenchmarkRecordFile compares the record file format (CRC-32C framed batches, with and without
// compression) against a raw bufio write/read of the same records (uvarint length + bytes, no
// framing or checksums), on files in a temp directory. Throughput (MB/s) counts record bytes.
//
//	go test -run XXX -bench BenchmarkRecordFile -benchtime 20x ./storage/
func BenchmarkRecordFile(b *testing.B) {
	recs, total := benchRecords()
	dir := b.TempDir()
	variants := []struct {
		name string
		comp Compression
		raw  bool
	}{{"raw-bufio", 0, true}, {"none", CompressionNone, false}, {"s2", CompressionS2, false}, {"zstd", CompressionZstd, false}}

	write := func(b *testing.B, path string, raw bool, comp Compression) int64 {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if raw {
			bw := bufio.NewWriterSize(f, DefaultBufferSize)
			var pre [binary.MaxVarintLen64]byte
			for _, r := range recs {
				bw.Write(pre[:binary.PutUvarint(pre[:], uint64(len(r)))])
				bw.Write(r)
			}
			if err := bw.Flush(); err != nil {
				b.Fatal(err)
			}
			st, _ := f.Stat()
			return st.Size()
		}
		rw, err := NewRecordWriter(f, RecordWriterConfig{Compression: comp})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range recs {
			if err := rw.Write(r); err != nil {
				b.Fatal(err)
			}
		}
		if err := rw.Close(); err != nil {
			b.Fatal(err)
		}
		return rw.BytesWritten()
	}

	for _, v := range variants {
		b.Run("write/"+v.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(total)
			path := filepath.Join(dir, "w-"+v.name)
			var size int64
			for b.Loop() {
				size = write(b, path, v.raw, v.comp)
			}
			b.ReportMetric(float64(size)/float64(total), "file/records")
		})
	}
	for _, v := range variants {
		b.Run("read/"+v.name, func(b *testing.B) {
			path := filepath.Join(dir, "r-"+v.name)
			size := write(b, path, v.raw, v.comp)
			b.ReportAllocs()
			b.SetBytes(total)
			for b.Loop() {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				if v.raw {
					br := bufio.NewReaderSize(f, DefaultBufferSize)
					buf := make([]byte, 0, 256)
					for {
						l, err := binary.ReadUvarint(br)
						if err == io.EOF {
							break
						}
						if err != nil {
							b.Fatal(err)
						}
						buf = buf[:l]
						if _, err := io.ReadFull(br, buf); err != nil {
							b.Fatal(err)
						}
						n++
					}
				} else {
					r := NewRecordReader(f, size)
					for {
						_, err := r.Next()
						if err == io.EOF {
							break
						}
						if err != nil {
							b.Fatal(err)
						}
						n++
					}
					r.Close()
				}
				f.Close()
				if n != len(recs) {
					b.Fatalf("read %d records, want %d", n, len(recs))
				}
			}
		})
	}
}
