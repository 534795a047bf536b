//! The closed-loop client: `concurrency` workers over a few HTTP/2 connections, each with one
//! request in flight (unary ModelInfer, or one ModelStreamInfer stream per worker: send a
//! request, await its answer, repeat), or over REST, one HTTP/1.1 connection per worker. The
//! request is built (and framed) once; every answer's status is checked; each worker records
//! its latencies in its own HDR histogram (no lock per request), merged when the run ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use http::Uri;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::call::{Prepared, RequestBody, stream_worker, unary_worker};
use crate::grpc;
use crate::proto::{self, TensorSpec};
use crate::rest::{Encoding, RestRequest};
use crate::rest_call::{self, PreparedRest, rest_worker};
use crate::tally::{Failure, Tally, Window};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// host:port of the server.
    pub target: String,
    /// Model name in every request.
    pub model: String,
    /// Model version ("" = the server's choice).
    pub model_version: String,
    /// The request's inputs (dimensions of one row).
    pub inputs: Vec<TensorSpec>,
    /// Request parameters every request carries (e.g. `priority`), in this order.
    pub parameters: Vec<proto::Parameter>,
    /// Rows per request (the batch dimension put in front of every input's dimensions).
    pub rows: u64,
    /// Workers, each with one request in flight.
    pub concurrency: usize,
    /// HTTP/2 connections the workers share (worker i uses connection i % connections).
    pub connections: usize,
    /// ModelStreamInfer (one stream per worker) instead of unary ModelInfer.
    pub stream: bool,
    /// Inputs as typed `contents` (the datatype's field, packed) instead of raw contents.
    pub typed: bool,
    /// The v2 REST endpoint with these tensors instead of gRPC (one HTTP/1.1 connection per
    /// worker; `connections`, `stream` and `typed` do not apply).
    pub http: Option<Encoding>,
    /// Load before the measured window; answers that end in it are not counted.
    pub warmup: Duration,
    /// The measured window.
    pub window: Duration,
    /// An answer slower than this counts as DEADLINE_EXCEEDED.
    pub timeout: Duration,
    /// tokio threads (1: the current-thread scheduler).
    pub threads: usize,
}

