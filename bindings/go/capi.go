package surgewall

/*
#include "surgewall.h"

// The library keeps no pointer it is given (header: "No function keeps a pointer you pass in
// after it returns") and never calls back into Go, so out-params may live on the Go stack:
// without these, each &permit would escape to the heap (one allocation per call).
#cgo noescape surgewall_breaker_acquire
#cgo nocallback surgewall_breaker_acquire
#cgo nocallback surgewall_breaker_record_timed
#cgo noescape surgewall_breaker_state
#cgo nocallback surgewall_breaker_state
#cgo noescape surgewall_breaker_retry_after
#cgo nocallback surgewall_breaker_retry_after
#cgo noescape surgewall_breaker_metrics
#cgo nocallback surgewall_breaker_metrics
#cgo noescape surgewall_subscription_poll
#cgo nocallback surgewall_subscription_poll
#cgo noescape surgewall_mock_clock_now
#cgo nocallback surgewall_mock_clock_now

// A Go constant cannot be taken from a macro of another type reliably; mirror it.
static uint32_t surgewall_go_header_version(void) { return SURGEWALL_VERSION_NUMBER; }
*/
import "C"

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
	"unsafe"
)

// cleanupsRun counts library handles freed by cleanups (objects collected), for tests.
var cleanupsRun atomic.Int64

// Forever is the RetryAfter of an indefinite forced open.
const Forever = time.Duration(math.MaxInt64)

// versionErr is set when the library linked in is not the one the header describes; every
// constructor then returns it (a mismatched pair would misread structs).
var versionErr = checkVersion()

func checkVersion() error {
	h, l := uint32(C.surgewall_go_header_version()), uint32(C.surgewall_version_number())
	if h != l {
		return fmt.Errorf("%w: header %d, library %d (%s)", ErrVersionMismatch, h, l,
			C.GoString(C.surgewall_version()))
	}
	return nil
}

// Version is the linked library's version ("MAJOR.MINOR.PATCH").
func Version() string { return C.GoString(C.surgewall_version()) }

// nsDuration converts library nanoseconds (UINT64_MAX: never) to a Duration.
func nsDuration(ns C.uint64_t) time.Duration {
	if uint64(ns) > math.MaxInt64 {
		return Forever
	}
	return time.Duration(ns)
}

// cBytes points the library at a Go string's bytes (it keeps no pointer after the call).
func cBytes(s string) *C.uint8_t { return (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(s))) }

// durationNs converts a Duration to the library's signed nanoseconds.
func durationNs(d time.Duration) C.int64_t { return C.int64_t(d) }
