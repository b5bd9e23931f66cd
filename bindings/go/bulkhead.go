package surgewall

/*
#include "surgewall.h"
*/
import "C"

import (
	"container/list"
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Bulkhead limits how many calls run at once. Slots are taken with one atomic operation in
// the library; callers that may wait (WithMaxWait) wait in Go, in FIFO order, so that a
// wait honours ctx's deadline and cancellation and blocks no OS thread. Safe for
// concurrent use.
type Bulkhead struct {
	h       *C.surgewall_bulkhead
	closed  atomic.Bool
	name    string
	maxWait time.Duration

	waiting atomic.Int64 // goroutines in the queue (new callers queue behind them)
	mu      sync.Mutex
	queue   list.List // of chan struct{}, FIFO

	waited, timedOut, totalWaitNs, maxWaitNs atomic.Uint64
}

func freeBulkhead(h *C.surgewall_bulkhead) { cleanupsRun.Add(1); C.surgewall_bulkhead_free(h) }

// bulkheadSettings are the options of the bulkheads.
type bulkheadSettings struct {
	maxWait      time.Duration
	globalMax    int
	globalMaxSet bool
	limits       []keyLimit
}

// keyLimit is one key's own limit in a KeyedBulkhead.
type keyLimit struct {
	key   string
	key64 uint64
	isStr bool
	n     int
}

// WithMaxWait lets a Bulkhead's Acquire wait up to d for a slot (the caller's ctx can
// shorten any wait). Default 0: never wait.
func WithMaxWait(d time.Duration) Option {
	return opt("max_wait", kindBulkhead, func(s *settings) {
		if d < 0 {
			s.fail(&ConfigError{Field: "max_wait", Message: fmt.Sprintf("must not be negative, got %v", d)})
			return
		}
		s.bulkhead.maxWait = d
	})
}

// NewBulkhead creates a bulkhead with maxConcurrent slots. Its one option is WithMaxWait.
func NewBulkhead(name string, maxConcurrent int, opts ...Option) (*Bulkhead, error) {
	if versionErr != nil {
		return nil, versionErr
	}
	s := collect(opts)
	if err := s.only(kindBulkhead, "a bulkhead"); err != nil {
		return nil, err
	}
	if maxConcurrent < 0 || maxConcurrent > math.MaxUint32 {
		return nil, &ConfigError{Field: "max_concurrent", Message: fmt.Sprintf("must be in [1, %d], got %d", uint32(math.MaxUint32), maxConcurrent)}
	}
	var h *C.surgewall_bulkhead
	var cerr *C.surgewall_error
	// The library gets no wait of its own: waiting happens in Go (see Acquire).
	st := C.surgewall_bulkhead_new(cBytes(name), C.size_t(len(name)), C.uint32_t(maxConcurrent), 0, nil, &h, &cerr)
	if st != C.SURGEWALL_OK {
		return nil, constructorErr("bulkhead_new", st, cerr)
	}
	b := &Bulkhead{h: h, name: name, maxWait: s.bulkhead.maxWait}
	runtime.AddCleanup(b, freeBulkhead, h)
	return b, nil
}

// Name is the bulkhead's name.
func (b *Bulkhead) Name() string { return b.name }

func (b *Bulkhead) handle() (*C.surgewall_bulkhead, error) {
	maybeGC()
	if b.closed.Load() {
		return nil, ErrClosed
	}
	return b.h, nil
}

// TryAcquire takes a slot without waiting: nil, or an error matching ErrBulkheadFull.
// Every nil must be followed by exactly one Release.
func (b *Bulkhead) TryAcquire() error {
	h, err := b.handle()
	if err != nil {
		return err
	}
	st := C.surgewall_bulkhead_try_acquire(h)
	runtime.KeepAlive(b)
	if st == C.SURGEWALL_BULKHEAD_FULL {
		return &BulkheadFullError{Bulkhead: b.name}
	}
	return statusErr("bulkhead_try_acquire", st)
}

// BulkheadFullError is a refusal by a Bulkhead or a KeyedBulkhead: "was I shed?" is
// errors.Is(err, ErrBulkheadFull). It matches ErrTimeout as well when the caller waited its
// whole max wait (WithMaxWait), and unwraps to the caller's context error (Cause) when the
// context ended the wait first, so errors.Is(err, context.DeadlineExceeded) still says why.
type BulkheadFullError struct {
	// Bulkhead is the bulkhead's name.
	Bulkhead string
	// Keyed is true for a KeyedBulkhead's refusal. Key is then the string key of the call
	// ("" when it was made with a uint64 key) and KeyID its 64-bit key (KeyedBulkhead.KeyOf);
	// Global says that the limit across all keys refused, not the key's own.
	Keyed  bool
	Key    string
	KeyID  uint64
	Global bool
	// Waited is how long the caller waited before the refusal (0: it did not wait).
	Waited time.Duration
	// TimedOut: the caller waited its whole max wait (WithMaxWait).
	TimedOut bool
	// Cause is the caller's context error when the context ended the wait, else nil.
	Cause error
}

func (e *BulkheadFullError) Error() string {
	msg := fmt.Sprintf("surgewall: bulkhead %q is full", e.Bulkhead)
	if e.Keyed {
		limit := "its limit"
		if e.Global {
			limit = "the global limit"
		}
		msg = fmt.Sprintf("surgewall: bulkhead %q refused %s: %s reached", e.Bulkhead, keyName(e.Key, e.KeyID), limit)
	}
	switch {
	case e.Cause != nil:
		return fmt.Sprintf("%s (waited %v: %v)", msg, e.Waited, e.Cause)
	case e.TimedOut:
		return fmt.Sprintf("%s (waited %v)", msg, e.Waited)
	}
	return msg
}

// Is matches ErrBulkheadFull, and ErrTimeout after a whole max wait (WithMaxWait).
func (e *BulkheadFullError) Is(target error) bool {
	return target == ErrBulkheadFull || (e.TimedOut && target == ErrTimeout)
}

// Unwrap returns the caller's context error when the context ended the wait, else nil.
func (e *BulkheadFullError) Unwrap() error { return e.Cause }

// Acquire takes a slot, waiting up to the bulkhead's max wait (WithMaxWait; no longer than
// ctx allows) behind earlier waiters. It returns nil or a *BulkheadFullError (ErrBulkheadFull), also
// when ctx ends the wait (the error then unwraps to ctx.Err()); a ctx already done returns
// ctx.Err() as is, without trying. Every nil must be followed by exactly one Release.
func (b *Bulkhead) Acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.waiting.Load() == 0 {
		if err := b.TryAcquire(); err == nil || b.maxWait == 0 || !isFull(err) {
			return err
		}
	} else if b.maxWait == 0 {
		return &BulkheadFullError{Bulkhead: b.name}
	}
	return b.wait(ctx)
}

