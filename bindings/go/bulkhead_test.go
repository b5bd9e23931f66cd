package surgewall

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBulkheadLimitsConcurrency(t *testing.T) {
	b, err := NewBulkhead("db", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := 0; i < 3; i++ {
		if err := b.TryAcquire(); err != nil {
			t.Fatal(err)
		}
	}
	err = b.Acquire(context.Background())
	var full *BulkheadFullError
	if !errors.Is(err, ErrBulkheadFull) || !errors.As(err, &full) || errors.Is(err, ErrTimeout) {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := b.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Release(); !errors.Is(err, ErrUnexpectedResult) {
		t.Fatal("a release without a slot:", err)
	}
	m := b.Metrics()
	if m.Active != 0 || m.Accepted != 3 || m.Rejected != 1 || m.UnexpectedReleases != 1 || m.MaxConcurrent != 3 {
		t.Fatalf("%+v", m)
	}
}

func TestBulkheadNeverExceedsItsLimitUnderLoad(t *testing.T) {
	b, _ := NewBulkhead("load", 4, WithMaxWait(time.Minute))
	defer b.Close()
	var inFlight, peak atomic.Int64
	var wg sync.WaitGroup
	n := iterations(400)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/16+1; i++ {
				err := b.Execute(context.Background(), func(context.Context) error {
					v := inFlight.Add(1)
					for p := peak.Load(); v > p && !peak.CompareAndSwap(p, v); p = peak.Load() {
					}
					time.Sleep(10 * time.Microsecond)
					inFlight.Add(-1)
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	m := b.Metrics()
	if peak.Load() > 4 || m.Active != 0 || m.Waiting != 0 {
		t.Fatalf("peak %d, %+v", peak.Load(), m)
	}
}

func TestBulkheadWaitHonoursCancellationAndDeadlines(t *testing.T) {
	b, _ := NewBulkhead("wait", 1, WithMaxWait(time.Hour))
	defer b.Close()
	if err := b.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Cancellation ends the wait.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Acquire(ctx) }()
	for m := b.Metrics(); m.Waiting == 0; m = b.Metrics() {
		time.Sleep(time.Millisecond)
	}
	cancel()
	// "Was I shed?" is one errors.Is, whatever ended the wait; the context's error stays
	// reachable, and only a whole MaxWait matches ErrTimeout.
	var full *BulkheadFullError
	if err := <-done; !errors.Is(err, ErrBulkheadFull) || !errors.Is(err, context.Canceled) ||
		errors.Is(err, ErrTimeout) || !errors.As(err, &full) || full.Cause != context.Canceled || full.TimedOut {
		t.Fatal(err)
	}
	// A deadline ends it too.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel2()
	if err := b.Acquire(ctx2); !errors.Is(err, ErrBulkheadFull) || !errors.Is(err, context.DeadlineExceeded) ||
		!errors.As(err, &full) || full.Waited <= 0 || full.Bulkhead != "wait" {
		t.Fatal(err)
	}
	// A context already done is returned as is: the caller was not shed, it never asked.
	if err := b.Acquire(ctx2); errors.Is(err, ErrBulkheadFull) || err != context.DeadlineExceeded {
		t.Fatal(err)
	}
	// A waiter gets the slot when it is released, in FIFO order.
	order := make(chan int, 2)
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := b.Acquire(context.Background()); err != nil {
				t.Error(err)
				return
			}
			order <- i
			b.Release()
		}(i)
		for m := b.Metrics(); m.Waiting != uint64(i+1); m = b.Metrics() {
			time.Sleep(time.Millisecond)
		}
	}
	b.Release()
	wg.Wait()
	if a, c := <-order, <-order; a != 0 || c != 1 {
		t.Fatalf("order %d %d", a, c)
	}
	if m := b.Metrics(); m.Active != 0 || m.Waiting != 0 || m.Waited < 4 {
		t.Fatalf("%+v", m)
	}
}

func TestBulkheadMaxWaitTimesOut(t *testing.T) {
	b, _ := NewBulkhead("short", 1, WithMaxWait(2*time.Millisecond))
	defer b.Close()
	_ = b.TryAcquire()
	err := b.Acquire(context.Background())
	if !errors.Is(err, ErrBulkheadFull) || !errors.Is(err, ErrTimeout) {
		t.Fatal(err)
	}
	if m := b.Metrics(); m.TimedOut != 1 || m.Waiting != 0 {
		t.Fatalf("%+v", m)
	}
}

func TestBulkheadReleasesOnPanicAndBadInput(t *testing.T) {
	b, _ := NewBulkhead("p", 1)
	func() {
		defer func() { _ = recover() }()
		_ = b.Execute(context.Background(), func(context.Context) error { panic("x") })
	}()
	if m := b.Metrics(); m.Active != 0 {
		t.Fatal("slot kept after a panic")
	}
	b.Close()
	b.Close()
	if err := b.TryAcquire(); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n int
		w time.Duration
	}{{0, 0}, {-1, 0}, {1, -time.Second}} {
		if _, err := NewBulkhead("bad", c.n, WithMaxWait(c.w)); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("%v: %v", c, err)
		}
	}
}

