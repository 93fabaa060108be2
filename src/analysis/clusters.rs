//! Named clusters of a 2-D layout: seeded k-means (k-means++ seeding, Lloyd iterations) on the
//! map's positions, each cluster named by the caption words most over-represented in it
//! (a word's share of the cluster's captions over its share of all captions). The explorer draws
//! the names at the centres; the same positions, captions and seed give the same labels.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Words that name nothing.
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "in", "on", "at", "to", "is", "are", "it", "its", "with",
    "into", "from", "by", "for", "then", "as", "that", "this", "over", "up", "down", "out", "off",
    "while", "very", "some", "one", "two", "be", "was", "has", "have", "there", "here", "who",
    "which", "where", "left", "right", "place", "around", "across", "along", "back", "forth",
];

/// One cluster of the layout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterLabel {
    /// The mean position of its members.
    pub center: [f32; 2],
    /// Up to three words, most distinctive first.
    pub name: String,
    pub size: usize,
}

fn distance2(a: [f32; 2], b: [f32; 2]) -> f32 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)
}

/// k-means on `positions`: each point's cluster, and the centres.
pub fn kmeans(positions: &[[f32; 2]], k: usize, seed: u64) -> (Vec<usize>, Vec<[f32; 2]>) {
    let n = positions.len();
    let k = k.min(n);
    if k == 0 {
        return (vec![0; n], Vec::new());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut centres = vec![positions[rng.random_range(0..n)]];
    let mut nearest: Vec<f32> = positions
        .iter()
        .map(|&p| distance2(p, centres[0]))
        .collect();
    while centres.len() < k {
        let total: f64 = nearest.iter().map(|&d| f64::from(d)).sum();
        let next = if total <= 0.0 {
            rng.random_range(0..n)
        } else {
            let mut target = rng.random::<f64>() * total;
            let mut chosen = n - 1;
            for (i, &d) in nearest.iter().enumerate() {
                target -= f64::from(d);
                if target <= 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        };
        centres.push(positions[next]);
        for (d, &p) in nearest.iter_mut().zip(positions) {
            *d = d.min(distance2(p, positions[next]));
        }
    }
    let mut assignment = vec![0; n];
    for _ in 0..50 {
        let mut changed = false;
        for (a, &p) in assignment.iter_mut().zip(positions) {
            let best = (0..k)
                .min_by(|&i, &j| distance2(p, centres[i]).total_cmp(&distance2(p, centres[j])))
                .unwrap_or(0);
            changed |= *a != best;
            *a = best;
        }
        let mut sums = vec![[0f64; 3]; k];
        for (&a, &p) in assignment.iter().zip(positions) {
            sums[a][0] += f64::from(p[0]);
            sums[a][1] += f64::from(p[1]);
            sums[a][2] += 1.0;
        }
        for (centre, sum) in centres.iter_mut().zip(&sums) {
            if sum[2] > 0.0 {
                *centre = [(sum[0] / sum[2]) as f32, (sum[1] / sum[2]) as f32];
            }
        }
        if !changed {
            break;
        }
    }
    (assignment, centres)
}

fn words(caption: &str) -> BTreeSet<String> {
    caption
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| {
            w.len() > 1
                && !STOPWORDS.contains(&w.as_str())
                && !w.chars().all(|c| c.is_ascii_digit())
        })
        .collect()
}

/// The mean index of `word` among the words of the captions that hold it.
fn mean_position<'a>(word: &str, captions: impl Iterator<Item = &'a str>) -> f64 {
    let (mut sum, mut count) = (0.0, 0usize);
    for caption in captions {
        let position = caption
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .position(|w| w.eq_ignore_ascii_case(word));
        if let Some(position) = position {
            sum += position as f64;
            count += 1;
        }
    }
    if count == 0 {
        f64::MAX
    } else {
        sum / count as f64
    }
}

/// Clusters `positions` into `k` groups named from `captions` (one per position).
pub fn cluster_labels(
    positions: &[[f32; 2]],
    captions: &[String],
    k: usize,
    seed: u64,
) -> Vec<ClusterLabel> {
    assert_eq!(positions.len(), captions.len(), "one caption per position");
    let (assignment, centres) = kmeans(positions, k, seed);
    let bags: Vec<BTreeSet<String>> = captions.iter().map(|c| words(c)).collect();
    let mut overall: BTreeMap<&str, usize> = BTreeMap::new();
    for bag in &bags {
        for w in bag {
            *overall.entry(w).or_default() += 1;
        }
    }
    let n = positions.len().max(1) as f64;
    let mut labels = Vec::with_capacity(centres.len());
    for (c, &center) in centres.iter().enumerate() {
        let members: Vec<usize> = (0..positions.len())
            .filter(|&i| assignment[i] == c)
            .collect();
        if members.is_empty() {
            continue;
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for &i in &members {
            for w in &bags[i] {
                *counts.entry(w).or_default() += 1;
            }
        }
        let size = members.len() as f64;
        let mut scored: Vec<(&str, f64)> = counts
            .iter()
            // A name word is held by at least a third of the cluster's captions.
            .filter(|&(_, &count)| count as f64 >= size / 3.0)
            .map(|(&w, &count)| {
                let lift = (count as f64 / size) / (overall[w] as f64 / n);
                (w, lift * (count as f64 / size))
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        // The most distinctive words, read in the order the captions say them ("three sided
        // shape", not "shape sided three").
        let mut chosen: Vec<(&str, f64)> = scored
            .iter()
            .take(3)
            .map(|&(w, _)| {
                (
                    w,
                    mean_position(w, members.iter().map(|&i| captions[i].as_str())),
                )
            })
            .collect();
        chosen.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(b.0)));
        let name = chosen.iter().map(|(w, _)| *w).collect::<Vec<_>>().join(" ");
        labels.push(ClusterLabel {
            center,
            name,
            size: members.len(),
        });
    }
    labels.sort_by(|a, b| b.size.cmp(&a.size).then(a.name.cmp(&b.name)));
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_separate_groups_get_their_own_words_and_the_same_labels_again() {
        let mut positions = Vec::new();
        let mut captions = Vec::new();
        // The verbs vary within a group: the names are what every caption of a group shares.
        let verbs = ["spins", "drifts", "falls", "bounces"];
        for i in 0..20 {
            let t = i as f32 * 0.1;
            let verb = verbs[i % verbs.len()];
            positions.push([t, t.sin()]);
            captions.push(format!("a red star {verb} {i}"));
            positions.push([50.0 + t, 40.0 - t]);
            captions.push(format!("the green ring {verb} slowly {i}"));
        }
        let labels = cluster_labels(&positions, &captions, 2, 7);
        assert_eq!(labels.len(), 2);
        let names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
        assert!(
            names
                .iter()
                .any(|n| n.contains("red") && n.contains("star")),
            "{names:?}"
        );
        assert!(
            names
                .iter()
                .any(|n| n.contains("green") && n.contains("ring")),
            "{names:?}"
        );
        assert!(names.iter().all(|n| !n.contains("spins")), "{names:?}");
        assert!(labels.iter().all(|l| l.size == 20));
        assert_eq!(labels, cluster_labels(&positions, &captions, 2, 7));
    }
}
