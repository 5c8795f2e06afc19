// Package faultmatrix holds the fault matrix, a test (matrix_test.go) that runs every workload
// of the library that touches disk — ExternalAppendOnlyMap, ExternalSorter and ExternalGrouper
// with forced spills, the sort and bypass-merge shuffle writers through shuffle.RunMapStage and
// their readers, and the BlockManager at every storage level that uses disk — over a
// storage/faultfs file system that fails one kind of operation at a time (the 1st, 2nd, ...
// call, and disk-full, torn and short writes), plus seeded random runs that fail any of them.
//
// Every run must end with the correct result or an error wrapping faultfs.ErrInjected (never a
// wrong result or a panic), with no memory held and no file left once the owners are closed.
//
// The sweep fails each call position that a fault-free run of the workload reaches (the first
// three, then doubling, and the last). The random runs log their seed; SPILLWAY_FAULT_SEED=<seed>
// replays them (add SPILLWAY_FAULT_RUNS=1 to replay one run), and SPILLWAY_FAULT_LONG=1 sweeps
// every call position and runs 40 random seeds per workload.
package faultmatrix
