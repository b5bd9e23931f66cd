//! What a registry needs from its values: whether they are busy, and since when they are idle.

use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};

/// A value a registry can hold and evict.
///
/// The registry calls these methods only while it holds the lock of the entry's table shard,
/// so no caller is inside [`Registry::with`](super::Registry::with) for that entry at the
/// same time.
///
/// ```
/// use surgewall::registry::{Entry, IdleMark};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// /// A counter of open connections, evictable when none is open.
/// #[derive(Default)]
/// struct Conns { open: AtomicU64, opened: AtomicU64, idle: IdleMark }
///
/// impl Entry for Conns {
///     fn idle_since(&self, now_ns: u64) -> Option<u64> {
///         if self.open.load(Ordering::SeqCst) != 0 {
///             return None; // busy: never evicted
///         }
///         Some(self.idle.observe(self.opened.load(Ordering::Relaxed), now_ns))
///     }
/// }
/// // `Arc<Conns>` is an `Entry` too: registries usually hold shared values.
/// let c = std::sync::Arc::new(Conns::default());
/// assert_eq!(c.idle_since(5), Some(5));
/// ```
pub trait Entry: Sized + Send + Sync {
    /// `None` while the value is in use (it is never evicted then); otherwise the time (on the
    /// caller's `now_ns` scale) since which it has been idle. Called by
    /// [`Registry::sweep`](super::Registry::sweep) with that sweep's `now_ns`.
    fn idle_since(&self, now_ns: u64) -> Option<u64>;

    /// Commits the eviction of a value [`idle_since`](Self::idle_since) found idle long
    /// enough: `false` keeps it (it became busy in between, through a path that does not take
    /// the registry's lock). The default cannot fail.
    fn try_evict(&self) -> bool {
        true
    }
}

/// A shared value is an entry when the value is: registries hand out `Arc` clones, which stay
/// valid after the entry is evicted.
impl<T: Entry> Entry for std::sync::Arc<T> {
    fn idle_since(&self, now_ns: u64) -> Option<u64> {
        T::idle_since(self, now_ns)
    }

    fn try_evict(&self) -> bool {
        T::try_evict(self)
    }
}

/// Tracks since when a value is idle without a clock read on its hot path.
///
/// A value exposes a counter that moves on every use (calls completed, for example). Each sweep
/// calls [`observe`](Self::observe) with the counter and the sweep's time: if the counter moved
/// since the last sweep, the value was used and the mark restarts at this sweep; otherwise it
/// has been idle since the mark. So an entry is evicted between `idle_ttl` and `idle_ttl` + one
/// sweep interval after its last use, and calls pay nothing for it.
///
/// ```
/// use surgewall::registry::IdleMark;
///
/// let mark = IdleMark::default();
/// assert_eq!(mark.observe(7, 100), 100); // first look: idle from now on
/// assert_eq!(mark.observe(7, 500), 100); // unchanged: still idle since 100
/// assert_eq!(mark.observe(8, 900), 900); // used in between: restarts
/// ```
#[derive(Debug)]
pub struct IdleMark {
    activity: StdAtomicU64,
    since_ns: StdAtomicU64,
}

impl Default for IdleMark {
    fn default() -> Self {
        Self {
            activity: StdAtomicU64::new(0),
            since_ns: StdAtomicU64::new(u64::MAX),
        }
    }
}

impl IdleMark {
    /// Records `activity` seen at `now_ns`; returns since when the value has been idle.
    pub fn observe(&self, activity: u64, now_ns: u64) -> u64 {
        // Relaxed: only sweeps touch the mark, and the registry serialises them per entry with
        // its shard lock.
        let since = self.since_ns.load(StdOrdering::Relaxed);
        if since != u64::MAX && self.activity.load(StdOrdering::Relaxed) == activity {
            return since;
        }
        self.activity.store(activity, StdOrdering::Relaxed);
        self.since_ns.store(now_ns, StdOrdering::Relaxed);
        now_ns
    }
}
