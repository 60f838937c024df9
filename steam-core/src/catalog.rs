//! The eleven processed tables and their Arrow schemas: the contract every connector shares.
//!
//! Column order and types follow the reference system's processed tables. Identifier columns are
//! non-null `Int32`, numbered from 1.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};

/// One of the eleven processed tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// One row per game: `game_id`, `name`, `long_description`, `release_date`,
    /// `overall_player_rating`, `number_of_reviews_from_purchased_people`,
    /// `number_of_english_reviews`.
    GamesDescription,
    /// Distinct genres: `genre_id`, `genre`.
    GenreDimension,
    /// `game_id`, `genre_id`: one row per genre of a game.
    GenreMapping,
    /// Distinct developers: `developer_id`, `developer`.
    DeveloperDimension,
    /// `game_id`, `developer_id`: one row per developer of a game.
    DeveloperMapping,
    /// Distinct publishers: `publisher_id`, `publisher`.
    PublisherDimension,
    /// `game_id`, `publisher_id`: one row per publisher of a game.
    PublisherMapping,
    /// Distinct reviewers: `user_id`, `username`.
    UsersMapping,
    /// One row per loaded review: `review`, `hours_played`, `helpful`, `funny`, `recommendation`,
    /// `date`, `user_id`, `game_id`, then `review_id` (the review's stable key, see
    /// `steam_transforms::review_id`) and `first_seen` (the date of the run that first loaded it).
    GamesReviews,
    /// One row per ranking entry: `rank`, `game_id`, `genre_id`, `rank_type_id`.
    GamesRanking,
    /// Rank types: `rank_type_id`, `rank_type`.
    RankDimension,
}

impl Table {
    /// All eleven tables, dimensions before the tables that refer to them.
    pub const ALL: [Table; 11] = [
        Table::GamesDescription,
        Table::GenreDimension,
        Table::GenreMapping,
        Table::DeveloperDimension,
        Table::DeveloperMapping,
        Table::PublisherDimension,
        Table::PublisherMapping,
        Table::UsersMapping,
        Table::GamesReviews,
        Table::RankDimension,
        Table::GamesRanking,
    ];

    /// The table's name, such as `games_reviews`.
    pub fn name(self) -> &'static str {
        match self {
            Table::GamesDescription => "games_description",
            Table::GenreDimension => "genre_dimension",
            Table::GenreMapping => "genre_mapping",
            Table::DeveloperDimension => "developer_dimension",
            Table::DeveloperMapping => "developer_mapping",
            Table::PublisherDimension => "publisher_dimension",
            Table::PublisherMapping => "publisher_mapping",
            Table::UsersMapping => "users_mapping",
            Table::GamesReviews => "games_reviews",
            Table::GamesRanking => "games_ranking",
            Table::RankDimension => "rank_dimension",
        }
    }

    /// The table's Arrow schema.
    pub fn schema(self) -> SchemaRef {
        let id = |name: &str| Field::new(name, DataType::Int32, false);
        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        let fields = match self {
            Table::GamesDescription => vec![
                id("game_id"),
                Field::new("name", DataType::Utf8, false),
                text("long_description"),
                Field::new("release_date", DataType::Date32, true),
                text("overall_player_rating"),
                Field::new(
                    "number_of_reviews_from_purchased_people",
                    DataType::Int32,
                    true,
                ),
                Field::new("number_of_english_reviews", DataType::Int32, true),
            ],
            Table::GenreDimension => dimension("genre"),
            Table::DeveloperDimension => dimension("developer"),
            Table::PublisherDimension => dimension("publisher"),
            Table::GenreMapping => vec![id("game_id"), id("genre_id")],
            Table::DeveloperMapping => vec![id("game_id"), id("developer_id")],
            Table::PublisherMapping => vec![id("game_id"), id("publisher_id")],
            Table::UsersMapping => {
                vec![id("user_id"), Field::new("username", DataType::Utf8, false)]
            }
            Table::GamesReviews => vec![
                text("review"),
                Field::new("hours_played", DataType::Float32, true),
                Field::new("helpful", DataType::Int64, true),
                Field::new("funny", DataType::Int64, true),
                Field::new("recommendation", DataType::Boolean, true),
                Field::new("date", DataType::Date32, true),
                id("user_id"),
                id("game_id"),
                Field::new("review_id", DataType::Int64, false),
                Field::new("first_seen", DataType::Date32, false),
            ],
            Table::GamesRanking => vec![
                Field::new("rank", DataType::UInt8, false),
                id("game_id"),
                id("genre_id"),
                id("rank_type_id"),
            ],
            Table::RankDimension => vec![
                id("rank_type_id"),
                Field::new("rank_type", DataType::Utf8, false),
            ],
        };
        Arc::new(Schema::new(fields))
    }

    /// The columns that identify a row: the id of a dimension, the pair of a mapping, a review's
    /// `review_id`, nothing for `games_ranking`, whose rows have no natural key.
    pub fn primary_key(self) -> &'static [&'static str] {
        match self {
            Table::GamesDescription => &["game_id"],
            Table::GenreDimension => &["genre_id"],
            Table::DeveloperDimension => &["developer_id"],
            Table::PublisherDimension => &["publisher_id"],
            Table::UsersMapping => &["user_id"],
            Table::RankDimension => &["rank_type_id"],
            Table::GenreMapping => &["game_id", "genre_id"],
            Table::DeveloperMapping => &["game_id", "developer_id"],
            Table::PublisherMapping => &["game_id", "publisher_id"],
            Table::GamesReviews => &["review_id"],
            Table::GamesRanking => &[],
        }
    }

    /// The columns that refer to another table's id: `(column, table)`.
    pub fn foreign_keys(self) -> &'static [(&'static str, Table)] {
        match self {
            Table::GenreMapping => &[
                ("game_id", Table::GamesDescription),
                ("genre_id", Table::GenreDimension),
            ],
            Table::DeveloperMapping => &[
                ("game_id", Table::GamesDescription),
                ("developer_id", Table::DeveloperDimension),
            ],
            Table::PublisherMapping => &[
                ("game_id", Table::GamesDescription),
                ("publisher_id", Table::PublisherDimension),
            ],
            Table::GamesReviews => &[
                ("user_id", Table::UsersMapping),
                ("game_id", Table::GamesDescription),
            ],
            Table::GamesRanking => &[
                ("game_id", Table::GamesDescription),
                ("genre_id", Table::GenreDimension),
                ("rank_type_id", Table::RankDimension),
            ],
            _ => &[],
        }
    }
}

