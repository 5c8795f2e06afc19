package storage

import (
	"encoding"
	"encoding/binary"
	"fmt"
	"slices"
)

// BinaryCodec is the codec of any type T whose pointer implements encoding.BinaryAppender and
// encoding.BinaryUnmarshaler (time.Time, netip.Addr, netip.Prefix, big.Int's pointer type and
// your own types that implement them): each value is T's own binary encoding prefixed by a
// uvarint length, so the codec is self-delimiting whatever T's encoding is. Make one with
// NewBinaryCodec[T](), which infers P.
//
// Append panics if T's AppendBinary fails, which means v cannot be encoded at all (time.Time with
// a zone offset that is not a whole minute, say): a programming error, as with GobCodec. A Decode
// that T's UnmarshalBinary rejects wraps ErrCorrupt. Decoded values do not alias src: the
// encoding.BinaryUnmarshaler contract makes UnmarshalBinary copy what it keeps. The encoding is
// canonical if T's is.
// Spark counterpart: a class that implements java.io.Externalizable, which JavaSerializer uses
// instead of reflection.
type BinaryCodec[T any, P BinaryPointer[T]] struct{}

// BinaryPointer is the constraint BinaryCodec puts on *T: it appends its binary encoding and
// decodes it back.
type BinaryPointer[T any] interface {
	*T
	encoding.BinaryAppender
	encoding.BinaryUnmarshaler
}

// NewBinaryCodec returns the BinaryCodec of T (storage.NewBinaryCodec[time.Time]()).
func NewBinaryCodec[T any, P BinaryPointer[T]]() BinaryCodec[T, P] { return BinaryCodec[T, P]{} }

// Append implements Codec.
func (BinaryCodec[T, P]) Append(dst []byte, v T) []byte {
	start := len(dst)
	dst, err := P(&v).AppendBinary(dst)
	if err != nil {
		panic(fmt.Sprintf("storage: BinaryCodec cannot encode %T: %v", v, err))
	}
	// The length goes before the encoding, which is only known now: move the encoding up by
	// the length's size (1 byte up to 127 bytes of encoding).
	var lenBuf [binary.MaxVarintLen64]byte
	prefix := binary.AppendUvarint(lenBuf[:0], uint64(len(dst)-start))
	return slices.Insert(dst, start, prefix...)
}

// Decode implements Codec.
func (BinaryCodec[T, P]) Decode(src []byte) (T, int, error) {
	var v T
	l, n, err := decodeLen(src, "binary value")
	if err != nil {
		return v, 0, fmt.Errorf("%T: %w", v, err)
	}
	if err := P(&v).UnmarshalBinary(src[n : n+l]); err != nil {
		var zero T
		return zero, 0, corruptf("%T value of %d bytes: %v", zero, l, err)
	}
	return v, n + l, nil
}
