package surgewall

/*
#include "surgewall.h"

// The hot-path record with the handle as an integer: cgo checks every pointer argument
// (cgoCheckPointer) even though a handle is not an address; an integer skips that (~3 %).
static inline surgewall_status surgewall_go_record(uintptr_t b, surgewall_permit p, int32_t o) {
	return surgewall_breaker_record((const surgewall_breaker *)b, p, o);
}
#cgo nocallback surgewall_go_record
*/
import "C"

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// State is a breaker state.
type State int32

const (
	// StateClosed: calls pass; outcomes are recorded; the trip rules apply.
	StateClosed State = C.SURGEWALL_STATE_CLOSED
	// StateOpen: calls are rejected until the open wait is over.
	StateOpen State = C.SURGEWALL_STATE_OPEN
	// StateHalfOpen: a fixed number of probes pass; their outcomes decide.
	StateHalfOpen State = C.SURGEWALL_STATE_HALF_OPEN
	// StateForcedOpen: opened by hand.
	StateForcedOpen State = C.SURGEWALL_STATE_FORCED_OPEN
	// StateDisabled: everything passes, nothing is recorded.
	StateDisabled State = C.SURGEWALL_STATE_DISABLED
	// StateMetricsOnly: everything passes and is recorded; never trips.
	StateMetricsOnly State = C.SURGEWALL_STATE_METRICS_ONLY
)

var stateNames = [...]string{"closed", "open", "half_open", "forced_open", "disabled", "metrics_only"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Breaker is a circuit breaker backed by the surgewall library. It is safe for concurrent
// use. Close it when done with it.
type Breaker struct {
	// Hot fields first. word points at the breaker's packed state word in C memory; it stays
	// valid while the library handle lives, which is until b is unreachable.
	word     *uint64
	salt     uint64
	fast     bool // the breaker does not time calls: admit from the state word
	closed   atomic.Bool
	hv       C.uintptr_t // h as an integer, for the hot path
	h        *C.surgewall_breaker
	classify func(error) Outcome
	fallback func(context.Context, error) error
	name     string
	id       uint64
	res      *breakerRes
}

// breakerRes owns a Breaker's library handle. The handle is freed only by the cleanup, once
// the Breaker is unreachable: then no goroutine can be inside a call on it (every method
// keeps b alive until its C call returns), which the library requires of a free. Close only
// marks the Breaker closed, so it is safe while calls are in flight.
type breakerRes struct {
	h          *C.surgewall_breaker
	untickOnce sync.Once
	untick     func() // leaves the shared clock ticker (nil when not joined)
}

func (r *breakerRes) leaveTicker() {
	r.untickOnce.Do(func() {
		if r.untick != nil {
			r.untick()
		}
	})
}

func (r *breakerRes) release() {
	cleanupsRun.Add(1)
	r.leaveTicker()
	C.surgewall_breaker_free(r.h)
}

// NewBreaker creates a breaker named name. Without options it trips at a 50 % failure rate
// over a 60 s window once 20 calls are in it, stays open 5 s and then admits 3 probes.
// Invalid options give a *ConfigError naming the field (errors.Is(err, ErrInvalidConfig)).
func NewBreaker(name string, opts ...Option) (*Breaker, error) {
	if versionErr != nil {
		return nil, versionErr
	}
	s := collect(opts)
	if err := s.only(kindBreaker, "a breaker"); err != nil {
		return nil, err
	}
	return newBreaker(name, s)
}

// newBreaker makes a breaker of settings whose kinds the caller checked (NewBreaker,
// BreakerRegistry.Get).
func newBreaker(name string, s settings) (*Breaker, error) {
	cfg, err := s.config(true)
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(s.clock) // until the constructor has consumed cfg
	var h *C.surgewall_breaker
	var cerr *C.surgewall_error
	st := C.surgewall_breaker_new((*C.uint8_t)(unsafe.Pointer(unsafe.StringData(name))), C.size_t(len(name)), cfg, &h, &cerr)
	if st != C.SURGEWALL_OK {
		return nil, constructorErr("breaker_new", st, cerr)
	}
	res := &breakerRes{h: h}
	var fp C.struct_surgewall_breaker_fast_path
	var id C.uint64_t
	if err := statusErr("breaker_get_fast_path", C.surgewall_breaker_get_fast_path(h, &fp)); err != nil {
		res.release()
		return nil, err
	}
	if err := statusErr("breaker_id", C.surgewall_breaker_id(h, &id)); err != nil {
		res.release()
		return nil, err
	}
	classify := s.classify
	if classify == nil {
		classify = DefaultClassifier
	}
	b := &Breaker{
		word:     (*uint64)(unsafe.Pointer(fp.state_word)),
		salt:     uint64(fp.salt),
		fast:     !bool(fp.times_calls) && !s.noFastPath,
		h:        h,
		hv:       C.uintptr_t(uintptr(unsafe.Pointer(h))),
		classify: classify,
		fallback: s.fallback,
		name:     name,
		id:       uint64(id),
		res:      res,
	}
	if !s.noTicker {
		res.untick = StartClockTicker(time.Millisecond)
	}
	runtime.AddCleanup(b, (*breakerRes).release, res)
	return b, nil
}

// Name is the breaker's name.
func (b *Breaker) Name() string { return b.name }

// ID is the breaker's process-unique id: the Source of its events.
func (b *Breaker) ID() uint64 { return b.id }

// Close marks the breaker closed: later calls, permits and manual transitions return
// ErrClosed, and it leaves the clock ticker. The observers (State, RetryAfter, Metrics,
// FallbackPayload, Name, ID) keep reading the breaker as Close left it. Idempotent, and
// safe while calls are in flight (they finish normally). The library's memory for the
// breaker is released when the Breaker is garbage collected.
func (b *Breaker) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.res.leaveTicker()
	return nil
}

