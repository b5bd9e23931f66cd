package surgewall

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// keyedNeverTrips: the failure-rate rule at the largest minimum a keyed breaker takes; no
// test here records 128 calls with half of them failing.
var keyedNeverTrips = WithMinimumCalls(128)

// newTestKeyed makes a keyed breaker on a mock clock with the keyed options cfg and the
// template opts.
func newTestKeyed(t *testing.T, cfg []Option, opts ...Option) (*KeyedBreaker, *MockClock) {
	t.Helper()
	clock := NewMockClock()
	t.Cleanup(func() { clock.Close() })
	kb, err := NewKeyedBreaker("", append(append([]Option{WithClock(clock)}, cfg...), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kb.Close() })
	return kb, clock
}

func mustKeyOf(t *testing.T, kb *KeyedBreaker, key string) uint64 {
	t.Helper()
	k := kb.KeyOf(key)
	return k
}

func mustKeyState(t *testing.T, kb *KeyedBreaker, key string) State {
	t.Helper()
	s, ok := kb.State(key)
	if !ok {
		t.Fatalf("state of %q: not held", key)
	}
	return s
}

func mustKeyedMetrics(t *testing.T, kb *KeyedBreaker) KeyedBreakerMetrics {
	t.Helper()
	m := kb.Metrics()
	return m
}

// keyedEvents drains sub and returns kb's events.
func keyedEvents(sub *Subscription, kb *KeyedBreaker) []Event {
	var got []Event
	for ev := range sub.Pending() {
		if ev.Source == kb.ID() {
			got = append(got, ev)
		}
	}
	return got
}

// tripKey fails key n times (a template with WithConsecutiveFailures(n)) and checks it opened.
func tripKey(t *testing.T, kb *KeyedBreaker, key string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := kb.Execute(context.Background(), key, fail); err != errBoom {
			t.Fatalf("call %d on %q: %v", i, key, err)
		}
	}
	if s := mustKeyState(t, kb, key); s != StateOpen {
		t.Fatalf("%q is %v after %d failures", key, s, n)
	}
}

func TestKeyedBreakerOneKeyTripsOthersPass(t *testing.T) {
	kb, clock := newTestKeyed(t, []Option{}, WithoutFailureRate(), WithConsecutiveFailures(2),
		WithOpenFor(5*time.Second), WithHalfOpenCalls(1))
	ctx := context.Background()
	tripKey(t, kb, "GET /search", 2)

	// Other keys, by string and by uint64, are not affected.
	for i := 0; i < 10; i++ {
		if err := kb.Execute(ctx, "GET /cart", ok); err != nil {
			t.Fatal(err)
		}
		if err := kb.ExecuteUint64(ctx, 42, ok); err != nil {
			t.Fatal(err)
		}
	}
	if s := mustKeyState(t, kb, "GET /cart"); s != StateClosed {
		t.Fatal(s)
	}

	called := false
	err := kb.Execute(ctx, "GET /search", func(context.Context) error { called = true; return nil })
	var re *RejectedError
	if called || !errors.As(err, &re) {
		t.Fatalf("called=%v err=%v", called, err)
	}
	if !errors.Is(err, ErrOpen) || errors.Is(err, ErrHalfOpenFull) || errors.Is(err, ErrForcedOpen) || errors.Is(err, ErrRegistryFull) {
		t.Fatalf("errors.Is mismatch for %v", err)
	}
	if !re.Keyed || re.Key != "GET /search" || re.KeyID != mustKeyOf(t, kb, "GET /search") || re.State != StateOpen || re.RetryAfter != 5*time.Second || re.Breaker != "" {
		t.Fatalf("%+v", re)
	}
	if !strings.Contains(err.Error(), `key "GET /search"`) || !strings.Contains(err.Error(), "retry after 5s") {
		t.Fatal(err.Error())
	}
	// RetryAfter is the exact time left.
	clock.Advance(2 * time.Second)
	if _, err := kb.Acquire("GET /search"); !errors.As(err, &re) || re.RetryAfter != 3*time.Second {
		t.Fatalf("%v", err)
	}
	snap, held := kb.Get("GET /search")
	if !held || snap.State != StateOpen || snap.RetryAfter != 3*time.Second || snap.Key != re.KeyID || snap.ConsecutiveOpens != 1 {
		t.Fatalf("%+v %v", snap, held)
	}
	// A uint64 key's rejection names it by number.
	for i := 0; i < 2; i++ {
		_ = kb.ExecuteUint64(ctx, 7, fail)
	}
	err = kb.ExecuteUint64(ctx, 7, ok)
	if !errors.As(err, &re) || re.KeyID != 7 || re.Key != "" || !strings.Contains(err.Error(), "key 0x7") {
		t.Fatalf("%v", err)
	}
	m := mustKeyedMetrics(t, kb)
	if m.Keys != 4 || m.Created != 4 || m.Failures != 4 || m.RejectedOpen != 3 || m.Transitions[StateClosed][StateOpen] != 2 {
		t.Fatalf("%+v", m)
	}
}

