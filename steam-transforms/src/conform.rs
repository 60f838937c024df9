//! Conforming processed tables for the lake's conformed layer, as the reference's exporters did.

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::NaiveDate;
use steam_core::{Error, Result, Table};

/// The column every conformed row gets: the date of the run that exported it.
pub const RECORD_CREATED_DT: &str = "record_created_dt";

/// The column of games_reviews that becomes its [`RECORD_CREATED_DT`]: the date of the run that
/// first loaded the review.
pub const FIRST_SEEN: &str = "first_seen";

/// The schema of `table` in the conformed layer: the processed schema, with games_description's
/// `name` exposed as `game_name` (the reference's exported column), games_reviews' `first_seen`
/// left out (it is the review's [`RECORD_CREATED_DT`]), and [`RECORD_CREATED_DT`] (`Date32`,
/// non-null) last. Dates (`release_date`, games_reviews' `date`) are `Date32` already.
pub fn conformed_schema(table: Table) -> SchemaRef {
    let processed = table.schema();
    let mut fields: Vec<Field> = processed
        .fields()
        .iter()
        .filter(|f| !(table == Table::GamesReviews && f.name() == FIRST_SEEN))
        .map(|f| {
            if table == Table::GamesDescription && f.name() == "name" {
                f.as_ref().clone().with_name("game_name")
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    fields.push(Field::new(RECORD_CREATED_DT, DataType::Date32, false));
    Arc::new(Schema::new(fields))
}

/// Conforms a batch of processed `table` rows: renames as [`conformed_schema`] says and adds
/// [`RECORD_CREATED_DT`]: `date`, the run's, except for games_reviews, whose rows carry theirs
/// ([`FIRST_SEEN`]: the partition of a review is the day it arrived). The batch must have the
/// processed table's schema.
pub fn conform(table: Table, batch: &RecordBatch, date: NaiveDate) -> Result<RecordBatch> {
    let processed = table.schema();
    steam_core::check_columns(&format!("conform {table}"), &batch.schema(), &processed)?;
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    if table == Table::GamesReviews {
        let i = processed
            .index_of(FIRST_SEEN)
            .map_err(|e| Error::arrow(format!("conform {table}"), e))?;
        let first_seen = columns.remove(i);
        columns.push(first_seen);
    } else {
        let days = crate::parse::date32(date);
        columns.push(Arc::new(Date32Array::from_value(days, batch.num_rows())));
    }
    RecordBatch::try_new(conformed_schema(table), columns)
        .map_err(|e| Error::arrow(format!("conform {table}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int32Array, StringArray};

    #[test]
    fn descriptions_expose_game_name_and_every_table_gets_the_run_date() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        for table in Table::ALL {
            let empty = RecordBatch::new_empty(table.schema());
            let out = conform(table, &empty, date).unwrap();
            assert_eq!(
                out.schema().fields().last().unwrap().name(),
                RECORD_CREATED_DT
            );
        }
        let schema = Table::GenreDimension.schema();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec!["Action", "Indie"])),
            ],
        )
        .unwrap();
        let out = conform(Table::GenreDimension, &batch, date).unwrap();
        let dates = out.column(2).as_primitive::<arrow::datatypes::Date32Type>();
        assert_eq!(dates.value_as_date(1), Some(date));
        assert!(conformed_schema(Table::GamesDescription)
            .field_with_name("game_name")
            .is_ok());
        let err = conform(Table::UsersMapping, &batch, date).unwrap_err();
        assert!(err.to_string().contains("users_mapping"), "{err}");
    }
}
