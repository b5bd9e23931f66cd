package surgewall

// #include <stdint.h>
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

// surgewallGoKeyVisit receives one key from surgewall_keyed_bulkhead_for_each (through the
// trampoline in keyed.go). user is a cgo.Handle to the *[]KeyState being filled: C never
// holds a Go pointer. It only appends, so it cannot panic into the library's frames or call
// back into the keyed bulkhead while the library holds its map.
//
//export surgewallGoKeyVisit
func surgewallGoKeyVisit(user C.uintptr_t, key C.uint64_t, active C.uint64_t, limit C.uint32_t) {
	out := cgo.Handle(user).Value().(*[]KeyState)
	*out = append(*out, KeyState{Key: uint64(key), Active: uint64(active), Limit: uint32(limit)})
}

// surgewallGoKeyedBreakerVisit receives one key from surgewall_keyed_breaker_for_each
// (through the trampoline in keyed_breaker.go): user is a cgo.Handle to the *[]KeySnapshot
// being filled, stats the library's snapshot, valid during the call. It only appends.
//
//export surgewallGoKeyedBreakerVisit
func surgewallGoKeyedBreakerVisit(user C.uintptr_t, key C.uint64_t, stats unsafe.Pointer) {
	out := cgo.Handle(user).Value().(*[]KeySnapshot)
	*out = append(*out, keySnapshotAt(uint64(key), stats))
}
