//! A deterministic generator of the three raw files in the scraper's formats, at any scale.
//!
//! The same options always give the same bytes. The data reproduces what makes the real files
//! messy: Python list literals with commas and apostrophes inside names, both forms of the
//! purchased-review count, both release-date forms, year-less and full review dates, multi-line and
//! empty usernames, thousands separators, quotes, commas, newlines and non-ASCII text in reviews,
//! about 7% of reviews for games outside the catalog, and heavy-tailed users (a few write many
//! reviews). Behind the reviews is a planted taste structure, so a recommender trained on them has
//! something to find: users and games fall into taste groups; half of a user's reviews are of
//! games of its own group (as players mostly play the kinds of game they like), the rest of any
//! game; a user recommends a game of its group far more often; and a game recommended was played
//! about ten times longer, on a heavy-tailed scale.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use fastrand::Rng;
use steam_core::raw::RawFile;
use steam_core::{Error, Result};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// The directory the three files are written to (created when missing).
    pub out: PathBuf,
    /// Number of review records.
    pub reviews: u64,
    /// Number of games in the catalog.
    pub games: u32,
    /// The seed: the same seed gives the same files.
    pub seed: u64,
    /// Fraction (0 to 1) of review and ranking records given a deliberately broken value (a
    /// non-number, an impossible date, a missing field), for exercising the rejects ledger.
    pub broken_rate: f64,
    /// The day of the store's life the scrape is of: day 1 holds [`GenerateOptions::reviews`]
    /// reviews; each later day adds [`GenerateOptions::daily_new`] new ones (by known users and
    /// new ones), listed before the older ones, as the store lists newest first. Day 1's reviews
    /// are the same whatever the day.
    pub day: u32,
    /// New reviews per day after day 1.
    pub daily_new: u64,
    /// Write only the reviews new on [`GenerateOptions::day`] (a file of new reviews), not the
    /// whole scrape.
    pub only_new: bool,
}

impl GenerateOptions {
    /// `reviews` reviews of 290 games (the real catalog's size), seed 42, nothing broken.
    pub fn new(out: impl Into<PathBuf>, reviews: u64) -> Self {
        GenerateOptions {
            out: out.into(),
            reviews,
            games: 290,
            seed: 42,
            broken_rate: 0.0,
            day: 1,
            daily_new: 0,
            only_new: false,
        }
    }
}

/// What was generated: records per file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// Records in games_description.csv.
    pub games: u64,
    /// Records in games_ranking.csv.
    pub ranking: u64,
    /// Records in steam_game_reviews.csv.
    pub reviews: u64,
}

const TASTES: usize = 6;

/// The share of a user's reviews drawn from the games of its own taste group.
const TASTE_AFFINITY: f64 = 0.5;

