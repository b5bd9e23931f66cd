//! A ring of time buckets with lock-free counters, good and bad per bucket.
//!
//! Bucket `e` covers clock time `[e * width, (e + 1) * width)` and lives in slot `e % len`.
//! Each slot holds two words `[epoch tag: 24 | count: 40]`; a recorder CASes its word: same
//! epoch, add one; older epoch, restart at one. A reader counts a word only if its tag is the
//! epoch it expects, so stale buckets read as empty without anybody clearing them. Tags repeat
//! after 2^24 buckets (32 years of one-minute buckets); a bucket left untouched for exactly a
//! multiple of that would be misread — accepted.

use crate::sync::{AtomicU64, Ordering};

const TAG_SHIFT: u32 = 40;
const COUNT_MASK: u64 = (1 << TAG_SHIFT) - 1;
const TAG_MASK: u64 = (1 << 24) - 1;

fn count_in(word: u64, epoch: u64) -> u64 {
    if word >> TAG_SHIFT == epoch & TAG_MASK {
        word & COUNT_MASK
    } else {
        0
    }
}

pub(crate) struct Ring {
    width_ns: u64,
    slots: Box<[[AtomicU64; 2]]>,
}

impl Ring {
    pub(crate) fn new(width_ns: u64, len: usize) -> Self {
        Self {
            width_ns: width_ns.max(1),
            slots: (0..len.max(1))
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        }
    }

    /// Counts one outcome at `now`.
    pub(crate) fn add(&self, now: u64, bad: bool) {
        let e = now / self.width_ns;
        let word = &self.slots[(e % self.slots.len() as u64) as usize][usize::from(bad)];
        let mut cur = word.load(Ordering::Relaxed);
        loop {
            let next = (e & TAG_MASK) << TAG_SHIFT | (count_in(cur, e) + 1).min(COUNT_MASK);
            // Relaxed: the word is self-contained (tag and count move together) and publishes
            // nothing else.
            match word.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(w) => cur = w,
            }
        }
    }

    /// (good, bad) over the last `n` buckets ending with the one holding `now`.
    pub(crate) fn sum(&self, now: u64, n: u64) -> (u64, u64) {
        let e = now / self.width_ns;
        let n = n.min(self.slots.len() as u64).min(e + 1);
        let (mut good, mut bad) = (0, 0);
        for ep in e + 1 - n..=e {
            let slot = &self.slots[(ep % self.slots.len() as u64) as usize];
            // Relaxed: advisory reads of self-contained words.
            good += count_in(slot[0].load(Ordering::Relaxed), ep);
            bad += count_in(slot[1].load(Ordering::Relaxed), ep);
        }
        (good, bad)
    }
}
