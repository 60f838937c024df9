//! Implicit feedback solved approximately, as the `implicit` library does: a few
//! conjugate-gradient steps per entity from its previous factors.

use rayon::prelude::*;

use super::implicit::gram;
use super::layout::Grouped;

/// Work space of one thread for conjugate gradient: the iterate, residual, direction, A·direction
/// and one factor vector, in f64.
struct CgScratch {
    x: Vec<f64>,
    r: Vec<f64>,
    p: Vec<f64>,
    ap: Vec<f64>,
    y: Vec<f64>,
}

impl CgScratch {
    fn new(rank: usize) -> Self {
        CgScratch {
            x: vec![0.0; rank],
            r: vec![0.0; rank],
            p: vec![0.0; rank],
            ap: vec![0.0; rank],
            y: vec![0.0; rank],
        }
    }
}

/// YᵀY + λI of the factors `src`, both triangles (column-major, rank × rank): the matrix every
/// entity's system starts from.
fn full_system(src: &[f32], rank: usize, reg_param: f64) -> Vec<f64> {
    let lower = gram(src, rank);
    let mut a = vec![0f64; rank * rank];
    for c in 0..rank {
        for r in c..rank {
            a[c * rank + r] = lower[c * rank + r];
            a[r * rank + c] = lower[c * rank + r];
        }
        a[c * rank + c] += reg_param;
    }
    a
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
pub(super) fn solve_side_cg(
    dst: &mut [f32],
    groups: &Grouped,
    src: &[f32],
    rank: usize,
    reg_param: f64,
    steps: usize,
) {
    let a = full_system(src, rank, reg_param);
    dst.par_chunks_mut(rank).enumerate().for_each_init(
        || CgScratch::new(rank),
        |scratch, (e, out)| cg_entity(e, groups, src, &a, steps, out, scratch),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::als::explicit::{solve_into, Scratch};
    use crate::als::implicit::implicit_equations;

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

        let a = full_system(&src, rank, reg);
        let mut cg = CgScratch::new(rank);
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
}
