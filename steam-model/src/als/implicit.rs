//! Implicit feedback solved exactly: the YᵀY precomputation, each entity's normal equations
//! solved by Cholesky, and the Woodbury shortcut for entities with few interactions.

use nalgebra::{Cholesky, DMatrix};
use rayon::prelude::*;
use steam_core::Result;

use super::explicit::{solve_into, Scratch};
use super::layout::Grouped;

/// YᵀY of the factors `src` (lower triangle, column-major, rank × rank) in f64: partial sums over
/// fixed chunks added in chunk order, so the result does not depend on threads.
pub(super) fn gram(src: &[f32], rank: usize) -> Vec<f64> {
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
pub(super) fn implicit_equations(
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

/// One implicit half-iteration: YᵀY once, then every entity of `dst` solved exactly in parallel:
/// by Cholesky, or, for an entity with at most rank/2 interactions when the other side is the
/// smaller (users against games), through [`FewInteractions`].
pub(super) fn solve_side_implicit(
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

#[cfg(test)]
mod tests {
    use super::*;

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
