//! Arrow rows to BSON documents and BSON documents to Arrow rows.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    SchemaRef, TimeUnit, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use mongodb::bson::{Bson, DateTime, Document};
use steam_core::{Error, Result};

const MS_PER_DAY: i64 = 86_400_000;

/// One Arrow value as BSON. Integers keep their width where BSON has it (8-, 16- and 32-bit as
/// Int32; 64-bit and unsigned 32-bit as Int64); dates and timestamps become BSON dates (UTC,
/// millisecond precision); lists become arrays and structs sub-documents; nulls become BSON null.
fn value(array: &ArrayRef, row: usize) -> std::result::Result<Bson, String> {
    if array.is_null(row) {
        return Ok(Bson::Null);
    }
    Ok(match array.data_type() {
        DataType::Boolean => Bson::Boolean(array.as_boolean().value(row)),
        DataType::Int8 => Bson::Int32(array.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => Bson::Int32(array.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => Bson::Int32(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Bson::Int64(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Bson::Int32(array.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => Bson::Int32(array.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt32 => Bson::Int64(array.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(row);
            Bson::Int64(i64::try_from(v).map_err(|_| format!("{v} does not fit BSON's Int64"))?)
        }
        DataType::Float32 => Bson::Double(array.as_primitive::<Float32Type>().value(row).into()),
        DataType::Float64 => Bson::Double(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Bson::String(array.as_string::<i32>().value(row).to_owned()),
        DataType::LargeUtf8 => Bson::String(array.as_string::<i64>().value(row).to_owned()),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            Bson::DateTime(DateTime::from_millis(i64::from(days) * MS_PER_DAY))
        }
        DataType::Timestamp(unit, _) => {
            let ms = arrow::compute::cast(
                &array.slice(row, 1),
                &DataType::Timestamp(TimeUnit::Millisecond, None),
            )
            .map_err(|e| e.to_string())?;
            let ms = ms.as_primitive::<arrow::datatypes::TimestampMillisecondType>();
            let _ = unit;
            Bson::DateTime(DateTime::from_millis(ms.value(0)))
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let items = list.value(row);
            Bson::Array(
                (0..items.len())
                    .map(|i| value(&items, i))
                    .collect::<std::result::Result<_, _>>()?,
            )
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            let items = list.value(row);
            Bson::Array(
                (0..items.len())
                    .map(|i| value(&items, i))
                    .collect::<std::result::Result<_, _>>()?,
            )
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut doc = Document::new();
            for (field, column) in fields.iter().zip(s.columns()) {
                doc.insert(field.name().clone(), value(column, row)?);
            }
            Bson::Document(doc)
        }
        other => return Err(format!("Arrow type {other} has no BSON mapping here")),
    })
}

/// The rows of `batch` as documents, one field per column, in column order.
pub(crate) fn to_documents(target: &str, batch: &RecordBatch) -> Result<Vec<Document>> {
    let schema = batch.schema();
    let mut docs = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut doc = Document::new();
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            let v = value(column, row).map_err(|reason| Error::Schema {
                target: target.to_owned(),
                reason: format!("column {:?}, row {}: {reason}", field.name(), row + 1),
            })?;
            doc.insert(field.name().clone(), v);
        }
        docs.push(doc);
    }
    Ok(docs)
}

/// A BSON value as JSON that arrow-json decodes into the field's type: dates as `YYYY-MM-DD` or
/// RFC 3339 text, the rest as themselves.
fn json(value: &Bson, data_type: &DataType) -> serde_json::Value {
    use serde_json::Value;
    match (value, data_type) {
        (Bson::Null | Bson::Undefined, _) => Value::Null,
        (Bson::DateTime(d), DataType::Date32) => {
            let days = d.timestamp_millis().div_euclid(MS_PER_DAY);
            // arrow-json reads a Date32 from its day number as well as from text.
            Value::from(days)
        }
        (Bson::DateTime(d), _) => {
            match chrono::DateTime::from_timestamp_millis(d.timestamp_millis()) {
                Some(t) => Value::String(t.to_rfc3339()),
                None => Value::Null,
            }
        }
        (Bson::Array(items), DataType::List(f) | DataType::LargeList(f)) => {
            Value::Array(items.iter().map(|i| json(i, f.data_type())).collect())
        }
        (Bson::Document(doc), DataType::Struct(fields)) => Value::Object(
            fields
                .iter()
                .map(|f| {
                    let v = doc.get(f.name()).map(|b| json(b, f.data_type()));
                    (f.name().clone(), v.unwrap_or(Value::Null))
                })
                .collect(),
        ),
        (Bson::Int32(i), _) => Value::from(*i),
        (Bson::Int64(i), _) => Value::from(*i),
        (Bson::Double(d), _) => serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number),
        (Bson::Boolean(b), _) => Value::Bool(*b),
        (Bson::String(s), _) => Value::String(s.clone()),
        (Bson::ObjectId(o), _) => Value::String(o.to_hex()),
        (other, _) => other.clone().into_relaxed_extjson(),
    }
}

/// Documents as one batch of `schema`: each field read from the document's field of the same name
/// (missing → null). A value of the wrong type is an error naming the field.
pub(crate) fn to_batch(target: &str, schema: &SchemaRef, docs: &[Document]) -> Result<RecordBatch> {
    let rows: Vec<serde_json::Value> = docs
        .iter()
        .map(|doc| {
            serde_json::Value::Object(
                schema
                    .fields()
                    .iter()
                    .map(|f| {
                        let v = doc.get(f.name()).map(|b| json(b, f.data_type()));
                        (f.name().clone(), v.unwrap_or(serde_json::Value::Null))
                    })
                    .collect(),
            )
        })
        .collect();
    let fail = |e: arrow::error::ArrowError| Error::arrow(format!("mongodb {target}"), e);
    let mut decoder = arrow::json::ReaderBuilder::new(Arc::clone(schema))
        .with_batch_size(docs.len().max(1))
        .build_decoder()
        .map_err(fail)?;
    decoder.serialize(&rows).map_err(fail)?;
    Ok(decoder
        .flush()
        .map_err(fail)?
        .unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema))))
}
