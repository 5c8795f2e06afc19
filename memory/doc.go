// Package memory is Spillway's reimplementation of Apache Spark's memory manager: the unified
// execution/storage region of one executor, its fair sharing among concurrently running tasks,
// the per-task manager that asks consumers to spill, and pages on-heap and off-heap. Every other
// Spillway package stands on it.
//
// # Start here by task
//
//   - Give a process one memory budget: NewUnifiedManager(Config{Budget: 64 << 20}) (Budget is
//     the unified region itself; without it Config sizes the region as Spark does, from the
//     system memory with 300 MiB reserved and 60% unified).
//   - Run a task: NewTaskManager for each task; hand it to the collections the task uses, and
//     Close it at the end (it reports leaked memory).
//   - Write an operator of your own that spills: embed ConsumerBase, acquire through it, and
//     implement Spill, which the TaskManager calls when another consumer of the task needs memory.
//   - Check a test's live heap against the budget: package memory/memtest.
//
// # The model
//
// One process plays a Spark executor and owns one [UnifiedManager]. Its budget per [Mode] is a
// unified region split by a soft boundary into an execution pool and a storage pool. On-heap, the
// region is [Config.Budget] when set ("this many bytes for Spillway"), else Spark's (system
// memory − 300 MiB reserved) × 0.6, where the system memory is the first that is set of
// [Config.SystemMemory], the Go memory limit, the cgroup v2 then v1 memory limit and physical
// memory ([UnifiedManager.Sizing] says which); off-heap it is [Config.OffHeapSize]. The storage pool
// starts at the protected storage region (storage fraction 0.5 of the region), the execution pool
// at the rest. Storage may borrow execution memory that is free; execution may take storage memory
// that is free and evict cached blocks (through the [Evictor], implemented by storage.MemoryStore)
// while the storage pool is larger than its protected region; storage never evicts execution.
// Memory held outside Spillway that it is told about ([UnmanagedConsumer], and optionally the Go
// heap it did not grant) is subtracted from what execution and storage may reach.
//
// Execution memory is shared fairly among the N tasks that hold an entry in the execution pool: a
// grant never lifts a task above 1/N of the size the pool could reach by evicting, and a task that
// holds less than 1/2N of the current pool waits (cancellable through its ctx) until it can get its
// whole request or reach 1/2N. Tasks reach the manager through a [TaskManager] (one per task),
// which hands memory to [Consumer]s — sorters, maps, buffers — and, when the pool grants too
// little, asks consumers of the same task and mode to spill in a [VictimOrder] (Spark's by
// default), re-acquiring after each spill. Consumers embed [ConsumerBase] for the bookkeeping.
// Pages ([Page]) are execution memory handed out as byte slices: Go []byte on-heap, anonymous
// mappings outside the Go heap off-heap.
//
// # Invariants
//
// Code comments and tests refer to these by number.
//
//  1. For each mode, execution pool size + storage pool size = the mode's maximum, and every
//     pool's use stays within [0, size]. Sizes move from one pool to the other in one step under
//     the manager's lock; a failed eviction leaves both sizes unchanged (SPARK-15260).
//  2. An execution pool's use is the sum of its per-task entries, none negative; storage use
//     includes unroll memory.
//  3. No grant lifts a task above maxPool/N, where maxPool = maximum − min(storage used, storage
//     region) and N counts the tasks with an entry (SPARK-12155). A request is refused (granted
//     less, possibly 0) rather than blocked once the task holds poolSize/2N; below that it waits.
//  4. Storage never takes execution memory in use: a storage request larger than maximum −
//     execution used fails at once without evicting anything. Execution evicts cached blocks only
//     while the storage pool exceeds its protected region.
//  5. A task has an entry exactly while it is active: the entry goes when its holding drops to 0
//     on release; a waiting task whose entry vanished (another consumer of it released its last
//     byte) re-registers and wakes its peers; a cancelled or failed acquire keeps what the task
//     held before and leaves no empty entry behind.
//  6. Consumer.Spill is never called with the manager's lock held, and releases never take a
//     TaskManager's acquisition lock, so a consumer can release while another consumer of the
//     same task waits inside the pool.
//  7. Per task and mode, the bytes a TaskManager granted minus those it released equal the task's
//     entry in the pool; with ConsumerBase they also equal the sum of the consumers' Used.
//     TaskManager.Close releases the entry of both modes and returns it (a leak when positive).
//  8. A page number is in use in a task's table exactly while its page is there; freed pages are
//     numbered FreedInTaskManagerPageNumber, then FreedInAllocatorPageNumber, and freeing one
//     again, or freeing another task's page, panics.
//
// # The bound: the budget is the memory
//
// Under [Strict] accounting ([Config.Accounting]'s default) every byte Spillway holds for data
// is acquired from this package before it is allocated and released when it is dropped:
// collections and the old and new arrays while one grows, the first bytes of every spillable
// collection (no free initial threshold), spill and merge readers' and writers' buffers (a
// merge opens only as many spill files as the task can hold readers for, merging the rest in
// passes first), the reduce side's fetched shuffle bytes, the shuffle writers' buffers, and
// unrolled and cached blocks. The bound Spillway states for the live Go heap of a process whose
// data is held by Spillway is
//
//	peak live heap − the heap before the work ≤ budget + slack,   slack = budget/10 + 2 MiB
//
// where budget is the unified region of this manager (what [Config] sizes) and the slack,
// which depends on neither the data size nor the number of spill files, covers what no budget
// can account: the records being read and written at that moment, the size estimator's error
// (±5%, ±10% when sampled), runtime structures and the collector's granularity. A request that
// can never fit gets an error wrapping [ErrOutOfMemory] with the task's usage report rather
// than an overshoot. memory/memtest states the bound as StrictBound, and internal/heapbound checks
// it at two data sizes 10× apart, and that the peak does not grow with the data, for each
// scenario it covers (the aggregating map, the grouper with one huge key, the sorter, a whole
// shuffle, caching under every storage level, PageRank, and the tungsten aggregator and sorter
// with pages on the Go heap and off it, and a join on 4 tasks at once). [SparkAllowances] gives
// the bound up for Spark's unaccounted allowances.
//
// The live heap here is what a collection finds reachable, as with GODEBUG=gcstoptheworld=1
// (memtest.RunExact). A concurrent collection, the default, also reports as live everything
// allocated while it marks, so the live figure of GODEBUG=gctrace=1 can exceed the bound by what
// the program allocates during one mark: it depends on the allocation rate and GOGC, not on the
// data size (examples/pagerank in 4 MiB: 4.7 and 4.9 MiB stopping the world at 1M and 10M
// edges, 8.0 and 9.9 MiB concurrently).
//
// # Budget, Go memory limit and RSS
//
// The budget bounds the live heap Spillway holds; it does not bound the process's resident set.
// The Go collector lets the heap grow to twice the live heap (GOGC=100) before it collects, and
// the process also holds goroutine stacks, runtime metadata, the binary and whatever the
// application allocates outside Spillway. Three figures therefore matter:
//
//	budget           ≥ what Spillway grants (the live heap it holds stays within budget + slack)
//	Go memory limit  = budget + NonSpillwayAllowance, with Config.SetGoMemoryLimit
//	RSS              ≈ the Go memory limit + the binary's mapped code and data (a few MiB)
//
// [Config.SetGoMemoryLimit] sets the Go memory limit (debug.SetMemoryLimit) to the on-heap region
// plus [Config.NonSpillwayAllowance] (default 32 MiB + region/4), so the collector runs as the
// process approaches the limit instead of letting the heap double: it fits Spillway's bound to
// the container's limit, which the process must not reach. CockroachDB does the same: it
// derives its Go memory limit from its SQL memory budget (--max-sql-memory) and cache size
// rather than leaving GOMEMLIMIT unset. The limit is soft: a live heap above it (an application
// holding more than its allowance) makes the collector run continuously without stopping the
// growth; [Config.GoHeapFeedback] is the way to make Spillway yield memory to such an
// application. The limit only binds once twice the live heap (GOGC's target) exceeds it, that
// is for budgets above about 32 MiB with the default allowance; below, the collector's own
// pacing keeps RSS under the limit anyway. Measured on a 2-core VM (peak live heap from the GC
// trace, peak RSS from ru_maxrss):
//
//	workload                                   budget   Go limit   peak live heap   peak RSS
//	bench/cmd/rssbound (8M records, 2M keys)   16 MiB   none       18 MiB            51 MiB
//	                                           16 MiB   52 MiB     21 MiB            47 MiB
//	                                           64 MiB   none       54 MiB           176 MiB
//	                                           64 MiB   112 MiB    54 MiB           115 MiB
//	examples/pagerank (1M edges, 2 cores)       8 MiB   none       15 MiB            41 MiB
//	                                            8 MiB   42 MiB     11 MiB            35 MiB
//	                                           32 MiB   none       19 MiB            52 MiB
//	                                           32 MiB   72 MiB     20 MiB            53 MiB
//
// bench/cmd/rssbound fails when RSS exceeds the limit by more than its -margin (16 MiB); RSS
// stayed within 0–5 MiB of the limit in these runs.
//
// # Unmanaged memory
//
// Spark 4.1's unmanaged-memory tracking (SPARK-53001) is ported per manager: components that
// allocate outside Spillway register an [UnmanagedConsumer] ([UnifiedManager.RegisterUnmanaged]),
// which is polled at most once per [Config.UnmanagedPollInterval] (0, the default, ignores
// unmanaged memory, as Spark's default does), and the total per mode is subtracted from the size
// execution may reach (computeMaxExecutionPoolSize) and from the storage fail-fast limit. There
// is no polling goroutine: the acquisition that finds the last poll older than the interval
// polls (a clock read and an atomic load otherwise), and [UnifiedManager.PollUnmanaged] polls at
// once. A consumer reporting [ErrUnmanagedInactive] is unregistered; an error or a negative count
// is logged and counts as 0; a count above the machine's memory is logged and clamped to it.
//
// [Config.GoHeapFeedback] adds a source no peer has: the live Go heap (runtime/metrics
// /gc/heap/live:bytes, the heap the last collection marked, read without stopping the world)
// less the on-heap memory Spillway granted (at its highest since the previous collection was
// seen), less the on-heap consumers' bytes, less NonSpillwayAllowance and Spillway's slack
// (region/10 + 2 MiB). Spillway then grants less, and spills earlier, when the application holds
// more than its allowance. A poll reads two runtime/metrics samples, about 1.5 µs
// (BenchmarkHeapFeedback: 1.7–2.4 µs per acquire and release polling every time, against
// 60–100 ns without tracking), at most once per interval (10 ms by default); while tracking is
// on, every acquisition also reads the clock (130–200 ns on the VM measured). With
// examples/pagerank holding a 10M-edge list (about 160 MiB) outside Spillway under a 128 MiB
// budget and a 192 MiB Go limit (one core, one iteration), the peak live heap during the run
// fell from 295 MiB to 237 MiB with feedback (6 spills instead of 2); under a 4 MiB budget (Go
// limit 37 MiB) the job failed at once with ErrOutOfMemory reporting 123 MiB of live heap beyond
// the allowance, where without feedback it completed with a 166 MiB peak live heap and 2,039
// collections. Neither run fits the Go limit, which the application's own data exceeds. It is
// off by default: it makes an application over its allowance fail in Spillway instead of
// growing, a choice only the application can make.
//
// # Lock order
//
//  1. TaskManager.mu — one task's acquisitions; held across Consumer.Spill calls.
//  2. UnifiedManager lock (monitor.mu) — every pool field, task entry and counter; waiters
//     release it while they wait on the generation channel.
//  3. The Evictor's own locks — EvictBlocksToFreeSpace runs under the manager's lock.
//
// TaskManager.state (consumer list and page table) is a leaf: it is never held while another
// lock is taken or a consumer is called. Hence: a Spill may call Free, FreePage and
// ReleaseExecution of its own task but must not acquire memory for it (that deadlocks on
// TaskManager.mu, as Spark's contract forbids it too); an Evictor must not call the
// UnifiedManager; and code that calls the UnifiedManager must not hold a lock its Evictor takes.
//
// # Correspondence with Spark
//
// Spark paths are relative to the apache/spark repository; "memory/" stands for
// core/src/main/scala/org/apache/spark/memory/ and "java memory/" for
// core/src/main/java/org/apache/spark/memory/.
//
//	Spillway                            Spark                                           source
//	UnifiedManager                      UnifiedMemoryManager + MemoryManager            memory/UnifiedMemoryManager.scala, memory/MemoryManager.scala
//	NewUnifiedManager, Config.size      UnifiedMemoryManager.apply, getMaxMemory        memory/UnifiedMemoryManager.scala
//	Config                              spark.memory.*, spark.testing.*, pageSize keys  core/src/main/scala/org/apache/spark/internal/config/package.scala
//	Config.UnmanagedPollInterval        spark.memory.unmanagedMemoryPollingInterval     core/src/main/scala/org/apache/spark/internal/config/package.scala
//	UnmanagedConsumer, UnmanagedID      UnmanagedMemoryConsumer, …ConsumerId            memory/UnmanagedMemoryConsumer.scala
//	RegisterUnmanaged, PollUnmanaged, … register…/pollUnmanagedMemoryUsers, getMemoryByComponentType memory/UnifiedMemoryManager.scala
//	InsufficientMemoryError             INVALID_DRIVER_MEMORY / INVALID_EXECUTOR_MEMORY common/utils/src/main/resources/error/error-conditions.json
//	executionPool (unexported)          ExecutionMemoryPool                             memory/ExecutionMemoryPool.scala
//	storagePool (unexported)            StorageMemoryPool                               memory/StorageMemoryPool.scala
//	monitor (unexported)                MemoryPool's lock, wait/notifyAll               memory/MemoryPool.scala
//	growExecutionLocked                 maybeGrowExecutionPool, freeSpaceToShrinkPool   memory/UnifiedMemoryManager.scala, memory/StorageMemoryPool.scala
//	Mode                                MemoryMode                                      java memory/MemoryMode.java
//	TaskID                              taskAttemptId                                   core/src/main/scala/org/apache/spark/TaskContext.scala
//	Block                               BlockId                                         core/src/main/scala/org/apache/spark/storage/BlockId.scala
//	Evictor, SetEvictor                 MemoryStore.evictBlocksToFreeSpace, setMemoryStore core/src/main/scala/org/apache/spark/storage/memory/MemoryStore.scala
//	TransferUnrollToStorage             MemoryStore.transferUnrollToStorage             core/src/main/scala/org/apache/spark/storage/memory/MemoryStore.scala
//	Metrics                             MemoryManager getters (executionMemoryUsed, …)  memory/MemoryManager.scala
//	TaskManager                         TaskMemoryManager                               java memory/TaskMemoryManager.java
//	TaskManager.Close                   cleanUpAllAllocatedMemory + Executor leak check java memory/TaskMemoryManager.java, core/src/main/scala/org/apache/spark/executor/Executor.scala
//	TaskManager.UsageReport             showMemoryUsage                                 java memory/TaskMemoryManager.java
//	TaskManager.PeakExecution           getPeakOnHeap/OffHeapExecutionMemory            java memory/TaskMemoryManager.java (Spark 4.0)
//	VictimOrder, SparkOrder, Victims    the TreeMap in acquireExecutionMemory           java memory/TaskMemoryManager.java
//	Consumer, ConsumerBase              MemoryConsumer                                  java memory/MemoryConsumer.java
//	Page                                MemoryBlock                                     common/unsafe/src/main/java/org/apache/spark/unsafe/memory/MemoryBlock.java
//	NewPage, Page.Free                  HeapMemoryAllocator, UnsafeMemoryAllocator      common/unsafe/src/main/java/org/apache/spark/unsafe/memory/
//	EncodePageNumberAndOffset, Decode*  encodePageNumberAndOffset, decodePageNumber, …  java memory/TaskMemoryManager.java
//	ErrOutOfMemory                      SparkOutOfMemoryError                           java memory/SparkOutOfMemoryError.java
//	ErrPageTooLarge                     TooLargePageException                           java memory/TooLargePageException.java
//	ErrPageTableFull                    IllegalStateException "… maximum of 8192 pages" java memory/TaskMemoryManager.java
//	defaultPageSize, nextPowerOf2       defaultPageSizeBytes, ByteArrayMethods.nextPowerOf2 memory/MemoryManager.scala, common/unsafe/src/main/java/org/apache/spark/unsafe/array/ByteArrayMethods.java
//
// The tests port Spark's scenarios by id: UMM-01..08, UMM-11 and UMM-12..15 (Spark 4.1) from
// UnifiedMemoryManagerSuite, MMS-01..08 from MemoryManagerSuite, EMP-01..05 from
// ExecutionMemoryPoolSuite, TMM-01..12 from TaskMemoryManagerSuite, each test named after its id.
//
// # Deliberate differences from Spark
//
//   - Not implemented: optional admission and the ManagedConsumer SPI (unreleased Spark master);
//     scenario UMM-16 is not ported. Neither is the legacy StaticMemoryManager.
//   - Unmanaged memory (SPARK-53001) is tracked per manager, not per process; there is no poller
//     thread (acquisitions poll, rate-limited by the interval); an inactive consumer returns
//     ErrUnmanagedInactive instead of -1; counts above the machine's memory are clamped. A task's
//     1/2N floor is of the pool less unmanaged memory, so a task never waits for memory an
//     unmanaged consumer holds (Spark's would wait for a release that may never come).
//   - Config.Budget, the Go memory limit and cgroup limits as system memory, SetGoMemoryLimit
//     and GoHeapFeedback have no Spark counterpart (the JVM's -Xmx plays their part).
//   - Waiting is cancelled through ctx instead of a thread interrupt; it returns ctx.Err(). A
//     failed or cancelled acquire also removes an empty entry the task had (Spark leaves it until
//     the task ends), so idle tasks do not shrink others' shares (invariant 5).
//   - TaskManager.GrowPage enlarges a page keeping its bytes and number (Spark copies a LongArray
//     into a new page): off-heap on Linux by mremap, acquiring only the difference; elsewhere by
//     a copy in 1 MiB calls, between which the collector can stop the goroutine.
//   - A request of 0 bytes returns 0 at once (Spark's pool asserts n > 0); negative sizes,
//     invalid modes, double and foreign page frees panic with a "memory: " prefix.
//   - The Evictor returns the bytes it freed and the manager releases them, instead of the store
//     calling releaseStorageMemory from inside the eviction; the bytes of blocks dropped before an
//     Evictor error are still released. When eviction fails during a storage acquisition, the
//     execution memory borrowed for it goes back, so a failed call changes no pool size. Without
//     an Evictor nothing can be evicted (Spark fails with "memory store not initialized yet").
//   - Releasing storage memory and evicting wake waiting tasks too (Spark's storage pool does not
//     notify; Java allows spurious wake-ups, so this only makes waiters re-check sooner).
//   - TaskManager.AcquireExecution gives back what the call had acquired when a Spill fails or the
//     context is cancelled, instead of leaving it charged to the task until cleanup. Every Spill
//     error is returned wrapped (Spark turns IOExceptions into SparkOutOfMemoryError).
//   - Page offsets are relative to Page.Bytes in both modes: Go has no raw addresses, so off-heap
//     pages are not addressed absolutely (TMM-02 is adapted), and TaskManager.Page returns the
//     page in both modes. On-heap pages are exactly the granted size (Spark uses long[] rounded to
//     8 bytes, and subtracts 16 bytes from the default page size under G1).
//   - When an off-heap mapping fails, the memory is released and the error returned; Spark keeps
//     it as acquiredButNotUsed and retries (a JVM allocation failure is catchable; a Go one is not).
//   - Config has no spark.unsafe.offHeap alias (TMM-11 uses OffHeapEnabled). There is no
//     driver/executor role: setting ExecutorMemory makes the manager an executor's, so a small
//     SystemMemory is reported as INVALID_EXECUTOR_MEMORY.SYSTEM_MEMORY (SPARK-58513, UMM-08).
//     A storage fraction of exactly 0 cannot be expressed (0 means the default 0.5).
//   - Close logs "Managed memory leak detected" itself and returns the size; there is no
//     spark.unsafe.exceptionOnMemoryLeak switch — callers decide what a leak means.
//   - The consumer set is a list in order of first acquisition (for stable usage reports);
//     consumers must be comparable. The per-task current usage follows the bytes the pool really
//     released, so a clamped over-release cannot make it negative.
//   - Execution pool use is kept as a running sum instead of summing the task map on every read.
package memory
