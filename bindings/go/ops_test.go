package surgewall

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Issue 16 item 8: the manual OPEN, the retry preview and the bulkhead resize.

func TestTransitionToOpenWaitsAndBacksOffAsATripWould(t *testing.T) {
	b, clock := newTestBreaker(t, WithOpenFor(time.Second), WithOpenBackoff(2, time.Minute, 0), WithHalfOpenCalls(1))
	if err := b.TransitionToOpen(); err != nil {
		t.Fatal(err)
	}
	err := b.Execute(context.Background(), ok)
	var rej *RejectedError
	if !errors.Is(err, ErrOpen) || errors.Is(err, ErrForcedOpen) || !errors.As(err, &rej) || rej.RetryAfter != time.Second {
		t.Fatalf("got %v", err)
	}
	g := mustMetrics(t, b).Generation
	if err := b.TransitionToOpen(); err != nil || mustMetrics(t, b).Generation != g {
		t.Fatal("already OPEN: a no-op", err)
	}
	clock.Advance(time.Second)
	p, err := b.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	if s := b.State(); s != StateHalfOpen {
		t.Fatal(s)
	}
	// By hand from HALF_OPEN: the second consecutive open waits twice as long.
	if err := b.TransitionToOpen(); err != nil {
		t.Fatal(err)
	}
	if err := p.Record(Success); !errors.Is(err, ErrLateResult) {
		t.Fatal(err)
	}
	if ra := b.RetryAfter(); ra != 2*time.Second {
		t.Fatal(ra)
	}
	if m := mustMetrics(t, b); m.ConsecutiveOpens != 2 {
		t.Fatalf("%+v", m)
	}
	b.Close()
	if err := b.TransitionToOpen(); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

func TestKeyedTransitionToOpen(t *testing.T) {
	kb, clock := newTestKeyed(t, nil, WithOpenFor(2*time.Second), WithHalfOpenCalls(1))
	if err := kb.TransitionToOpen("GET /a"); err != nil {
		t.Fatal(err)
	}
	if err := kb.Execute(context.Background(), "GET /a", ok); !errors.Is(err, ErrOpen) {
		t.Fatal(err)
	}
	if err := kb.Execute(context.Background(), "GET /b", ok); err != nil {
		t.Fatal("other keys are untouched:", err)
	}
	if err := kb.TransitionToOpenUint64(7); err != nil || mustKeyStateUint64(t, kb, 7) != StateOpen {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	if err := kb.Execute(context.Background(), "GET /a", ok); err != nil {
		t.Fatal(err)
	}
	if s := mustKeyState(t, kb, "GET /a"); s != StateClosed {
		t.Fatal(s)
	}
}

func mustKeyStateUint64(t *testing.T, kb *KeyedBreaker, key uint64) State {
	t.Helper()
	s, found := kb.StateUint64(key)
	if !found {
		t.Fatal("not held:", key)
	}
	return s
}

func TestRetryPreviewListsTheDelaysAndRunsNothing(t *testing.T) {
	r, _, _ := newTestRetry(t, []Option{WithMaxAttempts(4), WithBackoff(Exponential(100*time.Millisecond, 2)), WithJitter(JitterNone)})
	got := r.Preview(0)
	if len(got) != 3 || got[0] != 100*time.Millisecond || got[1] != 200*time.Millisecond || got[2] != 400*time.Millisecond {
		t.Fatal(got)
	}
	if got := r.Preview(2); len(got) != 2 {
		t.Fatal(got)
	}
	if m := r.Metrics(); m.Operations != 0 {
		t.Fatalf("%+v", m)
	}
	many, _, _ := newTestRetry(t, []Option{WithMaxAttempts(300), WithBackoff(Constant(time.Millisecond)), WithJitter(JitterNone)})
	if got := many.Preview(0); len(got) != 299 {
		t.Fatal(len(got))
	}
	// With jitter and a seed: the next operation's own delays.
	seeded, _, slept := newTestRetry(t, []Option{WithMaxAttempts(5), WithBackoff(Exponential(100*time.Millisecond, 2)), WithJitter(JitterFull), WithSeed(11)})
	preview := seeded.Preview(0)
	again := seeded.Preview(0)
	if len(preview) != 4 || !equalDurations(preview, again) {
		t.Fatal(preview, again)
	}
	if err := seeded.Do(context.Background(), fail); !errors.Is(err, ErrRetriesExhausted) {
		t.Fatal(err)
	}
	if !equalDurations(*slept, preview) {
		t.Fatal(*slept, preview)
	}
	r.Close()
	if got := r.Preview(0); len(got) != 3 {
		t.Fatal("an observer keeps reading after Close:", got)
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBulkheadSetMaxConcurrent(t *testing.T) {
	b, err := NewBulkhead("resized", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := 0; i < 3; i++ {
		if err := b.TryAcquire(); err != nil {
			t.Fatal(err)
		}
	}
	if old, err := b.SetMaxConcurrent(1); err != nil || old != 3 {
		t.Fatal(old, err)
	}
	if m := b.Metrics(); m.Active != 3 || m.MaxConcurrent != 1 {
		t.Fatalf("permits held stay valid: %+v", m)
	}
	b.Release()
	b.Release()
	if err := b.TryAcquire(); !errors.Is(err, ErrBulkheadFull) {
		t.Fatal("one in flight, limit 1:", err)
	}
	b.Release()
	if err := b.TryAcquire(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []int{0, -1, 1 << 24} {
		var ce *ConfigError
		if _, err := b.SetMaxConcurrent(bad); !errors.As(err, &ce) || ce.Field != "max_concurrent" {
			t.Fatal(bad, err)
		}
	}
	b.Release()
	if m := b.Metrics(); m.Active != 0 || m.Accepted != 4 || m.MaxConcurrent != 1 {
		t.Fatalf("%+v", m)
	}
}

func TestBulkheadGrowthAdmitsWaitingGoroutines(t *testing.T) {
	b, err := NewBulkhead("grow", 1, WithMaxWait(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.TryAcquire(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { done <- b.Acquire(context.Background()) }()
	}
	for {
		if m := b.Metrics(); m.Waiting == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := b.SetMaxConcurrent(3); err != nil { // two new slots, nobody released
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if m := b.Metrics(); m.Active != 3 || m.Waiting != 0 || m.TimedOut != 0 {
		t.Fatalf("%+v", m)
	}
	for i := 0; i < 3; i++ {
		b.Release()
	}
}
