package surgewall

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var errBoom = errors.New("boom")

// neverTrips: a failure-rate rule that cannot fire within a test.
var neverTrips = WithMinimumCalls(1 << 30)

// iterations scales loop counts down under the debug tag, where every handle access runs a GC.
func iterations(n int) int {
	if debugBuild {
		return max(n/200, 4) / 4 * 4 // tests split loops in quarters
	}
	return n
}

func newTestBreaker(t *testing.T, opts ...Option) (*Breaker, *MockClock) {
	t.Helper()
	clock := NewMockClock()
	t.Cleanup(func() { clock.Close() })
	b, err := NewBreaker(t.Name(), append([]Option{WithClock(clock)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, clock
}

func mustMetrics(t *testing.T, b *Breaker) Metrics {
	t.Helper()
	m := b.Metrics()
	return m
}

func ok(context.Context) error   { return nil }
func fail(context.Context) error { return errBoom }

// tripOpen opens b with n failures (for breakers made with WithConsecutiveFailures(n)).
func tripOpen(t *testing.T, b *Breaker, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := b.Execute(context.Background(), fail); err != errBoom {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if s := b.State(); s != StateOpen {
		t.Fatalf("state %v after %d failures", s, n)
	}
}

func TestExecuteReturnsTheErrorAndCountsOutcomes(t *testing.T) {
	b, _ := newTestBreaker(t, neverTrips)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := b.Execute(ctx, ok); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Execute(ctx, fail); err != errBoom {
		t.Fatalf("got %v, want the function's own error", err)
	}
	if err := b.Execute(ctx, func(context.Context) error { return context.Canceled }); err != context.Canceled {
		t.Fatal(err)
	}
	m := mustMetrics(t, b)
	if m.Successes != 3 || m.Failures != 1 || m.Ignored != 1 || m.Window.Calls != 4 {
		t.Fatalf("%+v", m)
	}
}

func TestExecuteWithADoneContextDoesNotCall(t *testing.T) {
	b, _ := newTestBreaker(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := b.Execute(ctx, func(context.Context) error { called = true; return nil })
	if called || !errors.Is(err, context.Canceled) {
		t.Fatalf("called=%v err=%v", called, err)
	}
	if m := mustMetrics(t, b); m.Successes+m.Failures+m.Ignored != 0 {
		t.Fatalf("%+v", m)
	}
}

func TestRejectionErrors(t *testing.T) {
	b, clock := newTestBreaker(t, WithoutFailureRate(), WithConsecutiveFailures(2),
		WithOpenFor(5*time.Second), WithHalfOpenCalls(1))
	tripOpen(t, b, 2)
	called := false
	err := b.Execute(context.Background(), func(context.Context) error { called = true; return nil })
	var re *RejectedError
	if called || !errors.As(err, &re) {
		t.Fatalf("called=%v err=%v", called, err)
	}
	if !errors.Is(err, ErrOpen) || errors.Is(err, ErrHalfOpenFull) || errors.Is(err, ErrForcedOpen) {
		t.Fatalf("errors.Is mismatch for %v", err)
	}
	if re.State != StateOpen || re.RetryAfter != 5*time.Second || re.Breaker != b.Name() {
		t.Fatalf("%+v", re)
	}
	if !strings.Contains(err.Error(), "open") {
		t.Fatal(err.Error())
	}

	clock.Advance(5 * time.Second)
	p, err := b.Acquire() // the one probe
	if err != nil {
		t.Fatal(err)
	}
	// Every rejection matches ErrOpen, the documented check, a half-open one too; the
	// specific sentinel and the state say which.
	_, err = b.Acquire()
	if !errors.Is(err, ErrHalfOpenFull) || !errors.Is(err, ErrOpen) || errors.Is(err, ErrForcedOpen) ||
		!errors.As(err, &re) || re.State != StateHalfOpen {
		t.Fatalf("half-open full: %v", err)
	}
	if err := p.Record(Success); err != nil {
		t.Fatal(err)
	}
	if s := b.State(); s != StateClosed {
		t.Fatal(s)
	}

	if err := b.ForceOpen(Forever); err != nil {
		t.Fatal(err)
	}
	err = b.Execute(context.Background(), ok)
	if !errors.Is(err, ErrForcedOpen) || !errors.Is(err, ErrOpen) || !errors.As(err, &re) || re.RetryAfter != Forever {
		t.Fatalf("forced open: %v", err)
	}
	if ra := b.RetryAfter(); ra != Forever {
		t.Fatal(ra)
	}
}

func TestPanicCountsAsFailureAndIsReraised(t *testing.T) {
	b, _ := newTestBreaker(t, WithoutFailureRate(), WithConsecutiveFailures(1))
	func() {
		defer func() {
			if r := recover(); r != "kaboom" {
				t.Fatalf("recovered %v", r)
			}
		}()
		_ = b.Execute(context.Background(), func(context.Context) error { panic("kaboom") })
		t.Fatal("not reached")
	}()
	m := mustMetrics(t, b)
	if m.Failures != 1 || m.State != StateOpen {
		t.Fatalf("%+v", m)
	}
	// The same through Call.
	b2, _ := newTestBreaker(t, WithoutFailureRate(), WithConsecutiveFailures(1))
	func() {
		defer func() { _ = recover() }()
		_, _ = Call(context.Background(), b2, func(context.Context) (int, error) { panic("again") })
	}()
	if m := mustMetrics(t, b2); m.Failures != 1 {
		t.Fatalf("%+v", m)
	}
}

func TestPanicInAHalfOpenProbeReleasesItsSlot(t *testing.T) {
	b, clock := newTestBreaker(t, WithoutFailureRate(), WithConsecutiveFailures(1), WithOpenFor(time.Second), WithHalfOpenCalls(1))
	tripOpen(t, b, 1)
	clock.Advance(time.Second)
	func() {
		defer func() { _ = recover() }()
		_ = b.Execute(context.Background(), func(context.Context) error { panic("probe") })
	}()
	// The probe failed: the breaker reopened rather than staying half-open with a lost slot.
	if m := mustMetrics(t, b); m.State != StateOpen || m.ConsecutiveOpens != 2 {
		t.Fatalf("%+v", m)
	}
}

func TestClassifiers(t *testing.T) {
	errNotFound := errors.New("not found")
	b, _ := newTestBreaker(t, neverTrips, WithIsFailure(func(err error) bool { return !errors.Is(err, errNotFound) }))
	ctx := context.Background()
	_ = b.Execute(ctx, func(context.Context) error { return errNotFound })
	_ = b.Execute(ctx, fail)
	_ = b.Execute(ctx, func(context.Context) error { return context.Canceled })
	if m := mustMetrics(t, b); m.Successes != 1 || m.Failures != 1 || m.Ignored != 1 {
		t.Fatalf("%+v", m)
	}

	b2, _ := newTestBreaker(t, neverTrips, WithClassifier(func(err error) Outcome { return Ignored }))
	_ = b2.Execute(ctx, fail)
	_ = b2.Execute(ctx, ok)
	if m := mustMetrics(t, b2); m.Successes != 1 || m.Failures != 0 || m.Ignored != 1 {
		t.Fatalf("%+v", m)
	}
	if DefaultClassifier(context.DeadlineExceeded) != Failure || DefaultClassifier(nil) != Success {
		t.Fatal("default classifier")
	}
}

func TestCallAndFallbacks(t *testing.T) {
	b, _ := newTestBreaker(t, WithoutFailureRate(), WithConsecutiveFailures(1))
	ctx := context.Background()
	v, err := Call(ctx, b, func(context.Context) (string, error) { return "hi", nil })
	if v != "hi" || err != nil {
		t.Fatal(v, err)
	}
	tripOpen(t, b, 1)
	v, err = Call(ctx, b, func(context.Context) (string, error) { return "no", nil })
	if v != "" || !errors.Is(err, ErrOpen) {
		t.Fatal(v, err)
	}
	v, err = CallWithFallback(ctx, b, func(context.Context) (string, error) { return "no", nil },
		func(_ context.Context, err error) (string, error) {
			if !errors.Is(err, ErrOpen) {
				t.Errorf("fallback got %v", err)
			}
			return "cached", nil
		})
	if v != "cached" || err != nil {
		t.Fatal(v, err)
	}

	var seen error
	b2, _ := newTestBreaker(t, WithoutFailureRate(), WithConsecutiveFailures(1),
		WithFallback(func(_ context.Context, err error) error { seen = err; return nil }))
	tripOpen(t, b2, 1)
	if err := b2.Execute(ctx, ok); err != nil || !errors.Is(seen, ErrOpen) {
		t.Fatalf("err=%v seen=%v", err, seen)
	}
	// A failure of the call itself is not a rejection: the fallback is not used.
	b3, _ := newTestBreaker(t, WithFallback(func(context.Context, error) error { return nil }))
	if err := b3.Execute(ctx, fail); err != errBoom {
		t.Fatal(err)
	}
}

func TestFallbackPayload(t *testing.T) {
	b, _ := newTestBreaker(t, WithFallbackPayload("application/json", []byte(`{"cached":true}`)))
	ct, body, ok := b.FallbackPayload()
	if !ok || ct != "application/json" || string(body) != `{"cached":true}` {
		t.Fatal(ct, string(body), ok)
	}
	b2, _ := newTestBreaker(t)
	if _, _, ok := b2.FallbackPayload(); ok {
		t.Fatal(ok)
	}
}

func TestTwoStepAllow(t *testing.T) {
	b, _ := newTestBreaker(t, WithoutFailureRate(), WithConsecutiveFailures(2))
	done, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	done(errBoom)
	done(errBoom) // ignored: one permit, one outcome
	if m := mustMetrics(t, b); m.Failures != 1 || m.State != StateClosed {
		t.Fatalf("%+v", m)
	}
	done, _ = b.Allow()
	done(errBoom)
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatal(err)
	}
}

func TestLateResultsAreFencedByGeneration(t *testing.T) {
	b, _ := newTestBreaker(t)
	p, err := b.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := p.Record(Failure); !errors.Is(err, ErrLateResult) {
		t.Fatal(err)
	}
	if m := mustMetrics(t, b); m.LateResults != 1 || m.Failures != 0 {
		t.Fatalf("%+v", m)
	}
}

func TestManualTransitions(t *testing.T) {
	b, clock := newTestBreaker(t, WithHalfOpenCalls(1))
	if err := b.TransitionToHalfOpen(); !errors.Is(err, ErrInvalidTransition) {
		t.Fatal(err)
	}
	if err := b.ForceOpen(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if s := b.State(); s != StateForcedOpen {
		t.Fatal(s)
	}
	if ra := b.RetryAfter(); ra != 2*time.Second {
		t.Fatal(ra)
	}
	clock.Advance(2 * time.Second)
	if err := b.Execute(context.Background(), ok); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		do   func() error
		want State
	}{
		{b.Disable, StateDisabled}, {b.MetricsOnly, StateMetricsOnly}, {b.TransitionToClosed, StateClosed},
		{func() error { return b.ForceOpen(Forever) }, StateForcedOpen}, {b.TransitionToHalfOpen, StateHalfOpen},
		{b.Reset, StateClosed},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatal(err)
		}
		if got := b.State(); got != s.want {
			t.Fatalf("got %v want %v", got, s.want)
		}
	}
	m := mustMetrics(t, b)
	if m.Transitions[StateClosed][StateDisabled] != 1 || m.Transitions[StateHalfOpen][StateClosed] < 1 {
		t.Fatalf("%v", m.Transitions)
	}
	if err := b.ForceOpen(-time.Second); !errors.Is(err, ErrInvalidArgument) {
		t.Fatal(err)
	}
}

func TestDisabledAndMetricsOnlyAdmitOnTheFastPath(t *testing.T) {
	b, _ := newTestBreaker(t, WithoutFailureRate(), WithConsecutiveFailures(1))
	ctx := context.Background()
	_ = b.Disable()
	for i := 0; i < 5; i++ {
		_ = b.Execute(ctx, fail)
	}
	if m := mustMetrics(t, b); m.Failures != 0 || m.State != StateDisabled {
		t.Fatalf("disabled records nothing: %+v", m)
	}
	_ = b.MetricsOnly()
	for i := 0; i < 5; i++ {
		_ = b.Execute(ctx, fail)
	}
	if m := mustMetrics(t, b); m.Failures != 5 || m.State != StateMetricsOnly {
		t.Fatalf("metrics-only records and never trips: %+v", m)
	}
}

func TestSlowCallsUseTheLibraryClock(t *testing.T) {
	b, clock := newTestBreaker(t, WithoutFailureRate(), WithSlowCalls(0.5, 100*time.Millisecond),
		WithMinimumCalls(2), WithCountWindow(2))
	if b.fast {
		t.Fatal("a breaker that times calls must acquire through the library")
	}
	ctx := context.Background()
	_ = b.Execute(ctx, func(context.Context) error { clock.Advance(150 * time.Millisecond); return nil })
	_ = b.Execute(ctx, func(context.Context) error { clock.Advance(150 * time.Millisecond); return nil })
	if m := mustMetrics(t, b); m.SlowCalls != 2 || m.State != StateOpen {
		t.Fatalf("%+v", m)
	}
}

func TestSetFailureRateThreshold(t *testing.T) {
	b, _ := newTestBreaker(t, WithFailureRate(0.5))
	old, err := b.SetFailureRateThreshold(0.25)
	if err != nil || old != 0.5 {
		t.Fatal(old, err)
	}
	if m := mustMetrics(t, b); m.FailureRateThreshold != 0.25 {
		t.Fatal(m.FailureRateThreshold)
	}
	for _, bad := range []float64{math.NaN(), 0, -1, 1.5, math.Inf(1)} {
		if _, err := b.SetFailureRateThreshold(bad); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("%v: %v", bad, err)
		}
	}
}

// Many goroutines on one breaker: every call is counted exactly once (I2, I5).
func TestConcurrentCallsAreCountedExactly(t *testing.T) {
	b, _ := newTestBreaker(t, neverTrips)
	const workers = 8
	n := iterations(5000)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			ctx := context.Background()
			for i := 0; i < n; i++ {
				switch i % 4 {
				case 0:
					_ = b.Execute(ctx, fail)
				case 1:
					_ = b.Execute(ctx, func(context.Context) error { return context.Canceled })
				default:
					_, _ = Call(ctx, b, func(context.Context) (int, error) { return i, nil })
				}
			}
		}(w)
	}
	wg.Wait()
	m := mustMetrics(t, b)
	total := uint64(workers * n)
	if m.Failures != total/4 || m.Ignored != total/4 || m.Successes != total/2 {
		t.Fatalf("%+v", m)
	}
}

