package surgewall

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

// mockSleep advances clock instead of sleeping and records the delays.
func mockSleep(clock *MockClock, delays *[]time.Duration) func(context.Context, time.Duration) error {
	return func(ctx context.Context, d time.Duration) error {
		*delays = append(*delays, d)
		clock.Advance(d)
		return ctx.Err()
	}
}

func newTestRetry(t *testing.T, opts []Option) (*Retry, *MockClock, *[]time.Duration) {
	t.Helper()
	clock := NewMockClock()
	var delays []time.Duration
	r, err := NewRetry("", append(opts, WithClock(clock), WithSleep(mockSleep(clock, &delays)))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, clock, &delays
}

func TestRetryGivesUpAfterMaxAttempts(t *testing.T) {
	r, _, delays := newTestRetry(t, []Option{WithMaxAttempts(3), WithBackoff(Constant(200 * time.Millisecond)), WithJitter(JitterNone)})
	calls := 0
	err := r.Do(context.Background(), func(context.Context) error { calls++; return errBoom })
	var re *RetryError
	if calls != 3 || !errors.As(err, &re) || re.Attempts != 3 || re.Reason != StopMaxAttempts {
		t.Fatalf("calls=%d err=%v", calls, err)
	}
	if !errors.Is(err, ErrRetriesExhausted) || !errors.Is(err, errBoom) {
		t.Fatal("errors.Is:", err)
	}
	if len(*delays) != 2 || (*delays)[0] != 200*time.Millisecond || (*delays)[1] != 200*time.Millisecond {
		t.Fatal(*delays)
	}
	m := r.Metrics()
	if m.Operations != 1 || m.Retries != 2 || m.Stops[StopMaxAttempts] != 1 {
		t.Fatalf("%+v", m)
	}
}

func TestRetrySucceedsAndStopsOnNotRetryable(t *testing.T) {
	errFatal := errors.New("fatal")
	r, _, delays := newTestRetry(t, []Option{WithMaxAttempts(5), WithBackoff(Exponential(100*time.Millisecond, 2)), WithJitter(JitterNone), WithRetryable(func(err error) bool { return !errors.Is(err, errFatal) })})
	calls := 0
	v, err := RetryCall(context.Background(), r, nil, func(context.Context) (int, error) {
		calls++
		if calls < 3 {
			return 0, errBoom
		}
		return 42, nil
	})
	if v != 42 || err != nil || calls != 3 {
		t.Fatal(v, err, calls)
	}
	if len(*delays) != 2 || (*delays)[0] != 100*time.Millisecond || (*delays)[1] != 200*time.Millisecond {
		t.Fatal("exponential delays:", *delays)
	}
	calls = 0
	err = r.Do(context.Background(), func(context.Context) error { calls++; return errFatal })
	if err != errFatal || calls != 1 {
		t.Fatal("a not-retryable error comes back as is:", err, calls)
	}
}

func TestRetryHonoursRetryAfterAndContext(t *testing.T) {
	r, _, delays := newTestRetry(t, []Option{WithMaxAttempts(2), WithBackoff(Constant(10 * time.Millisecond)), WithJitter(JitterNone), WithRetryAfter(func(error) (time.Duration, bool) { return 2 * time.Second, true })})
	_ = r.Do(context.Background(), func(context.Context) error { return errBoom })
	if len(*delays) != 1 || (*delays)[0] != 2*time.Second {
		t.Fatal(*delays)
	}
	ctx, cancel := context.WithCancel(context.Background())
	err := r.Do(ctx, func(context.Context) error { cancel(); return errBoom })
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	// Real sleeping honours ctx too.
	r2, _ := NewRetry("", WithMaxAttempts(3), WithBackoff(Constant(time.Hour)))
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel2()
	if err := r2.Do(ctx2, func(context.Context) error { return errBoom }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
}

func TestRetryWaitsForTheBreakerOrStops(t *testing.T) {
	clock := NewMockClock()
	b, _ := NewBreaker("dep", WithClock(clock), WithoutFailureRate(), WithConsecutiveFailures(1), WithOpenFor(5*time.Second), WithHalfOpenCalls(1))
	defer b.Close()
	var delays []time.Duration
	r, _ := NewRetry("", WithMaxAttempts(3), WithBackoff(Constant(100*time.Millisecond)), WithJitter(JitterNone), WithClock(clock), WithSleep(mockSleep(clock, &delays)))
	calls := 0
	err := r.DoWith(context.Background(), b, func(context.Context) error {
		calls++
		if calls == 1 {
			return errBoom // trips the breaker
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Fatal(err, calls)
	}
	if len(delays) != 1 || delays[0] != 5*time.Second {
		t.Fatal("the retry waits for the breaker, not 100ms into it:", delays)
	}
	if s := b.State(); s != StateClosed {
		t.Fatal(s)
	}

	stop, _ := NewRetry("", WithMaxAttempts(3), WithStopOnOpenBreaker(), WithClock(clock), WithSleep(mockSleep(clock, &delays)))
	_ = b.ForceOpen(Forever)
	err = stop.DoWith(context.Background(), b, func(context.Context) error { return nil })
	var re *RetryError
	if !errors.As(err, &re) || re.Reason != StopBreakerOpen || !errors.Is(err, ErrOpen) {
		t.Fatal(err)
	}
}

func TestRetryBudget(t *testing.T) {
	clock := NewMockClock()
	budget, err := NewRetryBudget(0, 0, 10*time.Second, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	var delays []time.Duration
	r, _ := NewRetry("", WithMaxAttempts(5), WithBudget(budget), WithClock(clock), WithSleep(mockSleep(clock, &delays)))
	err = r.Do(context.Background(), func(context.Context) error { return errBoom })
	var re *RetryError
	if !errors.As(err, &re) || re.Reason != StopBudgetExhausted || !errors.Is(err, ErrRetryBudgetExhausted) || re.Attempts != 1 {
		t.Fatal(err)
	}
	m := budget.Metrics()
	if m.Requests != 1 || m.RefusedTotal != 1 {
		t.Fatalf("%+v", m)
	}
	if err := budget.TryRetry(); !errors.Is(err, ErrRetryBudgetExhausted) {
		t.Fatal(err)
	}
	name := fmt.Sprintf("go-test-shared-%d", time.Now().UnixNano()) // budgets live as long as the process
	s1, err := SharedRetryBudget(name, 0.5, 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := SharedRetryBudget(name, 0.1, 0, time.Second)
	_ = s1.RecordRequest()
	if m1 := s2.Metrics(); m1.Requests != 1 {
		t.Fatal("one budget per name:", m1)
	}
}

func TestRetryBadConfig(t *testing.T) {
	for name, o := range map[string]Option{
		"negative attempts": WithMaxAttempts(-1),
		"zero attempts":     WithMaxAttempts(0),
		"NaN multiplier":    WithBackoff(Exponential(time.Second, math.NaN())),
		"negative delay":    WithBackoff(Constant(-time.Second)),
		"bad jitter":        WithJitter(9),
		"nil budget":        WithBudget(nil),
		"a breaker option":  WithFailureRate(0.5),
	} {
		if _, err := NewRetry("", o); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The zero Backoff is no backoff: refused, not a silent default.
	if _, err := NewRetry("", WithBackoff(Backoff{})); !errors.Is(err, ErrInvalidConfig) {
		t.Error("zero Backoff:", err)
	}
	if _, err := NewRetryBudget(0.1, 1, time.Second, WithSeed(1)); !errors.Is(err, ErrInvalidConfig) {
		t.Error("a retry's option on a budget:", err)
	}
	for _, w := range []time.Duration{0, 1500 * time.Millisecond, time.Hour} {
		if _, err := NewRetryBudget(0.1, 1, w); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("window %v: %v", w, err)
		}
	}
	if _, err := NewRetryBudget(math.NaN(), 1, time.Second); !errors.Is(err, ErrInvalidConfig) {
		t.Error("NaN ratio:", err)
	}
	r, _ := NewRetry("")
	r.Close()
	if err := r.Do(context.Background(), func(context.Context) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}
