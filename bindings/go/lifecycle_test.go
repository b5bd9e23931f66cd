package surgewall

import (
	"context"
	"errors"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBadOptionsGiveConfigErrors(t *testing.T) {
	cases := []struct {
		name  string
		opt   Option
		field string
	}{
		{"negative minimum calls", WithMinimumCalls(-1), "minimum_calls"},
		{"huge count window", WithCountWindow(math.MaxUint32 + 1), "count_window"},
		{"negative half-open calls", WithHalfOpenCalls(-3), "half_open_calls"},
		{"negative consecutive failures", WithConsecutiveFailures(-1), "consecutive_failures"},
		{"negative buckets", WithTimeWindow(time.Minute, -1), "buckets"},
		{"NaN failure rate", WithFailureRate(math.NaN()), "failure_rate"},
		{"failure rate above 1", WithFailureRate(1.5), "failure_rate"},
		{"negative open for", WithOpenFor(-time.Second), "open_for"},
		{"negative window", WithTimeWindow(-time.Second, 10), "window"},
		{"zero half-open calls", WithHalfOpenCalls(0), "half_open_calls"},
		{"zero count window", WithCountWindow(0), "window.calls"},
		{"NaN slow rate", WithSlowCalls(math.NaN(), time.Second), "slow_call_rate"},
		{"negative slow duration", WithSlowCalls(0.5, -time.Second), "slow_call_duration"},
		{"NaN backoff", WithOpenBackoff(math.NaN(), time.Minute, 0), "open_backoff.multiplier"},
		{"nil clock", WithClock(nil), "clock"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := NewBreaker("bad", c.opt)
			if err == nil {
				b.Close()
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
	// Every constructor takes the one Option type and refuses another kind's option by name.
	clock := NewMockClock()
	defer clock.Close()
	b, _ := NewBreaker("held", WithClock(clock))
	defer b.Close()
	for name, build := range map[string]func() error{
		"a retry's option on a breaker": func() error { _, err := NewBreaker("x", WithMaxAttempts(3)); return err },
		"a keyed option on a breaker":   func() error { _, err := NewBreaker("x", WithMaxKeys(3)); return err },
		"a breaker's option on a bulkhead": func() error {
			_, err := NewBulkhead("x", 1, WithFailureRate(0.5))
			return err
		},
		"a bulkhead's option on a keyed bulkhead": func() error {
			_, err := NewKeyedBulkhead("x", 1, WithMaxWait(time.Second))
			return err
		},
		"an SLO's option on a retry": func() error { _, err := NewRetry("x", WithObjective(0.9)); return err },
		"a retry's option on an SLO": func() error { _, err := NewSLO("x", WithSeed(1)); return err },
		"a clock on an adjuster": func() error {
			_, err := NewThresholdAdjuster(b, 0.1, 0.2, 0.8, 0.1, WithClock(clock))
			return err
		},
		"a clock on the agent":    func() error { _, err := StartAgent(WithClock(clock)); return err },
		"the agent's on a budget": func() error { _, err := NewRetryBudget(0.1, 1, time.Second, WithBind("x")); return err },
		"a uint64 override on a registry": func() error {
			_, err := NewBreakerRegistry(WithOverrideUint64(1, WithOpenFor(time.Second)))
			return err
		},
	} {
		var ce *ConfigError
		if err := build(); !errors.As(err, &ce) || !strings.Contains(ce.Message, "is not an option of") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// minimum_calls larger than a count window is an error, not silently clipped.
	if _, err := NewBreaker("bad", WithCountWindow(5), WithMinimumCalls(6)); !errors.Is(err, ErrInvalidConfig) {
		t.Fatal(err)
	}
	// A name that is not UTF-8.
	if _, err := NewBreaker("\xff\xfe"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatal(err)
	}
	// A closed clock.
	c := NewMockClock()
	c.Close()
	if _, err := NewBreaker("x", WithClock(c)); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

func TestUseAfterCloseGivesErrClosed(t *testing.T) {
	b, err := NewBreaker("closing")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := b.Acquire()
	if err := b.ForceOpen(time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal("Close is idempotent:", err)
	}
	called := false
	if err := b.Execute(context.Background(), func(context.Context) error { called = true; return nil }); !errors.Is(err, ErrClosed) || called {
		t.Fatal(err, called)
	}
	if _, err := Call(context.Background(), b, func(context.Context) (int, error) { return 1, nil }); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if _, err := b.Acquire(); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if _, err := b.Allow(); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if err := p.Record(Success); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if err := p.RecordDuration(Success, time.Millisecond); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	for name, f := range map[string]func() error{
		"ForceOpen": func() error { return b.ForceOpen(Forever) }, "Disable": b.Disable, "MetricsOnly": b.MetricsOnly,
		"Reset": b.Reset, "TransitionToClosed": b.TransitionToClosed, "TransitionToHalfOpen": b.TransitionToHalfOpen,
		"Threshold": func() error { _, err := b.SetFailureRateThreshold(0.3); return err },
	} {
		if err := f(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
	// The observers keep reading the breaker as Close left it (never a made-up CLOSED).
	if s := b.State(); s != StateForcedOpen {
		t.Fatal("State after Close:", s)
	}
	if d := b.RetryAfter(); d <= 0 || d > time.Hour {
		t.Fatal("RetryAfter after Close:", d)
	}
	m := b.Metrics()
	if m.State != StateForcedOpen || m.Transitions[StateClosed][StateForcedOpen] != 1 || m.RetryAfter <= 0 {
		t.Fatalf("Metrics after Close: %+v", m)
	}
	if _, _, ok := b.FallbackPayload(); ok || b.Name() != "closing" || b.ID() == 0 {
		t.Fatal("FallbackPayload, Name, ID after Close")
	}
}

func TestBadPermitsAndOutcomes(t *testing.T) {
	b, _ := newTestBreaker(t)
	var zero Permit
	if err := zero.Record(Success); !errors.Is(err, ErrInvalidPermit) {
		t.Fatal(err)
	}
	if err := zero.Done(nil); !errors.Is(err, ErrInvalidPermit) {
		t.Fatal(err)
	}
	p, _ := b.Acquire()
	if err := p.Record(Outcome(7)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatal(err)
	}
	if err := p.RecordDuration(Success, -time.Second); !errors.Is(err, ErrInvalidArgument) {
		t.Fatal(err)
	}
	// A permit of another breaker is refused.
	other, _ := newTestBreaker(t)
	q, _ := other.Acquire()
	q.b = b
	if err := q.Record(Success); !errors.Is(err, ErrInvalidPermit) {
		t.Fatal(err)
	}
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	if m := mustMetrics(t, b); m.Successes != 0 || m.Ignored != 1 {
		t.Fatalf("%+v", m)
	}
}

// The permit Execute builds from the state word is exactly the one the library hands out:
// token = generation ^ salt, the salt in the top 24 bits only.
func TestFastPathPermitIsTheLibrarysPermit(t *testing.T) {
	b, _ := newTestBreaker(t, neverTrips)
	if !b.fast {
		t.Fatal("an untimed breaker admits from the state word")
	}
	if b.salt == 0 || b.salt&(1<<40-1) != 0 {
		t.Fatalf("salt %#x: want only the top 24 bits set, and some", b.salt)
	}
	fast, err := b.acquire()
	if err != nil {
		t.Fatal(err)
	}
	lib, err := b.acquireSlow()
	if err != nil {
		t.Fatal(err)
	}
	if fast != lib {
		t.Fatalf("fast path %+v, library %+v", fast, lib)
	}
	for _, p := range []Permit{{b: b, p: fast}, {b: b, p: lib}} {
		if err := p.Record(Success); err != nil {
			t.Fatal(err)
		}
	}
	if m := mustMetrics(t, b); m.Successes != 2 {
		t.Fatalf("%+v", m)
	}
}

// Close racing with calls in flight: no crash, every call ends with nil or ErrClosed.
func TestCloseDuringCalls(t *testing.T) {
	for round := 0; round < iterations(50); round++ {
		b, err := NewBreaker("race", neverTrips)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					if err := b.Execute(context.Background(), ok); err != nil && !errors.Is(err, ErrClosed) {
						errs <- err
						return
					}
				}
			}()
		}
		runtime.Gosched()
		b.Close()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}

// Breakers nobody closes are freed by their cleanup; the calls before stay valid.
func TestForgottenBreakersAreCollected(t *testing.T) {
	for i := 0; i < iterations(2000); i++ {
		b, err := NewBreaker("forgotten", neverTrips)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Execute(context.Background(), ok); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			runtime.GC()
		}
	}
	runtime.GC()
}

func TestMockClock(t *testing.T) {
	c := NewMockClock()
	defer c.Close()
	start := c.Now()
	c.Advance(1500 * time.Millisecond)
	if c.Now()-start != 1500*time.Millisecond {
		t.Fatal(c.Now())
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("negative Advance must panic")
			}
		}()
		c.Advance(-1)
	}()
	c.Close()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if c.Now()-start != 1500*time.Millisecond {
		t.Fatal("a closed clock reads what Close left:", c.Now())
	}
}

func TestClockTicker(t *testing.T) {
	stop1 := StartClockTicker(0)
	stop2 := StartClockTicker(time.Millisecond)
	b, err := NewBreaker("ticked", neverTrips)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := 0; i < 100; i++ {
		_ = b.Execute(context.Background(), ok)
	}
	stop1()
	stop1() // idempotent
	stop2()
	if m := mustMetrics(t, b); m.Successes != 100 {
		t.Fatal(m.Successes)
	}
}

func TestExecuteDoesNotAllocate(t *testing.T) {
	if debugBuild || raceEnabled {
		t.Skip("allocation counts are only meaningful in a normal build")
	}
	b, _ := newTestBreaker(t, neverTrips)
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { _ = b.Execute(ctx, ok) }); n != 0 {
		t.Fatalf("Execute: %v allocs per call", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		p, _ := b.Acquire()
		_ = p.Record(Success)
	}); n != 0 {
		t.Fatalf("Acquire+Record: %v allocs per call", n)
	}
	two, _ := newTestBreaker(t, neverTrips, WithoutFastPath())
	if n := testing.AllocsPerRun(1000, func() { _ = two.Execute(ctx, ok) }); n != 0 {
		t.Fatalf("two crossings: %v allocs per call", n)
	}
}
