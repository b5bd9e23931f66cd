package surgewall

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"
)

func TestSLOBurnsTheBudgetAndHoldsTheBreakerOpen(t *testing.T) {
	clock := NewMockClock()
	b, _ := NewBreaker("slo-dep", WithClock(clock), neverTrips)
	defer b.Close()
	sub, _ := Subscribe()
	defer sub.Close()
	slo, err := NewSLO("", WithObjective(0.99), WithObjectiveWindow(time.Hour), WithFastBurn(BurnPair{Long: 10 * time.Minute, Short: time.Minute, Threshold: 10}), WithSlowBurn(BurnPair{Long: 30 * time.Minute, Short: 5 * time.Minute, Threshold: 5}), WithBurnBucket(6*time.Second), WithMinimumCalls(10), WithHeldBreaker(b), WithMinOpen(time.Minute), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer slo.Close()
	for i := 0; i < 100; i++ {
		_ = slo.Record(i%2 == 0) // 50 % bad against a 1 % budget
	}
	_ = slo.RecordOutcome(Ignored)
	m, err := slo.Tick()
	if err != nil {
		t.Fatal(err)
	}
	if m.Calls != 100 || m.Bad != 50 || m.BudgetRemaining >= 0 || !m.Fast.Burning || !m.HoldingBreaker ||
		m.BurnBucket != 6*time.Second {
		t.Fatalf("%+v", m)
	}
	if s := b.State(); s != StateForcedOpen {
		t.Fatal("the linked breaker is held open:", s)
	}
	found := false
	for ev := range sub.Pending() {
		if ev.Kind == EventSLOBurn && ev.Fast {
			found = true
		}
	}
	if !found {
		t.Fatal("no fast burn event")
	}
	if _, err := NewSLO("", WithObjective(1.5)); !errors.Is(err, ErrInvalidConfig) {
		t.Fatal(err)
	}
	if _, err := NewSLO("", WithObjective(math.NaN())); !errors.Is(err, ErrInvalidConfig) {
		t.Fatal(err)
	}
	slo.Close()
	if err := slo.Record(true); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

func TestThresholdAdjusterMovesTowardTheBounds(t *testing.T) {
	clock := NewMockClock()
	b, _ := NewBreaker("adjusted", WithClock(clock), WithFailureRate(0.5), WithMinimumCalls(1000), WithCountWindow(1000))
	defer b.Close()
	a, err := NewThresholdAdjuster(b, 0.1, 0.2, 0.8, 0.1, WithMinimumCalls(10))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if m := a.Metrics(); m.Measured || !math.IsNaN(m.LastErrorRate) {
		t.Fatalf("not measured yet must not read as 0: %+v", m)
	}
	for i := 0; i < 20; i++ {
		_ = b.Execute(context.Background(), func(context.Context) error {
			if i%4 == 0 {
				return errBoom // 25 % errors, above the 10 % target
			}
			return nil
		})
	}
	changed, old, new, err := a.Tick()
	if err != nil || !changed || old != 0.5 || math.Abs(new-0.4) > 1e-9 {
		t.Fatal(changed, old, new, err)
	}
	if m := b.Metrics(); math.Abs(m.FailureRateThreshold-0.4) > 1e-9 {
		t.Fatal(m.FailureRateThreshold)
	}
	if m := a.Metrics(); m.Ticks != 1 || m.Changes != 1 || !m.Measured || m.LastErrorRate != 0.25 {
		t.Fatalf("%+v", m)
	}
	if _, err := NewThresholdAdjuster(b, 0.1, 0.9, 0.2, 0.1); !errors.Is(err, ErrInvalidConfig) {
		t.Fatal("min above max:", err)
	}
	if _, err := NewThresholdAdjuster(nil, 0, 0, 0, 0); !errors.Is(err, ErrInvalidConfig) {
		t.Fatal(err)
	}
}

func TestEvents(t *testing.T) {
	sub, err := Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	b, clock := newTestBreaker(t, WithoutFailureRate(), WithConsecutiveFailures(1), WithOpenFor(time.Second), WithHalfOpenCalls(1))
	tripOpen(t, b, 1)
	clock.Advance(time.Second)
	_ = b.Execute(context.Background(), ok)
	var got []Event
	for ev := range sub.Pending() {
		if ev.Source == b.ID() {
			got = append(got, ev)
		}
	}
	want := []struct {
		from, to State
		reason   TransitionReason
	}{
		{StateClosed, StateOpen, ReasonConsecutiveFailures},
		{StateOpen, StateHalfOpen, ReasonWaitOver},
		{StateHalfOpen, StateClosed, ReasonProbesSucceeded},
	}
	if len(got) != len(want) {
		t.Fatalf("%d events: %+v", len(got), got)
	}
	for i, w := range want {
		if got[i].Kind != EventTransition || got[i].From != w.from || got[i].To != w.to || got[i].Reason != w.reason || got[i].Generation != uint64(i+1) {
			t.Fatalf("event %d: %+v", i, got[i])
		}
	}
	if n := sub.Missed(); n != 0 {
		t.Fatal(n)
	}

	// Watch delivers on a channel and closes it when ctx ends.
	ctx, cancel := context.WithCancel(context.Background())
	ch := sub.Watch(ctx, time.Millisecond)
	_ = b.ForceOpen(Forever)
	for ev := range ch {
		if ev.Source == b.ID() && ev.To == StateForcedOpen && ev.Reason == ReasonManual {
			cancel()
		}
	}
	cancel()
	sub.Close()
	if _, _, err := sub.Poll(); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

// A subscriber that falls behind the ring (4096 events) is told, through Missed, of every
// event it will never see: delivered + missed == published.
func TestEventsMissedAfterOverrun(t *testing.T) {
	sub, err := Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	b, _ := newTestBreaker(t)
	for range 2500 { // 5000 transitions
		if err := b.ForceOpen(Forever); err != nil {
			t.Fatal(err)
		}
		if err := b.Reset(); err != nil {
			t.Fatal(err)
		}
	}
	var delivered, last uint64
	for ev := range sub.Pending() {
		if ev.Source != b.ID() || ev.Generation <= last {
			t.Fatalf("event %d out of place: %+v (last generation %d)", delivered, ev, last)
		}
		last = ev.Generation
		delivered++
	}
	missed := sub.Missed()
	if delivered != 4096 || missed != 5000-4096 {
		t.Fatalf("%d delivered, %d missed", delivered, missed)
	}
	// Caught up: the next event comes out of the next poll.
	if err := b.ForceOpen(Forever); err != nil {
		t.Fatal(err)
	}
	if ev, ok, err := sub.Poll(); err != nil || !ok || ev.To != StateForcedOpen {
		t.Fatal(ev, ok, err)
	}
	if _, ok, err := sub.Poll(); err != nil || ok {
		t.Fatal(ok, err)
	}
	if n := sub.Missed(); n != 5000-4096 {
		t.Fatal(n)
	}
	// Closed, the subscription keeps the count it had.
	sub.Close()
	if _, _, err := sub.Poll(); !errors.Is(err, ErrClosed) || sub.Missed() != 5000-4096 {
		t.Fatal(err, sub.Missed())
	}
}

func TestBreakerRegistry(t *testing.T) {
	clock := NewMockClock()
	r, err := NewBreakerRegistry(WithMaxKeys(3), WithClock(clock), WithoutFailureRate(), WithConsecutiveFailures(5),
		WithOverride("GET /flaky", WithConsecutiveFailures(1)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var wg sync.WaitGroup
	got := make([]*Breaker, 16)
	for i := range got {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			got[i], _ = r.Get("GET /users")
		}(i)
	}
	wg.Wait()
	for _, b := range got {
		if b == nil || b != got[0] {
			t.Fatal("one breaker per key under races")
		}
	}
	flaky, _ := r.Get("GET /flaky")
	_ = flaky.Execute(context.Background(), fail)
	if s := flaky.State(); s != StateOpen {
		t.Fatal("the override applies:", s)
	}
	_ = got[0].Execute(context.Background(), fail)
	if s := got[0].State(); s != StateClosed {
		t.Fatal("the template applies:", s)
	}
	if _, err := r.Get("c"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get("d"); !errors.Is(err, ErrRegistryFull) {
		t.Fatal(err)
	}
	r.Remove("c")
	if r.Len() != 2 {
		t.Fatal(r.Len())
	}
	n := 0
	r.Range(func(string, *Breaker) bool { n++; return true })
	if n != 2 {
		t.Fatal(n)
	}
	r.Close()
	if _, err := r.Get("GET /users"); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if err := got[0].Execute(context.Background(), ok); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}
