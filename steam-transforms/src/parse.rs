//! Parsers for the scraped values, one function per format, each total: a value either parses or
//! comes back as an error message saying what it is not. No parser panics on any input.

use arrow::datatypes::Date32Type;
use chrono::NaiveDate;

/// A date as Arrow's `Date32`: days since 1970-01-01.
pub fn date32(date: NaiveDate) -> i32 {
    Date32Type::from_naive_date(date)
}

/// An integer with optional thousands separators: `"1,152"` → 1152. Empty (or blank) → `None`.
pub fn thousands_i64(value: &str) -> Result<Option<i64>, String> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let digits = strip_separators(v).ok_or("not a number")?;
    digits
        .parse::<i64>()
        .map(Some)
        .map_err(|_| "not a number".to_owned())
}

/// Like [`thousands_i64`] but the value must fit an `Int32`.
pub fn thousands_i32(value: &str) -> Result<Option<i32>, String> {
    match thousands_i64(value)? {
        None => Ok(None),
        Some(n) => i32::try_from(n)
            .map(Some)
            .map_err(|_| "out of range for a 32-bit integer".to_owned()),
    }
}

/// A decimal number with optional thousands separators: `"1,234.5"` → 1234.5. Empty → `None`.
/// `NaN`, infinities and exponents are not numbers here.
pub fn thousands_f32(value: &str) -> Result<Option<f32>, String> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let digits = strip_separators(v).ok_or("not a number")?;
    match digits.parse::<f32>() {
        Ok(x) if x.is_finite() => Ok(Some(x)),
        _ => Err("not a number".to_owned()),
    }
}

/// Removes thousands separators after checking the value is made of an optional sign, digits,
/// commas and at most one decimal point, with at least one digit. Borrowed when there is no comma.
fn strip_separators(v: &str) -> Option<std::borrow::Cow<'_, str>> {
    let body = v.strip_prefix(['-', '+']).unwrap_or(v);
    let mut digits = 0usize;
    let mut points = 0usize;
    for b in body.bytes() {
        match b {
            b'0'..=b'9' => digits += 1,
            b',' if points == 0 => {}
            b'.' => points += 1,
            _ => return None,
        }
    }
    if digits == 0 || points > 1 || body.starts_with(',') || body.ends_with(',') {
        return None;
    }
    Some(if v.contains(',') {
        std::borrow::Cow::Owned(v.replace(',', ""))
    } else {
        std::borrow::Cow::Borrowed(v)
    })
}

/// The number of reviews from purchasers, as the store page shows it:
/// - `"(654,820)"` → 654,820;
/// - `"(81% of 62,791)\u{a0}All Time"` → the integer part of 81/100 × 62,791 = 50,860
///   (computed exactly, in integers);
/// - `"()\u{a0}All Time"`, empty → `None`.
///
/// Anything else is an error.
pub fn purchased_reviews(value: &str) -> Result<Option<i32>, String> {
    const WHAT: &str = "not a review count like '(1,234)' or '(81% of 1,234) All Time'";
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let inner = v
        .strip_prefix('(')
        .and_then(|rest| rest.split_once(')'))
        .map(|(inner, _)| inner.trim())
        .ok_or(WHAT)?;
    if inner.is_empty() {
        return Ok(None);
    }
    let count = if let Some((pct, total)) = inner.split_once("% of ") {
        let pct = thousands_i64(pct).ok().flatten().ok_or(WHAT)?;
        let total = thousands_i64(total).ok().flatten().ok_or(WHAT)?;
        if !(0..=100).contains(&pct) || total < 0 {
            return Err(WHAT.to_owned());
        }
        // In i128 a percentage of any i64 total fits: no overflow, whatever the input.
        i128::from(pct) * i128::from(total) / 100
    } else {
        i128::from(thousands_i64(inner).ok().flatten().ok_or(WHAT)?)
    };
    i32::try_from(count)
        .map(Some)
        .map_err(|_| "out of range for a 32-bit integer".to_owned())
}

