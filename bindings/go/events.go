package surgewall

/*
#include "surgewall.h"
*/
import "C"

import (
	"context"
	"iter"
	"runtime"
	"sync"
	"time"
)

// EventKind says what an event is about.
type EventKind int32

const (
	// EventTransition: a breaker changed state (From, To, Reason, Generation). A
	// KeyedBreaker's keys publish EventKeyedTransition instead.
	EventTransition EventKind = C.SURGEWALL_EVENT_KIND_TRANSITION
	// EventThresholdChanged: a dynamic threshold moved (ValueA old, ValueB new).
	EventThresholdChanged EventKind = C.SURGEWALL_EVENT_KIND_THRESHOLD_CHANGED
	// EventSLOBurn: an SLO burn alert fired (Fast says which pair, ValueA the burn rate).
	EventSLOBurn EventKind = C.SURGEWALL_EVENT_KIND_SLO_BURN
	// EventSLORecovered: an SLO burn alert recovered.
	EventSLORecovered EventKind = C.SURGEWALL_EVENT_KIND_SLO_RECOVERED
	// EventEvicted: a keyed registry (KeyedBreaker, KeyedBulkhead) evicted Key.
	EventEvicted EventKind = C.SURGEWALL_EVENT_KIND_EVICTED
	// EventRetryBudgetExhausted: a retry budget refused a retry.
	EventRetryBudgetExhausted EventKind = C.SURGEWALL_EVENT_KIND_RETRY_BUDGET_EXHAUSTED
	// EventKeyedTransition: one key of a KeyedBreaker changed state (Key, From, To, Reason,
	// Generation; Source is KeyedBreaker.ID). Should the key be evicted before its event went
	// out (a rare race), the event is an EventTransition without the key.
	EventKeyedTransition EventKind = C.SURGEWALL_EVENT_KIND_KEYED_TRANSITION
)

func (k EventKind) String() string {
	switch k {
	case EventTransition:
		return "transition"
	case EventThresholdChanged:
		return "threshold_changed"
	case EventSLOBurn:
		return "slo_burn"
	case EventSLORecovered:
		return "slo_recovered"
	case EventEvicted:
		return "evicted"
	case EventRetryBudgetExhausted:
		return "retry_budget_exhausted"
	case EventKeyedTransition:
		return "keyed_transition"
	}
	return "unknown"
}

// TransitionReason says why a breaker changed state.
type TransitionReason int32

const (
	ReasonFailureRate         TransitionReason = C.SURGEWALL_TRANSITION_REASON_FAILURE_RATE
	ReasonSlowCallRate        TransitionReason = C.SURGEWALL_TRANSITION_REASON_SLOW_CALL_RATE
	ReasonConsecutiveFailures TransitionReason = C.SURGEWALL_TRANSITION_REASON_CONSECUTIVE_FAILURES
	ReasonWaitOver            TransitionReason = C.SURGEWALL_TRANSITION_REASON_WAIT_OVER
	ReasonProbesSucceeded     TransitionReason = C.SURGEWALL_TRANSITION_REASON_PROBES_SUCCEEDED
	ReasonProbesFailed        TransitionReason = C.SURGEWALL_TRANSITION_REASON_PROBES_FAILED
	ReasonHalfOpenTimeout     TransitionReason = C.SURGEWALL_TRANSITION_REASON_HALF_OPEN_TIMEOUT
	ReasonManual              TransitionReason = C.SURGEWALL_TRANSITION_REASON_MANUAL
)

// Event is one entry of the process-wide event ring. Fields a kind does not use are zero.
type Event struct {
	// Source is the publisher's id (Breaker.ID, ...).
	Source uint64
	// At is when, on the publisher's clock (nanoseconds since its epoch).
	At         time.Duration
	Kind       EventKind
	From, To   State
	Reason     TransitionReason
	Generation uint64
	// Fast: SLO events of the fast window pair.
	Fast           bool
	ValueA, ValueB float64
	// Key: the key of an eviction or a keyed transition (KeyOf for a string key).
	Key uint64
}

// Subscription reads the process-wide event ring (every breaker, bulkhead, SLO tracker and
// registry publishes there) from the moment it was made, with its own cursor. It is safe for
// concurrent use (polls are serialised). Close it when done.
type Subscription struct {
	mu      sync.Mutex
	h       *C.surgewall_subscription
	closed  bool
	missed  uint64 // the count Close left
	cleanup runtime.Cleanup
}

type subHandle struct{ h *C.surgewall_subscription }

func (s subHandle) free() { C.surgewall_subscription_free(s.h) }

// Subscribe starts reading events from now on.
func Subscribe() (*Subscription, error) {
	if versionErr != nil {
		return nil, versionErr
	}
	var h *C.surgewall_subscription
	if err := statusErr("events_subscribe", C.surgewall_events_subscribe(&h)); err != nil {
		return nil, err
	}
	s := &Subscription{h: h}
	s.cleanup = runtime.AddCleanup(s, subHandle.free, subHandle{h})
	return s, nil
}

// Poll returns the next event, or ok == false when none is waiting.
func (s *Subscription) Poll() (ev Event, ok bool, err error) {
	maybeGC()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Event{}, false, ErrClosed
	}
	var e C.struct_surgewall_event
	st := C.surgewall_subscription_poll(s.h, &e)
	runtime.KeepAlive(s)
	switch st {
	case C.SURGEWALL_OK:
	case C.SURGEWALL_NO_EVENT:
		return Event{}, false, nil
	default:
		return Event{}, false, statusErr("subscription_poll", st)
	}
	return Event{
		Source: uint64(e.source), At: nsDuration(e.at_ns), Kind: EventKind(e.kind),
		From: State(e.from_state), To: State(e.to_state), Reason: TransitionReason(e.reason),
		Generation: uint64(e.generation), Fast: e.fast != 0,
		ValueA: float64(e.value_a), ValueB: float64(e.value_b), Key: uint64(e.key),
	}, true, nil
}

// Pending iterates over the events waiting now, then stops (it does not wait for more).
//
//	for ev := range sub.Pending() { ... }
func (s *Subscription) Pending() iter.Seq[Event] {
	return func(yield func(Event) bool) {
		for {
			ev, ok, err := s.Poll()
			if err != nil || !ok || !yield(ev) {
				return
			}
		}
	}
}

// Watch polls every interval (0 means 10 ms) in a goroutine and delivers events on the
// returned channel, which is closed when ctx is done or the subscription is closed. A slow
// reader holds the poller back; events it falls behind on are counted by Missed.
func (s *Subscription) Watch(ctx context.Context, interval time.Duration) <-chan Event {
	if interval <= 0 {
		interval = 10 * time.Millisecond
	}
	ch := make(chan Event, 64)
	go func() {
		defer close(ch)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			for {
				ev, ok, err := s.Poll()
				if err != nil {
					return
				}
				if !ok {
					break
				}
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return ch
}

// Missed is how many events this subscription lost because it fell behind the ring; after
// Close, the count Close left.
func (s *Subscription) Missed() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.missedLocked()
}

func (s *Subscription) missedLocked() uint64 {
	if s.closed {
		return s.missed
	}
	var n C.uint64_t
	st := C.surgewall_subscription_missed(s.h, &n)
	runtime.KeepAlive(s)
	mustRead("subscription_missed", st)
	return uint64(n)
}

// Close ends the subscription (Poll then returns ErrClosed; Missed keeps its count).
// Idempotent.
func (s *Subscription) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.missed = s.missedLocked()
	s.closed = true
	s.cleanup.Stop()
	C.surgewall_subscription_free(s.h)
	return nil
}
