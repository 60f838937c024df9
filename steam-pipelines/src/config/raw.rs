//! Profiles as written in the file, and `${…}` replaced in them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use steam_core::{Error, Result, Secret};

use super::{LakeProfile, MongoProfile, PostgresProfile, Profile, RedisProfile, ServeProfile};

#[derive(Clone, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a profile: a table of postgres, lake, mongodb, redis and serve sections"
)]
pub(super) struct RawProfile {
    postgres: Option<RawPostgres>,
    lake: Option<RawLake>,
    mongodb: Option<RawMongo>,
    redis: Option<RawRedis>,
    serve: Option<RawServe>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a redis section")]
pub(super) struct RawRedis {
    url: Option<Hidden>,
    prefix: Option<String>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a serve section")]
pub(super) struct RawServe {
    bind: Option<String>,
    timeout: Option<Number>,
    redis_timeout: Option<Number>,
    concurrency: Option<Number>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a postgres section")]
pub(super) struct RawPostgres {
    url: Option<Hidden>,
    host: Option<String>,
    port: Option<Number>,
    dbname: Option<String>,
    user: Option<String>,
    password: Option<Hidden>,
    schema: Option<String>,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    connect_timeout: Option<Number>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a lake section")]
pub(super) struct RawLake {
    raw: Option<String>,
    conformed: Option<String>,
    results: Option<String>,
    google_service_account_key: Option<String>,
    cluster: Option<String>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mongodb section")]
pub(super) struct RawMongo {
    uri: Option<Hidden>,
    host: Option<Hidden>,
    user: Option<String>,
    password: Option<Hidden>,
    database: Option<String>,
    collection: Option<String>,
}

/// A string whose deserialization errors never show the value (a password given as a number
/// must not appear in the message).
#[derive(Clone)]
pub(super) struct Hidden(String);

impl<'de> Deserialize<'de> for Hidden {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Hidden;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Hidden, E> {
                Ok(Hidden(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Hidden, E> {
                Ok(Hidden(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Hidden, E> {
                Err(E::custom("expected a string, found a boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Hidden, E> {
                Err(E::custom("expected a string, found a number (quote it)"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Hidden, E> {
                Err(E::custom("expected a string, found a number (quote it)"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Hidden, E> {
                Err(E::custom("expected a string, found a number (quote it)"))
            }
        }
        d.deserialize_string(V)
    }
}

/// A number, or a string to read as one once its variables are replaced.
#[derive(Clone)]
pub(super) enum Number {
    Int(i64),
    Float(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, or a string such as \"${POSTGRES_PORT}\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Number, E> {
                Ok(Number::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Number, E> {
                i64::try_from(v)
                    .map(Number::Int)
                    .map_err(|_| E::custom("number out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Number, E> {
                Ok(Number::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Number, E> {
                Ok(Number::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

impl RawProfile {
    /// Calls `f` with the key (`postgres.url`) and text of every string value.
    pub(super) fn visit_strings(&self, f: &mut dyn FnMut(&str, &str) -> Result<()>) -> Result<()> {
        let mut each = |section: &str, pairs: &[(&str, Option<&str>)]| -> Result<()> {
            for (key, value) in pairs {
                if let Some(value) = value {
                    f(&format!("{section}.{key}"), value)?;
                }
            }
            Ok(())
        };
        if let Some(p) = &self.postgres {
            each(
                "postgres",
                &[
                    ("url", p.url.as_ref().map(|h| h.0.as_str())),
                    ("host", p.host.as_deref()),
                    ("port", p.port.as_ref().and_then(Number::text)),
                    ("dbname", p.dbname.as_deref()),
                    ("user", p.user.as_deref()),
                    ("password", p.password.as_ref().map(|h| h.0.as_str())),
                    ("schema", p.schema.as_deref()),
                    ("sslmode", p.sslmode.as_deref()),
                    ("sslrootcert", p.sslrootcert.as_deref()),
                    (
                        "connect_timeout",
                        p.connect_timeout.as_ref().and_then(Number::text),
                    ),
                ],
            )?;
        }
        if let Some(l) = &self.lake {
            each(
                "lake",
                &[
                    ("raw", l.raw.as_deref()),
                    ("conformed", l.conformed.as_deref()),
                    ("results", l.results.as_deref()),
                    (
                        "google_service_account_key",
                        l.google_service_account_key.as_deref(),
                    ),
                    ("cluster", l.cluster.as_deref()),
                ],
            )?;
        }
        if let Some(m) = &self.mongodb {
            each(
                "mongodb",
                &[
                    ("uri", m.uri.as_ref().map(|h| h.0.as_str())),
                    ("host", m.host.as_ref().map(|h| h.0.as_str())),
                    ("user", m.user.as_deref()),
                    ("password", m.password.as_ref().map(|h| h.0.as_str())),
                    ("database", m.database.as_deref()),
                    ("collection", m.collection.as_deref()),
                ],
            )?;
        }
        if let Some(x) = &self.redis {
            each(
                "redis",
                &[
                    ("url", x.url.as_ref().map(|h| h.0.as_str())),
                    ("prefix", x.prefix.as_deref()),
                ],
            )?;
        }
        if let Some(x) = &self.serve {
            each("serve", &[("bind", x.bind.as_deref())])?;
        }
        Ok(())
    }

    pub(super) fn resolve(&self, r: &Resolver) -> Result<Profile> {
        let postgres = match &self.postgres {
            None => None,
            Some(p) => {
                let s = "postgres";
                let profile = PostgresProfile {
                    url: r
                        .text(s, "url", p.url.as_ref().map(|h| &h.0))?
                        .map(Secret::new),
                    host: r.text(s, "host", p.host.as_ref())?,
                    port: r.port(s, "port", p.port.as_ref())?,
                    dbname: r.text(s, "dbname", p.dbname.as_ref())?,
                    user: r.text(s, "user", p.user.as_ref())?,
                    password: r
                        .text(s, "password", p.password.as_ref().map(|h| &h.0))?
                        .map(Secret::new),
                    schema: r.text(s, "schema", p.schema.as_ref())?,
                    sslmode: r.text(s, "sslmode", p.sslmode.as_ref())?,
                    sslrootcert: r
                        .text(s, "sslrootcert", p.sslrootcert.as_ref())?
                        .map(PathBuf::from),
                    connect_timeout: r.seconds(s, "connect_timeout", p.connect_timeout.as_ref())?,
                };
                match profile.build() {
                    Err((key, reason)) if profile.has_server() || key == "sslmode" => {
                        return Err(r.error(s, key, reason))
                    }
                    _ => {}
                }
                Some(profile)
            }
        };
        let lake = match &self.lake {
            None => LakeProfile::default(),
            Some(l) => {
                let s = "lake";
                LakeProfile {
                    raw: r.text(s, "raw", l.raw.as_ref())?,
                    conformed: r.text(s, "conformed", l.conformed.as_ref())?,
                    results: r.text(s, "results", l.results.as_ref())?,
                    google_service_account_key: r.text(
                        s,
                        "google_service_account_key",
                        l.google_service_account_key.as_ref(),
                    )?,
                    cluster: match r.text(s, "cluster", l.cluster.as_ref())? {
                        Some(c) if !c.starts_with("df://") => {
                            return Err(r.error(
                                s,
                                "cluster",
                                format!(
                                    "{} is not df://HOST:PORT (a Ballista scheduler)",
                                    steam_core::redact_url(&c)
                                ),
                            ))
                        }
                        c => c,
                    },
                }
            }
        };
        let mongodb = match &self.mongodb {
            None => None,
            Some(m) => {
                let s = "mongodb";
                let profile = MongoProfile {
                    uri: r
                        .text(s, "uri", m.uri.as_ref().map(|h| &h.0))?
                        .map(Secret::new),
                    host: r.text(s, "host", m.host.as_ref().map(|h| &h.0))?,
                    user: r.text(s, "user", m.user.as_ref())?,
                    password: r
                        .text(s, "password", m.password.as_ref().map(|h| &h.0))?
                        .map(Secret::new),
                    database: r.text(s, "database", m.database.as_ref())?,
                    collection: r.text(s, "collection", m.collection.as_ref())?,
                };
                if profile.has_server() {
                    if let Err((key, reason)) = profile.build() {
                        return Err(r.error(s, key, reason));
                    }
                }
                Some(profile)
            }
        };
        let redis = match &self.redis {
            None => None,
            Some(x) => {
                let s = "redis";
                let profile = RedisProfile {
                    url: r
                        .text(s, "url", x.url.as_ref().map(|h| &h.0))?
                        .map(Secret::new),
                    prefix: r.text(s, "prefix", x.prefix.as_ref())?,
                };
                if let Some(url) = &profile.url {
                    if let Err(e) = steam_connectors::redis::RedisConfig::from_url(url.expose()) {
                        return Err(r.error(s, "url", reason(e)));
                    }
                }
                Some(profile)
            }
        };
        let serve = match &self.serve {
            None => ServeProfile::default(),
            Some(x) => {
                let s = "serve";
                let bind = r.text(s, "bind", x.bind.as_ref())?;
                if let Some(b) = &bind {
                    if b.parse::<std::net::SocketAddr>().is_err() {
                        return Err(r.error(s, "bind", format!("{b:?} is not ADDRESS:PORT")));
                    }
                }
                let concurrency = match r.number(s, "concurrency", x.concurrency.as_ref())? {
                    None => None,
                    Some(n) if n.fract() == 0.0 && (1.0..=1e6).contains(&n) => Some(n as usize),
                    Some(_) => {
                        return Err(r.error(
                            s,
                            "concurrency",
                            "must be a whole number from 1 to 1000000".into(),
                        ))
                    }
                };
                ServeProfile {
                    bind,
                    timeout: r.seconds(s, "timeout", x.timeout.as_ref())?,
                    redis_timeout: r.seconds(s, "redis_timeout", x.redis_timeout.as_ref())?,
                    concurrency,
                }
            }
        };
        Ok(Profile {
            postgres,
            lake,
            mongodb,
            redis,
            serve,
        })
    }
}

impl Number {
    pub(super) fn text(&self) -> Option<&str> {
        match self {
            Number::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// Replaces variables in one profile, and names the key and the file in its errors.
pub(super) struct Resolver<'a> {
    pub(super) origin: &'a str,
    pub(super) profile: &'a str,
    pub(super) vars: &'a dyn Fn(&str) -> Option<String>,
}

impl Resolver<'_> {
    pub(super) fn error(&self, section: &str, key: &str, reason: String) -> Error {
        let key = if key.is_empty() {
            key_path(self.profile, section)
        } else {
            key_path(self.profile, &format!("{section}.{key}"))
        };
        Error::Config {
            key,
            reason: format!("{}: {reason}", self.origin),
        }
    }

    /// The value with its variables replaced; `None` when absent or empty.
    pub(super) fn text(
        &self,
        section: &str,
        key: &str,
        raw: Option<&String>,
    ) -> Result<Option<String>> {
        let Some(raw) = raw else { return Ok(None) };
        let value = interpolate(raw, self.vars).map_err(|e| {
            e.into_error(
                &key_path(self.profile, &format!("{section}.{key}")),
                self.origin,
            )
        })?;
        Ok((!value.is_empty()).then_some(value))
    }

    /// A number, or a string read as one after replacement; `None` when absent or empty.
    pub(super) fn number(
        &self,
        section: &str,
        key: &str,
        raw: Option<&Number>,
    ) -> Result<Option<f64>> {
        match raw {
            None => Ok(None),
            Some(Number::Int(i)) => Ok(Some(*i as f64)),
            Some(Number::Float(x)) => Ok(Some(*x)),
            Some(Number::Text(t)) => match self.text(section, key, Some(t))? {
                None => Ok(None),
                Some(t) => t.trim().parse::<f64>().map(Some).map_err(|_| {
                    self.error(
                        section,
                        key,
                        "not a number once its variables are replaced".into(),
                    )
                }),
            },
        }
    }

    pub(super) fn port(
        &self,
        section: &str,
        key: &str,
        raw: Option<&Number>,
    ) -> Result<Option<u16>> {
        match self.number(section, key, raw)? {
            None => Ok(None),
            Some(p) if p.fract() == 0.0 && (1.0..=65535.0).contains(&p) => Ok(Some(p as u16)),
            Some(_) => Err(self.error(section, key, "not a port number (1 to 65535)".into())),
        }
    }

    pub(super) fn seconds(
        &self,
        section: &str,
        key: &str,
        raw: Option<&Number>,
    ) -> Result<Option<Duration>> {
        match self.number(section, key, raw)? {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Some(Duration::from_secs_f64(s))),
            Some(_) => Err(self.error(section, key, "must be a positive number of seconds".into())),
        }
    }
}

/// What is wrong with a `${…}`; never holds the value.
#[derive(Debug, PartialEq)]
pub(super) enum InterpolationError {
    Unset(String),
    Syntax(&'static str),
}

impl InterpolationError {
    pub(super) fn into_error(self, key: &str, origin: &str) -> Error {
        let reason = match self {
            InterpolationError::Unset(name) => format!(
                "{origin}: environment variable {name} is not set (write ${{{name}:-fallback}} \
                 to give a fallback)"
            ),
            InterpolationError::Syntax(what) => format!("{origin}: {what}"),
        };
        Error::Config {
            key: key.to_owned(),
            reason,
        }
    }
}

/// Replaces `${NAME}` and `${NAME:-fallback}` with variables from `vars`, and `$$` with `$`.
pub(super) fn interpolate(
    value: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<String, InterpolationError> {
    use InterpolationError::*;
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let Some(after) = rest.strip_prefix('{') else {
            return Err(Syntax(
                "a `$` must start `${NAME}` or `${NAME:-fallback}`, or be doubled (`$$`) for a \
                 literal `$`",
            ));
        };
        let Some(end) = after.find('}') else {
            return Err(Syntax("a `${` has no closing `}`"));
        };
        let inner = &after[..end];
        rest = &after[end + 1..];
        let (name, fallback) = match inner.split_once(":-") {
            Some((name, fallback)) => (name, Some(fallback)),
            None => (inner, None),
        };
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Syntax(
                "a `${…}` holds no valid variable name (letters, digits and `_`, not starting \
                 with a digit)",
            ));
        }
        match (vars(name), fallback) {
            (Some(v), Some(fallback)) if v.is_empty() => out.push_str(fallback),
            (Some(v), _) => out.push_str(&v),
            (None, Some(fallback)) => out.push_str(fallback),
            (None, None) => return Err(Unset(name.to_owned())),
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `profile.rest`, the profile's name quoted when it is not a bare TOML key.
pub(super) fn key_path(profile: &str, rest: &str) -> String {
    let bare = !profile.is_empty()
        && profile
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        format!("{profile}.{rest}")
    } else {
        format!("{profile:?}.{rest}")
    }
}

pub(super) fn section_key(section: &str, key: &str) -> String {
    if key.is_empty() {
        section.to_owned()
    } else {
        format!("{section}.{key}")
    }
}

/// The reason of a connector's configuration error, without its key.
pub(super) fn reason(e: Error) -> String {
    match e {
        Error::Config { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// A TOML error as `line L, column C: message`, without the source line (it may hold a secret).
pub(super) fn toml_error(e: &toml::de::Error, text: &str, origin: &str) -> Error {
    let at = match e.span() {
        Some(span) => {
            let start = span.start.min(text.len());
            let before = text.get(..start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!("line {line}, column {column}: ")
        }
        None => String::new(),
    };
    Error::Config {
        key: origin.to_owned(),
        reason: format!("{at}{}", e.message().trim_end()),
    }
}
