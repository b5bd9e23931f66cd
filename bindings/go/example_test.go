package surgewall_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"surgewall.dev/go/surgewall"
)

// errStatus makes a 5xx response an error, so that the breaker counts it as a failure.
type errStatus int

func (e errStatus) Error() string { return fmt.Sprintf("upstream answered %d", int(e)) }

// A guarded HTTP call: after 5 consecutive failures the breaker opens and calls fail fast
// with ErrOpen (and a RetryAfter) instead of waiting on a dead upstream.
func ExampleBreaker_Execute_http() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer upstream.Close()

	b, err := surgewall.NewBreaker("users-api",
		surgewall.WithConsecutiveFailures(5),
		surgewall.WithOpenFor(30*time.Second))
	if err != nil {
		panic(err)
	}
	defer b.Close()

	get := func(ctx context.Context) (string, error) {
		return surgewall.Call(ctx, b, func(ctx context.Context) (string, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, upstream.URL, nil)
			if err != nil {
				return "", err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			if resp.StatusCode >= 500 {
				return "", errStatus(resp.StatusCode)
			}
			body, err := io.ReadAll(resp.Body)
			return string(body), err
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 1; i <= 6; i++ {
		_, err := get(ctx)
		var open *surgewall.RejectedError
		switch {
		case errors.As(err, &open):
			fmt.Printf("call %d: rejected, breaker %s, retry in about %v\n", i, open.State, open.RetryAfter.Round(time.Second))
		case err != nil:
			fmt.Printf("call %d: %v\n", i, err)
		}
	}
	// Output:
	// call 1: upstream answered 503
	// call 2: upstream answered 503
	// call 3: upstream answered 503
	// call 4: upstream answered 503
	// call 5: upstream answered 503
	// call 6: rejected, breaker open, retry in about 30s
}

// Tests drive time with a mock clock.
func ExampleNewMockClock() {
	clock := surgewall.NewMockClock()
	b, _ := surgewall.NewBreaker("db", surgewall.WithClock(clock),
		surgewall.WithConsecutiveFailures(1), surgewall.WithOpenFor(5*time.Second))
	defer b.Close()

	_ = b.Execute(context.Background(), func(context.Context) error { return errors.New("down") })
	s := b.State()
	fmt.Println(s)
	clock.Advance(5 * time.Second)
	_ = b.Execute(context.Background(), func(context.Context) error { return nil }) // a probe
	s = b.State()
	fmt.Println(s)
	// Output:
	// open
	// half_open
}

// One breaker per endpoint: a failing endpoint is cut off while the others keep working,
// and each rejection names its key.
func ExampleKeyedBreaker() {
	clock := surgewall.NewMockClock() // only to make the output reproducible
	endpoints, err := surgewall.NewKeyedBreaker("endpoints",
		surgewall.WithMaxKeys(10_000),         // beyond: ErrRegistryFull (or WithSharedOverflow)
		surgewall.WithIdleTTL(10*time.Minute), // Sweep evicts keys idle that long (never an open one)
		surgewall.WithOverride("POST /payments", // stricter for this key
			surgewall.WithConsecutiveFailures(1)),
		surgewall.WithClock(clock), // the template: NewBreaker's options
		surgewall.WithConsecutiveFailures(3),
		surgewall.WithOpenFor(5*time.Second))
	if err != nil {
		panic(err)
	}
	defer endpoints.Close()

	ctx := context.Background()
	down := func(context.Context) error { return errors.New("503") }
	up := func(context.Context) error { return nil }
	for i := 0; i < 3; i++ {
		_ = endpoints.Execute(ctx, "GET /search", down)
	}
	_ = endpoints.Execute(ctx, "POST /payments", down)
	for _, key := range []string{"GET /search", "POST /payments", "GET /cart"} {
		err := endpoints.Execute(ctx, key, up)
		var open *surgewall.RejectedError
		if errors.As(err, &open) {
			fmt.Printf("%s: rejected, retry in %v\n", open.Key, open.RetryAfter)
		} else {
			fmt.Printf("%s: %v\n", key, err)
		}
	}
	// Output:
	// GET /search: rejected, retry in 5s
	// POST /payments: rejected, retry in 5s
	// GET /cart: <nil>
}

// "Was the call refused?" is one errors.Is per policy: ErrOpen for every breaker rejection
// (open, half-open with its probes out, forced open), ErrBulkheadFull for every bulkhead
// refusal, whether MaxWait or the caller's context ended the wait.
func ExampleBulkhead_Acquire() {
	clock := surgewall.NewMockClock() // only to make the output reproducible
	b, _ := surgewall.NewBreaker("db", surgewall.WithClock(clock),
		surgewall.WithConsecutiveFailures(1), surgewall.WithHalfOpenCalls(1))
	defer b.Close()
	_ = b.Execute(context.Background(), func(context.Context) error { return errors.New("down") })
	clock.Advance(5 * time.Second)
	probe, _ := b.Acquire() // the one probe is out: the next call is refused by HALF_OPEN
	_, err := b.Acquire()
	fmt.Println(errors.Is(err, surgewall.ErrOpen), errors.Is(err, surgewall.ErrHalfOpenFull))
	_ = probe.Release()

	pool, _ := surgewall.NewBulkhead("db-pool", 1, surgewall.WithMaxWait(time.Minute))
	defer pool.Close()
	_ = pool.TryAcquire() // the one slot is taken
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err = pool.Acquire(ctx) // the caller's deadline ends the wait before MaxWait
	fmt.Println(errors.Is(err, surgewall.ErrBulkheadFull), errors.Is(err, context.DeadlineExceeded))
	// Output:
	// true true
	// true true
}
