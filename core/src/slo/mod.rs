//! SLO tracking: an objective, its error budget and multi-window, multi-burn-rate alerting
//! (Google SRE workbook, "Alerting on SLOs"), with an optional breaker it holds open while the
//! budget burns too fast.
//!
//! * **Record** each outcome with [`SloTracker::record`]: lock-free, one CAS per ring (see
//!   `ring.rs`); the bucket comes from the tracker's [`Clock`].
//! * **Budget**: over the rolling `window`, `allowed = (1 - objective) * calls`,
//!   `remaining = allowed - bad` (negative when overspent), `remaining_fraction =
//!   remaining / allowed` (1 with no calls). The budget ring has `budget_buckets` buckets.
//! * **Burn rate** of a window: `(bad / calls) / (1 - objective)` (0 with no calls): 1 spends
//!   the budget exactly over the SLO window.
//! * **Windows**: the burn ring is cut into `burn_bucket`-wide buckets; by default the bucket is
//!   a tenth of the shortest burn window, and an explicit one may not be longer than that
//!   ([`MIN_BUCKETS_PER_WINDOW`]). A window of length `L` sums the `ceil(L / burn_bucket)`
//!   whole buckets before the current one plus the current, partial one, so once the tracker
//!   has run for `L` it covers at least `L` and less than `L + burn_bucket` at every instant
//!   (never "the current partial minute").
//! * **Thresholds are exact**: the objective is kept as an error budget in parts per billion
//!   (`round((1 - objective) * 1e9)`) and thresholds in parts per million, and a window burns
//!   at `>= threshold` when `bad * 1e15 >= threshold_ppm * budget_ppb * calls` — integer
//!   arithmetic, so 99.9 % with exactly 1.44 % bad calls reaches 14.4 (floating point would
//!   read 14.399999999999986). The burn rates reported are `bad * 1e9 / (budget_ppb * calls)`.
//! * **Pairs**: the fast pair (default 1 h and 5 min, threshold 14.4) and the slow pair (6 h and
//!   30 min, threshold 6). [`tick`](SloTracker::tick) fires a pair when both of its windows burn
//!   at >= threshold (and the long one holds `min_calls` calls), publishing
//!   [`EventKind::SloBurn`]; a firing pair recovers — [`EventKind::SloRecovered`] — only when
//!   the slower of its two burns falls below `threshold * recovery_factor` (hysteresis) *and*
//!   the short window holds at least one call. An empty short window is "no data": it leaves
//!   the pair as it is, firing or not. Both events carry the burn that decided: the slower of
//!   the pair's two burns (the one compared with the threshold).
//! * **Breaker**: a linked breaker is forced open when the fast pair fires. It is handed to
//!   its probes (`half_open`) once it has been held at least `min_open` and either the pair
//!   has recovered or — the *probe rule* — the short window holds no call at all (the held
//!   breaker rejects everything, so only probes can bring evidence; the pair keeps firing
//!   meanwhile). While the fast pair still fires, a breaker the tracker let go that runs again
//!   (closed or half-open) is forced open again as soon as the short window burns at the
//!   threshold: evidence, not silence, ends the hold. If somebody else moved the breaker
//!   (disabled, metrics-only, forced open or closed by hand), the tracker lets go without
//!   touching it.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use surgewall::{Breaker, BreakerConfig, SloConfig, SloTracker, State, clock::Clock};
//!
//! let (clock, time) = Clock::mock();
//! let breaker = Arc::new(Breaker::builder("api", BreakerConfig::default()).clock(clock.clone()).build());
//! let config = SloConfig::builder()
//!     .objective(0.99)
//!     .window(Duration::from_secs(3600))
//!     .fast_burn(Duration::from_secs(60), Duration::from_secs(5), 10.0)
//!     .slow_burn(Duration::from_secs(600), Duration::from_secs(30), 5.0)
//!     .build()?;
//! let slo = SloTracker::builder(config).clock(clock).breaker(breaker.clone()).build();
//! for i in 0..100 {
//!     slo.record(i % 4 != 0); // 25 % errors: a burn rate of 25
//!     time.advance(Duration::from_millis(100));
//! }
//! let m = slo.tick();
//! assert!(m.fast.burning && m.fast.long_burn > 24.0);
//! assert_eq!(breaker.state(), State::ForcedOpen);
//! assert!(m.budget_remaining < 0.0); // 25 bad calls against an allowance of 1
//! # Ok::<(), surgewall::ConfigError>(())
//! ```

