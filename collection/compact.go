package collection

import "context"

// compactFiles is a compaction of a collection's spill files while it is filled: mp, a
// multiPass with a limit, merges the smallest files of the oldest pass until at most its limit
// are left, with sp's lock released (the merges take their memory from the collection's spill
// I/O consumer, and may make the task spill the collection meanwhile). It returns the files left.
// With the spills of a tiny budget merged k at a time, each record is rewritten about
// log_k(spills) times, as a multi-pass merge at the end would. Call with the lock held. On
// error every file of files is deleted; if the collection was closed meanwhile it returns an
// error wrapping ErrClosed (Close deleted the files).
func compactFiles[F any](ctx context.Context, sp *Spillable, mp *multiPass[F], files []F) ([]F, error) {
	sp.Unlock()
	files, res, _, err := mp.reduce(ctx, files)
	sp.Lock()
	if res != nil {
		res.close()
	}
	if err == nil && sp.Closed() {
		err = sp.closedError("while its spills were merged")
	}
	return files, err
}
