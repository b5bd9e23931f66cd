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
//	if errors.Is(err, surgewall.ErrOpen) { ... } // refused: a *RejectedError with RetryAfter
//
// The success path costs one cgo crossing: the permit is built in Go from the breaker's
// state word (read atomically from C memory), and only the outcome goes to the library.
//
// Many keys (per endpoint, per user) get one compact breaker each from a KeyedBreaker:
//
//	kb, err := surgewall.NewKeyedBreaker("endpoints", surgewall.WithMaxKeys(10_000),
//		surgewall.WithConsecutiveFailures(5))
//	err = kb.Execute(ctx, "GET /users", fn) // a *RejectedError naming the key
//
// # One style for every kind
//
// Constructors take their required values as arguments and everything else as Options of
// the one Option type (NewBreaker(name, opts...), NewBulkhead(name, maxConcurrent, opts...),
// NewRetry(name, opts...), ...); an Option another kind's constructor gets is refused with
// a *ConfigError naming it.
//
// "Was the call refused?" is one errors.Is per policy: ErrOpen matches every breaker
// rejection (OPEN, HALF_OPEN with every probe out, FORCED_OPEN; ErrHalfOpenFull and
// ErrForcedOpen tell the last two apart), ErrBulkheadFull every bulkhead refusal (also when
// the caller's context ended the wait: the context's error stays reachable through
// errors.Is), ErrRegistryFull a new key beyond a keyed kind's cap.
//
// Keyed kinds take a string key, or a uint64 key through the methods ending in Uint64
// (ExecuteUint64, TryAcquireUint64, ForceOpenUint64, ...). Manual transitions have the same
// names on a Breaker and a KeyedBreaker's keys: ForceOpen(d) (Forever: until another manual
// transition), Disable, MetricsOnly, TransitionToClosed, TransitionToHalfOpen, Reset.
//
// Objects hold library handles: Close them (idempotent); a cleanup frees those you forget
// once they are unreachable. After Close, every call, permit, manual transition and sweep
// returns ErrClosed, while the observers (State, Metrics, RetryAfter, Get, Keys, KeyOf, ID,
// Name, ...) keep reading the object as Close left it: they return plain values, never an
// error and never a made-up one.
//
// The package links the static library built by `make -C bindings/go lib`; build with
// `-tags surgewall_system` to link a system-installed libsurgewall through pkg-config.
package surgewall
