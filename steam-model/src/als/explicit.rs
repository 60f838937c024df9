//! Explicit feedback as Spark ML solves it: each entity's normal equations with λ·n on the
//! diagonal, and the Cholesky solve every exact solver shares.

use nalgebra::{Cholesky, DMatrix, DVector, SMatrix, SVector};
use rayon::prelude::*;
use steam_core::{Error, Result};

use super::layout::Grouped;

/// Work space of one thread: the matrix, the right-hand side (then the solution), one factor
/// vector in f64.
pub(super) struct Scratch {
    pub(super) a: Vec<f64>,
    pub(super) b: Vec<f64>,
    pub(super) x: Vec<f64>,
}

impl Scratch {
    pub(super) fn new(rank: usize) -> Self {
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
pub(super) fn solve_side(
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

/// Solves the system in `scratch` into `out` (f32), or reports it singular.
pub(super) fn solve_into(scratch: &mut Scratch, out: &mut [f32], n: usize) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
