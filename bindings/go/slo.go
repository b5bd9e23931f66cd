package surgewall

/*
#include "surgewall.h"
*/
import "C"

import (
	"math"
	"runtime"
	"sync/atomic"
	"time"
)

// BurnPair is a multi-window burn-rate alert: it fires when both the long and the short
// window burn the error budget at Threshold times the sustainable rate.
type BurnPair struct {
	Long, Short time.Duration
	Threshold   float64
}

// sloSettings are an SLO tracker's options, the library's settings in order.
type sloSettings struct {
	steps   []func(*C.surgewall_slo_config) C.surgewall_status
	breaker *Breaker
}

func sloOption(field string, f func(*C.surgewall_slo_config) C.surgewall_status) Option {
	return opt(field, kindSLO, func(s *settings) { s.slo.steps = append(s.slo.steps, f) })
}

// An SLO tracker's options. Without them: objective 0.999 over 30 days; fast burn 14.4 over
// 1 h and 5 min; slow burn 6 over 6 h and 30 min; no breaker held. WithMinimumCalls (calls
// needed in a long window before its pair may fire) and WithClock apply too.

// WithObjective: the fraction of good calls promised, in (0, 1). Default 0.999.
func WithObjective(objective float64) Option {
	return sloOption("objective", func(c *C.surgewall_slo_config) C.surgewall_status {
		return C.surgewall_slo_config_set_objective(c, C.double(objective))
	})
}

// WithObjectiveWindow: the window the error budget is counted over. Default 30 days.
func WithObjectiveWindow(d time.Duration) Option {
	return sloOption("window", func(c *C.surgewall_slo_config) C.surgewall_status {
		return C.surgewall_slo_config_set_window(c, durationNs(d))
	})
}

// WithFastBurn sets the fast burn-rate pair.
func WithFastBurn(p BurnPair) Option {
	return sloOption("fast_burn", func(c *C.surgewall_slo_config) C.surgewall_status {
		return C.surgewall_slo_config_set_fast_burn(c, durationNs(p.Long), durationNs(p.Short), C.double(p.Threshold))
	})
}

// WithSlowBurn sets the slow burn-rate pair.
func WithSlowBurn(p BurnPair) Option {
	return sloOption("slow_burn", func(c *C.surgewall_slo_config) C.surgewall_status {
		return C.surgewall_slo_config_set_slow_burn(c, durationNs(p.Long), durationNs(p.Short), C.double(p.Threshold))
	})
}

// WithBurnBucket: the time granularity of the burn windows (default: a tenth of the shortest
// burn window; a longer one is refused). A window of L reads the last L to L + bucket.
func WithBurnBucket(d time.Duration) Option {
	return sloOption("burn_bucket", func(c *C.surgewall_slo_config) C.surgewall_status {
		return C.surgewall_slo_config_set_burn_bucket(c, durationNs(d))
	})
}

// WithRecoveryFactor: a pair recovers under factor x its threshold (hysteresis, in (0, 1]).
func WithRecoveryFactor(factor float64) Option {
	return sloOption("recovery_factor", func(c *C.surgewall_slo_config) C.surgewall_status {
		return C.surgewall_slo_config_set_recovery_factor(c, C.double(factor))
	})
}

// WithHeldBreaker: the tracker forces b open while the fast burn persists (for at least
// WithMinOpen).
func WithHeldBreaker(b *Breaker) Option {
	return opt("breaker", kindSLO, func(s *settings) {
		if b == nil {
			s.fail(&ConfigError{Field: "breaker", Message: "nil Breaker"})
			return
		}
		s.slo.breaker = b
		s.slo.steps = append(s.slo.steps, func(c *C.surgewall_slo_config) C.surgewall_status {
			h, err := b.handle()
			if err != nil {
				return C.SURGEWALL_INVALID_HANDLE
			}
			return C.surgewall_slo_config_set_breaker(c, h)
		})
	})
}

// WithMinOpen: the shortest time the tracker holds its breaker (WithHeldBreaker) open.
func WithMinOpen(d time.Duration) Option {
	return sloOption("min_open", func(c *C.surgewall_slo_config) C.surgewall_status {
		return C.surgewall_slo_config_set_min_open(c, durationNs(d))
	})
}

// SLO tracks an objective: error budget left and burn rates over several windows. Its
// burn and recovery events go to the event ring (Subscribe). Safe for concurrent use.
type SLO struct {
	h      *C.surgewall_slo
	closed atomic.Bool
	id     uint64
}

// BurnMetrics is one burn-rate pair's view.
type BurnMetrics struct {
	LongBurn, ShortBurn float64
	LongCalls           uint64
	// ShortCalls in the short window; 0 is "no data": the pair stays as it is.
	ShortCalls uint64
	Threshold  float64
	Burning    bool
}

