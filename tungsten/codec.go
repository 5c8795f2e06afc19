package tungsten

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/spillway/spillway/storage"
)

// KeyCodec encodes the keys of the typed front ends. Its encodings must be deterministic (equal
// keys, equal bytes) and order-preserving: bytes.Compare of two encodings is the order of the
// keys. The collections store each key's length, so a KeyCodec's Decode is given exactly one
// key's bytes.
type KeyCodec[K any] interface {
	storage.Codec[K]
	// PrefixIsKey reports that every encoding is exactly 8 bytes, so the 8-byte key prefix holds
	// the whole key and keys sort by radix sort alone.
	PrefixIsKey() bool
}

// Int64Key encodes an int64 as 8 big-endian bytes with the sign bit flipped, so that the bytes
// order as the numbers do and the key prefix is the whole key. It also serves as a fixed-width
// value codec.
type Int64Key struct{}

// Append implements storage.Codec.
func (Int64Key) Append(dst []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(v)^(1<<63))
}

// Decode implements storage.Codec.
func (Int64Key) Decode(src []byte) (int64, int, error) {
	if len(src) < 8 {
		return 0, 0, fmt.Errorf("%w: tungsten: int64 of %d bytes, need 8", storage.ErrCorrupt, len(src))
	}
	return int64(binary.BigEndian.Uint64(src) ^ (1 << 63)), 8, nil
}

// PrefixIsKey implements KeyCodec.
func (Int64Key) PrefixIsKey() bool { return true }

// StringKey encodes a string as its bytes, with no length (the collections store it), so keys
// order as strings do. Decode copies.
type StringKey struct{}

// Append implements storage.Codec.
func (StringKey) Append(dst []byte, v string) []byte { return append(dst, v...) }

// Decode implements storage.Codec: the whole of src is the key.
func (StringKey) Decode(src []byte) (string, int, error) { return string(src), len(src), nil }

// PrefixIsKey implements KeyCodec.
func (StringKey) PrefixIsKey() bool { return false }

// BytesKey encodes a byte slice as itself, like StringKey. Decode copies.
type BytesKey struct{}

// Append implements storage.Codec.
func (BytesKey) Append(dst []byte, v []byte) []byte { return append(dst, v...) }

// Decode implements storage.Codec: the whole of src is the key.
func (BytesKey) Decode(src []byte) ([]byte, int, error) { return bytes.Clone(src), len(src), nil }

// PrefixIsKey implements KeyCodec.
func (BytesKey) PrefixIsKey() bool { return false }

// splitKV splits a [4-byte key length][key][value] record (a map record's payload, and the typed
// sorter's record). A bad key length is storage.ErrCorrupt.
func splitKV(rec []byte) (key, value []byte, err error) {
	if len(rec) < uao {
		return nil, nil, fmt.Errorf("%w: tungsten: key-value record of %d bytes, shorter than its key length", storage.ErrCorrupt, len(rec))
	}
	klen := int(order.Uint32(rec) &^ deadKey)
	if klen > len(rec)-uao {
		return nil, nil, fmt.Errorf("%w: tungsten: key-value record of %d bytes with a key of %d bytes", storage.ErrCorrupt, len(rec), klen)
	}
	return rec[uao : uao+klen : uao+klen], rec[uao+klen:], nil
}

// compareKeys orders two key-value records by key bytes.
func compareKeys(a, b []byte) int {
	ka := a[uao : uao+int(order.Uint32(a)&^deadKey)]
	kb := b[uao : uao+int(order.Uint32(b)&^deadKey)]
	return bytes.Compare(ka, kb)
}
