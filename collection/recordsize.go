package collection

import (
	"reflect"
	"unsafe"

	"github.com/spillway/spillway/estimator"
)

// recordSizer returns a function estimating the heap bytes a value of type T references beyond
// its own bytes (which live in a table slot or buffer element the collection's tracker
// measures), for the memory.Strict accounting of large records: the length of a string, the
// capacity of a slice of pointer-free elements, an estimator.Estimator's walk for any other type
// holding pointers. It returns nil for a pointer-free T, whose records reference nothing.
func recordSizer[T any]() func(T) int64 {
	t := reflect.TypeFor[T]()
	switch {
	case !hasPointers(t):
		return nil
	case t.Kind() == reflect.String:
		return func(v T) int64 { return int64(len(*(*string)(unsafe.Pointer(&v)))) }
	case t.Kind() == reflect.Slice && !hasPointers(t.Elem()):
		elem := int64(t.Elem().Size())
		// Every slice has the same header, whatever its element type.
		return func(v T) int64 { return int64(cap(*(*[]byte)(unsafe.Pointer(&v)))) * elem }
	}
	est := new(estimator.Estimator) // caches T's layout across records
	return func(v T) int64 { return est.Estimate(v) }
}

// hasPointers reports whether a value of type t holds pointers the garbage collector follows.
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	}
	return true
}

// recordSizes estimates the bytes a key-value record references beyond its slot (see
// recordSizer). Its zero value, and the value of newRecordSizes in memory.SparkAllowances
// accounting, counts nothing.
type recordSizes[K, V any] struct {
	key func(K) int64
	val func(V) int64
}

// newRecordSizes returns the sizers of K and V, or the zero recordSizes unless strict.
func newRecordSizes[K, V any](strict bool) recordSizes[K, V] {
	if !strict {
		return recordSizes[K, V]{}
	}
	return recordSizes[K, V]{key: recordSizer[K](), val: recordSizer[V]()}
}

// of returns the estimated bytes k and v reference.
func (r *recordSizes[K, V]) of(k K, v V) (key, val int64) {
	if r.key != nil {
		key = r.key(k)
	}
	if r.val != nil {
		val = r.val(v)
	}
	return key, val
}