// handle returns the library handle, or ErrClosed. Under the debug tag it forces a GC first.
func (b *Breaker) handle() (*C.surgewall_breaker, error) {
	maybeGC()
	if b.closed.Load() {
		return nil, ErrClosed
	}
	return b.h, nil
}

// live returns the handle for an observer, closed or not: it lives while b does.
func (b *Breaker) live() *C.surgewall_breaker {
	maybeGC()
	return b.h
}

// Permit is the right to make one call, from Breaker.Acquire. Report the call's outcome
// exactly once (Done, Record, RecordDuration or Release). A Permit is a plain value.
type Permit struct {
	b *Breaker
	p C.struct_surgewall_permit
}

// acquire returns a permit: built in Go from the state word when the breaker admits without
// bookkeeping (CLOSED, DISABLED, METRICS_ONLY and no call timing: no cgo crossing), else
// from the library.
func (b *Breaker) acquire() (C.struct_surgewall_permit, error) {
	if b.fast && !b.closed.Load() {
		maybeGC() // debug tag: a collection right before the C memory is read
		w := atomic.LoadUint64(b.word)
		switch State(w & 7) {
		case StateClosed, StateDisabled, StateMetricsOnly:
			// token = generation ^ salt (the salt has only its top 24 bits set)
			return C.struct_surgewall_permit{token: C.uint64_t((w >> 24) ^ b.salt)}, nil
		}
	}
	return b.acquireSlow()
}

func (b *Breaker) acquireSlow() (C.struct_surgewall_permit, error) {
	var p C.struct_surgewall_permit
	h, err := b.handle()
	if err != nil {
		return p, err
	}
	var retry C.uint64_t
	st := C.surgewall_breaker_acquire(h, &p, &retry)
	runtime.KeepAlive(b)
	switch st {
	case C.SURGEWALL_OK:
		return p, nil
	case C.SURGEWALL_REJECTED_OPEN:
		return p, &RejectedError{Breaker: b.name, State: StateOpen, RetryAfter: nsDuration(retry), reason: ErrOpen}
	case C.SURGEWALL_REJECTED_HALF_OPEN:
		return p, &RejectedError{Breaker: b.name, State: StateHalfOpen, RetryAfter: nsDuration(retry), reason: ErrHalfOpenFull}
	case C.SURGEWALL_REJECTED_FORCED_OPEN:
		return p, &RejectedError{Breaker: b.name, State: StateForcedOpen, RetryAfter: nsDuration(retry), reason: ErrForcedOpen}
	}
	return p, statusErr("breaker_acquire", st)
}

func (b *Breaker) record(p C.struct_surgewall_permit, o Outcome) error {
	maybeGC()
	if b.closed.Load() {
		return ErrClosed
	}
	st := C.surgewall_go_record(b.hv, p, C.int32_t(o))
	runtime.KeepAlive(b)
	if st == C.SURGEWALL_OK {
		return nil
	}
	return statusErr("breaker_record", st)
}