/// The connection count used when none is given: one per worker, so c workers are c clients,
/// as "16 concurrent clients" reads. Workers that share a connection share its reads and
/// writes too: on ferroserve (MLP without batching, c=16, one core) a read then carries
/// several workers' requests, and the server's CPU per request measured 65-69 µs with 3
/// connections against 73-76 µs with 16, which flatters every server alike. One connection per
/// worker is also the layout whose server cost is closest to perf_analyzer's (76-84 µs; it
/// shares a connection among 6 workers but sends from a thread per worker), the reference
/// this client is validated against.
pub fn default_connections(concurrency: usize) -> usize {
    concurrency.max(1)
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The target is not host:port.
    #[error("target {0:?} is not host:port")]
    Target(String),
    /// A tensor could not be sized.
    #[error(transparent)]
    Wire(#[from] proto::WireError),
    /// Connecting or starting the runtime failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The HTTP/2 handshake failed.
    #[error("HTTP/2 handshake with {0} failed: {1}")]
    Handshake(String, hyper::Error),
    /// `--http` with a gRPC-only setting.
    #[error("{0} is for gRPC; a REST run has one HTTP/1.1 connection per worker")]
    NotRest(&'static str),
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The run's settings.
    pub config: RunConfig,
    /// Bytes of one framed request (gRPC) or of one request body (REST).
    pub request_bytes: usize,
    /// Successful answers that ended inside the window.
    pub requests: u64,
    /// Failed answers by gRPC code name over warm-up and window (`error_message` for a
    /// ModelStreamInferResponse that carries one; `HTTP <status>` or `malformed answer` for
    /// REST).
    pub errors: BTreeMap<String, u64>,
    /// The first failure's description, if any.
    pub first_error: Option<String>,
    /// The window as Unix time, nanoseconds (to match server CPU samples to it).
    pub window_unix_ns: (u128, u128),
    /// Latencies (µs) of the counted answers.
    pub latency_us: Histogram<u64>,
    /// This process's CPU seconds per second of window (1.0 = one core busy).
    pub client_cpu: Option<f64>,
}

impl Summary {
    /// Requests per second over the window.
    pub fn infer_per_s(&self) -> f64 {
        self.requests as f64 / self.config.window.as_secs_f64()
    }
}

/// Runs the load on a runtime of its own and returns what it measured.
pub fn run(config: &RunConfig) -> Result<Summary, RunError> {
    let runtime = if config.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(drive(config))
}

/// Each input's raw contents and the request's shapes, for `rows` rows.
struct Tensors {
    contents: Vec<Vec<u8>>,
    shapes: Vec<Vec<i64>>,
}

impl Tensors {
    fn new(config: &RunConfig) -> Result<Self, RunError> {
        Ok(Tensors {
            contents: config
                .inputs
                .iter()
                .map(|spec| spec.contents(config.rows))
                .collect::<Result<Vec<_>, _>>()?,
            shapes: config
                .inputs
                .iter()
                .map(|spec| spec.shape(config.rows))
                .collect(),
        })
    }

    fn inputs<'a>(&'a self, config: &'a RunConfig) -> Vec<(&'a TensorSpec, &'a [i64], &'a [u8])> {
        config
            .inputs
            .iter()
            .zip(&self.shapes)
            .zip(&self.contents)
            .map(|((spec, shape), bytes)| (spec, &shape[..], &bytes[..]))
            .collect()
    }
}

async fn drive(config: &RunConfig) -> Result<Summary, RunError> {
    let authority: http::uri::Authority = config
        .target
        .parse()
        .map_err(|_| RunError::Target(config.target.clone()))?;
    if let Some(encoding) = config.http {
        return drive_rest(config, authority, encoding).await;
    }
    let path = if config.stream {
        grpc::MODEL_STREAM_INFER
    } else {
        grpc::MODEL_INFER
    };
    let uri = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|_| RunError::Target(config.target.clone()))?;
    let tensors = Tensors::new(config)?;
    let inputs = tensors.inputs(config);
    let message = proto::infer_request(
        &config.model,
        &config.model_version,
        "",
        &config.parameters,
        &inputs,
        config.typed,
    )?;
    let prepared = Arc::new(Prepared {
        uri,
        framed: grpc::frame(&message),
    });

    let mut senders = Vec::with_capacity(config.connections);
    for _ in 0..config.connections.max(1) {
        senders.push(connect(&config.target).await?);
    }

    let (window, probe) = start_window(config);
    let mut workers = Vec::with_capacity(config.concurrency);
    for index in 0..config.concurrency {
        let sender = senders[index % senders.len()].clone();
        let prepared = Arc::clone(&prepared);
        let timeout = config.timeout;
        workers.push(if config.stream {
            tokio::spawn(stream_worker(sender, prepared, window, timeout))
        } else {
            tokio::spawn(unary_worker(sender, prepared, window, timeout))
        });
    }
    Ok(summarize(config, prepared.framed.len(), workers, probe).await)
}

/// The REST run: one HTTP/1.1 connection per worker, all opened before the warm-up.
async fn drive_rest(
    config: &RunConfig,
    authority: http::uri::Authority,
    encoding: Encoding,
) -> Result<Summary, RunError> {
    if config.stream {
        return Err(RunError::NotRest("--stream"));
    }
    if config.typed {
        return Err(RunError::NotRest("--typed"));
    }
    if config.connections != config.concurrency {
        return Err(RunError::NotRest("--connections"));
    }
    let tensors = Tensors::new(config)?;
    let request = RestRequest::build(
        &config.model,
        &config.model_version,
        &config.parameters,
        &tensors.inputs(config),
        encoding,
    )?;
    let target_error = || RunError::Target(config.target.clone());
    let prepared = Arc::new(PreparedRest {
        target: config.target.clone(),
        host: http::HeaderValue::from_str(authority.as_str()).map_err(|_| target_error())?,
        uri: request.path.parse().map_err(|_| target_error())?,
        request,
    });
    let mut senders = Vec::with_capacity(config.concurrency);
    for _ in 0..config.concurrency {
        senders.push(rest_call::connect(&config.target).await?);
    }
    let (window, probe) = start_window(config);
    let workers = senders
        .into_iter()
        .map(|sender| {
            let worker = rest_worker(sender, Arc::clone(&prepared), window, config.timeout);
            tokio::spawn(worker)
        })
        .collect();
    Ok(summarize(config, prepared.request.body.len(), workers, probe).await)
}

