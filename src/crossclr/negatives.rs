//! Which negatives each anchor kept and which the loss pruned.

use super::Mode;
use super::connectivity::{influential_mask, official_kept_intra};

/// Where an anchor's intra-modal negatives come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntraSource {
    /// The other samples of the batch (no queue): intra column j is batch item j.
    Batch,
    /// The slots of the queue: intra column k is queue slot k.
    Queue,
}

/// The negative sets of one direction of a batch. Pruning is decided per candidate (column), the
/// same for every anchor, except that an anchor never counts itself.
#[derive(Debug, Clone, PartialEq)]
pub struct NegativeSets {
    /// Cross-modal candidate j (batch item j of the other modality) is pruned for every anchor i ≠ j.
    pub cross_pruned: Vec<bool>,
    /// Intra-modal candidate columns (see [`IntraSource`]) that are pruned.
    pub intra_pruned: Vec<bool>,
    /// The intra column each anchor treats as itself and never uses as a negative. In official mode
    /// with a queue this is the slot the released code masks, which is not the anchor's own slot.
    pub own_intra: Vec<Option<usize>>,
    pub intra_source: IntraSource,
}

/// The candidates of one anchor, by index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnchorNegatives {
    /// The anchor's positive (the paired sample of the other modality).
    pub positive: usize,
    pub cross_kept: Vec<usize>,
    pub cross_pruned: Vec<usize>,
    pub intra_kept: Vec<usize>,
    pub intra_pruned: Vec<usize>,
}

impl NegativeSets {
    /// The pruning rule of DESIGN.md §4, the one the loss applies: cross-modal candidate j is
    /// pruned when it is influential (`c_j/max c > γ`, from the anchors' `connectivity`); an
    /// intra-modal candidate k is pruned by its own `intra_connectivity` — in paper mode when
    /// influential, in official mode unless `c_k/max c < γ`. Everything that shows what the loss
    /// pruned (the loss itself, `crossclr negatives`, the graph and the audit) goes through here.
    pub fn prune(
        mode: Mode,
        gamma: f64,
        connectivity: &[f64],
        intra_connectivity: &[f64],
        own_intra: Vec<Option<usize>>,
        intra_source: IntraSource,
    ) -> Self {
        let intra_pruned = match mode {
            Mode::Paper => influential_mask(intra_connectivity, gamma, mode),
            Mode::Official => official_kept_intra(intra_connectivity, gamma)
                .into_iter()
                .map(|kept| !kept)
                .collect(),
        };
        Self {
            cross_pruned: influential_mask(connectivity, gamma, mode),
            intra_pruned,
            own_intra,
            intra_source,
        }
    }

    /// The sets of a batch without a queue, as [`super::CrossClr`] forms them: the intra-modal
    /// candidates are the batch itself, pruned by the same connectivity, each anchor its own
    /// intra column.
    pub fn of_batch(mode: Mode, gamma: f64, connectivity: &[f64]) -> Self {
        Self::prune(
            mode,
            gamma,
            connectivity,
            connectivity,
            (0..connectivity.len()).map(Some).collect(),
            IntraSource::Batch,
        )
    }

    /// No pruning at all: every other sample is a negative (InfoNCE and friends).
    pub fn none(batch: usize, intra_candidates: usize, source: IntraSource) -> Self {
        Self {
            cross_pruned: vec![false; batch],
            intra_pruned: vec![false; intra_candidates],
            own_intra: match source {
                IntraSource::Batch => (0..batch).map(Some).collect(),
                IntraSource::Queue => vec![None; batch],
            },
            intra_source: source,
        }
    }

    pub fn anchors(&self) -> usize {
        self.cross_pruned.len()
    }

    /// The kept and pruned candidates of anchor `anchor`.
    pub fn for_anchor(&self, anchor: usize) -> AnchorNegatives {
        let mut out = AnchorNegatives {
            positive: anchor,
            ..Default::default()
        };
        for (j, &pruned) in self.cross_pruned.iter().enumerate() {
            if j == anchor {
                continue;
            }
            if pruned {
                out.cross_pruned.push(j);
            } else {
                out.cross_kept.push(j);
            }
        }
        let own = self.own_intra.get(anchor).copied().flatten();
        for (k, &pruned) in self.intra_pruned.iter().enumerate() {
            if Some(k) == own {
                continue;
            }
            if pruned {
                out.intra_pruned.push(k);
            } else {
                out.intra_kept.push(k);
            }
        }
        out
    }

    /// How many negatives of anchor `anchor` were pruned: (cross-modal, intra-modal).
    pub fn pruned_counts(&self, anchor: usize) -> (usize, usize) {
        let own = self.own_intra.get(anchor).copied().flatten();
        let cross = self
            .cross_pruned
            .iter()
            .enumerate()
            .filter(|&(j, &p)| p && j != anchor)
            .count();
        let intra = self
            .intra_pruned
            .iter()
            .enumerate()
            .filter(|&(k, &p)| p && Some(k) != own)
            .count();
        (cross, intra)
    }

    /// (pruned, candidates) summed over all anchors.
    pub fn pruned_and_total(&self) -> (usize, usize) {
        let mut pruned = 0;
        let mut total = 0;
        for anchor in 0..self.anchors() {
            let (cross, intra) = self.pruned_counts(anchor);
            pruned += cross + intra;
            let own = self.own_intra[anchor].is_some_and(|k| k < self.intra_pruned.len());
            total += self.cross_pruned.len().saturating_sub(1) + self.intra_pruned.len()
                - usize::from(own);
        }
        (pruned, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_never_count_themselves() {
        let sets = NegativeSets {
            cross_pruned: vec![true, false, true],
            intra_pruned: vec![true, false, true],
            own_intra: vec![Some(0), Some(1), Some(2)],
            intra_source: IntraSource::Batch,
        };
        let a0 = sets.for_anchor(0);
        assert_eq!(a0.cross_pruned, vec![2]);
        assert_eq!(a0.cross_kept, vec![1]);
        assert_eq!(a0.intra_pruned, vec![2]);
        assert_eq!(a0.intra_kept, vec![1]);
        assert_eq!(sets.pruned_counts(1), (2, 2));
        // candidates: 3 anchors × (2 cross + 2 intra) = 12; pruned: 1+1 + 2+2 + 1+1 = 8
        assert_eq!(sets.pruned_and_total(), (8, 12));
    }
}
