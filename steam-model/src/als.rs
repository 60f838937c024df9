//! Alternating least squares: implicit feedback (Hu, Koren and Volinsky 2008, as the `implicit`
//! library and Spark ML's `implicitPrefs` fit it) and explicit feedback, as Spark ML's `ALS` runs
//! it.

use std::fmt;

use nalgebra::{Cholesky, DMatrix, DVector, SMatrix, SVector};
use rayon::prelude::*;
use steam_core::{Error, Result};

use crate::ratings::Ratings;

/// Which problem ALS solves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Feedback {
    /// Implicit feedback: every review is an interaction, with a preference and a confidence
    /// ([`Confidence`]); all the other (user, game) pairs are preference 0 at confidence 1. Each
    /// entity minimizes Σ c·(p − xᵀy)² over every game (or user) + λ‖x‖², solved exactly through
    /// the YᵀY precomputation.
    #[default]
    Implicit,
    /// Explicit feedback as Spark ML's `ALS` (the reference's model): fits the ratings of the
    /// reviews only, an entity with n ratings regularized by λ·n.
    Explicit,
}

named_enum!(Feedback, "model", { Implicit => "implicit", Explicit => "explicit" });

/// How the implicit model reads a review. In both, the confidence is c = 1 + α·ln(1 + hours
/// played): an hour of play is evidence, and the logarithm keeps a 10,000-hour review from drowning
/// the rest. Duplicate (user, game) reviews add their confidences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Confidence {
    /// Every review is preference 1, whatever it says: "the user played it" (the `implicit`
    /// library's and Spark's usual reading, and `peers.py implicit-als`').
    Hours,
    /// A review that recommends the game is preference 1; one that does not is preference 0 at
    /// the same confidence: the player told us they did not like it, which is stronger evidence
    /// than a game never played. Served lists are "games you would recommend", so a negative
    /// review should push a game down, not up. (The `implicit` library reads a negative
    /// confidence the same way.)
    #[default]
    Signed,
}

named_enum!(Confidence, "confidence", { Hours => "hours", Signed => "signed" });

/// How the implicit model solves each entity's least squares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Solver {
    /// Exactly, by Cholesky: at ranks up to a few dozen as cheap as a few conjugate-gradient
    /// steps, and each half-iteration reaches the minimum. Items are solved first, then users,
    /// from Gaussian initial factors of unit length (Spark's order and initialization).
    #[default]
    Cholesky,
    /// As the `implicit` library does: `steps` conjugate-gradient steps from the entity's previous
    /// factors (an approximate solve: with few steps it stops short of the minimum, which acts as
    /// extra regularization), users first, then items, from initial factors uniform in
    /// [0, 0.01). For comparisons with that library at equal parameters.
    ConjugateGradient {
        /// Steps per entity and half-iteration (the library's default is 3).
        steps: usize,
    },
}

/// Training parameters. [`AlsParams::default`] is the implicit model with signed confidence and
/// the parameters `steam-recsys tune` chose on a million generated reviews (rank 10, 10
/// iterations, λ 300, α 1); [`AlsParams::spark_explicit`] is the reference's. The best λ grows
/// with the number of users, so `train` tunes by default.
#[derive(Debug, Clone, PartialEq)]
pub struct AlsParams {
    /// Implicit or explicit feedback.
    pub feedback: Feedback,
    /// The number of latent factors.
    pub rank: usize,
    /// Iterations; each solves every item and every user (in [`Solver`]'s order).
    pub iterations: usize,
    /// The regularization λ. Implicit: λ‖x‖² for every entity (as the `implicit` library);
    /// explicit: as in Spark ML, an entity with n ratings is regularized by λ·n.
    pub reg_param: f64,
    /// Implicit only: the confidence scale α in c = 1 + α·ln(1 + hours).
    pub alpha: f64,
    /// Implicit only: how a review gives a preference.
    pub confidence: Confidence,
    /// Implicit only: how each entity is solved.
    pub solver: Solver,
    /// Seed of the initial factors.
    pub seed: u64,
}

impl Default for AlsParams {
    fn default() -> Self {
        AlsParams {
            feedback: Feedback::Implicit,
            rank: 10,
            iterations: 10,
            reg_param: 300.0,
            alpha: 1.0,
            confidence: Confidence::Signed,
            solver: Solver::Cholesky,
            seed: 42,
        }
    }
}

impl AlsParams {
    /// The reference's model: Spark ML's explicit ALS, rank 10, 10 iterations, regParam 0.1,
    /// seed 42.
    pub fn spark_explicit() -> Self {
        AlsParams {
            feedback: Feedback::Explicit,
            rank: 10,
            iterations: 10,
            reg_param: 0.1,
            alpha: 1.0,
            confidence: Confidence::Signed,
            solver: Solver::Cholesky,
            seed: 42,
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |key: &str, reason: String| {
            Err(Error::Config {
                key: key.into(),
                reason,
            })
        };
        if self.rank == 0 || self.rank > 1024 {
            return bad("rank", format!("{} is not in 1..=1024", self.rank));
        }
        if !(self.reg_param.is_finite() && self.reg_param >= 0.0) {
            return bad(
                "reg-param",
                format!("{} is not a finite number ≥ 0", self.reg_param),
            );
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return bad(
                "alpha",
                format!("{} is not a finite number ≥ 0", self.alpha),
            );
        }
        Ok(())
    }
}

impl fmt::Display for AlsParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rank {} iterations {} reg-param {}",
            self.feedback, self.rank, self.iterations, self.reg_param
        )?;
        if self.feedback == Feedback::Implicit {
            write!(f, " alpha {} confidence {}", self.alpha, self.confidence)?;
            if let Solver::ConjugateGradient { steps } = self.solver {
                write!(f, " cg-steps {steps}")?;
            }
        }
        write!(f, " seed {}", self.seed)
    }
}

