package surgewall

/*
#include "surgewall.h"
*/
import "C"

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// MockClock is a clock that moves only when told, for tests: give it to breakers with
// WithClock and move it with Advance.
//
//	clock := surgewall.NewMockClock()
//	b, _ := surgewall.NewBreaker("db", surgewall.WithClock(clock))
//	clock.Advance(5 * time.Second)
type MockClock struct {
	h      *C.surgewall_mock_clock
	closed atomic.Bool
}

// freeMockClock is the cleanup: the handle is freed once the MockClock is unreachable, so
// never while a call on it is in flight.
func freeMockClock(h *C.surgewall_mock_clock) { cleanupsRun.Add(1); C.surgewall_mock_clock_free(h) }

// NewMockClock creates a mock clock. It starts at 1 s. It panics only if the library cannot
// create one (out of handles), which tests cannot recover from anyway.
func NewMockClock() *MockClock {
	var h *C.surgewall_mock_clock
	if st := C.surgewall_mock_clock_new(&h); st != C.SURGEWALL_OK {
		panic(statusErr("mock_clock_new", st))
	}
	c := &MockClock{h: h}
	runtime.AddCleanup(c, freeMockClock, h)
	return c
}

func (c *MockClock) handle() (*C.surgewall_mock_clock, error) {
	maybeGC()
	if c == nil || c.closed.Load() {
		return nil, ErrClosed
	}
	return c.h, nil
}

// Advance moves the clock forward by d. A negative d panics (time does not go back), as
// does a closed clock: both are bugs in the test using it.
func (c *MockClock) Advance(d time.Duration) {
	if d < 0 {
		panic("surgewall: MockClock.Advance with a negative duration")
	}
	h, err := c.handle()
	if err != nil {
		panic(err)
	}
	st := C.surgewall_mock_clock_advance(h, durationNs(d))
	runtime.KeepAlive(c)
	if err := statusErr("mock_clock_advance", st); err != nil {
		panic(err)
	}
}

// Now is the clock's current reading (it starts at 1 s); after Close, the reading Close left.
func (c *MockClock) Now() time.Duration {
	maybeGC()
	var ns C.uint64_t
	st := C.surgewall_mock_clock_now(c.h, &ns)
	runtime.KeepAlive(c)
	mustRead("mock_clock_now", st)
	return nsDuration(ns)
}

// Close marks the clock closed: Advance panics and no new object may use it; Now keeps
// reading, and objects made with it keep their own reference and go on reading it.
// Idempotent; the library memory goes when the MockClock is collected.
func (c *MockClock) Close() error {
	if c != nil {
		c.closed.Store(true)
	}
	return nil
}

var ticker struct {
	mu    sync.Mutex
	users int
	stop  chan struct{}
	done  chan struct{}
}

// StartClockTicker starts (or joins) one goroutine that refreshes the library's coarse clock
// every interval (0 means 1 ms; the first caller's interval wins), and returns the function
// that leaves it; the goroutine stops when the last user leaves. Without a ticker, the
// library reads a precise clock (~25 ns) on each call instead of a ~1 ns coarse one. Breakers
// join the ticker by themselves (see WithoutClockTicker); call this for other objects or to
// keep the ticker running across breakers.
func StartClockTicker(interval time.Duration) (stop func()) {
	if interval <= 0 {
		interval = time.Millisecond
	}
	ticker.mu.Lock()
	defer ticker.mu.Unlock()
	ticker.users++
	if ticker.users == 1 {
		stopCh, done := make(chan struct{}), make(chan struct{})
		ticker.stop, ticker.done = stopCh, done
		C.surgewall_clock_tick()
		go func() {
			defer close(done)
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-stopCh:
					C.surgewall_clock_stop_ticking()
					return
				case <-t.C:
					C.surgewall_clock_tick()
				}
			}
		}()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			ticker.mu.Lock()
			defer ticker.mu.Unlock()
			ticker.users--
			if ticker.users == 0 {
				close(ticker.stop)
				<-ticker.done
			}
		})
	}
}