mod ring;
#[cfg(all(test, not(surgewall_loom)))]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{duration_ns, Clock, ClockMode};
use crate::error::{check, ConfigError};
use crate::events::{Event, EventKind, EventRing};
use crate::sync::{AtomicU64, Ordering};
use crate::{Breaker, Outcome, State};
use ring::Ring;

/// The fewest burn buckets a burn window spans: the default bucket is the shortest window
/// divided by this, and an explicit `burn_bucket` may not be longer. A window therefore reads
/// at most a tenth more than its length.
pub const MIN_BUCKETS_PER_WINDOW: u32 = 10;

/// Parts per million of a threshold, parts per billion of an error budget.
const PPM: f64 = 1e6;
const PPB: f64 = 1e9;

/// A pair of windows and the burn rate both must reach to fire.
///
/// ```
/// use std::time::Duration;
/// let fast = surgewall::slo::BurnPair::new(Duration::from_secs(3600), Duration::from_secs(300), 14.4);
/// assert_eq!(fast.threshold, 14.4);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BurnPair {
    /// The long window (it says the burn is significant).
    pub long: Duration,
    /// The short window (it says the burn is still going on; recovery is fast).
    pub short: Duration,
    /// The burn rate both windows must reach.
    pub threshold: f64,
}

impl BurnPair {
    /// A pair.
    pub fn new(long: Duration, short: Duration, threshold: f64) -> Self {
        Self {
            long,
            short,
            threshold,
        }
    }

    fn check(
        &self,
        name: &'static str,
        long_f: &'static str,
        t_f: &'static str,
    ) -> Result<(), ConfigError> {
        check::non_zero(long_f, self.long)?;
        check::non_zero(name, self.short)?;
        if self.short >= self.long {
            return Err(ConfigError::new(
                name,
                format!(
                    "the short window ({:?}) must be shorter than the long one ({:?})",
                    self.short, self.long
                ),
            ));
        }
        let t = check::non_negative(t_f, self.threshold)?;
        if (t * PPM).round() < 1.0 {
            return Err(ConfigError::new(
                t_f,
                format!(
                    "must be at least 0.000001 (thresholds are kept in parts per million), got {t}"
                ),
            ));
        }
        Ok(())
    }
}

/// A validated SLO configuration. Build one with [`SloConfig::builder`].
///
/// ```
/// let c = surgewall::SloConfig::builder().objective(0.995).build()?;
/// assert_eq!(c.objective(), 0.995);
/// assert_eq!(c.fast().threshold, 14.4);
/// # Ok::<(), surgewall::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SloConfig {
    objective: f64,
    window: Duration,
    budget_buckets: u32,
    /// `None`: derived from the shortest burn window.
    burn_bucket: Option<Duration>,
    fast: BurnPair,
    slow: BurnPair,
    recovery_factor: f64,
    min_calls: u64,
    min_open: Duration,
}

impl SloConfig {
    /// A builder starting from 99.9 % over 30 days (720 budget buckets of 1 h), burn buckets a
    /// tenth of the shortest burn window (30 s with the default pairs), fast pair 1 h / 5 min at
    /// 14.4, slow pair 6 h / 30 min at 6, recovery below half the threshold, `min_calls` 1,
    /// `min_open` 1 min.
    ///
    /// ```
    /// let c = surgewall::SloConfig::builder().build()?;
    /// assert_eq!(c.window().as_secs(), 30 * 86_400);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn builder() -> SloConfigBuilder {
        SloConfigBuilder::default()
    }
    /// The objective: the share of calls that must be good, in (0, 1).
    pub fn objective(&self) -> f64 {
        self.objective
    }
    /// The rolling SLO window.
    pub fn window(&self) -> Duration {
        self.window
    }
    /// The fast pair.
    pub fn fast(&self) -> BurnPair {
        self.fast
    }
    /// The slow pair.
    pub fn slow(&self) -> BurnPair {
        self.slow
    }
    /// A firing pair recovers below `threshold * recovery_factor`.
    pub fn recovery_factor(&self) -> f64 {
        self.recovery_factor
    }
    /// The least time a linked breaker is held open.
    pub fn min_open(&self) -> Duration {
        self.min_open
    }
    /// The burn bucket in force: the one set, else the shortest burn window divided by
    /// [`MIN_BUCKETS_PER_WINDOW`].
    ///
    /// ```
    /// let c = surgewall::SloConfig::builder().build()?;
    /// assert_eq!(c.burn_bucket().as_secs(), 30); // 5 min / 10
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn burn_bucket(&self) -> Duration {
        self.burn_bucket.unwrap_or_else(|| {
            (self.fast.short.min(self.slow.short) / MIN_BUCKETS_PER_WINDOW)
                .max(Duration::from_nanos(1))
        })
    }
    /// The error budget in parts per billion: `round((1 - objective) * 1e9)`.
    fn budget_ppb(&self) -> u64 {
        ((1.0 - self.objective) * PPB).round() as u64
    }
}

