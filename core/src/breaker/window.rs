//! The sliding window, kept as marks on cumulative totals.
//!
//! The breaker never resets or rotates counters on the hot path. It keeps cumulative totals
//! (successes in striped cells, failures and slow calls in plain atomics) and the window keeps
//! *marks*: copies of those totals taken at the start of each bucket and at the start of the
//! episode. A window count is `totals - base`, where `base` is the mark of the oldest bucket
//! still in the window or the episode's start, whichever is later.
//!
//! * Time windows: bucket `e` covers `[e * width, (e + 1) * width)`. Whoever records the first
//!   call past `next_boundary` rolls the window: it wins one CAS on `epoch` and marks the
//!   buckets that began since. A success checks the boundary with one load; rolling is rare.
//! * Count windows: the clock is the call count. Bucket `e` covers calls
//!   `[e * step, (e + 1) * step)` with `step = ceil(calls / 64)`, so windows of up to 64 calls
//!   are exact and larger ones move in steps. Only failures and slow calls need marks (the
//!   number of calls in the window is known exactly), so only those paths roll.
//!
//! Marks are read without a lock: a reader racing a roll may see a mark from the previous lap
//! and fall back to the episode mark, so window counts can lag by the calls in flight at a
//! bucket boundary. The totals themselves are exact (invariant I2).

use crate::clock::duration_ns;
use crate::sync::{AtomicU64, Ordering};

use super::config::Window;

/// Cumulative totals, or a mark of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Successes that were not slow.
    pub(crate) ok: u64,
    /// Failures (slow or not).
    pub(crate) failures: u64,
    /// Successes that were slow.
    pub(crate) slow_ok: u64,
    /// Failures that were slow.
    pub(crate) slow_failures: u64,
}

impl Totals {
    pub(crate) fn calls(&self) -> u64 {
        self.ok
            .wrapping_add(self.slow_ok)
            .wrapping_add(self.failures)
    }

    fn minus(&self, base: &Totals) -> Counts {
        let calls = self.calls().saturating_sub(base.calls());
        let failures = self.failures.saturating_sub(base.failures).min(calls);
        let slow = (self.slow_ok + self.slow_failures)
            .saturating_sub(base.slow_ok + base.slow_failures)
            .min(calls);
        Counts {
            calls,
            failures,
            slow,
        }
    }
}

/// What the window holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls recorded (successes and failures; ignored calls count nowhere).
    pub calls: u64,
    /// Failures among them.
    pub failures: u64,
    /// Slow calls among them (successes or failures).
    pub slow: u64,
}

impl Counts {
    /// Failures / calls, or 0 without calls.
    pub fn failure_rate(&self) -> f64 {
        ratio(self.failures, self.calls)
    }
    /// Slow calls / calls, or 0 without calls.
    pub fn slow_rate(&self) -> f64 {
        ratio(self.slow, self.calls)
    }

