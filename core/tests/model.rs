//! The lock-free breaker against a small sequential reference model (proptest state machine).
//!
//! The model is the contract of DESIGN.md §3 written the plain way: a `VecDeque` for the count
//! window, integers for the half-open episode, milliseconds for time. Random sequences of calls,
//! held permits, late results, clock moves and manual transitions must give the same states,
//! generations, rejections (with `retry_after`) and counts in both.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use surgewall::clock::{Clock, MockClock};
use surgewall::{Breaker, BreakerConfig, Outcome, RawPermit, Recorded, RejectReason, State};

const WINDOW: usize = 4;
const MIN_CALLS: usize = 3;
const THRESHOLD: f64 = 0.5;
const CONSECUTIVE: u32 = 3;
const OPEN_MS: u64 = 1000;
const MAX_OPEN_MS: u64 = 4000;
const PROBES: u32 = 2;
const HALF_OPEN_MAX_MS: u64 = 3000;
const NEVER: u64 = u64::MAX;

#[derive(Clone, Debug)]
enum Op {
    /// Acquire and record at once.
    Call(Outcome),
    /// Acquire and keep the permit.
    Hold,
    /// Record the held permit `i % held.len()`.
    Release(usize, Outcome),
    Advance(u64),
    ForceOpen,
    Reset,
}

/// What an operation returned.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    Admitted(Option<Recorded>),
    Rejected(RejectReason, Duration),
    Nothing,
}

#[derive(Clone, Debug)]
struct Model {
    now: u64,
    state: State,
    generation: u64,
    window: VecDeque<bool>,
    streak: u32,
    deadline: u64,
    opens: u32,
    admitted: u32,
    reported: u32,
    probe_failures: u32,
    held: Vec<u64>,
    late: u64,
    successes: u64,
    failures: u64,
    seen: Seen,
}

impl Model {
    fn new() -> Self {
        Model {
            now: 0,
            state: State::Closed,
            generation: 0,
            window: VecDeque::new(),
            streak: 0,
            deadline: 0,
            opens: 0,
            admitted: 0,
            reported: 0,
            probe_failures: 0,
            held: vec![],
            late: 0,
            successes: 0,
            failures: 0,
            seen: Seen::Nothing,
        }
    }

    fn enter(&mut self, state: State) {
        self.generation += 1;
        self.state = state;
        match state {
            State::Open => {
                let wait = (OPEN_MS << self.opens.min(16)).min(MAX_OPEN_MS);
                self.deadline = self.now + wait;
                self.opens += 1;
            }
            State::HalfOpen => {
                self.deadline = self.now + HALF_OPEN_MAX_MS;
                self.admitted = 0;
                self.reported = 0;
                self.probe_failures = 0;
            }
            State::Closed => {
                self.window.clear();
                self.streak = 0;
                self.opens = 0;
            }
            _ => {}
        }
    }

    fn left(&self) -> Duration {
        if self.deadline == NEVER {
            Duration::MAX
        } else {
            Duration::from_millis(self.deadline.saturating_sub(self.now))
        }
    }

    fn acquire(&mut self) -> Result<u64, (RejectReason, Duration)> {
        loop {
            match self.state {
                State::Closed | State::Disabled | State::MetricsOnly => return Ok(self.generation),
                State::Open | State::ForcedOpen => {
                    if self.now >= self.deadline {
                        self.enter(State::HalfOpen);
                        self.admitted = 1;
                        return Ok(self.generation);
                    }
                    let reason = if self.state == State::Open {
                        RejectReason::Open
                    } else {
                        RejectReason::ForcedOpen
                    };
                    return Err((reason, self.left()));
                }
                State::HalfOpen => {
                    if self.now >= self.deadline {
                        self.enter(State::Open);
                        continue;
                    }
                    if self.admitted < PROBES {
                        self.admitted += 1;
                        return Ok(self.generation);
                    }
                    // A short hint (a tenth of open_for, 1 ms to 1 s), never past the reclaim.
                    let hint = (OPEN_MS / 10).clamp(1, 1000).min(HALF_OPEN_MAX_MS);
                    return Err((
                        RejectReason::HalfOpenFull,
                        self.left().min(Duration::from_millis(hint)),
                    ));
                }
            }
        }
    }

    fn record(&mut self, generation: u64, outcome: Outcome) -> Recorded {
        if generation != self.generation {
            self.late += 1;
            return Recorded::Late;
        }
        let failed = outcome == Outcome::Failure;
        match (self.state, outcome) {
            (State::Disabled, _) => Recorded::Disabled,
            (State::Open | State::ForcedOpen, _) => Recorded::Unexpected,
            (State::HalfOpen, Outcome::Ignored) => {
                self.admitted -= 1;
                Recorded::Counted
            }
            (State::HalfOpen, _) => {
                if self.reported >= self.admitted {
                    return Recorded::Unexpected;
                }
                self.count(failed);
                self.reported += 1;
                self.probe_failures += u32::from(failed);
                if f64::from(self.probe_failures) / f64::from(PROBES) >= THRESHOLD {
                    self.enter(State::Open);
                } else if self.reported >= PROBES {
                    self.enter(State::Closed);
                }
                Recorded::Counted
            }
            (_, Outcome::Ignored) => Recorded::Counted,
            _ => {
                self.count(failed);
                self.window.push_back(failed);
                if self.window.len() > WINDOW {
                    self.window.pop_front();
                }
                if failed {
                    self.streak += 1;
                    if self.streak >= CONSECUTIVE && self.state == State::Closed {
                        self.enter(State::Open);
                        return Recorded::Counted;
                    }
                } else {
                    self.streak = 0;
                }
                let calls = self.window.len();
                let fails = self.window.iter().filter(|&&f| f).count();
                if self.state == State::Closed
                    && calls >= MIN_CALLS
                    && fails as f64 / calls as f64 >= THRESHOLD
                {
                    self.enter(State::Open);
                }
                Recorded::Counted
            }
        }
    }

