//! The recommender's model: `train`, `evaluate`, `tune`. Each function takes its command's flags,
//! one parameter a flag, in their order, then the settings.

use steam_core::{Error, Result};

use crate::cli::args::{ModelArgs, ModelChoice, SplitArgs};
use crate::cli::Settings;

/// `train`: fits the model and writes every user's recommendations.
#[expect(clippy::too_many_arguments, reason = "one parameter a flag")]
pub(super) async fn train(
    reviews: String,
    out: Option<String>,
    date: Option<chrono::NaiveDate>,
    model: ModelArgs,
    split: SplitArgs,
    include_seen: bool,
    top: usize,
    settings: &Settings,
) -> Result<()> {
    let mut options = crate::TrainOptions::new(
        settings.lake(&reviews)?,
        settings.lake(&settings.results_object(out))?,
    );
    options.date = date;
    (options.test, options.split, options.holdout) = held_out(&split, settings)?;
    (options.params, options.model, options.tune) = model.params()?;
    options.include_seen = include_seen;
    options.top_k = top;
    let report = crate::train(&options).await?;
    out!("{report}");
    outln!("\nwrote {} to {}", crate::train::RESULTS_TABLE, options.out);
    Ok(())
}

/// `evaluate`: compares the models and baselines on held-out reviews.
#[expect(clippy::too_many_arguments, reason = "one parameter a flag")]
pub(super) async fn evaluate(
    reviews: String,
    date: Option<chrono::NaiveDate>,
    split: SplitArgs,
    k: usize,
    model: ModelArgs,
    tune: bool,
    lists: Vec<String>,
    save_split: Option<String>,
    settings: &Settings,
) -> Result<()> {
    let mut options = crate::EvaluateOptions::new(settings.lake(&reviews)?);
    options.date = date;
    (options.test, options.split, options.holdout) = held_out(&split, settings)?;
    options.k = k;
    let implicit = ModelArgs {
        model: ModelChoice::Implicit,
        lambda: None,
        neighbours: None,
        similarity: None,
        blend: None,
        ..model.clone()
    };
    options.implicit = implicit.params()?.0;
    options.explicit = steam_model::AlsParams {
        iterations: model.iterations,
        seed: model.seed,
        ..steam_model::AlsParams::spark_explicit()
    };
    options.tune = tune;
    for spec in lists {
        let (name, url) = spec.split_once('=').ok_or_else(|| Error::Config {
            key: "--lists".into(),
            reason: format!("{spec:?} is not NAME=URL"),
        })?;
        options.lists.push((name.to_owned(), settings.lake(url)?));
    }
    options.save_split = save_split
        .as_deref()
        .map(|d| settings.lake(d))
        .transpose()?;
    let report = crate::evaluate(&options).await?;
    out!("{report}");
    Ok(())
}

/// `tune`: ranks a grid of models on a validation split.
#[expect(clippy::too_many_arguments, reason = "one parameter a flag")]
pub(super) async fn tune(
    reviews: String,
    date: Option<chrono::NaiveDate>,
    split: steam_model::SplitKind,
    holdout: f64,
    k: usize,
    iterations: usize,
    seed: u64,
    settings: &Settings,
) -> Result<()> {
    let mut options = crate::TuneOptions::new(settings.lake(&reviews)?);
    options.date = date;
    options.split = split;
    options.holdout = holdout;
    options.k = k;
    options.grid = steam_model::auto_grid(&steam_model::AlsParams {
        iterations,
        seed,
        ..steam_model::AlsParams::default()
    });
    let report = crate::tune_reviews(&options).await?;
    out!("{report}");
    Ok(())
}

/// The test set, split kind and holdout of `--test`, `--split` and `--holdout`.
fn held_out(
    split: &SplitArgs,
    settings: &Settings,
) -> Result<(
    Option<steam_connectors::lake::Lake>,
    steam_model::SplitKind,
    f64,
)> {
    let test = split
        .test
        .as_deref()
        .map(|t| settings.lake(t))
        .transpose()?;
    Ok((test, split.split, split.holdout))
}
