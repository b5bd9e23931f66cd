package surgewall

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// Objects nobody closes are freed by their cleanups once unreachable: each one's cleanup
// must not keep the object itself alive (which would leak it forever).
func TestUnreachableObjectsAreFreed(t *testing.T) {
	const n = 20
	before := cleanupsRun.Load()
	func() {
		for i := 0; i < n; i++ {
			c := NewMockClock()
			b, err := NewBreaker("leak", WithClock(c))
			if err != nil {
				t.Fatal(err)
			}
			_ = b.Execute(context.Background(), ok)
			bh, _ := NewBulkhead("leak", 1)
			kb, _ := NewKeyedBulkhead("", 1)
			r, _ := NewRetry("")
			rb, _ := NewRetryBudget(0.1, 1, time.Second)
			s, _ := NewSLO("")
			a, _ := NewThresholdAdjuster(b, 0.1, 0.2, 0.8, 0.1)
			kbr, _ := NewKeyedBreaker("", WithClock(c))
			if bh == nil || kb == nil || r == nil || rb == nil || s == nil || a == nil || kbr == nil {
				t.Fatal("constructor failed")
			}
		}
	}()
	want := before + n*9
	deadline := time.Now().Add(20 * time.Second)
	for cleanupsRun.Load() < want && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if got := cleanupsRun.Load(); got < want {
		t.Fatalf("%d of %d handles freed", got-before, n*9)
	}
}

func TestMoreOptions(t *testing.T) {
	// A breaker with slow-call rules times calls itself, unless told the caller reports
	// durations: then the fast path is back.
	b, _ := newTestBreaker(t, WithSlowCalls(0.5, time.Second), WithTimeCalls(false), WithSeed(7))
	if !b.fast {
		t.Fatal("WithTimeCalls(false) keeps the one-crossing path")
	}
	p, _ := b.Acquire()
	if err := p.RecordDuration(Success, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if m := mustMetrics(t, b); m.SlowCalls != 1 {
		t.Fatalf("%+v", m)
	}
	precise, err := NewBreaker("precise", WithPreciseClock(), WithoutClockTicker(), WithOpenBackoff(2, time.Minute, 0.1))
	if err != nil {
		t.Fatal(err)
	}
	defer precise.Close()
	if err := precise.Execute(context.Background(), ok); err != nil {
		t.Fatal(err)
	}
	for _, bo := range []Backoff{Linear(time.Millisecond, time.Millisecond), Decorrelated(time.Millisecond)} {
		r, delays := func() (*Retry, *[]time.Duration) {
			r, _, d := newTestRetry(t, []Option{WithMaxAttempts(3), WithBackoff(bo), WithJitter(JitterEqual), WithSeed(1), WithMaxDelay(time.Second)})
			return r, d
		}()
		_ = r.Do(context.Background(), fail)
		if len(*delays) != 2 {
			t.Fatal(*delays)
		}
		for _, d := range *delays {
			if d <= 0 || d > time.Second {
				t.Fatalf("delay %v out of bounds", d)
			}
		}
	}
}

func TestStringsAndErrorMessages(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{StateHalfOpen.String(), "half_open"}, {State(42).String(), "State(42)"},
		{Failure.String(), "failure"}, {Outcome(9).String(), "Outcome(9)"},
		{EventSLOBurn.String(), "slo_burn"}, {StopBreakerOpen.String(), "breaker_open"},
		{StopRetryAfterTooLong.String(), "retry_after_too_long"},
		{EventKeyedTransition.String(), "keyed_transition"},
		{EventKind(99).String(), "unknown"},
		{(&RejectedError{Keyed: true, KeyID: 255, State: StateOpen, RetryAfter: time.Second, reason: ErrOpen}).Error(),
			"surgewall: circuit breaker is open (key 0xff, retry after 1s)"},
		{(&RegistryFullError{Key: "GET /x"}).Error(), `surgewall: registry is full (key "GET /x" is new)`},
	} {
		if c.got != c.want {
			t.Errorf("%q != %q", c.got, c.want)
		}
	}
	for _, err := range []error{
		&RejectedError{Breaker: "b", State: StateForcedOpen, RetryAfter: Forever, reason: ErrForcedOpen},
		&ConfigError{Message: "x"}, &StatusError{Op: "op", Code: 110}, &BulkheadFullError{Bulkhead: "b", TimedOut: true},
		&BulkheadFullError{Bulkhead: "k", Keyed: true, KeyID: 1}, &RetryError{Attempts: 2, Reason: StopMaxElapsed, Last: errBoom},
	} {
		if err.Error() == "" {
			t.Errorf("%T: empty message", err)
		}
	}
	if !errors.Is(&StatusError{Code: 210}, ErrNotFound) || !errors.Is(&RegistryFullError{}, ErrRegistryFull) {
		t.Fatal("NOT_FOUND and the key cap map to their sentinels")
	}
	if !errors.Is(&StatusError{Code: 110}, ErrInternal) || !errors.Is(&StatusError{Code: 12345}, ErrInternal) {
		t.Fatal("a panic status or an unknown one is ErrInternal")
	}
}