// Execute runs fn if the breaker admits the call and records how it ended: fn's error is
// classified (WithClassifier; by default nil succeeds, context.Canceled is ignored, anything
// else fails) and returned as is. A panic in fn is recorded as a failure and re-raised. When
// the breaker rejects, Execute returns a *RejectedError (or the fallback's result, see
// WithFallback) without calling fn; an already-done ctx returns ctx.Err().
func (b *Breaker) Execute(ctx context.Context, fn func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := b.acquire()
	if err != nil {
		return b.rejected(ctx, err)
	}
	finished := false
	defer func() {
		if !finished { // fn panicked (or called runtime.Goexit): a failure, then unwind on
			_ = b.record(p, Failure)
		}
	}()
	err = fn(ctx)
	finished = true
	o := Success
	if err != nil {
		o = b.classify(err)
	}
	_ = b.record(p, o)
	return err
}

func (b *Breaker) rejected(ctx context.Context, err error) error {
	if b.fallback != nil {
		if _, ok := err.(*RejectedError); ok {
			return b.fallback(ctx, err)
		}
	}
	return err
}

// Call runs fn through b like Breaker.Execute and returns its value. When the breaker
// rejects, it returns the zero T with the *RejectedError (or the fallback's error).
func Call[T any](ctx context.Context, b *Breaker, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	p, err := b.acquire()
	if err != nil {
		return zero, b.rejected(ctx, err)
	}
	finished := false
	defer func() {
		if !finished {
			_ = b.record(p, Failure)
		}
	}()
	v, err := fn(ctx)
	finished = true
	o := Success
	if err != nil {
		o = b.classify(err)
	}
	_ = b.record(p, o)
	return v, err
}

// CallWithFallback is Call with a fallback that produces a value when the breaker rejects.
func CallWithFallback[T any](ctx context.Context, b *Breaker, fn func(context.Context) (T, error),
	fallback func(context.Context, error) (T, error)) (T, error) {
	v, err := Call(ctx, b, fn)
	if err != nil && fallback != nil {
		if _, ok := err.(*RejectedError); ok {
			return fallback(ctx, err)
		}
	}
	return v, err
}

// Acquire asks for a permit without running anything (the first half of a two-step call).
// It returns a *RejectedError when the breaker refuses.
func (b *Breaker) Acquire() (Permit, error) {
	p, err := b.acquire()
	if err != nil {
		return Permit{}, err
	}
	return Permit{b: b, p: p}, nil
}

// Done classifies err as Execute does and records it.
func (p Permit) Done(err error) error {
	if p.b == nil {
		return ErrInvalidPermit
	}
	o := Success
	if err != nil {
		o = p.b.classify(err)
	}
	return p.b.record(p.p, o)
}

// Record records the outcome. ErrLateResult: the breaker moved on meanwhile and dropped it.
func (p Permit) Record(o Outcome) error {
	if p.b == nil {
		return ErrInvalidPermit
	}
	return p.b.record(p.p, o)
}

// RecordDuration records the outcome of a call that took d (for breakers with slow-call
// rules that do not time calls themselves, and for tests).
func (p Permit) RecordDuration(o Outcome, d time.Duration) error {
	if p.b == nil {
		return ErrInvalidPermit
	}
	h, err := p.b.handle()
	if err != nil {
		return err
	}
	st := C.surgewall_breaker_record_timed(h, p.p, C.int32_t(o), durationNs(d))
	runtime.KeepAlive(p.b)
	return statusErr("breaker_record_timed", st)
}

// Release gives the permit back for a call that was never made (counts nowhere).
func (p Permit) Release() error { return p.Record(Ignored) }

// Allow is the two-step form (gobreaker's TwoStepCircuitBreaker): it returns a done function
// to call exactly once with the call's error (classified as in Execute), or a
// *RejectedError. A second call of done is ignored. done allocates; Acquire does not.
func (b *Breaker) Allow() (done func(error), err error) {
	p, err := b.Acquire()
	if err != nil {
		return nil, err
	}
	var used atomic.Bool
	return func(err error) {
		if !used.Swap(true) {
			_ = p.Done(err)
		}
	}, nil
}

// State is the current state (no side effects: an elapsed open wait shows as OPEN until the
// next call moves it to HALF_OPEN). After Close it is the state Close left.
func (b *Breaker) State() State {
	var s C.surgewall_state
	st := C.surgewall_breaker_state(b.live(), &s)
	runtime.KeepAlive(b)
	mustRead("breaker_state", st)
	return State(s)
}

