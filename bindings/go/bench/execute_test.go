// Package bench holds G6: surgewall's Go Execute against gobreaker and failsafe-go, same
// thresholds, success path, in one run. It is its own module so the binding itself has no
// dependencies.
//
//	make -C bindings/go bench     # -cpu=1,2 -benchmem
package bench

import (
	"context"
	"errors"
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
	if m, _ := br.Metrics(); m.Successes != uint64(b.N) {
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

// BenchmarkRejected is the OPEN path: a typed error with RetryAfter per rejection.
func BenchmarkRejected(b *testing.B) {
	br := newSurgewall(b)
	_ = br.ForceOpen()
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
