package surgewall

/*
#include "surgewall.h"

#cgo noescape surgewall_retry_schedule_next
#cgo nocallback surgewall_retry_schedule_next
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

const (
	cAttemptSuccess      = C.SURGEWALL_ATTEMPT_OUTCOME_SUCCESS
	cAttemptRetryable    = C.SURGEWALL_ATTEMPT_OUTCOME_RETRYABLE
	cAttemptNotRetryable = C.SURGEWALL_ATTEMPT_OUTCOME_NOT_RETRYABLE
)

// StopReason says why a retry stopped.
type StopReason int32

const (
	StopSucceeded       StopReason = C.SURGEWALL_STOP_REASON_SUCCEEDED        // the last attempt succeeded
	StopNotRetryable    StopReason = C.SURGEWALL_STOP_REASON_NOT_RETRYABLE    // the last error was not retryable
	StopMaxAttempts     StopReason = C.SURGEWALL_STOP_REASON_MAX_ATTEMPTS     // no attempts left
	StopMaxElapsed      StopReason = C.SURGEWALL_STOP_REASON_MAX_ELAPSED      // the next attempt would overrun MaxElapsed
	StopBudgetExhausted StopReason = C.SURGEWALL_STOP_REASON_BUDGET_EXHAUSTED // the retry budget refused
	StopBreakerOpen     StopReason = C.SURGEWALL_STOP_REASON_BREAKER_OPEN     // the breaker rejects for longer than the retry may wait
	// StopRetryAfterTooLong: the server's Retry-After is longer than WithMaxRetryAfter or would
	// overrun WithMaxElapsed; a Retry-After is never shortened, so the retry stops.
	StopRetryAfterTooLong StopReason = C.SURGEWALL_STOP_REASON_RETRY_AFTER_TOO_LONG
)

var stopNames = [...]string{"succeeded", "not_retryable", "max_attempts", "max_elapsed", "budget_exhausted", "breaker_open",
	"retry_after_too_long"}

func (r StopReason) String() string {
	if r >= 0 && int(r) < len(stopNames) {
		return stopNames[r]
	}
	return fmt.Sprintf("StopReason(%d)", int32(r))
}

// Jitter randomises retry delays. The zero value keeps the library default (full jitter).
type Jitter int32

const (
	JitterDefault Jitter = iota // full jitter
	JitterNone                  // exact delays
	JitterFull                  // uniform in [0, delay]
	JitterEqual                 // uniform in [delay/2, delay]
)

// Backoff is a delay strategy for retries: NoBackoff, Constant, Linear, Exponential or
// Decorrelated. Every kind's delays are longer than zero (a zero first delay is a
// *ConfigError naming it); retrying without waiting is NoBackoff.
type Backoff struct {
	kind          int
	initial, step time.Duration
	multiplier    float64
}

// NoBackoff retries at once, with no wait between attempts: the one way to retry without
// waiting (Constant(0) is refused).
func NoBackoff() Backoff { return Backoff{kind: 5} }

// Constant waits d (> 0) before every retry.
func Constant(d time.Duration) Backoff { return Backoff{kind: 1, initial: d} }

// Linear waits initial + (n-1)*step before the n-th retry (initial > 0).
func Linear(initial, step time.Duration) Backoff {
	return Backoff{kind: 2, initial: initial, step: step}
}

// Exponential waits initial * multiplier^(n-1) before the n-th retry (initial > 0; the
// library default is Exponential(100ms, 2)).
func Exponential(initial time.Duration, multiplier float64) Backoff {
	return Backoff{kind: 3, initial: initial, multiplier: multiplier}
}

// Decorrelated waits a uniform delay in [base, 3 x the previous one] (base > 0; capped by
// WithMaxDelay).
func Decorrelated(base time.Duration) Backoff { return Backoff{kind: 4, initial: base} }

// retrySettings are a Retry's options: the library's settings in order, and Go's own.
type retrySettings struct {
	steps      []func(*C.surgewall_retry_config) C.surgewall_status
	budget     *RetryBudget
	retryable  func(error) bool
	retryAfter func(error) (time.Duration, bool)
	sleep      func(ctx context.Context, d time.Duration) error
}

func retryOption(field string, f func(*C.surgewall_retry_config) C.surgewall_status) Option {
	return opt(field, kindRetry, func(s *settings) { s.retry.steps = append(s.retry.steps, f) })
}

// A Retry's options. Without them, the library defaults, the same in every language: 3
// attempts, Exponential(100ms, 2) with full jitter, no cap on delays, a server's Retry-After
// waited in full, no elapsed limit, wait for an open breaker, no budget.

// WithMaxAttempts: attempts in all, the first included (>= 1). Default 3.
func WithMaxAttempts(n int) Option {
	return opt("max_attempts", kindRetry, func(s *settings) {
		if n < 1 || n > math.MaxUint32 {
			s.fail(&ConfigError{Field: "max_attempts", Message: fmt.Sprintf("must be >= 1, got %d", n)})
			return
		}
		s.retry.steps = append(s.retry.steps, func(c *C.surgewall_retry_config) C.surgewall_status {
			return C.surgewall_retry_config_set_max_attempts(c, C.uint32_t(n))
		})
	})
}

// WithBackoff sets the delay strategy (NoBackoff, Constant, Linear, Exponential, Decorrelated).
// Default Exponential(100ms, 2).
func WithBackoff(bo Backoff) Option {
	return opt("backoff", kindRetry, func(s *settings) {
		if bo.kind == 0 {
			s.fail(&ConfigError{Field: "backoff", Message: "the zero Backoff: use NoBackoff, Constant, Linear, Exponential or Decorrelated"})
			return
		}
		s.retry.steps = append(s.retry.steps, func(c *C.surgewall_retry_config) C.surgewall_status {
			switch bo.kind {
			case 1:
				return C.surgewall_retry_config_set_backoff_constant(c, durationNs(bo.initial))
			case 2:
				return C.surgewall_retry_config_set_backoff_linear(c, durationNs(bo.initial), durationNs(bo.step))
			case 3:
				return C.surgewall_retry_config_set_backoff_exponential(c, durationNs(bo.initial), C.double(bo.multiplier))
			case 5:
				return C.surgewall_retry_config_set_backoff_none(c)
			}
			return C.surgewall_retry_config_set_backoff_decorrelated(c, durationNs(bo.initial))
		})
	})
}

// WithJitter randomises the delays. Default JitterFull.
func WithJitter(j Jitter) Option {
	return opt("jitter", kindRetry, func(s *settings) {
		cj, ok := map[Jitter]C.int32_t{JitterDefault: C.SURGEWALL_JITTER_FULL, JitterNone: C.SURGEWALL_JITTER_NONE,
			JitterFull: C.SURGEWALL_JITTER_FULL, JitterEqual: C.SURGEWALL_JITTER_EQUAL}[j]
		if !ok {
			s.fail(&ConfigError{Field: "jitter", Message: fmt.Sprintf("unknown jitter %d", j)})
			return
		}
		s.retry.steps = append(s.retry.steps, func(c *C.surgewall_retry_config) C.surgewall_status {
			return C.surgewall_retry_config_set_jitter(c, cj)
		})
	})
}

// WithMaxDelay caps the backoff's delays. It never shortens a server's Retry-After nor a
// breaker wait. Default: no cap.
func WithMaxDelay(d time.Duration) Option {
	return retryOption("max_delay", func(c *C.surgewall_retry_config) C.surgewall_status {
		return C.surgewall_retry_config_set_max_delay(c, durationNs(d))
	})
}

// WithMaxRetryAfter: the longest server Retry-After waited; a longer one stops the retry with
// StopRetryAfterTooLong rather than being shortened. Default: no limit but WithMaxElapsed.
func WithMaxRetryAfter(d time.Duration) Option {
	return retryOption("max_retry_after", func(c *C.surgewall_retry_config) C.surgewall_status {
		return C.surgewall_retry_config_set_max_retry_after(c, durationNs(d))
	})
}

// WithMaxElapsed: never start an attempt that would end later than d after the start.
// Default: no limit.
func WithMaxElapsed(d time.Duration) Option {
	return retryOption("max_elapsed", func(c *C.surgewall_retry_config) C.surgewall_status {
		return C.surgewall_retry_config_set_max_elapsed(c, durationNs(d))
	})
}

// WithAttemptTimeout: how long one attempt may take, to decide whether the next one fits
// WithMaxElapsed. Do does not cancel attempts; give fn a ctx deadline for that.
func WithAttemptTimeout(d time.Duration) Option {
	return retryOption("attempt_timeout", func(c *C.surgewall_retry_config) C.surgewall_status {
		return C.surgewall_retry_config_set_attempt_timeout(c, durationNs(d))
	})
}

// WithStopOnOpenBreaker: when the breaker rejects, stop instead of waiting for it.
func WithStopOnOpenBreaker() Option {
	return retryOption("stop_on_open_breaker", func(c *C.surgewall_retry_config) C.surgewall_status {
		return C.surgewall_retry_config_set_stop_on_open_breaker(c, true)
	})
}

// WithBudget shares a retry budget with other retries. Default: none.
func WithBudget(b *RetryBudget) Option {
	return opt("budget", kindRetry, func(s *settings) {
		if b == nil {
			s.fail(&ConfigError{Field: "budget", Message: "nil RetryBudget"})
			return
		}
		s.retry.budget = b
		s.retry.steps = append(s.retry.steps, func(c *C.surgewall_retry_config) C.surgewall_status {
			h, err := b.handle()
			if err != nil {
				return C.SURGEWALL_INVALID_HANDLE
			}
			return C.surgewall_retry_config_set_budget(c, h)
		})
	})
}

// WithRetryable says which errors are worth another attempt. Default: all but the
// context's errors. A breaker rejection is always retryable: the schedule waits for the
// breaker.
func WithRetryable(retryable func(error) bool) Option {
	return opt("retryable", kindRetry, func(s *settings) { s.retry.retryable = retryable })
}

// WithRetryAfter extracts a server's Retry-After from an attempt's error.
func WithRetryAfter(retryAfter func(error) (time.Duration, bool)) Option {
	return opt("retry_after", kindRetry, func(s *settings) { s.retry.retryAfter = retryAfter })
}

// WithSleep replaces how a retry waits d or until ctx ends (default: a timer, or with
// WithClock, advancing that clock: no real time passes).
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return opt("sleep", kindRetry, func(s *settings) { s.retry.sleep = sleep })
}

// Retry runs operations again after failures, on the library's schedule (backoff, jitter,
// attempts, elapsed limit, budget, breaker awareness). Safe for concurrent use: each Do
// gets its own schedule.
type Retry struct {
	h          *C.surgewall_retry_policy
	closed     atomic.Bool
	retryable  func(error) bool
	retryAfter func(error) (time.Duration, bool)
	sleep      func(context.Context, time.Duration) error
}

// RetryError is returned when a retry gives up after a retryable error. It matches
// ErrRetriesExhausted (attempts or elapsed time ran out), ErrRetryBudgetExhausted (the
// budget refused) or the breaker's rejection (StopBreakerOpen), and unwraps to the last
// attempt's error as well.
type RetryError struct {
	Attempts int
	Reason   StopReason
	Last     error
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("surgewall: gave up after %d attempts (%v): %v", e.Attempts, e.Reason, e.Last)
}

// Unwrap returns the reason's sentinel and the last error.
func (e *RetryError) Unwrap() []error {
	switch e.Reason {
	case StopBudgetExhausted:
		return []error{ErrRetryBudgetExhausted, e.Last}
	case StopBreakerOpen:
		return []error{e.Last}
	}
	return []error{ErrRetriesExhausted, e.Last}
}

func freeRetryPolicy(h *C.surgewall_retry_policy) {
	cleanupsRun.Add(1)
	C.surgewall_retry_policy_free(h)
}

// NewRetry creates a retry policy with the Retry options (WithMaxAttempts, WithBackoff, ...,
// WithSeed, WithClock). name lists it for the agent (StartAgent): its operations, retries
// and stops by reason ("": not listed).
func NewRetry(name string, opts ...Option) (*Retry, error) {
	if versionErr != nil {
		return nil, versionErr
	}
	s := collect(opts)
	if err := s.only(kindRetry, "a retry policy"); err != nil {
		return nil, err
	}
	var c *C.surgewall_retry_config
	if err := statusErr("retry_config_new", C.surgewall_retry_config_new(&c)); err != nil {
		return nil, err
	}
	steps := s.retry.steps
	if name != "" {
		steps = append([]func(*C.surgewall_retry_config) C.surgewall_status{func(c *C.surgewall_retry_config) C.surgewall_status {
			return C.surgewall_retry_config_set_name(c, cBytes(name), C.size_t(len(name)))
		}}, steps...)
	}
	if s.seedSet {
		steps = append(steps, func(c *C.surgewall_retry_config) C.surgewall_status {
			return C.surgewall_retry_config_set_seed(c, C.uint64_t(s.seed))
		})
	}
	if s.clock != nil {
		steps = append(steps, func(c *C.surgewall_retry_config) C.surgewall_status {
			h, err := s.clock.handle()
			if err != nil {
				return C.SURGEWALL_INVALID_HANDLE
			}
			return C.surgewall_retry_config_set_mock_clock(c, h)
		})
	}
	for _, f := range steps {
		if err := statusErr("retry_config", f(c)); err != nil {
			C.surgewall_retry_config_free(c)
			return nil, err
		}
	}
	runtime.KeepAlive(s.retry.budget)
	runtime.KeepAlive(s.clock)
	var h *C.surgewall_retry_policy
	var cerr *C.surgewall_error
	if st := C.surgewall_retry_policy_new(c, &h, &cerr); st != C.SURGEWALL_OK {
		return nil, constructorErr("retry_policy_new", st, cerr)
	}
	r := &Retry{h: h, retryable: s.retry.retryable, retryAfter: s.retry.retryAfter, sleep: s.retry.sleep}
	switch {
	case r.sleep != nil:
	case s.clock != nil:
		r.sleep = advanceCtx(s.clock)
	default:
		r.sleep = sleepCtx
	}
	runtime.AddCleanup(r, freeRetryPolicy, h)
	return r, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// advanceCtx waits on clock: it advances the clock by d (no real time passes), unless ctx is
// done.
func advanceCtx(clock *MockClock) func(context.Context, time.Duration) error {
	return func(ctx context.Context, d time.Duration) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := clock.handle()
		if err != nil {
			return err
		}
		st := C.surgewall_mock_clock_advance(h, durationNs(d))
		runtime.KeepAlive(clock)
		return statusErr("mock_clock_advance", st)
	}
}

func (r *Retry) handle() (*C.surgewall_retry_policy, error) {
	maybeGC()
	if r.closed.Load() {
		return nil, ErrClosed
	}
	return r.h, nil
}

// Do runs fn until it succeeds or the schedule stops. It returns nil, the error of an
// attempt that was not retryable (as is), ctx's error when ctx ends (joined with the last
// attempt's error), or a *RetryError.
func (r *Retry) Do(ctx context.Context, fn func(context.Context) error) error {
	return r.do(ctx, nil, fn)
}

// DoWith runs each attempt through breaker b (b.Execute): the schedule never retries into
// it while it rejects, but waits for it (or stops, with WithStopOnOpenBreaker): the time left
// of an OPEN wait, or while every half-open probe is out the short half-open hint (a tenth of
// the open wait, within [1 ms, 1 s]) it polls on.
func (r *Retry) DoWith(ctx context.Context, b *Breaker, fn func(context.Context) error) error {
	return r.do(ctx, b, func(ctx context.Context) error { return b.Execute(ctx, fn) })
}

// RetryCall is Retry.Do (or DoWith when b is not nil) for a function with a value.
func RetryCall[T any](ctx context.Context, r *Retry, b *Breaker, fn func(context.Context) (T, error)) (T, error) {
	var v T
	attempt := func(ctx context.Context) error {
		var err error
		v, err = fn(ctx)
		return err
	}
	var err error
	if b != nil {
		err = r.do(ctx, b, func(ctx context.Context) error { return b.Execute(ctx, attempt) })
	} else {
		err = r.do(ctx, nil, attempt)
	}
	if err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

func (r *Retry) do(ctx context.Context, b *Breaker, fn func(context.Context) error) error {
	h, err := r.handle()
	if err != nil {
		return err
	}
	var s *C.surgewall_retry_schedule
	st := C.surgewall_retry_schedule_new(h, &s)
	runtime.KeepAlive(r)
	if err := statusErr("retry_schedule_new", st); err != nil {
		return err
	}
	defer C.surgewall_retry_schedule_free(s)
	var bh *C.surgewall_breaker
	if b != nil {
		if bh, err = b.handle(); err != nil {
			return err
		}
	}
	for attempts := 1; ; attempts++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		last := fn(ctx)
		outcome, retryAfter := C.int32_t(cAttemptSuccess), C.int64_t(-1)
		switch {
		case last == nil:
		case errors.Is(last, ErrOpen):
			outcome = cAttemptRetryable
		case errors.Is(last, context.Canceled) || errors.Is(last, context.DeadlineExceeded):
			return last
		case r.retryable != nil && !r.retryable(last):
			outcome = cAttemptNotRetryable
		default:
			outcome = cAttemptRetryable
		}
		if last != nil && r.retryAfter != nil {
			if d, ok := r.retryAfter(last); ok && d >= 0 {
				retryAfter = durationNs(d)
			}
		}
		var d C.struct_surgewall_retry_decision
		st := C.surgewall_retry_schedule_next(s, outcome, retryAfter, bh, &d)
		runtime.KeepAlive(b)
		if err := statusErr("retry_schedule_next", st); err != nil {
			return err
		}
		if !bool(d.retry) {
			reason := StopReason(d.stop_reason)
			if last == nil || reason == StopNotRetryable {
				return last
			}
			return &RetryError{Attempts: attempts, Reason: reason, Last: last}
		}
		if err := r.sleep(ctx, nsDuration(d.delay_ns)); err != nil {
			return errors.Join(err, last)
		}
	}
}

// RetryMetrics are the totals of a Retry.
type RetryMetrics struct {
	// Operations started (Do calls) and retries scheduled.
	Operations, Retries uint64
	// Stops by reason.
	Stops map[StopReason]uint64
}

// Metrics returns the totals.
func (r *Retry) Metrics() RetryMetrics {
	maybeGC()
	var s C.struct_surgewall_retry_stats
	st := C.surgewall_retry_policy_metrics(r.h, &s)
	runtime.KeepAlive(r)
	mustRead("retry_policy_metrics", st)
	m := RetryMetrics{Operations: uint64(s.operations), Retries: uint64(s.retries), Stops: map[StopReason]uint64{}}
	for i, n := range s.stops {
		if n != 0 {
			m.Stops[StopReason(i)] = uint64(n)
		}
	}
	return m
}

// Preview returns the delays an operation would sleep between its attempts if every attempt
// failed at once (no Retry-After, no breaker), cut by WithMaxAttempts and WithMaxElapsed, at
// most limit of them (limit <= 0: all). With jitter they are the next operation's own draws
// (the very delays under WithSeed, unless another operation starts first). It runs nothing,
// counts nothing and asks no budget; like Metrics, it keeps reading after Close.
func (r *Retry) Preview(limit int) []time.Duration {
	maybeGC()
	all := limit <= 0
	n := limit
	if all {
		n = 64
	}
	for {
		buf := make([]C.uint64_t, n)
		var got C.size_t
		st := C.surgewall_retry_policy_preview(r.h, &buf[0], C.size_t(n), &got)
		runtime.KeepAlive(r)
		mustRead("retry_policy_preview", st)
		if int(got) < n || !all {
			out := make([]time.Duration, int(got))
			for i := range out {
				out[i] = time.Duration(buf[i])
			}
			return out
		}
		n *= 4 // more to come: ask again for all of them (one call, one preview)
	}
}

// Close marks the retry policy closed: later Do, DoWith and RetryCall return ErrClosed;
// Metrics keeps reading. Idempotent.
func (r *Retry) Close() error {
	r.closed.Store(true)
	return nil
}

// RetryBudget caps retries at a ratio of requests plus a floor per second, over a sliding
// window, shared by every Retry that uses it. Safe for concurrent use.
type RetryBudget struct {
	h      *C.surgewall_retry_budget
	closed atomic.Bool
	id     uint64
}

func freeRetryBudget(h *C.surgewall_retry_budget) {
	cleanupsRun.Add(1)
	C.surgewall_retry_budget_free(h)
}

func budgetWindow(window time.Duration) (C.uint32_t, error) {
	if window%time.Second != 0 || window < time.Second || window > 60*time.Second {
		return 0, &ConfigError{Field: "window", Message: fmt.Sprintf("must be whole seconds in [1s, 60s], got %v", window)}
	}
	return C.uint32_t(window / time.Second), nil
}

// NewRetryBudget creates a budget of its own: ratio of requests (in [0, 1]) plus
// minPerSecond retries a second, over window (whole seconds, 1 s to 60 s). Its one option
// is WithClock.
func NewRetryBudget(ratio, minPerSecond float64, window time.Duration, opts ...Option) (*RetryBudget, error) {
	if versionErr != nil {
		return nil, versionErr
	}
	s := collect(opts)
	if err := s.only(kindBudget, "a retry budget"); err != nil {
		return nil, err
	}
	w, err := budgetWindow(window)
	if err != nil {
		return nil, err
	}
	var ch *C.surgewall_mock_clock
	if s.clock != nil {
		if ch, err = s.clock.handle(); err != nil {
			return nil, err
		}
	}
	var h *C.surgewall_retry_budget
	var cerr *C.surgewall_error
	st := C.surgewall_retry_budget_new(C.double(ratio), C.double(minPerSecond), w, ch, &h, &cerr)
	runtime.KeepAlive(s.clock)
	if st != C.SURGEWALL_OK {
		return nil, constructorErr("retry_budget_new", st, cerr)
	}
	return newRetryBudget(h)
}

// SharedRetryBudget is the process-wide budget named name, created with this configuration
// on first use (later calls get the same budget, whatever configuration they pass; other
// languages in the process share it too).
func SharedRetryBudget(name string, ratio, minPerSecond float64, window time.Duration) (*RetryBudget, error) {
	if versionErr != nil {
		return nil, versionErr
	}
	w, err := budgetWindow(window)
	if err != nil {
		return nil, err
	}
	var h *C.surgewall_retry_budget
	var cerr *C.surgewall_error
	st := C.surgewall_retry_budget_shared((*C.uint8_t)(unsafe.Pointer(unsafe.StringData(name))), C.size_t(len(name)),
		C.double(ratio), C.double(minPerSecond), w, &h, &cerr)
	if st != C.SURGEWALL_OK {
		return nil, constructorErr("retry_budget_shared", st, cerr)
	}
	return newRetryBudget(h)
}

func (b *RetryBudget) handle() (*C.surgewall_retry_budget, error) {
	maybeGC()
	if b == nil || b.closed.Load() {
		return nil, ErrClosed
	}
	return b.h, nil
}

// RecordRequest counts a first attempt toward the budget (Retry does this itself).
func (b *RetryBudget) RecordRequest() error {
	h, err := b.handle()
	if err != nil {
		return err
	}
	st := C.surgewall_retry_budget_record_request(h)
	runtime.KeepAlive(b)
	return statusErr("retry_budget_record_request", st)
}

// TryRetry asks for one retry: nil (granted and counted) or ErrRetryBudgetExhausted.
func (b *RetryBudget) TryRetry() error {
	h, err := b.handle()
	if err != nil {
		return err
	}
	st := C.surgewall_retry_budget_try_retry(h)
	runtime.KeepAlive(b)
	return statusErr("retry_budget_try_retry", st)
}

// RetryBudgetMetrics is a snapshot of a budget.
type RetryBudgetMetrics struct {
	Requests, Retries uint64  // in the window
	Allowed           float64 // retries the rule allows in the window now
	Remaining         uint64
	GrantedTotal      uint64
	RefusedTotal      uint64
}

// Metrics returns a snapshot.
func (b *RetryBudget) Metrics() RetryBudgetMetrics {
	maybeGC()
	var s C.struct_surgewall_retry_budget_stats
	st := C.surgewall_retry_budget_metrics(b.h, &s)
	runtime.KeepAlive(b)
	mustRead("retry_budget_metrics", st)
	return RetryBudgetMetrics{Requests: uint64(s.requests), Retries: uint64(s.retries), Allowed: float64(s.allowed),
		Remaining: uint64(s.remaining), GrantedTotal: uint64(s.granted_total), RefusedTotal: uint64(s.refused_total)}
}

// Close marks the budget closed: later RecordRequest and TryRetry return ErrClosed, and
// no new Retry may use it; Metrics keeps reading, and retry policies using it keep their
// own reference. Idempotent.
func (b *RetryBudget) Close() error {
	b.closed.Store(true)
	return nil
}

// ID is the budget's process-unique id: the Source of its budget-exhausted events.
func (b *RetryBudget) ID() uint64 { return b.id }

// newRetryBudget wraps a budget the library made (NewRetryBudget, SharedRetryBudget).
func newRetryBudget(h *C.surgewall_retry_budget) (*RetryBudget, error) {
	var id C.uint64_t
	if err := statusErr("retry_budget_id", C.surgewall_retry_budget_id(h, &id)); err != nil {
		C.surgewall_retry_budget_free(h)
		return nil, err
	}
	b := &RetryBudget{h: h, id: uint64(id)}
	runtime.AddCleanup(b, freeRetryBudget, h)
	return b, nil
}
