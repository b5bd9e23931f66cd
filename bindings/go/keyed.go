package surgewall

/*
#include "surgewall.h"

extern void surgewallGoKeyVisit(uintptr_t user, uint64_t key, uint64_t active, uint32_t limit);

static void surgewall_go_key_visit(void *user, uint64_t key, uint64_t active, uint32_t limit) {
	surgewallGoKeyVisit((uintptr_t)user, key, active, limit);
}

// The handle travels as an integer; the library only passes it back to the trampoline.
static surgewall_status surgewall_go_keyed_for_each(const surgewall_keyed_bulkhead *kb, uintptr_t user) {
	return surgewall_keyed_bulkhead_for_each(kb, surgewall_go_key_visit, (void *)user);
}
*/
import "C"

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"runtime/cgo"
	"sync/atomic"
)

// WithGlobalMax limits a KeyedBulkhead's calls in flight across all keys. Default: no
// global limit.
func WithGlobalMax(n int) Option {
	return opt("global_max", kindKeyedBulkhead, func(s *settings) {
		s.bulkhead.globalMax, s.bulkhead.globalMaxSet = n, true
	})
}

// WithKeyLimit gives one string key of a KeyedBulkhead its own limit instead of perKeyMax
// (hashed as the keyed bulkhead hashes the keys of TryAcquire and Execute).
func WithKeyLimit(key string, n int) Option {
	return opt("limits", kindKeyedBulkhead, func(s *settings) {
		s.bulkhead.limits = append(s.bulkhead.limits, keyLimit{key: key, isStr: true, n: n})
	})
}

// WithKeyLimitUint64 is WithKeyLimit for a uint64 key.
func WithKeyLimitUint64(key uint64, n int) Option {
	return opt("limits", kindKeyedBulkhead, func(s *settings) {
		s.bulkhead.limits = append(s.bulkhead.limits, keyLimit{key64: key, n: n})
	})
}

// KeyedBulkhead holds one small bulkhead per key (16 B per idle key in the library). Safe
// for concurrent use.
type KeyedBulkhead struct {
	h      *C.surgewall_keyed_bulkhead
	closed atomic.Bool
	name   string
	id     uint64
}

// KeyedBulkheadPermit is a slot taken for one key; give it back with Release, exactly once.
type KeyedBulkheadPermit struct {
	kb *KeyedBulkhead
	p  C.struct_surgewall_keyed_permit
}

func freeKeyedBulkhead(h *C.surgewall_keyed_bulkhead) {
	cleanupsRun.Add(1)
	C.surgewall_keyed_bulkhead_free(h)
}

func u32(field string, n int) (C.uint32_t, error) {
	if n < 0 || uint64(n) > math.MaxUint32 {
		return 0, &ConfigError{Field: field, Message: fmt.Sprintf("must be in [0, %d], got %d", uint32(math.MaxUint32), n)}
	}
	return C.uint32_t(n), nil
}

