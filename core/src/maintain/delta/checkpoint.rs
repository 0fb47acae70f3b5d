//! Delta checkpoints: the table's whole state at one version as one Parquet file
//! (`_delta_log/{version:020}.checkpoint.parquet`), one action per row in the columns
//! `protocol`, `metaData`, `txn`, `add` and `remove` (always null: a checkpoint carries no
//! tombstones, which only VACUUM reads, and pail tables are never vacuumed).
//!
//! Built with the workspace's arrow and parquet crates, and read back the same way, so a sync
//! starts from the newest checkpoint instead of replaying every commit.

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, ListArray, MapArray,
    MapBuilder, MapFieldNames, RecordBatch, StringArray, StringBuilder, StructArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Fields, Int32Type, Int64Type, Schema};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::TableState;
use super::actions::{Add, MetaData, Protocol, meta_data};

/// One row of a checkpoint.
enum Row<'a> {
    Protocol(&'a Protocol),
    MetaData(&'a MetaData),
    Txn(&'a str, i64),
    Add(&'a Add),
}

/// The checkpoint of `state` (which must have its protocol and metadata) as Parquet bytes, and
/// its number of actions (`_last_checkpoint`'s `size`).
pub fn encode(state: &TableState) -> Result<(Bytes, usize), String> {
    let (Some(protocol), Some(meta)) = (&state.protocol, &state.meta_data) else {
        return Err("a table without protocol or metadata has no checkpoint".into());
    };
    let mut rows = vec![Row::Protocol(protocol), Row::MetaData(meta)];
    rows.extend(state.txns.iter().map(|(app, v)| Row::Txn(app, *v)));
    rows.extend(state.files.values().map(Row::Add));
    let columns = vec![
        ("protocol", protocol_column(&rows)?),
        ("metaData", meta_column(&rows)?),
        ("txn", txn_column(&rows)?),
        ("add", add_column(&rows)?),
        ("remove", remove_column(rows.len())?),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| format!("checkpoint batch: {e}"))?;
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), None)
        .map_err(|e| format!("checkpoint writer: {e}"))?;
    writer
        .write(&batch)
        .map_err(|e| format!("checkpoint write: {e}"))?;
    let bytes = writer
        .into_inner()
        .map_err(|e| format!("checkpoint close: {e}"))?;
    Ok((Bytes::from(bytes), rows.len()))
}

fn strings<'a>(rows: &[Row<'a>], f: impl Fn(&Row<'a>) -> Option<String>) -> ArrayRef {
    Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
}

fn longs<'a>(rows: &[Row<'a>], f: impl Fn(&Row<'a>) -> Option<i64>) -> ArrayRef {
    Arc::new(Int64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
}

fn ints<'a>(rows: &[Row<'a>], f: impl Fn(&Row<'a>) -> Option<i32>) -> ArrayRef {
    Arc::new(Int32Array::from(rows.iter().map(f).collect::<Vec<_>>()))
}

/// A map<string, string> column (Spark's field names: key_value, key, value).
fn string_map<'a>(
    rows: &[Row<'a>],
    f: impl Fn(&Row<'a>) -> Option<BTreeMap<String, Option<String>>>,
) -> Result<ArrayRef, String> {
    let names = MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    };
    let mut b = MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new());
    for row in rows {
        let map = f(row);
        for (k, v) in map.iter().flatten() {
            b.keys().append_value(k);
            b.values().append_option(v.as_deref());
        }
        b.append(map.is_some())
            .map_err(|e| format!("checkpoint map: {e}"))?;
    }
    Ok(Arc::new(b.finish()))
}

