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

// SLOConfig configures an SLO tracker. Zero fields keep the library defaults: objective
// 0.999 over 30 days; fast burn 14.4 over 1 h and 5 min; slow burn 6 over 6 h and 30 min.
type SLOConfig struct {
	// Name lists the tracker for the agent (StartAgent) under this name ("": not listed).
	Name string
	// Objective: the fraction of good calls promised, in (0, 1).
	Objective float64
	// Window the error budget is counted over.
	Window             time.Duration
	FastBurn, SlowBurn *BurnPair
	// BurnBucket: the time granularity of the burn windows (0: a tenth of the shortest burn
	// window; a longer one is refused). A window of L reads the last L to L + BurnBucket.
	BurnBucket time.Duration
	// RecoveryFactor: a pair recovers under factor x its threshold (hysteresis, in (0, 1]).
	RecoveryFactor float64
	// MinCalls needed in a long window before its pair may fire.
	MinCalls uint64
	// Breaker, if set, is forced open while the fast burn persists, for at least MinOpen.
	Breaker *Breaker
	MinOpen time.Duration
	Clock   *MockClock
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

// NewSLO creates an SLO tracker.
func NewSLO(cfg SLOConfig) (*SLO, error) {
	if versionErr != nil {
		return nil, versionErr
	}
	var c *C.surgewall_slo_config
	if err := statusErr("slo_config_new", C.surgewall_slo_config_new(&c)); err != nil {
		return nil, err
	}
	var steps []func() C.surgewall_status
	add := func(f func() C.surgewall_status) { steps = append(steps, f) }
	if cfg.Name != "" {
		add(func() C.surgewall_status {
			return C.surgewall_slo_config_set_name(c, cBytes(cfg.Name), C.size_t(len(cfg.Name)))
		})
	}
	if cfg.Objective != 0 {
		add(func() C.surgewall_status { return C.surgewall_slo_config_set_objective(c, C.double(cfg.Objective)) })
	}
	if cfg.Window != 0 {
		add(func() C.surgewall_status { return C.surgewall_slo_config_set_window(c, durationNs(cfg.Window)) })
	}
	if p := cfg.FastBurn; p != nil {
		add(func() C.surgewall_status {
			return C.surgewall_slo_config_set_fast_burn(c, durationNs(p.Long), durationNs(p.Short), C.double(p.Threshold))
		})
	}
	if p := cfg.SlowBurn; p != nil {
		add(func() C.surgewall_status {
			return C.surgewall_slo_config_set_slow_burn(c, durationNs(p.Long), durationNs(p.Short), C.double(p.Threshold))
		})
	}
	if cfg.BurnBucket != 0 {
		add(func() C.surgewall_status {
			return C.surgewall_slo_config_set_burn_bucket(c, durationNs(cfg.BurnBucket))
		})
	}
	if cfg.RecoveryFactor != 0 {
		add(func() C.surgewall_status {
			return C.surgewall_slo_config_set_recovery_factor(c, C.double(cfg.RecoveryFactor))
		})
	}
	if cfg.MinCalls != 0 {
		add(func() C.surgewall_status { return C.surgewall_slo_config_set_min_calls(c, C.uint64_t(cfg.MinCalls)) })
	}
	if cfg.MinOpen != 0 {
		add(func() C.surgewall_status { return C.surgewall_slo_config_set_min_open(c, durationNs(cfg.MinOpen)) })
	}
	if cfg.Breaker != nil {
		add(func() C.surgewall_status {
			h, err := cfg.Breaker.handle()
			if err != nil {
				return C.SURGEWALL_INVALID_HANDLE
			}
			return C.surgewall_slo_config_set_breaker(c, h)
		})
	}
	if cfg.Clock != nil {
		add(func() C.surgewall_status {
			h, err := cfg.Clock.handle()
			if err != nil {
				return C.SURGEWALL_INVALID_HANDLE
			}
			return C.surgewall_slo_config_set_mock_clock(c, h)
		})
	}
	for _, f := range steps {
		if err := statusErr("slo_config", f()); err != nil {
			C.surgewall_slo_config_free(c)
			return nil, err
		}
	}
	runtime.KeepAlive(cfg.Breaker)
	runtime.KeepAlive(cfg.Clock)
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

// ThresholdConfig configures a ThresholdAdjuster: above TargetErrorRate the breaker's
// failure-rate threshold moves by Step toward MinThreshold (more sensitive), below half the
// target toward MaxThreshold; MinCalls are needed in the window (0: the breaker's own
// minimum calls). TargetErrorRate may not be above MaxThreshold.
type ThresholdConfig struct {
	TargetErrorRate, MinThreshold, MaxThreshold, Step float64
	MinCalls                                          uint64
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

// NewThresholdAdjuster creates an adjuster for b.
func NewThresholdAdjuster(b *Breaker, cfg ThresholdConfig) (*ThresholdAdjuster, error) {
	if versionErr != nil {
		return nil, versionErr
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
	st := C.surgewall_threshold_adjuster_new(bh, C.double(cfg.TargetErrorRate), C.double(cfg.MinThreshold),
		C.double(cfg.MaxThreshold), C.double(cfg.Step), C.uint64_t(cfg.MinCalls), &h, &cerr)
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
