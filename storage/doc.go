// Package storage is Spillway's block layer: Spark's BlockManager and what sits under it. It
// names blocks (BlockID) and says where they may live (Level), locks them (BlockInfoManager),
// keeps them in memory (MemoryStore) or on disk (DiskStore over a DiskBlockManager), and defines
// the one record file format every spill and disk block uses (RecordWriter, RecordReader, Codec).
//
// # Start here by task
//
//   - Cache a dataset that may not fit in memory, reused by later passes: a BlockManager (one
//     per process) and GetOrElseUpdate with a storage Level (MemoryAndDisk, say): the first
//     call computes and stores the partition, spilling what does not fit to disk, later calls
//     read it back; a partition too large for memory is never held whole.
//   - Encode your records for spills, shuffles and cached bytes: a Codec. The ready codecs cover
//     numbers, strings, bytes and bools; NewStructCodec builds a struct's codec from one Field
//     per field; NewBinaryCodec serves any type with AppendBinary and UnmarshalBinary; GobCodec
//     serves anything else, slowly.
//   - Write and read files of records of your own (an operator that spills): a
//     DiskBlockManager's Scope creates and deletes temp files; TypedWriter and TypedReader write
//     and read checksummed batches of records.
//   - Iterate: every reader is an Iterator (Next, Value, Err, Close); All adapts one to a range
//     loop that sees its errors, FromSeq adapts a sequence to one, Collect drains one.
//
// # Its part of the model
//
// Execution memory (package memory) is what aggregation maps and sorters hold; when it runs out
// they spill, and a spill is a record file written through this package: a Scope of the
// DiskBlockManager creates a temp file, a RecordWriter (or TypedWriter) writes the sorted
// records in checksummed batches, and the spilling collection drops every reference to what it
// wrote. Later a RecordReader streams the file back one batch at a time, and the Scope deletes
// the file when its owner finishes, whether it succeeded or failed. Storage memory holds
// cached blocks. A block that does not fit in memory goes to the DiskStore as a stream of
// records, so it never has to be held in memory whole. ChunkedBuffer holds a block's bytes as
// many chunks, so no single slice limits a block's size.
//
// # Spark correspondence
//
//	Spark (org.apache.spark.…)                     Spillway
//	storage.BlockId and subclasses                 BlockID, RDDBlockID, ShuffleBlockID, …, ParseBlockID
//	storage.StorageLevel                           Level, MemoryOnly, …, NewLevel, ParseLevel
//	storage.BlockInfo / BlockInfoManager           BlockInfo / BlockInfoManager
//	storage.DiskBlockManager                       DiskBlockManager (+ Scope: per-owner cleanup)
//	storage.DiskStore                              DiskStore
//	storage.DiskBlockObjectWriter + serializer     RecordWriter, TypedWriter
//	  stream, commitAndGet                           EndBatch
//	ExternalAppendOnlyMap.DiskMapIterator,         RecordReader, TypedReader
//	  ExternalSorter.SpillReader streams
//	serializer.Serializer (per record type)        Codec[T] and the ready codecs
//	util.io.ChunkedByteBuffer(+OutputStream)       ChunkedBuffer, ChunkedWriter
//	storage.memory.MemoryStore                     MemoryStore (implements memory.Evictor)
//	  putIteratorAsValues / putIteratorAsBytes       PutIteratorAsValues, PutIteratorAsBytes
//	  DeserializedValuesHolder's vector and array    ChunkedValues
//	  PartiallyUnrolledIterator                      PartiallyUnrolledIterator
//	  PartiallySerializedBlock                       PartiallySerializedBlock
//	  evictBlocksToFreeSpace                         (*MemoryStore).EvictBlocksToFreeSpace
//	storage.BlockManager                           BlockManager, PutIterator, GetOrElseUpdate,
//	                                                 GetLocalValues, GetLocalBytes, EndTask
//	storage.memory.BlockEvictionHandler            EvictionHandler ((*BlockManager).DropFromMemory)
//
// # Caching and unrolling
//
// The MemoryStore never materialises a block it cannot hold (SPARK-1777): it reserves 1 MiB of
// unroll memory, stores values while checking their tracked size every 16 records, and grows
// the reservation to 1.5× the size each time it is reached. If a reservation is refused it
// hands back a PartiallyUnrolledIterator (or PartiallySerializedBlock) that yields every record
// exactly once and releases the unroll memory when drained or closed; the BlockManager then
// returns it to the caller (MEMORY_ONLY) or streams it, unrolled part first, to disk
// (MEMORY_AND_DISK), so a partition larger than memory is never held whole. Lock order: the
// memory manager's mutex, then the MemoryStore's, then the BlockInfoManager's; eviction runs
// under the memory manager's mutex and only tries block locks without blocking.
//
// # Local directories and killed processes
//
// A DiskBlockManager creates one "blockmgr-*" directory under each root and deletes it on Close.
// A process killed before Close leaves its directories behind. Spark does the same: its
// DiskBlockManager creates blockmgr-UUID directories under spark.local.dir and deletes them in a
// JVM shutdown hook, which a killed executor never runs; what it leaves is removed later, if at
// all, by the cluster: in standalone mode the Worker through the external shuffle service
// (spark.storage.cleanupFilesAfterExecutorExit) and, with spark.worker.cleanup.enabled, the
// periodic cleanup of stopped applications' directories; on YARN the NodeManager.
//
// Spillway cleans up by itself. Beside each directory it keeps a lock file ("blockmgr-*.lock",
// naming the process) on which it holds an exclusive flock for as long as the manager is open;
// the operating system releases the lock when the process dies, however it dies. A new manager
// removes every directory under its roots whose lock file it can lock, logging each at Info
// with its size, and never one whose lock is held (a live manager, in this process or another)
// or that has no lock file (Spark's, for one). DiskConfig.KeepStaleDirs turns this off. Where
// flock is unavailable (not Linux, macOS or the BSDs) there are no lock files and nothing is
// removed. The lock file sits beside the directory, not in it, so the directory holds block files
// only; a directory that Close fails to delete keeps its lock file, released, for the next
// manager to remove.
//
// # Record file format
//
// A record file (or a section of one: several partitions may share a file) is a sequence of
// batches and nothing else: no file header or trailer, so an empty file holds no records, batches
// can be read starting at any batch offset, and files can be concatenated. Each batch is:
//
//	offset  size  field
//	0       2     magic "SW" (0x53 0x57)
//	2       1     format version, 1
//	3       1     codec of the payload: 0 none, 1 S2 (block format), 2 zstd (one frame that
//	              states its content size, R, unless R < 256)
//	4       4     N, stored payload length in bytes (uint32, little-endian)
//	8       4     R, uncompressed payload length (uint32 LE); R == N for codec 0, R > N otherwise
//	12      4     C, record count (uint32 LE), 1 ≤ C ≤ R
//	16      4     CRC-32C (Castagnoli) of the N stored payload bytes (uint32 LE)
//	20      4     CRC-32C of header bytes 0..19 (uint32 LE)
//	24      N     payload
//
// The uncompressed payload is exactly C records, each a canonical (shortest) unsigned LEB128
// varint length L followed by L bytes. A record's bytes are whatever its Codec produced.
// A writer ends a batch after BatchRecords records (Spark's spark.shuffle.spill.batchSize,
// 10000) or once the payload reaches BatchBytes (1 MiB), on EndBatch and on Close; empty batches
// are never written. It stores a batch uncompressed when compression would not make it smaller.
// Limits: a record is at most 1 GiB; R at most 1 GiB + 64 MiB + 10, and at most 128 MiB in a
// compressed batch (the largest BatchBytes and as much again for the record that ends the batch):
// a writer stores a larger batch, which holds a record of over 64 MiB, uncompressed.
//
// Decoding allocates only what the data backs, so a crafted or fuzzed file cannot make a reader
// allocate gigabytes: an uncompressed payload's buffer grows as its bytes arrive (or is checked
// against the size given first); a compressed one is allocated only after the length stored in
// the S2 block or zstd frame header is found equal to R, so at most 128 MiB, and zstd decodes
// into exactly R bytes of capacity with its window capped at the writer's 1 MiB, so a
// decompression bomb fails once it has filled them. Codec decoders likewise check every length
// against the bytes that follow, and SliceCodec preallocates at most 64 KiB of elements.
//
// A reader checks, before handing out any record of a batch: magic and version, the header CRC,
// codec and length consistency, that the batch fits in the data it was given, the payload CRC,
// that decompression yields exactly R bytes, and that the payload is exactly C well-formed
// records. Any failure is an error wrapping ErrCorrupt with the batch offset and sizes. Given
// the expected size (the writer's BytesWritten, or a run of the batches ScanBatches lists), a
// reader also reports data that ends early, even on a batch boundary. A writer keeps no index
// of its batches (it would grow with the file): ScanBatches reads it from the batch headers.
//
// # Codecs and aliasing
//
// Codec[T] appends encodings to a caller's buffer and decodes from the front of a slice,
// returning the bytes consumed. Ready codecs: VarintCodec (zigzag) and UvarintCodec for every
// integer kind, Float32Codec, Float64Codec, BoolCodec, StringCodec, BytesCodec, PairCodec,
// SliceCodec, FuncCodec, and GobCodec as the fallback for arbitrary types (costly: see its doc).
// Every decoder except GobCodec accepts only canonical encodings, so whatever decodes re-encodes
// to the same bytes (fuzzed). StringCodec and BytesCodec copy; AliasStringCodec and
// AliasBytesCodec return values that alias the reader's buffer, valid only until its next
// record: a Go map stores the key value it is given, so an aliasing key kept in a map is
// corrupted later. Collections use the copying codecs for anything they keep.
//
// # Deliberate differences from Spark
//
//   - Deserialized blocks are ChunkedValues: chunks of values that never move (64 values, then
//     twice as many per chunk up to 64 KiB of slots), where Spark unrolls into a
//     SizeTrackingVector that doubles by copying and then copies the values once more into an
//     array of their exact number. Only a last chunk less than half full (and the small index
//     of chunks) is copied into one of its exact length, so a small block keeps no free slots.
//     A block of values therefore needs no more memory than its values and one chunk.
//   - Strict unrolling (memory.Strict, the default): PutIteratorAsValues and PutIteratorAsBytes
//     check the unrolled size after every record instead of every UnrollMemoryCheckPeriod, so a
//     large record is charged before the next one is read; each new chunk of values is reserved
//     before it is allocated; and when UnrollMemoryGrowthFactor × the size is refused, the
//     unroll asks for the size alone, so a block is handed back unrolled (recomputed or sent to
//     disk by its level) only when what it really holds cannot be had. memory.SparkAllowances
//     keeps Spark's policy.
//   - Checksums: every batch carries a CRC-32C of its header and payload, so a torn or altered
//     spill or block file is reported as ErrCorrupt and never silently misread. Spark's spill
//     files have no checksum (shuffle checksums, spark.shuffle.checksum, cover only shuffle
//     partitions, and only to diagnose corruption after the fact).
//   - Compression: per batch, selectable (none, S2, zstd), default S2, from
//     github.com/klauspost/compress, which is well maintained, pure Go (no cgo), and fast
//     (assembly on amd64/arm64). S2 stands in for Spark's default lz4: it compresses and
//     decompresses at several GB/s per core. Zstd gives better ratios for slower disks. Batches
//     that do not shrink are stored raw.
//   - Batches are also cut by bytes (BatchBytes), so a reader never holds more than about one
//     megabyte plus one record, whatever the record sizes; Spark cuts by record count only.
//   - Local directories left by a killed process are removed by the next manager on the same
//     root (see "Local directories and killed processes"); Spark leaves them to the cluster.
//   - Files are owned: a Scope deletes what its owner created when the owner closes; Spark
//     relies on each collection's cleanup and the task completion listener.
//   - All file operations go through the FS interface, so tests can fail any of them
//     (package storage/faultfs).
//   - BlockInfoManager panics instead of deadlocking when a task waits for a lock it holds in a
//     conflicting mode; waits take a context.
//   - Level is a comparable value, so equal levels are the same value (Spark interns them).
//     Replication is recorded but this single-process port keeps one copy.
//   - ParseBlockID rejects numbers with leading zeros, so names round-trip exactly.
//   - ChunkedBuffer.Bytes takes the caller's limit instead of the JVM's 2 GiB array limit.
//   - Serialized blocks in memory and on disk both use the record file format, so bytes move
//     between the two unchanged and are checksummed in memory too. Compression of cached blocks
//     follows spark.rdd.compress (off by default: MemoryStoreConfig.Compress).
//   - A serialized block is charged its allocated chunk bytes, not its length, and so is the
//     unroll estimate for serialized data: what the heap really holds.
//   - The evictor reports freed bytes to the memory manager instead of calling back into it, and
//     takes a dropped block's write lock as NonTaskID.
//   - One executor only: no master, no remote fetch, no replication, no cache-visibility tracking.
//   - OFF_HEAP blocks are charged to the off-heap pool and kept in off-heap pages (anonymous
//     mappings outside the Go heap) that removal, eviction and Clear unmap. Their bytes are
//     made on the heap (unrolled or read from disk) and copied off it when the block is stored,
//     as Spark copies non-direct buffers; GetBytes returns views of the pages, not copies.
package storage