// Goroutines call while another flips the breaker around: every admitted call is counted
// once, as a success/failure or as late; every other is a rejection. Nothing is lost.
func TestConcurrentCallsDuringTransitionsLoseNothing(t *testing.T) {
	b, _ := newTestBreaker(t, neverTrips, WithHalfOpenCalls(2))
	const workers = 4
	n := iterations(4000)
	var admitted, rejected, other atomic.Uint64
	stop := make(chan struct{})
	var flipper sync.WaitGroup
	flipper.Add(1)
	go func() {
		defer flipper.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			switch i % 4 {
			case 0:
				_ = b.ForceOpen(Forever)
			case 1:
				_ = b.TransitionToHalfOpen()
			case 2:
				_ = b.Reset()
			case 3:
				_ = b.MetricsOnly()
			}
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				err := b.Execute(context.Background(), func(context.Context) error {
					admitted.Add(1)
					if i%3 == 0 {
						return errBoom
					}
					return nil
				})
				switch {
				case errors.Is(err, ErrOpen):
					rejected.Add(1)
				case err != nil && err != errBoom:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	flipper.Wait()
	m := mustMetrics(t, b)
	if other.Load() != 0 {
		t.Fatalf("%d unexpected errors", other.Load())
	}
	if admitted.Load()+rejected.Load() != uint64(workers*n) {
		t.Fatal("calls unaccounted for")
	}
	if got := m.Successes + m.Failures + m.LateResults + m.UnexpectedResults; got != admitted.Load() {
		t.Fatalf("admitted %d, counted %d (%+v)", admitted.Load(), got, m)
	}
	if m.UnexpectedResults != 0 {
		t.Fatalf("%+v", m)
	}
	if m.RejectedOpen+m.RejectedHalfOpen != rejected.Load() {
		t.Fatalf("rejected %d, counted %d", rejected.Load(), m.RejectedOpen+m.RejectedHalfOpen)
	}
}

func TestHalfOpenAdmitsExactlyNUnderConcurrency(t *testing.T) {
	b, clock := newTestBreaker(t, WithoutFailureRate(), WithConsecutiveFailures(1), WithOpenFor(time.Second), WithHalfOpenCalls(3))
	tripOpen(t, b, 1)
	clock.Advance(time.Second)
	var wg sync.WaitGroup
	var admitted atomic.Int64
	permits := make(chan Permit, 64)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p, err := b.Acquire(); err == nil {
				admitted.Add(1)
				permits <- p
			}
		}()
	}
	wg.Wait()
	close(permits)
	if admitted.Load() != 3 {
		t.Fatalf("admitted %d probes, want 3", admitted.Load())
	}
	for p := range permits {
		if err := p.Record(Success); err != nil {
			t.Fatal(err)
		}
	}
	if s := b.State(); s != StateClosed {
		t.Fatal(s)
	}
}

