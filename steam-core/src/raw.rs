//! The three raw files scraped from Steam, and the columns each must have.
//!
//! A raw reader yields batches whose columns are, in order: [`LINE`] (`UInt64`, the 1-based line on
//! which the record starts), [`ERROR`] (`Utf8`, non-null when the record itself is malformed, such
//! as a wrong number of fields or invalid UTF-8, in which case every other column is null), then the
//! file's [`RawFile::columns`] as `Utf8`, in that order. Missing cells are empty strings, never null,
//! in well-formed records.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// The name of the column holding each record's starting line.
pub const LINE: &str = "_line";
/// The name of the column holding why a record is malformed (null when it is not).
pub const ERROR: &str = "_error";

/// One of the three raw files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RawFile {
    /// `games_description.csv`: one record per game.
    GamesDescription,
    /// `games_ranking.csv`: one record per (genre, rank type, rank) entry.
    GamesRanking,
    /// `steam_game_reviews.csv`: one record per review.
    GameReviews,
}

impl RawFile {
    /// The three files, in the order they are processed.
    pub const ALL: [RawFile; 3] = [
        RawFile::GamesDescription,
        RawFile::GamesRanking,
        RawFile::GameReviews,
    ];

    /// The file's name in a raw directory.
    pub fn file_name(self) -> &'static str {
        match self {
            RawFile::GamesDescription => "games_description.csv",
            RawFile::GamesRanking => "games_ranking.csv",
            RawFile::GameReviews => "steam_game_reviews.csv",
        }
    }

    /// The columns the file must have (by header name; order in the file and extra columns do not
    /// matter). These are the columns a raw reader yields, in this order.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            RawFile::GamesDescription => &[
                "name",
                "long_description",
                "genres",
                "release_date",
                "developer",
                "publisher",
                "overall_player_rating",
                "number_of_reviews_from_purchased_people",
                "number_of_english_reviews",
            ],
            RawFile::GamesRanking => &["game_name", "genre", "rank_type", "rank"],
            RawFile::GameReviews => &[
                "review",
                "hours_played",
                "helpful",
                "funny",
                "recommendation",
                "date",
                "game_name",
                "username",
            ],
        }
    }

    /// The columns the scraper writes, in its order: [`RawFile::columns`] plus the ones the
    /// pipelines do not use.
    pub fn scraper_columns(self) -> &'static [&'static str] {
        match self {
            RawFile::GamesDescription => &[
                "name",
                "short_description",
                "long_description",
                "genres",
                "minimum_system_requirement",
                "recommend_system_requirement",
                "release_date",
                "developer",
                "publisher",
                "overall_player_rating",
                "number_of_reviews_from_purchased_people",
                "number_of_english_reviews",
                "link",
            ],
            other => other.columns(),
        }
    }

    /// The schema of the batches a raw reader yields for this file.
    pub fn schema(self) -> SchemaRef {
        let mut fields = vec![
            Field::new(LINE, DataType::UInt64, false),
            Field::new(ERROR, DataType::Utf8, true),
        ];
        fields.extend(
            self.columns()
                .iter()
                .map(|c| Field::new(*c, DataType::Utf8, true)),
        );
        Arc::new(Schema::new(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scraper_columns_include_required_columns() {
        for f in RawFile::ALL {
            for c in f.columns() {
                assert!(f.scraper_columns().contains(c), "{c}");
            }
            assert_eq!(f.schema().fields().len(), f.columns().len() + 2);
        }
    }
}
