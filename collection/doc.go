// Package collection holds Spillway's in-memory and spillable collections: the counterparts of
// Spark's org.apache.spark.util.collection (AppendOnlyMap, SizeTrackingAppendOnlyMap,
// SizeTrackingVector, PartitionedPairBuffer, PartitionedAppendOnlyMap, Spillable,
// ExternalAppendOnlyMap, ExternalSorter) and the k-way merge they share.
//
// # The in-memory base
//
// AppendOnlyMap is an open-addressing hash table for aggregation: keys are inserted and their
// values changed (ChangeValue) but never removed. It stores key, value and hash together in one
// slice of slots, grows by doubling at a load factor of 0.7 up to 2^29 slots, and ends its life
// in a destructive iterator that takes the table over, optionally sorting it in place by a key
// comparator or by key hash — the order in which ExternalAppendOnlyMap spills.
//
// Hashing goes through a Hasher: hash/maphash with a random seed per Hasher (a fast seeded mixer
// for integer keys), or a caller-supplied function (HasherFunc) that tests use to force
// collisions. Merges of spills by hash need every map and every reader of a spill to use the same
// Hasher value, so maps expose theirs (Hasher, HashOf).
//
// The size-tracking wrappers (SizeTrackingMap, SizeTrackingVector, PartitionedPairBuffer,
// PartitionedAppendOnlyMap) add an estimator.Tracker so the spill policy can ask for their size
// after every insert at the cost of an occasional sampled measurement.
//
// # Iteration
//
// Everything that may read spill files iterates through the pull-style Iterator (Next, Value,
// Err, Close), so a reader can stop early, release files, and be spilled while being read.
// All and AllPairs adapt an Iterator to range-over-func loops; Merge is a stable k-way merge of
// sorted Iterators and Concat their concatenation. Elements handed out by an Iterator belong to
// the caller.
//
// # Differences from Spark
//
//   - Go keys have no null, so there is no out-of-band null key: a nullable key type (pointer,
//     option struct) is stored like any other key, and sorted iterators put it where the
//     comparator says.
//   - Lookups report presence explicitly (Get returns value and found).
//   - Growing beyond the maximum capacity returns an error wrapping ErrMapFull (Spark throws),
//     and the map is left unchanged.
//   - Destructive iterators drop the map's reference to its table and clear every slot they have
//     passed, so memory a reader has consumed is collectable at once (SPARK-22713).
package collection
