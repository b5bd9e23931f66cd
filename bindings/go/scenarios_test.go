package surgewall

import (
	"bufio"
	"context"
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The shared semantic scenarios (bindings/scenarios.txt, grammar at its top): the same
// sequences must give the same states here as in the Rust runner (core/tests/scenarios.rs).
// `call` without a duration goes through Execute (the one-crossing fast path); everything
// else through Acquire and the permit methods.

type scenario struct {
	name  string
	lines []scenarioLine
}

type scenarioLine struct {
	no    int
	words []string
}

func loadScenarios(t *testing.T) []scenario {
	t.Helper()
	f, err := os.Open("../scenarios.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []scenario
	var cur *scenario
	sc := bufio.NewScanner(f)
	for no := 1; sc.Scan(); no++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		words := strings.Fields(line)
		switch {
		case len(words) == 0:
		case words[0] == "scenario":
			out = append(out, scenario{name: words[1]})
			cur = &out[len(out)-1]
		case words[0] == "end":
			cur = nil
		case cur == nil:
			t.Fatalf("scenarios.txt:%d: command outside a scenario", no)
		default:
			cur.lines = append(cur.lines, scenarioLine{no, words})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func kvs(words []string) map[string]string {
	m := map[string]string{}
	for _, w := range words {
		k, v, _ := strings.Cut(w, "=")
		m[k] = v
	}
	return m
}

func msDur(t *testing.T, v string) time.Duration {
	t.Helper()
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("bad ms %q", v)
	}
	return time.Duration(n) * time.Millisecond
}

func atoi(t *testing.T, v string) int {
	t.Helper()
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("bad int %q", v)
	}
	return n
}

func scenarioOptions(t *testing.T, clock *MockClock, words []string) []Option {
	m := kvs(words)
	opts := []Option{WithClock(clock)}
	f := func(k string) float64 {
		x, err := strconv.ParseFloat(m[k], 64)
		if err != nil {
			t.Fatalf("bad %s", k)
		}
		return x
	}
	if _, ok := m["failure_rate"]; ok {
		opts = append(opts, WithFailureRate(f("failure_rate")))
	}
	if _, ok := m["no_failure_rate"]; ok {
		opts = append(opts, WithoutFailureRate())
	}
	if _, ok := m["slow_rate"]; ok {
		opts = append(opts, WithSlowCalls(f("slow_rate"), msDur(t, m["slow_ms"])))
	}
	if v, ok := m["consecutive_failures"]; ok {
		opts = append(opts, WithConsecutiveFailures(atoi(t, v)))
	}
	if v, ok := m["minimum_calls"]; ok {
		opts = append(opts, WithMinimumCalls(atoi(t, v)))
	}
	if v, ok := m["count_window"]; ok {
		opts = append(opts, WithCountWindow(atoi(t, v)))
	}
	if v, ok := m["time_window_ms"]; ok {
		opts = append(opts, WithTimeWindow(msDur(t, v), atoi(t, m["buckets"])))
	}
	if v, ok := m["open_for_ms"]; ok {
		opts = append(opts, WithOpenFor(msDur(t, v)))
	}
	if _, ok := m["backoff"]; ok {
		opts = append(opts, WithOpenBackoff(f("backoff"), msDur(t, m["max_open_ms"]), 0))
	}
	if v, ok := m["half_open_calls"]; ok {
		opts = append(opts, WithHalfOpenCalls(atoi(t, v)))
	}
	if v, ok := m["half_open_max_ms"]; ok {
		opts = append(opts, WithHalfOpenMaxDuration(msDur(t, v)))
	}
	return opts
}

var errScenarioFailure = errors.New("scenario failure")

func outcomeOf(t *testing.T, w string) Outcome {
	switch w {
	case "success":
		return Success
	case "failure":
		return Failure
	case "ignored":
		return Ignored
	}
	t.Fatalf("bad outcome %q", w)
	return 0
}

// errFor is what a guarded function returns to be classified as o by the default classifier.
func errFor(o Outcome) error {
	switch o {
	case Failure:
		return errScenarioFailure
	case Ignored:
		return context.Canceled
	}
	return nil
}

func metricValue(t *testing.T, m Metrics, key string) string {
	switch key {
	case "state":
		return m.State.String()
	case "generation":
		return strconv.FormatUint(m.Generation, 10)
	case "successes":
		return strconv.FormatUint(m.Successes, 10)
	case "failures":
		return strconv.FormatUint(m.Failures, 10)
	case "ignored":
		return strconv.FormatUint(m.Ignored, 10)
	case "slow":
		return strconv.FormatUint(m.SlowCalls, 10)
	case "rejected_open":
		return strconv.FormatUint(m.RejectedOpen, 10)
	case "rejected_half_open":
		return strconv.FormatUint(m.RejectedHalfOpen, 10)
	case "late":
		return strconv.FormatUint(m.LateResults, 10)
	case "window_calls":
		return strconv.FormatUint(m.Window.Calls, 10)
	case "window_failures":
		return strconv.FormatUint(m.Window.Failures, 10)
	case "consecutive_opens":
		return strconv.FormatUint(m.ConsecutiveOpens, 10)
	case "last_window_calls":
		return strconv.FormatUint(m.LastWindow.Calls, 10)
	case "last_window_failures":
		return strconv.FormatUint(m.LastWindow.Failures, 10)
	case "minimum_calls":
		return strconv.FormatUint(m.MinimumCalls, 10)
	case "transitions":
		var n uint64
		for _, row := range m.Transitions {
			for _, c := range row {
				n += c
			}
		}
		return strconv.FormatUint(n, 10)
	case "retry_after_ms":
		return strconv.FormatInt(m.RetryAfter.Milliseconds(), 10)
	}
	t.Fatalf("unknown expect key %q", key)
	return ""
}

// checkRate compares a window's failure rate with `absent` (NaN) or a number within 1e-9.
func checkRate(t *testing.T, at string, m Metrics, key, want string) {
	t.Helper()
	w := m.Window
	if key == "last_failure_rate" {
		w = m.LastWindow
	}
	rate, _, ok := w.Rates()
	if want == "absent" {
		if ok {
			t.Fatalf("%s = %v, want absent", at, rate)
		}
		return
	}
	f, err := strconv.ParseFloat(want, 64)
	if err != nil || !ok || math.Abs(rate-f) > 1e-9 {
		t.Fatalf("%s = %v (present %v), want %s", at, rate, ok, want)
	}
}

func TestSharedScenarios(t *testing.T) {
	scenarios := loadScenarios(t)
	if len(scenarios) < 10 {
		t.Fatalf("only %d scenarios parsed", len(scenarios))
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { runScenario(t, sc) })
	}
}

func runScenario(t *testing.T, sc scenario) {
	clock := NewMockClock()
	defer clock.Close()
	if len(sc.lines) == 0 || sc.lines[0].words[0] != "config" {
		t.Fatal("a scenario starts with config")
	}
	b, err := NewBreaker(sc.name, scenarioOptions(t, clock, sc.lines[0].words[1:])...)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pol := &scenarioPolicies{clock: clock, breaker: b}
	defer pol.close()
	held := map[string]Permit{}
	ctx := context.Background()
	for _, l := range sc.lines[1:] {
		w := l.words
		at := "scenarios.txt:" + strconv.Itoa(l.no) + ": " + strings.Join(w, " ")
		if pol.step(t, w, at) {
			continue
		}
		switch w[0] {
		case "call":
			o := outcomeOf(t, w[1])
			n, dur := 1, time.Duration(-1)
			for _, x := range w[2:] {
				switch {
				case strings.HasPrefix(x, "x"):
					n = atoi(t, x[1:])
				case strings.HasPrefix(x, "ms="):
					dur = msDur(t, x[3:])
				}
			}
			for i := 0; i < n; i++ {
				if dur >= 0 {
					p, err := b.Acquire()
					if err != nil {
						t.Fatalf("%s: not admitted: %v", at, err)
					}
					if err := p.RecordDuration(o, dur); err != nil {
						t.Fatalf("%s: record: %v", at, err)
					}
					continue
				}
				called := false
				err := b.Execute(ctx, func(context.Context) error { called = true; return errFor(o) })
				if !called || errors.Is(err, ErrOpen) {
					t.Fatalf("%s: not admitted: %v", at, err)
				}
			}
		case "reject":
			_, err := b.Acquire()
			// Every rejection matches ErrOpen; the state (and its sentinel) says which.
			want := map[string]State{"open": StateOpen, "half_open": StateHalfOpen, "forced_open": StateForcedOpen}[w[1]]
			var re *RejectedError
			if !errors.As(err, &re) || !errors.Is(err, ErrOpen) || re.State != want || re.State.String() != w[1] ||
				errors.Is(err, ErrHalfOpenFull) != (want == StateHalfOpen) || errors.Is(err, ErrForcedOpen) != (want == StateForcedOpen) {
				t.Fatalf("%s: got %v, want %v", at, err, want)
			}
			if v, ok := kvs(w[2:])["retry_after_ms"]; ok && re.RetryAfter != msDur(t, v) {
				t.Fatalf("%s: retry after %v, want %s ms", at, re.RetryAfter, v)
			}
		case "hold":
			p, err := b.Acquire()
			if err != nil {
				t.Fatalf("%s: not admitted: %v", at, err)
			}
			held[w[1]] = p
		case "release":
			p, ok := held[w[1]]
			if !ok {
				t.Fatalf("%s: no permit %s", at, w[1])
			}
			err := p.Record(outcomeOf(t, w[2]))
			want := "counted"
			if len(w) >= 5 && w[3] == "->" {
				want = w[4]
			}
			switch want {
			case "counted":
				if err != nil {
					t.Fatalf("%s: %v", at, err)
				}
			case "late":
				if !errors.Is(err, ErrLateResult) {
					t.Fatalf("%s: got %v, want late", at, err)
				}
			case "unexpected":
				if !errors.Is(err, ErrUnexpectedResult) {
					t.Fatalf("%s: got %v, want unexpected", at, err)
				}
			default:
				t.Fatalf("%s: unknown result", at)
			}
		case "advance":
			clock.Advance(msDur(t, w[1]))
		case "force_open":
			if len(w) > 1 {
				err = b.ForceOpen(msDur(t, w[1]))
			} else {
				err = b.ForceOpen(Forever)
			}
		case "reset":
			err = b.Reset()
		case "disable":
			err = b.Disable()
		case "metrics_only":
			err = b.MetricsOnly()
		case "close":
			err = b.TransitionToClosed()
		case "open":
			err = b.TransitionToOpen()
		case "half_open":
			err = b.TransitionToHalfOpen()
			refused := len(w) >= 3 && w[2] == "refused"
			if refused != errors.Is(err, ErrInvalidTransition) {
				t.Fatalf("%s: got %v", at, err)
			}
			err = nil
		case "expect":
			m := b.Metrics()
			for _, kv := range w[1:] {
				k, v, _ := strings.Cut(kv, "=")
				if k == "failure_rate" || k == "last_failure_rate" {
					checkRate(t, at+": "+k, m, k, v)
					continue
				}
				if got := metricValue(t, m, k); got != v {
					t.Fatalf("%s: %s = %s, want %s", at, k, got, v)
				}
			}
		default:
			t.Fatalf("%s: unknown command", at)
		}
		if err != nil {
			t.Fatalf("%s: %v", at, err)
		}
	}
}
