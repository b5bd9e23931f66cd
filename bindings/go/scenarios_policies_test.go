package surgewall

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The SLO, retry, budget and threshold commands of the shared scenarios (issue 17; grammar
// at the top of bindings/scenarios.txt), on the scenario's breaker and mock clock.

type scenarioPolicies struct {
	clock   *MockClock
	breaker *Breaker
	slo     *SLO
	retry   *Retry
	// the last retry command's words (a guarded run_retry rebuilds the policy with a Sleep)
	retryWords []string
	slept      []time.Duration
	ra         time.Duration // the next run_retry's Retry-After; negative: none
	budget     *RetryBudget
	bulk       *Bulkhead
}

func scenarioFloat(t *testing.T, v string) float64 {
	t.Helper()
	x, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("bad number %q", v)
	}
	return x
}

func (p *scenarioPolicies) newSLO(t *testing.T, words []string) (*SLO, error) {
	m := kvs(words)
	pair := func(v string) *BurnPair {
		f := strings.Split(v, "/")
		return &BurnPair{Long: msDur(t, f[0]), Short: msDur(t, f[1]), Threshold: scenarioFloat(t, f[2])}
	}
	cfg := []Option{WithObjective(scenarioFloat(t, m["objective"])), WithObjectiveWindow(msDur(t, m["window_ms"])), WithFastBurn(*pair(m["fast"])), WithSlowBurn(*pair(m["slow"])), WithClock(p.clock)}
	if v, ok := m["burn_bucket_ms"]; ok {
		cfg = append(cfg, WithBurnBucket(msDur(t, v)))
	}
	if v, ok := m["recovery"]; ok {
		cfg = append(cfg, WithRecoveryFactor(scenarioFloat(t, v)))
	}
	if v, ok := m["min_open_ms"]; ok {
		cfg = append(cfg, WithMinOpen(msDur(t, v)))
	}
	if _, ok := m["link"]; ok {
		cfg = append(cfg, WithHeldBreaker(p.breaker))
	}
	return NewSLO("", cfg...)
}

// newRetry makes the scenario's retry policy: a key left out is not set, so the library's
// default applies. No Sleep: the retry waits by advancing the mock clock itself (issue 16),
// and run_retry reads the delays off the clock between attempts.
func (p *scenarioPolicies) newRetry(t *testing.T, words []string, sleep func(context.Context, time.Duration) error) (*Retry, error) {
	m := kvs(words)
	cfg := []Option{WithJitter(JitterNone), WithClock(p.clock),
		WithRetryAfter(func(error) (time.Duration, bool) { return p.ra, p.ra >= 0 })}
	if sleep != nil {
		cfg = append(cfg, WithSleep(sleep))
	}
	if v, ok := m["max_attempts"]; ok {
		cfg = append(cfg, WithMaxAttempts(atoi(t, v)))
	}
	f := strings.Split(m["backoff"], ":")
	switch f[0] {
	case "":
	case "none":
		cfg = append(cfg, WithBackoff(NoBackoff()))
	case "constant":
		cfg = append(cfg, WithBackoff(Constant(msDur(t, f[1]))))
	case "linear":
		cfg = append(cfg, WithBackoff(Linear(msDur(t, f[1]), msDur(t, f[2]))))
	case "exponential":
		cfg = append(cfg, WithBackoff(Exponential(msDur(t, f[1]), scenarioFloat(t, f[2]))))
	default:
		t.Fatalf("unknown backoff %q", m["backoff"])
	}
	if v, ok := m["max_delay_ms"]; ok {
		cfg = append(cfg, WithMaxDelay(msDur(t, v)))
	}
	if v, ok := m["max_elapsed_ms"]; ok {
		cfg = append(cfg, WithMaxElapsed(msDur(t, v)))
	}
	if v, ok := m["max_retry_after_ms"]; ok {
		cfg = append(cfg, WithMaxRetryAfter(msDur(t, v)))
	}
	return NewRetry("", cfg...)
}

// expectRefused fails the test unless err is a *ConfigError naming field (the *_refused commands).
func expectRefused(t *testing.T, at string, err error, field string) {
	t.Helper()
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != field {
		t.Fatalf("%s: got %v, want a ConfigError naming %s", at, err, field)
	}
}

