//! `serve`: the recommendations HTTP API.

use std::net::SocketAddr;
use std::time::Duration;

use steam_core::{Error, Result};

use crate::cli::args::{MongoArgs, RedisArgs};
use crate::cli::Settings;

/// `serve`: serves the recommendations until SIGTERM or Ctrl-C, each setting from its flag, else
/// the profile's `serve`, else the default.
pub(super) async fn serve(
    bind: Option<SocketAddr>,
    redis: RedisArgs,
    mongo: MongoArgs,
    timeout: Option<f64>,
    redis_timeout: Option<f64>,
    concurrency: Option<usize>,
    settings: &Settings,
) -> Result<()> {
    let (mongo, collection) = settings.mongo_of(&mongo)?;
    let mut options = crate::ServeOptions::new(mongo, collection);
    let profile = settings
        .profile
        .as_ref()
        .map(|p| p.serve.clone())
        .unwrap_or_default();
    options.bind = match (bind, &profile.bind) {
        (Some(b), _) => b,
        (None, Some(b)) => b.parse().map_err(|_| Error::Config {
            key: "serve.bind".into(),
            reason: format!("{b:?} is not ADDRESS:PORT"),
        })?,
        (None, None) => options.bind,
    };
    options.timeout = seconds(timeout, "--timeout")?
        .or(profile.timeout)
        .unwrap_or(options.timeout);
    options.redis_timeout = seconds(redis_timeout, "--redis-timeout")?
        .or(profile.redis_timeout)
        .unwrap_or(options.redis_timeout);
    options.concurrency = concurrency
        .or(profile.concurrency)
        .unwrap_or(options.concurrency);
    options.redis = settings.redis_of(&redis)?;
    crate::serve(&options).await
}

/// The duration of a flag in seconds, `key`, which must be positive.
fn seconds(flag: Option<f64>, key: &str) -> Result<Option<Duration>> {
    flag.map(|s| {
        Duration::try_from_secs_f64(s)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| Error::Config {
                key: key.into(),
                reason: format!("{s} is not a positive number of seconds"),
            })
    })
    .transpose()
}
