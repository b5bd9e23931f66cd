package surgewall

// #include <stdint.h>
import "C"

import (
	"runtime/cgo"
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