/// Builds an [`SloConfig`]; [`build`](Self::build) names the field of a bad value.
///
/// ```
/// use std::time::Duration;
/// let err = surgewall::SloConfig::builder().objective(1.0).build().unwrap_err();
/// assert_eq!(err.field(), "objective");
/// let err = surgewall::SloConfig::builder()
///     .fast_burn(Duration::from_secs(60), Duration::from_secs(60), 10.0)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.field(), "fast_burn.short");
/// // A window must span at least 10 burn buckets.
/// let err = surgewall::SloConfig::builder()
///     .burn_bucket(Duration::from_secs(60))
///     .build()
///     .unwrap_err();
/// assert_eq!(err.field(), "burn_bucket");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SloConfigBuilder {
    c: SloConfig,
}

impl Default for SloConfigBuilder {
    fn default() -> Self {
        let min = Duration::from_secs(60);
        Self {
            c: SloConfig {
                objective: 0.999,
                window: Duration::from_secs(30 * 86_400),
                budget_buckets: 720,
                burn_bucket: None,
                fast: BurnPair::new(min * 60, min * 5, 14.4),
                slow: BurnPair::new(min * 360, min * 30, 6.0),
                recovery_factor: 0.5,
                min_calls: 1,
                min_open: min,
            },
        }
    }
}