/// The first run of digits in `value` as an integer (`"7 user reviews"` → 7), if any fits `Int32`.
pub fn first_integer(value: &str) -> Option<i32> {
    let start = value.find(|c: char| c.is_ascii_digit())?;
    let rest = &value[start..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A long description without its leading `About This Game` and the white space around it.
pub fn long_description(value: &str) -> &str {
    let v = value.trim_start();
    v.strip_prefix("About This Game").unwrap_or(v).trim()
}

/// The username shown on a review: the first line of the scraped value
/// (`"Sentinowl\n123 products in account"` → `"Sentinowl"`), trimmed; empty → `"anonymous"`.
pub fn username(value: &str) -> &str {
    let first = value.split(['\n', '\r']).next().unwrap_or("").trim();
    if first.is_empty() {
        "anonymous"
    } else {
        first
    }
}

/// A month's number from its English name or three-letter abbreviation, in any case.
fn month(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    if name.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| {
            m.eq_ignore_ascii_case(name) || (name.len() == 3 && m[..3].eq_ignore_ascii_case(name))
        })
        .map(|i| i as u32 + 1)
        .or_else(|| name.eq_ignore_ascii_case("sept").then_some(9))
}

fn day(token: &str) -> Option<u32> {
    if token.is_empty() || token.len() > 2 || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

fn year(token: &str) -> Option<i32> {
    if token.len() != 4 || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

/// Splits a date on white space and commas into at most three tokens.
fn date_tokens(value: &str) -> Option<([&str; 3], usize)> {
    let mut out = [""; 3];
    let mut n = 0;
    for t in value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
    {
        if n == 3 {
            return None;
        }
        out[n] = t;
        n += 1;
    }
    Some((out, n))
}

/// `(month, day)` from `["September", "14"]` or `["14", "September"]`.
fn month_day(a: &str, b: &str) -> Option<(u32, u32)> {
    match (month(a), day(b)) {
        (Some(m), Some(d)) => Some((m, d)),
        _ => Some((month(b)?, day(a)?)),
    }
}

/// A game's release date: `"19 Aug, 2024"`, `"Aug 19, 2024"`, or `"Nov 2018"` (the first of the
/// month). Anything else (`"Coming soon"`, `"To be announced"`) is `None`.
pub fn release_date(value: &str) -> Option<NaiveDate> {
    let (t, n) = date_tokens(value)?;
    match n {
        2 => NaiveDate::from_ymd_opt(year(t[1])?, month(t[0])?, 1),
        3 => {
            let (m, d) = month_day(t[0], t[1])?;
            NaiveDate::from_ymd_opt(year(t[2])?, m, d)
        }
        _ => None,
    }
}

/// A review's date: `"September 14, 2023"`, `"14 September, 2023"`, or without the year
/// (`"September 14"`, `"14 September"`: the store omits the current year), which then takes
/// `reference_year`. Month names may be abbreviated. Empty → `None`.
pub fn review_date(value: &str, reference_year: i32) -> Result<Option<NaiveDate>, String> {
    const WHAT: &str = "not a date like 'September 14, 2023' or '14 September'";
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let (t, n) = date_tokens(v).ok_or(WHAT)?;
    let (m, d, y) = match n {
        2 => {
            let (m, d) = month_day(t[0], t[1]).ok_or(WHAT)?;
            (m, d, reference_year)
        }
        3 => {
            let (m, d) = month_day(t[0], t[1]).ok_or(WHAT)?;
            (m, d, year(t[2]).ok_or(WHAT)?)
        }
        _ => return Err(WHAT.to_owned()),
    };
    NaiveDate::from_ymd_opt(y, m, d)
        .map(Some)
        .ok_or_else(|| format!("no such day: {y}-{m:02}-{d:02}"))
}

/// A Python list literal of strings, as the scraper wrote them:
/// `['FromSoftware, Inc.', "World's Edge"]` → `["FromSoftware, Inc.", "World's Edge"]`.
///
/// Single- and double-quoted strings, Python's backslash escapes, white space and a trailing comma
/// are understood; an empty value is an empty list. Elements are trimmed; blank elements and
/// repeats are dropped (order of first appearance is kept).
pub fn list_literal(value: &str) -> Result<Vec<String>, String> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(Vec::new());
    }
    let body = v
        .strip_prefix('[')
        .and_then(|b| b.strip_suffix(']'))
        .ok_or("not a list literal like ['a', 'b']")?;
    let mut out: Vec<String> = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(quote) = chars.next() else { break };
        if quote != '\'' && quote != '"' {
            return Err(format!("not a list literal: unexpected {quote:?}"));
        }
        let mut item = String::new();
        loop {
            match chars.next() {
                None => return Err("not a list literal: unterminated string".to_owned()),
                Some(c) if c == quote => break,
                Some('\\') => unescape(&mut chars, &mut item)?,
                Some(c) => item.push(c),
            }
        }
        let item = item.trim();
        if !item.is_empty() && !out.iter().any(|x| x == item) {
            out.push(item.to_owned());
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(c) => {
                return Err(format!(
                    "not a list literal: unexpected {c:?} after a string"
                ))
            }
        }
    }
    Ok(out)
}

