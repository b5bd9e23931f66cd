package surgewall

/*
#include "surgewall.h"
*/
import "C"

import (
	"context"
	"net"
	"strconv"
	"sync"
	"unsafe"
)

// Agent is the library's background agent: Prometheus metrics on /metrics and the admin API
// under /api/resilience/ for every breaker and bulkhead of the process (whatever language made
// them), the coarse-clock ticker and the idle sweeps of keyed registries. It runs on one
// thread of the library, not on a goroutine; one agent runs per process.
type Agent struct {
	mu   sync.Mutex
	h    *C.surgewall_agent
	host string
	port int
}

// WithBind sets the agent's admin address (default "127.0.0.1:9464", loopback only; port 0
// picks a free port, see Agent.Port).
func WithBind(addr string) Option {
	return opt("bind", kindAgent, func(s *settings) { s.bind = addr })
}

// StartAgent starts the agent. A second start while one runs returns an error matching
// ErrAlreadyRunning; an address that cannot be bound, one matching ErrIO; an unparsable one,
// ErrInvalidArgument.
func StartAgent(opts ...Option) (*Agent, error) {
	if versionErr != nil {
		return nil, versionErr
	}
	s := collect(append([]Option{WithBind("127.0.0.1:9464")}, opts...))
	if err := s.only(kindAgent, "the agent"); err != nil {
		return nil, err
	}
	bind := []byte(s.bind)
	var ptr *C.uint8_t
	if len(bind) > 0 {
		ptr = (*C.uint8_t)(unsafe.Pointer(&bind[0]))
	}
	var h *C.surgewall_agent
	var cerr *C.surgewall_error
	st := C.surgewall_agent_start(ptr, C.size_t(len(bind)), &h, &cerr)
	if st != C.SURGEWALL_OK {
		return nil, constructorErr("StartAgent", st, cerr)
	}
	var port C.uint16_t
	if st := C.surgewall_agent_port(h, &port); st != C.SURGEWALL_OK {
		C.surgewall_agent_stop(h)
		return nil, statusErr("StartAgent", st)
	}
	host, _, err := net.SplitHostPort(s.bind)
	if err != nil || host == "" {
		host = "127.0.0.1"
	}
	return &Agent{h: h, host: host, port: int(port)}, nil
}

// Port is the port the agent serves on (the one chosen when port 0 was asked for).
func (a *Agent) Port() int { return a.port }

// URL is "http://host:port", the base of /metrics and /api/resilience/.
func (a *Agent) URL() string {
	return "http://" + net.JoinHostPort(a.host, strconv.Itoa(a.port))
}

// Stop stops serving (requests in progress finish) and joins the agent's thread. When ctx
// ends first, Stop returns ctx.Err() and the agent finishes stopping by itself. Stopping a
// stopped agent returns nil.
func (a *Agent) Stop(ctx context.Context) error {
	a.mu.Lock()
	h := a.h
	a.h = nil
	a.mu.Unlock()
	if h == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- statusErr("Agent.Stop", C.surgewall_agent_stop(h)) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RenderMetrics returns the metrics of every policy as the agent's /metrics serves them
// (Prometheus text 0.0.4, or OpenMetrics 1.0 when openMetrics is true): for a service that
// already serves its own /metrics. It needs no running agent.
func RenderMetrics(openMetrics bool) (string, error) {
	var need C.size_t
	buf := []byte(nil)
	for {
		var p *C.uint8_t
		if len(buf) > 0 {
			p = (*C.uint8_t)(unsafe.Pointer(&buf[0]))
		}
		st := C.surgewall_metrics_render(C.bool(openMetrics), p, C.size_t(len(buf)), &need)
		switch st {
		case C.SURGEWALL_OK:
			return string(buf[:need]), nil
		case C.SURGEWALL_BUFFER_TOO_SMALL:
			buf = make([]byte, int(need)+4096) // the text may grow between two calls
		default:
			return "", statusErr("RenderMetrics", st)
		}
	}
}
