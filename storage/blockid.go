package storage

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// BlockKind says which of Spark's BlockId subclasses a BlockID is.
type BlockKind uint8

// The block kinds. The zero BlockKind belongs to the zero BlockID, which names no block.
const (
	KindInvalid      BlockKind = iota // the zero BlockID
	KindRDD                           // Spark RDDBlockId: "rdd_<rdd>_<split>"
	KindShuffle                       // Spark ShuffleBlockId: "shuffle_<shuffle>_<map>_<reduce>"
	KindShuffleData                   // Spark ShuffleDataBlockId: "shuffle_<shuffle>_<map>_<reduce>.data"
	KindShuffleIndex                  // Spark ShuffleIndexBlockId: "shuffle_<shuffle>_<map>_<reduce>.index"
	KindTempLocal                     // Spark TempLocalBlockId: "temp_local_<uuid>"
	KindTempShuffle                   // Spark TempShuffleBlockId: "temp_shuffle_<uuid>"
	KindTest                          // Spark TestBlockId: "test_<name>"
)

var kindNames = [...]string{"invalid", "rdd", "shuffle", "shuffle_data", "shuffle_index", "temp_local", "temp_shuffle", "test"}

// String returns a short lower-case name of the kind.
func (k BlockKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "BlockKind(" + strconv.Itoa(int(k)) + ")"
}

// BlockID is Spark's BlockId: the name of a block. It is a small comparable value, usable as a map
// key, and satisfies memory.Block (interface{ String() string }). Build one with RDDBlockID,
// ShuffleBlockID, ShuffleDataBlockID, ShuffleIndexBlockID, TempLocalBlockID, TempShuffleBlockID,
// TestBlockID, or ParseBlockID; String gives Spark's name, which is also the block's file name.
//
// The zero BlockID is not a block; IsZero reports it.
type BlockID struct {
	kind BlockKind
	a    int32  // rdd id or shuffle id
	b    int64  // split index or map id
	c    int32  // reduce id
	name string // temp uuid or test name
}

// RDDBlockID names partition split of RDD rddID (Spark RDDBlockId), "rdd_<rddID>_<split>".
// It panics if either is negative or does not fit an int32.
func RDDBlockID(rddID, split int) BlockID {
	return BlockID{kind: KindRDD, a: nonNeg32("rdd id", rddID), b: int64(nonNeg32("split", split))}
}

// ShuffleBlockID names the output of map task mapID for reduce partition reduceID (Spark
// ShuffleBlockId), "shuffle_<shuffleID>_<mapID>_<reduceID>". It panics on negative ids.
func ShuffleBlockID(shuffleID int, mapID int64, reduceID int) BlockID {
	return shuffleKind(KindShuffle, shuffleID, mapID, reduceID)
}

// ShuffleDataBlockID names a map task's shuffle data file (Spark ShuffleDataBlockId),
// "shuffle_<shuffleID>_<mapID>_<reduceID>.data"; Spark always passes reduceID 0 (NOOP_REDUCE_ID).
func ShuffleDataBlockID(shuffleID int, mapID int64, reduceID int) BlockID {
	return shuffleKind(KindShuffleData, shuffleID, mapID, reduceID)
}

// ShuffleIndexBlockID names a map task's shuffle index file (Spark ShuffleIndexBlockId),
// "shuffle_<shuffleID>_<mapID>_<reduceID>.index".
func ShuffleIndexBlockID(shuffleID int, mapID int64, reduceID int) BlockID {
	return shuffleKind(KindShuffleIndex, shuffleID, mapID, reduceID)
}

func shuffleKind(k BlockKind, shuffleID int, mapID int64, reduceID int) BlockID {
	if mapID < 0 {
		panic(fmt.Sprintf("storage: negative map id %d", mapID))
	}
	return BlockID{kind: k, a: nonNeg32("shuffle id", shuffleID), b: mapID, c: nonNeg32("reduce id", reduceID)}
}

// TempLocalBlockID names a temporary local block (Spark TempLocalBlockId, used for
// ExternalAppendOnlyMap spills), "temp_local_<id>". id must be non-empty hexadecimal digits and
// dashes (a UUID); it panics otherwise. NewTempID makes a fresh one.
func TempLocalBlockID(id string) BlockID { return tempKind(KindTempLocal, id) }

// TempShuffleBlockID names a temporary shuffle block (Spark TempShuffleBlockId, used for
// ExternalSorter spills and bypass files), "temp_shuffle_<id>". Same rules as TempLocalBlockID.
func TempShuffleBlockID(id string) BlockID { return tempKind(KindTempShuffle, id) }

func tempKind(k BlockKind, id string) BlockID {
	if !isUUIDish(id) {
		panic(fmt.Sprintf("storage: temp block id %q is not hex digits and dashes", id))
	}
	return BlockID{kind: k, name: id}
}

// TestBlockID names a block in tests (Spark TestBlockId), "test_<name>". It panics if name is
// empty.
func TestBlockID(name string) BlockID {
	if name == "" {
		panic("storage: empty test block name")
	}
	return BlockID{kind: KindTest, name: name}
}

// NewTempID returns a random UUID (version 4) string for TempLocalBlockID and TempShuffleBlockID,
// as Spark uses UUID.randomUUID.
func NewTempID() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func nonNeg32(what string, v int) int32 {
	if v < 0 || int64(v) > 1<<31-1 {
		panic(fmt.Sprintf("storage: %s %d out of range [0, 2^31)", what, v))
	}
	return int32(v)
}