func TestKeyedBulkhead(t *testing.T) {
	clock := NewMockClock()
	kb, err := NewKeyedBulkhead("", 2, WithGlobalMax(3), WithKeyLimitUint64(7, 1), WithMaxKeys(3), WithIdleTTL(time.Minute), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer kb.Close()
	a1, _ := kb.TryAcquire("alice")
	a2, err := kb.TryAcquire("alice")
	if err != nil {
		t.Fatal(err)
	}
	_, err = kb.TryAcquire("alice")
	var re *BulkheadFullError
	if !errors.Is(err, ErrBulkheadFull) || !errors.As(err, &re) || !re.Keyed || re.Global || re.Key != "alice" {
		t.Fatal(err)
	}
	if k := kb.KeyOf("alice"); k != re.KeyID {
		t.Fatal("rejection names the hashed key")
	}
	s1, _ := kb.TryAcquireUint64(7)
	if _, err := kb.TryAcquireUint64(7); !errors.As(err, &re) || re.KeyID != 7 || re.Key != "" {
		t.Fatal(err)
	}
	if _, err := kb.TryAcquireUint64(8); !errors.As(err, &re) || !re.Global {
		t.Fatal("global limit:", err)
	}
	k := kb.KeyOf("alice")
	if n := kb.ActiveUint64(k); n != 2 || kb.Active("alice") != 2 {
		t.Fatal(n)
	}
	keys := kb.Keys()
	byKey := map[uint64]KeyState{}
	for _, ks := range keys {
		byKey[ks.Key] = ks
	}
	if len(keys) != 3 || byKey[k].Active != 2 || byKey[k].Limit != 2 || byKey[7].Active != 1 || byKey[7].Limit != 1 || byKey[8].Active != 0 {
		t.Fatalf("%+v", keys)
	}
	for _, p := range []KeyedBulkheadPermit{a1, a2, s1} {
		if err := p.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if err := a1.Release(); !errors.Is(err, ErrUnexpectedResult) {
		t.Fatal(err)
	}
	// The key cap: alice, 7 and 8 are held (8 was refused at the global limit, but its
	// entry exists), so a fourth key is refused.
	var rf *RegistryFullError
	if _, err := kb.TryAcquireUint64(100); !errors.Is(err, ErrRegistryFull) || errors.Is(err, ErrBulkheadFull) ||
		!errors.As(err, &rf) || rf.KeyID != 100 {
		t.Fatal(err)
	}
	// Idleness is measured between sweeps: the first one marks, a later one evicts.
	if n, _ := kb.Sweep(); n != 0 {
		t.Fatal("the first sweep only marks")
	}
	clock.Advance(2 * time.Minute)
	sub, _ := Subscribe()
	defer sub.Close()
	if n, err := kb.Sweep(); err != nil || n != 3 {
		t.Fatal(n, err)
	}
	id := kb.ID()
	if id == 0 {
		t.Fatal(id)
	}
	evicted := map[uint64]bool{}
	for ev := range sub.Pending() {
		if ev.Kind == EventEvicted && ev.Source == id {
			evicted[ev.Key] = true
		}
	}
	if !evicted[7] || !evicted[8] || !evicted[k] {
		t.Fatalf("eviction events carry the keys: %v", evicted)
	}
	m := kb.Metrics()
	if m.Keys != 0 || m.RefusedKeys != 1 || m.Evicted == 0 || m.PerKeyMax != 2 || m.GlobalMax != 3 {
		t.Fatalf("%+v", m)
	}
	err = kb.Execute(context.Background(), "bob", func(context.Context) error { return errBoom })
	if err != errBoom {
		t.Fatal(err)
	}
	if _, err := NewKeyedBulkhead("", -1); !errors.Is(err, ErrInvalidConfig) {
		t.Fatal(err)
	}
	if _, err := NewKeyedBulkhead("", 0); !errors.Is(err, ErrInvalidConfig) {
		t.Fatal(err)
	}
	kb.Close()
	if _, err := kb.TryAcquireUint64(1); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}