fn dimension(name: &str) -> Vec<Field> {
    vec![
        Field::new(format!("{name}_id"), DataType::Int32, false),
        Field::new(name, DataType::Utf8, false),
    ]
}

/// The training step's output, a contract between training, the lake and serving: Spark ML's
/// `recommendForAllUsers` output, as the reference stored it in
/// user_recommendations.parquet: `user_id` Int32, `recommendations`
/// `list<struct<game_id: Int32, rating: Float32>>`, best first.
pub fn recommendations_schema() -> SchemaRef {
    let item = Fields::from(vec![
        Field::new("game_id", DataType::Int32, true),
        Field::new("rating", DataType::Float32, true),
    ]);
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int32, false),
        Field::new(
            "recommendations",
            DataType::List(Arc::new(Field::new(
                "element",
                DataType::Struct(item),
                true,
            ))),
            true,
        ),
    ]))
}

/// The training step's similar games, beside its results (`<name>.similar.parquet`): `game_id`
/// Int32 and `similar` `list<struct<game_id: Int32, score: Float32>>`, the most similar first.
pub fn similar_games_schema() -> SchemaRef {
    let item = Fields::from(vec![
        Field::new("game_id", DataType::Int32, true),
        Field::new("score", DataType::Float32, true),
    ]);
    Arc::new(Schema::new(vec![
        Field::new("game_id", DataType::Int32, false),
        Field::new(
            "similar",
            DataType::List(Arc::new(Field::new(
                "element",
                DataType::Struct(item),
                true,
            ))),
            true,
        ),
    ]))
}

/// What serving holds: `user_id` Int32 and `recommendations` `list<Int32>` of game ids, best first.
pub fn served_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int32, false),
        Field::new(
            "recommendations",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            true,
        ),
    ]))
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Table {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Table::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| crate::Error::Config {
                key: "table".into(),
                reason: format!(
                    "unknown table {s:?}; expected one of {}",
                    Table::ALL.map(Table::name).join(", ")
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut names: Vec<_> = Table::ALL.iter().map(|t| t.name()).collect();
        for t in Table::ALL {
            assert_eq!(t.name().parse::<Table>().unwrap(), t);
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 11);
        let e = "nope".parse::<Table>().unwrap_err().to_string();
        assert!(e.contains("\"nope\"") && e.contains("games_reviews"), "{e}");
    }

    #[test]
    fn keys_name_existing_columns() {
        for t in Table::ALL {
            let schema = t.schema();
            for k in t.primary_key() {
                let f = schema.field_with_name(k).unwrap();
                assert!(!f.is_nullable(), "{t}.{k} is a key and must be non-null");
            }
            for (col, target) in t.foreign_keys() {
                assert!(schema.field_with_name(col).is_ok(), "{t}.{col}");
                assert_eq!(
                    target.primary_key().len(),
                    1,
                    "{target} has a single-column key"
                );
                assert!(
                    target.schema().field_with_name(col).is_ok(),
                    "{target}.{col}"
                );
            }
        }
    }

    #[test]
    fn foreign_keys_point_to_earlier_tables() {
        for (i, t) in Table::ALL.iter().enumerate() {
            for (_, target) in t.foreign_keys() {
                let j = Table::ALL.iter().position(|x| x == target).unwrap();
                assert!(j < i, "{target} must come before {t} in Table::ALL");
            }
        }
    }
}