    /// Whether the counts are enough to judge their rates: at least `minimum_calls` calls,
    /// and at least one.
    ///
    /// ```
    /// use surgewall::breaker::Counts;
    /// let c = Counts { calls: 3, failures: 3, slow: 0 };
    /// assert!(!c.judged(4));
    /// assert_eq!(c.judged(3).then(|| c.failure_rate()), Some(1.0));
    /// ```
    pub fn judged(&self, minimum_calls: u64) -> bool {
        self.calls >= minimum_calls.max(1)
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

/// A mark: the bucket (or episode) it belongs to, and the totals at its start.
struct Mark {
    tag: AtomicU64,
    ok: AtomicU64,
    failures: AtomicU64,
    slow_ok: AtomicU64,
    slow_failures: AtomicU64,
}

impl Mark {
    fn new() -> Self {
        Mark {
            tag: AtomicU64::new(u64::MAX),
            ok: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            slow_ok: AtomicU64::new(0),
            slow_failures: AtomicU64::new(0),
        }
    }

    // Relaxed throughout: marks are advisory snapshots (see the module comment); the tag is
    // written last with Release and read first with Acquire, so a reader that sees a tag sees
    // at least the totals written with it.
    fn store(&self, tag: u64, t: &Totals) {
        self.ok.store(t.ok, Ordering::Relaxed);
        self.failures.store(t.failures, Ordering::Relaxed);
        self.slow_ok.store(t.slow_ok, Ordering::Relaxed);
        self.slow_failures.store(t.slow_failures, Ordering::Relaxed);
        self.tag.store(tag, Ordering::Release);
    }

    fn load(&self) -> (u64, Totals) {
        let tag = self.tag.load(Ordering::Acquire);
        (
            tag,
            Totals {
                ok: self.ok.load(Ordering::Relaxed),
                failures: self.failures.load(Ordering::Relaxed),
                slow_ok: self.slow_ok.load(Ordering::Relaxed),
                slow_failures: self.slow_failures.load(Ordering::Relaxed),
            },
        )
    }
}

pub(crate) struct WindowMarks {
    kind: Kind,
    /// The newest bucket that has been marked.
    epoch: AtomicU64,
    /// Time windows: the start of bucket `epoch + 1`, in clock nanoseconds (u64::MAX for
    /// count windows, so the success path never rolls them).
    next_boundary: AtomicU64,
    slots: Box<[Mark]>,
    /// The start of the episode; its tag is the bucket the episode started in.
    episode: Mark,
}

#[derive(Clone, Copy)]
enum Kind {
    Time { width_ns: u64 },
    Count { calls: u64, step: u64 },
}

impl WindowMarks {
    pub(crate) fn new(window: Window, now_ns: u64) -> Self {
        let (kind, slots) = match window {
            Window::Time { duration, buckets } => {
                let width_ns = duration_ns(duration / buckets).max(1);
                (Kind::Time { width_ns }, buckets as usize)
            }
            Window::Count { calls } => {
                let calls = u64::from(calls);
                let step = calls.div_ceil(64);
                (
                    Kind::Count { calls, step },
                    calls.div_ceil(step) as usize + 1,
                )
            }
        };
        let w = WindowMarks {
            kind,
            epoch: AtomicU64::new(0),
            next_boundary: AtomicU64::new(u64::MAX),
            slots: (0..slots).map(|_| Mark::new()).collect(),
            episode: Mark::new(),
        };
        let zero = Totals::default();
        let e = w.epoch_of(now_ns, &zero);
        w.epoch.store(e, Ordering::Relaxed);
        w.mark_through(e, e, &zero);
        w.episode.store(e, &zero);
        w
    }

    fn epoch_of(&self, now_ns: u64, totals: &Totals) -> u64 {
        match self.kind {
            Kind::Time { width_ns } => now_ns / width_ns,
            Kind::Count { step, .. } => totals.calls() / step,
        }
    }

    /// The clock time at which the success path must roll the window (`u64::MAX`: never).
    #[inline]
    pub(crate) fn next_boundary(&self) -> u64 {
        // Relaxed: a stale boundary only makes one more caller try a roll that is already done.
        self.next_boundary.load(Ordering::Relaxed)
    }

    /// Starts a fresh episode at `totals`.
    pub(crate) fn reset(&self, now_ns: u64, totals: &Totals) {
        let e = self.epoch_of(now_ns, totals);
        self.episode.store(e, totals);
        if self.epoch.fetch_max(e, Ordering::AcqRel) < e {
            self.mark_through(e, e, totals);
        }
    }

    /// Marks the buckets that began since the last roll, with `totals` taken *before* the call
    /// being recorded is added (so it lands in the new bucket).
    pub(crate) fn roll(&self, now_ns: u64, totals: &Totals) {
        let e = self.epoch_of(now_ns, totals);
        let last = self.epoch.load(Ordering::Acquire);
        if e <= last {
            return;
        }
        // One roller per boundary; losers go on, their calls are covered by the winner's marks.
        if self
            .epoch
            .compare_exchange(last, e, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.mark_through(last.saturating_add(1), e, totals);
        }
    }

    fn mark_through(&self, from: u64, to: u64, totals: &Totals) {
        let n = self.slots.len() as u64;
        for x in from.max(to.saturating_sub(n - 1))..=to {
            self.slots[(x % n) as usize].store(x, totals);
        }
        if let Kind::Time { width_ns } = self.kind {
            self.next_boundary.store(
                to.saturating_add(1).saturating_mul(width_ns),
                Ordering::Relaxed,
            );
        }
    }

    /// The window's counts at `now_ns` given the current `totals`. Reads only.
    pub(crate) fn counts(&self, now_ns: u64, totals: &Totals) -> Counts {
        let (episode_tag, episode) = self.episode.load();
        let n = self.slots.len() as u64;
        match self.kind {
            Kind::Time { width_ns } => {
                let cur = now_ns / width_ns;
                let oldest = cur.saturating_sub(n - 1);
                if episode_tag >= oldest {
                    return totals.minus(&episode);
                }
                let last = self.epoch.load(Ordering::Acquire);
                if oldest > last {
                    // Nothing was recorded since bucket `last`, which has left the window.
                    return Counts::default();
                }
                match self.slots[(oldest % n) as usize].load() {
                    (tag, mark) if tag == oldest => totals.minus(&mark),
                    _ => totals.minus(&episode),
                }
            }
            Kind::Count { calls, step } => {
                let since_episode = totals.calls().saturating_sub(episode.calls());
                if since_episode <= calls {
                    return totals.minus(&episode);
                }
                // The window starts `calls` calls back; failures and slow calls are taken from
                // the mark of the bucket holding that call.
                let start = totals.calls() - calls;
                let oldest = start / step;
                if oldest > self.epoch.load(Ordering::Acquire) {
                    // Every failure rolls first, so none was recorded after bucket `epoch`,
                    // which has left the window.
                    return Counts {
                        calls,
                        failures: 0,
                        slow: 0,
                    };
                }
                let base = match self.slots[(oldest % n) as usize].load() {
                    (tag, mark) if tag == oldest && oldest >= episode_tag => mark,
                    _ => episode,
                };
                let c = totals.minus(&base);
                Counts {
                    calls,
                    failures: c.failures.min(calls),
                    slow: c.slow.min(calls),
                }
            }
        }
    }
}

#[cfg(all(test, not(surgewall_loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: u64 = 1_000_000_000;

    fn t(ok: u64, failures: u64) -> Totals {
        Totals {
            ok,
            failures,
            ..Totals::default()
        }
    }

    #[test]
    fn time_window_drops_whole_buckets() {
        // 10 s in 10 buckets of 1 s.
        let w = WindowMarks::new(
            Window::Time {
                duration: Duration::from_secs(10),
                buckets: 10,
            },
            0,
        );
        // 5 failures in bucket 0.
        w.roll(0, &t(0, 0));
        let after0 = t(0, 5);
        assert_eq!(w.counts(S / 2, &after0).failures, 5);
        // 3 successes in bucket 4.
        w.roll(4 * S, &after0);
        let after4 = t(3, 5);
        assert_eq!(
            w.counts(4 * S, &after4),
            Counts {
                calls: 8,
                failures: 5,
                slow: 0
            }
        );
        // At 10 s bucket 0 has left: only bucket 4's successes remain.
        assert_eq!(
            w.counts(10 * S, &after4),
            Counts {
                calls: 3,
                failures: 0,
                slow: 0
            }
        );
        // At 14 s bucket 4 has left too, even though nobody rolled.
        assert_eq!(w.counts(14 * S, &after4), Counts::default());
    }

    #[test]
    fn episode_reset_starts_fresh() {
        let w = WindowMarks::new(
            Window::Time {
                duration: Duration::from_secs(10),
                buckets: 10,
            },
            0,
        );
        let before = t(10, 10);
        w.reset(3 * S, &before);
        assert_eq!(w.counts(3 * S, &before), Counts::default());
        assert_eq!(w.counts(3 * S, &t(11, 10)).calls, 1);
    }

    #[test]
    fn count_window_is_exact_up_to_64_calls() {
        let w = WindowMarks::new(Window::Count { calls: 4 }, 0);
        // Outcomes F F S S S: the last four are F S S S.
        let mut tot = Totals::default();
        for fail in [true, true, false, false, false] {
            w.roll(0, &tot);
            if fail {
                tot.failures += 1;
            } else {
                tot.ok += 1;
            }
        }
        assert_eq!(
            w.counts(0, &tot),
            Counts {
                calls: 4,
                failures: 1,
                slow: 0
            }
        );
    }

    #[test]
    fn large_count_windows_move_in_steps() {
        let w = WindowMarks::new(Window::Count { calls: 1000 }, 0);
        let mut tot = Totals::default();
        // 100 failures, then 1000 successes (rolled only by failures: none).
        for _ in 0..100 {
            w.roll(0, &tot);
            tot.failures += 1;
        }
        tot.ok += 1000;
        let c = w.counts(0, &tot);
        assert_eq!(c.calls, 1000);
        // Step is 16 calls: at most one step of old failures may linger.
        assert!(c.failures <= 16, "{c:?}");
    }
}
