package estimator

import (
	"reflect"
	"unsafe"
)

// kind says how the walker treats the bytes of a value of some type.
type kind uint8

const (
	kindFlat      kind = iota // nothing to follow: numbers, funcs, unsafe.Pointer, pointer-free aggregates
	kindPointer               // *T
	kindString                // string: a pointer-free backing array
	kindSlice                 // []T: a backing array of cap elements
	kindInterface             // any or a non-empty interface: a boxed dynamic value
	kindMap                   // map[K]V: a pointer to a runtime Map header
	kindChan                  // chan T: a pointer to a runtime hchan
	kindStruct                // struct with at least one field to follow
	kindArray                 // [n]T whose elements have something to follow
)

// boxRule says what the runtime allocates to store a value of a type in an interface
// (cmd/compile/internal/walk/convert.go and runtime/iface.go).
type boxRule uint8

const (
	boxAlloc  boxRule = iota // convT/convTnoptr: a new object of the type's size
	boxDirect                // pointer-shaped: the interface's data word is the value itself
	boxNone                  // zero-size values (zerobase) and bool/int8/uint8 (staticuint64s)
	boxSmall                 // 2, 4 or 8 pointer-free bytes: convT16/32/64, static below 256
	boxString                // convTstring: static for "", else a 16-byte box
	boxSlice                 // convTslice: static for a nil data pointer, else a 24-byte box
)

// layout is the per-type information the walker needs, computed once per type and cached in
// an Estimator.
type layout struct {
	typ  reflect.Type
	size int64
	kind kind
	// scan reports whether the type holds pointers, so the runtime allocates it in a scanned
	// span (with a malloc header above 512 bytes).
	scan bool
	// follow reports whether a value of this type can reach memory outside itself that the
	// walker counts (pointers, strings, slices, interfaces, maps, channels). Funcs and
	// unsafe.Pointers are pointers the walker does not follow.
	follow bool
	box    boxRule
	// sizer reports whether the type implements Sizer; for a pointer type, whether the
	// pointer does, which covers methods of the pointee with either receiver.
	sizer bool

	elem   *layout // pointee, slice, array or channel element
	length int     // array length
	fields []field // struct fields with follow set
	m      *mapLayout
}

type field struct {
	off uintptr
	l   *layout
}

// mapLayout mirrors the runtime's group layout for one map type (reflect.groupAndSlotOf):
// a group is an 8-byte control word followed by 8 slots, a slot is the key then the element,
// and keys or elements over 128 bytes are stored as pointers to separate objects.
type mapLayout struct {
	group    *layout // struct{Ctrl uint64; Slots [8]slot}
	slot     *layout // struct{Key K or *K; Elem V or *V}
	slotsOff uintptr
	slotSize uintptr
}

const (
	mapGroupSlots   = 8   // abi.MapGroupSlots
	mapMaxKeyBytes  = 128 // abi.MapMaxKeyBytes
	mapMaxElemBytes = 128 // abi.MapMaxElemBytes
)

var sizerType = reflect.TypeFor[Sizer]()

// layoutOf returns the cached layout of t, computing and caching it (and the layouts of the
// types it refers to) on first use.
func (e *Estimator) layoutOf(t reflect.Type) *layout {
	if l, ok := e.layouts.Load(t); ok {
		return l.(*layout)
	}
	b := builder{e: e, building: map[reflect.Type]*layout{}}
	l := b.build(t)
	// Publish only complete layouts: a recursive type's layouts point at each other, so all
	// of them are stored once the whole group is built.
	for t, bl := range b.building {
		e.layouts.LoadOrStore(t, bl)
	}
	return l
}

type builder struct {
	e        *Estimator
	building map[reflect.Type]*layout
}