// NewKeyedBulkhead creates a keyed bulkhead: perKeyMax calls in flight per key (>= 1), with
// the options WithGlobalMax, WithKeyLimit, WithKeyLimitUint64, WithMaxKeys,
// WithSharedOverflow, WithIdleTTL and WithClock. name lists it for the agent (StartAgent)
// and names it in its refusals ("": not listed).
func NewKeyedBulkhead(name string, perKeyMax int, opts ...Option) (*KeyedBulkhead, error) {
	if versionErr != nil {
		return nil, versionErr
	}
	o := collect(opts)
	if err := o.only(kindKeyedBulkhead, "a keyed bulkhead"); err != nil {
		return nil, err
	}
	if err := o.keyed.overflow(); err != nil {
		return nil, err
	}
	perKey, err := u32("per_key_max", perKeyMax)
	if err != nil {
		return nil, err
	}
	global, err := u32("global_max", o.bulkhead.globalMax)
	if err != nil {
		return nil, err
	}
	limits := make([]C.uint32_t, len(o.bulkhead.limits))
	for i, l := range o.bulkhead.limits {
		if limits[i], err = u32("limits", l.n); err != nil {
			return nil, err
		}
	}
	var c *C.surgewall_keyed_bulkhead_config
	if err := statusErr("keyed_bulkhead_config_new", C.surgewall_keyed_bulkhead_config_new(perKey, &c)); err != nil {
		return nil, err
	}
	var steps []func() C.surgewall_status
	if name != "" {
		steps = append(steps, func() C.surgewall_status {
			return C.surgewall_keyed_bulkhead_config_set_name(c, cBytes(name), C.size_t(len(name)))
		})
	}
	if o.bulkhead.globalMaxSet {
		steps = append(steps, func() C.surgewall_status { return C.surgewall_keyed_bulkhead_config_set_global_max(c, global) })
	}
	for i, l := range o.bulkhead.limits {
		steps = append(steps, func() C.surgewall_status {
			if l.isStr {
				return C.surgewall_keyed_bulkhead_config_set_limit_for_str(c, cBytes(l.key), C.size_t(len(l.key)), limits[i])
			}
			return C.surgewall_keyed_bulkhead_config_set_limit_for(c, C.uint64_t(l.key64), limits[i])
		})
	}
	if o.keyed.maxKeysSet {
		steps = append(steps, func() C.surgewall_status {
			return C.surgewall_keyed_bulkhead_config_set_max_keys(c, C.size_t(o.keyed.maxKeys), C.bool(o.keyed.sharedOverflow))
		})
	}
	if o.keyed.idleTTLSet {
		steps = append(steps, func() C.surgewall_status {
			return C.surgewall_keyed_bulkhead_config_set_idle_ttl(c, durationNs(o.keyed.idleTTL))
		})
	}
	if o.clock != nil {
		steps = append(steps, func() C.surgewall_status {
			ch, err := o.clock.handle()
			if err != nil {
				return C.SURGEWALL_INVALID_HANDLE
			}
			return C.surgewall_keyed_bulkhead_config_set_mock_clock(c, ch)
		})
	}
	for _, f := range steps {
		if err := statusErr("keyed_bulkhead_config", f()); err != nil {
			C.surgewall_keyed_bulkhead_config_free(c)
			return nil, err
		}
	}
	runtime.KeepAlive(o.clock)
	var h *C.surgewall_keyed_bulkhead
	var cerr *C.surgewall_error
	if st := C.surgewall_keyed_bulkhead_new(c, &h, &cerr); st != C.SURGEWALL_OK {
		return nil, constructorErr("keyed_bulkhead_new", st, cerr)
	}
	var id C.uint64_t
	if err := statusErr("keyed_bulkhead_id", C.surgewall_keyed_bulkhead_id(h, &id)); err != nil {
		C.surgewall_keyed_bulkhead_free(h)
		return nil, err
	}
	kb := &KeyedBulkhead{h: h, name: name, id: uint64(id)}
	runtime.AddCleanup(kb, freeKeyedBulkhead, h)
	return kb, nil
}

func (kb *KeyedBulkhead) handle() (*C.surgewall_keyed_bulkhead, error) {
	maybeGC()
	if kb.closed.Load() {
		return nil, ErrClosed
	}
	return kb.h, nil
}

// live returns the handle for an observer, closed or not (it lives while kb does).
func (kb *KeyedBulkhead) live() *C.surgewall_keyed_bulkhead {
	maybeGC()
	return kb.h
}

