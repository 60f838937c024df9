//! How Arrow types map to PostgreSQL types, both ways.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use steam_core::{Error, Result};
use tokio_postgres::types::{Kind, Type};

/// A PostgreSQL scalar type that steam-recsys reads and writes in binary COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    Bytea,
    Date,
    Timestamp,
    TimestampTz,
}

/// A column's PostgreSQL type: a scalar or a one-dimensional array of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PgType {
    pub scalar: Scalar,
    pub array: bool,
}

impl Scalar {
    fn sql(self) -> &'static str {
        match self {
            Scalar::Bool => "boolean",
            Scalar::Int2 => "smallint",
            Scalar::Int4 => "integer",
            Scalar::Int8 => "bigint",
            Scalar::Float4 => "real",
            Scalar::Float8 => "double precision",
            Scalar::Text => "text",
            Scalar::Bytea => "bytea",
            Scalar::Date => "date",
            Scalar::Timestamp => "timestamp without time zone",
            Scalar::TimestampTz => "timestamp with time zone",
        }
    }

    pub(crate) fn pg(self) -> Type {
        match self {
            Scalar::Bool => Type::BOOL,
            Scalar::Int2 => Type::INT2,
            Scalar::Int4 => Type::INT4,
            Scalar::Int8 => Type::INT8,
            Scalar::Float4 => Type::FLOAT4,
            Scalar::Float8 => Type::FLOAT8,
            Scalar::Text => Type::TEXT,
            Scalar::Bytea => Type::BYTEA,
            Scalar::Date => Type::DATE,
            Scalar::Timestamp => Type::TIMESTAMP,
            Scalar::TimestampTz => Type::TIMESTAMPTZ,
        }
    }

    /// The Arrow type values of this scalar are encoded from and decoded to.
    pub(crate) fn arrow(self) -> DataType {
        match self {
            Scalar::Bool => DataType::Boolean,
            Scalar::Int2 => DataType::Int16,
            Scalar::Int4 => DataType::Int32,
            Scalar::Int8 => DataType::Int64,
            Scalar::Float4 => DataType::Float32,
            Scalar::Float8 => DataType::Float64,
            Scalar::Text => DataType::Utf8,
            Scalar::Bytea => DataType::Binary,
            Scalar::Date => DataType::Date32,
            Scalar::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Scalar::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }

    /// The scalar an Arrow type is written as; `None` for types PostgreSQL has no lossless home for.
    fn for_arrow(data_type: &DataType) -> Option<Scalar> {
        Some(match data_type {
            DataType::Boolean => Scalar::Bool,
            DataType::Int8 | DataType::Int16 | DataType::UInt8 => Scalar::Int2,
            DataType::Int32 | DataType::UInt16 => Scalar::Int4,
            DataType::Int64 | DataType::UInt32 => Scalar::Int8,
            DataType::Float16 | DataType::Float32 => Scalar::Float4,
            DataType::Float64 => Scalar::Float8,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Scalar::Text,
            DataType::Dictionary(_, value) => match Scalar::for_arrow(value)? {
                Scalar::Text => Scalar::Text,
                _ => return None,
            },
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Scalar::Bytea,
            DataType::Date32 => Scalar::Date,
            DataType::Timestamp(_, None) => Scalar::Timestamp,
            DataType::Timestamp(_, Some(_)) => Scalar::TimestampTz,
            _ => return None,
        })
    }

    fn for_pg(ty: &Type) -> Option<Scalar> {
        Some(match *ty {
            Type::BOOL => Scalar::Bool,
            Type::INT2 => Scalar::Int2,
            Type::INT4 => Scalar::Int4,
            Type::INT8 => Scalar::Int8,
            Type::FLOAT4 => Scalar::Float4,
            Type::FLOAT8 => Scalar::Float8,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => Scalar::Text,
            Type::BYTEA => Scalar::Bytea,
            Type::DATE => Scalar::Date,
            Type::TIMESTAMP => Scalar::Timestamp,
            Type::TIMESTAMPTZ => Scalar::TimestampTz,
            _ => return None,
        })
    }
}

impl PgType {
    /// The type's SQL name, for `CREATE TABLE`.
    pub(crate) fn sql(self) -> String {
        if self.array {
            format!("{}[]", self.scalar.sql())
        } else {
            self.scalar.sql().to_owned()
        }
    }

    /// The PostgreSQL type, whose OID tells whether an existing column matches.
    pub(crate) fn pg(self) -> Type {
        let scalar = self.scalar.pg();
        if !self.array {
            return scalar;
        }
        match scalar {
            Type::BOOL => Type::BOOL_ARRAY,
            Type::INT2 => Type::INT2_ARRAY,
            Type::INT4 => Type::INT4_ARRAY,
            Type::INT8 => Type::INT8_ARRAY,
            Type::FLOAT4 => Type::FLOAT4_ARRAY,
            Type::FLOAT8 => Type::FLOAT8_ARRAY,
            Type::TEXT => Type::TEXT_ARRAY,
            Type::BYTEA => Type::BYTEA_ARRAY,
            Type::DATE => Type::DATE_ARRAY,
            Type::TIMESTAMP => Type::TIMESTAMP_ARRAY,
            _ => Type::TIMESTAMPTZ_ARRAY,
        }
    }

