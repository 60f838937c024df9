//! The recommendations the training step writes, and what serving keeps of them.

use std::sync::Arc;

use arrow::array::{Array, AsArray, ListArray, RecordBatch};
use arrow::datatypes::{DataType, Field};
use steam_core::{served_schema, Error, Result};

fn bad(reason: String) -> Error {
    Error::Schema {
        target: "remove_probability".into(),
        reason,
    }
}

/// The reference's remove_probability: drops the ratings, keeping each user's game ids in order.
/// Input: [`steam_core::recommendations_schema`] (other columns are ignored; the item struct may carry more
/// fields, and `user_id` may be any integer type Arrow casts to Int32 exactly). Output:
/// [`served_schema`]. A missing column or one of the wrong type is an error naming it.
pub fn remove_probability(batch: &RecordBatch) -> Result<RecordBatch> {
    let user = batch
        .column_by_name("user_id")
        .ok_or_else(|| bad("missing column \"user_id\"".into()))?;
    let user = arrow::compute::cast_with_options(
        user,
        &DataType::Int32,
        &arrow::compute::CastOptions {
            safe: false,
            ..Default::default()
        },
    )
    .map_err(|e| bad(format!("column \"user_id\": {e}")))?;
    let recs = batch
        .column_by_name("recommendations")
        .ok_or_else(|| bad("missing column \"recommendations\"".into()))?;
    let list = recs.as_list_opt::<i32>().ok_or_else(|| {
        bad(format!(
            "column \"recommendations\" is {}, expected a list of structs",
            recs.data_type()
        ))
    })?;
    let items = list.values().as_struct_opt().ok_or_else(|| {
        bad(format!(
            "column \"recommendations\" holds {}, expected structs with game_id",
            list.value_type()
        ))
    })?;
    let game_id = items
        .column_by_name("game_id")
        .ok_or_else(|| bad("recommendations have no field \"game_id\"".into()))?;
    if game_id.data_type() != &DataType::Int32 {
        return Err(bad(format!(
            "recommendations.game_id is {}, expected Int32",
            game_id.data_type()
        )));
    }
    let ids = ListArray::new(
        Arc::new(Field::new("item", DataType::Int32, true)),
        list.offsets().clone(),
        game_id.clone(),
        list.nulls().cloned(),
    );
    if user.null_count() > 0 {
        return Err(bad("column \"user_id\" has nulls".into()));
    }
    RecordBatch::try_new(served_schema(), vec![user, Arc::new(ids)])
        .map_err(|e| Error::arrow("remove_probability", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float32Array, Int32Array, StructArray};
    use arrow::buffer::OffsetBuffer;
    use arrow::datatypes::Schema;
    use steam_core::recommendations_schema;

    pub(crate) fn sample() -> RecordBatch {
        let schema = recommendations_schema();
        let DataType::List(item) = schema.field(1).data_type().clone() else {
            unreachable!()
        };
        let DataType::Struct(fields) = item.data_type().clone() else {
            unreachable!()
        };
        let structs = StructArray::new(
            fields,
            vec![
                Arc::new(Int32Array::from(vec![7, 3, 9, 1])),
                Arc::new(Float32Array::from(vec![0.9, 0.8, 0.5, 0.4])),
            ],
            None,
        );
        let list = ListArray::new(
            item,
            OffsetBuffer::new(vec![0, 3, 3, 4].into()),
            Arc::new(structs),
            None,
        );
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int32Array::from(vec![1, 2, 3])), Arc::new(list)],
        )
        .unwrap()
    }

    #[test]
    fn ratings_go_and_the_order_stays() {
        let out = remove_probability(&sample()).unwrap();
        assert_eq!(out.schema(), served_schema());
        let list = out.column(1).as_list::<i32>();
        let first: Vec<i32> = list
            .value(0)
            .as_primitive::<arrow::datatypes::Int32Type>()
            .values()
            .to_vec();
        assert_eq!(first, [7, 3, 9]);
        assert_eq!(list.value(1).len(), 0);
        assert_eq!(
            list.value(2)
                .as_primitive::<arrow::datatypes::Int32Type>()
                .value(0),
            1
        );
    }

    #[test]
    fn a_missing_or_mistyped_column_is_named() {
        let b = sample();
        let no_recs = b.project(&[0]).unwrap();
        let err = remove_probability(&no_recs).unwrap_err().to_string();
        assert!(err.contains("\"recommendations\""), "{err}");
        let swapped = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("user_id", DataType::Int32, false),
                Field::new("recommendations", DataType::Int32, false),
            ])),
            vec![b.column(0).clone(), b.column(0).clone()],
        )
        .unwrap();
        let err = remove_probability(&swapped).unwrap_err().to_string();
        assert!(
            err.contains("recommendations") && err.contains("Int32"),
            "{err}"
        );
    }
}
