package spillbeam

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/spillway/spillway/storage"
)

// ErrEncoding is wrapped by the errors of values that Beam's coder fails to encode or decode.
var ErrEncoding = errors.New("spillbeam: encoding failed")

// beamCodec encodes values of T with the coder the Go SDK infers for T (the coder a runner uses
// for a PCollection of T), and decodes them back. Strings and byte slices are kept as their raw
// bytes instead (their encoding in Beam's outer context, without the length prefix). It reuses
// one buffer: the bytes encode returns are valid until its next call, and one codec is for one
// goroutine.
type beamCodec[T any] struct {
	enc beam.ElementEncoder
	dec beam.ElementDecoder
	buf bytes.Buffer
	r   bytes.Reader
}

// newBeamCodec returns T's codec, or an error if the Go SDK has no coder for T.
func newBeamCodec[T any]() (c *beamCodec[T], err error) {
	var zero T
	switch any(zero).(type) {
	case string, []byte:
		return &beamCodec[T]{}, nil
	}
	t := reflect.TypeFor[T]()
	defer func() {
		// beam.NewElementEncoder panics when it cannot infer a coder.
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("%w: no Beam coder for %v: %v", ErrEncoding, t, r)
		}
	}()
	return &beamCodec[T]{enc: beam.NewElementEncoder(t), dec: beam.NewElementDecoder(t)}, nil
}

// encode returns v's encoding, valid until the next call; the caller must not modify it.
func (c *beamCodec[T]) encode(v T) ([]byte, error) {
	c.buf.Reset()
	switch x := any(v).(type) {
	case string:
		c.buf.WriteString(x)
		return c.buf.Bytes(), nil
	case []byte:
		return x, nil
	}
	if err := c.encodeTo(v); err != nil {
		return nil, err
	}
	return c.buf.Bytes(), nil
}

func (c *beamCodec[T]) encodeTo(v T) (err error) {
	defer func() {
		// A user coder may panic; the bundle fails with an error rather than the worker.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %T value: %v", ErrEncoding, v, r)
		}
	}()
	if err := c.enc.Encode(v, &c.buf); err != nil {
		return fmt.Errorf("%w: %T value: %w", ErrEncoding, v, err)
	}
	return nil
}

// decodeString is decode of a string's bytes, without copying them for string values.
func (c *beamCodec[T]) decodeString(s string) (v T, err error) {
	if p, ok := any(&v).(*string); ok {
		*p = s
		return v, nil
	}
	return c.decode([]byte(s))
}

// decode decodes all of b, which it does not retain.
func (c *beamCodec[T]) decode(b []byte) (v T, err error) {
	switch p := any(&v).(type) {
	case *string:
		*p = string(b)
		return v, nil
	case *[]byte:
		*p = append([]byte{}, b...)
		return v, nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: decoding %T from %d bytes: %v", ErrEncoding, v, len(b), r)
		}
	}()
	c.r.Reset(b)
	x, err := c.dec.Decode(&c.r)
	if err != nil {
		return v, fmt.Errorf("%w: decoding %T from %d bytes: %w", ErrEncoding, v, len(b), err)
	}
	if c.r.Len() != 0 {
		return v, fmt.Errorf("%w: decoding %T from %d bytes left %d bytes unread", ErrEncoding, v, len(b), c.r.Len())
	}
	v, ok := x.(T)
	if !ok {
		return v, fmt.Errorf("%w: decoding %T from %d bytes gave a %T", ErrEncoding, v, len(b), x)
	}
	return v, nil
}

// storageCodec adapts a beamCodec to storage.Codec, for values the collections encode
// themselves (accumulators written to spill files). storage.Codec's Append cannot fail, so a
// failed encoding is written as a marker (length 0; real encodings are stored with length+1),
// the first error is kept for Err, and decoding the marker is an error. It is safe for
// concurrent use.
type storageCodec[T any] struct {
	mu    sync.Mutex
	codec *beamCodec[T]
	err   error
}

var _ storage.Codec[int] = (*storageCodec[int])(nil)

func (c *storageCodec[T]) Append(dst []byte, v T) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := c.codec.encode(v)
	if err != nil {
		if c.err == nil {
			c.err = err
		}
		return binary.AppendUvarint(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b))+1)
	return append(dst, b...)
}

func (c *storageCodec[T]) Decode(src []byte) (v T, n int, err error) {
	l, n := binary.Uvarint(src)
	switch {
	case n <= 0:
		return v, 0, fmt.Errorf("%w: bad length prefix in %d bytes", storage.ErrCorrupt, len(src))
	case l == 0:
		return v, 0, fmt.Errorf("%w: %T value whose encoding failed", ErrEncoding, v)
	case l-1 > uint64(len(src)-n):
		return v, 0, fmt.Errorf("%w: %T value of %d bytes in %d bytes", storage.ErrCorrupt, v, l-1, len(src)-n)
	}
	end := n + int(l-1)
	c.mu.Lock()
	defer c.mu.Unlock()
	v, err = c.codec.decode(src[n:end])
	return v, end, err
}

// Err returns the first encoding error of Append.
func (c *storageCodec[T]) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