func isFull(err error) bool { _, ok := err.(*BulkheadFullError); return ok }

func (b *Bulkhead) wait(ctx context.Context) error {
	start := time.Now()
	timer := time.NewTimer(b.maxWait)
	defer timer.Stop()
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	el := b.queue.PushBack(ch)
	b.waiting.Add(1)
	b.mu.Unlock()
	b.waited.Add(1)
	leave := func() {
		b.mu.Lock()
		if el != nil {
			b.queue.Remove(el)
			b.waiting.Add(-1)
			el = nil
		}
		b.mu.Unlock()
	}
	defer func() {
		leave()
		d := uint64(time.Since(start))
		b.totalWaitNs.Add(d)
		for m := b.maxWaitNs.Load(); d > m && !b.maxWaitNs.CompareAndSwap(m, d); m = b.maxWaitNs.Load() {
		}
	}()
	// A release may have happened between the first try and joining the queue.
	b.wakeFirst()
	for {
		select {
		case <-ch:
			err := b.TryAcquire()
			if err == nil || !isFull(err) {
				leave()
				b.wakeFirst() // pass on a slot this waiter may not need (a second release)
				return err
			}
			// Another caller took the slot first; stay in line.
		case <-ctx.Done():
			leave()
			b.passOn(ch)
			return &BulkheadFullError{Bulkhead: b.name, Waited: time.Since(start), Cause: ctx.Err()}
		case <-timer.C:
			leave()
			b.passOn(ch)
			b.timedOut.Add(1)
			return &BulkheadFullError{Bulkhead: b.name, Waited: time.Since(start), TimedOut: true}
		}
	}
}