func TestKeyedBreakerHalfOpenProbesThenClose(t *testing.T) {
	sub, err := Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	kb, clock := newTestKeyed(t, []Option{}, WithoutFailureRate(), WithConsecutiveFailures(1),
		WithOpenFor(time.Second), WithHalfOpenCalls(2))
	tripKey(t, kb, "db-1", 1)
	clock.Advance(time.Second)
	p1, err := kb.Acquire("db-1")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := kb.Acquire("db-1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = kb.Acquire("db-1")
	var re *RejectedError
	if !errors.Is(err, ErrHalfOpenFull) || !errors.Is(err, ErrOpen) || errors.Is(err, ErrForcedOpen) || !errors.As(err, &re) || re.State != StateHalfOpen || re.Key != "db-1" {
		t.Fatalf("third probe: %v", err)
	}
	if s := mustKeyState(t, kb, "db-1"); s != StateHalfOpen {
		t.Fatal(s)
	}
	if err := p1.Record(Success); err != nil {
		t.Fatal(err)
	}
	if s := mustKeyState(t, kb, "db-1"); s != StateHalfOpen {
		t.Fatal("closes only when every probe has reported:", s)
	}
	if err := p2.Done(nil); err != nil {
		t.Fatal(err)
	}
	if s := mustKeyState(t, kb, "db-1"); s != StateClosed {
		t.Fatal(s)
	}
	// The transitions went out as keyed transitions naming the key.
	k := mustKeyOf(t, kb, "db-1")
	want := []struct {
		from, to State
		reason   TransitionReason
	}{
		{StateClosed, StateOpen, ReasonConsecutiveFailures},
		{StateOpen, StateHalfOpen, ReasonWaitOver},
		{StateHalfOpen, StateClosed, ReasonProbesSucceeded},
	}
	got := keyedEvents(sub, kb)
	if len(got) != len(want) {
		t.Fatalf("%d events: %+v", len(got), got)
	}
	for i, w := range want {
		// One generation per transition. (A key's cell starts at generation 1, so the first
		// transition is generation 2, where a named breaker's is 1.)
		if got[i].Kind != EventKeyedTransition || got[i].Key != k || got[i].From != w.from || got[i].To != w.to || got[i].Reason != w.reason || got[i].Generation != got[0].Generation+uint64(i) {
			t.Fatalf("event %d: %+v", i, got[i])
		}
	}
	// A failing probe reopens at once.
	tripKey(t, kb, "db-1", 1)
	clock.Advance(time.Second)
	if err := kb.Execute(context.Background(), "db-1", fail); err != errBoom {
		t.Fatal(err)
	}
	if snap, _ := kb.Get("db-1"); snap.State != StateOpen || snap.ConsecutiveOpens != 2 {
		t.Fatalf("%+v", snap)
	}
}

// Many goroutines on a HALF_OPEN key: exactly half_open_calls are admitted (I1).
func TestKeyedBreakerHalfOpenAdmitsExactlyNUnderConcurrency(t *testing.T) {
	kb, clock := newTestKeyed(t, []Option{}, WithoutFailureRate(), WithConsecutiveFailures(1),
		WithOpenFor(time.Second), WithHalfOpenCalls(3))
	tripKey(t, kb, "k", 1)
	clock.Advance(time.Second)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	permits := make(chan KeyedBreakerPermit, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 8; i++ {
				if p, err := kb.Acquire("k"); err == nil {
					admitted.Add(1)
					permits <- p
				} else if !errors.Is(err, ErrHalfOpenFull) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	close(permits)
	if admitted.Load() != 3 {
		t.Fatalf("%d probes admitted", admitted.Load())
	}
	for p := range permits {
		if err := p.Record(Success); err != nil {
			t.Fatal(err)
		}
	}
	if s := mustKeyState(t, kb, "k"); s != StateClosed {
		t.Fatal(s)
	}
	if m := mustKeyedMetrics(t, kb); m.RejectedHalfOpen != 64-3 {
		t.Fatalf("%+v", m)
	}
}

func TestKeyedBreakerOverrides(t *testing.T) {
	kb, _ := newTestKeyed(t, []Option{WithOverride("GET /flaky", WithConsecutiveFailures(1)), WithOverrideUint64(42, WithConsecutiveFailures(2))}, WithoutFailureRate(), WithConsecutiveFailures(5), WithOpenFor(7*time.Second))
	ctx := context.Background()
	tripKey(t, kb, "GET /flaky", 1)
	// The override is layered on the template: the open wait is the template's.
	var re *RejectedError
	if err := kb.Execute(ctx, "GET /flaky", ok); !errors.As(err, &re) || re.RetryAfter != 7*time.Second {
		t.Fatal(err)
	}
	// Other string keys keep the template.
	for i := 0; i < 4; i++ {
		_ = kb.Execute(ctx, "GET /steady", fail)
	}
	if s := mustKeyState(t, kb, "GET /steady"); s != StateClosed {
		t.Fatal("the template applies to other keys:", s)
	}
	// The uint64 override: key 42 trips on its 2nd failure, key 43 (template) does not.
	for _, k := range []uint64{42, 43} {
		for i := 0; i < 2; i++ {
			_ = kb.ExecuteUint64(ctx, k, fail)
		}
	}
	if s, ok := kb.StateUint64(42); !ok || s != StateOpen {
		t.Fatal("the uint64 override applies:", s, ok)
	}
	if s, ok := kb.StateUint64(43); !ok || s != StateClosed {
		t.Fatal("not to its neighbour:", s, ok)
	}
	// A string override is keyed by the string's hash, not by some number.
	if s, ok := kb.StateUint64(mustKeyOf(t, kb, "GET /flaky")); !ok || s != StateOpen {
		t.Fatal(s, ok)
	}
}

func TestKeyedBreakerKeyCap(t *testing.T) {
	t.Run("reject", func(t *testing.T) {
		kb, _ := newTestKeyed(t, []Option{WithMaxKeys(2)}, keyedNeverTrips)
		ctx := context.Background()
		for _, k := range []string{"a", "b"} {
			if err := kb.Execute(ctx, k, ok); err != nil {
				t.Fatal(err)
			}
		}
		called := false
		err := kb.Execute(ctx, "c", func(context.Context) error { called = true; return nil })
		var rf *RegistryFullError
		if called || !errors.Is(err, ErrRegistryFull) || errors.Is(err, ErrOpen) || !errors.As(err, &rf) {
			t.Fatalf("called=%v %v", called, err)
		}
		if rf.Key != "c" || rf.KeyID != mustKeyOf(t, kb, "c") || !strings.Contains(err.Error(), `"c"`) {
			t.Fatalf("%+v", rf)
		}
		if err := kb.ExecuteUint64(ctx, 9, ok); !errors.As(err, &rf) || rf.KeyID != 9 {
			t.Fatal(err)
		}
		// Held keys still pass; a manual transition cannot create a key beyond the cap either.
		if err := kb.Execute(ctx, "a", ok); err != nil {
			t.Fatal(err)
		}
		if err := kb.ForceOpen("d", Forever); !errors.Is(err, ErrRegistryFull) {
			t.Fatal(err)
		}
		if _, ok := kb.Get("c"); ok {
			t.Fatal("a refused key is not held")
		}
		m := mustKeyedMetrics(t, kb)
		if m.Keys != 2 || m.MaxKeys != 2 || m.RefusedKeys < 2 || m.Overflowed != 0 {
			t.Fatalf("%+v", m)
		}
	})
	t.Run("shared", func(t *testing.T) {
		sub, err := Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		kb, _ := newTestKeyed(t, []Option{WithMaxKeys(2), WithSharedOverflow()},
			WithoutFailureRate(), WithConsecutiveFailures(2), WithOpenFor(time.Minute))
		ctx := context.Background()
		for _, k := range []string{"a", "b"} {
			if err := kb.Execute(ctx, k, ok); err != nil {
				t.Fatal(err)
			}
		}
		// c and d are beyond the cap: they share one overflow breaker, which c trips for d.
		_ = kb.Execute(ctx, "c", fail)
		_ = kb.Execute(ctx, "d", fail)
		err = kb.Execute(ctx, "e", ok)
		var re *RejectedError
		if !errors.Is(err, ErrOpen) || !errors.As(err, &re) || re.Key != "e" {
			t.Fatalf("the shared overflow breaker is open: %v", err)
		}
		if evs := keyedEvents(sub, kb); len(evs) != 1 || evs[0].Key != OverflowKey || evs[0].To != StateOpen {
			t.Fatalf("the overflow breaker's transition: %+v", evs)
		}
		// The held keys are not affected, and the overflow entry is not one of the keys.
		if err := kb.Execute(ctx, "a", ok); err != nil {
			t.Fatal(err)
		}
		keys := kb.Keys()
		if len(keys) != 2 {
			t.Fatalf("%+v", keys)
		}
		for _, k := range []string{"c", "d", "e"} {
			if _, ok := kb.Get(k); ok {
				t.Fatalf("%q got a key of its own", k)
			}
		}
		if m := mustKeyedMetrics(t, kb); m.Keys != 2 || m.Overflowed != 3 || m.RefusedKeys != 0 || m.Failures != 2 {
			t.Fatalf("%+v", m)
		}
		// OverflowKey names the shared breaker: to look at it and to reset it.
		if s, ok := kb.GetUint64(OverflowKey); !ok || s.State != StateOpen {
			t.Fatalf("the overflow breaker: %+v %v", s, ok)
		}
		if err := kb.ResetUint64(OverflowKey); err != nil {
			t.Fatal(err)
		}
		if err := kb.Execute(ctx, "e", ok); err != nil {
			t.Fatalf("reset, the overflow breaker admits again: %v", err)
		}
		if m := mustKeyedMetrics(t, kb); m.Keys != 2 {
			t.Fatalf("the overflow breaker took no key's room: %+v", m)
		}
	})
}

func TestKeyedBreakerSweepEvictsIdleClosedKeysOnly(t *testing.T) {
	kb, clock := newTestKeyed(t, []Option{WithIdleTTL(time.Minute)},
		WithoutFailureRate(), WithConsecutiveFailures(1), WithOpenFor(time.Hour))
	ctx := context.Background()
	for _, k := range []string{"idle", "busy", "tripped", "forced", "off", "counting"} {
		if err := kb.Execute(ctx, k, ok); err != nil {
			t.Fatal(err)
		}
	}
	late, err := kb.Acquire("idle") // a permit still out when its key goes
	if err != nil {
		t.Fatal(err)
	}
	tripKey(t, kb, "tripped", 1)
	if err := kb.ForceOpen("forced", Forever); err != nil {
		t.Fatal(err)
	}
	if err := kb.Disable("off"); err != nil {
		t.Fatal(err)
	}
	if err := kb.MetricsOnly("counting"); err != nil {
		t.Fatal(err)
	}
	if n, err := kb.Sweep(); err != nil || n != 0 {
		t.Fatal("the first sweep only marks:", n, err)
	}
	clock.Advance(2 * time.Minute)
	if err := kb.Execute(ctx, "busy", ok); err != nil { // used since that sweep
		t.Fatal(err)
	}
	sub, err := Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if n, err := kb.Sweep(); err != nil || n != 1 {
		t.Fatal("only the idle CLOSED key goes:", n, err)
	}
	if _, ok := kb.Get("idle"); ok {
		t.Fatal("evicted:", ok)
	}
	for _, k := range []string{"busy", "tripped", "forced", "off", "counting"} {
		if _, ok := kb.Get(k); !ok {
			t.Fatalf("%q was evicted", k)
		}
	}
	got := keyedEvents(sub, kb)
	if len(got) != 1 || got[0].Kind != EventEvicted || got[0].Key != mustKeyOf(t, kb, "idle") {
		t.Fatalf("eviction events: %+v", got)
	}
	// The permit of the evicted key is fenced: its result is late.
	if err := late.Record(Success); !errors.Is(err, ErrLateResult) {
		t.Fatal(err)
	}
	// The manual states stay however long they are idle; "busy" goes in its turn.
	clock.Advance(2 * time.Minute)
	if n, _ := kb.Sweep(); n != 1 {
		t.Fatal(n)
	}
	if _, ok := kb.Get("busy"); ok {
		t.Fatal("busy is idle now")
	}
	clock.Advance(2 * time.Minute)
	if n, _ := kb.Sweep(); n != 0 {
		t.Fatal(n)
	}
	// An evicted key comes back fresh on its next call.
	if err := kb.Execute(ctx, "idle", ok); err != nil {
		t.Fatal(err)
	}
	m := mustKeyedMetrics(t, kb)
	if m.Evicted != 2 || m.Keys != 5 || m.Created != 7 || m.LateResults != 1 {
		t.Fatalf("%+v", m)
	}
}

func TestKeyedBreakerBadConfigNamesTheField(t *testing.T) {
	cases := []struct {
		name     string
		cfg      []Option
		template []Option
		field    string
	}{
		{"minimum calls above the keyed limit", []Option{}, []Option{WithMinimumCalls(1000)}, "minimum_calls"},
		{"override with minimum calls above the limit", []Option{WithOverride("x", WithMinimumCalls(1000))}, nil, "minimum_calls"},
		{"uint64 override with a NaN rate", []Option{WithOverrideUint64(1, WithFailureRate(math.NaN()))}, nil, "failure_rate"},
		{"NaN failure rate", []Option{}, []Option{WithFailureRate(math.NaN())}, "failure_rate"},
		{"count window above the keyed limit", []Option{}, []Option{WithCountWindow(511), WithMinimumCalls(10)}, "window.calls"},
		{"consecutive failures above the keyed limit", []Option{}, []Option{WithConsecutiveFailures(256)}, "consecutive_failures"},
		{"half-open calls above the keyed limit", []Option{}, []Option{WithHalfOpenCalls(4096)}, "half_open_calls"},
		{"negative idle TTL", []Option{WithIdleTTL(-time.Second)}, nil, "idle_ttl"},
		{"negative max keys", []Option{WithMaxKeys(-1)}, nil, "max_keys"},
		{"zero max keys", []Option{WithMaxKeys(0)}, nil, "max_keys"},
		{"an override sets a keyed option", []Option{WithOverride("x", WithMaxKeys(3))}, nil, "max_keys"},
		{"a bulkhead's option", []Option{WithMaxWait(time.Second)}, nil, "max_wait"},
		{"shared overflow without a cap", []Option{WithSharedOverflow()}, nil, "max_keys"},
		{"negative open for", []Option{}, []Option{WithOpenFor(-time.Second)}, "open_for"},
		{"negative count in the template", []Option{}, []Option{WithMinimumCalls(-1)}, "minimum_calls"},
		{"override sets a clock", []Option{WithOverride("x", WithClock(NewMockClock()))}, nil, "clock"},
		{"override sets a precise clock", []Option{WithOverride("x", WithPreciseClock())}, nil, "clock"},
		{"override sets a fallback payload", []Option{WithOverrideUint64(3, WithFallbackPayload("text/plain", []byte("x")))}, nil, "fallback"},
		{"override sets a classifier", []Option{WithOverride("x", WithIsFailure(func(error) bool { return true }))}, nil, "classifier"},
		{"override sets a fallback", []Option{WithOverride("x", WithFallback(func(context.Context, error) error { return nil }))}, nil, "fallback"},
		{"override turns the ticker off", []Option{WithOverride("x", WithoutClockTicker())}, nil, "clock_ticker"},
		{"nil clock", []Option{}, []Option{WithClock(nil)}, "clock"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			kb, err := NewKeyedBreaker("", append(c.cfg, c.template...)...)
			if err == nil {
				kb.Close()
				t.Fatal("accepted")
			}
			var ce *ConfigError
			if !errors.Is(err, ErrInvalidConfig) || !errors.As(err, &ce) {
				t.Fatalf("%T %v", err, err)
			}
			if ce.Field != c.field {
				t.Fatalf("field %q, want %q (%v)", ce.Field, c.field, err)
			}
		})
	}
	// The limits themselves are accepted.
	kb, err := NewKeyedBreaker("", WithMaxKeys(1), WithMinimumCalls(128), WithCountWindow(510),
		WithConsecutiveFailures(255), WithHalfOpenCalls(14))
	if err != nil {
		t.Fatal(err)
	}
	kb.Close()
	// A closed clock.
	c := NewMockClock()
	c.Close()
	if _, err := NewKeyedBreaker("", WithClock(c)); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

func TestKeyedBreakerUseAfterCloseGivesErrClosed(t *testing.T) {
	kb, err := NewKeyedBreaker("", keyedNeverTrips)
	if err != nil {
		t.Fatal(err)
	}
	p, err := kb.Acquire("k")
	if err != nil {
		t.Fatal(err)
	}
	if err := kb.ForceOpen("hot", Forever); err != nil {
		t.Fatal(err)
	}
	if err := kb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := kb.Close(); err != nil {
		t.Fatal("Close is idempotent:", err)
	}
	called := false
	if err := kb.Execute(context.Background(), "k", func(context.Context) error { called = true; return nil }); !errors.Is(err, ErrClosed) || called {
		t.Fatal(err, called)
	}
	if err := kb.ExecuteUint64(context.Background(), 1, ok); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if _, err := KeyedCall(context.Background(), kb, "k", func(context.Context) (int, error) { return 1, nil }); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if err := p.Record(Success); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if err := p.RecordDuration(Success, time.Millisecond); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	for name, f := range map[string]func() error{
		"Acquire":              func() error { _, err := kb.Acquire("k"); return err },
		"AcquireUint64":        func() error { _, err := kb.AcquireUint64(1); return err },
		"Allow":                func() error { _, err := kb.Allow("k"); return err },
		"AllowUint64":          func() error { _, err := kb.AllowUint64(1); return err },
		"ForceOpen":            func() error { return kb.ForceOpen("k", time.Second) },
		"Disable":              func() error { return kb.Disable("k") },
		"MetricsOnly":          func() error { return kb.MetricsOnly("k") },
		"TransitionToClosed":   func() error { return kb.TransitionToClosed("k") },
		"TransitionToHalfOpen": func() error { return kb.TransitionToHalfOpen("k") },
		"Reset":                func() error { return kb.Reset("k") },
		"ResetUint64":          func() error { return kb.ResetUint64(1) },
		"Sweep":                func() error { _, err := kb.Sweep(); return err },
	} {
		if err := f(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
	// The observers keep reading the keyed breaker as Close left it.
	if s, ok := kb.State("hot"); !ok || s != StateForcedOpen {
		t.Fatal("State after Close:", s, ok)
	}
	snap, ok := kb.Get("hot")
	if !ok || snap.State != StateForcedOpen || snap.RetryAfter != Forever || snap.Key != kb.KeyOf("hot") {
		t.Fatalf("Get after Close: %+v %v", snap, ok)
	}
	// (Compared as printed: an absent rate is NaN, which equals nothing, itself included.)
	if s, ok := kb.GetUint64(snap.Key); !ok || fmt.Sprintf("%+v", s) != fmt.Sprintf("%+v", snap) {
		t.Fatalf("GetUint64 after Close: %+v %v", s, ok)
	}
	if _, ok := kb.Get("never"); ok {
		t.Fatal("Get after Close makes no key")
	}
	n := 0
	kb.Range(func(uint64, KeySnapshot) bool { n++; return true })
	if keys := kb.Keys(); len(keys) != 2 || n != 2 || kb.Metrics().Keys != 2 {
		t.Fatalf("Keys after Close: %+v, Range saw %d, %+v", keys, n, kb.Metrics())
	}
	if _, _, has := kb.FallbackPayload(); has {
		t.Fatal("no payload was set")
	}
}

// Many goroutines racing on one new key make one key, and every outcome is counted (I2).
func TestKeyedBreakerRaceOnANewKeyMakesOneKey(t *testing.T) {
	// A streak of 255 failures cannot happen: each goroutine records a success between two
	// of its failures, so at most one failure per goroutine runs in a row.
	kb, _ := newTestKeyed(t, []Option{}, WithoutFailureRate(), WithConsecutiveFailures(255))
	const workers = 8
	perWorker := iterations(3000) / 3 * 3
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < perWorker; i++ {
				err := kb.Execute(context.Background(), "GET /users/{id}", func(context.Context) error {
					switch i % 3 {
					case 0:
						return errBoom
					case 1:
						return nil
					}
					return context.Canceled
				})
				if err != nil && err != errBoom && err != context.Canceled {
					t.Error(err)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	m := mustKeyedMetrics(t, kb)
	third := uint64(workers * perWorker / 3)
	if m.Keys != 1 || m.Created != 1 || m.Failures != third || m.Ignored != third || m.LateResults != 0 || m.UnexpectedResults != 0 {
		t.Fatalf("%+v (want %d failures and ignored)", m, third)
	}
	if s := mustKeyState(t, kb, "GET /users/{id}"); s != StateClosed {
		t.Fatal(s)
	}
}

func TestKeyedBreakerPanicIsAFailure(t *testing.T) {
	kb, clock := newTestKeyed(t, []Option{}, WithoutFailureRate(), WithConsecutiveFailures(1),
		WithOpenFor(time.Second), WithHalfOpenCalls(1))
	func() {
		defer func() {
			if r := recover(); r != "kaboom" {
				t.Fatalf("recovered %v", r)
			}
		}()
		_ = kb.Execute(context.Background(), "k", func(context.Context) error { panic("kaboom") })
		t.Fatal("not reached")
	}()
	if m := mustKeyedMetrics(t, kb); m.Failures != 1 || mustKeyState(t, kb, "k") != StateOpen {
		t.Fatalf("%+v", m)
	}
	// A panicking half-open probe gives its slot back as a failure: the key reopens rather
	// than staying half-open with a lost probe.
	clock.Advance(time.Second)
	func() {
		defer func() { _ = recover() }()
		_, _ = KeyedCall(context.Background(), kb, "k", func(context.Context) (int, error) { panic("probe") })
	}()
	if snap, _ := kb.Get("k"); snap.State != StateOpen || snap.ConsecutiveOpens != 2 {
		t.Fatalf("%+v", snap)
	}
	// The same through the uint64 forms.
	func() {
		defer func() { _ = recover() }()
		_ = kb.ExecuteUint64(context.Background(), 5, func(context.Context) error { panic("again") })
	}()
	func() {
		defer func() { _ = recover() }()
		_, _ = KeyedCallUint64(context.Background(), kb, 6, func(context.Context) (string, error) { panic("again") })
	}()
	if m := mustKeyedMetrics(t, kb); m.Failures != 4 {
		t.Fatalf("%+v", m)
	}
}

func TestKeyedBreakerContextAndClassifiers(t *testing.T) {
	errNotFound := errors.New("not found")
	kb, _ := newTestKeyed(t, []Option{}, keyedNeverTrips,
		WithIsFailure(func(err error) bool { return !errors.Is(err, errNotFound) }))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	if err := kb.Execute(ctx, "k", func(context.Context) error { called = true; return nil }); called || !errors.Is(err, context.Canceled) {
		t.Fatal(called, err)
	}
	if _, ok := kb.Get("k"); ok {
		t.Fatal("a done context does not even make the key")
	}
	bg := context.Background()
	_ = kb.Execute(bg, "k", func(context.Context) error { return errNotFound }) // a success
	_ = kb.Execute(bg, "k", fail)
	if err := kb.Execute(bg, "k", func(context.Context) error { return context.Canceled }); err != context.Canceled {
		t.Fatal(err)
	}
	m := mustKeyedMetrics(t, kb)
	snap, _ := kb.Get("k")
	if m.Failures != 1 || m.Ignored != 1 || snap.Window.Calls != 2 || snap.Window.Failures != 1 {
		t.Fatalf("%+v %+v", m, snap)
	}
	v, err := KeyedCall(bg, kb, "k", func(context.Context) (int, error) { return 7, nil })
	if v != 7 || err != nil {
		t.Fatal(v, err)
	}
}

func TestKeyedBreakerTwoStep(t *testing.T) {
	kb, _ := newTestKeyed(t, []Option{}, WithoutFailureRate(), WithConsecutiveFailures(2),
		WithSlowCalls(0.5, time.Second), WithTimeCalls(false), WithMinimumCalls(1))
	done, err := kb.Allow("k")
	if err != nil {
		t.Fatal(err)
	}
	done(errBoom)
	done(errBoom) // ignored
	if snap, _ := kb.Get("k"); snap.State != StateClosed || snap.ConsecutiveFailures != 1 {
		t.Fatalf("%+v", snap)
	}
	done, err = kb.AllowUint64(3)
	if err != nil {
		t.Fatal(err)
	}
	done(nil)
	p, err := kb.Acquire("k")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	var zero KeyedBreakerPermit
	if err := zero.Record(Success); !errors.Is(err, ErrInvalidPermit) {
		t.Fatal(err)
	}
	if err := zero.Done(nil); !errors.Is(err, ErrInvalidPermit) {
		t.Fatal(err)
	}
	if err := zero.RecordDuration(Success, time.Second); !errors.Is(err, ErrInvalidPermit) {
		t.Fatal(err)
	}
	// Durations the caller reports count for the slow-call rule.
	q, _ := kb.AcquireUint64(9)
	if err := q.RecordDuration(Success, -time.Second); !errors.Is(err, ErrInvalidArgument) {
		t.Fatal(err)
	}
	if err := q.RecordDuration(Success, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if s, _ := kb.StateUint64(9); s != StateOpen {
		t.Fatal("one slow call of one trips at a 50 % slow rate:", s)
	}
	// A permit of another keyed breaker is refused.
	other, _ := newTestKeyed(t, []Option{}, keyedNeverTrips)
	r, _ := other.Acquire("k")
	r.kb = kb
	if err := r.Record(Success); !errors.Is(err, ErrInvalidPermit) {
		t.Fatal(err)
	}
	if err := p.Record(Outcome(7)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatal(err)
	}
	if m := mustKeyedMetrics(t, kb); m.Ignored != 1 || m.Failures != 1 {
		t.Fatalf("%+v", m)
	}
}

func TestKeyedBreakerManualTransitions(t *testing.T) {
	kb, clock := newTestKeyed(t, []Option{}, WithoutFailureRate(), WithConsecutiveFailures(1),
		WithOpenFor(time.Second), WithHalfOpenCalls(1))
	ctx := context.Background()
	// A manual transition makes a key not held yet.
	if err := kb.ForceOpen("k", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	var re *RejectedError
	err := kb.Execute(ctx, "k", ok)
	if !errors.Is(err, ErrForcedOpen) || !errors.Is(err, ErrOpen) || !errors.As(err, &re) || re.State != StateForcedOpen || re.RetryAfter != 3*time.Second {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Second)
	if err := kb.Execute(ctx, "k", ok); err != nil { // the forced open ended: a probe
		t.Fatal(err)
	}
	if s := mustKeyState(t, kb, "k"); s != StateClosed {
		t.Fatal(s)
	}
	if err := kb.ForceOpen("k", Forever); err != nil {
		t.Fatal(err)
	}
	if err := kb.Execute(ctx, "k", ok); !errors.As(err, &re) || re.RetryAfter != Forever || strings.Contains(err.Error(), "retry after") {
		t.Fatal(err)
	}
	if err := kb.ForceOpen("k", -time.Second); !errors.Is(err, ErrInvalidArgument) {
		t.Fatal(err)
	}
	if err := kb.TransitionToHalfOpen("k"); err != nil {
		t.Fatal(err)
	}
	if s := mustKeyState(t, kb, "k"); s != StateHalfOpen {
		t.Fatal(s)
	}
	if err := kb.TransitionToClosed("k"); err != nil {
		t.Fatal(err)
	}
	if err := kb.TransitionToHalfOpen("k"); !errors.Is(err, ErrInvalidTransition) {
		t.Fatal("CLOSED -> HALF_OPEN is refused:", err)
	}
	if err := kb.Disable("k"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := kb.Execute(ctx, "k", fail); err != errBoom {
			t.Fatal(err)
		}
	}
	if s := mustKeyState(t, kb, "k"); s != StateDisabled {
		t.Fatal(s)
	}
	if err := kb.MetricsOnly("k"); err != nil {
		t.Fatal(err)
	}
	_ = kb.Execute(ctx, "k", fail)
	if snap, _ := kb.Get("k"); snap.State != StateMetricsOnly || snap.Window.Failures != 1 {
		t.Fatalf("metrics-only records and never trips: %+v", snap)
	}
	if err := kb.Reset("k"); err != nil {
		t.Fatal(err)
	}
	if snap, _ := kb.Get("k"); snap.State != StateClosed || snap.Window.Calls != 0 {
		t.Fatalf("%+v", snap)
	}
	// The uint64 forms act on uint64 keys (and on string keys through KeyOf).
	k := mustKeyOf(t, kb, "k")
	if err := kb.ForceOpenUint64(k, Forever); err != nil {
		t.Fatal(err)
	}
	if s := mustKeyState(t, kb, "k"); s != StateForcedOpen {
		t.Fatal(s)
	}
	for name, f := range map[string]func(uint64) error{
		"DisableUint64": kb.DisableUint64, "MetricsOnlyUint64": kb.MetricsOnlyUint64,
		"TransitionToClosedUint64": kb.TransitionToClosedUint64, "ResetUint64": kb.ResetUint64,
	} {
		if err := f(77); err != nil {
			t.Fatal(name, err)
		}
	}
	if err := kb.TransitionToHalfOpenUint64(77); !errors.Is(err, ErrInvalidTransition) {
		t.Fatal(err)
	}
	m := mustKeyedMetrics(t, kb)
	// closed -> forced: ForceOpen for 3 s, Forever, ForceOpenUint64; forced -> half-open: the
	// 3 s ran out, then HalfOpen by hand.
	if m.Transitions[StateClosed][StateForcedOpen] != 3 || m.Transitions[StateForcedOpen][StateHalfOpen] != 2 {
		t.Fatalf("%+v", m.Transitions)
	}
}

func TestKeyedBreakerKeysAndRange(t *testing.T) {
	kb, _ := newTestKeyed(t, []Option{}, WithoutFailureRate(), WithConsecutiveFailures(1))
	ctx := context.Background()
	_ = kb.Execute(ctx, "a", ok)
	_ = kb.Execute(ctx, "b", fail)
	_ = kb.ExecuteUint64(ctx, 3, ok)
	keys := kb.Keys()
	byKey := map[uint64]KeySnapshot{}
	for _, s := range keys {
		byKey[s.Key] = s
	}
	a, b := mustKeyOf(t, kb, "a"), mustKeyOf(t, kb, "b")
	if len(keys) != 3 || byKey[a].State != StateClosed || byKey[a].Window.Calls != 1 || byKey[b].State != StateOpen || byKey[3].Window.Calls != 1 {
		t.Fatalf("%+v", keys)
	}
	// Range may call back into the keyed breaker (it walks a snapshot) and stops on false.
	n := 0
	kb.Range(func(key uint64, s KeySnapshot) bool {
		n++
		if _, ok := kb.GetUint64(key); !ok || key != s.Key {
			t.Error(key, ok)
		}
		return n < 2
	})
	if n != 2 {
		t.Fatal(n)
	}
}

func TestKeyedBreakerFallbacks(t *testing.T) {
	kb, _ := newTestKeyed(t, []Option{WithMaxKeys(1)}, WithoutFailureRate(), WithConsecutiveFailures(1),
		WithFallbackPayload("application/json", []byte(`{"cached":true}`)),
		WithFallback(func(_ context.Context, err error) error {
			var re *RejectedError
			if errors.As(err, &re) {
				return errors.New("served from cache for " + re.Key)
			}
			return err
		}))
	ctx := context.Background()
	tripKey(t, kb, "k", 1)
	if err := kb.Execute(ctx, "k", ok); err == nil || err.Error() != "served from cache for k" {
		t.Fatal(err)
	}
	// The cap is not a breaker's rejection: no fallback.
	if err := kb.Execute(ctx, "other", ok); !errors.Is(err, ErrRegistryFull) {
		t.Fatal(err)
	}
	ct, body, has := kb.FallbackPayload()
	if !has || ct != "application/json" || string(body) != `{"cached":true}` {
		t.Fatal(ct, string(body), has)
	}
	plain, _ := newTestKeyed(t, []Option{})
	if _, _, ok := plain.FallbackPayload(); ok {
		t.Fatal(ok)
	}
}

func TestKeyedExecuteDoesNotAllocate(t *testing.T) {
	if debugBuild || raceEnabled {
		t.Skip("allocation counts are only meaningful in a normal build")
	}
	kb, _ := newTestKeyed(t, []Option{}, keyedNeverTrips)
	ctx := context.Background()
	keys := []string{"GET /api/v1/users/{id}/orders?page=1", "GET /api/v1/users/{id}/orders?page=2"}
	i := 0
	if n := testing.AllocsPerRun(1000, func() { i++; _ = kb.Execute(ctx, keys[i%2], ok) }); n != 0 {
		t.Fatalf("Execute: %v allocs per call", n)
	}
	if n := testing.AllocsPerRun(1000, func() { _ = kb.ExecuteUint64(ctx, 42, ok) }); n != 0 {
		t.Fatalf("ExecuteUint64: %v allocs per call", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		p, _ := kb.Acquire(keys[0])
		_ = p.Done(nil)
	}); n != 0 {
		t.Fatalf("Acquire+Done: %v allocs per call", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		_, _ = KeyedCall(ctx, kb, keys[1], func(context.Context) (int, error) { return 1, nil })
	}); n != 0 {
		t.Fatalf("KeyedCall: %v allocs per call", n)
	}
}

// Keyed breakers nobody closes are freed by their cleanup; calls made before stay valid.
func TestForgottenKeyedBreakersAreCollected(t *testing.T) {
	before := cleanupsRun.Load()
	n := iterations(200)
	func() {
		for i := 0; i < n; i++ {
			kb, err := NewKeyedBreaker("", WithMaxKeys(10), keyedNeverTrips, WithoutClockTicker())
			if err != nil {
				t.Fatal(err)
			}
			if err := kb.Execute(context.Background(), "k", ok); err != nil {
				t.Fatal(err)
			}
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for cleanupsRun.Load()-before < int64(n) && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if got := cleanupsRun.Load() - before; got < int64(n) {
		t.Fatalf("%d of %d freed", got, n)
	}
}

// Close racing with calls in flight: no crash, every call ends with nil or ErrClosed.
func TestKeyedBreakerCloseDuringCalls(t *testing.T) {
	for round := 0; round < iterations(40); round++ {
		kb, err := NewKeyedBreaker("", keyedNeverTrips)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					if err := kb.ExecuteUint64(context.Background(), uint64(i%7), ok); err != nil && !errors.Is(err, ErrClosed) {
						t.Error(err)
						return
					}
				}
			}()
		}
		kb.Close()
		wg.Wait()
	}
}

func TestKeyedBulkheadStringLimits(t *testing.T) {
	kb, err := NewKeyedBulkhead("", 3, WithKeyLimit("tenant-a", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer kb.Close()
	a, err := kb.TryAcquire("tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kb.TryAcquire("tenant-a"); !errors.Is(err, ErrBulkheadFull) {
		t.Fatal("the string limit applies to its key:", err)
	}
	var held []KeyedBulkheadPermit
	for i := 0; i < 3; i++ {
		p, err := kb.TryAcquire("tenant-b")
		if err != nil {
			t.Fatal("other keys keep PerKeyMax:", i, err)
		}
		held = append(held, p)
	}
	keys := kb.Keys()
	ka := kb.KeyOf("tenant-a")
	for _, ks := range keys {
		if ks.Key == ka && ks.Limit != 1 {
			t.Fatalf("%+v", ks)
		}
	}
	for _, p := range append(held, a) {
		if err := p.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewKeyedBulkhead("", 1, WithKeyLimit("x", -1)); !errors.Is(err, ErrInvalidConfig) {
		t.Fatal(err)
	}
}
