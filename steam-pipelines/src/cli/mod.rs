//! The `steam-recsys` command line: its arguments ([`Cli`], in `args.rs`), where each setting
//! comes from ([`Settings`]: a flag or its variable, else the configuration file's profile, else
//! the default; in `settings.rs`), and the commands ([`run_with`], in `commands/`, one file a job).

use std::process::ExitCode;

use clap::Parser;
use steam_core::{Error, Result};

/// Writes to standard output, returning from the command with an error if it cannot.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))?
    };
}

/// [`out!`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {{
        out!($($arg)*);
        out!("\n");
    }};
}

mod args;
mod commands;
mod settings;

pub use args::{
    Cli, Command, LayerArgs, MongoArgs, PostgresArgs, RedisArgs, RunCommand, ServeMode, SqlFormat,
};
pub use commands::{run, run_with};
pub use settings::Settings;

pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) -> Result<()> {
    use std::io::Write;
    std::io::stdout()
        .lock()
        .write_fmt(args)
        .map_err(|e| Error::io(STDOUT, e))
}

/// Where [`write_stdout`]'s errors say they happened.
const STDOUT: &str = "standard output";

/// The error is a write to standard output whose reader has gone (as `| head` closes it); a broken
/// pipe anywhere else (a server's connection) is an error like any other.
fn is_stdout_closed(e: &Error) -> bool {
    matches!(e, Error::Io { path, source }
        if path.as_os_str() == STDOUT && source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Parses the command line, runs the command, prints its summary; errors go to stderr with a
/// non-zero exit code. Output cut short by its reader (`steam-recsys … | head`) ends the command
/// quietly, with success, as it ends the work that writes it.
pub fn main() -> ExitCode {
    // `.env` files are loaded before the command line is parsed, so that their variables reach
    // the flags that read the environment (`POSTGRES_URL`, `MONGODB_URI`, the lake URLs…). The
    // one beside a configuration file is known only once `--config` is parsed: then the command
    // line is parsed again.
    if let Err(e) = Settings::load_dotenv(None) {
        report(&e);
        return ExitCode::FAILURE;
    }
    let mut cli = Cli::parse();
    if let Some(config) = cli.config.clone() {
        match Settings::load_dotenv(Some(&config)) {
            Ok(true) => cli = Cli::parse(),
            Ok(false) => {}
            Err(e) => {
                report(&e);
                return ExitCode::FAILURE;
            }
        }
    }
    let settings = match Settings::load(cli.config.as_deref(), &cli.profile) {
        Ok(s) => s,
        Err(e) => {
            report(&e);
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            report(&Error::io("the async runtime", e));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_with(cli.command, &settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_stdout_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// Writes an error and its causes to standard error (ignoring a standard error that is gone).
fn report(e: &Error) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {e}");
    for cause in steam_core::causes(e) {
        let _ = writeln!(stderr, "  caused by: {cause}");
    }
}