// acquired turns an acquire's status into a permit or the refusal naming the key.
func (kb *KeyedBulkhead) acquired(st C.surgewall_status, key string, id uint64, p C.struct_surgewall_keyed_permit,
	r C.surgewall_keyed_rejection) (KeyedBulkheadPermit, error) {
	switch {
	case st == C.SURGEWALL_OK:
		return KeyedBulkheadPermit{kb: kb, p: p}, nil
	case st == C.SURGEWALL_REGISTRY_FULL || r == C.SURGEWALL_KEYED_REJECTION_TOO_MANY_KEYS:
		return KeyedBulkheadPermit{}, &RegistryFullError{Key: key, KeyID: id}
	case st == C.SURGEWALL_BULKHEAD_FULL:
		return KeyedBulkheadPermit{}, &BulkheadFullError{Bulkhead: kb.name, Keyed: true, Key: key, KeyID: id,
			Global: r == C.SURGEWALL_KEYED_REJECTION_GLOBAL_FULL}
	}
	return KeyedBulkheadPermit{}, statusErr("keyed_bulkhead_try_acquire", st)
}

// TryAcquire takes a slot for a string key without waiting (the key is hashed by the
// library with a per-bulkhead seed; KeyOf gives its 64-bit key). A refusal is a
// *BulkheadFullError (ErrBulkheadFull) naming the key, or a *RegistryFullError
// (ErrRegistryFull) for a new key beyond the key cap.
func (kb *KeyedBulkhead) TryAcquire(key string) (KeyedBulkheadPermit, error) {
	h, err := kb.handle()
	if err != nil {
		return KeyedBulkheadPermit{}, err
	}
	var p C.struct_surgewall_keyed_permit
	var r C.surgewall_keyed_rejection
	st := C.surgewall_keyed_bulkhead_try_acquire_str(h, cBytes(key), C.size_t(len(key)), &p, &r)
	runtime.KeepAlive(kb)
	var id uint64
	if st != C.SURGEWALL_OK {
		id = kb.KeyOf(key)
	}
	return kb.acquired(st, key, id, p, r)
}

// TryAcquireUint64 is TryAcquire for a uint64 key.
func (kb *KeyedBulkhead) TryAcquireUint64(key uint64) (KeyedBulkheadPermit, error) {
	h, err := kb.handle()
	if err != nil {
		return KeyedBulkheadPermit{}, err
	}
	var p C.struct_surgewall_keyed_permit
	var r C.surgewall_keyed_rejection
	st := C.surgewall_keyed_bulkhead_try_acquire(h, C.uint64_t(key), &p, &r)
	runtime.KeepAlive(kb)
	return kb.acquired(st, "", key, p, r)
}

// KeyOf is the 64-bit key a string key maps to in this bulkhead (the KeyID of its
// refusals, the Key of Keys and of its events).
func (kb *KeyedBulkhead) KeyOf(key string) uint64 {
	var out C.uint64_t
	st := C.surgewall_keyed_bulkhead_key_of(kb.live(), cBytes(key), C.size_t(len(key)), &out)
	runtime.KeepAlive(kb)
	mustRead("keyed_bulkhead_key_of", st)
	return uint64(out)
}

// Release gives the slot back (ErrUnexpectedResult when it was not taken).
func (p KeyedBulkheadPermit) Release() error {
	if p.kb == nil {
		return ErrInvalidPermit
	}
	h, err := p.kb.handle()
	if err != nil {
		return err
	}
	st := C.surgewall_keyed_bulkhead_release(h, p.p)
	runtime.KeepAlive(p.kb)
	return statusErr("keyed_bulkhead_release", st)
}

// Execute runs fn in a slot of key (no waiting) and gives it back, also when fn panics.
func (kb *KeyedBulkhead) Execute(ctx context.Context, key string, fn func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := kb.TryAcquire(key)
	if err != nil {
		return err
	}
	defer p.Release()
	return fn(ctx)
}

// ExecuteUint64 is Execute for a uint64 key.
func (kb *KeyedBulkhead) ExecuteUint64(ctx context.Context, key uint64, fn func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := kb.TryAcquireUint64(key)
	if err != nil {
		return err
	}
	defer p.Release()
	return fn(ctx)
}