const ADJECTIVES: &[&str] = &[
    "Dark", "Eternal", "Lost", "Iron", "Crimson", "Silent", "Hollow", "Stellar", "Wild", "Frozen",
    "Ancient", "Neon", "Broken", "Golden", "Savage", "Mystic", "Rusty", "Cosmic", "Shadow",
    "Little",
];
const NOUNS: &[&str] = &[
    "Kingdom",
    "Legends",
    "Frontier",
    "Odyssey",
    "Dungeon",
    "Empire",
    "Horizon",
    "Tactics",
    "Survivors",
    "Chronicles",
    "Citadel",
    "Drift",
    "Colony",
    "Harvest",
    "Protocol",
    "Requiem",
    "Outpost",
    "Wasteland",
    "Voyage",
    "Arena",
];
const SUBTITLES: &[&str] = &[
    "Remastered",
    "Definitive Edition",
    "Rise of the Fallen",
    "Director's Cut",
    "Part II",
    "The Lost Tapes",
    "Ultimate Edition",
    "Origins",
];
const GENRES: &[&str] = &[
    "Action",
    "Adventure",
    "RPG",
    "Strategy",
    "Simulation",
    "Indie",
    "Casual",
    "Multiplayer",
    "Singleplayer",
    "Open World",
    "Souls-like",
    "Roguelike",
    "Rogue-lite",
    "Sci-fi",
    "Fantasy",
    "Horror",
    "Survival",
    "Crafting",
    "Building",
    "Puzzle",
    "Platformer",
    "Shooter",
    "FPS",
    "Third Person",
    "Story Rich",
    "Atmospheric",
    "Co-op",
    "Online Co-Op",
    "PvP",
    "Sandbox",
    "Turn-Based Strategy",
    "Real Time Tactics",
    "Hack and Slash",
    "Shoot 'Em Up",
    "Beat 'em up",
    "Visual Novel",
    "Anime",
    "Pixel Graphics",
    "2D",
    "3D",
    "Great Soundtrack",
    "Difficult",
    "Competitive",
    "eSports",
    "Sports",
    "Racing",
    "Driving",
    "Management",
    "City Builder",
    "Colony Sim",
    "Space",
    "Exploration",
    "Stealth",
    "Military",
    "Historical",
    "Cyberpunk",
    "Post-apocalyptic",
    "Zombies",
    "Cute",
    "Family Friendly",
    "Dark Fantasy",
    "Psychological Horror",
    "Card Game",
    "Deckbuilding",
    "Metroidvania",
    "Free to Play",
    "Early Access",
    "Massively Multiplayer",
];
const STUDIOS: &[&str] = &[
    "FromSoftware, Inc.",
    "World's Edge",
    "Valve",
    "Paradox Interactive",
    "CD PROJEKT RED",
    "Bandai Namco Entertainment",
    "Larian Studios",
    "Re-Logic",
    "ConcernedApe",
    "Facepunch Studios",
    "Game Science",
    "Saber Interactive",
    "Focus Entertainment",
    "Ubisoft Montreal",
    "Klei Entertainment",
    "Devolver Digital",
    "Team17",
    "SEGA",
    "CAPCOM Co., Ltd.",
    "KOEI TECMO GAMES CO., LTD.",
    "Hooded Horse",
    "Coffee Stain Publishing",
    "Annapurna Interactive",
    "Raw Fury",
    "tinyBuild",
    "Studio \"Quote\" Works",
    "Ghost Ship Games",
    "Mojang Studios",
    "Digital Extremes",
    "Amazon Games",
    "Motion Twin",
    "Supergiant Games",
    "Team Cherry",
    "Hello Games",
    "Frontier Developments",
    "Creative Assembly",
    "Firaxis Games",
    "2K",
    "SQUARE ENIX",
    "Dodge Roll",
    "Pocketpair",
    "Studio Wildcard",
    "Kinetic Games",
    "Behaviour Interactive",
    "Bungie",
    "Rockstar North",
    "Rockstar Games",
    "Electronic Arts",
    "Respawn",
    "Nomada Studio",
    "Ludeon Studios",
];
const RATINGS: &[&str] = &[
    "Overwhelmingly Positive",
    "Very Positive",
    "Mostly Positive",
    "Positive",
    "Mixed",
    "Mostly Negative",
    "Very Negative",
];
const MONTHS: &[&str] = &[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WORDS: &[&str] = &[
    "game",
    "fun",
    "the",
    "and",
    "a",
    "is",
    "really",
    "great",
    "boss",
    "fight",
    "story",
    "graphics",
    "music",
    "worth",
    "price",
    "hours",
    "friends",
    "bugs",
    "update",
    "devs",
    "combat",
    "world",
    "love",
    "hate",
    "grind",
    "loot",
    "but",
    "not",
    "very",
    "so",
    "it",
    "with",
    "controls",
    "map",
    "performance",
    "crashes",
    "sale",
    "masterpiece",
    "refund",
    "très",
    "bien",
    "jeu",
    "好玩",
    "Spiel",
    "gut",
    "juego",
    "🙂",
    "10/10",
    "GOTY",
    "meh",
    "\"classic\"",
    "it's",
    "don't",
];
const NAMES: &[&str] = &[
    "Sentinowl",
    "xX_Sniper_Xx",
    "kaffeeklatsch",
    "Ünïcørn",
    "dragonslayer",
    "NoobMaster",
    "pixel_witch",
    "Jäger",
    "名無し",
    "Señor Gato",
    "ghost",
    "TheLegend27",
    "quietfox",
    "bob",
    "Ronin",
    "mika",
    "Zed",
    "chaos_theory",
    "LunaTic",
    "grumpy",
];

/// Writes games_description.csv, games_ranking.csv and steam_game_reviews.csv into `options.out`.
pub fn generate(options: &GenerateOptions) -> Result<Generated> {
    if options.games == 0 {
        return Err(Error::Config {
            key: "games".into(),
            reason: "must be at least 1".into(),
        });
    }
    if !(0.0..=1.0).contains(&options.broken_rate) {
        return Err(Error::Config {
            key: "broken-rate".into(),
            reason: "must be between 0 and 1".into(),
        });
    }
    std::fs::create_dir_all(&options.out).map_err(|e| Error::io(&options.out, e))?;
    let catalog = catalog(options.games, options.seed);
    let games = write_descriptions(&options.out, &catalog, options.seed)?;
    let ranking = write_ranking(&options.out, &catalog, options)?;
    let reviews = write_reviews(&options.out, &catalog, options)?;
    Ok(Generated {
        games,
        ranking,
        reviews,
    })
}

struct Game {
    name: String,
    taste: usize,
    quality: f64,
    genres: Vec<&'static str>,
}

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.usize(..items.len())]
}