// RetryAfter is how long until the breaker admits again: 0 when it admits now, Forever for
// an indefinite forced open.
func (b *Breaker) RetryAfter() time.Duration {
	var ns C.uint64_t
	st := C.surgewall_breaker_retry_after(b.live(), &ns)
	runtime.KeepAlive(b)
	mustRead("breaker_retry_after", st)
	return nsDuration(ns)
}

// WindowCounts are the counts of a window and its rates.
//
// A rate is NaN ("not enough data": test it with math.IsNaN, or use Rates) while the window
// holds too few calls to be judged: fewer than Metrics.MinimumCalls in CLOSED and
// METRICS_ONLY, no reported probe in HALF_OPEN (the probes are the half-open window), and
// always in the states without a window (OPEN, FORCED_OPEN, DISABLED). It is never a 0 that
// means "no data".
type WindowCounts struct {
	Calls, Failures, Slow uint64
	FailureRate, SlowRate float64
}

// Rates returns the failure and slow-call rates, and whether they are present (false: not
// enough data to judge them).
func (c WindowCounts) Rates() (failureRate, slowRate float64, ok bool) {
	if math.IsNaN(c.FailureRate) {
		return 0, 0, false
	}
	return c.FailureRate, c.SlowRate, true
}

// Metrics is a snapshot of everything observable about a breaker.
type Metrics struct {
	State       State
	Generation  uint64
	TimeInState time.Duration
	// Window is the current episode's window: the sliding window in CLOSED and METRICS_ONLY,
	// the probes that reported in HALF_OPEN, empty otherwise. LastWindow is the window of the
	// last episode that ended (CLOSED, METRICS_ONLY or HALF_OPEN, whatever it ended in).
	Window, LastWindow WindowCounts
	// MinimumCalls a CLOSED or METRICS_ONLY window needs before its rates are judged.
	MinimumCalls uint64
	// FailureRateThreshold in force; negative when the rule is off.
	FailureRateThreshold                    float64
	Successes, Failures, SlowCalls, Ignored uint64
	RejectedOpen, RejectedHalfOpen          uint64
	LateResults, UnexpectedResults          uint64
	ConsecutiveFailures, ConsecutiveOpens   uint64
	HalfOpenAdmitted, HalfOpenReported      uint64
	// RetryAfter is the time left of an OPEN or timed FORCED_OPEN wait (Forever: a forced open
	// without deadline); 0 in every other state, HALF_OPEN included.
	RetryAfter time.Duration
	// Transitions[from][to] counts transitions, indexed by State.
	Transitions [6][6]uint64
}

func windowCounts(c C.struct_surgewall_window_counts) WindowCounts {
	return WindowCounts{Calls: uint64(c.calls), Failures: uint64(c.failures), Slow: uint64(c.slow),
		FailureRate: float64(c.failure_rate), SlowRate: float64(c.slow_rate)}
}

// Metrics returns a snapshot of the breaker's counters (lock-free; it stops nobody).
func (b *Breaker) Metrics() Metrics {
	var s C.struct_surgewall_breaker_stats
	st := C.surgewall_breaker_metrics(b.live(), &s)
	runtime.KeepAlive(b)
	mustRead("breaker_metrics", st)
	m := Metrics{
		State: State(s.state), Generation: uint64(s.generation), TimeInState: nsDuration(s.time_in_state_ns),
		Window: windowCounts(s.window), LastWindow: windowCounts(s.last_window),
		MinimumCalls:         uint64(s.minimum_calls),
		FailureRateThreshold: float64(s.failure_rate_threshold),
		Successes:            uint64(s.successes), Failures: uint64(s.failures), SlowCalls: uint64(s.slow_calls),
		Ignored: uint64(s.ignored), RejectedOpen: uint64(s.rejected_open), RejectedHalfOpen: uint64(s.rejected_half_open),
		LateResults: uint64(s.late_results), UnexpectedResults: uint64(s.unexpected_results),
		ConsecutiveFailures: uint64(s.consecutive_failures), ConsecutiveOpens: uint64(s.consecutive_opens),
		HalfOpenAdmitted: uint64(s.half_open_admitted), HalfOpenReported: uint64(s.half_open_reported),
		RetryAfter: nsDuration(s.retry_after_ns),
	}
	for i := range m.Transitions {
		for j := range m.Transitions[i] {
			m.Transitions[i][j] = uint64(s.transitions[i][j])
		}
	}
	return m
}

