//! Half-open probes' identities: which numbers of an episode are out and which have settled.
//!
//! A HALF_OPEN episode hands out `half_open_calls` probes. Each takes the lowest free number
//! when it is admitted (after the CAS on the state word that counted it, I1) and its permit
//! carries that number ([`RawPermit::probe`]). A probe settles once: reported (a success or a
//! failure: its number stays taken) or released (ignored: its number is free again for the
//! next probe). A second report or release of a number, or one of a number that is not out,
//! is refused, whatever the other probes do: without numbers a duplicate report was taken as
//! another outstanding probe's and could close the episode (issue 15).
//!
//! Two bit masks per episode, `taken` and `reported`, hold that; both change together in one
//! CAS on the word that holds them, so a report and a release of the same number never both
//! succeed. Every number taken is counted in the state word's `admitted` first and released
//! there last, so `taken` never holds more numbers than `admitted` counts: an admitted probe
//! always finds a free number. The named breaker keeps the masks in [`ProbeSlots`]; a keyed
//! breaker's cell in its probe word (`keyed.rs`).

use super::state::Word;
use crate::sync::{AtomicU64, Ordering};

/// How a probe settles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settle {
    /// Reported (success or failure): the number stays taken.
    Report,
    /// Released unused (ignored): the number is free again.
    Release,
}

/// Why a probe's number could not settle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The episode is over (the state word left its generation).
    Late,
    /// The number is not out: already reported or released, or never taken.
    NotOut,
}

/// The lowest free number among the `limit` low bits of `taken`, as a one-bit mask.
#[inline]
pub(crate) fn lowest_free(taken: u64, limit: u32) -> Option<u64> {
    let all = if limit >= 64 {
        u64::MAX
    } else {
        (1 << limit) - 1
    };
    let free = !taken & all;
    (free != 0).then(|| free & free.wrapping_neg())
}

/// The masks `(taken, reported)` after the probe of one-bit mask `bit` settles `how`, or
/// `None` when that probe is not out.
#[inline]
pub(crate) fn settled(taken: u64, reported: u64, bit: u64, how: Settle) -> Option<(u64, u64)> {
    if taken & bit == 0 || reported & bit != 0 {
        return None;
    }
    Some(match how {
        Settle::Report => (taken, reported | bit),
        Settle::Release => (taken & !bit, reported),
    })
}

/// Numbers per word of [`ProbeSlots`].
const PER_WORD: u64 = 12;
const MASK: u64 = (1 << PER_WORD) - 1;

/// The named breaker's probe numbers: words `[generation 40 | taken 12 | reported 12]`, one
/// per 12 probes (`half_open_calls` up to 65 535: at most 5 462 words, 43 KB; one word up to
/// 12 probes). A word of another generation reads as empty: nothing is reset when an episode
/// begins. The whole generation is the tag, so a word left by an old episode is never read as
/// the current one's (a generation comes back only after 2^40 transitions).
#[derive(Debug)]
pub(crate) struct ProbeSlots {
    words: Box<[AtomicU64]>,
    probes: u64,
}

impl ProbeSlots {
    /// Room for `probes` numbers per episode.
    pub(crate) fn new(probes: u32) -> Self {
        let probes = u64::from(probes);
        let n = probes.div_ceil(PER_WORD).max(1);
        ProbeSlots {
            words: (0..n).map(|_| AtomicU64::new(0)).collect(),
            probes,
        }
    }

    fn masks(word: u64, generation: u64) -> (u64, u64) {
        if word >> (2 * PER_WORD) != generation {
            return (0, 0);
        }
        ((word >> PER_WORD) & MASK, word & MASK)
    }

    fn pack(generation: u64, taken: u64, reported: u64) -> u64 {
        generation << (2 * PER_WORD) | taken << PER_WORD | reported
    }

