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

// Option configures a Breaker (see NewBreaker).
type Option func(*settings)

type settings struct {
	// apply holds the per-breaker settings (thresholds, windows, waits); shared the ones a
	// keyed breaker has once for all its keys (clock, fallback payload), which an override
	// of a key may not set.
	apply, shared []func(*C.surgewall_breaker_config) C.surgewall_status
	clock         *MockClock
	classify      func(error) Outcome
	fallback      func(context.Context, error) error
	noFastPath    bool
	noTicker      bool // no clock ticker: WithoutClockTicker, WithClock, WithPreciseClock
	tickerOff     bool // WithoutClockTicker itself
	err           error
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
	return func(s *settings) {
		s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_failure_rate(c, C.double(threshold))
		})
	}
}

// WithoutFailureRate turns the failure-rate rule off (use consecutive failures or slow calls).
func WithoutFailureRate() Option {
	return func(s *settings) {
		s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_disable_failure_rate(c)
		})
	}
}

// WithMinimumCalls sets how many calls the window needs before the rate rules apply.
// Default 20.
func WithMinimumCalls(n int) Option {
	return func(s *settings) {
		if v, ok := s.count("minimum_calls", n); ok {
			s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
				return C.surgewall_breaker_config_set_minimum_calls(c, v)
			})
		}
	}
}

// WithTimeWindow counts calls over the last d, in buckets buckets. Default 60 s, 10 buckets.
func WithTimeWindow(d time.Duration, buckets int) Option {
	return func(s *settings) {
		if v, ok := s.count("buckets", buckets); ok {
			s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
				return C.surgewall_breaker_config_set_time_window(c, durationNs(d), v)
			})
		}
	}
}

// WithCountWindow counts the last n calls.
func WithCountWindow(n int) Option {
	return func(s *settings) {
		if v, ok := s.count("count_window", n); ok {
			s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
				return C.surgewall_breaker_config_set_count_window(c, v)
			})
		}
	}
}

// WithOpenFor sets how long the breaker stays OPEN before probing. Default 5 s.
func WithOpenFor(d time.Duration) Option {
	return func(s *settings) {
		s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_open_for(c, durationNs(d))
		})
	}
}

// WithOpenBackoff grows the open wait by multiplier per consecutive opening, up to max, with
// jitter (a fraction in [0, 1]). It resets when the breaker closes.
func WithOpenBackoff(multiplier float64, max time.Duration, jitter float64) Option {
	return func(s *settings) {
		s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_open_backoff(c, C.double(multiplier), durationNs(max), C.double(jitter))
		})
	}
}

// WithHalfOpenCalls sets how many probes a HALF_OPEN episode admits. Default 3.
func WithHalfOpenCalls(n int) Option {
	return func(s *settings) {
		if v, ok := s.count("half_open_calls", n); ok {
			s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
				return C.surgewall_breaker_config_set_half_open_calls(c, v)
			})
		}
	}
}

// WithHalfOpenMaxDuration sets how long a HALF_OPEN episode waits for its probes before it
// reopens (so a lost probe never leaves the breaker stuck). Default 60 s.
func WithHalfOpenMaxDuration(d time.Duration) Option {
	return func(s *settings) {
		s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_half_open_max_duration(c, durationNs(d))
		})
	}
}

// WithSlowCalls counts calls of d or more as slow and trips when the slow rate reaches
// threshold. The breaker then times each call itself, which costs a second cgo crossing per
// call (see WithTimeCalls).
func WithSlowCalls(threshold float64, d time.Duration) Option {
	return func(s *settings) {
		s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_slow_calls(c, C.double(threshold), durationNs(d))
		})
	}
}

// WithTimeCalls says whether the breaker times calls itself (default: on when slow calls are
// configured). Turn it off when you report durations yourself with Permit.RecordDuration.
func WithTimeCalls(on bool) Option {
	return func(s *settings) {
		s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_time_calls(c, C.bool(on))
		})
	}
}

// WithConsecutiveFailures trips the breaker on the n-th consecutive failure.
func WithConsecutiveFailures(n int) Option {
	return func(s *settings) {
		if v, ok := s.count("consecutive_failures", n); ok {
			s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
				return C.surgewall_breaker_config_set_consecutive_failures(c, v)
			})
		}
	}
}

// WithSeed seeds the jitter of the open wait (deterministic tests).
func WithSeed(seed uint64) Option {
	return func(s *settings) {
		s.add(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_seed(c, C.uint64_t(seed))
		})
	}
}

// WithClock drives the breaker with a mock clock (tests).
func WithClock(clock *MockClock) Option {
	return func(s *settings) {
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
	}
}

// WithPreciseClock reads the time precisely on every call instead of the coarse clock.
func WithPreciseClock() Option {
	return func(s *settings) {
		s.noTicker = true
		s.addShared(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_precise_clock(c)
		})
	}
}

// WithFallbackPayload stores a static payload in the breaker (copied), for callers that serve
// it when the breaker rejects (see Breaker.FallbackPayload); the agent and other languages
// see it too.
func WithFallbackPayload(contentType string, body []byte) Option {
	return func(s *settings) {
		s.addShared(func(c *C.surgewall_breaker_config) C.surgewall_status {
			return C.surgewall_breaker_config_set_fallback(c,
				(*C.uint8_t)(unsafe.Pointer(unsafe.StringData(contentType))), C.size_t(len(contentType)),
				(*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(body))), C.size_t(len(body)))
		})
	}
}

// WithFallback makes Execute and Call run fallback when the breaker rejects a call: its
// result is returned instead of the *RejectedError (which it receives).
func WithFallback(fallback func(ctx context.Context, err error) error) Option {
	return func(s *settings) { s.fallback = fallback }
}

// WithClassifier decides how a call's error counts (default DefaultClassifier). A nil error
// is always a success.
func WithClassifier(classify func(err error) Outcome) Option {
	return func(s *settings) { s.classify = classify }
}

// WithIsFailure decides which non-nil errors count as failures (the others count as
// successes); context.Canceled stays ignored.
func WithIsFailure(isFailure func(err error) bool) Option {
	return func(s *settings) {
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
	}
}

// WithoutFastPath makes every call ask the library for its permit (two cgo crossings per
// call instead of one). The default reads the breaker's state word from Go and builds the
// permit itself when the breaker admits without bookkeeping; this option exists to compare
// the two designs and to rule the fast path out when debugging.
func WithoutFastPath() Option {
	return func(s *settings) { s.noFastPath = true }
}

// WithoutClockTicker keeps this breaker from joining the shared clock ticker (see
// StartClockTicker). By default a breaker on the coarse clock keeps one goroutine refreshing
// it every millisecond while the breaker is open for business (until Close or collection):
// each call then reads a ~1 ns timestamp instead of a precise clock (~25 ns). Without a
// ticker the breaker works the same, a little slower per call.
func WithoutClockTicker() Option {
	return func(s *settings) { s.noTicker, s.tickerOff = true, true }
}
