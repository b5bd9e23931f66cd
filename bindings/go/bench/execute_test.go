// Package bench holds G6: surgewall's Go Execute against gobreaker and failsafe-go, same
// thresholds, success path, in one run; and the keyed breakers (BenchmarkKeyedExecute) against
// the binding's BreakerRegistry and gobreaker in a map. It is its own module so the binding
// itself has no dependencies.
//
//	make -C bindings/go bench     # -cpu=1,2 -benchmem
package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/sony/gobreaker/v2"
	"surgewall.dev/go/surgewall"
)

// The shared configuration: trip at a 50 % failure rate once 20 calls are in a 60 s window,
// stay open 5 s, then 3 probes.
const (
	failureRate   = 0.5
	minimumCalls  = 20
	window        = 60 * time.Second
	buckets       = 10
	openFor       = 5 * time.Second
	halfOpenCalls = 3
)

func work(context.Context) error { return nil }

func newSurgewall(b *testing.B, opts ...surgewall.Option) *surgewall.Breaker {
	br, err := surgewall.NewBreaker("bench", append([]surgewall.Option{
		surgewall.WithFailureRate(failureRate), surgewall.WithMinimumCalls(minimumCalls),
		surgewall.WithTimeWindow(window, buckets), surgewall.WithOpenFor(openFor),
		surgewall.WithHalfOpenCalls(halfOpenCalls),
	}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	return br
}

func runSurgewall(b *testing.B, br *surgewall.Breaker) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := br.Execute(ctx, work); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if m := br.Metrics(); m.Successes != uint64(b.N) {
		b.Fatalf("recorded %d of %d calls", m.Successes, b.N)
	}
}

func BenchmarkExecute(b *testing.B) {
	// The default: the permit is built in Go from the state word, so one cgo crossing (the
	// record), and the library's coarse clock is ticked by a goroutine every millisecond.
	b.Run("surgewall", func(b *testing.B) { runSurgewall(b, newSurgewall(b)) })

	// The same without the ticker: each record reads the precise clock.
	b.Run("surgewall-unticked", func(b *testing.B) {
		runSurgewall(b, newSurgewall(b, surgewall.WithoutClockTicker()))
	})

	// The plain design: acquire and record both cross into the library.
	b.Run("surgewall-two-crossings", func(b *testing.B) {
		runSurgewall(b, newSurgewall(b, surgewall.WithoutFastPath()))
	})

	b.Run("gobreaker", func(b *testing.B) {
		cb := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
			Name:         "bench",
			MaxRequests:  halfOpenCalls,
			Interval:     window,
			BucketPeriod: window / buckets,
			Timeout:      openFor,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return c.Requests >= minimumCalls && float64(c.TotalFailures)/float64(c.Requests) >= failureRate
			},
		})
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				if _, err := cb.Execute(func() (struct{}, error) { return struct{}{}, work(ctx) }); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	b.Run("failsafe-go", func(b *testing.B) {
		cb := circuitbreaker.NewBuilder[any]().
			WithFailureRateThreshold(failureRate, minimumCalls, window).
			WithDelay(openFor).
			WithSuccessThreshold(halfOpenCalls).
			Build()
		exec := failsafe.With[any](cb)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				if err := exec.Run(func() error { return work(ctx) }); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// keyCount endpoint-like keys of about 40 bytes, cycled through by every goroutine.
const keyCount = 1024

func benchKeys() []string {
	keys := make([]string, keyCount)
	for i := range keys {
		keys[i] = fmt.Sprintf("GET /api/v1/tenants/%04d/orders/recent", i)
	}
	return keys
}

func templateOptions() []surgewall.Option {
	return []surgewall.Option{
		surgewall.WithFailureRate(failureRate), surgewall.WithMinimumCalls(minimumCalls),
		surgewall.WithTimeWindow(window, buckets), surgewall.WithOpenFor(openFor),
		surgewall.WithHalfOpenCalls(halfOpenCalls),
	}
}

// runKeyed runs call(goroutine-local counter) in parallel; every key is made beforehand, so
// the success path of held keys is what is measured.
func runKeyed(b *testing.B, call func(i int) error) {
	for i := 0; i < keyCount; i++ {
		if err := call(i); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := call(i); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkKeyedExecute: a guarded call on one of 1024 keys (same thresholds as
// BenchmarkExecute), surgewall's KeyedBreaker by string and by uint64 key, against the
// binding's BreakerRegistry (a Go map of full breakers) and gobreaker in a sync.Map.
func BenchmarkKeyedExecute(b *testing.B) {
	keys := benchKeys()

	b.Run("surgewall-keyed", func(b *testing.B) {
		kb, err := surgewall.NewKeyedBreaker("", templateOptions()...)
		if err != nil {
			b.Fatal(err)
		}
		defer kb.Close()
		ctx := context.Background()
		runKeyed(b, func(i int) error { return kb.Execute(ctx, keys[i%keyCount], work) })
		b.StopTimer()
		if m := kb.Metrics(); m.Keys != keyCount || m.Failures != 0 || m.RejectedOpen != 0 {
			b.Fatalf("%+v", m)
		}
	})

	b.Run("surgewall-keyed-uint64", func(b *testing.B) {
		kb, err := surgewall.NewKeyedBreaker("", templateOptions()...)
		if err != nil {
			b.Fatal(err)
		}
		defer kb.Close()
		ctx := context.Background()
		runKeyed(b, func(i int) error { return kb.ExecuteUint64(ctx, uint64(i%keyCount), work) })
	})

	b.Run("surgewall-registry", func(b *testing.B) {
		r, err := surgewall.NewBreakerRegistry(templateOptions()...)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		ctx := context.Background()
		runKeyed(b, func(i int) error {
			br, err := r.Get(keys[i%keyCount])
			if err != nil {
				return err
			}
			return br.Execute(ctx, work)
		})
	})

	b.Run("gobreaker-map", func(b *testing.B) {
		var m sync.Map // string -> *gobreaker.CircuitBreaker[struct{}]
		get := func(key string) *gobreaker.CircuitBreaker[struct{}] {
			if cb, ok := m.Load(key); ok {
				return cb.(*gobreaker.CircuitBreaker[struct{}])
			}
			cb, _ := m.LoadOrStore(key, gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
				Name:         key,
				MaxRequests:  halfOpenCalls,
				Interval:     window,
				BucketPeriod: window / buckets,
				Timeout:      openFor,
				ReadyToTrip: func(c gobreaker.Counts) bool {
					return c.Requests >= minimumCalls && float64(c.TotalFailures)/float64(c.Requests) >= failureRate
				},
			}))
			return cb.(*gobreaker.CircuitBreaker[struct{}])
		}
		ctx := context.Background()
		runKeyed(b, func(i int) error {
			_, err := get(keys[i%keyCount]).Execute(func() (struct{}, error) { return struct{}{}, work(ctx) })
			return err
		})
	})
}

// BenchmarkRejected is the OPEN path: a typed error with RetryAfter per rejection.
func BenchmarkRejected(b *testing.B) {
	br := newSurgewall(b)
	_ = br.ForceOpen(surgewall.Forever)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := br.Execute(ctx, work); !errors.Is(err, surgewall.ErrOpen) {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkKeyedRejected is the OPEN path of a keyed breaker: a *RejectedError naming the
// key, its 64-bit form and RetryAfter, from one cgo crossing.
func BenchmarkKeyedRejected(b *testing.B) {
	kb, err := surgewall.NewKeyedBreaker("", templateOptions()...)
	if err != nil {
		b.Fatal(err)
	}
	defer kb.Close()
	const key = "GET /api/v1/tenants/0001/orders/recent"
	if err := kb.ForceOpen(key, surgewall.Forever); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := kb.Execute(ctx, key, work); !errors.Is(err, surgewall.ErrOpen) {
				b.Error(err)
				return
			}
		}
	})
}
