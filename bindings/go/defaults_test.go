package surgewall

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Issue 16: the library's defaults in Go, a mock clock that drives the retry it is given to,
// and configuration errors that say their field once.

// attemptGaps runs r.Do with an operation that always fails and returns the mock-clock time
// between consecutive attempts: the delays the retry waited on the clock itself.
func attemptGaps(t *testing.T, r *Retry, clock *MockClock) ([]time.Duration, error) {
	t.Helper()
	var gaps []time.Duration
	last := time.Duration(-1)
	err := r.Do(context.Background(), func(context.Context) error {
		now := clock.Now()
		if last >= 0 {
			gaps = append(gaps, now-last)
		}
		last = now
		return errBoom
	})
	return gaps, err
}

func TestRetryZeroFieldsAreTheLibraryDefaults(t *testing.T) {
	clock := NewMockClock()
	r, err := NewRetry("", WithJitter(JitterNone), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	gaps, err := attemptGaps(t, r, clock)
	var re *RetryError
	if !errors.As(err, &re) || re.Attempts != 3 || re.Reason != StopMaxAttempts {
		t.Fatalf("3 attempts by default: %v", err)
	}
	if len(gaps) != 2 || gaps[0] != 100*time.Millisecond || gaps[1] != 200*time.Millisecond {
		t.Fatalf("Exponential(100ms, 2) by default: %v", gaps)
	}
	// No hidden cap: the default backoff keeps doubling past 5 s and 30 s.
	r2, err := NewRetry("", WithMaxAttempts(10), WithJitter(JitterNone), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if gaps, _ := attemptGaps(t, r2, clock); len(gaps) != 9 || gaps[8] != 25600*time.Millisecond {
		t.Fatalf("uncapped: %v", gaps)
	}
}

func TestRetryWithAMockClockWaitsOnItNotInRealTime(t *testing.T) {
	clock := NewMockClock()
	r, err := NewRetry("", WithMaxAttempts(3), WithBackoff(Constant(30*time.Second)), WithJitter(JitterNone), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	start, real := clock.Now(), time.Now()
	if _, err := attemptGaps(t, r, clock); !errors.Is(err, ErrRetriesExhausted) {
		t.Fatal(err)
	}
	if got := clock.Now() - start; got != time.Minute {
		t.Fatalf("the mock clock moved %v, want 1m", got)
	}
	if time.Since(real) > 30*time.Second {
		t.Fatal("the retry slept in real time")
	}
	// A done context still ends the wait (and the clock stays put).
	ctx, cancel := context.WithCancel(context.Background())
	at := clock.Now()
	err = r.Do(ctx, func(context.Context) error { cancel(); return errBoom })
	if !errors.Is(err, context.Canceled) || clock.Now() != at {
		t.Fatalf("err=%v moved=%v", err, clock.Now()-at)
	}
}

func TestBackoffDelaysArePositiveAndNoBackoffDoesNotWait(t *testing.T) {
	for _, c := range []struct {
		b     Backoff
		field string
	}{
		{Constant(0), "backoff.delay"},
		{Exponential(0, 2), "backoff.initial"},
		{Linear(0, time.Second), "backoff.initial"},
		{Decorrelated(0), "backoff.base"},
	} {
		_, err := NewRetry("", WithBackoff(c.b))
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field {
			t.Fatalf("%+v: got %v, want a ConfigError naming %s", c.b, err, c.field)
		}
	}
	clock := NewMockClock()
	r, err := NewRetry("", WithMaxAttempts(4), WithBackoff(NoBackoff()), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	gaps, _ := attemptGaps(t, r, clock)
	if len(gaps) != 3 || gaps[0] != 0 || gaps[1] != 0 || gaps[2] != 0 {
		t.Fatalf("no wait: %v", gaps)
	}
}

func TestConfigErrorsSayTheirFieldOnceAndTheRuleTheDocsState(t *testing.T) {
	_, err := NewBreaker("bad", WithFailureRate(1.5))
	want := "surgewall: invalid configuration: failure_rate: must be within (0, 1], got 1.5"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	_, err = NewRetry("", WithBackoff(Exponential(0, 2)))
	want = "surgewall: invalid configuration: backoff.initial: must be longer than zero (to retry without waiting, use the none backoff)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}