impl SloConfigBuilder {
    /// The objective in (0, 1), e.g. 0.999.
    pub fn objective(mut self, o: f64) -> Self {
        self.c.objective = o;
        self
    }
    /// The rolling window the budget is counted over.
    pub fn window(mut self, d: Duration) -> Self {
        self.c.window = d;
        self
    }
    /// How many buckets the budget window is cut into (1..=65536).
    pub fn budget_buckets(mut self, n: u32) -> Self {
        self.c.budget_buckets = n;
        self
    }
    /// The bucket width of the burn windows (their resolution). Default: the shortest burn
    /// window divided by [`MIN_BUCKETS_PER_WINDOW`]; a longer bucket is refused.
    pub fn burn_bucket(mut self, d: Duration) -> Self {
        self.c.burn_bucket = Some(d);
        self
    }
    /// The fast pair: long and short window, threshold.
    pub fn fast_burn(mut self, long: Duration, short: Duration, threshold: f64) -> Self {
        self.c.fast = BurnPair::new(long, short, threshold);
        self
    }
    /// The slow pair: long and short window, threshold.
    pub fn slow_burn(mut self, long: Duration, short: Duration, threshold: f64) -> Self {
        self.c.slow = BurnPair::new(long, short, threshold);
        self
    }
    /// Recovery below `threshold * factor`, factor in (0, 1] (1 = no hysteresis).
    pub fn recovery_factor(mut self, f: f64) -> Self {
        self.c.recovery_factor = f;
        self
    }
    /// Calls the long window must hold before its pair can fire.
    pub fn min_calls(mut self, n: u64) -> Self {
        self.c.min_calls = n;
        self
    }
    /// The least time a linked breaker is held open.
    pub fn min_open(mut self, d: Duration) -> Self {
        self.c.min_open = d;
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<SloConfig, ConfigError> {
        let c = self.c;
        let o = check::rate("objective", c.objective)?;
        if o == 0.0 || o == 1.0 {
            return Err(ConfigError::new(
                "objective",
                format!("must be strictly between 0 and 1 (1 leaves no error budget), got {o}"),
            ));
        }
        if c.budget_ppb() == 0 {
            return Err(ConfigError::new(
                "objective",
                format!("{o} leaves less than one part per billion of error budget"),
            ));
        }
        check::non_zero("window", c.window)?;
        if !(1..=65_536).contains(&c.budget_buckets) {
            return Err(ConfigError::new(
                "budget_buckets",
                format!("must be within 1..=65536, got {}", c.budget_buckets),
            ));
        }
        if c.window / c.budget_buckets < Duration::from_micros(1) {
            return Err(ConfigError::new(
                "budget_buckets",
                "buckets would be shorter than 1 µs",
            ));
        }
        if let Some(b) = c.burn_bucket {
            check::non_zero("burn_bucket", b)?;
        }
        c.fast
            .check("fast_burn.short", "fast_burn.long", "fast_burn.threshold")?;
        c.slow
            .check("slow_burn.short", "slow_burn.long", "slow_burn.threshold")?;
        let shortest = c.fast.short.min(c.slow.short);
        if let Some(b) = c.burn_bucket {
            if b * MIN_BUCKETS_PER_WINDOW > shortest {
                return Err(ConfigError::new(
                    "burn_bucket",
                    format!(
                        "{b:?} is longer than a tenth of the shortest burn window ({shortest:?}): \
                         a window must span at least {MIN_BUCKETS_PER_WINDOW} buckets"
                    ),
                ));
            }
        }
        let longest = c.fast.long.max(c.slow.long);
        if longest > c.window {
            return Err(ConfigError::new(
                "window",
                format!(
                    "{:?} is shorter than the longest burn window ({longest:?})",
                    c.window
                ),
            ));
        }
        if duration_ns(longest).div_ceil(duration_ns(c.burn_bucket())) > 1 << 20 {
            return Err(ConfigError::new(
                "burn_bucket",
                format!(
                    "{:?} cuts the longest burn window ({longest:?}) into more than 2^20 buckets",
                    c.burn_bucket()
                ),
            ));
        }
        let f = check::rate("recovery_factor", c.recovery_factor)?;
        if f == 0.0 {
            return Err(ConfigError::new(
                "recovery_factor",
                "must be greater than 0",
            ));
        }
        Ok(c)
    }
}

/// One pair's view.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BurnMetrics {
    /// Burn rate over the long window (0 with no calls: see `long_calls`).
    pub long_burn: f64,
    /// Burn rate over the short window (0 with no calls: see `short_calls`).
    pub short_burn: f64,
    /// Calls in the long window.
    pub long_calls: u64,
    /// Calls in the short window (0: "no data", the pair's state stays as it is).
    pub short_calls: u64,
    /// The pair's threshold.
    pub threshold: f64,
    /// Whether the pair is firing (as of the last tick).
    pub burning: bool,
}

/// Everything observable about an SLO tracker.
///
/// ```
/// let slo = surgewall::SloTracker::new(surgewall::SloConfig::builder().build()?);
/// slo.record(true);
/// let m = slo.metrics();
/// assert_eq!((m.calls, m.bad, m.budget_remaining_fraction), (1, 0, 1.0));
/// # Ok::<(), surgewall::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SloMetrics {
    /// The objective.
    pub objective: f64,
    /// Calls in the SLO window.
    pub calls: u64,
    /// Bad calls in the SLO window.
    pub bad: u64,
    /// `bad / calls` (0 with no calls).
    pub error_rate: f64,
    /// Bad calls the objective allows in the window: `(1 - objective) * calls`.
    pub budget_allowed: f64,
    /// `budget_allowed - bad`: negative when the budget is overspent.
    pub budget_remaining: f64,
    /// `budget_remaining / budget_allowed` (1 with no calls; <= 0 when spent).
    pub budget_remaining_fraction: f64,
    /// The fast pair.
    pub fast: BurnMetrics,
    /// The slow pair.
    pub slow: BurnMetrics,
    /// Whether the tracker holds its linked breaker open.
    pub holding_breaker: bool,
    /// The burn bucket in force (the windows' resolution).
    pub burn_bucket: Duration,
    /// `SloBurn` events published, ever.
    pub burn_events: u64,
    /// `SloRecovered` events published, ever.
    pub recovered_events: u64,
    /// The clock the tracker reads.
    pub clock: ClockMode,
}

/// Builds an [`SloTracker`].
///
/// ```
/// use surgewall::{SloConfig, SloTracker, events::EventRing, clock::Clock};
/// let slo = SloTracker::builder(SloConfig::builder().build()?)
///     .clock(Clock::precise())
///     .events(EventRing::new(64))
///     .build();
/// assert_eq!(slo.metrics().calls, 0);
/// # Ok::<(), surgewall::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct SloTrackerBuilder {
    config: SloConfig,
    clock: Clock,
    events: Option<EventRing>,
    breaker: Option<Arc<Breaker>>,
}

