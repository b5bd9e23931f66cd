package surgewall

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func exposedValue(text, series string) (string, bool) {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v, true
		}
	}
	return "", false
}

// The agent serves what Go made, refuses a second start, and stops cleanly.
func TestAgentServesGoPoliciesOverHTTPAndMetrics(t *testing.T) {
	agent, err := StartAgent(WithBind("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(context.Background())
	if agent.Port() == 0 {
		t.Fatal("no port")
	}
	if _, err := StartAgent(WithBind("127.0.0.1:0")); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second start: %v", err)
	}

	b, err := NewBreaker("go-agent-payments", WithoutFailureRate(), WithConsecutiveFailures(1))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	db, err := NewBulkhead("go-agent-db", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = b.Execute(context.Background(), func(context.Context) error { return nil })
	_ = b.Execute(context.Background(), func(context.Context) error { return errBoom })
	if err := db.TryAcquire(); err != nil {
		t.Fatal(err)
	}
	defer db.Release()

	code, body := httpGet(t, agent.URL()+"/api/resilience/circuit-breakers/go-agent-payments")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var view struct {
		State  string `json:"state"`
		Totals struct {
			Successes, Failures int
		} `json:"totals"`
	}
	if err := json.Unmarshal([]byte(body), &view); err != nil {
		t.Fatal(err)
	}
	if view.State != "open" || view.Totals.Successes != 1 || view.Totals.Failures != 1 {
		t.Fatalf("read back %+v", view)
	}

	_, text := httpGet(t, agent.URL()+"/metrics")
	for series, want := range map[string]string{
		`surgewall_circuit_breaker_state{endpoint="go-agent-payments"}`:  "1",
		`surgewall_bulkhead_active_calls{service="go-agent-db"}`:         "1",
		`surgewall_bulkhead_max_concurrent_calls{service="go-agent-db"}`: "4",
	} {
		got, ok := exposedValue(text, series)
		if !ok || strings.TrimSuffix(got, ".0") != want {
			t.Errorf("%s = %q (present %v), want %s", series, got, ok, want)
		}
	}

	resp, err := http.Post(agent.URL()+"/api/resilience/circuit-breakers/go-agent-payments/reset", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("reset: %v %v", err, resp)
	}
	resp.Body.Close()
	if st := b.State(); st != StateClosed {
		t.Fatalf("after reset: %v", st)
	}

	rendered, err := RenderMetrics(false)
	if err != nil || !strings.Contains(rendered, "surgewall_circuit_breaker_state") {
		t.Fatalf("RenderMetrics: %v %q", err, rendered)
	}
	open, _ := RenderMetrics(true)
	if !strings.HasSuffix(strings.TrimSpace(open), "# EOF") {
		t.Fatal("OpenMetrics without # EOF")
	}

	url := agent.URL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := agent.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := agent.Stop(ctx); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Fatal("still serving after Stop")
	}
}

func TestAgentAddressErrors(t *testing.T) {
	if _, err := StartAgent(WithBind("localhost")); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unparsable address: %v", err)
	}
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_, err = StartAgent(WithBind(held.Addr().String()))
	if !errors.Is(err, ErrIO) || !strings.Contains(err.Error(), held.Addr().String()) {
		t.Fatalf("address in use: %v", err)
	}
	a, err := StartAgent(WithBind("127.0.0.1:0"))
	if err != nil {
		t.Fatalf("a failed start left an agent behind: %v", err)
	}
	a.Stop(context.Background())
}

// Named keyed breakers, keyed bulkheads and SLO trackers made in Go are listed for the agent.
func TestAgentListsNamedKeyedPoliciesAndSLOs(t *testing.T) {
	agent, err := StartAgent(WithBind("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(context.Background())
	kb, err := NewKeyedBreaker("go-agent-hosts")
	if err != nil {
		t.Fatal(err)
	}
	defer kb.Close()
	if err := kb.ExecuteUint64(context.Background(), 7, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	kbh, err := NewKeyedBulkhead("go-agent-tenants", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer kbh.Close()
	slo, err := NewSLO("go-agent-slo", WithObjective(0.99))
	if err != nil {
		t.Fatal(err)
	}
	defer slo.Close()
	retry, err := NewRetry("go-agent-retry", WithMaxAttempts(2))
	if err != nil {
		t.Fatal(err)
	}
	defer retry.Close()
	for path, want := range map[string]string{
		"/api/resilience/retries":                                      `"name":"go-agent-retry"`,
		"/api/resilience/keyed-circuit-breakers/go-agent-hosts/keys/7": `"state":"closed"`,
		"/api/resilience/keyed-bulkheads":                              `"name":"go-agent-tenants"`,
		"/api/resilience/slos":                                         `"name":"go-agent-slo"`,
	} {
		code, body := httpGet(t, agent.URL()+path)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d %s (want %s)", path, code, body, want)
		}
	}
	if _, err := NewSLO("a\x00b", WithObjective(0.99)); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("a name with NUL: %v", err)
	}
}