// SLOMetrics is a snapshot of an SLO tracker.
type SLOMetrics struct {
	Objective               float64
	Calls, Bad              uint64
	ErrorRate               float64
	BudgetAllowed           float64
	BudgetRemaining         float64 // negative when overspent
	BudgetRemainingFraction float64
	Fast, Slow              BurnMetrics
	HoldingBreaker          bool
	// BurnBucket in force (the configured one, or the derived default).
	BurnBucket time.Duration
}

func freeSLO(h *C.surgewall_slo) { cleanupsRun.Add(1); C.surgewall_slo_free(h) }

// NewSLO creates an SLO tracker with the SLO options (WithObjective, WithFastBurn, ...,
// WithMinimumCalls, WithClock). name lists it for the agent (StartAgent) ("": not listed).
func NewSLO(name string, opts ...Option) (*SLO, error) {
	if versionErr != nil {
		return nil, versionErr
	}
	o := collect(opts)
	if err := o.only(kindSLO, "an SLO tracker"); err != nil {
		return nil, err
	}
	var c *C.surgewall_slo_config
	if err := statusErr("slo_config_new", C.surgewall_slo_config_new(&c)); err != nil {
		return nil, err
	}
	steps := o.slo.steps
	if name != "" {
		steps = append(steps, func(c *C.surgewall_slo_config) C.surgewall_status {
			return C.surgewall_slo_config_set_name(c, cBytes(name), C.size_t(len(name)))
		})
	}
	if o.minCallsSet {
		steps = append(steps, func(c *C.surgewall_slo_config) C.surgewall_status {
			return C.surgewall_slo_config_set_min_calls(c, C.uint64_t(o.minCalls))
		})
	}
	if o.clock != nil {
		steps = append(steps, func(c *C.surgewall_slo_config) C.surgewall_status {
			h, err := o.clock.handle()
			if err != nil {
				return C.SURGEWALL_INVALID_HANDLE
			}
			return C.surgewall_slo_config_set_mock_clock(c, h)
		})
	}
	for _, f := range steps {
		if err := statusErr("slo_config", f(c)); err != nil {
			C.surgewall_slo_config_free(c)
			return nil, err
		}
	}
	runtime.KeepAlive(o.slo.breaker)
	runtime.KeepAlive(o.clock)
	var h *C.surgewall_slo
	var cerr *C.surgewall_error
	if st := C.surgewall_slo_new(c, &h, &cerr); st != C.SURGEWALL_OK {
		return nil, constructorErr("slo_new", st, cerr)
	}
	var id C.uint64_t
	if err := statusErr("slo_id", C.surgewall_slo_id(h, &id)); err != nil {
		C.surgewall_slo_free(h)
		return nil, err
	}
	s := &SLO{h: h, id: uint64(id)}
	runtime.AddCleanup(s, freeSLO, h)
	return s, nil
}

func (s *SLO) handle() (*C.surgewall_slo, error) {
	maybeGC()
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return s.h, nil
}

// Record counts a call: good when it met the objective.
func (s *SLO) Record(good bool) error {
	h, err := s.handle()
	if err != nil {
		return err
	}
	st := C.surgewall_slo_record(h, C.bool(good))
	runtime.KeepAlive(s)
	return statusErr("slo_record", st)
}

// RecordOutcome counts a call by its breaker outcome (Ignored counts nowhere).
func (s *SLO) RecordOutcome(o Outcome) error {
	h, err := s.handle()
	if err != nil {
		return err
	}
	st := C.surgewall_slo_record_outcome(h, C.int32_t(o))
	runtime.KeepAlive(s)
	return statusErr("slo_record_outcome", st)
}

func sloMetrics(s C.struct_surgewall_slo_stats) SLOMetrics {
	burn := func(b C.struct_surgewall_burn_stats) BurnMetrics {
		return BurnMetrics{LongBurn: float64(b.long_burn), ShortBurn: float64(b.short_burn), LongCalls: uint64(b.long_calls),
			ShortCalls: uint64(b.short_calls), Threshold: float64(b.threshold), Burning: bool(b.burning)}
	}
	return SLOMetrics{Objective: float64(s.objective), Calls: uint64(s.calls), Bad: uint64(s.bad), ErrorRate: float64(s.error_rate),
		BudgetAllowed: float64(s.budget_allowed), BudgetRemaining: float64(s.budget_remaining),
		BudgetRemainingFraction: float64(s.budget_remaining_fraction), Fast: burn(s.fast), Slow: burn(s.slow),
		HoldingBreaker: bool(s.holding_breaker), BurnBucket: nsDuration(s.burn_bucket_ns)}
}

// Tick evaluates the burn rates now (publishing events, moving a linked breaker) and
// returns the snapshot. Run it on a timer, every few seconds.
func (s *SLO) Tick() (SLOMetrics, error) {
	h, err := s.handle()
	if err != nil {
		return SLOMetrics{}, err
	}
	var out C.struct_surgewall_slo_stats
	st := C.surgewall_slo_tick(h, &out)
	runtime.KeepAlive(s)
	if err := statusErr("slo_tick", st); err != nil {
		return SLOMetrics{}, err
	}
	return sloMetrics(out), nil
}

