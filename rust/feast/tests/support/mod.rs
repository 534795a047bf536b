//! Shared by the Redis tests and the fetch bench: a real `redis-server` on a free loopback port
//! (started and stopped by the test, with a raw connection to it), and a join plan of one view read back through
//! `JoinPlan::gather_from`, the way the front end will serve fetched rows.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferroserve_features::{
    Declaration, Feature, FeatureValue, FeatureView, FetchedRows, JoinPlan, MissingPolicy,
    ModelInput, ModelInputAssembly, ModelSignature, RequestInput, Segment, ViewLayout, ViewSource,
    ViewStatsSnapshot,
};
use ferroserve_tensor::DataType;

/// The `redis-server` binary, or why there is none (the tests then skip, saying so).
pub fn redis_server_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("REDIS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            "redis-server is not installed (apt-get install redis-server, or set REDIS_SERVER)"
                .to_owned()
        })
}

/// A redis-server child on a loopback port, without persistence; killed on drop.
pub struct RedisServer {
    binary: PathBuf,
    /// Extra `redis-server` arguments (`--requirepass`, `--unixsocket`).
    args: Vec<String>,
    child: Option<Child>,
    /// Its port.
    pub port: u16,
}

impl RedisServer {
    /// Starts one on a free port, or `None` (with the reason printed) if there is no binary;
    /// under CI (`CI` set) a missing binary fails the test instead.
    pub fn start() -> Option<RedisServer> {
        RedisServer::start_with(&[])
    }

    /// As `start`, with extra `redis-server` arguments.
    pub fn start_with(args: &[&str]) -> Option<RedisServer> {
        let binary = match redis_server_binary() {
            Ok(binary) => binary,
            // Under CI the install step must have put it there: a skip would hide that.
            Err(reason) if std::env::var_os("CI").is_some() => {
                panic!("{reason}; CI installs it with `make system-deps`")
            }
            Err(reason) => {
                eprintln!("SKIPPED: {reason}");
                return None;
            }
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = RedisServer {
            binary,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            child: None,
            port,
        };
        server.restart();
        Some(server)
    }

    /// `redis://127.0.0.1:{port}/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A connection of the redis crate's own, to write what the writer never would and to
    /// read redis-server's counters.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Starts the server (again) on its port and waits until it accepts connections.
    pub fn restart(&mut self) {
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (its data is gone).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server: connections stay open, nothing answers.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal("-CONT");
        }
        self.stop();
    }
}

/// A plan of one view `view` (INT64 key `id`, features `names` of `datatype`, defaults -1)
/// assembled into one model input.
pub struct OneView {
    /// The plan.
    pub plan: JoinPlan,
}

impl OneView {
    pub fn new(
        view: &str,
        datatype: DataType,
        names: &[&str],
        max_age: Option<Duration>,
        on_missing: MissingPolicy,
    ) -> Self {
        let default = match datatype {
            DataType::Fp32 => FeatureValue::Fp32(-1.0),
            DataType::Fp64 => FeatureValue::Fp64(-1.0),
            DataType::Int64 => FeatureValue::Int64(-1),
            DataType::Int32 => FeatureValue::Int32(-1),
            other => panic!("no feature datatype {other:?}"),
        };
        let declaration = Declaration {
            request_inputs: vec![RequestInput {
                name: "id".into(),
                datatype: DataType::Int64,
                columns: 1,
            }],
            views: vec![FeatureView {
                name: view.into(),
                key: vec!["id".into()],
                features: names
                    .iter()
                    .map(|name| Feature {
                        name: (*name).into(),
                        datatype,
                        default,
                    })
                    .collect(),
                max_age,
                on_missing,
            }],
            assembly: vec![ModelInputAssembly {
                model_input: "x".into(),
                segments: vec![Segment::View(view.into())],
            }],
        };
        let model = ModelSignature {
            inputs: vec![ModelInput {
                name: "x".into(),
                datatype,
                dims: vec![names.len() as i64],
            }],
        };
        OneView {
            plan: JoinPlan::compile(&declaration, &model).unwrap(),
        }
    }

    /// The view's layout.
    pub fn layout(&self) -> &ViewLayout {
        &self.plan.view_layouts()[0]
    }

    /// Serves `rows` (fetched for `keys`) at `now_us`: each row's values as f64, and how many
    /// rows were rejected. The view's counters tell missing, stale and unavailable rows apart.
    pub fn serve(&self, keys: &[i64], rows: &FetchedRows, now_us: i64) -> (Vec<Vec<f64>>, usize) {
        let key_bytes: Vec<u8> = keys.iter().flat_map(|key| key.to_le_bytes()).collect();
        let row_bytes = self.plan.model_inputs()[0].row_bytes();
        let mut x = vec![0u8; keys.len() * row_bytes];
        let rejected = self
            .plan
            .gather_from(
                &[ViewSource::Fetched(rows)],
                &[&key_bytes],
                keys.len(),
                now_us,
                &mut [&mut x],
            )
            .unwrap();
        let datatype = self.layout().features()[0].datatype;
        let width = datatype.element_size().unwrap();
        let values = x
            .chunks_exact(row_bytes)
            .map(|row| {
                row.chunks_exact(width)
                    .map(|bytes| as_f64(datatype, bytes))
                    .collect()
            })
            .collect();
        (values, rejected.len())
    }

    /// The view's counters so far.
    pub fn counters(&self) -> ViewStatsSnapshot {
        self.plan.stats().snapshot().views[0].clone()
    }
}

/// A little-endian value of `datatype` as f64 (exact for the tests' values).
fn as_f64(datatype: DataType, bytes: &[u8]) -> f64 {
    match datatype {
        DataType::Fp32 => f64::from(f32::from_le_bytes(bytes.try_into().unwrap())),
        DataType::Fp64 => f64::from_le_bytes(bytes.try_into().unwrap()),
        DataType::Int64 => i64::from_le_bytes(bytes.try_into().unwrap()) as f64,
        DataType::Int32 => f64::from(i32::from_le_bytes(bytes.try_into().unwrap())),
        other => panic!("no feature datatype {other:?}"),
    }
}

/// Little-endian bytes of FP32 `values`.
pub fn fp32_row(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

/// Zeroes redis-server's per-command counters (`CONFIG RESETSTAT`).
pub async fn reset_command_stats(connection: &mut redis::aio::MultiplexedConnection) {
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(connection)
        .await
        .unwrap();
}

/// One field (`calls`, `usec_per_call`, ...) of redis-server's HMGET counters since they were
/// last reset (`INFO commandstats`), `None` before any HMGET.
pub async fn hmget_stat(
    connection: &mut redis::aio::MultiplexedConnection,
    field: &str,
) -> Option<String> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(connection)
        .await
        .unwrap();
    let line = info
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_hmget:"))?;
    line.split(',')
        .find_map(|pair| pair.strip_prefix(field)?.strip_prefix('='))
        .map(str::to_owned)
}
