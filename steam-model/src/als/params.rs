//! The training parameters: [`Feedback`], [`Confidence`], [`Solver`] and [`AlsParams`].

use std::fmt;

use steam_core::{Error, Result};

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

    pub(super) fn check(&self) -> Result<()> {
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