fn catalog(n: u32, seed: u64) -> Vec<Game> {
    let mut rng = Rng::with_seed(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut seen = std::collections::HashSet::new();
    (0..n as usize)
        .map(|i| {
            let mut name = format!("{} {}", pick(&mut rng, ADJECTIVES), pick(&mut rng, NOUNS));
            match rng.u8(..10) {
                0..=2 => name = format!("{name}: {}", pick(&mut rng, SUBTITLES)),
                3 => name = format!("{name}™"),
                4 => name = format!("{name} {}", rng.u16(2..3000)),
                _ => {}
            }
            if !seen.insert(name.clone()) {
                name = format!("{name} ({})", i + 1);
                seen.insert(name.clone());
            }
            let taste = i % TASTES;
            let mut genres: Vec<&'static str> = Vec::new();
            // each taste group leans to a block of genres, so genres carry signal too
            let block = taste * GENRES.len() / TASTES;
            for _ in 0..rng.usize(3..16) {
                let g = if rng.bool() {
                    GENRES[(block + rng.usize(..GENRES.len() / TASTES)) % GENRES.len()]
                } else {
                    pick(&mut rng, GENRES)
                };
                if !genres.contains(&g) {
                    genres.push(g);
                }
            }
            Game {
                name,
                taste,
                quality: rng.f64() * 0.3 - 0.15,
                genres,
            }
        })
        .collect()
}

/// A Python `repr` of a string, as the scraper's list literals hold them.
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

fn py_list<S: AsRef<str>>(items: &[S]) -> String {
    let inner: Vec<String> = items.iter().map(|s| py_repr(s.as_ref())).collect();
    format!("[{}]", inner.join(", "))
}

/// `1234567` → `"1,234,567"`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn writer(dir: &Path, file: RawFile) -> Result<(csv::Writer<BufWriter<File>>, PathBuf)> {
    let path = dir.join(file.file_name());
    let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(BufWriter::with_capacity(1 << 20, f));
    w.write_record(file.scraper_columns())
        .map_err(|e| csv_error(&path, e))?;
    Ok((w, path))
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    Error::backend("files", path.display().to_string(), e)
}

fn write_descriptions(dir: &Path, games: &[Game], seed: u64) -> Result<u64> {
    let mut rng = Rng::with_seed(seed.wrapping_add(1));
    let (mut w, path) = writer(dir, RawFile::GamesDescription)?;
    for (i, g) in games.iter().enumerate() {
        let studios = |rng: &mut Rng| -> Vec<&str> {
            let mut v: Vec<&str> = Vec::new();
            for _ in 0..1 + rng.usize(..3).saturating_sub(1) {
                let s = pick(rng, STUDIOS);
                if !v.contains(&s) {
                    v.push(s);
                }
            }
            v
        };
        let developers = studios(&mut rng);
        let publishers = if rng.u8(..3) == 0 {
            developers.clone()
        } else {
            studios(&mut rng)
        };
        let release = match rng.u8(..40) {
            0 => format!("{} {}", &MONTHS[rng.usize(..12)][..3], rng.u16(2005..2025)),
            1 => "Coming soon".to_owned(),
            _ => format!(
                "{} {}, {}",
                rng.u8(1..29),
                &MONTHS[rng.usize(..12)][..3],
                rng.u16(2005..2025)
            ),
        };
        let total = (10f64.powf(1.0 + rng.f64() * 5.5)) as u64;
        let (rating, purchased) = match rng.u8(..20) {
            0 => (
                format!("{} user reviews", rng.u8(1..10)),
                "()\u{a0}All Time".to_owned(),
            ),
            1..=3 => (
                pick(&mut rng, RATINGS).to_owned(),
                format!(
                    "({}% of {})\u{a0}All Time",
                    rng.u8(20..100),
                    thousands(total)
                ),
            ),
            _ => (
                pick(&mut rng, RATINGS).to_owned(),
                format!("({})", thousands(total)),
            ),
        };
        let long = format!(
            "About This Game\n\t\t\t\t\t\t\t{} is a {} game, \"unlike any other\".\nExplore, fight, build — and don't look back.",
            g.name,
            g.genres.first().copied().unwrap_or("strange")
        );
        let requirements = py_list(&[
            "Requires a 64-bit processor and operating system",
            "OS: Windows 10 64-bit",
            "Memory: 8 GB RAM",
        ]);
        let record = [
            g.name.clone(),
            format!("{} — a short description, with commas.", g.name),
            long,
            py_list(&g.genres),
            requirements.clone(),
            requirements,
            release,
            py_list(&developers),
            py_list(&publishers),
            rating,
            purchased,
            thousands(total / (1 + rng.u64(1..4))),
            format!("https://store.steampowered.com/app/{}/", 1000 + i * 10),
        ];
        w.write_record(&record).map_err(|e| csv_error(&path, e))?;
    }
    w.flush().map_err(|e| Error::io(&path, e))?;
    Ok(games.len() as u64)
}

