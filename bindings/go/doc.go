// Package surgewall is the Go binding of surgewall, a lock-free resilience library (circuit
// breakers, bulkheads, retries, SLO tracking) written in Rust and used through its C ABI.
//
// A guarded call:
//
//	b, err := surgewall.NewBreaker("payments",
//		surgewall.WithFailureRate(0.5), surgewall.WithMinimumCalls(20),
//		surgewall.WithTimeWindow(time.Minute, 10), surgewall.WithOpenFor(5*time.Second))
//	if err != nil { ... }
//	defer b.Close()
//	err = b.Execute(ctx, func(ctx context.Context) error { return charge(ctx) })
//	if errors.Is(err, surgewall.ErrOpen) { ... } // a *RejectedError with RetryAfter
//
// The success path costs one cgo crossing: the permit is built in Go from the breaker's
// state word (read atomically from C memory), and only the outcome goes to the library.
//
// Many keys (per endpoint, per user) get one compact breaker each from a KeyedBreaker:
//
//	kb, err := surgewall.NewKeyedBreaker(surgewall.KeyedBreakerConfig{MaxKeys: 10_000},
//		surgewall.WithConsecutiveFailures(5))
//	err = kb.Execute(ctx, "GET /users", fn) // a *RejectedError naming the key
//
// Objects hold library handles: Close them (idempotent); a cleanup frees those you forget
// once they are unreachable. Every method of a closed object returns ErrClosed.
//
// The package links the static library built by `make -C bindings/go lib`; build with
// `-tags surgewall_system` to link a system-installed libsurgewall through pkg-config.
package surgewall