    fn count(&mut self, failed: bool) {
        if failed {
            self.failures += 1;
        } else {
            self.successes += 1;
        }
    }
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        4 => Just(Outcome::Success),
        4 => Just(Outcome::Failure),
        1 => Just(Outcome::Ignored),
    ]
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::new()).boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Op> {
        let mut ops = vec![
            (6, outcome().prop_map(Op::Call).boxed()),
            (2, Just(Op::Hold).boxed()),
            (
                3,
                prop_oneof![Just(500u64), Just(1000), 1u64..5000]
                    .prop_map(Op::Advance)
                    .boxed(),
            ),
            (1, Just(Op::ForceOpen).boxed()),
            (1, Just(Op::Reset).boxed()),
        ];
        if !state.held.is_empty() {
            ops.push((
                3,
                (any::<usize>(), outcome())
                    .prop_map(|(i, o)| Op::Release(i, o))
                    .boxed(),
            ));
        }
        proptest::strategy::Union::new_weighted(ops).boxed()
    }

    fn preconditions(state: &Model, op: &Op) -> bool {
        !matches!(op, Op::Release(..)) || !state.held.is_empty()
    }

    fn apply(mut m: Model, op: &Op) -> Model {
        m.seen = match *op {
            Op::Call(o) => match m.acquire() {
                Ok(g) => Seen::Admitted(Some(m.record(g, o))),
                Err((r, d)) => Seen::Rejected(r, d),
            },
            Op::Hold => match m.acquire() {
                Ok(g) => {
                    m.held.push(g);
                    Seen::Admitted(None)
                }
                Err((r, d)) => Seen::Rejected(r, d),
            },
            Op::Release(i, o) => {
                let g = m.held.remove(i % m.held.len());
                Seen::Admitted(Some(m.record(g, o)))
            }
            Op::Advance(ms) => {
                m.now += ms;
                Seen::Nothing
            }
            Op::ForceOpen => {
                // Forcing open a FORCED_OPEN breaker (without a duration) changes nothing.
                if m.state != State::ForcedOpen {
                    m.enter(State::ForcedOpen);
                    m.deadline = NEVER;
                }
                Seen::Nothing
            }
            Op::Reset => {
                m.enter(State::Closed);
                Seen::Nothing
            }
        };
        m
    }
}

struct Sut {
    breaker: Breaker,
    time: MockClock,
    held: Vec<RawPermit>,
}

struct BreakerMatchesModel;

impl StateMachineTest for BreakerMatchesModel {
    type SystemUnderTest = Sut;
    type Reference = Reference;

    fn init_test(_: &Model) -> Sut {
        let (clock, time) = Clock::mock();
        let config = BreakerConfig::builder()
            .failure_rate(THRESHOLD)
            .consecutive_failures(CONSECUTIVE)
            .minimum_calls(MIN_CALLS as u32)
            .count_window(WINDOW as u32)
            .open_for(Duration::from_millis(OPEN_MS))
            .open_backoff(2.0, Duration::from_millis(MAX_OPEN_MS), 0.0)
            .half_open_calls(PROBES)
            .half_open_max_duration(Duration::from_millis(HALF_OPEN_MAX_MS))
            .build()
            .unwrap();
        Sut {
            breaker: Breaker::builder("model", config).clock(clock).build(),
            time,
            held: vec![],
        }
    }

    fn apply(mut sut: Sut, m: &Model, op: Op) -> Sut {
        let b = &sut.breaker;
        let seen = match op {
            Op::Call(o) => match b.try_acquire_raw() {
                Ok(p) => Seen::Admitted(Some(b.record_raw(p, o))),
                Err(r) => Seen::Rejected(r.reason, r.retry_after),
            },
            Op::Hold => match b.try_acquire_raw() {
                Ok(p) => {
                    sut.held.push(p);
                    Seen::Admitted(None)
                }
                Err(r) => Seen::Rejected(r.reason, r.retry_after),
            },
            Op::Release(i, o) => {
                let p = sut.held.remove(i % sut.held.len());
                Seen::Admitted(Some(b.record_raw(p, o)))
            }
            Op::Advance(ms) => {
                sut.time.advance(Duration::from_millis(ms));
                Seen::Nothing
            }
            Op::ForceOpen => {
                b.force_open(None);
                Seen::Nothing
            }
            Op::Reset => {
                b.reset();
                Seen::Nothing
            }
        };
        assert_eq!(seen, m.seen, "result of {op:?}");
        let got = b.metrics();
        assert_eq!(got.state, m.state, "state after {op:?}");
        assert_eq!(got.generation, m.generation, "generation after {op:?}");
        assert_eq!(
            (got.successes, got.failures, got.late_results),
            (m.successes, m.failures, m.late),
            "counts after {op:?}"
        );
        if m.state == State::Closed {
            let fails = m.window.iter().filter(|&&f| f).count() as u64;
            assert_eq!(
                (got.window.calls, got.window.failures),
                (m.window.len() as u64, fails),
                "window after {op:?}"
            );
        }
        sut
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn breaker_matches_the_reference_model(sequential 1..60 => BreakerMatchesModel);
}