/// Sorted distinct ids and the dense index of each.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IdIndex {
    pub(crate) ids: Vec<i32>,
}

impl IdIndex {
    fn new(ids: &[i32]) -> Self {
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
struct Grouped {
    offsets: Vec<usize>,
    others: Vec<u32>,
    values: Vec<f32>,
}

impl Grouped {
    fn new(n: usize, keys: &[u32], others: &[u32], values: &[f32]) -> Self {
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
    fn merged(n: usize, keys: &[u32], others: &[u32], values: &[f32]) -> Self {
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
fn uniform_factors(n: usize, rank: usize, seed: u64, side: u64) -> Vec<f32> {
    per_entity(n, rank, seed, side, |rng, out| {
        out.iter_mut().for_each(|v| *v = rng.f32() * 0.01);
    })
}

/// Spark's initialization: each factor vector drawn from a standard normal distribution and
/// scaled to unit length.
fn initial_factors(n: usize, rank: usize, seed: u64, side: u64) -> Vec<f32> {
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

/// Work space of one thread: the matrix, the right-hand side (then the solution), one factor
/// vector in f64.
struct Scratch {
    a: Vec<f64>,
    b: Vec<f64>,
    x: Vec<f64>,
}

impl Scratch {
    fn new(rank: usize) -> Self {
        Scratch {
            a: vec![0.0; rank * rank],
            b: vec![0.0; rank],
            x: vec![0.0; rank],
        }
    }
}

/// The normal equations of entity `e`: the lower triangle of Σ x·xᵀ + λ·n·I into `a` (column-major,
/// rank × rank) and Σ r·x into `b`, in f64, over the fixed factors x of the entities it rated.
/// Returns n, its number of ratings.
fn normal_equations(
    e: usize,
    groups: &Grouped,
    src: &[f32],
    reg_param: f64,
    Scratch { a, b, x }: &mut Scratch,
) -> usize {
    let rank = b.len();
    a.fill(0.0);
    b.fill(0.0);
    let range = groups.offsets[e]..groups.offsets[e + 1];
    let n = range.len();
    for j in range {
        let other = groups.others[j] as usize;
        for (xd, fd) in x.iter_mut().zip(&src[other * rank..(other + 1) * rank]) {
            *xd = f64::from(*fd);
        }
        let r = f64::from(groups.values[j]);
        for c in 0..rank {
            let xc = x[c];
            b[c] += r * xc;
            let column = &mut a[c * rank + c..(c + 1) * rank];
            for (ac, xr) in column.iter_mut().zip(&x[c..]) {
                *ac += xr * xc;
            }
        }
    }
    let lambda = reg_param * n as f64;
    for d in 0..rank {
        a[d * rank + d] += lambda;
    }
    n
}

fn singular(n: usize) -> Error {
    Error::Config {
        key: "reg-param".into(),
        reason: format!(
            "the normal equations of an entity with {n} ratings are singular; use a reg-param \
             above 0"
        ),
    }
}

/// Solves the symmetric positive-definite system (lower triangle of `a`) · x = `b` by Cholesky,
/// with a stack-allocated matrix of size `N` (the common ranks) or `None` for another size.
fn solve_fixed<const N: usize>(a: &[f64], b: &mut [f64]) -> Option<bool> {
    if b.len() != N {
        return None;
    }
    let m = SMatrix::<f64, N, N>::from_fn(|r, c| {
        let (r, c) = if r >= c { (r, c) } else { (c, r) };
        a[c * N + r]
    });
    let Some(chol) = Cholesky::new(m) else {
        return Some(false);
    };
    let x = chol.solve(&SVector::<f64, N>::from_column_slice(b));
    b.copy_from_slice(x.as_slice());
    Some(true)
}

/// [`solve_fixed`] for any size.
fn solve_dynamic(a: &[f64], b: &mut [f64]) -> bool {
    let n = b.len();
    let m = DMatrix::<f64>::from_fn(n, n, |r, c| {
        let (r, c) = if r >= c { (r, c) } else { (c, r) };
        a[c * n + r]
    });
    let Some(chol) = Cholesky::new(m) else {
        return false;
    };
    let mut x = DVector::from_column_slice(b);
    chol.solve_mut(&mut x);
    b.copy_from_slice(x.as_slice());
    true
}

/// One half-iteration: every entity of `dst` solves its regularized least-squares problem against
/// the fixed factors `src` of the entities it rated: normal equations in f64 with λ·n on the
/// diagonal, solved by Cholesky.
fn solve_side(
    dst: &mut [f32],
    groups: &Grouped,
    src: &[f32],
    rank: usize,
    reg_param: f64,
) -> Result<()> {
    dst.par_chunks_mut(rank).enumerate().try_for_each_init(
        || Scratch::new(rank),
        |scratch, (e, out)| {
            let n = normal_equations(e, groups, src, reg_param, scratch);
            if n == 0 {
                out.fill(0.0);
                return Ok(());
            }
            solve_into(scratch, out, n)
        },
    )
}

/// YᵀY of the factors `src` (lower triangle, column-major, rank × rank) in f64: partial sums over
/// fixed chunks added in chunk order, so the result does not depend on threads.
fn gram(src: &[f32], rank: usize) -> Vec<f64> {
    const CHUNK: usize = 4096;
    let partial: Vec<Vec<f64>> = src
        .par_chunks(CHUNK * rank)
        .map(|chunk| {
            let mut g = vec![0f64; rank * rank];
            let mut x = vec![0f64; rank];
            for y in chunk.chunks_exact(rank) {
                for (xd, yd) in x.iter_mut().zip(y) {
                    *xd = f64::from(*yd);
                }
                for c in 0..rank {
                    let xc = x[c];
                    for (gc, xr) in g[c * rank + c..(c + 1) * rank].iter_mut().zip(&x[c..]) {
                        *gc += xr * xc;
                    }
                }
            }
            g
        })
        .collect();
    let mut total = vec![0f64; rank * rank];
    for g in partial {
        for (t, v) in total.iter_mut().zip(g) {
            *t += v;
        }
    }
    total
}

/// The implicit-feedback normal equations of entity `e`: (YᵀY + Σ (c − 1)·y·yᵀ + λ·I) x = Σ c·p·y
/// over the entities it interacted with (confidence c, preference p: the sign of the value), into
/// `a` (lower triangle) and `b`.
fn implicit_equations(
    e: usize,
    groups: &Grouped,
    src: &[f32],
    gram: &[f64],
    reg_param: f64,
    Scratch { a, b, x }: &mut Scratch,
) {
    let rank = b.len();
    a.copy_from_slice(gram);
    b.fill(0.0);
    for j in groups.offsets[e]..groups.offsets[e + 1] {
        let other = groups.others[j] as usize;
        for (xd, fd) in x.iter_mut().zip(&src[other * rank..(other + 1) * rank]) {
            *xd = f64::from(*fd);
        }
        let v = f64::from(groups.values[j]);
        let (c, p) = if v > 0.0 { (v, 1.0) } else { (-v, 0.0) };
        let w = c - 1.0;
        for col in 0..rank {
            let xc = x[col];
            b[col] += c * p * xc;
            let wxc = w * xc;
            let column = &mut a[col * rank + col..(col + 1) * rank];
            for (ac, xr) in column.iter_mut().zip(&x[col..]) {
                *ac += xr * wxc;
            }
        }
    }
    for d in 0..rank {
        a[d * rank + d] += reg_param;
    }
}

/// Solves the system in `scratch` into `out` (f32), or reports it singular.
fn solve_into(scratch: &mut Scratch, out: &mut [f32], n: usize) -> Result<()> {
    let Scratch { a, b, .. } = scratch;
    let solved = solve_fixed::<10>(a, b)
        .or_else(|| solve_fixed::<16>(a, b))
        .or_else(|| solve_fixed::<20>(a, b))
        .or_else(|| solve_fixed::<32>(a, b))
        .unwrap_or_else(|| solve_dynamic(a, b));
    if !solved {
        return Err(singular(n));
    }
    for (o, v) in out.iter_mut().zip(b.iter()) {
        *o = *v as f32;
    }
    Ok(())
}

/// One implicit half-iteration: YᵀY once, then every entity of `dst` solved exactly in parallel:
/// by Cholesky, or, for an entity with at most rank/2 interactions when the other side is the
/// smaller (users against games), through [`FewInteractions`].
fn solve_side_implicit(
    dst: &mut [f32],
    groups: &Grouped,
    src: &[f32],
    rank: usize,
    reg_param: f64,
) -> Result<()> {
    let gram = gram(src, rank);
    let few = (src.len() < dst.len())
        .then(|| FewInteractions::new(&gram, reg_param, src, rank))
        .flatten();
    dst.par_chunks_mut(rank).enumerate().try_for_each_init(
        || (Scratch::new(rank), Vec::new()),
        |(scratch, small), (e, out)| {
            let n = groups.offsets[e + 1] - groups.offsets[e];
            if let Some(few) = few.as_ref().filter(|_| n <= rank / 2) {
                if few.solve(e, groups, src, out, small) {
                    return Ok(());
                }
            }
            implicit_equations(e, groups, src, &gram, reg_param, scratch);
            solve_into(scratch, out, n)
        },
    )
}

/// The exact implicit solution of an entity with few interactions, without forming and
/// factorizing its rank × rank system: with G = YᵀY + λI shared by every entity and the n
/// interactions adding Uᵀ·W·U (rows y of U, weights w = c − 1), the Woodbury identity gives
/// (G + UᵀWU)⁻¹b = z − Σ tₐ·G⁻¹yₐ, where z = G⁻¹b and t solves the n × n system
/// (W⁻¹ + U·G⁻¹·Uᵀ)·t = U·z. With G⁻¹y precomputed for every game, a user with one or two reviews
/// costs a few dot products instead of a Cholesky factorization.
struct FewInteractions {
    /// G⁻¹y of every entity of the other side, `rank` values each.
    g_inv_y: Vec<f64>,
    rank: usize,
}

impl FewInteractions {
    /// `None` above rank 64 (the work space is on the stack), or if G is not positive definite
    /// (no regularization and too few entities).
    fn new(lower_gram: &[f64], reg_param: f64, src: &[f32], rank: usize) -> Option<Self> {
        if rank > 64 {
            return None;
        }
        let g = DMatrix::<f64>::from_fn(rank, rank, |r, c| {
            let (r, c) = if r >= c { (r, c) } else { (c, r) };
            lower_gram[c * rank + r] + if r == c { reg_param } else { 0.0 }
        });
        let chol = Cholesky::new(g)?;
        let ys = DMatrix::<f64>::from_iterator(
            rank,
            src.len() / rank,
            src.iter().map(|v| f64::from(*v)),
        );
        Some(FewInteractions {
            g_inv_y: chol.solve(&ys).as_slice().to_vec(),
            rank,
        })
    }

    fn g_inv_y(&self, other: usize) -> &[f64] {
        &self.g_inv_y[other * self.rank..(other + 1) * self.rank]
    }

    /// Entity `e`'s factors into `out`; false if the small system could not be factorized (then
    /// the caller solves the full one). `m` is work space.
    fn solve(
        &self,
        e: usize,
        groups: &Grouped,
        src: &[f32],
        out: &mut [f32],
        m: &mut Vec<f64>,
    ) -> bool {
        let rank = self.rank;
        let range = groups.offsets[e]..groups.offsets[e + 1];
        let mut z = [0f64; 64];
        let z = &mut z[..rank];
        // Interactions with a weight: the others play no part in the system, only in b.
        let mut weighted = [(0usize, 0f64); 32];
        let mut n = 0;
        for j in range {
            let other = groups.others[j] as usize;
            let v = f64::from(groups.values[j]);
            let c = v.abs();
            if v > 0.0 {
                for (zd, gd) in z.iter_mut().zip(self.g_inv_y(other)) {
                    *zd += c * gd;
                }
            }
            if c > 1.0 {
                weighted[n] = (other, c - 1.0);
                n += 1;
            }
        }
        let y = |other: usize| &src[other * rank..(other + 1) * rank];
        let dot =
            |a: &[f32], b: &[f64]| -> f64 { a.iter().zip(b).map(|(x, y)| f64::from(*x) * y).sum() };
        // M = W⁻¹ + U·G⁻¹·Uᵀ (symmetric, positive definite), then t = M⁻¹·U·z.
        m.clear();
        m.resize(n * n + n, 0.0);
        let (m, t) = m.split_at_mut(n * n);
        for a in 0..n {
            let (oa, wa) = weighted[a];
            for b in 0..=a {
                m[a * n + b] = dot(y(oa), self.g_inv_y(weighted[b].0));
            }
            m[a * n + a] += 1.0 / wa;
            t[a] = dot(y(oa), z);
        }
        if !cholesky_solve(m, t, n) {
            return false;
        }
        for (a, ta) in t.iter().enumerate() {
            for (zd, gd) in z.iter_mut().zip(self.g_inv_y(weighted[a].0)) {
                *zd -= ta * gd;
            }
        }
        for (o, v) in out.iter_mut().zip(z.iter()) {
            *o = *v as f32;
        }
        true
    }
}

/// Solves m·x = b in place (b becomes x) for a small symmetric positive-definite `m` of which the
/// lower triangle is read (row-major, n × n); false if it is not positive definite.
fn cholesky_solve(m: &mut [f64], b: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let mut d = m[j * n + j];
        for k in 0..j {
            d -= m[j * n + k] * m[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        m[j * n + j] = d;
        for i in j + 1..n {
            let mut v = m[i * n + j];
            for k in 0..j {
                v -= m[i * n + k] * m[j * n + k];
            }
            m[i * n + j] = v / d;
        }
    }
    for i in 0..n {
        let mut v = b[i];
        for k in 0..i {
            v -= m[i * n + k] * b[k];
        }
        b[i] = v / m[i * n + i];
    }
    for i in (0..n).rev() {
        let mut v = b[i];
        for k in i + 1..n {
            v -= m[k * n + i] * b[k];
        }
        b[i] = v / m[i * n + i];
    }
    true
}

/// Work space of one thread for conjugate gradient: the iterate, residual, direction, A·direction
/// and one factor vector, in f64.
struct CgScratch {
    x: Vec<f64>,
    r: Vec<f64>,
    p: Vec<f64>,
    ap: Vec<f64>,
    y: Vec<f64>,
}

/// A · v for the full symmetric matrix `a` (column-major, rank × rank) into `out`.
fn mat_vec(a: &[f64], v: &[f64], out: &mut [f64]) {
    out.fill(0.0);
    for (c, column) in a.chunks_exact(v.len()).enumerate() {
        for (o, a_rc) in out.iter_mut().zip(column) {
            *o += a_rc * v[c];
        }
    }
}

fn dot64(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Entity `e`'s factors `out` after `steps` conjugate-gradient steps on its implicit normal
/// equations, from `out` itself, as the `implicit` library's `least_squares_cg` takes them: `a` is
/// YᵀY + λI (full), the interactions add (c − 1)·y·yᵀ to it and c·p·y to the right-hand side.
fn cg_entity(
    e: usize,
    groups: &Grouped,
    src: &[f32],
    a: &[f64],
    steps: usize,
    out: &mut [f32],
    CgScratch { x, r, p, ap, y }: &mut CgScratch,
) {
    let rank = x.len();
    let range = groups.offsets[e]..groups.offsets[e + 1];
    let factors = |j: usize, y: &mut [f64]| {
        let other = groups.others[j] as usize;
        for (yd, fd) in y.iter_mut().zip(&src[other * rank..(other + 1) * rank]) {
            *yd = f64::from(*fd);
        }
        let v = f64::from(groups.values[j]);
        if v > 0.0 {
            (v, 1.0)
        } else {
            (-v, 0.0)
        }
    };
    for (xd, od) in x.iter_mut().zip(out.iter()) {
        *xd = f64::from(*od);
    }
    // r = b − A·x
    mat_vec(a, x, r);
    r.iter_mut().for_each(|v| *v = -*v);
    for j in range.clone() {
        let (c, pref) = factors(j, y);
        let w = c * pref - (c - 1.0) * dot64(y, x);
        for (rd, yd) in r.iter_mut().zip(y.iter()) {
            *rd += w * yd;
        }
    }
    p.copy_from_slice(r);
    let mut rs_old = dot64(r, r);
    for _ in 0..steps {
        if rs_old < 1e-20 {
            break;
        }
        mat_vec(a, p, ap);
        for j in range.clone() {
            let (c, _) = factors(j, y);
            let w = (c - 1.0) * dot64(y, p);
            for (ad, yd) in ap.iter_mut().zip(y.iter()) {
                *ad += w * yd;
            }
        }
        let curvature = dot64(p, ap);
        if curvature <= 0.0 {
            break; // only without regularization, on a singular system: stop where it is
        }
        let step = rs_old / curvature;
        for d in 0..rank {
            x[d] += step * p[d];
            r[d] -= step * ap[d];
        }
        let rs_new = dot64(r, r);
        for d in 0..rank {
            p[d] = r[d] + rs_new / rs_old * p[d];
        }
        rs_old = rs_new;
    }
    for (o, xd) in out.iter_mut().zip(x.iter()) {
        *o = *xd as f32;
    }
}

/// One implicit half-iteration by conjugate gradient: YᵀY + λI once, then `steps` steps for every
/// entity of `dst` in parallel, from its current factors.
fn solve_side_cg(
    dst: &mut [f32],
    groups: &Grouped,
    src: &[f32],
    rank: usize,
    reg_param: f64,
    steps: usize,
) {
    let lower = gram(src, rank);
    let mut a = vec![0f64; rank * rank];
    for c in 0..rank {
        for r in c..rank {
            a[c * rank + r] = lower[c * rank + r];
            a[r * rank + c] = lower[c * rank + r];
        }
        a[c * rank + c] += reg_param;
    }
    dst.par_chunks_mut(rank).enumerate().for_each_init(
        || CgScratch {
            x: vec![0.0; rank],
            r: vec![0.0; rank],
            p: vec![0.0; rank],
            ap: vec![0.0; rank],
            y: vec![0.0; rank],
        },
        |scratch, (e, out)| cg_entity(e, groups, src, &a, steps, out, scratch),
    );
}

/// A trained model: one factor vector per user and per item seen in training.
#[derive(Debug, Clone, PartialEq)]
pub struct AlsModel {
    pub(crate) params: AlsParams,
    pub(crate) rank: usize,
    pub(crate) users: IdIndex,
    pub(crate) items: IdIndex,
    pub(crate) user_factors: Vec<f32>,
    pub(crate) item_factors: Vec<f32>,
}

impl AlsModel {
    /// Trains on `ratings`: factors initialized at random (deterministic for the seed), then
    /// `iterations` rounds of solving all items, then all users, in parallel. The implicit model
    /// reads each rating's hours played and sign as [`AlsParams::confidence`] says; the explicit
    /// model fits the ratings. An empty input is an error.
    pub fn fit(ratings: &Ratings, params: &AlsParams) -> Result<AlsModel> {
        params.check()?;
        if ratings.is_empty() {
            return Err(Error::Config {
                key: "ratings".into(),
                reason: "no ratings to train on".into(),
            });
        }
        let rank = params.rank;
        let users = IdIndex::new(ratings.users());
        let items = IdIndex::new(ratings.items());
        let dense = |index: &IdIndex, ids: &[i32]| -> Vec<u32> {
            ids.par_iter()
                .map(|id| index.get(*id).unwrap_or_default() as u32)
                .collect()
        };
        let u = dense(&users, ratings.users());
        let i = dense(&items, ratings.items());
        let by_user = match params.feedback {
            Feedback::Explicit => Grouped::new(users.len(), &u, &i, ratings.values()),
            Feedback::Implicit => {
                let alpha = params.alpha as f32;
                let signed: Vec<f32> = ratings
                    .values()
                    .par_iter()
                    .zip(ratings.hours())
                    .map(|(r, h)| {
                        let c = 1.0 + alpha * h.ln_1p();
                        match params.confidence {
                            Confidence::Signed if *r <= 0.0 => -c,
                            _ => c,
                        }
                    })
                    .collect();
                Grouped::merged(users.len(), &u, &i, &signed)
            }
        };
        drop((u, i));
        // Grouped from the user groups, so each item's users come in ascending order and the
        // item solves read the users' factors front to back instead of at random.
        let owners: Vec<u32> = (0..users.len())
            .flat_map(|e| {
                std::iter::repeat_n(e as u32, by_user.offsets[e + 1] - by_user.offsets[e])
            })
            .collect();
        let by_item = Grouped::new(items.len(), &by_user.others, &owners, &by_user.values);
        drop(owners);

        let reg = params.reg_param;
        let (user_factors, item_factors) = match (params.feedback, params.solver) {
            (Feedback::Implicit, Solver::ConjugateGradient { steps }) => {
                // The `implicit` library's way: its initialization, users first, then items.
                let mut user_factors = uniform_factors(users.len(), rank, params.seed, 1);
                let mut item_factors = uniform_factors(items.len(), rank, params.seed, 2);
                for _ in 0..params.iterations {
                    solve_side_cg(&mut user_factors, &by_user, &item_factors, rank, reg, steps);
                    solve_side_cg(&mut item_factors, &by_item, &user_factors, rank, reg, steps);
                }
                (user_factors, item_factors)
            }
            (feedback, _) => {
                let mut user_factors = initial_factors(users.len(), rank, params.seed, 1);
                let mut item_factors = initial_factors(items.len(), rank, params.seed, 2);
                let solve = match feedback {
                    Feedback::Explicit => solve_side,
                    Feedback::Implicit => solve_side_implicit,
                };
                for _ in 0..params.iterations {
                    solve(&mut item_factors, &by_item, &user_factors, rank, reg)?;
                    solve(&mut user_factors, &by_user, &item_factors, rank, reg)?;
                }
                (user_factors, item_factors)
            }
        };
        Ok(AlsModel {
            params: params.clone(),
            rank,
            users,
            items,
            user_factors,
            item_factors,
        })
    }

    /// The parameters the model was trained with.
    pub fn params(&self) -> &AlsParams {
        &self.params
    }

    /// The number of latent factors.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of users with factors.
    pub fn num_users(&self) -> usize {
        self.users.len()
    }

    /// The number of items with factors.
    pub fn num_items(&self) -> usize {
        self.items.len()
    }

    /// The user ids, ascending.
    pub fn user_ids(&self) -> &[i32] {
        &self.users.ids
    }

    /// The item ids, ascending.
    pub fn item_ids(&self) -> &[i32] {
        &self.items.ids
    }

    /// The factors of a user, if the user was in the training data.
    pub fn user_factors(&self, user: i32) -> Option<&[f32]> {
        let u = self.users.get(user)?;
        Some(&self.user_factors[u * self.rank..(u + 1) * self.rank])
    }

    /// The factors of an item, if the item was in the training data.
    pub fn item_factors(&self, item: i32) -> Option<&[f32]> {
        let i = self.items.get(item)?;
        Some(&self.item_factors[i * self.rank..(i + 1) * self.rank])
    }

    /// The predicted rating or preference (the dot product of the factors, in f32 as Spark
    /// computes it), or
    /// `None` for a user or item not seen in training (Spark's cold start).
    pub fn predict(&self, user: i32, item: i32) -> Option<f32> {
        let u = self.user_factors(user)?;
        let i = self.item_factors(item)?;
        Some(dot(u, i))
    }
}

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The implicit model with the regularization of a small data set.
    fn small() -> AlsParams {
        AlsParams {
            reg_param: 0.1,
            ..AlsParams::default()
        }
    }

    /// Ratings from a planted rank-2 structure: two taste groups of users and of items, a user
    /// likes (1.0) the items of its group and not (0.0) the others.
    fn planted(users: i32, items: i32, per_user: usize, seed: u64) -> Ratings {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut r = Ratings::new();
        for u in 0..users {
            for _ in 0..per_user {
                let i = rng.i32(0..items);
                let like = (u % 2) == (i % 2);
                r.push(u, i, if like { 1.0 } else { 0.0 });
            }
        }
        r
    }

    #[test]
    fn recovers_a_planted_structure() {
        let all = planted(400, 60, 12, 1);
        let (train, test) = all.split(0.2, 3).unwrap();
        let model = AlsModel::fit(&train, &AlsParams::spark_explicit()).unwrap();
        let (mut hits, mut n) = (0, 0);
        for k in 0..test.len() {
            let (u, i, r) = (test.users()[k], test.items()[k], test.values()[k]);
            if let Some(p) = model.predict(u, i) {
                n += 1;
                if (p > 0.5) == (r > 0.5) {
                    hits += 1;
                }
            }
        }
        assert!(n > 800, "{n} predictions");
        let accuracy = hits as f64 / n as f64;
        assert!(accuracy > 0.95, "held-out accuracy {accuracy}");
    }

    #[test]
    fn deterministic_for_a_seed_and_different_across_seeds() {
        let r = planted(100, 20, 8, 2);
        let a = AlsModel::fit(&r, &AlsParams::spark_explicit()).unwrap();
        let b = AlsModel::fit(&r, &AlsParams::spark_explicit()).unwrap();
        assert_eq!(a, b);
        let c = AlsModel::fit(
            &r,
            &AlsParams {
                seed: 43,
                ..AlsParams::spark_explicit()
            },
        )
        .unwrap();
        assert_ne!(a.user_factors, c.user_factors);
    }

    #[test]
    fn regularization_scales_with_rating_count() {
        // One user, one item, rating 1, rank 1: with factor y for the item, the user's solution is
        // x = y / (y² + λ·1); with λ·n the fixed point of the two solves satisfies
        // x·y = 1 - λ, i.e. prediction 0.9 for λ = 0.1.
        let mut r = Ratings::new();
        r.push(1, 1, 1.0);
        let params = AlsParams {
            rank: 1,
            iterations: 50,
            ..AlsParams::spark_explicit()
        };
        let model = AlsModel::fit(&r, &params).unwrap();
        let p = model.predict(1, 1).unwrap();
        assert!((p - 0.9).abs() < 1e-3, "{p}");
        // Three copies of the rating: λ·3 against three equal terms, the same fixed point.
        r.push(1, 1, 1.0);
        r.push(1, 1, 1.0);
        let p3 = AlsModel::fit(&r, &params).unwrap().predict(1, 1).unwrap();
        assert!((p3 - 0.9).abs() < 1e-3, "{p3}");
        assert_eq!(model.predict(2, 1), None);
    }

    #[test]
    fn stack_and_heap_solvers_agree() {
        let mut rng = fastrand::Rng::with_seed(11);
        let rank = 10;
        let mut groups_x = Vec::new();
        for _ in 0..30 {
            groups_x.push((0..rank).map(|_| rng.f32() - 0.5).collect::<Vec<f32>>());
        }
        let src: Vec<f32> = groups_x.concat();
        let groups = Grouped::new(
            1,
            &[0; 30],
            &(0..30).collect::<Vec<u32>>(),
            &(0..30).map(|k| (k % 2) as f32).collect::<Vec<f32>>(),
        );
        let mut scratch = Scratch::new(rank);
        assert_eq!(normal_equations(0, &groups, &src, 0.1, &mut scratch), 30);
        let Scratch { a, mut b, .. } = scratch;
        let mut fixed = b.clone();
        assert_eq!(solve_fixed::<10>(&a, &mut fixed), Some(true));
        assert_eq!(solve_fixed::<20>(&a, &mut b.clone()), None);
        assert!(solve_dynamic(&a, &mut b));
        for (f, d) in fixed.iter().zip(&b) {
            assert!((f - d).abs() < 1e-12, "{f} {d}");
        }
        // A singular system (no regularization, fewer ratings than factors) is refused.
        let (mut a, mut b) = (vec![0.0; 100], vec![1.0; 10]);
        a[0] = 1.0;
        assert_eq!(solve_fixed::<10>(&a, &mut b), Some(false));
    }

    #[test]
    fn bad_parameters_and_empty_input_are_errors() {
        let r = planted(10, 5, 3, 4);
        let e = AlsModel::fit(
            &r,
            &AlsParams {
                rank: 0,
                ..AlsParams::spark_explicit()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("rank"), "{e}");
        let e = AlsModel::fit(
            &r,
            &AlsParams {
                reg_param: f64::NAN,
                ..AlsParams::spark_explicit()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("reg-param"), "{e}");
        let e = AlsModel::fit(&Ratings::new(), &AlsParams::spark_explicit()).unwrap_err();
        assert!(e.to_string().contains("no ratings"), "{e}");
    }

    /// Implicit interactions from planted taste groups: a user of group g plays up to 6 distinct
    /// games, of group g 9 times in 10 (another game otherwise), with hours drawn at random.
    fn planted_plays(users: i32, groups: i32, per_group: i32, seed: u64) -> Ratings {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut r = Ratings::new();
        for u in 0..users {
            let g = u % groups;
            let mut played = Vec::new();
            for _ in 0..6 {
                let game = if rng.u8(..10) < 9 {
                    g * per_group + rng.i32(0..per_group)
                } else {
                    rng.i32(0..groups * per_group)
                };
                if !played.contains(&game) {
                    played.push(game);
                    r.push_review(u, game, 1.0, rng.f32() * 50.0, None);
                }
            }
        }
        r
    }

    #[test]
    fn implicit_recovers_planted_taste_groups() {
        use crate::{Holdout, Popularity, RandomItems};
        let all = planted_plays(600, 4, 10, 5);
        let (train, test) = all.split(0.2, 1).unwrap();
        let model = AlsModel::fit(&train, &small()).unwrap();
        let holdout = Holdout::new(&train, &test);
        assert!(holdout.users() > 350, "{}", holdout.users());
        let ours = holdout.evaluate(&model, 5);
        let popular = holdout.evaluate(&Popularity::fit(&train), 5);
        let random = holdout.evaluate(&RandomItems::fit(&train, 1), 5);
        // A user's held-out game is one of the ~5 unplayed games of its group 9 times in 10:
        // the top 5 of a model that found the groups holds it most of the time; popularity and
        // random do not know the groups (1 in 7 of the unplayed games is the right group's).
        assert!(ours.recall > 0.6, "{ours:?}");
        assert!(ours.recall > 2.5 * popular.recall, "{ours:?} {popular:?}");
        assert!(ours.recall > 2.5 * random.recall, "{ours:?} {random:?}");
        assert!(ours.ndcg > 2.5 * popular.ndcg, "{ours:?} {popular:?}");
    }

    #[test]
    fn implicit_user_factors_minimize_the_weighted_loss() {
        // After the last half-iteration each user's factors minimize, given the item factors,
        // Σ over every item of c·(p − xᵀy)² + λ‖x‖², c = 1 + α·ln(1 + hours) on played items
        // (duplicates adding up) and 1 elsewhere, p = 1 on recommended plays, 0 elsewhere. Its
        // gradient, computed densely here, vanishes.
        let mut r = planted_plays(40, 2, 6, 9);
        r.push_review(0, 7, 0.0, 3.0, None); // a negative review
        r.push_review(0, 7, 1.0, 2.0, None); // the same game again, recommended
        r.push_review(1, 1, 0.0, 10.0, None);
        let params = AlsParams {
            rank: 4,
            reg_param: 0.3,
            alpha: 2.0,
            ..small()
        };
        let model = AlsModel::fit(&r, &params).unwrap();
        let mut conf: std::collections::HashMap<(i32, i32), (f64, bool)> = Default::default();
        for k in 0..r.len() {
            let e = conf.entry((r.users()[k], r.items()[k])).or_default();
            e.0 += 1.0 + params.alpha * f64::from(r.hours()[k]).ln_1p();
            e.1 |= r.values()[k] > 0.0;
        }
        for &user in model.user_ids() {
            let x = model.user_factors(user).unwrap();
            let mut grad = vec![0f64; params.rank];
            for &item in model.item_ids() {
                let y = model.item_factors(item).unwrap();
                let (c, p) = match conf.get(&(user, item)) {
                    Some((c, liked)) => (*c, if *liked { 1.0 } else { 0.0 }),
                    None => (1.0, 0.0),
                };
                let pred: f64 = x
                    .iter()
                    .zip(y)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum();
                for d in 0..params.rank {
                    grad[d] += c * (pred - p) * f64::from(y[d]);
                }
            }
            for d in 0..params.rank {
                grad[d] += params.reg_param * f64::from(x[d]);
                assert!(grad[d].abs() < 1e-4, "user {user}: gradient {grad:?}");
            }
        }
    }

    #[test]
    fn a_negative_review_counts_against_the_game_with_signed_confidence() {
        let mut r = planted_plays(200, 2, 8, 4);
        // User 0 (group 0) reviewed a game of its group it had not played badly, after many hours.
        let game = (0..8)
            .find(|g| !(0..r.len()).any(|k| r.users()[k] == 0 && r.items()[k] == *g))
            .unwrap();
        r.push_review(0, game, 0.0, 500.0, None);
        let signed = AlsModel::fit(&r, &small()).unwrap();
        let hours = AlsModel::fit(
            &r,
            &AlsParams {
                confidence: Confidence::Hours,
                ..small()
            },
        )
        .unwrap();
        let s = signed.predict(0, game).unwrap();
        let h = hours.predict(0, game).unwrap();
        assert!(h > 0.5, "played a lot, read as liked: {h}");
        assert!(s < 0.3 && s < h - 0.4, "signed {s}, hours {h}");
    }

    #[test]
    fn the_same_model_on_any_number_of_threads() {
        let r = planted_plays(500, 3, 7, 6);
        let fit = |threads: usize, params: &AlsParams| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| AlsModel::fit(&r, params).unwrap())
        };
        let cg = AlsParams {
            solver: Solver::ConjugateGradient { steps: 3 },
            ..small()
        };
        for params in [small(), AlsParams::spark_explicit(), cg] {
            let one = fit(1, &params);
            assert_eq!(one, fit(2, &params), "{params}");
            assert_eq!(one, fit(3, &params), "{params}");
        }
    }

    #[test]
    fn model_and_confidence_names_parse_and_print() {
        for f in [Feedback::Implicit, Feedback::Explicit] {
            assert_eq!(f.to_string().parse::<Feedback>().unwrap(), f);
        }
        for c in [Confidence::Hours, Confidence::Signed] {
            assert_eq!(c.to_string().parse::<Confidence>().unwrap(), c);
        }
        let e = "als".parse::<Feedback>().unwrap_err().to_string();
        assert!(e.contains("als"), "{e}");
        let e = AlsModel::fit(
            &planted_plays(4, 2, 2, 1),
            &AlsParams {
                alpha: -1.0,
                ..small()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("alpha"), "{e}");
    }

    #[test]
    fn conjugate_gradient_reaches_the_exact_solution_in_rank_steps() {
        let mut rng = fastrand::Rng::with_seed(12);
        let (rank, others) = (6, 40);
        let src: Vec<f32> = (0..others * rank).map(|_| rng.f32() - 0.3).collect();
        // One entity with 25 interactions, some of them negative (preference 0).
        let keys = vec![0u32; 25];
        let ids: Vec<u32> = (0..25).collect();
        let values: Vec<f32> = (0..25)
            .map(|k| {
                let c = 1.0 + rng.f32() * 4.0;
                if k % 4 == 0 {
                    -c
                } else {
                    c
                }
            })
            .collect();
        let groups = Grouped::merged(1, &keys, &ids, &values);
        let reg = 0.5;
        let mut scratch = Scratch::new(rank);
        implicit_equations(0, &groups, &src, &gram(&src, rank), reg, &mut scratch);
        let mut exact = vec![0f32; rank];
        solve_into(&mut scratch, &mut exact, 25).unwrap();

        let lower = gram(&src, rank);
        let mut a = vec![0f64; rank * rank];
        for c in 0..rank {
            for r in c..rank {
                a[c * rank + r] = lower[c * rank + r];
                a[r * rank + c] = lower[c * rank + r];
            }
            a[c * rank + c] += reg;
        }
        let mut cg = CgScratch {
            x: vec![0.0; rank],
            r: vec![0.0; rank],
            p: vec![0.0; rank],
            ap: vec![0.0; rank],
            y: vec![0.0; rank],
        };
        let mut approx = vec![0f32; rank];
        cg_entity(0, &groups, &src, &a, 1, &mut approx, &mut cg);
        let gap = |v: &[f32]| -> f32 { v.iter().zip(&exact).map(|(a, b)| (a - b).abs()).sum() };
        let after_one = gap(&approx);
        assert!(
            after_one > 1e-3,
            "one step is not the solution: {after_one}"
        );
        // From zero, rank steps solve it (up to rounding); more steps change nothing.
        let mut full = vec![0f32; rank];
        cg_entity(0, &groups, &src, &a, rank + 4, &mut full, &mut cg);
        assert!(gap(&full) < 1e-4, "{full:?} vs {exact:?}");
        // A warm start continues from where the last solve stopped.
        cg_entity(0, &groups, &src, &a, rank, &mut approx, &mut cg);
        assert!(gap(&approx) < 1e-4, "{approx:?} vs {exact:?}");
    }

    #[test]
    fn few_interactions_give_the_cholesky_solution() {
        let mut rng = fastrand::Rng::with_seed(21);
        let rank = 8;
        let src: Vec<f32> = (0..30 * rank).map(|_| rng.f32() - 0.4).collect();
        // Entities with 0 to 4 interactions: positive, negative, and weightless (c = 1).
        let mut keys = Vec::new();
        let mut others = Vec::new();
        let mut values = Vec::new();
        for e in 0..5u32 {
            for k in 0..e {
                keys.push(e);
                others.push(rng.u32(0..30));
                values.push(match k % 3 {
                    0 => 1.0 + rng.f32() * 3.0,
                    1 => -(1.0 + rng.f32() * 3.0),
                    _ => 1.0,
                });
            }
        }
        let groups = Grouped::merged(5, &keys, &others, &values);
        let lower = gram(&src, rank);
        let few = FewInteractions::new(&lower, 0.7, &src, rank).unwrap();
        let mut scratch = Scratch::new(rank);
        let mut m = Vec::new();
        for e in 0..5 {
            let mut woodbury = vec![0f32; rank];
            assert!(few.solve(e, &groups, &src, &mut woodbury, &mut m));
            implicit_equations(e, &groups, &src, &lower, 0.7, &mut scratch);
            let mut exact = vec![0f32; rank];
            solve_into(&mut scratch, &mut exact, 1).unwrap();
            for (w, x) in woodbury.iter().zip(&exact) {
                assert!(
                    (w - x).abs() < 1e-5,
                    "entity {e}: {woodbury:?} vs {exact:?}"
                );
            }
        }
        assert!(FewInteractions::new(&lower, 0.7, &[0.0; 65 * 2], 65).is_none());
    }
}
