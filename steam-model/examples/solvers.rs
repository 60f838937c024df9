//! The dense solver of EASE: the inverse of a symmetric positive definite matrix (XᵀX + λI of
//! random sparse users) by Cholesky, nalgebra (f64) against faer (f64 and f32), at several sizes.
//!
//!   cargo run --release -p steam-model --example solvers -- [N ...]   # default: 1000 2000 3000

use std::time::Instant;

use faer::linalg::solvers::DenseSolveCore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() {
        vec![1000, 2000, 3000]
    } else {
        sizes
    };
    println!(
        "{:>6} {:>14} {:>12} {:>12} {:>12}",
        "n", "nalgebra f64", "faer f64", "faer f32", "max |Δ|"
    );
    for n in sizes {
        // XᵀX + 100·I for 20n users of 8 random games each.
        let mut rng = fastrand::Rng::with_seed(n as u64);
        let mut g = vec![0f64; n * n];
        for _ in 0..n * 20 {
            let games: Vec<usize> = (0..8).map(|_| rng.usize(..n)).collect();
            for &a in &games {
                for &b in &games {
                    g[a * n + b] += 1.0;
                }
            }
        }
        for i in 0..n {
            g[i * n + i] += 100.0;
        }
        let t = Instant::now();
        let inverse = nalgebra::Cholesky::new(nalgebra::DMatrix::from_row_slice(n, n, &g))
            .ok_or("not positive definite")?
            .inverse();
        let nalgebra_seconds = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let f64_inverse = faer::MatRef::from_column_major_slice(&g, n, n)
            .llt(faer::Side::Lower)
            .map_err(|e| format!("{e:?}"))?
            .inverse();
        let faer_seconds = t.elapsed().as_secs_f64();
        let g32: Vec<f32> = g.iter().map(|v| *v as f32).collect();
        let t = Instant::now();
        let f32_inverse = faer::MatRef::from_column_major_slice(&g32, n, n)
            .llt(faer::Side::Lower)
            .map_err(|e| format!("{e:?}"))?
            .inverse();
        let faer32_seconds = t.elapsed().as_secs_f64();
        let mut delta = 0f64;
        for i in (0..n).step_by(7) {
            for j in (0..n).step_by(11) {
                delta = delta
                    .max((inverse[(i, j)] - f64_inverse[(i, j)]).abs())
                    .max((inverse[(i, j)] - f64::from(f32_inverse[(i, j)])).abs());
            }
        }
        println!(
            "{n:>6} {nalgebra_seconds:>12.3} s {faer_seconds:>10.3} s {faer32_seconds:>10.3} s {delta:>12.2e}"
        );
    }
    Ok(())
}