// Active is the number of calls in flight for key (0 for a key not held).
func (kb *KeyedBulkhead) Active(key string) uint64 { return kb.ActiveUint64(kb.KeyOf(key)) }

// ActiveUint64 is Active for a uint64 key.
func (kb *KeyedBulkhead) ActiveUint64(key uint64) uint64 {
	var out C.uint64_t
	st := C.surgewall_keyed_bulkhead_active(kb.live(), C.uint64_t(key), &out)
	runtime.KeepAlive(kb)
	mustRead("keyed_bulkhead_active", st)
	return uint64(out)
}

// Sweep evicts keys idle longer than the idle TTL (WithIdleTTL) and returns how many. Run it
// periodically: idleness is measured between sweeps (a key unused since the previous sweep
// counts as idle from then), so a key goes between the idle TTL and the idle TTL + one sweep
// interval after its last use, and calls pay nothing for the tracking.
func (kb *KeyedBulkhead) Sweep() (int, error) {
	h, err := kb.handle()
	if err != nil {
		return 0, err
	}
	var out C.uint64_t
	st := C.surgewall_keyed_bulkhead_sweep(h, &out)
	runtime.KeepAlive(kb)
	return int(out), statusErr("keyed_bulkhead_sweep", st)
}

// KeyState is one key held by a KeyedBulkhead.
type KeyState struct {
	Key    uint64
	Active uint64 // calls in flight
	Limit  uint32
}

// Keys returns a snapshot of every key held, with its calls in flight and limit.
func (kb *KeyedBulkhead) Keys() []KeyState {
	var out []KeyState
	user := cgo.NewHandle(&out)
	defer user.Delete()
	st := C.surgewall_go_keyed_for_each(kb.live(), C.uintptr_t(user))
	runtime.KeepAlive(kb)
	mustRead("keyed_bulkhead_for_each", st)
	return out
}

// KeyedBulkheadMetrics is a snapshot of a keyed bulkhead.
type KeyedBulkheadMetrics struct {
	GlobalActive                                uint64
	GlobalMax, PerKeyMax                        uint32
	RejectedKey, RejectedGlobal                 uint64
	UnexpectedReleases                          uint64
	Keys, MaxKeys, Created, Evicted, Overflowed uint64
	RefusedKeys                                 uint64
}

// Metrics returns a snapshot.
func (kb *KeyedBulkhead) Metrics() KeyedBulkheadMetrics {
	var s C.struct_surgewall_keyed_bulkhead_stats
	st := C.surgewall_keyed_bulkhead_metrics(kb.live(), &s)
	runtime.KeepAlive(kb)
	mustRead("keyed_bulkhead_metrics", st)
	return KeyedBulkheadMetrics{
		GlobalActive: uint64(s.global_active), GlobalMax: uint32(s.global_max), PerKeyMax: uint32(s.per_key_max),
		RejectedKey: uint64(s.rejected_key), RejectedGlobal: uint64(s.rejected_global),
		UnexpectedReleases: uint64(s.unexpected_releases), Keys: uint64(s.keys), MaxKeys: uint64(s.max_keys),
		Created: uint64(s.created), Evicted: uint64(s.evicted), Overflowed: uint64(s.overflowed),
		RefusedKeys: uint64(s.refused_keys),
	}
}

// Close marks the keyed bulkhead closed: later acquires, releases and sweeps return
// ErrClosed; its observers (Metrics, Keys, Active, KeyOf) keep reading. Idempotent.
func (kb *KeyedBulkhead) Close() error {
	kb.closed.Store(true)
	return nil
}

// ID is the keyed bulkhead's process-unique id: the Source of its eviction events.
func (kb *KeyedBulkhead) ID() uint64 { return kb.id }

// Name is the keyed bulkhead's name ("" when it is not listed for the agent).
func (kb *KeyedBulkhead) Name() string { return kb.name }