// Metrics returns a snapshot (no side effects).
func (s *SLO) Metrics() SLOMetrics {
	maybeGC()
	var out C.struct_surgewall_slo_stats
	st := C.surgewall_slo_metrics(s.h, &out)
	runtime.KeepAlive(s)
	mustRead("slo_metrics", st)
	return sloMetrics(out)
}

// Close marks the tracker closed: later Record, RecordOutcome and Tick return ErrClosed;
// Metrics keeps reading. Idempotent.
func (s *SLO) Close() error {
	s.closed.Store(true)
	return nil
}

// ThresholdAdjuster adapts a breaker's failure-rate threshold to the error rate it observes,
// on each Tick (never per call). Its changes go to the event ring.
type ThresholdAdjuster struct {
	h      *C.surgewall_threshold_adjuster
	closed atomic.Bool
}

// ThresholdMetrics is a snapshot of an adjuster.
type ThresholdMetrics struct {
	Threshold, MinThreshold, MaxThreshold float64
	// LastErrorRate is the error rate the last tick with enough calls saw; meaningful only
	// when Measured (NaN before).
	TargetErrorRate, LastErrorRate float64
	// Measured: a tick has measured an error rate (a measured 0 is not "not measured yet").
	Measured       bool
	Ticks, Changes uint64
}

func freeThresholdAdjuster(h *C.surgewall_threshold_adjuster) {
	cleanupsRun.Add(1)
	C.surgewall_threshold_adjuster_free(h)
}

// NewThresholdAdjuster creates an adjuster of b's failure-rate threshold: above
// targetErrorRate it moves the threshold by step toward minThreshold (more sensitive), below
// half the target toward maxThreshold; targetErrorRate may not be above maxThreshold. Its
// one option is WithMinimumCalls (calls needed in b's window; default b's own minimum calls).
func NewThresholdAdjuster(b *Breaker, targetErrorRate, minThreshold, maxThreshold, step float64,
	opts ...Option) (*ThresholdAdjuster, error) {
	if versionErr != nil {
		return nil, versionErr
	}
	o := collect(opts)
	if err := o.only(kindAdjuster, "a threshold adjuster"); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, &ConfigError{Field: "breaker", Message: "nil Breaker"}
	}
	bh, err := b.handle()
	if err != nil {
		return nil, err
	}
	var h *C.surgewall_threshold_adjuster
	var cerr *C.surgewall_error
	st := C.surgewall_threshold_adjuster_new(bh, C.double(targetErrorRate), C.double(minThreshold),
		C.double(maxThreshold), C.double(step), C.uint64_t(o.minCalls), &h, &cerr)
	runtime.KeepAlive(b)
	if st != C.SURGEWALL_OK {
		return nil, constructorErr("threshold_adjuster_new", st, cerr)
	}
	a := &ThresholdAdjuster{h: h}
	runtime.AddCleanup(a, freeThresholdAdjuster, h)
	return a, nil
}

func (a *ThresholdAdjuster) handle() (*C.surgewall_threshold_adjuster, error) {
	maybeGC()
	if a.closed.Load() {
		return nil, ErrClosed
	}
	return a.h, nil
}

// Tick evaluates now; changed says whether the threshold moved (from old to new).
func (a *ThresholdAdjuster) Tick() (changed bool, old, new float64, err error) {
	h, err := a.handle()
	if err != nil {
		return false, math.NaN(), math.NaN(), err
	}
	var ch C.bool
	var o, n C.double
	st := C.surgewall_threshold_adjuster_tick(h, &ch, &o, &n)
	runtime.KeepAlive(a)
	if err := statusErr("threshold_adjuster_tick", st); err != nil {
		return false, 0, 0, err
	}
	return bool(ch), float64(o), float64(n), nil
}

// Metrics returns a snapshot.
func (a *ThresholdAdjuster) Metrics() ThresholdMetrics {
	maybeGC()
	var s C.struct_surgewall_threshold_stats
	st := C.surgewall_threshold_adjuster_metrics(a.h, &s)
	runtime.KeepAlive(a)
	mustRead("threshold_adjuster_metrics", st)
	return ThresholdMetrics{Threshold: float64(s.threshold), MinThreshold: float64(s.min_threshold),
		MaxThreshold: float64(s.max_threshold), TargetErrorRate: float64(s.target_error_rate),
		LastErrorRate: float64(s.last_error_rate), Measured: !math.IsNaN(float64(s.last_error_rate)),
		Ticks: uint64(s.ticks), Changes: uint64(s.changes)}
}

// Close marks the adjuster closed: later Ticks return ErrClosed; Metrics keeps reading.
// Idempotent.
func (a *ThresholdAdjuster) Close() error {
	a.closed.Store(true)
	return nil
}

// ID is the tracker's process-unique id: the Source of its burn events.
func (s *SLO) ID() uint64 { return s.id }