fn write_ranking(dir: &Path, games: &[Game], options: &GenerateOptions) -> Result<u64> {
    let mut rng = Rng::with_seed(options.seed.wrapping_add(2));
    let (mut w, path) = writer(dir, RawFile::GamesRanking)?;
    let mut rows = 0u64;
    for rank_type in ["Sales", "Revenue", "Review"] {
        for genre in [
            "Action",
            "RPG",
            "Strategy",
            "Free To Play",
            "Indie",
            "Simulation",
        ] {
            for rank in 1..=rng.u8(30..41) {
                let name = if rng.u8(..10) < 3 {
                    format!("Unlisted Game {}", rng.u32(1..100_000))
                } else {
                    games[rng.usize(..games.len())].name.clone()
                };
                let mut record = vec![
                    name,
                    genre.to_owned(),
                    rank_type.to_owned(),
                    rank.to_string(),
                ];
                if rng.f64() < options.broken_rate {
                    match rng.u8(..3) {
                        0 => record[3] = "first".to_owned(),
                        1 => record[3] = "300".to_owned(),
                        _ => {
                            record.pop();
                        }
                    }
                }
                w.write_record(&record).map_err(|e| csv_error(&path, e))?;
                rows += 1;
            }
        }
    }
    w.flush().map_err(|e| Error::io(&path, e))?;
    Ok(rows)
}

fn write_reviews(dir: &Path, games: &[Game], options: &GenerateOptions) -> Result<u64> {
    let (mut w, path) = writer(dir, RawFile::GameReviews)?;
    let users = (options.reviews / 5).max(1);
    let mut text = String::with_capacity(512);
    let mut written = 0;
    // Newest first: the days after day 1, the latest first, then day 1's.
    let first = if options.only_new { options.day } else { 2 };
    for day in (first.max(2)..=options.day).rev() {
        let mut rng = Rng::with_seed(
            options
                .seed
                .wrapping_add(3)
                .wrapping_add(u64::from(day) << 32),
        );
        // The population grows: a fifth of a day's reviews come from users new that day.
        let population = users + u64::from(day - 1) * (options.daily_new / 5);
        for _ in 0..options.daily_new {
            write_review(
                &mut w, &path, &mut rng, games, population, options, &mut text,
            )?;
            written += 1;
        }
    }
    if !options.only_new || options.day <= 1 {
        let mut rng = Rng::with_seed(options.seed.wrapping_add(3));
        for _ in 0..options.reviews {
            write_review(&mut w, &path, &mut rng, games, users, options, &mut text)?;
            written += 1;
        }
    }
    w.flush().map_err(|e| Error::io(&path, e))?;
    Ok(written)
}

