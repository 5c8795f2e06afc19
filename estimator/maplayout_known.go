//go:build !go1.27

package estimator

// mapLayoutKnown reports that this Go release's map layout is the one runtimeMap and
// runtimeTable mirror (internal/runtime/maps of Go 1.24 to 1.26; go.mod requires 1.26). A newer
// release is not trusted: reading its maps through the mirror could follow a garbage pointer, so
// there Estimate falls back to mapModel until the mirror is checked against that release.
const mapLayoutKnown = true