impl SloTrackerBuilder {
    /// The clock (default coarse).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
    /// The event ring (default: the linked breaker's, else the process-wide one).
    pub fn events(mut self, events: EventRing) -> Self {
        self.events = Some(events);
        self
    }
    /// The breaker to hold open while the fast pair fires.
    pub fn breaker(mut self, breaker: Arc<Breaker>) -> Self {
        self.breaker = Some(breaker);
        self
    }
    /// Builds the tracker.
    pub fn build(self) -> SloTracker {
        let c = self.config;
        let budget_w = duration_ns(c.window) / u64::from(c.budget_buckets);
        let burn_w = duration_ns(c.burn_bucket());
        let longest = duration_ns(c.fast.long.max(c.slow.long));
        let limits = |p: &BurnPair| {
            let fire = (p.threshold * PPM).round() as u64;
            PairLimits {
                fire_ppm: fire,
                recover_ppm: ((p.threshold * c.recovery_factor * PPM).round() as u64).min(fire),
                long_buckets: duration_ns(p.long).div_ceil(burn_w) + 1,
                short_buckets: duration_ns(p.short).div_ceil(burn_w) + 1,
            }
        };
        let events = self
            .events
            .or_else(|| self.breaker.as_ref().map(|b| b.events().clone()))
            .unwrap_or_else(crate::breaker::default_events);
        SloTracker {
            budget: Ring::new(budget_w, c.budget_buckets as usize),
            // The whole buckets of the longest window, plus the current partial one.
            burn: Ring::new(burn_w, longest.div_ceil(burn_w) as usize + 1),
            limits: [limits(&c.fast), limits(&c.slow)],
            budget_ppb: c.budget_ppb(),
            burning: [AtomicU64::new(0), AtomicU64::new(0)],
            held_since: AtomicU64::new(0),
            burn_events: AtomicU64::new(0),
            recovered_events: AtomicU64::new(0),
            config: c,
            clock: self.clock,
            events,
            breaker: self.breaker,
            id: crate::source_id::next(crate::source_id::SLO),
        }
    }
}

/// A pair's thresholds and windows in integers (see the module docs).
#[derive(Clone, Copy, Debug)]
struct PairLimits {
    fire_ppm: u64,
    recover_ppm: u64,
    /// Buckets summed for each window: whole ones plus the current partial one.
    long_buckets: u64,
    short_buckets: u64,
}

/// `bad / calls` burns at `>= ppm / 1e6` times an error budget of `budget_ppb / 1e9`:
/// `bad * 1e15 >= ppm * budget_ppb * calls`, exactly, in u128 (saturating: a product that
/// overflows is far beyond any count).
fn burns_at(bad: u64, calls: u64, ppm: u64, budget_ppb: u64) -> bool {
    u128::from(bad) * 1_000_000_000_000_000
        >= u128::from(ppm)
            .saturating_mul(u128::from(budget_ppb))
            .saturating_mul(u128::from(calls))
}

/// An SLO tracker. Share it with `Arc`; every method takes `&self`.
pub struct SloTracker {
    budget: Ring,
    burn: Ring,
    limits: [PairLimits; 2],
    budget_ppb: u64,
    /// Per pair (0 fast, 1 slow): 1 while firing.
    burning: [AtomicU64; 2],
    /// When the tracker forced its breaker open (clock ns + 1), or 0.
    held_since: AtomicU64,
    burn_events: AtomicU64,
    recovered_events: AtomicU64,
    config: SloConfig,
    clock: Clock,
    events: EventRing,
    breaker: Option<Arc<Breaker>>,
    id: u64,
}

impl fmt::Debug for SloTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SloTracker")
            .field("id", &self.id)
            .field("config", &self.config)
            .finish()
    }
}

impl SloTracker {
    /// A tracker on the coarse clock, publishing to the default event ring.
    pub fn new(config: SloConfig) -> Self {
        Self::builder(config).build()
    }

    /// A builder.
    pub fn builder(config: SloConfig) -> SloTrackerBuilder {
        SloTrackerBuilder {
            config,
            clock: Clock::coarse(),
            events: None,
            breaker: None,
        }
    }

