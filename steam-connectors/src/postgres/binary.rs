//! PostgreSQL's binary COPY format, column-wise: Arrow arrays to tuples and tuples to Arrow arrays.
//!
//! tokio-postgres carries the bytes (`copy_in`, `copy_out`); this module encodes and decodes them
//! one column at a time, with one type dispatch per column rather than one `ToSql`/`FromSql` call
//! per value. Format: <https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4>.

use std::sync::Arc;

use arrow::array::NullBufferBuilder;
use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Date32Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListArray, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{
    Date32Type, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, SchemaRef,
    TimestampMicrosecondType,
};
use arrow::record_batch::RecordBatch;
use bytes::{BufMut, BytesMut};
use steam_core::{Error, Result};

use super::types::{PgType, Scalar};

/// The signature, flags and header-extension length that open every binary COPY stream.
pub(crate) const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The field count -1 that ends a binary COPY stream.
pub(crate) const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
const EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const EPOCH_MICROS: i64 = 946_684_800_000_000;

/// One column ready to encode: its values as the Arrow type of its PostgreSQL type.
enum Column<'a> {
    Bool(&'a arrow::array::BooleanArray),
    Int2(&'a arrow::array::PrimitiveArray<Int16Type>),
    Int4(&'a arrow::array::PrimitiveArray<Int32Type>),
    Int8(&'a arrow::array::PrimitiveArray<Int64Type>),
    Float4(&'a arrow::array::PrimitiveArray<Float32Type>),
    Float8(&'a arrow::array::PrimitiveArray<Float64Type>),
    Text(&'a arrow::array::StringArray),
    Bytea(&'a arrow::array::BinaryArray),
    Date(&'a arrow::array::PrimitiveArray<Date32Type>),
    Timestamp(&'a arrow::array::PrimitiveArray<TimestampMicrosecondType>),
    List {
        list: &'a ListArray,
        item: Box<Column<'a>>,
        oid: u32,
    },
}

impl<'a> Column<'a> {
    fn new(array: &'a ArrayRef, ty: PgType) -> Column<'a> {
        if ty.array {
            let list = array.as_list::<i32>();
            let item = PgType {
                scalar: ty.scalar,
                array: false,
            };
            // A list's values live as long as the list.
            let values: &'a ArrayRef = list.values();
            return Column::List {
                list,
                item: Box::new(Column::new(values, item)),
                oid: ty.scalar.pg().oid(),
            };
        }
        match ty.scalar {
            Scalar::Bool => Column::Bool(array.as_boolean()),
            Scalar::Int2 => Column::Int2(array.as_primitive()),
            Scalar::Int4 => Column::Int4(array.as_primitive()),
            Scalar::Int8 => Column::Int8(array.as_primitive()),
            Scalar::Float4 => Column::Float4(array.as_primitive()),
            Scalar::Float8 => Column::Float8(array.as_primitive()),
            Scalar::Text => Column::Text(array.as_string()),
            Scalar::Bytea => Column::Bytea(array.as_binary()),
            Scalar::Date => Column::Date(array.as_primitive()),
            Scalar::Timestamp | Scalar::TimestampTz => Column::Timestamp(array.as_primitive()),
        }
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            Column::Bool(a) => a.is_null(row),
            Column::Int2(a) => a.is_null(row),
            Column::Int4(a) => a.is_null(row),
            Column::Int8(a) => a.is_null(row),
            Column::Float4(a) => a.is_null(row),
            Column::Float8(a) => a.is_null(row),
            Column::Text(a) => a.is_null(row),
            Column::Bytea(a) => a.is_null(row),
            Column::Date(a) => a.is_null(row),
            Column::Timestamp(a) => a.is_null(row),
            Column::List { list, .. } => list.is_null(row),
        }
    }

    /// Writes the value at `row` as a length-prefixed field (length -1 for null). Errors name the
    /// reason only; the caller adds the column and row.
    fn write(&self, row: usize, buf: &mut BytesMut) -> std::result::Result<(), String> {
        if self.is_null(row) {
            buf.put_i32(-1);
            return Ok(());
        }
        match self {
            Column::Bool(a) => {
                buf.put_i32(1);
                buf.put_u8(a.value(row) as u8);
            }
            Column::Int2(a) => {
                buf.put_i32(2);
                buf.put_i16(a.value(row));
            }
            Column::Int4(a) => {
                buf.put_i32(4);
                buf.put_i32(a.value(row));
            }
            Column::Int8(a) => {
                buf.put_i32(8);
                buf.put_i64(a.value(row));
            }
            Column::Float4(a) => {
                buf.put_i32(4);
                buf.put_f32(a.value(row));
            }
            Column::Float8(a) => {
                buf.put_i32(8);
                buf.put_f64(a.value(row));
            }
            Column::Text(a) => put_bytes(buf, a.value(row).as_bytes())?,
            Column::Bytea(a) => put_bytes(buf, a.value(row))?,
            Column::Date(a) => {
                let days = a.value(row);
                let pg = days
                    .checked_sub(EPOCH_DAYS)
                    .ok_or_else(|| format!("date out of range: {days} days from 1970-01-01"))?;
                buf.put_i32(4);
                buf.put_i32(pg);
            }
            Column::Timestamp(a) => {
                let micros = a.value(row);
                let pg = micros
                    .checked_sub(EPOCH_MICROS)
                    .ok_or_else(|| format!("timestamp out of range: {micros} µs from 1970"))?;
                buf.put_i32(8);
                buf.put_i64(pg);
            }
            Column::List { list, item, oid } => {
                let offsets = list.value_offsets();
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                let len_at = buf.len();
                buf.put_i32(0); // the field's length, set below
                let dims = i32::from(end > start);
                let has_null = (start..end).any(|i| item.is_null(i));
                buf.put_i32(dims);
                buf.put_i32(i32::from(has_null));
                buf.put_u32(*oid);
                if dims == 1 {
                    buf.put_i32(i32::try_from(end - start).map_err(|_| "array too long")?);
                    buf.put_i32(1);
                }
                for i in start..end {
                    item.write(i, buf)?;
                }
                let len = i32::try_from(buf.len() - len_at - 4).map_err(|_| "array over 2 GiB")?;
                buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
            }
        }
        Ok(())
    }
}

fn put_bytes(buf: &mut BytesMut, bytes: &[u8]) -> std::result::Result<(), String> {
    let len = i32::try_from(bytes.len()).map_err(|_| "value over 2 GiB")?;
    buf.put_i32(len);
    buf.put_slice(bytes);
    Ok(())
}

/// Encodes the rows of `batch` (columns already normalized to `types`) as binary COPY tuples
/// appended to `buf`. `first_row` numbers rows in error messages.
pub(crate) fn encode(
    target: &str,
    batch: &RecordBatch,
    types: &[PgType],
    first_row: u64,
    buf: &mut BytesMut,
) -> Result<()> {
    let columns: Vec<Column<'_>> = batch
        .columns()
        .iter()
        .zip(types)
        .map(|(array, ty)| Column::new(array, *ty))
        .collect();
    let fields = i16::try_from(columns.len()).map_err(|_| Error::Schema {
        target: target.to_owned(),
        reason: format!("{} columns; PostgreSQL allows 1600", columns.len()),
    })?;
    for row in 0..batch.num_rows() {
        buf.put_i16(fields);
        for (c, column) in columns.iter().enumerate() {
            column.write(row, buf).map_err(|reason| Error::Schema {
                target: target.to_owned(),
                reason: format!(
                    "row {}, column {:?}: {reason}",
                    first_row + row as u64 + 1,
                    batch.schema().field(c).name()
                ),
            })?;
        }
    }
    Ok(())
}

/// Builds one column of Arrow values from binary COPY fields.
enum Builder {
    Bool(BooleanBuilder),
    Int2(Int16Builder),
    Int4(Int32Builder),
    Int8(Int64Builder),
    Float4(Float32Builder),
    Float8(Float64Builder),
    Text(StringBuilder),
    Bytea(BinaryBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, Option<Arc<str>>),
    List {
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        item: Box<Builder>,
        field: Arc<Field>,
    },
}

impl Builder {
    fn new(ty: PgType) -> Builder {
        if ty.array {
            let item = PgType {
                scalar: ty.scalar,
                array: false,
            };
            return Builder::List {
                offsets: vec![0],
                nulls: NullBufferBuilder::new(0),
                item: Box::new(Builder::new(item)),
                field: Arc::new(Field::new("item", item.arrow(), true)),
            };
        }
        match ty.scalar {
            Scalar::Bool => Builder::Bool(BooleanBuilder::new()),
            Scalar::Int2 => Builder::Int2(Int16Builder::new()),
            Scalar::Int4 => Builder::Int4(Int32Builder::new()),
            Scalar::Int8 => Builder::Int8(Int64Builder::new()),
            Scalar::Float4 => Builder::Float4(Float32Builder::new()),
            Scalar::Float8 => Builder::Float8(Float64Builder::new()),
            Scalar::Text => Builder::Text(StringBuilder::new()),
            Scalar::Bytea => Builder::Bytea(BinaryBuilder::new()),
            Scalar::Date => Builder::Date(Date32Builder::new()),
            Scalar::Timestamp => Builder::Timestamp(TimestampMicrosecondBuilder::new(), None),
            Scalar::TimestampTz => {
                Builder::Timestamp(TimestampMicrosecondBuilder::new(), Some("UTC".into()))
            }
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Bool(b) => b.append_null(),
            Builder::Int2(b) => b.append_null(),
            Builder::Int4(b) => b.append_null(),
            Builder::Int8(b) => b.append_null(),
            Builder::Float4(b) => b.append_null(),
            Builder::Float8(b) => b.append_null(),
            Builder::Text(b) => b.append_null(),
            Builder::Bytea(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Timestamp(b, _) => b.append_null(),
            Builder::List { offsets, nulls, .. } => {
                offsets.push(*offsets.last().unwrap_or(&0));
                nulls.append_null();
            }
        }
    }

    fn append(&mut self, v: &[u8]) -> std::result::Result<(), String> {
        fn fixed<const N: usize>(v: &[u8]) -> std::result::Result<[u8; N], String> {
            v.try_into()
                .map_err(|_| format!("{} bytes where {N} were expected", v.len()))
        }
        match self {
            Builder::Bool(b) => b.append_value(fixed::<1>(v)?[0] != 0),
            Builder::Int2(b) => b.append_value(i16::from_be_bytes(fixed(v)?)),
            Builder::Int4(b) => b.append_value(i32::from_be_bytes(fixed(v)?)),
            Builder::Int8(b) => b.append_value(i64::from_be_bytes(fixed(v)?)),
            Builder::Float4(b) => b.append_value(f32::from_be_bytes(fixed(v)?)),
            Builder::Float8(b) => b.append_value(f64::from_be_bytes(fixed(v)?)),
            Builder::Text(b) => {
                b.append_value(std::str::from_utf8(v).map_err(|e| format!("not UTF-8: {e}"))?)
            }
            Builder::Bytea(b) => b.append_value(v),
            Builder::Date(b) => {
                let days = i32::from_be_bytes(fixed(v)?);
                // ±infinity are i32::MAX and i32::MIN, which Arrow cannot hold as dates.
                let arrow = days
                    .checked_add(EPOCH_DAYS)
                    .filter(|_| days != i32::MIN)
                    .ok_or("date infinity or out of Arrow's range")?;
                b.append_value(arrow);
            }
            Builder::Timestamp(b, _) => {
                let micros = i64::from_be_bytes(fixed(v)?);
                let arrow = micros
                    .checked_add(EPOCH_MICROS)
                    .filter(|_| micros != i64::MIN)
                    .ok_or("timestamp infinity or out of Arrow's range")?;
                b.append_value(arrow);
            }
            Builder::List {
                offsets,
                nulls,
                item,
                ..
            } => {
                let mut r = Reader { data: v, pos: 0 };
                let dims = r.i32()?;
                let _has_null = r.i32()?;
                let _oid = r.i32()?;
                let len = match dims {
                    0 => 0,
                    1 => {
                        let len = r.i32()?;
                        let _lower = r.i32()?;
                        usize::try_from(len).map_err(|_| "negative array length")?
                    }
                    n => return Err(format!("{n}-dimensional array; only 1 is read")),
                };
                for _ in 0..len {
                    match r.field()? {
                        Some(bytes) => item.append(bytes)?,
                        None => item.append_null(),
                    }
                }
                let last = *offsets.last().unwrap_or(&0);
                let next = i32::try_from(len)
                    .ok()
                    .and_then(|len| last.checked_add(len))
                    .ok_or("list offsets over 2^31")?;
                offsets.push(next);
                nulls.append_non_null();
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Int2(b) => Arc::new(b.finish()),
            Builder::Int4(b) => Arc::new(b.finish()),
            Builder::Int8(b) => Arc::new(b.finish()),
            Builder::Float4(b) => Arc::new(b.finish()),
            Builder::Float8(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Bytea(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
            Builder::List {
                offsets,
                nulls,
                item,
                field,
            } => {
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                Arc::new(ListArray::new(
                    field.clone(),
                    offsets,
                    item.finish(),
                    nulls.finish(),
                ))
            }
        }
    }
}

/// A cursor over a byte slice, reading big-endian integers and length-prefixed fields.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| format!("truncated: {n} bytes needed at {}", self.pos))?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn i32(&mut self) -> std::result::Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().unwrap_or([0; 4]),
        ))
    }

    fn field(&mut self) -> std::result::Result<Option<&'a [u8]>, String> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        self.take(len as usize).map(Some)
    }
}

/// Decodes a binary COPY stream, fed in chunks of any size, into record batches.
pub(crate) struct Decoder {
    target: String,
    schema: SchemaRef,
    builders: Vec<Builder>,
    /// Bytes of an incomplete tuple (or header) carried over to the next chunk.
    pending: BytesMut,
    header_seen: bool,
    ended: bool,
    rows: usize,
    bytes: usize,
    rows_total: u64,
}

impl Decoder {
    /// A decoder of tuples of `types`, producing batches of `schema`.
    pub(crate) fn new(target: &str, schema: SchemaRef, types: &[PgType]) -> Decoder {
        Decoder {
            target: target.to_owned(),
            schema,
            builders: types.iter().map(|t| Builder::new(*t)).collect(),
            pending: BytesMut::new(),
            header_seen: false,
            ended: false,
            rows: 0,
            bytes: 0,
            rows_total: 0,
        }
    }

    /// Rows decoded and not yet taken by [`Decoder::flush`].
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes of field data decoded and not yet taken by [`Decoder::flush`].
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    fn error(&self, reason: impl std::fmt::Display) -> Error {
        Error::backend_msg(
            "postgres",
            self.target.clone(),
            format!(
                "binary COPY data, row {}: {reason}",
                self.rows_total + self.rows as u64 + 1
            ),
        )
    }

    /// Decodes every complete tuple of `chunk` (after what was pending) and keeps the rest.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        if self.pending.is_empty() {
            let used = self.decode(chunk)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            self.pending.extend_from_slice(chunk);
            let data = std::mem::take(&mut self.pending);
            let used = self.decode(&data)?;
            self.pending.extend_from_slice(&data[used..]);
        }
        Ok(())
    }

    /// Decodes complete tuples from `data`; returns the bytes used.
    fn decode(&mut self, data: &[u8]) -> Result<usize> {
        let mut pos = 0;
        if !self.header_seen {
            if data.len() < HEADER.len() {
                return Ok(0);
            }
            if data[..11] != HEADER[..11] {
                return Err(self.error("not a binary COPY stream (bad signature)"));
            }
            let ext = u32::from_be_bytes([data[15], data[16], data[17], data[18]]) as usize;
            if data.len() < HEADER.len() + ext {
                return Ok(0);
            }
            pos = HEADER.len() + ext;
            self.header_seen = true;
        }
        let columns = self.builders.len();
        while pos + 2 <= data.len() && !self.ended {
            let count = i16::from_be_bytes([data[pos], data[pos + 1]]);
            if count == -1 {
                self.ended = true;
                pos += 2;
                break;
            }
            if count as usize != columns || count < 0 {
                return Err(self.error(format!("{count} fields, expected {columns}")));
            }
            // Check the whole tuple is here before appending any of it.
            let mut end = pos + 2;
            let mut complete = true;
            for _ in 0..columns {
                if end + 4 > data.len() {
                    complete = false;
                    break;
                }
                let len =
                    i32::from_be_bytes([data[end], data[end + 1], data[end + 2], data[end + 3]]);
                end += 4 + len.max(0) as usize;
                if end > data.len() {
                    complete = false;
                    break;
                }
            }
            if !complete {
                break;
            }
            let mut r = Reader {
                data: &data[..end],
                pos: pos + 2,
            };
            for c in 0..columns {
                let field = r.field().map_err(|e| self.error(e))?;
                let result = match field {
                    Some(bytes) => self.builders[c].append(bytes),
                    None => {
                        if !self.schema.field(c).is_nullable() {
                            Err("null in a NOT NULL column".to_owned())
                        } else {
                            self.builders[c].append_null();
                            Ok(())
                        }
                    }
                };
                if let Err(e) = result {
                    let name = self.schema.field(c).name().clone();
                    return Err(self.error(format!("column {name:?}: {e}")));
                }
            }
            self.bytes += end - pos;
            self.rows += 1;
            pos = end;
        }
        Ok(pos)
    }

    /// Checks the stream ended cleanly: the trailer read and nothing left over.
    pub(crate) fn check_end(&self) -> Result<()> {
        if !self.header_seen && self.pending.is_empty() {
            return Err(self.error("empty COPY stream"));
        }
        if !self.ended || !self.pending.is_empty() {
            return Err(self.error("COPY stream ended in the middle of a row"));
        }
        Ok(())
    }

    /// The rows decoded since the last flush, as one batch.
    pub(crate) fn flush(&mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(|b| b.finish()).collect();
        self.rows_total += self.rows as u64;
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| Error::arrow(format!("postgres {}", self.target), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{DataType, Schema};

    fn types() -> Vec<PgType> {
        vec![
            PgType {
                scalar: Scalar::Int4,
                array: false,
            },
            PgType {
                scalar: Scalar::Text,
                array: false,
            },
        ]
    }

    #[test]
    fn decodes_what_it_encodes_fed_byte_by_byte() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int32Array::from(vec![Some(1), None, Some(i32::MIN)])),
                Arc::new(StringArray::from(vec![Some("é"), Some(""), None])),
            ],
        )
        .unwrap();
        let mut buf = BytesMut::from(HEADER);
        encode("t", &batch, &types(), 0, &mut buf).unwrap();
        buf.extend_from_slice(&TRAILER);
        let mut decoder = Decoder::new("t", schema, &types());
        for byte in buf.iter() {
            decoder.feed(std::slice::from_ref(byte)).unwrap();
        }
        decoder.check_end().unwrap();
        assert_eq!(decoder.flush().unwrap(), batch);
    }

    #[test]
    fn corrupt_streams_are_errors_not_panics() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let mut seed = 7u64;
        for _ in 0..2000 {
            let mut data = HEADER.to_vec();
            for _ in 0..(seed % 40) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                data.push((seed >> 33) as u8);
            }
            let mut decoder = Decoder::new("t", schema.clone(), &types());
            let _ = decoder.feed(&data).and_then(|()| decoder.check_end());
        }
        let mut decoder = Decoder::new("t", schema, &types());
        let err = decoder
            .feed(b"PGCOPX\n\xff\r\n\0\0\0\0\0\0\0\0\0")
            .unwrap_err();
        assert!(err.to_string().contains("signature"), "{err}");
    }
}