/// A struct column valid on the rows `valid` picks.
fn strukt<'a>(
    rows: &[Row<'a>],
    valid: impl Fn(&Row<'a>) -> bool,
    children: Vec<(&str, ArrayRef)>,
) -> Result<ArrayRef, String> {
    let fields: Fields = children
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    let arrays = children.into_iter().map(|(_, a)| a).collect();
    let nulls = NullBuffer::from(rows.iter().map(valid).collect::<Vec<_>>());
    let a = StructArray::try_new(fields, arrays, Some(nulls))
        .map_err(|e| format!("checkpoint struct: {e}"))?;
    Ok(Arc::new(a))
}

fn protocol_column<'a>(rows: &[Row<'a>]) -> Result<ArrayRef, String> {
    let p = |r: &Row<'a>| match r {
        Row::Protocol(p) => Some(*p),
        _ => None,
    };
    let children = vec![
        (
            "minReaderVersion",
            ints(rows, |r| p(r).map(|p| p.min_reader_version)),
        ),
        (
            "minWriterVersion",
            ints(rows, |r| p(r).map(|p| p.min_writer_version)),
        ),
    ];
    strukt(rows, |r| p(r).is_some(), children)
}

fn meta_column<'a>(rows: &[Row<'a>]) -> Result<ArrayRef, String> {
    let m = |r: &Row<'a>| match r {
        Row::MetaData(m) => Some(*m),
        _ => None,
    };
    let format = strukt(
        rows,
        |r| m(r).is_some(),
        vec![
            (
                "provider",
                strings(rows, |r| m(r).map(|m| m.format.provider.clone())),
            ),
            (
                "options",
                string_map(rows, |r| m(r).map(|_| BTreeMap::new()))?,
            ),
        ],
    )?;
    let columns = rows
        .iter()
        .map(|r| m(r).map(|m| m.partition_columns.clone()));
    let columns = list_of_strings(columns.collect())?;
    let configuration = |r: &Row<'a>| {
        m(r).map(|m| {
            m.configuration
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect()
        })
    };
    let children = vec![
        ("id", strings(rows, |r| m(r).map(|m| m.id.clone()))),
        ("name", strings(rows, |r| m(r).and_then(|m| m.name.clone()))),
        ("description", strings(rows, |_| None)),
        ("format", format),
        (
            "schemaString",
            strings(rows, |r| m(r).map(|m| m.schema_string.clone())),
        ),
        ("partitionColumns", columns),
        ("configuration", string_map(rows, configuration)?),
        (
            "createdTime",
            longs(rows, |r| m(r).and_then(|m| m.created_time)),
        ),
    ];
    strukt(rows, |r| m(r).is_some(), children)
}

fn list_of_strings(rows: Vec<Option<Vec<String>>>) -> Result<ArrayRef, String> {
    let lengths = rows.iter().map(|r| r.as_ref().map_or(0, Vec::len));
    let offsets = OffsetBuffer::from_lengths(lengths);
    let nulls = NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<_>>());
    let values = StringArray::from_iter_values(rows.into_iter().flatten().flatten());
    let item = Arc::new(Field::new("element", DataType::Utf8, true));
    ListArray::try_new(item, offsets, Arc::new(values), Some(nulls))
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|e| format!("checkpoint list: {e}"))
}

fn txn_column(rows: &[Row<'_>]) -> Result<ArrayRef, String> {
    let t = |r: &Row<'_>| match r {
        Row::Txn(app, v) => Some((app.to_string(), *v)),
        _ => None,
    };
    let children = vec![
        ("appId", strings(rows, |r| t(r).map(|t| t.0))),
        ("version", longs(rows, |r| t(r).map(|t| t.1))),
        ("lastUpdated", longs(rows, |_| None)),
    ];
    strukt(rows, |r| t(r).is_some(), children)
}

fn add_column<'a>(rows: &[Row<'a>]) -> Result<ArrayRef, String> {
    let a = |r: &Row<'a>| match r {
        Row::Add(a) => Some(*a),
        _ => None,
    };
    let data_change: Vec<Option<bool>> = rows.iter().map(|r| a(r).map(|a| a.data_change)).collect();
    let children = vec![
        ("path", strings(rows, |r| a(r).map(|a| a.path.clone()))),
        (
            "partitionValues",
            string_map(rows, |r| a(r).map(|a| a.partition_values.clone()))?,
        ),
        ("size", longs(rows, |r| a(r).map(|a| a.size))),
        (
            "modificationTime",
            longs(rows, |r| a(r).map(|a| a.modification_time)),
        ),
        (
            "dataChange",
            Arc::new(BooleanArray::from(data_change)) as ArrayRef,
        ),
        (
            "stats",
            strings(rows, |r| a(r).and_then(|a| a.stats.clone())),
        ),
    ];
    strukt(rows, |r| a(r).is_some(), children)
}

