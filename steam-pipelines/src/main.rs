//! The `steam-recsys` command line.

fn main() -> std::process::ExitCode {
    steam_pipelines::cli::main()
}
