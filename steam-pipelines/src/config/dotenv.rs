//! `.env` files.

use std::path::{Path, PathBuf};

use steam_core::{Error, Result};

/// Loads `<dir>/.env` into the process environment without overriding variables already set
/// (of a variable given twice, the first wins). Returns the file's path, or `None` when there is
/// none.
///
/// The file is read whole before any variable is set: a malformed line is an error naming the
/// file and the line (not its content), and then nothing is set. Call it before starting other
/// threads, as it changes the process environment.
pub fn load_dotenv(dir: &Path) -> Result<Option<PathBuf>> {
    let Some((path, entries)) = read_dotenv(dir)? else {
        return Ok(None);
    };
    for (name, value) in unset_entries(entries, |name| std::env::var_os(name).is_some()) {
        std::env::set_var(name, value);
    }
    Ok(Some(path))
}

/// The entries of `entries` to set, given which variables `is_set`: those not set, the first of
/// a name given twice.
fn unset_entries(entries: DotenvEntries, is_set: impl Fn(&str) -> bool) -> DotenvEntries {
    let mut seen = std::collections::HashSet::new();
    entries
        .into_iter()
        .filter(|(name, _)| seen.insert(name.clone()) && !is_set(name))
        .collect()
}

/// A `.env` file's entries, `NAME` and value, in order.
pub type DotenvEntries = Vec<(String, String)>;

/// Reads `<dir>/.env`: its path and its entries, or `None` when there is none. A malformed line is
/// an error naming the file and the line, not its content.
pub fn read_dotenv(dir: &Path) -> Result<Option<(PathBuf, DotenvEntries)>> {
    let path = dir.join(".env");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let entries = match parse_dotenv(text) {
        Ok(entries) => entries,
        Err(dotenvy::Error::LineParse(..)) => {
            return Err(Error::Config {
                key: path.display().to_string(),
                reason: format!(
                    "line {}: not a NAME=value line (or a quote is not closed)",
                    bad_dotenv_line(text)
                ),
            })
        }
        Err(dotenvy::Error::Io(e)) => return Err(Error::io(&path, e)),
        Err(e) => {
            return Err(Error::Config {
                key: path.display().to_string(),
                reason: e.to_string(),
            })
        }
    };
    Ok(Some((path, entries)))
}

fn parse_dotenv(text: &str) -> std::result::Result<Vec<(String, String)>, dotenvy::Error> {
    dotenvy::from_read_iter(text.as_bytes()).collect()
}

/// The 1-based line on which the entry that does not parse starts: one past the longest run of
/// whole lines that parses (a prefix ending inside a quoted multi-line value does not).
fn bad_dotenv_line(text: &str) -> usize {
    let ends: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
    ends.iter()
        .rposition(|&end| parse_dotenv(&text[..end]).is_ok())
        .map_or(1, |i| i + 2)
}

// ---------------------------------------------------------------------------------------------
// The file as written.

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_sets_new_variables_and_keeps_existing_ones() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_dotenv(dir.path()).unwrap(), None);
        assert_eq!(load_dotenv(dir.path()).unwrap(), None);
        std::fs::write(
            dir.path().join(".env"),
            "# comment\nNEW=from-file\nexport SET=\"from file\"\nMULTI=\"a\nb\"\nNEW=again\n",
        )
        .unwrap();
        let (path, entries) = read_dotenv(dir.path()).unwrap().unwrap();
        assert_eq!(path, dir.path().join(".env"));
        // SET is already in the environment: kept; of NEW given twice, the first wins.
        let to_set = unset_entries(entries, |name| name == "SET");
        let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        assert_eq!(to_set, [pair("NEW", "from-file"), pair("MULTI", "a\nb")]);
    }

    #[test]
    fn a_malformed_dotenv_names_the_file_and_line_and_sets_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "STEAM_CFG_TEST_DOTENV_BEFORE=1\nMULTI=\"x\ny\"\n\nnot a line hunter2\nZ=2\n",
        )
        .unwrap();
        let err = load_dotenv(dir.path()).unwrap_err().to_string();
        assert!(err.contains(".env") && err.contains("line 5"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        // Read whole before anything is set: the good first line was not set either.
        assert!(std::env::var_os("STEAM_CFG_TEST_DOTENV_BEFORE").is_none());
        std::fs::write(dir.path().join(".env"), "A=1\nB=\"never closed\n").unwrap();
        let err = load_dotenv(dir.path()).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