    /// Takes the lowest free number of the episode of `generation` for a probe just admitted
    /// under it (`state` is the breaker's state word). When the episode is already over the
    /// number does not matter (the permit is late) and 0 is returned.
    pub(crate) fn claim(&self, state: &AtomicU64, generation: u64) -> u64 {
        for (k, slot) in self.words.iter().enumerate() {
            let base = k as u64 * PER_WORD;
            let limit = (self.probes - base.min(self.probes)).min(PER_WORD) as u32;
            // Acquire loads and AcqRel CAS: a release's clearing of its bit happened before
            // it gave the count back in the state word, which this caller's admission CAS read.
            let mut cur = slot.load(Ordering::Acquire);
            loop {
                if Word(state.load(Ordering::Acquire)).generation() != generation {
                    return 0;
                }
                let (taken, reported) = Self::masks(cur, generation);
                let Some(bit) = lowest_free(taken, limit) else {
                    break;
                };
                match slot.compare_exchange_weak(
                    cur,
                    Self::pack(generation, taken | bit, reported),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return base + u64::from(bit.trailing_zeros()),
                    Err(v) => cur = v,
                }
            }
        }
        // Unreachable: `taken` never holds more numbers than the state word admitted.
        debug_assert!(false, "an admitted probe found no free number");
        0
    }

    /// Settles probe `index` of the episode of `generation`.
    pub(crate) fn settle(
        &self,
        state: &AtomicU64,
        generation: u64,
        index: u64,
        how: Settle,
    ) -> Result<(), Refused> {
        let Some(slot) = self.words.get((index / PER_WORD) as usize) else {
            return Err(Refused::NotOut);
        };
        let bit = 1 << (index % PER_WORD);
        let mut cur = slot.load(Ordering::Acquire);
        loop {
            if Word(state.load(Ordering::Acquire)).generation() != generation {
                return Err(Refused::Late);
            }
            let (taken, reported) = Self::masks(cur, generation);
            let (t, r) = settled(taken, reported, bit, how).ok_or(Refused::NotOut)?;
            match slot.compare_exchange_weak(
                cur,
                Self::pack(generation, t, r),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(v) => cur = v,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_taken_lowest_first_and_settle_once() {
        assert_eq!(lowest_free(0b1011, 4), Some(0b0100));
        assert_eq!(lowest_free(0b1111, 4), None);
        assert_eq!(lowest_free(u64::MAX >> 1, 64), Some(1 << 63));
        assert_eq!(settled(0b1, 0, 0b1, Settle::Report), Some((0b1, 0b1)));
        assert_eq!(
            settled(0b1, 0b1, 0b1, Settle::Report),
            None,
            "reported twice"
        );
        assert_eq!(
            settled(0b1, 0b1, 0b1, Settle::Release),
            None,
            "released after its report"
        );
        assert_eq!(settled(0b11, 0, 0b10, Settle::Release), Some((0b01, 0)));
        assert_eq!(settled(0b01, 0, 0b10, Settle::Report), None, "never taken");
    }

    #[test]
    fn slots_span_words_and_ignore_other_generations() {
        let state = AtomicU64::new(Word::new(super::super::State::HalfOpen, 5).0);
        let slots = ProbeSlots::new(30);
        assert_eq!(slots.words.len(), 3);
        let numbers: Vec<u64> = (0..30).map(|_| slots.claim(&state, 5)).collect();
        assert_eq!(numbers, (0..30).collect::<Vec<_>>());
        assert_eq!(slots.settle(&state, 5, 29, Settle::Report), Ok(()));
        assert_eq!(
            slots.settle(&state, 5, 29, Settle::Report),
            Err(Refused::NotOut)
        );
        assert_eq!(slots.settle(&state, 5, 13, Settle::Release), Ok(()));
        assert_eq!(
            slots.claim(&state, 5),
            13,
            "a released number is taken again"
        );
        assert_eq!(
            slots.settle(&state, 5, 30, Settle::Report),
            Err(Refused::NotOut)
        );
        assert_eq!(
            slots.settle(&state, 4, 0, Settle::Report),
            Err(Refused::Late)
        );
        // A new episode starts empty, with nothing reset.
        state.store(
            Word::new(super::super::State::HalfOpen, 7).0,
            Ordering::Relaxed,
        );
        assert_eq!(
            slots.settle(&state, 7, 0, Settle::Report),
            Err(Refused::NotOut)
        );
        assert_eq!(slots.claim(&state, 7), 0);
    }
}