/// The window from now (after the warm-up) and its probe.
fn start_window(config: &RunConfig) -> (Window, std::thread::JoinHandle<WindowReading>) {
    let now = Instant::now();
    let window = Window {
        start: now + config.warmup,
        end: now + config.warmup + config.window,
    };
    (window, spawn_window_probe(window))
}

/// Waits for the workers and the probe and merges what they counted.
async fn summarize(
    config: &RunConfig,
    request_bytes: usize,
    workers: Vec<tokio::task::JoinHandle<Tally>>,
    probe: std::thread::JoinHandle<WindowReading>,
) -> Summary {
    let mut total = Tally::new();
    for worker in workers {
        match worker.await {
            Ok(tally) => total.merge(tally),
            Err(error) => total.fail(&Failure::new(2, format!("worker panicked: {error}"))),
        }
    }
    let reading = probe
        .join()
        .expect("the window probe only sleeps and reads clocks. This is a bug.");
    Summary {
        config: config.clone(),
        request_bytes,
        requests: total.requests,
        errors: total.errors,
        first_error: total.first_error,
        window_unix_ns: reading.unix_ns,
        latency_us: total.latency_us,
        client_cpu: reading.cpu,
    }
}

async fn connect(target: &str) -> Result<http2::SendRequest<RequestBody>, RunError> {
    let stream = TcpStream::connect(target).await?;
    // One-row requests are a few hundred bytes: Nagle would hold them back.
    stream.set_nodelay(true)?;
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .adaptive_window(true)
        .max_frame_size(1 << 20)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|error| RunError::Handshake(target.to_owned(), error))?;
    tokio::spawn(async move {
        // Ends when every sender is dropped or the server closes; a closed connection shows
        // as an error on the next request, counted there.
        let _ = connection.await;
    });
    Ok(sender)
}

/// What the window probe read at the window's start and end.
struct WindowReading {
    /// Unix time (ns) when the window started and ended, read at those moments.
    unix_ns: (u128, u128),
    /// This process's CPU seconds per second of window, where /proc has them.
    cpu: Option<f64>,
}

/// Reads the wall clock and this process's CPU time at the window's start and end, on a
/// thread of its own (so it works on the current-thread runtime too). The wall clock is read
/// at those moments rather than computed from the start, so the window it reports lies inside
/// the process's lifetime even when the process was preempted between two clock reads.
fn spawn_window_probe(window: Window) -> std::thread::JoinHandle<WindowReading> {
    std::thread::spawn(move || {
        std::thread::sleep(window.start.saturating_duration_since(Instant::now()));
        let (start, before) = (unix_ns(), process_cpu_s());
        std::thread::sleep(window.end.saturating_duration_since(Instant::now()));
        let (end, after) = (unix_ns(), process_cpu_s());
        let cpu = before
            .zip(after)
            .map(|(before, after)| (after - before) / (window.end - window.start).as_secs_f64());
        WindowReading {
            unix_ns: (start, end),
            cpu,
        }
    })
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// utime + stime of this process from /proc/self/stat (Linux; None elsewhere). The kernel
/// reports them in USER_HZ ticks, 100 per second on every Linux architecture.
fn process_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // proc(5): fields after "(comm)" start at field 3; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}