fn remove_column(len: usize) -> Result<ArrayRef, String> {
    let fields = Fields::from(vec![
        Field::new("path", DataType::Utf8, true),
        Field::new("deletionTimestamp", DataType::Int64, true),
        Field::new("dataChange", DataType::Boolean, true),
    ]);
    Ok(Arc::new(StructArray::new_null(fields, len)))
}

/// The state a checkpoint holds (its version set by the caller).
pub fn decode(bytes: Bytes) -> Result<TableState, String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| format!("checkpoint: {e}"))?;
    let mut state = TableState::default();
    for batch in reader {
        let batch = batch.map_err(|e| format!("checkpoint: {e}"))?;
        read_batch(&batch, &mut state).ok_or("checkpoint columns are not pail's")?;
    }
    Ok(state)
}

fn column<'a>(s: &'a StructArray, name: &str) -> Option<&'a ArrayRef> {
    s.column_by_name(name)
}

fn string_at(s: &StructArray, name: &str, i: usize) -> Option<String> {
    let a = column(s, name)?.as_string_opt::<i32>()?;
    a.is_valid(i).then(|| a.value(i).to_string())
}

fn long_at(s: &StructArray, name: &str, i: usize) -> Option<i64> {
    let a = column(s, name)?.as_primitive_opt::<Int64Type>()?;
    a.is_valid(i).then(|| a.value(i))
}

fn int_at(s: &StructArray, name: &str, i: usize) -> Option<i32> {
    let a = column(s, name)?.as_primitive_opt::<Int32Type>()?;
    a.is_valid(i).then(|| a.value(i))
}

/// Reads one batch's actions into `state`; `None` when a column is missing or mistyped.
fn read_batch(batch: &RecordBatch, state: &mut TableState) -> Option<()> {
    let col = |name: &str| batch.column_by_name(name)?.as_struct_opt();
    let (protocol, meta, txn, add) = (col("protocol")?, col("metaData")?, col("txn")?, col("add")?);
    for i in 0..batch.num_rows() {
        if protocol.is_valid(i) {
            state.protocol = Some(Protocol {
                min_reader_version: int_at(protocol, "minReaderVersion", i)?,
                min_writer_version: int_at(protocol, "minWriterVersion", i)?,
            });
        }
        if meta.is_valid(i) {
            let id = string_at(meta, "id", i)?;
            let name = string_at(meta, "name", i).unwrap_or_default();
            let created = long_at(meta, "createdTime", i).unwrap_or_default();
            state.meta_data = Some(meta_data(&id, &name, created));
        }
        if txn.is_valid(i) {
            let app = string_at(txn, "appId", i)?;
            state.txns.insert(app, long_at(txn, "version", i)?);
        }
        if add.is_valid(i) {
            let a = read_add(add, i)?;
            state.files.insert(a.path.clone(), a);
        }
    }
    Some(())
}

fn read_add(add: &StructArray, i: usize) -> Option<Add> {
    let values: &MapArray = column(add, "partitionValues")?.as_map_opt()?;
    let entries = values.value(i);
    let keys = entries.column(0).as_string_opt::<i32>()?;
    let vals = entries.column(1).as_string_opt::<i32>()?;
    let partition_values = (0..entries.len())
        .map(|j| {
            let v = vals.is_valid(j).then(|| vals.value(j).to_string());
            (keys.value(j).to_string(), v)
        })
        .collect();
    let change = column(add, "dataChange")?.as_boolean_opt()?;
    Some(Add {
        path: string_at(add, "path", i)?,
        partition_values,
        size: long_at(add, "size", i)?,
        modification_time: long_at(add, "modificationTime", i)?,
        data_change: change.is_valid(i) && change.value(i),
        stats: string_at(add, "stats", i),
    })
}