func (b *Breaker) manual(op string, f func(*C.surgewall_breaker) C.surgewall_status) error {
	h, err := b.handle()
	if err != nil {
		return err
	}
	st := f(h)
	runtime.KeepAlive(b)
	return statusErr(op, st)
}

// ForceOpen opens the breaker by hand for d (then it probes), or until another manual
// transition when d is Forever. A negative d returns ErrInvalidArgument.
func (b *Breaker) ForceOpen(d time.Duration) error {
	ns, err := forceOpenNs("breaker_force_open", d)
	if err != nil {
		return err
	}
	return b.manual("breaker_force_open", func(h *C.surgewall_breaker) C.surgewall_status {
		return C.surgewall_breaker_force_open(h, C.int64_t(ns))
	})
}

// forceOpenNs is the library's duration of a forced open: -1 for Forever.
func forceOpenNs(op string, d time.Duration) (int64, error) {
	switch {
	case d == Forever:
		return -1, nil
	case d < 0:
		return 0, &StatusError{Op: op, Code: C.SURGEWALL_INVALID_ARG}
	}
	return int64(d), nil
}

// Disable lets every call pass and records nothing.
func (b *Breaker) Disable() error {
	return b.manual("breaker_disable", func(h *C.surgewall_breaker) C.surgewall_status {
		return C.surgewall_breaker_disable(h)
	})
}

// MetricsOnly lets every call pass and records them; the breaker never trips.
func (b *Breaker) MetricsOnly() error {
	return b.manual("breaker_metrics_only", func(h *C.surgewall_breaker) C.surgewall_status {
		return C.surgewall_breaker_metrics_only(h)
	})
}

// TransitionToOpen opens the circuit by hand as a trip would (resilience4j's
// transitionToOpenState), unlike ForceOpen: rejections match ErrOpen, the open wait applies
// with its backoff of consecutive opens, then the next call probes. A no-op when OPEN.
func (b *Breaker) TransitionToOpen() error {
	return b.manual("breaker_open", func(h *C.surgewall_breaker) C.surgewall_status {
		return C.surgewall_breaker_open(h)
	})
}

// TransitionToClosed closes the circuit (a no-op when CLOSED).
func (b *Breaker) TransitionToClosed() error {
	return b.manual("breaker_close", func(h *C.surgewall_breaker) C.surgewall_status {
		return C.surgewall_breaker_close(h)
	})
}

// TransitionToHalfOpen starts probing now, from OPEN or FORCED_OPEN; from CLOSED it returns
// ErrInvalidTransition.
func (b *Breaker) TransitionToHalfOpen() error {
	return b.manual("breaker_half_open", func(h *C.surgewall_breaker) C.surgewall_status {
		return C.surgewall_breaker_half_open(h)
	})
}

// Reset starts a fresh CLOSED episode from any state.
func (b *Breaker) Reset() error {
	return b.manual("breaker_reset", func(h *C.surgewall_breaker) C.surgewall_status {
		return C.surgewall_breaker_reset(h)
	})
}

// SetFailureRateThreshold moves the failure-rate threshold (in (0, 1]) and returns the old one.
func (b *Breaker) SetFailureRateThreshold(threshold float64) (old float64, err error) {
	var o C.double
	err = b.manual("breaker_set_failure_rate_threshold", func(h *C.surgewall_breaker) C.surgewall_status {
		return C.surgewall_breaker_set_failure_rate_threshold(h, C.double(threshold), &o)
	})
	return float64(o), err
}

// FallbackPayload returns a copy of the static payload set with WithFallbackPayload; ok is
// false when there is none.
func (b *Breaker) FallbackPayload() (contentType string, body []byte, ok bool) {
	var bp, cp *C.uint8_t
	var bl, cl C.size_t
	st := C.surgewall_breaker_fallback(b.live(), &bp, &bl, &cp, &cl)
	defer runtime.KeepAlive(b) // the pointers are into the breaker, which lives while b does
	mustRead("breaker_fallback", st)
	if bp == nil && cp == nil {
		return "", nil, false
	}
	return C.GoStringN((*C.char)(unsafe.Pointer(cp)), C.int(cl)), C.GoBytes(unsafe.Pointer(bp), C.int(bl)), true
}
