//! The data layout of training: dense indices of the ids, the ratings grouped by user and by
//! item, and the initial factors.

use rayon::prelude::*;

/// Sorted distinct ids and the dense index of each.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IdIndex {
    pub(crate) ids: Vec<i32>,
}

impl IdIndex {
    pub(crate) fn new(ids: &[i32]) -> Self {
        let mut ids = ids.to_vec();
        ids.par_sort_unstable();
        ids.dedup();
        IdIndex { ids }
    }

    pub(crate) fn get(&self, id: i32) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Ratings grouped by one side (compressed rows): the entries of entity `e` are
/// `offsets[e]..offsets[e + 1]` of `others` and `values`.
pub(super) struct Grouped {
    pub(super) offsets: Vec<usize>,
    pub(super) others: Vec<u32>,
    pub(super) values: Vec<f32>,
}

impl Grouped {
    pub(super) fn new(n: usize, keys: &[u32], others: &[u32], values: &[f32]) -> Self {
        let mut offsets = vec![0usize; n + 1];
        for &k in keys {
            offsets[k as usize + 1] += 1;
        }
        for e in 0..n {
            offsets[e + 1] += offsets[e];
        }
        let mut next = offsets.clone();
        let mut grouped_others = vec![0u32; keys.len()];
        let mut grouped_values = vec![0f32; keys.len()];
        for ((&k, &o), &v) in keys.iter().zip(others).zip(values) {
            let at = &mut next[k as usize];
            grouped_others[*at] = o;
            grouped_values[*at] = v;
            *at += 1;
        }
        Grouped {
            offsets,
            others: grouped_others,
            values: grouped_values,
        }
    }
}

impl Grouped {
    /// Implicit-feedback entries grouped by user, sorted by item within a user, duplicate (user,
    /// item) pairs merged: the value is the confidence, negative for preference 0; merged
    /// confidences add up, and the preference is 1 if any of them is.
    pub(super) fn merged(n: usize, keys: &[u32], others: &[u32], values: &[f32]) -> Self {
        let mut triples: Vec<(u32, u32, f32)> = keys
            .iter()
            .zip(others)
            .zip(values)
            .map(|((k, o), v)| (*k, *o, *v))
            .collect();
        // A stable sort: duplicates keep their input order, so their sum does not depend on
        // threads.
        triples.par_sort_by_key(|(k, o, _)| (*k, *o));
        let mut offsets = vec![0usize; n + 1];
        let mut grouped_others = Vec::with_capacity(triples.len());
        let mut grouped_values: Vec<f32> = Vec::with_capacity(triples.len());
        let mut last: Option<(u32, u32)> = None;
        for (k, o, v) in triples {
            if last == Some((k, o)) {
                let merged = grouped_values.last_mut().expect("a previous entry");
                let positive = *merged > 0.0 || v > 0.0;
                let c = merged.abs() + v.abs();
                *merged = if positive { c } else { -c };
            } else {
                offsets[k as usize + 1] += 1;
                grouped_others.push(o);
                grouped_values.push(v);
                last = Some((k, o));
            }
        }
        for e in 0..n {
            offsets[e + 1] += offsets[e];
        }
        Grouped {
            offsets,
            others: grouped_others,
            values: grouped_values,
        }
    }
}

/// Splitmix64, to derive one independent seed per entity.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` factor vectors of `rank`, each filled by `fill` from a random stream of its own (seeded by
/// `seed`, the side and the entity), so the result does not depend on threads.
fn per_entity(
    n: usize,
    rank: usize,
    seed: u64,
    side: u64,
    fill: impl Fn(&mut fastrand::Rng, &mut [f32]) + Sync,
) -> Vec<f32> {
    let mut factors = vec![0f32; n * rank];
    factors
        .par_chunks_mut(rank)
        .enumerate()
        .for_each(|(e, out)| {
            let mut rng = fastrand::Rng::with_seed(mix(seed ^ mix(side ^ mix(e as u64))));
            fill(&mut rng, out);
        });
    factors
}

/// The `implicit` library's initialization: every factor uniform in [0, 0.01).
pub(super) fn uniform_factors(n: usize, rank: usize, seed: u64, side: u64) -> Vec<f32> {
    per_entity(n, rank, seed, side, |rng, out| {
        out.iter_mut().for_each(|v| *v = rng.f32() * 0.01);
    })
}

/// Spark's initialization: each factor vector drawn from a standard normal distribution and
/// scaled to unit length.
pub(super) fn initial_factors(n: usize, rank: usize, seed: u64, side: u64) -> Vec<f32> {
    per_entity(n, rank, seed, side, |rng, out| {
        let mut norm = 0f64;
        for v in out.iter_mut() {
            // Box–Muller; 1 - f64() is in (0, 1], so the logarithm is finite.
            let u1 = 1.0 - rng.f64();
            let u2 = rng.f64();
            let g = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            *v = g as f32;
            norm += g * g;
        }
        let norm = norm.sqrt() as f32;
        if norm > 0.0 {
            out.iter_mut().for_each(|v| *v /= norm);
        }
    })
}
