//! Alternating least squares: implicit feedback (Hu, Koren and Volinsky 2008, as the `implicit`
//! library and Spark ML's `implicitPrefs` fit it) and explicit feedback, as Spark ML's `ALS` runs
//! it.

mod cg;
mod explicit;
mod implicit;
mod layout;
mod model;
mod params;
mod warm;

pub(crate) use layout::IdIndex;
pub(crate) use model::dot;
pub use model::AlsModel;
pub use params::{AlsParams, Confidence, Feedback, Solver};
pub use warm::WARM_ITERATIONS;
