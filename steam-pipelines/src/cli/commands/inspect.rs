//! What is in the stores and whether they answer: `stats` (the lake's per-game and per-user
//! statistics), `sql` (a query over the lake), `connection-test` (every backend).

use steam_core::{Error, Result, Secret};

use crate::cli::args::{RedisArgs, SqlFormat};
use crate::cli::Settings;

/// `stats`: computes game_stats and user_stats of the conformed reviews, here or on a cluster.
pub(super) async fn stats(
    lake: Option<String>,
    date: Option<chrono::NaiveDate>,
    cluster: Option<String>,
    settings: &Settings,
) -> Result<()> {
    let options = crate::StatsOptions {
        conformed: settings.lake(&settings.conformed_lake(lake))?,
        date,
        cluster: settings.cluster(cluster),
    };
    let summary = crate::stats(&options).await?;
    out!("{summary}");
    let on = options
        .cluster
        .as_ref()
        .map(|c| format!(" (computed on {c})"))
        .unwrap_or_default();
    outln!(
        "\nwrote game_stats and user_stats to {}{on}",
        options.conformed
    );
    Ok(())
}

/// `sql`: runs a query over the lake's conformed tables and prints its rows batch by batch.
pub(super) async fn sql(
    query: String,
    lake: Option<String>,
    format: SqlFormat,
    limit: Option<usize>,
    cluster: Option<String>,
    settings: &Settings,
) -> Result<()> {
    let lake = settings.lake(&settings.conformed_lake(lake))?;
    let cluster = settings.cluster(cluster);
    let mut source = crate::lake_sql(&lake, &query, cluster.as_deref()).await?;
    if let Some(n) = limit {
        source = source.limit(n)?;
    }
    let mut batches = steam_core::Source::read(&source).await?;
    let (mut rows, mut first) = (0usize, true);
    while let Some(batch) = futures::StreamExt::next(&mut batches).await {
        let batch = batch?;
        rows += batch.num_rows();
        let fail = |e| Error::arrow("formatting the result", e);
        let mut text = Vec::new();
        match format {
            SqlFormat::Table => {
                let table = arrow::util::pretty::pretty_format_batches(&[batch]).map_err(fail)?;
                text = format!("{table}\n").into_bytes();
            }
            SqlFormat::Csv => arrow::csv::WriterBuilder::new()
                .with_header(first)
                .build(&mut text)
                .write(&batch)
                .map_err(fail)?,
            SqlFormat::Json => {
                let mut w = arrow::json::LineDelimitedWriter::new(&mut text);
                w.write(&batch).map_err(fail)?;
                w.finish().map_err(fail)?;
            }
        }
        out!("{}", String::from_utf8_lossy(&text));
        first = false;
    }
    if format == SqlFormat::Table {
        outln!("{rows} rows");
    } else {
        tracing::info!("{rows} rows");
    }
    Ok(())
}

/// `connection-test`: checks every configured backend, failing if one fails or none is
/// configured.
pub(super) async fn connection_test(
    postgres_url: Option<Secret>,
    lake: Option<String>,
    mongodb_uri: Option<Secret>,
    collection: Option<String>,
    redis: RedisArgs,
    settings: &Settings,
) -> Result<()> {
    let pg = settings.postgres(postgres_url.as_ref().map(Secret::expose), None)?;
    let lake = lake
        .or_else(|| {
            settings
                .profile
                .as_ref()
                .and_then(|p| p.lake.conformed.clone())
        })
        .as_deref()
        .map(|url| settings.lake(url))
        .transpose()?;
    let mongo = settings.mongo(mongodb_uri.as_ref().map(Secret::expose), None)?;
    let collection = settings.collection(collection);
    let redis = settings.redis_of(&redis)?;
    if pg.is_none() && lake.is_none() && mongo.is_none() && redis.is_none() {
        return Err(Error::Config {
            key: "connection-test".into(),
            reason: "nothing to check: give --postgres-url, --lake, --mongodb-uri or \
                     --redis-url (or their environment variables, or a --config file)"
                .into(),
        });
    }
    let checks = crate::serving::connection_test(
        pg.as_ref(),
        lake.as_ref(),
        mongo.as_ref().map(|m| (m, collection.as_str())),
        redis.as_ref(),
    )
    .await;
    for c in &checks {
        outln!("{c}");
    }
    let failed = checks.iter().filter(|c| c.result.is_err()).count();
    if failed > 0 {
        return Err(Error::Config {
            key: "connection-test".into(),
            reason: format!("{failed} of {} backends failed", checks.len()),
        });
    }
    Ok(())
}
