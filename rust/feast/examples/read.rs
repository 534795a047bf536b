//! Reads rows of one view from Redis in Feast's layout and prints them as JSON: a debugging
//! tool, and what tests/e2e/test_feast_layout.py runs to read what `feast materialize` wrote.
//!
//! ```text
//! cargo run -p ferroserve-feast --example read -- --url redis://127.0.0.1:6379/0 \
//!     --project fraud --view driver_hourly_stats --features conv_rate,acc_rate --keys 1001,1002 \
//!     [--datatype FP32|FP64|INT64|INT32] [--join-key driver_id] \
//!     [--key-type int64|int32|string|bytes] [--serialization-version 3] [--timeout-ms 1000]
//! ```
//!
//! Prints `{"rows": [{"key": ..., "status": "found"|"missing"|"unavailable", "event_time_us":
//! ..., "values": [...]}, ...], "stats": {...}}`; exits 2 on bad arguments.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use ferroserve_feast::{
    EntityValueType, FeastNames, FeastProject, FeastView, JoinKey, RedisStore, RedisStoreConfig,
    SerializationVersion, StoredRow,
};
use ferroserve_features::{
    Feature, FeatureValue, FeatureView, KeyValue, MissingPolicy, RequestInput, ViewLayout,
};
use ferroserve_tensor::DataType;

/// Parsed `--name value` pairs.
struct Args(HashMap<String, String>);

impl Args {
    fn parse() -> Result<Args, String> {
        let mut map = HashMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(name) = args.next() {
            let Some(name) = name.strip_prefix("--") else {
                return Err(format!("expected --name value, got '{name}'"));
            };
            let value = args
                .next()
                .ok_or_else(|| format!("--{name} needs a value"))?;
            map.insert(name.to_owned(), value);
        }
        Ok(Args(map))
    }

    fn get(&self, name: &str) -> Result<&str, String> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn get_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.0.get(name).map_or(default, String::as_str)
    }
}

/// One key from the command line.
enum Key {
    Int(i64),
    Text(String),
}

fn main() {
    let result = Args::parse().and_then(|args| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| error.to_string())?;
        runtime.block_on(run(&args))
    });
    match result {
        Ok(json) => println!("{json}"),
        Err(message) => {
            eprintln!("read: {message}");
            std::process::exit(2);
        }
    }
}