// passOn gives a wake-up this waiter received but will not use to the next waiter.
func (b *Bulkhead) passOn(ch chan struct{}) {
	select {
	case <-ch:
		b.wakeFirst()
	default:
	}
}

// wakeFirst signals the first waiter (if any) to try for a slot.
func (b *Bulkhead) wakeFirst() {
	if b.waiting.Load() == 0 {
		return
	}
	b.mu.Lock()
	if e := b.queue.Front(); e != nil {
		select {
		case e.Value.(chan struct{}) <- struct{}{}:
		default:
		}
	}
	b.mu.Unlock()
}

// Release gives a slot back (ErrUnexpectedResult when none was taken: nothing changes).
func (b *Bulkhead) Release() error {
	h, err := b.handle()
	if err != nil {
		return err
	}
	st := C.surgewall_bulkhead_release(h)
	runtime.KeepAlive(b)
	b.wakeFirst()
	return statusErr("bulkhead_release", st)
}

// SetMaxConcurrent changes the limit live (1..16777215, otherwise a *ConfigError naming
// max_concurrent) and returns the previous one. Growing lets the goroutines waiting in
// Acquire in, oldest first; shrinking leaves the slots held valid, and new calls wait (or are
// refused) until fewer than the new limit are in flight.
func (b *Bulkhead) SetMaxConcurrent(n int) (old int, err error) {
	if n < 1 || n > maxConcurrentLimit {
		return 0, &ConfigError{Field: "max_concurrent", Message: fmt.Sprintf("must be in [1, %d], got %d", maxConcurrentLimit, n)}
	}
	h, err := b.handle()
	if err != nil {
		return 0, err
	}
	var o C.uint32_t
	st := C.surgewall_bulkhead_set_max_concurrent(h, C.uint32_t(n), &o)
	runtime.KeepAlive(b)
	if err := statusErr("bulkhead_set_max_concurrent", st); err != nil {
		return 0, err
	}
	b.wakeFirst() // new slots: each waiter that gets one wakes the next
	return int(o), nil
}

// maxConcurrentLimit is the largest limit a bulkhead takes (its in-flight count has 24 bits).
const maxConcurrentLimit = 1<<24 - 1

// Execute runs fn in a slot (see Acquire) and gives the slot back, also when fn panics.
func (b *Bulkhead) Execute(ctx context.Context, fn func(context.Context) error) error {
	if err := b.Acquire(ctx); err != nil {
		return err
	}
	defer b.Release()
	return fn(ctx)
}

// BulkheadMetrics is a snapshot of a bulkhead.
type BulkheadMetrics struct {
	// Active calls now (never above MaxConcurrent, except after a shrink while the slots held
	// before it are out); Waiting goroutines now. MaxConcurrent is the limit in force.
	Active, Waiting, MaxConcurrent uint64
	// Accepted, ever; Rejected: refused tries, ever (a waiter's failed tries included).
	Accepted, Rejected uint64
	// TimedOut: waits that ran out; Waited: calls that had to wait.
	TimedOut, Waited   uint64
	TotalWait, MaxWait time.Duration
	UnexpectedReleases uint64
}

// Metrics returns a snapshot. Waits happen in Go, so their counts come from Go.
func (b *Bulkhead) Metrics() BulkheadMetrics {
	maybeGC()
	var s C.struct_surgewall_bulkhead_stats
	st := C.surgewall_bulkhead_metrics(b.h, &s)
	runtime.KeepAlive(b)
	mustRead("bulkhead_metrics", st)
	return BulkheadMetrics{
		Active: uint64(s.active), Waiting: uint64(b.waiting.Load()), MaxConcurrent: uint64(s.max_concurrent),
		Accepted: uint64(s.accepted), Rejected: uint64(s.rejected),
		TimedOut: b.timedOut.Load(), Waited: b.waited.Load(),
		TotalWait: time.Duration(b.totalWaitNs.Load()), MaxWait: time.Duration(b.maxWaitNs.Load()),
		UnexpectedReleases: uint64(s.unexpected_releases),
	}
}

// Close marks the bulkhead closed: later acquires and releases return ErrClosed; Metrics
// keeps reading. Idempotent; the library memory goes when the Bulkhead is collected.
func (b *Bulkhead) Close() error {
	b.closed.Store(true)
	return nil
}