func (b *builder) build(t reflect.Type) *layout {
	if l, ok := b.building[t]; ok {
		return l
	}
	if l, ok := b.e.layouts.Load(t); ok {
		return l.(*layout)
	}
	scan, follow := pointerFlags(t)
	l := &layout{typ: t, size: int64(t.Size()), scan: scan, follow: follow}
	// Registered before the types it refers to are built, so a recursive type (type T struct{
	// next *T }) finds itself; its flags are already final, which is all a referrer reads.
	b.building[t] = l
	l.sizer = t.Implements(sizerType)
	switch t.Kind() {
	case reflect.Pointer:
		l.kind = kindPointer
		l.elem = b.build(t.Elem())
	case reflect.String:
		l.kind = kindString
	case reflect.Slice:
		l.kind = kindSlice
		l.elem = b.build(t.Elem())
	case reflect.Interface:
		l.kind = kindInterface
	case reflect.Map:
		l.kind = kindMap
		l.m = b.mapLayout(t)
	case reflect.Chan:
		l.kind = kindChan
		l.elem = b.build(t.Elem())
	case reflect.Struct:
		if follow {
			l.kind = kindStruct
			for i := range t.NumField() {
				f := t.Field(i)
				if fl := b.build(f.Type); fl.follow {
					l.fields = append(l.fields, field{off: f.Offset, l: fl})
				}
			}
		}
	case reflect.Array:
		if follow {
			l.kind = kindArray
			l.elem = b.build(t.Elem())
			l.length = t.Len()
		}
	default: // booleans, numbers, funcs, unsafe.Pointers: kindFlat
	}
	l.box = boxRuleOf(t, l.scan)
	return l
}

func (b *builder) mapLayout(t reflect.Type) *mapLayout {
	kt, et := t.Key(), t.Elem()
	if kt.Size() > mapMaxKeyBytes {
		kt = reflect.PointerTo(kt)
	}
	if et.Size() > mapMaxElemBytes {
		et = reflect.PointerTo(et)
	}
	// The same construction as reflect.groupAndSlotOf, so sizes, offsets and padding are the
	// runtime's.
	slot := reflect.StructOf([]reflect.StructField{{Name: "Key", Type: kt}, {Name: "Elem", Type: et}})
	group := reflect.StructOf([]reflect.StructField{
		{Name: "Ctrl", Type: reflect.TypeFor[uint64]()},
		{Name: "Slots", Type: reflect.ArrayOf(mapGroupSlots, slot)},
	})
	return &mapLayout{
		group:    b.build(group),
		slot:     b.build(slot),
		slotsOff: group.Field(1).Offset,
		slotSize: slot.Size(),
	}
}

// pointerFlags reports whether values of type t hold pointers (scan) and whether they hold
// pointers the walker follows (follow: all but funcs and unsafe.Pointers). It looks only at
// t's inline parts, so it terminates on recursive types.
func pointerFlags(t reflect.Type) (scan, follow bool) {
	switch t.Kind() {
	case reflect.Pointer, reflect.String, reflect.Slice, reflect.Interface, reflect.Map, reflect.Chan:
		return true, true
	case reflect.Func, reflect.UnsafePointer:
		return true, false
	case reflect.Struct:
		for i := range t.NumField() {
			s, f := pointerFlags(t.Field(i).Type)
			scan, follow = scan || s, follow || f
		}
		return scan, follow
	case reflect.Array:
		if t.Len() == 0 {
			return false, false
		}
		return pointerFlags(t.Elem())
	}
	return false, false
}

// boxRuleOf mirrors the compiler's choice of conversion when a value of type t is stored in
// an interface (walk.dataWord and walk.dataWordFuncName).
func boxRuleOf(t reflect.Type, scan bool) boxRule {
	size, align := t.Size(), t.Align()
	switch {
	case pointerShaped(t):
		return boxDirect
	case size == 0:
		return boxNone
	case size == 1 && (t.Kind() == reflect.Bool || t.Kind() == reflect.Int8 || t.Kind() == reflect.Uint8):
		return boxNone
	case size == 2 && align == 2, size == 4 && align == 4 && !scan, size == 8 && align == 8 && !scan:
		return boxSmall
	}
	switch soleComponent(t).Kind() {
	case reflect.String:
		return boxString
	case reflect.Slice:
		return boxSlice
	}
	return boxAlloc
}

// pointerShaped mirrors types.IsDirectIface: one word that is a pointer.
func pointerShaped(t reflect.Type) bool {
	if t.Size() != unsafe.Sizeof(uintptr(0)) {
		return false
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return true
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.Offset == 0 && f.Type.Size() == t.Size() {
				return pointerShaped(f.Type)
			}
		}
	case reflect.Array:
		return t.Len() == 1 && pointerShaped(t.Elem())
	}
	return false
}

// soleComponent mirrors types.Type.SoleComponent.
func soleComponent(t reflect.Type) reflect.Type {
	for {
		switch {
		case t.Kind() == reflect.Struct && t.NumField() == 1:
			t = t.Field(0).Type
		case t.Kind() == reflect.Array && t.Len() == 1:
			t = t.Elem()
		default:
			return t
		}
	}
}