/// Reads one Python escape sequence (after the backslash) into `out`.
fn unescape(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    out: &mut String,
) -> Result<(), String> {
    let hex = |n: usize, chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        let digits: String = (0..n).filter_map(|_| chars.next()).collect();
        u32::from_str_radix(&digits, 16)
            .ok()
            .filter(|_| digits.len() == n)
            .and_then(char::from_u32)
            .ok_or_else(|| format!("not a list literal: bad escape \\{digits}"))
    };
    match chars.next() {
        None => return Err("not a list literal: unterminated string".to_owned()),
        Some('n') => out.push('\n'),
        Some('t') => out.push('\t'),
        Some('r') => out.push('\r'),
        Some('\\') => out.push('\\'),
        Some('\'') => out.push('\''),
        Some('"') => out.push('"'),
        Some('\n') => {}
        Some('x') => out.push(hex(2, chars)?),
        Some('u') => out.push(hex(4, chars)?),
        Some('U') => out.push(hex(8, chars)?),
        Some(other) => {
            out.push('\\');
            out.push(other);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn integers_with_separators() {
        assert_eq!(thousands_i64("1,152"), Ok(Some(1152)));
        assert_eq!(thousands_i64("0"), Ok(Some(0)));
        assert_eq!(thousands_i64(" 2,258,990 "), Ok(Some(2_258_990)));
        assert_eq!(thousands_i64(""), Ok(None));
        assert_eq!(thousands_i64("  "), Ok(None));
        for bad in [
            "abc", "1,2x", ",", "1.5.2", "--1", "12 34", "1,", ",1", "1e5", "١٢",
        ] {
            assert!(thousands_i64(bad).is_err(), "{bad}");
        }
        assert!(thousands_i64("1.5").is_err(), "a decimal is not an integer");
        assert!(thousands_i64("99,999,999,999,999,999,999").is_err());
        assert_eq!(thousands_i32("2,258,990"), Ok(Some(2_258_990)));
        assert!(thousands_i32("3,000,000,000").is_err());
    }

    #[test]
    fn floats_with_separators() {
        assert_eq!(thousands_f32("1,234.5"), Ok(Some(1234.5)));
        assert_eq!(thousands_f32("0.1"), Ok(Some(0.1)));
        assert_eq!(thousands_f32("12"), Ok(Some(12.0)));
        assert_eq!(thousands_f32(""), Ok(None));
        for bad in [
            "abc",
            "NaN",
            "inf",
            "-inf",
            "1e3",
            "1..2",
            ".",
            "1,2,3.4.5",
            "1e99",
        ] {
            assert!(thousands_f32(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn purchased_review_counts() {
        assert_eq!(purchased_reviews("(654,820)"), Ok(Some(654_820)));
        assert_eq!(
            purchased_reviews("(81% of 62,791)\u{a0}All Time"),
            Ok(Some(50_860))
        );
        // exact integer arithmetic where floating point would give 28
        assert_eq!(
            purchased_reviews("(29% of 100)\u{a0}All Time"),
            Ok(Some(29))
        );
        assert_eq!(purchased_reviews("()\u{a0}All Time"), Ok(None));
        assert_eq!(purchased_reviews(""), Ok(None));
        assert_eq!(purchased_reviews("(8,313,603)"), Ok(Some(8_313_603)));
        for bad in [
            "654,820",
            "(abc)",
            "(81% of)",
            "(181% of 10)",
            "(81% of x)",
            "(5,000,000,000)",
            "(",
            // The product overflows 64 bits: an error, not a panic or a wrapped count.
            "(100% of 100,000,000,000,000,000)",
            "(99% of 9,223,372,036,854,775,807)",
        ] {
            assert!(purchased_reviews(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn first_integers() {
        assert_eq!(first_integer("7 user reviews"), Some(7));
        assert_eq!(first_integer("Based on 12 reviews, 3 new"), Some(12));
        assert_eq!(first_integer("Very Positive"), None);
        assert_eq!(first_integer("99999999999 reviews"), None);
    }

    #[test]
    fn long_descriptions() {
        assert_eq!(
            long_description("About This Game\n\t\t\tA game."),
            "A game."
        );
        assert_eq!(long_description("  About This Game  "), "");
        assert_eq!(
            long_description("About This Content\nDLC"),
            "About This Content\nDLC"
        );
        assert_eq!(long_description("Plain."), "Plain.");
    }

    #[test]
    fn usernames() {
        assert_eq!(username("Sentinowl\n123 products in account"), "Sentinowl");
        assert_eq!(
            username("Sentinowl\r\n123 products in account"),
            "Sentinowl"
        );
        assert_eq!(username("Solo"), "Solo");
        assert_eq!(username(""), "anonymous");
        assert_eq!(username("\n5 products in account"), "anonymous");
        assert_eq!(username("  Ünïcødé 名前  \n1 product"), "Ünïcødé 名前");
    }

    #[test]
    fn release_dates() {
        assert_eq!(release_date("19 Aug, 2024"), Some(d(2024, 8, 19)));
        assert_eq!(release_date("9 Sep, 2024"), Some(d(2024, 9, 9)));
        assert_eq!(release_date("Aug 19, 2024"), Some(d(2024, 8, 19)));
        assert_eq!(release_date("Nov 2018"), Some(d(2018, 11, 1)));
        for bad in [
            "",
            "Coming soon",
            "To be announced",
            "31 Feb, 2024",
            "19 Aug",
            "2024",
            "19 Xyz, 2024",
            "19 Aug, 24",
            "1 2 3 4",
        ] {
            assert_eq!(release_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn review_dates() {
        let y = 2024;
        assert_eq!(
            review_date("September 14, 2023", y),
            Ok(Some(d(2023, 9, 14)))
        );
        assert_eq!(
            review_date("14 September, 2023", y),
            Ok(Some(d(2023, 9, 14)))
        );
        assert_eq!(review_date("September 14", y), Ok(Some(d(2024, 9, 14))));
        assert_eq!(review_date("14 September", y), Ok(Some(d(2024, 9, 14))));
        assert_eq!(review_date("Sep 14", 2020), Ok(Some(d(2020, 9, 14))));
        assert_eq!(review_date("", y), Ok(None));
        assert_eq!(review_date("February 29", 2024), Ok(Some(d(2024, 2, 29))));
        assert!(review_date("February 29", 2023).is_err());
        for bad in [
            "Septembre 14",
            "14",
            "September",
            "September 14, 23",
            "14 14",
            "September 32",
            "yesterday",
            "2023-09-14",
            "a b c d",
        ] {
            assert!(review_date(bad, y).is_err(), "{bad}");
        }
    }

    #[test]
    fn list_literals() {
        assert_eq!(
            list_literal(r#"['FromSoftware, Inc.', "World's Edge"]"#),
            Ok(vec![
                "FromSoftware, Inc.".to_owned(),
                "World's Edge".to_owned()
            ])
        );
        assert_eq!(list_literal("[]"), Ok(vec![]));
        assert_eq!(list_literal(""), Ok(vec![]));
        assert_eq!(list_literal("['a',]"), Ok(vec!["a".to_owned()]));
        assert_eq!(
            list_literal(r"['It\'s', 'tab\there', '\u00e9', '\x41', 'back\\slash']"),
            Ok(vec![
                "It's".to_owned(),
                "tab\there".to_owned(),
                "é".to_owned(),
                "A".to_owned(),
                "back\\slash".to_owned()
            ])
        );
        assert_eq!(
            list_literal("['Action', 'Action', ' ', 'RPG ']"),
            Ok(vec!["Action".to_owned(), "RPG".to_owned()])
        );
        for bad in [
            "Action, RPG",
            "['a' 'b']",
            "['a', b]",
            "['unterminated]",
            "[",
            "['a'",
            r"['\u12']",
            r"['\",
            "[1, 2]",
        ] {
            assert!(list_literal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn date32_epoch() {
        assert_eq!(date32(d(1970, 1, 1)), 0);
        assert_eq!(date32(d(1970, 1, 2)), 1);
        assert_eq!(date32(d(1969, 12, 31)), -1);
    }
}