async fn run(args: &Args) -> Result<String, String> {
    let datatype = match args.get_or("datatype", "FP32") {
        "FP32" => DataType::Fp32,
        "FP64" => DataType::Fp64,
        "INT64" => DataType::Int64,
        "INT32" => DataType::Int32,
        other => {
            return Err(format!(
                "--datatype {other}: use FP32, FP64, INT64 or INT32"
            ));
        }
    };
    let (kind, value_type) = match args.get_or("key-type", "int64") {
        "int64" => (DataType::Int64, EntityValueType::Int64),
        "int32" => (DataType::Int64, EntityValueType::Int32),
        "string" => (DataType::Bytes, EntityValueType::String),
        "bytes" => (DataType::Bytes, EntityValueType::Bytes),
        other => {
            return Err(format!(
                "--key-type {other}: use int64, int32, string or bytes"
            ));
        }
    };
    let join_key = args.get_or("join-key", "id");
    let default = match datatype {
        DataType::Fp32 => FeatureValue::Fp32(f32::NAN),
        DataType::Fp64 => FeatureValue::Fp64(f64::NAN),
        DataType::Int64 => FeatureValue::Int64(0),
        _ => FeatureValue::Int32(0),
    };
    let view = FeatureView {
        name: args.get("view")?.to_owned(),
        key: vec![join_key.to_owned()],
        features: args
            .get("features")?
            .split(',')
            .map(|name| Feature {
                name: name.to_owned(),
                datatype,
                default,
            })
            .collect(),
        max_age: None,
        on_missing: MissingPolicy::UseDefault,
    };
    let request = [RequestInput {
        name: join_key.to_owned(),
        datatype: kind,
        columns: 1,
    }];
    let layout = ViewLayout::new(&view, &request).map_err(|error| error.to_string())?;
    let version = args
        .get_or("serialization-version", "3")
        .parse()
        .map_err(|_| "--serialization-version: a number".to_owned())?;
    let project = FeastProject {
        name: args.get("project")?.to_owned(),
        serialization_version: SerializationVersion::from_number(version)
            .map_err(|error| error.to_string())?,
    };
    let names = FeastNames {
        join_keys: Some(vec![JoinKey {
            name: join_key.to_owned(),
            value_type,
        }]),
        ..FeastNames::default()
    };
    let feast_view =
        FeastView::new(&layout, &project, &names).map_err(|error| error.to_string())?;
    let timeout_ms: u64 = args
        .get_or("timeout-ms", "1000")
        .parse()
        .map_err(|_| "--timeout-ms: a number".to_owned())?;
    let store = RedisStore::new(&RedisStoreConfig {
        url: args.get("url")?.to_owned(),
        timeout: Duration::from_millis(timeout_ms),
    })
    .map_err(|error| error.to_string())?;

    let keys: Vec<Key> = args
        .get("keys")?
        .split(',')
        .map(|key| match kind {
            DataType::Int64 => key
                .parse()
                .map(Key::Int)
                .map_err(|_| format!("key '{key}' is not an integer")),
            _ => Ok(Key::Text(key.to_owned())),
        })
        .collect::<Result<_, _>>()?;
    let parts: Vec<[KeyValue<'_>; 1]> = keys
        .iter()
        .map(|key| match key {
            Key::Int(value) => [KeyValue::Int64(*value)],
            Key::Text(text) => [KeyValue::Bytes(text.as_bytes())],
        })
        .collect();
    let parts: Vec<&[KeyValue<'_>]> = parts.iter().map(|part| part.as_slice()).collect();
    let rows = store.read(&feast_view, &parts).await;

    let mut json = String::from("{\"rows\": [");
    for (index, (key, row)) in keys.iter().zip(&rows).enumerate() {
        if index > 0 {
            json.push_str(", ");
        }
        json.push_str("{\"key\": ");
        match key {
            Key::Int(value) => {
                let _ = write!(json, "{value}");
            }
            Key::Text(text) => push_string(&mut json, text),
        }
        match row {
            StoredRow::Found {
                values,
                event_time_us,
            } => {
                json.push_str(", \"status\": \"found\", \"event_time_us\": ");
                match event_time_us {
                    Some(time) => {
                        let _ = write!(json, "{time}");
                    }
                    None => json.push_str("null"),
                }
                json.push_str(", \"values\": [");
                let width = datatype.element_size().unwrap_or(4);
                for (position, bytes) in values.chunks_exact(width).enumerate() {
                    if position > 0 {
                        json.push_str(", ");
                    }
                    push_number(&mut json, datatype, bytes);
                }
                json.push_str("]}");
            }
            StoredRow::Missing => json.push_str(", \"status\": \"missing\"}"),
            StoredRow::Unavailable => json.push_str(", \"status\": \"unavailable\"}"),
        }
    }
    let stats = store.stats();
    let _ = write!(
        json,
        "], \"stats\": {{\"found\": {}, \"missing\": {}, \"unavailable\": {}, \"bad_rows\": {}, \"null_values\": {}, \"timeouts\": {}, \"errors\": {}}}}}",
        stats.found,
        stats.missing,
        stats.unavailable,
        stats.bad_rows,
        stats.null_values,
        stats.timeouts,
        stats.errors
    );
    Ok(json)
}

/// A JSON string.
fn push_string(json: &mut String, text: &str) {
    json.push('"');
    for character in text.chars() {
        match character {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(json, "\\u{:04x}", c as u32);
            }
            c => json.push(c),
        }
    }
    json.push('"');
}

/// A little-endian value as a JSON number (null for NaN and infinities).
fn push_number(json: &mut String, datatype: DataType, bytes: &[u8]) {
    let value = match (datatype, bytes.len()) {
        (DataType::Fp32, 4) => {
            f64::from(f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        }
        (DataType::Fp64, 8) => f64::from_le_bytes(bytes.try_into().unwrap_or([0; 8])),
        (DataType::Int64, 8) => {
            let _ = write!(
                json,
                "{}",
                i64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]))
            );
            return;
        }
        (DataType::Int32, 4) => {
            let _ = write!(
                json,
                "{}",
                i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
            );
            return;
        }
        _ => f64::NAN,
    };
    if value.is_finite() {
        // Debug prints the shortest text that reads back the same value.
        let _ = write!(json, "{value:?}");
    } else {
        json.push_str("null");
    }
}