func isUUIDish(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == '-') {
			return false
		}
	}
	return true
}

// Kind returns the id's kind.
func (id BlockID) Kind() BlockKind { return id.kind }

// IsZero reports whether id is the zero BlockID (no block).
func (id BlockID) IsZero() bool { return id.kind == KindInvalid }

// RDDID returns the RDD id of an RDD block (Spark BlockId.asRDDId), and false for other kinds.
func (id BlockID) RDDID() (int, bool) {
	if id.kind != KindRDD {
		return 0, false
	}
	return int(id.a), true
}

// Split returns the partition index of an RDD block, and false for other kinds.
func (id BlockID) Split() (int, bool) {
	if id.kind != KindRDD {
		return 0, false
	}
	return int(id.b), true
}

// Shuffle returns the shuffle, map and reduce ids of a shuffle, shuffle data or shuffle index
// block, and false for other kinds.
func (id BlockID) Shuffle() (shuffleID int, mapID int64, reduceID int, ok bool) {
	switch id.kind {
	case KindShuffle, KindShuffleData, KindShuffleIndex:
		return int(id.a), id.b, int(id.c), true
	}
	return 0, 0, 0, false
}

// IsTemp reports whether id is a temp local or temp shuffle block.
func (id BlockID) IsTemp() bool { return id.kind == KindTempLocal || id.kind == KindTempShuffle }

// String returns Spark's name of the block (BlockId.name), e.g. "rdd_0_1", "shuffle_0_1_2",
// "shuffle_0_1_0.data", "temp_local_<uuid>". The zero BlockID is "<invalid block>".
func (id BlockID) String() string {
	switch id.kind {
	case KindRDD:
		return "rdd_" + itoa(int64(id.a)) + "_" + itoa(id.b)
	case KindShuffle, KindShuffleData, KindShuffleIndex:
		s := "shuffle_" + itoa(int64(id.a)) + "_" + itoa(id.b) + "_" + itoa(int64(id.c))
		switch id.kind {
		case KindShuffleData:
			s += ".data"
		case KindShuffleIndex:
			s += ".index"
		}
		return s
	case KindTempLocal:
		return "temp_local_" + id.name
	case KindTempShuffle:
		return "temp_shuffle_" + id.name
	case KindTest:
		return "test_" + id.name
	}
	return "<invalid block>"
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// ParseBlockID is Spark's BlockId.apply: it parses a name made by BlockID.String. Numbers must be
// plain decimal without sign or leading zeros, so ParseBlockID(s).String() == s for every
// accepted s (Spark accepts leading zeros; this port does not, so names are canonical).
func ParseBlockID(s string) (BlockID, error) {
	bad := func(why string) (BlockID, error) {
		return BlockID{}, fmt.Errorf("storage: unrecognized block id %q: %s", s, why)
	}
	switch {
	case strings.HasPrefix(s, "rdd_"):
		parts := strings.Split(s[len("rdd_"):], "_")
		if len(parts) != 2 {
			return bad("want rdd_<rdd>_<split>")
		}
		rdd, ok1 := parseCanonical(parts[0], 1<<31-1)
		split, ok2 := parseCanonical(parts[1], 1<<31-1)
		if !ok1 || !ok2 {
			return bad("ids must be canonical non-negative int32 decimals")
		}
		return BlockID{kind: KindRDD, a: int32(rdd), b: split}, nil
	case strings.HasPrefix(s, "shuffle_"):
		rest, kind := s[len("shuffle_"):], KindShuffle
		if r, ok := strings.CutSuffix(rest, ".data"); ok {
			rest, kind = r, KindShuffleData
		} else if r, ok := strings.CutSuffix(rest, ".index"); ok {
			rest, kind = r, KindShuffleIndex
		}
		parts := strings.Split(rest, "_")
		if len(parts) != 3 {
			return bad("want shuffle_<shuffle>_<map>_<reduce>[.data|.index]")
		}
		sh, ok1 := parseCanonical(parts[0], 1<<31-1)
		mp, ok2 := parseCanonical(parts[1], 1<<63-1)
		rd, ok3 := parseCanonical(parts[2], 1<<31-1)
		if !ok1 || !ok2 || !ok3 {
			return bad("ids must be canonical non-negative decimals")
		}
		return BlockID{kind: kind, a: int32(sh), b: mp, c: int32(rd)}, nil
	case strings.HasPrefix(s, "temp_local_") || strings.HasPrefix(s, "temp_shuffle_"):
		kind, id := KindTempLocal, strings.TrimPrefix(s, "temp_local_")
		if strings.HasPrefix(s, "temp_shuffle_") {
			kind, id = KindTempShuffle, s[len("temp_shuffle_"):]
		}
		if !isUUIDish(id) {
			return bad("temp id must be hex digits and dashes")
		}
		return BlockID{kind: kind, name: id}, nil
	case strings.HasPrefix(s, "test_") && len(s) > len("test_"):
		return BlockID{kind: KindTest, name: s[len("test_"):]}, nil
	}
	return bad("unknown kind")
}

// parseCanonical parses a non-negative decimal without sign or leading zeros, at most limit.
func parseCanonical(s string, limit int64) (int64, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v > limit {
		return 0, false
	}
	return v, true
}
