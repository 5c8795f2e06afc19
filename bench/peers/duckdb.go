package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	bindings "github.com/duckdb/duckdb-go-bindings"
	"github.com/duckdb/duckdb-go/v2/mapping"
)

// errOOM marks DuckDB's out-of-memory errors, which the table reports as such.
var errOOM = errors.New("out of memory")

// duckDB is an in-memory DuckDB database with one connection, opened outside the timed work.
type duckDB struct {
	db   mapping.Database
	conn mapping.Connection
}

// openDuckDB opens an in-memory database with memory_limit the budget, threads p.Threads and its
// temporary files in the run's directory.
func openDuckDB(p params) (*duckDB, error) {
	var cfg mapping.Config
	if mapping.CreateConfig(&cfg) == mapping.StateError {
		return nil, errors.New("duckdb: cannot create a config")
	}
	defer mapping.DestroyConfig(&cfg)
	for _, kv := range [][2]string{
		{"memory_limit", strconv.FormatInt(p.Budget/1024, 10) + "KiB"},
		{"threads", strconv.Itoa(p.Threads)},
		{"temp_directory", p.Dir},
	} {
		if mapping.SetConfig(cfg, kv[0], kv[1]) == mapping.StateError {
			return nil, fmt.Errorf("duckdb: cannot set %s to %s", kv[0], kv[1])
		}
	}
	d := &duckDB{}
	var msg string
	if mapping.OpenExt(":memory:", &d.db, cfg, &msg) == mapping.StateError {
		return nil, fmt.Errorf("duckdb: open: %s", msg)
	}
	if mapping.Connect(d.db, &d.conn) == mapping.StateError {
		mapping.Close(&d.db)
		return nil, errors.New("duckdb: connect failed")
	}
	return d, nil
}

func (d *duckDB) close() {
	mapping.Disconnect(&d.conn)
	mapping.Close(&d.db)
}

// duckErr is DuckDB's error message msg (its first line: the rest is advice) as an error.
func duckErr(msg string, oom bool) error {
	msg, _, _ = strings.Cut(msg, "\n")
	if oom || strings.Contains(msg, "Out of Memory") {
		return fmt.Errorf("duckdb: %w: %s", errOOM, msg)
	}
	return fmt.Errorf("duckdb: %s", msg)
}

// query runs q as a streaming query (so a large result is not materialized in DuckDB's memory
// first, as the database/sql path does) and hands each result chunk to f with its row count.
func (d *duckDB) query(ctx context.Context, q string, f func(chunk mapping.DataChunk, rows int) error) error {
	var stmt mapping.PreparedStatement
	if mapping.Prepare(d.conn, q, &stmt) == mapping.StateError {
		defer mapping.DestroyPrepare(&stmt)
		return duckErr(mapping.PrepareError(stmt), false)
	}
	defer mapping.DestroyPrepare(&stmt)
	var pending mapping.PendingResult
	if bindings.PendingPreparedStreaming(stmt, &pending) == mapping.StateError {
		defer mapping.DestroyPending(&pending)
		return duckErr(mapping.PendingError(pending), false)
	}
	defer mapping.DestroyPending(&pending)
	var res mapping.Result
	if mapping.ExecutePending(pending, &res) == mapping.StateError {
		defer mapping.DestroyResult(&res)
		return duckErr(mapping.ResultError(&res), mapping.ResultErrorType(&res) == mapping.ErrorTypeOutOfMemory)
	}
	defer mapping.DestroyResult(&res)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := mapping.FetchChunk(res)
		if chunk.Ptr == nil {
			break
		}
		err := f(chunk, int(mapping.DataChunkGetSize(chunk)))
		mapping.DestroyDataChunk(&chunk)
		if err != nil {
			return err
		}
	}
	if msg := mapping.ResultError(&res); msg != "" {
		return duckErr(msg, mapping.ResultErrorType(&res) == mapping.ErrorTypeOutOfMemory)
	}
	return nil
}

// int64s is column col of a chunk of BIGINTs without NULLs.
func int64s(chunk mapping.DataChunk, col, rows int) []int64 {
	return unsafe.Slice((*int64)(mapping.VectorGetData(mapping.DataChunkGetVector(chunk, mapping.IdxT(col)))), rows)
}

// duckString is DuckDB's duckdb_string_t: a length, then the bytes inline (up to 12) or a 4-byte
// prefix and a pointer.
type duckString struct {
	length uint32
	inline [12]byte
}

// bytes returns the string's bytes, valid while its chunk is.
func (s *duckString) bytes() []byte {
	if s.length <= 12 {
		return s.inline[:s.length]
	}
	return unsafe.Slice(*(**byte)(unsafe.Pointer(&s.inline[4])), s.length)
}

// strings is column col of a chunk of VARCHARs without NULLs.
func duckStrings(chunk mapping.DataChunk, col, rows int) []duckString {
	return unsafe.Slice((*duckString)(mapping.VectorGetData(mapping.DataChunkGetVector(chunk, mapping.IdxT(col)))), rows)
}

// aggSQL is the aggregation in SQL over the same input as aggKey, aggValue and appendStrKey.
func aggSQL(w kind, p params) string {
	in := h32SQL("range", "h", "v", fmt.Sprintf("SELECT range, range & 1023 AS v FROM range(%d)", p.Records))
	key := fmt.Sprintf("h %% %d", p.Keys)
	if w == aggStr {
		key = fmt.Sprintf("'user-' || (%d + %s)::VARCHAR", strKeyBase, key)
	}
	return fmt.Sprintf("SELECT k, sum(v)::BIGINT FROM (SELECT %s AS k, v FROM (%s)) GROUP BY k", key, in)
}

// sortSQL is the sort in SQL over the same input as sortKey.
func sortSQL(p params) string {
	in := fmt.Sprintf("SELECT range AS i, xor(range, 1431655765) AS j FROM range(%d)", p.Records)
	in = h32SQL("i", "hi", "i, j", in)
	in = h32SQL("j", "lo", "i, hi", in)
	return fmt.Sprintf("SELECT (hi << 31) | (lo & 2147483647) AS k, i AS v FROM (%s) ORDER BY k", in)
}

// runDuckDB runs the work as one SQL query and reads its result chunk by chunk.
func runDuckDB(ctx context.Context, w kind, p params, timed func(func() error) error) (outcome, error) {
	d, err := openDuckDB(p)
	if err != nil {
		return outcome{}, err
	}
	defer d.close()
	var c sortCheck
	switch w {
	case aggInt:
		err = timed(func() error {
			return d.query(ctx, aggSQL(w, p), func(ch mapping.DataChunk, n int) error {
				ks, vs := int64s(ch, 0, n), int64s(ch, 1, n)
				for i := range n {
					c.check.add(uint64(ks[i]), vs[i])
				}
				return nil
			})
		})
	case aggStr:
		err = timed(func() error {
			return d.query(ctx, aggSQL(w, p), func(ch mapping.DataChunk, n int) error {
				ks, vs := duckStrings(ch, 0, n), int64s(ch, 1, n)
				for i := range n {
					c.check.add(strID(ks[i].bytes()), vs[i])
				}
				return nil
			})
		})
	default:
		err = timed(func() error {
			return d.query(ctx, sortSQL(p), func(ch mapping.DataChunk, n int) error {
				ks, vs := int64s(ch, 0, n), int64s(ch, 1, n)
				for i := range n {
					if err := c.add(ks[i], vs[i]); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
	return outcome{Check: c.check}, err
}

// duckVersion is the DuckDB library's version.
func duckVersion() string { return mapping.LibraryVersion() }