/// Writes one review of a user among `users`.
fn write_review(
    w: &mut csv::Writer<BufWriter<File>>,
    path: &Path,
    rng: &mut Rng,
    games: &[Game],
    users: u64,
    options: &GenerateOptions,
    text: &mut String,
) -> Result<()> {
    {
        // heavy tails: user and game popularity both follow a power law
        let user = ((users as f64) * rng.f64().powi(3)) as u64;
        let outside = rng.u8(..100) < 7;
        let taste = (user as usize * 7 + 3) % TASTES;
        // Within the user's taste group or the whole catalog, the same power law of popularity.
        let game = if games.len() > taste && rng.f64() < TASTE_AFFINITY {
            let in_taste = (games.len() - taste).div_ceil(TASTES);
            &games[taste + TASTES * ((in_taste as f64) * rng.f64().powi(2)) as usize]
        } else {
            &games[((games.len() as f64) * rng.f64().powi(2)) as usize]
        };
        let name = if outside {
            format!("Delisted Game {}", rng.u32(1..50_000))
        } else {
            game.name.clone()
        };
        let p = if taste == game.taste { 0.88 } else { 0.30 } + game.quality;
        let recommended = rng.f64() < p;
        text.clear();
        for k in 0..rng.usize(4..60) {
            if k > 0 {
                text.push_str(if rng.u8(..12) == 0 { ", " } else { " " });
            }
            text.push_str(pick(rng, WORDS));
        }
        if rng.u8(..20) == 0 {
            text.push_str("\n\nEdit: still playing, still \"fine\".");
        }
        // 0.1 to 1,000 hours on a log scale, ten times longer for a game recommended.
        let decades = rng.f64() * 3.0 + if recommended { 1.0 } else { 0.0 };
        let hours = (10f64.powf(decades) * 10.0).round() / 100.0;
        let hours = format!(
            "{}.{}",
            thousands(hours as u64),
            ((hours.fract() * 10.0).round() as u64).min(9)
        );
        let day = rng.u8(1..29);
        let month = MONTHS[rng.usize(..12)];
        let date = match rng.u8(..4) {
            0 => format!("{month} {day}, {}", rng.u16(2015..2024)),
            1 => format!("{day} {month}, {}", rng.u16(2015..2024)),
            2 => format!("{month} {day}"),
            _ => format!("{day} {month}"),
        };
        let username = match rng.u8(..20) {
            0 => String::new(),
            1 | 2 => format!("{}{user}", pick(rng, NAMES)),
            _ => format!(
                "{}{user}\n{} products in account",
                NAMES[user as usize % NAMES.len()],
                (user * 37) % 2000 + 1
            ),
        };
        let mut record = [
            text.clone(),
            hours,
            thousands(rng.u64(..3) * rng.u64(..2000)),
            thousands(rng.u64(..2) * rng.u64(..500)),
            if recommended {
                "Recommended"
            } else {
                "Not Recommended"
            }
            .to_owned(),
            date,
            name,
            username,
        ];
        if rng.f64() < options.broken_rate {
            match rng.u8(..4) {
                0 => record[1] = "lots".to_owned(),
                1 => record[5] = "February 30, 2023".to_owned(),
                2 => record[4] = "Maybe".to_owned(),
                _ => {
                    w.write_record(&record[..6])
                        .map_err(|e| csv_error(path, e))?;
                    return Ok(());
                }
            }
        }
        w.write_record(&record).map_err(|e| csv_error(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_reprs() {
        assert_eq!(py_repr("Valve"), "'Valve'");
        assert_eq!(py_repr("World's Edge"), "\"World's Edge\"");
        assert_eq!(py_repr("it's \"x\""), "'it\\'s \"x\"'");
        assert_eq!(py_list(&["a, b", "c"]), "['a, b', 'c']");
    }

    #[test]
    fn a_later_day_lists_its_new_reviews_before_day_ones_same_reviews() {
        let records = |day: u32, only_new: bool| {
            let dir = tempfile::tempdir().unwrap();
            let mut o = GenerateOptions::new(dir.path(), 200);
            (o.day, o.daily_new, o.only_new) = (day, 50, only_new);
            let g = generate(&o).unwrap();
            let mut r = csv::Reader::from_path(dir.path().join("steam_game_reviews.csv")).unwrap();
            let all: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
            assert_eq!(all.len() as u64, g.reviews);
            all
        };
        let day1 = records(1, false);
        let day3 = records(3, false);
        assert_eq!(day1.len(), 200);
        assert_eq!(day3.len(), 300);
        assert_eq!(day3[100..], day1[..], "day 1's reviews, after the new ones");
        let new3 = records(3, true);
        assert_eq!(new3[..], day3[..50], "day 3's new reviews come first");
        let day2 = records(2, false);
        assert_eq!(
            day3[50..],
            day2[..],
            "day 3's scrape is day 2's with day 3's first"
        );
        assert_ne!(new3[..], day2[..50]);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(2_258_990), "2,258,990");
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let read = |seed: u64| {
            let dir = tempfile::tempdir().unwrap();
            let mut o = GenerateOptions::new(dir.path(), 500);
            o.seed = seed;
            o.games = 40;
            generate(&o).unwrap();
            RawFile::ALL.map(|f| std::fs::read(dir.path().join(f.file_name())).unwrap())
        };
        assert_eq!(read(7), read(7));
        assert_ne!(read(7)[2], read(8)[2]);
    }
}
