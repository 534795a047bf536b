//! The one JSON object `run` prints: settings, counts, errors by code, rates and latency
//! percentiles. Written by hand (a flat object of numbers and strings needs no serializer).

use std::fmt::Write;

use crate::run::Summary;

/// The percentiles reported, as (JSON key, quantile).
const PERCENTILES: [(&str, f64); 4] = [("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99)];

/// `summary` as one line of JSON.
pub fn json(summary: &Summary) -> String {
    let config = &summary.config;
    let latency = &summary.latency_us;
    let mut out = String::from("{");
    let mut field = |key: &str, value: String| {
        if out.len() > 1 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}: {value}", quote(key));
    };
    field("target", quote(&config.target));
    field("model", quote(&config.model));
    field(
        "mode",
        quote(match (config.http, config.stream) {
            (Some(encoding), _) => encoding.mode(),
            (None, true) => "stream",
            (None, false) => "unary",
        }),
    );
    field("rows", config.rows.to_string());
    field("concurrency", config.concurrency.to_string());
    field("connections", config.connections.to_string());
    field("threads", config.threads.to_string());
    field("request_bytes", summary.request_bytes.to_string());
    field("warmup_s", number(config.warmup.as_secs_f64()));
    field("window_s", number(config.window.as_secs_f64()));
    field("window_start_unix_ns", summary.window_unix_ns.0.to_string());
    field("window_end_unix_ns", summary.window_unix_ns.1.to_string());
    field("requests", summary.requests.to_string());
    let errors: Vec<String> = summary
        .errors
        .iter()
        .map(|(kind, count)| format!("{}: {count}", quote(kind)))
        .collect();
    field("errors", format!("{{{}}}", errors.join(", ")));
    field(
        "first_error",
        summary.first_error.as_deref().map_or("null".into(), quote),
    );
    field("infer_per_s", number(summary.infer_per_s()));
    field(
        "rows_per_s",
        number(summary.infer_per_s() * config.rows as f64),
    );
    let mut latencies: Vec<String> = PERCENTILES
        .iter()
        .map(|(key, quantile)| format!("{}: {}", quote(key), latency.value_at_quantile(*quantile)))
        .collect();
    latencies.push(format!("\"max\": {}", latency.max()));
    latencies.push(format!("\"mean\": {}", number(latency.mean())));
    field("latency_us", format!("{{{}}}", latencies.join(", ")));
    field(
        "client_cpu",
        summary.client_cpu.map_or("null".into(), number),
    );
    out.push('}');
    out
}

/// A JSON number (finite; JSON has no NaN).
fn number(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.3}")
    } else {
        "null".into()
    }
}

/// A JSON string literal.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(quote("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\u0001é\"");
        assert_eq!(number(f64::NAN), "null");
        assert_eq!(number(1.5), "1.500");
    }
}