func TestNamesAndIDs(t *testing.T) {
	a, _ := newTestBreaker(t)
	b, err := NewBreaker("ünïcode name")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.ID() == b.ID() || b.Name() != "ünïcode name" {
		t.Fatal(a.ID(), b.ID(), b.Name())
	}
	e, err := NewBreaker("")
	if err != nil {
		t.Fatal("an empty name is allowed:", err)
	}
	e.Close()
	if Version() == "" {
		t.Fatal("no version")
	}
}

// Issue 16: what a user reads back (rates absent below MinimumCalls, the probes as the
// half-open window, every ended episode's window, a short half-open hint, a forced open on a
// FORCED_OPEN breaker that changes nothing).
func TestWhatAUserReadsBack(t *testing.T) {
	b, clock := newTestBreaker(t, WithFailureRate(0.5), WithMinimumCalls(4), WithCountWindow(10),
		WithOpenFor(5*time.Second), WithHalfOpenCalls(2))
	for i := 0; i < 3; i++ {
		if err := b.Execute(context.Background(), ok); err != nil {
			t.Fatal(err)
		}
	}
	m := mustMetrics(t, b)
	if _, _, present := m.Window.Rates(); present || !math.IsNaN(m.Window.FailureRate) || m.MinimumCalls != 4 {
		t.Fatalf("3 calls < 4: %+v", m)
	}
	for i := 0; i < 3; i++ {
		_ = b.Execute(context.Background(), fail)
	}
	m = mustMetrics(t, b)
	if fr, _, present := m.LastWindow.Rates(); m.State != StateOpen || !present || fr != 0.5 || m.LastWindow.Calls != 6 {
		t.Fatalf("tripped: %+v", m)
	}
	clock.Advance(5 * time.Second)
	p1, err := b.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	p2, err := b.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	var re *RejectedError
	if _, err := b.Acquire(); !errors.As(err, &re) || re.RetryAfter != 500*time.Millisecond {
		t.Fatalf("half-open full: %v, want a 500 ms hint", err)
	}
	if ra := b.RetryAfter(); ra != 0 {
		t.Fatalf("the read in HALF_OPEN: %v", ra)
	}
	_ = p1.Record(Success)
	m = mustMetrics(t, b)
	if fr, _, present := m.Window.Rates(); m.Window.Calls != 1 || !present || fr != 0 {
		t.Fatalf("the probes are the window: %+v", m.Window)
	}
	_ = p2.Record(Failure)
	m = mustMetrics(t, b)
	if m.State != StateOpen || m.LastWindow.Calls != 2 || m.LastWindow.Failures != 1 {
		t.Fatalf("the probes' episode is the last window: %+v", m)
	}
	if err := b.ForceOpen(Forever); err != nil {
		t.Fatal(err)
	}
	before := mustMetrics(t, b)
	_ = b.ForceOpen(Forever)
	_ = b.ForceOpen(2 * time.Second)
	after := mustMetrics(t, b)
	if after.Generation != before.Generation || after.Transitions != before.Transitions || after.RetryAfter != 2*time.Second {
		t.Fatalf("forced open again: %+v -> %+v", before, after)
	}
}
