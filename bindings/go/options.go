package surgewall

/*
#include "surgewall.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
	"unsafe"
)

// Outcome is how a guarded call ended, as the breaker counts it.
type Outcome int32

const (
	// Success counts as a success.
	Success Outcome = C.SURGEWALL_OUTCOME_SUCCESS
	// Failure counts as a failure.
	Failure Outcome = C.SURGEWALL_OUTCOME_FAILURE
	// Ignored releases the permit and counts nowhere (the result says nothing about the
	// dependency, e.g. the caller gave up).
	Ignored Outcome = C.SURGEWALL_OUTCOME_IGNORED
)

func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Ignored:
		return "ignored"
	}
	return fmt.Sprintf("Outcome(%d)", int32(o))
}

// DefaultClassifier is how a breaker classifies a call's error unless WithClassifier or
// WithIsFailure say otherwise: nil is a success, context.Canceled (the caller gave up) is
// ignored, any other error is a failure. context.DeadlineExceeded is a failure: a dependency
// too slow for the deadline is what a breaker is for.
func DefaultClassifier(err error) Outcome {
	switch {
	case err == nil:
		return Success
	case errors.Is(err, context.Canceled):
		return Ignored
	default:
		return Failure
	}
}

// Option configures an object at its construction. Every constructor has one shape: its
// required values as arguments (a name, a limit), then any number of Options for the rest,
// each of which keeps its documented default when it is not given. An Option says which
// kinds it applies to; a constructor given another kind's Option returns a *ConfigError
// naming it ("... is not an option of a bulkhead").
//
//	b, err := surgewall.NewBreaker("payments", surgewall.WithFailureRate(0.5))
//	bh, err := surgewall.NewBulkhead("db", 10, surgewall.WithMaxWait(100*time.Millisecond))
//	r, err := surgewall.NewRetry("fetch", surgewall.WithMaxAttempts(5))
type Option func(*settings)

// kind is a set of the kinds of objects an Option applies to.
type kind uint16

const (
	kindBreaker kind = 1 << iota
	kindKeyedBreaker
	kindRegistry
	kindBulkhead
	kindKeyedBulkhead
	kindRetry
	kindBudget
	kindSLO
	kindAdjuster
	kindAgent

	// breakerKinds: the options of a breaker, also a keyed breaker's and a registry's
	// template.
	breakerKinds = kindBreaker | kindKeyedBreaker | kindRegistry
)

// optionUse is one Option given to a constructor: its field and the kinds it applies to.
type optionUse struct {
	field string
	kinds kind
}

// opt makes an Option of field for kinds that applies f.
func opt(field string, kinds kind, f func(*settings)) Option {
	return func(s *settings) {
		s.used = append(s.used, optionUse{field, kinds})
		f(s)
	}
}

type settings struct {
	used []optionUse
	// Breakers. apply holds the per-breaker settings (thresholds, windows, waits); shared the
	// ones a keyed breaker has once for all its keys (clock, fallback payload), which an
	// override of a key may not set.
	apply, shared []func(*C.surgewall_breaker_config) C.surgewall_status
	clock         *MockClock
	classify      func(error) Outcome
	fallback      func(context.Context, error) error
	noFastPath    bool
	noTicker      bool // no clock ticker: WithoutClockTicker, WithClock, WithPreciseClock
	tickerOff     bool // WithoutClockTicker itself
	err           error

	// Values that other kinds read too (WithSeed, WithMinimumCalls).
	seed        uint64
	seedSet     bool
	minCalls    uint64
	minCallsSet bool
	keyed       keyedSettings
	bulkhead    bulkheadSettings
	retry       retrySettings
	slo         sloSettings
	bind        string
}

// collect applies opts to fresh settings.
func collect(opts []Option) settings {
	var s settings
	for _, o := range opts {
		if o != nil {
			o(&s)
		}
	}
	return s
}

// only returns the first error of the options: one that does not apply to k (what names
// the kind, "a bulkhead"), or one whose value was refused.
func (s *settings) only(k kind, what string) error {
	for _, u := range s.used {
		if u.kinds&k == 0 {
			return &ConfigError{Field: u.field, Message: "is not an option of " + what}
		}
	}
	return s.err
}

// config makes a library breaker configuration from apply (then shared, when withShared):
// the one option -> configuration path of NewBreaker and NewKeyedBreaker. The caller owns
// the result (a constructor consumes it). Callers keep s.clock alive until it is consumed.
func (s *settings) config(withShared bool, extra ...[]func(*C.surgewall_breaker_config) C.surgewall_status) (*C.surgewall_breaker_config, error) {
	if s.err != nil {
		return nil, s.err
	}
	var cfg *C.surgewall_breaker_config
	if st := C.surgewall_breaker_config_new(&cfg); st != C.SURGEWALL_OK {
		return nil, statusErr("breaker_config_new", st)
	}
	lists := append(extra, s.apply)
	if withShared {
		lists = append(lists, s.shared)
	}
	for _, l := range lists {
		for _, f := range l {
			if st := f(cfg); st != C.SURGEWALL_OK {
				C.surgewall_breaker_config_free(cfg)
				return nil, statusErr("breaker_config", st)
			}
		}
	}
	return cfg, nil
}

func (s *settings) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

func (s *settings) add(f func(*C.surgewall_breaker_config) C.surgewall_status) {
	s.apply = append(s.apply, f)
}

func (s *settings) addShared(f func(*C.surgewall_breaker_config) C.surgewall_status) {
	s.shared = append(s.shared, f)
}

// count checks a count option in Go: the C ABI takes uint32, so a negative or huge int must
// not wrap into a valid-looking value.
func (s *settings) count(field string, n int) (C.uint32_t, bool) {
	if n < 0 || uint64(n) > math.MaxUint32 {
		s.fail(&ConfigError{Field: field, Message: fmt.Sprintf("must be in [0, %d], got %d", uint32(math.MaxUint32), n)})
		return 0, false
	}
	return C.uint32_t(n), true
}

// WithFailureRate trips the breaker when the window's failure rate reaches threshold, in
// (0, 1]. Default 0.5.
func WithFailureRate(threshold float64) Option {
	return opt("failure_rate", breakerKinds, func(s *settings) {
		s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_failure_rate(c, C.double(threshold))
		})
	})
}

// WithoutFailureRate turns the failure-rate rule off (use consecutive failures or slow calls).
func WithoutFailureRate() Option {
	return opt("failure_rate", breakerKinds, func(s *settings) {
		s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_disable_failure_rate(c)
		})
	})
}

// WithMinimumCalls sets how many calls are needed before a rule acts: in a breaker's window
// before the rate rules apply (default 20); in an SLO tracker's long window before its pair
// may fire; in the breaker's window before a ThresholdAdjuster moves the threshold (default:
// the breaker's own minimum calls).
func WithMinimumCalls(n int) Option {
	return opt("minimum_calls", breakerKinds|kindSLO|kindAdjuster, func(s *settings) {
		if v, ok := s.count("minimum_calls", n); ok {
			s.minCalls, s.minCallsSet = uint64(n), true
			s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
				return C.surgewall_breaker_config_set_minimum_calls(c, v)
			})
		}
	})
}

// WithTimeWindow counts calls over the last d, in buckets buckets. Default 60 s, 10 buckets.
func WithTimeWindow(d time.Duration, buckets int) Option {
	return opt("window", breakerKinds, func(s *settings) {
		if v, ok := s.count("buckets", buckets); ok {
			s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
				return C.surgewall_breaker_config_set_time_window(c, durationNs(d), v)
			})
		}
	})
}

// WithCountWindow counts the last n calls.
func WithCountWindow(n int) Option {
	return opt("window", breakerKinds, func(s *settings) {
		if v, ok := s.count("count_window", n); ok {
			s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
				return C.surgewall_breaker_config_set_count_window(c, v)
			})
		}
	})
}

// WithOpenFor sets how long the breaker stays OPEN before probing. Default 5 s.
func WithOpenFor(d time.Duration) Option {
	return opt("open_for", breakerKinds, func(s *settings) {
		s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_open_for(c, durationNs(d))
		})
	})
}

// WithOpenBackoff grows the open wait by multiplier per consecutive opening, up to max, with
// jitter (a fraction in [0, 1]). It resets when the breaker closes.
func WithOpenBackoff(multiplier float64, max time.Duration, jitter float64) Option {
	return opt("open_backoff", breakerKinds, func(s *settings) {
		s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_open_backoff(c, C.double(multiplier), durationNs(max), C.double(jitter))
		})
	})
}

// WithHalfOpenCalls sets how many probes a HALF_OPEN episode admits. Default 3.
func WithHalfOpenCalls(n int) Option {
	return opt("half_open_calls", breakerKinds, func(s *settings) {
		if v, ok := s.count("half_open_calls", n); ok {
			s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
				return C.surgewall_breaker_config_set_half_open_calls(c, v)
			})
		}
	})
}

// WithHalfOpenMaxDuration sets how long a HALF_OPEN episode waits for its probes before it
// reopens (so a lost probe never leaves the breaker stuck). Default 60 s.
func WithHalfOpenMaxDuration(d time.Duration) Option {
	return opt("half_open_max_duration", breakerKinds, func(s *settings) {
		s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_half_open_max_duration(c, durationNs(d))
		})
	})
}

// WithSlowCalls counts calls of d or more as slow and trips when the slow rate reaches
// threshold. The breaker then times each call itself, which costs a second cgo crossing per
// call (see WithTimeCalls).
func WithSlowCalls(threshold float64, d time.Duration) Option {
	return opt("slow_calls", breakerKinds, func(s *settings) {
		s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_slow_calls(c, C.double(threshold), durationNs(d))
		})
	})
}

// WithTimeCalls says whether the breaker times calls itself (default: on when slow calls are
// configured). Turn it off when you report durations yourself with Permit.RecordDuration.
func WithTimeCalls(on bool) Option {
	return opt("time_calls", breakerKinds, func(s *settings) {
		s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_time_calls(c, C.bool(on))
		})
	})
}

// WithConsecutiveFailures trips the breaker on the n-th consecutive failure.
func WithConsecutiveFailures(n int) Option {
	return opt("consecutive_failures", breakerKinds, func(s *settings) {
		if v, ok := s.count("consecutive_failures", n); ok {
			s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
				return C.surgewall_breaker_config_set_consecutive_failures(c, v)
			})
		}
	})
}

// WithSeed seeds the jitter of a breaker's open wait or of a retry's delays (deterministic
// tests; default: random).
func WithSeed(seed uint64) Option {
	return opt("seed", breakerKinds|kindRetry, func(s *settings) {
		s.seed, s.seedSet = seed, true
		s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_seed(c, C.uint64_t(seed))
		})
	})
}

// WithClock drives the object with a mock clock (tests): a breaker, a keyed breaker (its
// Sweep too), a keyed bulkhead's idle eviction, a retry's schedule, a retry budget's window
// or an SLO tracker's windows.
func WithClock(clock *MockClock) Option {
	return opt("clock", breakerKinds|kindKeyedBulkhead|kindRetry|kindBudget|kindSLO, func(s *settings) {
		if clock == nil {
			s.fail(&ConfigError{Field: "clock", Message: "nil MockClock"})
			return
		}
		s.clock = clock
		s.noTicker = true
		s.addShared(func(c *C.surgewall_breaker_config) C.surgewall_status {
			h, err := clock.handle()
			if err != nil {
				return C.SURGEWALL_INVALID_HANDLE
			}
			return C.surgewall_breaker_config_set_mock_clock(c, h)
		})
	})
}

// WithPreciseClock reads the time precisely on every call instead of the coarse clock.
func WithPreciseClock() Option {
	return opt("precise_clock", breakerKinds, func(s *settings) {
		s.noTicker = true
		s.addShared(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_precise_clock(c)
		})
	})
}

// WithFallbackPayload stores a static payload in the breaker (copied), for callers that serve
// it when the breaker rejects (see Breaker.FallbackPayload); the agent and other languages
// see it too.
func WithFallbackPayload(contentType string, body []byte) Option {
	return opt("fallback_payload", breakerKinds, func(s *settings) {
		s.addShared(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_fallback(c,
				(*C.uint8_t)(unsafe.Pointer(unsafe.StringData(contentType))), C.size_t(len(contentType)),
				(*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(body))), C.size_t(len(body)))
		})
	})
}

// WithFallback makes Execute and Call run fallback when the breaker rejects a call: its
// result is returned instead of the *RejectedError (which it receives).
func WithFallback(fallback func(ctx context.Context, err error) error) Option {
	return opt("fallback", breakerKinds, func(s *settings) { s.fallback = fallback })
}

// WithClassifier decides how a call's error counts (default DefaultClassifier). A nil error
// is always a success.
func WithClassifier(classify func(err error) Outcome) Option {
	return opt("classifier", breakerKinds, func(s *settings) { s.classify = classify })
}

// WithIsFailure decides which non-nil errors count as failures (the others count as
// successes); context.Canceled stays ignored.
func WithIsFailure(isFailure func(err error) bool) Option {
	return opt("classifier", breakerKinds, func(s *settings) {
		if isFailure == nil {
			s.classify = nil
			return
		}
		s.classify = func(err error) Outcome {
			switch {
			case errors.Is(err, context.Canceled):
				return Ignored
			case isFailure(err):
				return Failure
			default:
				return Success
			}
		}
	})
}

// WithoutFastPath makes every call ask the library for its permit (two cgo crossings per
// call instead of one). The default reads the breaker's state word from Go and builds the
// permit itself when the breaker admits without bookkeeping; this option exists to compare
// the two designs and to rule the fast path out when debugging.
func WithoutFastPath() Option {
	return opt("fast_path", breakerKinds, func(s *settings) { s.noFastPath = true })
}

// WithoutClockTicker keeps this breaker from joining the shared clock ticker (see
// StartClockTicker). By default a breaker on the coarse clock keeps one goroutine refreshing
// it every millisecond while the breaker is open for business (until Close or collection):
// each call then reads a ~1 ns timestamp instead of a precise clock (~25 ns). Without a
// ticker the breaker works the same, a little slower per call.
func WithoutClockTicker() Option {
	return opt("clock_ticker", breakerKinds, func(s *settings) { s.noTicker, s.tickerOff = true, true })
}

// keyedSettings are the options of the keyed kinds (KeyedBreaker, KeyedBulkhead) and of a
// BreakerRegistry.
type keyedSettings struct {
	maxKeys        int
	maxKeysSet     bool
	sharedOverflow bool
	idleTTL        time.Duration
	idleTTLSet     bool
	overrides      []keyedOverride
}

// keyedOverride is one key's options on top of the template.
type keyedOverride struct {
	opts  []Option
	key   string
	key64 uint64
	isStr bool
}

// WithMaxKeys caps the keys a KeyedBreaker, a KeyedBulkhead or a BreakerRegistry holds
// (>= 1). A new key beyond it is refused with a *RegistryFullError (ErrRegistryFull), or,
// with WithSharedOverflow, shares one overflow entry with every other key beyond the cap.
// Default: 10 000 for the keyed kinds, no cap for a BreakerRegistry.
func WithMaxKeys(n int) Option {
	return opt("max_keys", kindKeyedBreaker|kindKeyedBulkhead|kindRegistry, func(s *settings) {
		if n < 1 {
			s.fail(&ConfigError{Field: "max_keys", Message: fmt.Sprintf("must be >= 1, got %d", n)})
			return
		}
		s.keyed.maxKeys, s.keyed.maxKeysSet = n, true
	})
}

// WithSharedOverflow makes the keys beyond WithMaxKeys share one overflow entry (a keyed
// breaker's under OverflowKey) instead of being refused. It needs WithMaxKeys.
func WithSharedOverflow() Option {
	return opt("shared_overflow", kindKeyedBreaker|kindKeyedBulkhead, func(s *settings) {
		s.keyed.sharedOverflow = true
	})
}

// WithIdleTTL: Sweep evicts keys idle that long (a KeyedBreaker's CLOSED keys only; a
// KeyedBulkhead's keys without calls in flight). Default 10 minutes.
func WithIdleTTL(d time.Duration) Option {
	return opt("idle_ttl", kindKeyedBreaker|kindKeyedBulkhead, func(s *settings) {
		s.keyed.idleTTL, s.keyed.idleTTLSet = d, true
	})
}

// WithOverride configures one string key of a KeyedBreaker or a BreakerRegistry differently:
// its options are applied on top of the template's, so only what they set differs (a later
// override of the same key replaces an earlier one). A KeyedBreaker's override may not set
// what it has once for all keys: the clock (WithClock, WithPreciseClock), the fallbacks
// (WithFallback, WithFallbackPayload), the classifier (WithClassifier, WithIsFailure),
// WithoutFastPath and WithoutClockTicker.
func WithOverride(key string, opts ...Option) Option {
	return opt("override", kindKeyedBreaker|kindRegistry, func(s *settings) {
		s.keyed.override(keyedOverride{opts: opts, key: key, isStr: true})
	})
}

// WithOverrideUint64 is WithOverride for a KeyedBreaker's uint64 key.
func WithOverrideUint64(key uint64, opts ...Option) Option {
	return opt("override", kindKeyedBreaker, func(s *settings) {
		s.keyed.override(keyedOverride{opts: opts, key64: key})
	})
}

func (k *keyedSettings) override(o keyedOverride) {
	for i, old := range k.overrides {
		if old.isStr == o.isStr && old.key == o.key && old.key64 == o.key64 {
			k.overrides[i] = o
			return
		}
	}
	k.overrides = append(k.overrides, o)
}

// overflow checks that WithSharedOverflow comes with WithMaxKeys.
func (k *keyedSettings) overflow() error {
	if k.sharedOverflow && !k.maxKeysSet {
		return &ConfigError{Field: "max_keys", Message: "WithSharedOverflow needs WithMaxKeys to overflow"}
	}
	return nil
}