// step runs one policy command; false when w is not one.
func (p *scenarioPolicies) step(t *testing.T, w []string, at string) bool {
	m := kvs(w[1:])
	var err error
	switch w[0] {
	case "slo":
		if p.slo != nil {
			p.slo.Close()
		}
		if p.slo, err = p.newSLO(t, w[1:]); err != nil {
			t.Fatalf("%s: %v", at, err)
		}
	case "slo_refused":
		_, err := p.newSLO(t, w[2:])
		expectRefused(t, at, err, w[1])
	case "record":
		rounds := 1
		for _, x := range w[1:] {
			if strings.HasPrefix(x, "x") {
				rounds = atoi(t, x[1:])
			}
		}
		n := func(k string) int {
			if v, ok := m[k]; ok {
				return atoi(t, v)
			}
			return 0
		}
		for i := 0; i < rounds; i++ {
			for j := 0; j < n("good"); j++ {
				err = errors.Join(err, p.slo.Record(true))
			}
			for j := 0; j < n("bad"); j++ {
				err = errors.Join(err, p.slo.Record(false))
			}
			if v, ok := m["every_ms"]; ok {
				p.clock.Advance(msDur(t, v))
			}
		}
	case "tick":
		_, err = p.slo.Tick()
	case "expect_slo":
		s := p.slo.Metrics()
		got := map[string]string{
			"fast_long_calls":  strconv.FormatUint(s.Fast.LongCalls, 10),
			"fast_short_calls": strconv.FormatUint(s.Fast.ShortCalls, 10),
			"fast_burning":     strconv.FormatBool(s.Fast.Burning),
			"slow_burning":     strconv.FormatBool(s.Slow.Burning),
			"holding_breaker":  strconv.FormatBool(s.HoldingBreaker),
			"burn_bucket_ms":   strconv.FormatInt(s.BurnBucket.Milliseconds(), 10),
		}
		for k, v := range m {
			g, ok := got[k]
			if !ok || g != v {
				t.Fatalf("%s: %s = %s, want %s", at, k, g, v)
			}
		}
	case "retry":
		if p.retry != nil {
			p.retry.Close()
		}
		p.retryWords = w[1:]
		if p.retry, err = p.newRetry(t, w[1:], nil); err != nil {
			t.Fatalf("%s: %v", at, err)
		}
	case "retry_refused":
		_, err := p.newRetry(t, w[2:], nil)
		expectRefused(t, at, err, w[1])
	case "run_retry":
		p.slept = p.slept[:0]
		p.ra = -1
		if v, ok := m["retry_after_ms"]; ok {
			p.ra = msDur(t, v)
		}
		var err error
		if m["guarded"] == "true" {
			// Each attempt through the breaker, aware of it. Its waits for the breaker never
			// call the attempt, so they are read through a Sleep that records and advances
			// the clock (the unguarded runs check that the clock alone drives the waits).
			r, rerr := p.newRetry(t, p.retryWords, func(_ context.Context, d time.Duration) error {
				p.slept = append(p.slept, d)
				p.clock.Advance(d)
				return nil
			})
			if rerr != nil {
				t.Fatalf("%s: %v", at, rerr)
			}
			err = r.DoWith(context.Background(), p.breaker, func(context.Context) error { return errScenarioFailure })
			r.Close()
		} else {
			last := time.Duration(-1)
			err = p.retry.Do(context.Background(), func(context.Context) error {
				now := p.clock.Now()
				if last >= 0 {
					p.slept = append(p.slept, now-last)
				}
				last = now
				return errScenarioFailure
			})
		}
		var re *RetryError
		if !errors.As(err, &re) {
			t.Fatalf("%s: got %v, want a RetryError", at, err)
		}
		delays := make([]string, len(p.slept))
		for i, d := range p.slept {
			delays[i] = strconv.FormatInt(d.Milliseconds(), 10)
		}
		if got := strings.Join(delays, ","); got != m["delays"] || re.Reason.String() != m["stop"] {
			t.Fatalf("%s: delays %s, stop %v", at, got, re.Reason)
		}
		return true
	case "preview_retry":
		got := p.retry.Preview(0)
		delays := make([]string, len(got))
		for i, d := range got {
			delays[i] = strconv.FormatInt(d.Milliseconds(), 10)
		}
		if s := strings.Join(delays, ","); s != m["delays"] {
			t.Fatalf("%s: delays %s, want %s", at, s, m["delays"])
		}
	case "bulkhead":
		if p.bulk != nil {
			p.bulk.Close()
		}
		p.bulk, err = NewBulkhead("scenario", atoi(t, m["max"]))
	case "bulkhead_take":
		err = p.bulk.TryAcquire()
		if len(w) >= 3 && w[2] == "full" {
			if !errors.Is(err, ErrBulkheadFull) {
				t.Fatalf("%s: got %v, want full", at, err)
			}
			err = nil
		}
	case "bulkhead_release":
		err = p.bulk.Release()
	case "bulkhead_resize":
		_, err = p.bulk.SetMaxConcurrent(atoi(t, w[1]))
		if len(w) >= 4 && w[3] == "refused" {
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != "max_concurrent" {
				t.Fatalf("%s: got %v, want a ConfigError naming max_concurrent", at, err)
			}
			err = nil
		}
	case "expect_bulkhead":
		s := p.bulk.Metrics()
		got := map[string]uint64{"active": s.Active, "max_concurrent": s.MaxConcurrent,
			"accepted": s.Accepted, "rejected": s.Rejected}
		for k, v := range m {
			g, ok := got[k]
			if !ok || strconv.FormatUint(g, 10) != v {
				t.Fatalf("%s: %s = %d, want %s", at, k, g, v)
			}
		}
	case "budget":
		if p.budget != nil {
			p.budget.Close()
		}
		window := time.Duration(atoi(t, m["window_s"])) * time.Second
		p.budget, err = NewRetryBudget(scenarioFloat(t, m["ratio"]), scenarioFloat(t, m["floor"]), window, WithClock(p.clock))
	case "try_retry":
		granted := 0
		for i := 0; i < atoi(t, w[1][1:]); i++ {
			if p.budget.TryRetry() == nil {
				granted++
			}
		}
		if strconv.Itoa(granted) != m["granted"] {
			t.Fatalf("%s: %d granted", at, granted)
		}
	case "threshold_refused":
		o := kvs(w[2:])
		_, err := NewThresholdAdjuster(p.breaker, scenarioFloat(t, o["target"]), scenarioFloat(t, o["min"]), scenarioFloat(t, o["max"]), scenarioFloat(t, o["step"]))
		expectRefused(t, at, err, w[1])
	default:
		return false
	}
	if err != nil {
		t.Fatalf("%s: %v", at, err)
	}
	return true
}

func (p *scenarioPolicies) close() {
	if p.slo != nil {
		p.slo.Close()
	}
	if p.retry != nil {
		p.retry.Close()
	}
	if p.budget != nil {
		p.budget.Close()
	}
	if p.bulk != nil {
		p.bulk.Close()
	}
}
