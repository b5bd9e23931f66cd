package surgewall

/*
#include "surgewall.h"

static inline int surgewall_go_kb_refused(surgewall_status st) {
	return st == SURGEWALL_REJECTED_OPEN || st == SURGEWALL_REJECTED_HALF_OPEN ||
	       st == SURGEWALL_REJECTED_FORCED_OPEN || st == SURGEWALL_REGISTRY_FULL;
}

// The hot path. Handles travel as integers (cgo checks every pointer argument, and a handle
// is not an address). A string key is hashed by the library; when the call is refused, the
// same crossing also asks for the key's 64-bit form, so that the error can name it.
static inline surgewall_status surgewall_go_kb_acquire_str(uintptr_t kb, const uint8_t *key, size_t len,
		surgewall_keyed_breaker_permit *p, uint64_t *retry, uint64_t *id) {
	const surgewall_keyed_breaker *h = (const surgewall_keyed_breaker *)kb;
	surgewall_status st = surgewall_keyed_breaker_acquire_str(h, key, len, p, retry);
	if (surgewall_go_kb_refused(st)) {
		surgewall_keyed_breaker_key_of(h, key, len, id);
	}
	return st;
}

static inline surgewall_status surgewall_go_kb_acquire(uintptr_t kb, uint64_t key,
		surgewall_keyed_breaker_permit *p, uint64_t *retry) {
	return surgewall_keyed_breaker_acquire((const surgewall_keyed_breaker *)kb, key, p, retry);
}

static inline surgewall_status surgewall_go_kb_record(uintptr_t kb, surgewall_keyed_breaker_permit p, int32_t o) {
	return surgewall_keyed_breaker_record((const surgewall_keyed_breaker *)kb, p, o);
}

static inline surgewall_status surgewall_go_kb_record_timed(uintptr_t kb, surgewall_keyed_breaker_permit p,
		int32_t o, int64_t ns) {
	return surgewall_keyed_breaker_record_timed((const surgewall_keyed_breaker *)kb, p, o, ns);
}

enum {
	SURGEWALL_GO_KB_GET, SURGEWALL_GO_KB_FORCE_OPEN, SURGEWALL_GO_KB_DISABLE, SURGEWALL_GO_KB_METRICS_ONLY,
	SURGEWALL_GO_KB_CLOSE, SURGEWALL_GO_KB_HALF_OPEN, SURGEWALL_GO_KB_RESET, SURGEWALL_GO_KB_OPEN,
};

// A per-key operation in one crossing, by string key (hashed first) or by uint64 key.
static surgewall_status surgewall_go_kb_op(uintptr_t kb, int op, const uint8_t *key, size_t len, int is_str,
		uint64_t key64, int64_t ns, surgewall_keyed_breaker_key_stats *out, uint64_t *key_out) {
	const surgewall_keyed_breaker *h = (const surgewall_keyed_breaker *)kb;
	if (is_str) {
		surgewall_status st = surgewall_keyed_breaker_key_of(h, key, len, &key64);
		if (st != SURGEWALL_OK) {
			return st;
		}
	}
	*key_out = key64;
	switch (op) {
	case SURGEWALL_GO_KB_GET:          return surgewall_keyed_breaker_get(h, key64, out);
	case SURGEWALL_GO_KB_FORCE_OPEN:   return surgewall_keyed_breaker_force_open(h, key64, ns);
	case SURGEWALL_GO_KB_DISABLE:      return surgewall_keyed_breaker_disable(h, key64);
	case SURGEWALL_GO_KB_METRICS_ONLY: return surgewall_keyed_breaker_metrics_only(h, key64);
	case SURGEWALL_GO_KB_CLOSE:        return surgewall_keyed_breaker_close(h, key64);
	case SURGEWALL_GO_KB_HALF_OPEN:    return surgewall_keyed_breaker_half_open(h, key64);
	case SURGEWALL_GO_KB_RESET:        return surgewall_keyed_breaker_reset(h, key64);
	case SURGEWALL_GO_KB_OPEN:         return surgewall_keyed_breaker_open(h, key64);
	}
	return SURGEWALL_INVALID_ARG;
}

extern void surgewallGoKeyedBreakerVisit(uintptr_t user, uint64_t key, void *stats);

static void surgewall_go_kb_visit(void *user, uint64_t key, const surgewall_keyed_breaker_key_stats *stats) {
	surgewallGoKeyedBreakerVisit((uintptr_t)user, key, (void *)stats);
}

// The user pointer is a cgo.Handle (an integer); the library only hands it back.
static surgewall_status surgewall_go_kb_for_each(uintptr_t kb, uintptr_t user) {
	return surgewall_keyed_breaker_for_each((const surgewall_keyed_breaker *)kb, surgewall_go_kb_visit, (void *)user);
}

// The library keeps no pointer it is given and these never call back into Go: out-params and
// keys may live on the Go stack (no allocation per call).
#cgo noescape surgewall_go_kb_acquire_str
#cgo nocallback surgewall_go_kb_acquire_str
#cgo noescape surgewall_go_kb_acquire
#cgo nocallback surgewall_go_kb_acquire
#cgo nocallback surgewall_go_kb_record
#cgo nocallback surgewall_go_kb_record_timed
#cgo noescape surgewall_go_kb_op
#cgo nocallback surgewall_go_kb_op
#cgo noescape surgewall_keyed_breaker_key_of
#cgo nocallback surgewall_keyed_breaker_key_of
#cgo noescape surgewall_keyed_breaker_metrics
#cgo nocallback surgewall_keyed_breaker_metrics
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// OverflowKey names a KeyedBreaker's shared overflow breaker (see WithSharedOverflow): the Key of its events, and the uint64 key that
// GetUint64 and the manual transitions (ResetUint64, ...) reach it by. String keys never
// hash to it, and it is never a key of its own (Keys does not list it).
const OverflowKey uint64 = math.MaxUint64

// KeyedBreaker holds one compact circuit breaker per key (per endpoint, per host, per user),
// each made on first use from a template of Options (those NewBreaker takes) or its key's
// override: a few dozen bytes per key in the library, idle keys evicted by Sweep, a cap on
// keys. Safe for concurrent use; one breaker per key also when many goroutines race on a new
// key. Close it when done with it.
//
// A key's breaker follows the breaker contract (states, probes, generation fence, manual
// transitions) over an approximate window of two buckets: a time window of d reaches back
// between d/2 and d, a count window of n calls between ceil(n/2) and 2*ceil(n/2) calls, and
// a bucket holds at most 255 calls (a full one halves, keeping the rates). Hence a template
// or override may have at most 128 minimum calls, a count window of 510 calls, 255
// consecutive failures and 14 half-open calls (each probe's number has a bit in the key's
// cell): beyond, NewKeyedBreaker returns a
// *ConfigError naming the field. The window's buckets count (WithTimeWindow) is not used.
//
// For a handful of keys that each need a full breaker (exact windows, per-breaker metrics
// and names for the agent), use BreakerRegistry.
//
// Transitions are published to the event ring as EventKeyedTransition events whose Key is
// the key (KeyOf for a string key), evictions as EventEvicted, both with Source == ID().
//
// The manual transitions (ForceOpen, Disable, MetricsOnly, TransitionToClosed,
// TransitionToHalfOpen, Reset) make a key the keyed breaker does not hold yet, as a call
// would. Beyond the key cap they return an error matching ErrRegistryFull, but with
// WithSharedOverflow they act on the shared overflow breaker, that is on every key beyond
// the cap (the library's behaviour): check with Get that a key is held before forcing it
// open by hand.
type KeyedBreaker struct {
	hv       C.uintptr_t // the handle as an integer, for the hot path
	closed   atomic.Bool
	h        *C.surgewall_keyed_breaker
	classify func(error) Outcome
	fallback func(context.Context, error) error
	id       uint64
	res      *keyedBreakerRes
}

// keyedBreakerRes owns the library handle, freed by the cleanup once the KeyedBreaker is
// unreachable (so never while a call is in flight), as for Breaker.
type keyedBreakerRes struct {
	h          *C.surgewall_keyed_breaker
	untickOnce sync.Once
	untick     func()
}

func (r *keyedBreakerRes) leaveTicker() {
	r.untickOnce.Do(func() {
		if r.untick != nil {
			r.untick()
		}
	})
}

func (r *keyedBreakerRes) release() {
	cleanupsRun.Add(1)
	r.leaveTicker()
	C.surgewall_keyed_breaker_free(r.h)
}

// perKeyOnly reports a Go-side option an override may not set (the library reports the
// clock and the fallback payload itself).
func (s *settings) perKeyOnly(key string) error {
	what := ""
	switch {
	case s.classify != nil:
		what = "classifier"
	case s.fallback != nil:
		what = "fallback"
	case s.noFastPath:
		what = "fast_path"
	case s.tickerOff:
		what = "clock_ticker"
	default:
		return nil
	}
	return &ConfigError{Field: what, Message: fmt.Sprintf(
		"the override for %s sets a %s; a keyed breaker has one for all keys, the template's", key, strings.ReplaceAll(what, "_", " "))}
}

// NewKeyedBreaker creates a keyed breaker whose keys are breakers of the template: the
// Options NewBreaker takes (with its defaults), plus the keyed ones: WithOverride and
// WithOverrideUint64 (some keys configured differently), WithMaxKeys, WithSharedOverflow and
// WithIdleTTL. WithClock, WithClassifier, WithFallback and WithFallbackPayload apply to the
// whole keyed breaker; WithoutFastPath changes nothing (a keyed call always asks the
// library). name lists it for the agent (StartAgent) ("": not listed); its keys show there
// as the library's 64-bit keys (string keys as their hash). Invalid settings give a
// *ConfigError naming the field.
func NewKeyedBreaker(name string, opts ...Option) (*KeyedBreaker, error) {
	if versionErr != nil {
		return nil, versionErr
	}
	t := collect(opts)
	if err := t.only(kindKeyedBreaker, "a keyed breaker"); err != nil {
		return nil, err
	}
	if err := t.keyed.overflow(); err != nil {
		return nil, err
	}
	overrides := make([]settings, len(t.keyed.overrides))
	for i, o := range t.keyed.overrides {
		overrides[i] = collect(o.opts)
		what := "the override for " + keyName(o.key, o.key64)
		if err := overrides[i].only(kindBreaker, what); err != nil {
			return nil, err
		}
		if err := overrides[i].perKeyOnly(keyName(o.key, o.key64)); err != nil {
			return nil, err
		}
	}

	tcfg, err := t.config(true)
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(t.clock) // until the keyed breaker is made
	var kc *C.surgewall_keyed_breaker_config
	if err := statusErr("keyed_breaker_config_new", C.surgewall_keyed_breaker_config_new(tcfg, &kc)); err != nil {
		return nil, err // tcfg is consumed whatever the outcome
	}
	fail := func(err error) (*KeyedBreaker, error) {
		C.surgewall_keyed_breaker_config_free(kc)
		return nil, err
	}
	if name != "" {
		st := C.surgewall_keyed_breaker_config_set_name(kc, cBytes(name), C.size_t(len(name)))
		if err := statusErr("keyed_breaker_config_set_name", st); err != nil {
			return fail(err)
		}
	}
	for i, o := range t.keyed.overrides {
		// The template's per-breaker settings, then the key's own (with any clock or fallback
		// payload it sets, for the library to refuse by name).
		ov := overrides[i]
		oc, err := ov.config(true, t.apply)
		if err != nil {
			return fail(err)
		}
		var st C.surgewall_status
		if o.isStr {
			st = C.surgewall_keyed_breaker_config_set_override_str(kc, cBytes(o.key), C.size_t(len(o.key)), oc)
		} else {
			st = C.surgewall_keyed_breaker_config_set_override(kc, C.uint64_t(o.key64), oc)
		}
		runtime.KeepAlive(ov.clock)
		if err := statusErr("keyed_breaker_config_set_override", st); err != nil {
			return fail(err)
		}
	}
	if t.keyed.maxKeysSet {
		st := C.surgewall_keyed_breaker_config_set_max_keys(kc, C.size_t(t.keyed.maxKeys), C.bool(t.keyed.sharedOverflow))
		if err := statusErr("keyed_breaker_config_set_max_keys", st); err != nil {
			return fail(err)
		}
	}
	if t.keyed.idleTTLSet {
		st := C.surgewall_keyed_breaker_config_set_idle_ttl(kc, durationNs(t.keyed.idleTTL))
		if err := statusErr("keyed_breaker_config_set_idle_ttl", st); err != nil {
			return fail(err)
		}
	}
	var h *C.surgewall_keyed_breaker
	var cerr *C.surgewall_error
	if st := C.surgewall_keyed_breaker_new(kc, &h, &cerr); st != C.SURGEWALL_OK {
		return nil, constructorErr("keyed_breaker_new", st, cerr)
	}
	res := &keyedBreakerRes{h: h}
	var id C.uint64_t
	if err := statusErr("keyed_breaker_id", C.surgewall_keyed_breaker_id(h, &id)); err != nil {
		res.release()
		return nil, err
	}
	classify := t.classify
	if classify == nil {
		classify = DefaultClassifier
	}
	kb := &KeyedBreaker{
		hv:       C.uintptr_t(uintptr(unsafe.Pointer(h))),
		h:        h,
		classify: classify,
		fallback: t.fallback,
		id:       uint64(id),
		res:      res,
	}
	if !t.noTicker {
		res.untick = StartClockTicker(time.Millisecond)
	}
	runtime.AddCleanup(kb, (*keyedBreakerRes).release, res)
	return kb, nil
}

// ID is the keyed breaker's process-unique id: the Source of its events.
func (kb *KeyedBreaker) ID() uint64 { return kb.id }

// Close marks the keyed breaker closed: later calls, permits, manual transitions and sweeps
// return ErrClosed, and it leaves the clock ticker; the observers (Get, State, Keys, Range,
// Metrics, KeyOf, FallbackPayload, ID) keep reading. Idempotent, and safe while calls are in
// flight. The library's memory is released
// when the KeyedBreaker is garbage collected.
func (kb *KeyedBreaker) Close() error {
	if kb.closed.Swap(true) {
		return nil
	}
	kb.res.leaveTicker()
	return nil
}

func (kb *KeyedBreaker) handle() (*C.surgewall_keyed_breaker, error) {
	maybeGC()
	if kb.closed.Load() {
		return nil, ErrClosed
	}
	return kb.h, nil
}

// live returns the handle for an observer, closed or not: it lives while kb does.
func (kb *KeyedBreaker) live() *C.surgewall_keyed_breaker {
	maybeGC()
	return kb.h
}

func (kb *KeyedBreaker) acquireString(key string) (C.struct_surgewall_keyed_breaker_permit, error) {
	var p C.struct_surgewall_keyed_breaker_permit
	maybeGC()
	if kb.closed.Load() {
		return p, ErrClosed
	}
	var retry, id C.uint64_t
	st := C.surgewall_go_kb_acquire_str(kb.hv, (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(key))), C.size_t(len(key)),
		&p, &retry, &id)
	runtime.KeepAlive(kb)
	if st != C.SURGEWALL_OK {
		return p, refused(st, key, uint64(id), retry)
	}
	return p, nil
}

func (kb *KeyedBreaker) acquireUint64(key uint64) (C.struct_surgewall_keyed_breaker_permit, error) {
	var p C.struct_surgewall_keyed_breaker_permit
	maybeGC()
	if kb.closed.Load() {
		return p, ErrClosed
	}
	var retry C.uint64_t
	st := C.surgewall_go_kb_acquire(kb.hv, C.uint64_t(key), &p, &retry)
	runtime.KeepAlive(kb)
	if st != C.SURGEWALL_OK {
		return p, refused(st, "", key, retry)
	}
	return p, nil
}

// refused turns a refusal into its error. The string key is copied, so that the caller's
// key never escapes through the hot path (and an error does not pin a larger buffer).
//
//go:noinline
func refused(st C.surgewall_status, key string, id uint64, retry C.uint64_t) error {
	var state State
	var reason error
	switch st {
	case C.SURGEWALL_REJECTED_OPEN:
		state, reason = StateOpen, ErrOpen
	case C.SURGEWALL_REJECTED_HALF_OPEN:
		state, reason = StateHalfOpen, ErrHalfOpenFull
	case C.SURGEWALL_REJECTED_FORCED_OPEN:
		state, reason = StateForcedOpen, ErrForcedOpen
	case C.SURGEWALL_REGISTRY_FULL:
		return &RegistryFullError{Key: strings.Clone(key), KeyID: id}
	default:
		return statusErr("keyed_breaker_acquire", st)
	}
	return &RejectedError{State: state, RetryAfter: nsDuration(retry), Keyed: true,
		Key: strings.Clone(key), KeyID: id, reason: reason}
}

func (kb *KeyedBreaker) record(p C.struct_surgewall_keyed_breaker_permit, o Outcome) error {
	maybeGC()
	if kb.closed.Load() {
		return ErrClosed
	}
	st := C.surgewall_go_kb_record(kb.hv, p, C.int32_t(o))
	runtime.KeepAlive(kb)
	if st == C.SURGEWALL_OK {
		return nil
	}
	return statusErr("keyed_breaker_record", st)
}

func (kb *KeyedBreaker) rejected(ctx context.Context, err error) error {
	if kb.fallback != nil {
		if _, ok := err.(*RejectedError); ok {
			return kb.fallback(ctx, err)
		}
	}
	return err
}

// run is Execute once the permit is in hand.
func (kb *KeyedBreaker) run(ctx context.Context, p C.struct_surgewall_keyed_breaker_permit, fn func(context.Context) error) error {
	finished := false
	defer func() {
		if !finished { // fn panicked (or called runtime.Goexit): a failure, then unwind on
			_ = kb.record(p, Failure)
		}
	}()
	err := fn(ctx)
	finished = true
	o := Success
	if err != nil {
		o = kb.classify(err)
	}
	_ = kb.record(p, o)
	return err
}

// Execute runs fn if key's breaker admits the call (making the key's breaker on first use)
// and records how it ended, as Breaker.Execute does: fn's error is classified (nil succeeds,
// context.Canceled is ignored, anything else fails, unless the template has WithClassifier
// or WithIsFailure) and returned as is; a panic in fn is recorded as a failure and re-raised.
// A refusal returns a *RejectedError naming the key (or the template's WithFallback result),
// or a *RegistryFullError at the key cap; an already-done ctx returns ctx.Err(). The string
// key is hashed by the library (see KeyOf). It costs two cgo crossings and no allocation.
func (kb *KeyedBreaker) Execute(ctx context.Context, key string, fn func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := kb.acquireString(key)
	if err != nil {
		return kb.rejected(ctx, err)
	}
	return kb.run(ctx, p, fn)
}

// ExecuteUint64 is Execute for a uint64 key (a user id, a KeyOf result).
func (kb *KeyedBreaker) ExecuteUint64(ctx context.Context, key uint64, fn func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := kb.acquireUint64(key)
	if err != nil {
		return kb.rejected(ctx, err)
	}
	return kb.run(ctx, p, fn)
}

func keyedCall[T any](ctx context.Context, kb *KeyedBreaker, p C.struct_surgewall_keyed_breaker_permit,
	fn func(context.Context) (T, error)) (T, error) {
	finished := false
	defer func() {
		if !finished {
			_ = kb.record(p, Failure)
		}
	}()
	v, err := fn(ctx)
	finished = true
	o := Success
	if err != nil {
		o = kb.classify(err)
	}
	_ = kb.record(p, o)
	return v, err
}

// KeyedCall runs fn through key's breaker like KeyedBreaker.Execute and returns its value.
// When the key's breaker refuses, it returns the zero T with the error.
func KeyedCall[T any](ctx context.Context, kb *KeyedBreaker, key string, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	p, err := kb.acquireString(key)
	if err != nil {
		return zero, kb.rejected(ctx, err)
	}
	return keyedCall(ctx, kb, p, fn)
}

// KeyedCallUint64 is KeyedCall for a uint64 key.
func KeyedCallUint64[T any](ctx context.Context, kb *KeyedBreaker, key uint64, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	p, err := kb.acquireUint64(key)
	if err != nil {
		return zero, kb.rejected(ctx, err)
	}
	return keyedCall(ctx, kb, p, fn)
}

// KeyedBreakerPermit is the right to make one call on one key, from KeyedBreaker.Acquire.
// Report the call's outcome exactly once (Done, Record, RecordDuration or Release). A plain
// value; it stays safe to report after its key was evicted (the result is then late).
type KeyedBreakerPermit struct {
	kb *KeyedBreaker
	p  C.struct_surgewall_keyed_breaker_permit
}

// Acquire asks key's breaker for a permit without running anything (the first half of a
// two-step call). It returns a *RejectedError or a *RegistryFullError when refused.
func (kb *KeyedBreaker) Acquire(key string) (KeyedBreakerPermit, error) {
	p, err := kb.acquireString(key)
	if err != nil {
		return KeyedBreakerPermit{}, err
	}
	return KeyedBreakerPermit{kb: kb, p: p}, nil
}

// AcquireUint64 is Acquire for a uint64 key.
func (kb *KeyedBreaker) AcquireUint64(key uint64) (KeyedBreakerPermit, error) {
	p, err := kb.acquireUint64(key)
	if err != nil {
		return KeyedBreakerPermit{}, err
	}
	return KeyedBreakerPermit{kb: kb, p: p}, nil
}

// Done classifies err as Execute does and records it.
func (p KeyedBreakerPermit) Done(err error) error {
	if p.kb == nil {
		return ErrInvalidPermit
	}
	o := Success
	if err != nil {
		o = p.kb.classify(err)
	}
	return p.kb.record(p.p, o)
}

// Record records the outcome. ErrLateResult: the key moved on (or was evicted) meanwhile and
// the result was dropped.
func (p KeyedBreakerPermit) Record(o Outcome) error {
	if p.kb == nil {
		return ErrInvalidPermit
	}
	return p.kb.record(p.p, o)
}

// RecordDuration records the outcome of a call that took d (slow-call rules).
func (p KeyedBreakerPermit) RecordDuration(o Outcome, d time.Duration) error {
	if p.kb == nil {
		return ErrInvalidPermit
	}
	if _, err := p.kb.handle(); err != nil {
		return err
	}
	st := C.surgewall_go_kb_record_timed(p.kb.hv, p.p, C.int32_t(o), durationNs(d))
	runtime.KeepAlive(p.kb)
	return statusErr("keyed_breaker_record_timed", st)
}

// Release gives the permit back for a call that was never made (counts nowhere; a probe
// slot comes back).
func (p KeyedBreakerPermit) Release() error { return p.Record(Ignored) }

func allowDone(p KeyedBreakerPermit) func(error) {
	var used atomic.Bool
	return func(err error) {
		if !used.Swap(true) {
			_ = p.Done(err)
		}
	}
}

// Allow is the two-step form (gobreaker's TwoStepCircuitBreaker) for key: it returns a done
// function to call exactly once with the call's error (classified as in Execute), or the
// refusal. A second call of done is ignored. done allocates; Acquire does not.
func (kb *KeyedBreaker) Allow(key string) (done func(error), err error) {
	p, err := kb.Acquire(key)
	if err != nil {
		return nil, err
	}
	return allowDone(p), nil
}

// AllowUint64 is Allow for a uint64 key.
func (kb *KeyedBreaker) AllowUint64(key uint64) (done func(error), err error) {
	p, err := kb.AcquireUint64(key)
	if err != nil {
		return nil, err
	}
	return allowDone(p), nil
}

// KeyOf is the 64-bit key a string key maps to in this keyed breaker: the Key of its events,
// of Keys and Range, and of a *RejectedError's KeyID. It differs between keyed breakers (and
// processes): the hash is seeded.
func (kb *KeyedBreaker) KeyOf(key string) uint64 {
	var out C.uint64_t
	st := C.surgewall_keyed_breaker_key_of(kb.live(), cBytes(key), C.size_t(len(key)), &out)
	runtime.KeepAlive(kb)
	mustRead("keyed_breaker_key_of", st)
	return uint64(out)
}

// KeySnapshot is one key's breaker as Get, Keys and Range see it.
type KeySnapshot struct {
	// Key is the 64-bit key (KeyOf for a string key).
	Key        uint64
	State      State
	Generation uint64
	// Window is the episode's window: the sliding window in CLOSED and METRICS_ONLY, the
	// probes that reported in HALF_OPEN, zero otherwise (rates NaN when absent).
	Window WindowCounts
	// MinimumCalls of the key's configuration.
	MinimumCalls                          uint64
	ConsecutiveFailures, ConsecutiveOpens uint64
	// RetryAfter is the time left of an OPEN or timed FORCED_OPEN wait (Forever: without
	// deadline); 0 in every other state, HALF_OPEN included.
	RetryAfter time.Duration
}

func keySnapshot(key uint64, s *C.struct_surgewall_keyed_breaker_key_stats) KeySnapshot {
	return KeySnapshot{Key: key, State: State(s.state), Generation: uint64(s.generation),
		Window: windowCounts(s.window), MinimumCalls: uint64(s.minimum_calls),
		ConsecutiveFailures: uint64(s.consecutive_failures),
		ConsecutiveOpens:    uint64(s.consecutive_opens), RetryAfter: nsDuration(s.retry_after_ns)}
}

// keySnapshotAt reads the library's snapshot at p (for the for_each callback).
func keySnapshotAt(key uint64, p unsafe.Pointer) KeySnapshot {
	return keySnapshot(key, (*C.struct_surgewall_keyed_breaker_key_stats)(p))
}

const (
	kbGet         = C.SURGEWALL_GO_KB_GET
	kbForceOpen   = C.SURGEWALL_GO_KB_FORCE_OPEN
	kbDisable     = C.SURGEWALL_GO_KB_DISABLE
	kbMetricsOnly = C.SURGEWALL_GO_KB_METRICS_ONLY
	kbClose       = C.SURGEWALL_GO_KB_CLOSE
	kbHalfOpen    = C.SURGEWALL_GO_KB_HALF_OPEN
	kbReset       = C.SURGEWALL_GO_KB_RESET
	kbOpen        = C.SURGEWALL_GO_KB_OPEN
)

var kbOpNames = [...]string{"keyed_breaker_get", "keyed_breaker_force_open", "keyed_breaker_disable",
	"keyed_breaker_metrics_only", "keyed_breaker_close", "keyed_breaker_half_open", "keyed_breaker_reset",
	"keyed_breaker_open"}

// op runs a per-key operation by string key (isStr) or uint64 key, in one crossing, and
// returns the 64-bit key it ran on. Only kbGet runs on a closed keyed breaker.
func (kb *KeyedBreaker) op(op int, key string, isStr bool, key64 uint64, ns int64,
	out *C.struct_surgewall_keyed_breaker_key_stats) (uint64, error) {
	if _, err := kb.handle(); err != nil && op != kbGet {
		return 0, err
	}
	var k C.uint64_t
	st := C.surgewall_go_kb_op(kb.hv, C.int(op), (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(key))), C.size_t(len(key)),
		C.int(boolInt(isStr)), C.uint64_t(key64), C.int64_t(ns), out, &k)
	runtime.KeepAlive(kb)
	return uint64(k), statusErr(kbOpNames[op], st)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (kb *KeyedBreaker) get(key string, isStr bool, key64 uint64) (KeySnapshot, bool) {
	var s C.struct_surgewall_keyed_breaker_key_stats
	k, err := kb.op(kbGet, key, isStr, key64, 0, &s)
	if errors.Is(err, ErrNotFound) {
		return KeySnapshot{}, false
	}
	if err != nil {
		panic(err) // see mustRead
	}
	return keySnapshot(k, &s), true
}

// Get returns key's breaker; ok is false when the keyed breaker does not hold the key (never
// used, or evicted). It never creates the key and has no side effects (an elapsed open wait
// shows as OPEN until the next call). It keeps reading after Close.
func (kb *KeyedBreaker) Get(key string) (s KeySnapshot, ok bool) {
	return kb.get(key, true, 0)
}

// GetUint64 is Get for a uint64 key.
func (kb *KeyedBreaker) GetUint64(key uint64) (s KeySnapshot, ok bool) {
	return kb.get("", false, key)
}

// State is key's state; ok is false when the key is not held.
func (kb *KeyedBreaker) State(key string) (s State, ok bool) {
	snap, ok := kb.Get(key)
	return snap.State, ok
}

// StateUint64 is State for a uint64 key.
func (kb *KeyedBreaker) StateUint64(key uint64) (s State, ok bool) {
	snap, ok := kb.GetUint64(key)
	return snap.State, ok
}

func (kb *KeyedBreaker) manual(op int, key string, isStr bool, key64 uint64, ns int64) error {
	_, err := kb.op(op, key, isStr, key64, ns, nil)
	return err
}

// ForceOpen opens key by hand for d (then it probes), or until another manual transition
// when d is Forever (as Breaker.ForceOpen). A forced-open key is never evicted.
func (kb *KeyedBreaker) ForceOpen(key string, d time.Duration) error {
	ns, err := forceOpenNs("keyed_breaker_force_open", d)
	if err != nil {
		return err
	}
	return kb.manual(kbForceOpen, key, true, 0, ns)
}

// ForceOpenUint64 is ForceOpen for a uint64 key.
func (kb *KeyedBreaker) ForceOpenUint64(key uint64, d time.Duration) error {
	ns, err := forceOpenNs("keyed_breaker_force_open", d)
	if err != nil {
		return err
	}
	return kb.manual(kbForceOpen, "", false, key, ns)
}

// Disable lets every call on key pass and records nothing (the key is not evicted).
func (kb *KeyedBreaker) Disable(key string) error { return kb.manual(kbDisable, key, true, 0, 0) }

// DisableUint64 is Disable for a uint64 key.
func (kb *KeyedBreaker) DisableUint64(key uint64) error {
	return kb.manual(kbDisable, "", false, key, 0)
}

// MetricsOnly lets every call on key pass and records it; the key never trips (and is not
// evicted).
func (kb *KeyedBreaker) MetricsOnly(key string) error {
	return kb.manual(kbMetricsOnly, key, true, 0, 0)
}

// MetricsOnlyUint64 is MetricsOnly for a uint64 key.
func (kb *KeyedBreaker) MetricsOnlyUint64(key uint64) error {
	return kb.manual(kbMetricsOnly, "", false, key, 0)
}

// TransitionToClosed closes key's circuit with a fresh window (a no-op when it is CLOSED),
// as Breaker.TransitionToClosed.
func (kb *KeyedBreaker) TransitionToClosed(key string) error {
	return kb.manual(kbClose, key, true, 0, 0)
}

// TransitionToClosedUint64 is TransitionToClosed for a uint64 key.
func (kb *KeyedBreaker) TransitionToClosedUint64(key uint64) error {
	return kb.manual(kbClose, "", false, key, 0)
}

// TransitionToOpen opens key by hand as a trip would (created if new), unlike ForceOpen: the
// open wait applies with the key's backoff of consecutive opens, then the next call on key
// probes. A no-op when key is OPEN.
func (kb *KeyedBreaker) TransitionToOpen(key string) error { return kb.manual(kbOpen, key, true, 0, 0) }

// TransitionToOpenUint64 is TransitionToOpen for a uint64 key.
func (kb *KeyedBreaker) TransitionToOpenUint64(key uint64) error {
	return kb.manual(kbOpen, "", false, key, 0)
}

// TransitionToHalfOpen starts probing key now, from OPEN or FORCED_OPEN; from CLOSED it
// returns ErrInvalidTransition.
func (kb *KeyedBreaker) TransitionToHalfOpen(key string) error {
	return kb.manual(kbHalfOpen, key, true, 0, 0)
}

// TransitionToHalfOpenUint64 is TransitionToHalfOpen for a uint64 key.
func (kb *KeyedBreaker) TransitionToHalfOpenUint64(key uint64) error {
	return kb.manual(kbHalfOpen, "", false, key, 0)
}

// Reset starts a fresh CLOSED episode for key from any state.
func (kb *KeyedBreaker) Reset(key string) error { return kb.manual(kbReset, key, true, 0, 0) }

// ResetUint64 is Reset for a uint64 key.
func (kb *KeyedBreaker) ResetUint64(key uint64) error { return kb.manual(kbReset, "", false, key, 0) }

// Sweep evicts the CLOSED keys idle longer than the idle TTL (WithIdleTTL) and returns how
// many (each is published as an EventEvicted with its key). Run it periodically: idleness is
// measured between sweeps (a key unused since a sweep counts as idle from that sweep), so a
// key goes at the first sweep one idle TTL after the sweep that first saw it idle, and calls
// pay nothing for the tracking. OPEN, HALF_OPEN, forced-open, disabled and metrics-only keys stay. A
// permit of an evicted key reports ErrLateResult.
func (kb *KeyedBreaker) Sweep() (int, error) {
	h, err := kb.handle()
	if err != nil {
		return 0, err
	}
	var n C.uint64_t
	st := C.surgewall_keyed_breaker_sweep(h, &n)
	runtime.KeepAlive(kb)
	if err := statusErr("keyed_breaker_sweep", st); err != nil {
		return 0, err
	}
	return int(n), nil
}

// Keys returns a snapshot of every key held (the shared overflow breaker excluded), taken
// through a C callback that gets a cgo.Handle, never a Go pointer.
func (kb *KeyedBreaker) Keys() []KeySnapshot {
	var out []KeySnapshot
	user := cgo.NewHandle(&out)
	defer user.Delete()
	maybeGC() // an observer: it reads a closed keyed breaker too
	st := C.surgewall_go_kb_for_each(kb.hv, C.uintptr_t(user))
	runtime.KeepAlive(kb)
	mustRead("keyed_breaker_for_each", st)
	return out
}

// Range calls f for each key held, from a snapshot (Keys), until f returns false. f may call
// back into the keyed breaker.
func (kb *KeyedBreaker) Range(f func(key uint64, s KeySnapshot) bool) {
	for _, s := range kb.Keys() {
		if !f(s.Key, s) {
			break
		}
	}
}

// KeyedBreakerMetrics is a snapshot of a keyed breaker's counters over all its keys.
type KeyedBreakerMetrics struct {
	// Keys held now (the overflow breaker excluded), the cap, and, ever: keys created and
	// evicted, calls of new keys routed to the shared overflow breaker or refused at the cap.
	Keys, MaxKeys, Created, Evicted, Overflowed, RefusedKeys uint64
	// Failures recorded and permits released as ignored, ever (the library keeps no total of
	// successes for a keyed breaker).
	Failures, Ignored uint64
	// RejectedOpen counts calls rejected by OPEN or FORCED_OPEN keys, RejectedHalfOpen by
	// HALF_OPEN keys with every probe out.
	RejectedOpen, RejectedHalfOpen uint64
	LateResults, UnexpectedResults uint64
	// Transitions[from][to] over all keys, indexed by State.
	Transitions [6][6]uint64
}

// Metrics returns a snapshot of the counters (lock-free).
func (kb *KeyedBreaker) Metrics() KeyedBreakerMetrics {
	var s C.struct_surgewall_keyed_breaker_stats
	st := C.surgewall_keyed_breaker_metrics(kb.live(), &s)
	runtime.KeepAlive(kb)
	mustRead("keyed_breaker_metrics", st)
	m := KeyedBreakerMetrics{
		Keys: uint64(s.keys), MaxKeys: uint64(s.max_keys), Created: uint64(s.created), Evicted: uint64(s.evicted),
		Overflowed: uint64(s.overflowed), RefusedKeys: uint64(s.refused_keys),
		Failures: uint64(s.failures), Ignored: uint64(s.ignored),
		RejectedOpen: uint64(s.rejected_open), RejectedHalfOpen: uint64(s.rejected_half_open),
		LateResults: uint64(s.late_results), UnexpectedResults: uint64(s.unexpected_results),
	}
	for i := range m.Transitions {
		for j := range m.Transitions[i] {
			m.Transitions[i][j] = uint64(s.transitions[i][j])
		}
	}
	return m
}

// FallbackPayload returns a copy of the template's static payload (WithFallbackPayload); ok
// is false when there is none.
func (kb *KeyedBreaker) FallbackPayload() (contentType string, body []byte, ok bool) {
	var bp, cp *C.uint8_t
	var bl, cl C.size_t
	st := C.surgewall_keyed_breaker_fallback(kb.live(), &bp, &bl, &cp, &cl)
	defer runtime.KeepAlive(kb) // the pointers are into the keyed breaker
	mustRead("keyed_breaker_fallback", st)
	if bp == nil && cp == nil {
		return "", nil, false
	}
	return C.GoStringN((*C.char)(unsafe.Pointer(cp)), C.int(cl)), C.GoBytes(unsafe.Pointer(bp), C.int(bl)), true
}