    /// The column type an Arrow field is written as, or an error naming the field.
    pub(crate) fn for_field(target: &str, field: &Field) -> Result<PgType> {
        let (data_type, array) = match field.data_type() {
            DataType::List(item) | DataType::LargeList(item) => (item.data_type(), true),
            other => (other, false),
        };
        match Scalar::for_arrow(data_type) {
            Some(scalar) => Ok(PgType { scalar, array }),
            None => Err(Error::Schema {
                target: target.to_owned(),
                reason: format!(
                    "column {:?} has Arrow type {}, which has no lossless PostgreSQL type \
                     (cast it first: UInt64 to Int64 or Decimal, nested lists to JSON text)",
                    field.name(),
                    field.data_type()
                ),
            }),
        }
    }

    /// The column type of a PostgreSQL result column, or an error naming it.
    pub(crate) fn for_pg(target: &str, column: &str, ty: &Type) -> Result<PgType> {
        let found = match ty.kind() {
            Kind::Array(member) => Scalar::for_pg(member).map(|scalar| PgType {
                scalar,
                array: true,
            }),
            _ => Scalar::for_pg(ty).map(|scalar| PgType {
                scalar,
                array: false,
            }),
        };
        found.ok_or_else(|| Error::Schema {
            target: target.to_owned(),
            reason: format!(
                "column {column:?} has type {ty}, which is not read in binary COPY (supported: \
                 boolean, smallint, integer, bigint, real, double precision, text, varchar, bytea, \
                 date, timestamp, timestamptz and arrays of these); read it through a query that \
                 casts it, such as {column}::text"
            ),
        })
    }

    /// The Arrow type values of this column are encoded from and decoded to.
    pub(crate) fn arrow(self) -> DataType {
        let item = self.scalar.arrow();
        if self.array {
            DataType::List(Arc::new(Field::new("item", item, true)))
        } else {
            item
        }
    }

    /// The Arrow field a PostgreSQL column is read as.
    pub(crate) fn field(self, name: &str, nullable: bool) -> FieldRef {
        Arc::new(Field::new(name, self.arrow(), nullable))
    }
}

/// Casts `column` to the Arrow type its PostgreSQL type is encoded from (a no-op when it has it),
/// failing instead of losing anything.
pub(crate) fn normalize(
    target: &str,
    name: &str,
    column: &ArrayRef,
    ty: PgType,
) -> Result<ArrayRef> {
    let to = ty.arrow();
    if column.data_type() == &to {
        return Ok(column.clone());
    }
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    cast_with_options(column, &to, &options)
        .map_err(|e| Error::arrow(format!("{target}: column {name:?} to {}", ty.sql()), e))
}

/// Quotes an identifier for SQL: `"` around it, inner `"` doubled. NUL bytes, which PostgreSQL
/// cannot store in a name, are refused.
pub fn quote_ident(name: &str) -> Result<String> {
    if name.is_empty() || name.contains('\0') {
        return Err(Error::Config {
            key: "postgres identifier".into(),
            reason: format!("{name:?} is not a valid name (empty, or holds a NUL byte)"),
        });
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// Quotes a string literal for SQL: `'` around it, inner `'` doubled.
pub(crate) fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_escaped() {
        assert_eq!(quote_ident("games").unwrap(), "\"games\"");
        assert_eq!(
            quote_ident("x\"; DROP TABLE t; --").unwrap(),
            "\"x\"\"; DROP TABLE t; --\""
        );
        for bad in ["", "a\0b"] {
            let e = quote_ident(bad).unwrap_err().to_string();
            assert!(e.contains("not a valid name"), "{e}");
        }
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn arrow_types_widen_safely() {
        let ty = |dt: DataType| PgType::for_field("t", &Field::new("c", dt, true)).unwrap();
        assert_eq!(ty(DataType::UInt8).scalar, Scalar::Int2);
        assert_eq!(ty(DataType::UInt16).scalar, Scalar::Int4);
        assert_eq!(ty(DataType::UInt32).scalar, Scalar::Int8);
        let list = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
        assert_eq!(ty(list).sql(), "text[]");
        let err = PgType::for_field("t", &Field::new("big", DataType::UInt64, true)).unwrap_err();
        assert!(err.to_string().contains("\"big\""), "{err}");
    }

    #[test]
    fn unsupported_postgres_types_are_named() {
        let err = PgType::for_pg("q", "price", &Type::NUMERIC).unwrap_err();
        assert!(err.to_string().contains("price::text"), "{err}");
        assert_eq!(
            PgType::for_pg("q", "tags", &Type::TEXT_ARRAY).unwrap(),
            PgType {
                scalar: Scalar::Text,
                array: true
            }
        );
    }
}