    /// The configuration.
    ///
    /// ```
    /// # let slo = surgewall::SloTracker::new(surgewall::SloConfig::builder().build()?);
    /// assert_eq!(slo.config().objective(), 0.999);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn config(&self) -> &SloConfig {
        &self.config
    }

    /// The `source` of this tracker's events.
    ///
    /// ```
    /// # let slo = surgewall::SloTracker::new(surgewall::SloConfig::builder().build()?);
    /// assert_eq!(slo.id() >> 56, 2);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The ring events go to.
    pub fn events(&self) -> &EventRing {
        &self.events
    }

    /// The linked breaker, if any.
    ///
    /// ```
    /// # let slo = surgewall::SloTracker::new(surgewall::SloConfig::builder().build()?);
    /// assert!(slo.breaker().is_none());
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn breaker(&self) -> Option<&Arc<Breaker>> {
        self.breaker.as_ref()
    }

    /// Records one call: `good` if it met the objective. Lock-free.
    ///
    /// ```
    /// # let slo = surgewall::SloTracker::new(surgewall::SloConfig::builder().build()?);
    /// slo.record(false);
    /// assert_eq!(slo.metrics().bad, 1);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn record(&self, good: bool) {
        let now = self.clock.now_ns();
        self.budget.add(now, !good);
        self.burn.add(now, !good);
    }

    /// Records a breaker outcome: success is good, failure bad, ignored nothing.
    ///
    /// ```
    /// # let slo = surgewall::SloTracker::new(surgewall::SloConfig::builder().build()?);
    /// slo.record_outcome(surgewall::Outcome::Ignored);
    /// assert_eq!(slo.metrics().calls, 0);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn record_outcome(&self, outcome: Outcome) {
        match outcome {
            Outcome::Success => self.record(true),
            Outcome::Failure => self.record(false),
            Outcome::Ignored => {}
        }
    }

    fn burn_rate(&self, (good, bad): (u64, u64)) -> f64 {
        let calls = good + bad;
        if calls == 0 {
            return 0.0;
        }
        bad as f64 * PPB / (self.budget_ppb as f64 * calls as f64)
    }

    /// A pair's view and its (long, short) counts as (good, bad).
    fn pair_counts(&self, now: u64, i: usize) -> (BurnMetrics, (u64, u64), (u64, u64)) {
        let l = &self.limits[i];
        let long = self.burn.sum(now, l.long_buckets);
        let short = self.burn.sum(now, l.short_buckets);
        let p = if i == 0 {
            &self.config.fast
        } else {
            &self.config.slow
        };
        let m = BurnMetrics {
            long_burn: self.burn_rate(long),
            short_burn: self.burn_rate(short),
            long_calls: long.0 + long.1,
            short_calls: short.0 + short.1,
            threshold: p.threshold,
            // Relaxed: a flag read for display; tick's CAS decides transitions.
            burning: self.burning[i].load(Ordering::Relaxed) == 1,
        };
        (m, long, short)
    }

    fn pair(&self, now: u64, i: usize) -> BurnMetrics {
        self.pair_counts(now, i).0
    }

    fn snapshot(&self, now: u64) -> SloMetrics {
        let c = &self.config;
        let (good, bad) = self.budget.sum(now, u64::from(c.budget_buckets));
        let calls = good + bad;
        let allowed = (1.0 - c.objective) * calls as f64;
        let remaining = allowed - bad as f64;
        SloMetrics {
            objective: c.objective,
            calls,
            bad,
            error_rate: if calls == 0 {
                0.0
            } else {
                bad as f64 / calls as f64
            },
            budget_allowed: allowed,
            budget_remaining: remaining,
            budget_remaining_fraction: if calls == 0 { 1.0 } else { remaining / allowed },
            fast: self.pair(now, 0),
            slow: self.pair(now, 1),
            holding_breaker: self.held_since.load(Ordering::Relaxed) != 0,
            burn_bucket: c.burn_bucket(),
            burn_events: self.burn_events.load(Ordering::Relaxed),
            recovered_events: self.recovered_events.load(Ordering::Relaxed),
            clock: self.clock.mode(),
        }
    }

    /// A snapshot, without evaluating the alert rules. Reads only.
    ///
    /// ```
    /// # let slo = surgewall::SloTracker::new(surgewall::SloConfig::builder().build()?);
    /// assert_eq!(slo.metrics().objective, 0.999);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn metrics(&self) -> SloMetrics {
        self.snapshot(self.clock.now_ns())
    }

    /// Evaluates both pairs: publishes `SloBurn` / `SloRecovered` on changes, holds or
    /// releases the linked breaker; returns the snapshot after. Call it every few seconds
    /// (the agent does); it costs a sum over the windows' buckets, never anything per call.
    ///
    /// ```
    /// # let slo = surgewall::SloTracker::new(surgewall::SloConfig::builder().build()?);
    /// slo.record(true);
    /// assert!(!slo.tick().fast.burning);
    /// # Ok::<(), surgewall::ConfigError>(())
    /// ```
    pub fn tick(&self) -> SloMetrics {
        let now = self.clock.now_ns();
        let c = self.config;
        for i in 0..2 {
            let (m, long, short) = self.pair_counts(now, i);
            let l = &self.limits[i];
            // The burn that decides: the slower of the two (both must reach the threshold to
            // fire; either falling under the recovery line recovers).
            let decided = m.long_burn.min(m.short_burn);
            let fire = m.long_calls >= c.min_calls.max(1)
                && burns_at(long.1, m.long_calls, l.fire_ppm, self.budget_ppb)
                && burns_at(short.1, m.short_calls, l.fire_ppm, self.budget_ppb);
            // No data is no evidence: an empty short window recovers nothing.
            let recover = m.short_calls > 0
                && !(burns_at(long.1, m.long_calls, l.recover_ppm, self.budget_ppb)
                    && burns_at(short.1, m.short_calls, l.recover_ppm, self.budget_ppb));
            let (from, to, kind) = if fire {
                (
                    0,
                    1,
                    EventKind::SloBurn {
                        fast: i == 0,
                        burn_rate: decided,
                    },
                )
            } else if recover {
                (
                    1,
                    0,
                    EventKind::SloRecovered {
                        fast: i == 0,
                        burn_rate: decided,
                    },
                )
            } else {
                continue;
            };
            // Relaxed: one CAS decides which tick announces the change (one event per change).
            if self.burning[i]
                .compare_exchange(from, to, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let counter = if to == 1 {
                &self.burn_events
            } else {
                &self.recovered_events
            };
            counter.fetch_add(1, Ordering::Relaxed);
            self.events.publish(Event {
                source: self.id,
                at_ns: now,
                kind,
            });
            if i == 0 && to == 1 {
                self.hold(now);
            }
        }
        let (fast, _, short) = self.pair_counts(now, 0);
        self.maybe_rehold(now, &fast, short);
        self.maybe_release(now, fast.short_calls);
        self.snapshot(now)
    }

    /// Forces the breaker open and remembers since when, unless already holding it.
    fn hold(&self, now: u64) {
        let Some(b) = &self.breaker else { return };
        // Relaxed: one CAS decides which tick takes the hold; the breaker's own atomics order
        // its state.
        if self
            .held_since
            .compare_exchange(0, now + 1, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            b.force_open(None);
        }
    }

    /// While the fast pair fires, a breaker handed to its probes that runs again (closed or
    /// half-open) is held again once the short window shows the burn at the threshold.
    fn maybe_rehold(&self, now: u64, fast: &BurnMetrics, (_, bad): (u64, u64)) {
        let Some(b) = &self.breaker else { return };
        if !fast.burning
            || self.held_since.load(Ordering::Relaxed) != 0
            || !matches!(b.state(), State::Closed | State::HalfOpen)
        {
            return;
        }
        if fast.short_calls > 0
            && burns_at(
                bad,
                fast.short_calls,
                self.limits[0].fire_ppm,
                self.budget_ppb,
            )
        {
            self.hold(now);
        }
    }

    /// Hands a held breaker to its probes after `min_open`, when the fast pair has recovered
    /// or the short window holds no call (the probe rule).
    fn maybe_release(&self, now: u64, short_calls: u64) {
        let Some(b) = &self.breaker else { return };
        let held = self.held_since.load(Ordering::Relaxed);
        if held == 0 {
            return;
        }
        if self.burning[0].load(Ordering::Relaxed) == 1 && short_calls > 0 {
            return; // firing on evidence: keep holding
        }
        if now.saturating_sub(held - 1) < duration_ns(self.config.min_open) {
            return;
        }
        if self
            .held_since
            .compare_exchange(held, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
            && b.state() == State::ForcedOpen
        {
            // Let probes decide rather than closing outright: either the burn stopped, or
            // nothing was called and only probes can tell.
            let _ = b.half_open();
        }
    }
}
