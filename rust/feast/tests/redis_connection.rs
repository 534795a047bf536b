//! The reader's own connection (RESP2 over one socket): logging in (`AUTH` with a password or
//! an ACL user, `SELECT` of a database other than 0, a unix socket) against a real
//! `redis-server`, and what it does with a server that misbehaves, played by a fake one (a
//! tokio listener writing chosen bytes): a reply cut mid-stream, bytes that are not RESP2, a
//! peer that goes silent; each a failure of the call, then recovery on a new connection. Also
//! a `WRONGTYPE` key among good ones, and a timed-out round trip whose late replies must not be
//! taken for the next one's.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferroserve_feast::{
    FailureKind, FeastNames, FeastProject, FeastValue, FeastView, FeatureRow, RedisStore,
    RedisStoreConfig,
};
use ferroserve_features::{KeyValue, MissingPolicy};
use ferroserve_tensor::DataType;
use support::{OneView, RedisServer, fp32_row};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_millis(200);

/// View `v` of one FP32 feature `age`, project `p`.
fn view() -> (OneView, FeastView) {
    let one = OneView::new(
        "v",
        DataType::Fp32,
        &["age"],
        None,
        MissingPolicy::UseDefault,
    );
    let view = FeastView::new(
        one.layout(),
        &FeastProject::new("p"),
        &FeastNames::default(),
    )
    .unwrap();
    (one, view)
}

fn store(url: String, timeout: Duration) -> RedisStore {
    RedisStore::new(&RedisStoreConfig { url, timeout }).unwrap()
}

async fn write(store: &RedisStore, view: &FeastView, key: i64, age: f32) {
    let parts = [KeyValue::Int64(key)];
    let values = fp32_row(&[age]);
    let row = FeatureRow {
        key: &parts,
        values: &values,
        event_time_us: 0,
    };
    store.write(view, &[row]).await.unwrap();
}

/// The served `age` of each key (-1: the default, the row not found).
async fn ages(store: &RedisStore, one: &OneView, view: &FeastView, keys: &[i64]) -> Vec<f64> {
    let bytes: Vec<u8> = keys.iter().flat_map(|key| key.to_le_bytes()).collect();
    let rows = store.fetch(view, &[&bytes], keys.len()).await.unwrap();
    one.serve(keys, &rows, 0)
        .0
        .into_iter()
        .map(|row| row[0])
        .collect()
}

/// Fetches `keys` until every row is found, for at most 5 s (the store reconnects within ~1 s).
async fn until_found(
    store: &RedisStore,
    one: &OneView,
    view: &FeastView,
    keys: &[i64],
) -> Vec<f64> {
    let started = Instant::now();
    loop {
        let ages = ages(store, one, view, keys).await;
        if ages.iter().all(|&age| age >= 0.0) {
            return ages;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no recovery: {:?}",
            store.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_password_an_acl_user_and_a_database_other_than_0() {
    let Some(server) = RedisServer::start_with(&["--requirepass", "s3cret"]) else {
        return;
    };
    let (one, view) = view();
    let url = |auth: &str, db: u32| format!("redis://{auth}@127.0.0.1:{}/{db}", server.port);
    let in_db_3 = store(url(":s3cret", 3), TIMEOUT);
    write(&in_db_3, &view, 1, 30.0).await;
    assert_eq!(ages(&in_db_3, &one, &view, &[1, 2]).await, [30.0, -1.0]);
    // The same password as the `default` ACL user; database 0 does not have the row.
    let as_user = store(url("default:s3cret", 3), TIMEOUT);
    assert_eq!(ages(&as_user, &one, &view, &[1]).await, [30.0]);
    let in_db_0 = store(url(":s3cret", 0), TIMEOUT);
    assert_eq!(ages(&in_db_0, &one, &view, &[1]).await, [-1.0]);
    assert_eq!((in_db_0.stats().missing, in_db_0.stats().errors), (1, 0));
}

#[tokio::test]
async fn a_wrong_or_missing_password_is_a_connection_failure_in_redis_words() {
    let Some(server) = RedisServer::start_with(&["--requirepass", "s3cret"]) else {
        return;
    };
    let (one, view) = view();
    for (auth, said) in [(":hunter2@", "WRONGPASS"), ("", "NOAUTH")] {
        let store = store(
            format!("redis://{auth}127.0.0.1:{}/0", server.port),
            TIMEOUT,
        );
        assert_eq!(ages(&store, &one, &view, &[1]).await, [-1.0]);
        let stats = store.stats();
        assert_eq!(
            (stats.unavailable, stats.connection_errors),
            (1, 1),
            "{stats:?}"
        );
        let failure = stats.last_failure.unwrap();
        assert_eq!(failure.kind, FailureKind::Connection);
        assert!(failure.message.contains(said), "{}", failure.message);
        assert!(
            !failure.message.contains("hunter2"),
            "no password in {}",
            failure.message
        );
    }
}

#[tokio::test]
async fn a_unix_socket() {
    let path = std::env::temp_dir().join(format!("ferroserve-feast-{}.sock", std::process::id()));
    let socket = path.to_str().unwrap();
    let Some(_server) = RedisServer::start_with(&["--unixsocket", socket]) else {
        return;
    };
    let (one, view) = view();
    let store = store(format!("redis+unix://{socket}"), TIMEOUT);
    write(&store, &view, 4, 8.0).await;
    assert_eq!(ages(&store, &one, &view, &[4]).await, [8.0]);
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn a_key_that_is_not_a_hash_is_one_bad_row_among_good_ones() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (one, view) = view();
    let store = store(server.url(), TIMEOUT);
    write(&store, &view, 1, 10.0).await;
    write(&store, &view, 3, 30.0).await;
    let mut key = Vec::new();
    view.redis_key(&[KeyValue::Int64(2)], &mut key);
    let mut raw = server.raw().await;
    redis::cmd("SET")
        .arg(key)
        .arg("x")
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        ages(&store, &one, &view, &[1, 2, 3]).await,
        [10.0, -1.0, 30.0]
    );
    let stats = store.stats();
    assert_eq!(
        (stats.found, stats.bad_rows, stats.errors),
        (2, 1, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn replies_of_a_timed_out_round_trip_are_not_taken_for_the_next_ones() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (one, view) = view();
    let store = store(server.url(), TIMEOUT);
    write(&store, &view, 1, 10.0).await;
    write(&store, &view, 2, 20.0).await;
    server.signal("-STOP");
    assert_eq!(ages(&store, &one, &view, &[1]).await, [-1.0]);
    assert_eq!(store.stats().timeouts, 1);
    server.signal("-CONT");
    // Key 1's late answer arrives first on the connection: it must go nowhere.
    for _ in 0..3 {
        assert_eq!(
            ages(&store, &one, &view, &[2, 2, 1]).await,
            [20.0, 20.0, 10.0]
        );
    }
    assert_eq!(store.stats().errors, 0);
}

/// How the fake Redis treats one connection.
#[derive(Clone)]
enum Behaviour {
    /// Answers every request with these bytes.
    Answer(Vec<u8>),
    /// Answers the first request with these bytes, then closes the connection.
    AnswerAndClose(Vec<u8>),
    /// Reads and never answers.
    Silent,
}

/// A fake Redis on a free loopback port: connection `n` behaves as `script[n]` (the last entry
/// for all later ones). Counts connections accepted and closed by the client.
struct FakeRedis {
    port: u16,
    accepted: Arc<AtomicUsize>,
    closed_by_client: Arc<AtomicUsize>,
}

async fn fake_redis(script: Vec<Behaviour>) -> FakeRedis {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed_by_client = Arc::new(AtomicUsize::new(0));
    let (count, closed) = (Arc::clone(&accepted), Arc::clone(&closed_by_client));
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let index = count.fetch_add(1, Ordering::SeqCst);
            let behaviour = script[index.min(script.len() - 1)].clone();
            let closed = Arc::clone(&closed);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let read = socket.read(&mut buffer).await.unwrap_or(0);
                    if read == 0 {
                        closed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    request.extend_from_slice(&buffer[..read]);
                    // A whole HMGET of view `v` ends with its `_ts:v` field.
                    if !request.ends_with(b"$5\r\n_ts:v\r\n") {
                        continue;
                    }
                    request.clear();
                    match &behaviour {
                        Behaviour::Answer(bytes) => socket.write_all(bytes).await.unwrap(),
                        Behaviour::AnswerAndClose(bytes) => {
                            socket.write_all(bytes).await.unwrap();
                            return;
                        }
                        Behaviour::Silent => {}
                    }
                }
            });
        }
    });
    FakeRedis {
        port,
        accepted,
        closed_by_client,
    }
}

/// A good answer to one HMGET of view `v`: `age` and no `_ts`.
fn answer(age: f32) -> Vec<u8> {
    let mut value = Vec::new();
    FeastValue::Float(age).encode(&mut value);
    let mut bytes = format!("*2\r\n${}\r\n", value.len()).into_bytes();
    bytes.extend(value);
    bytes.extend(b"\r\n$-1\r\n");
    bytes
}

#[tokio::test]
async fn a_reply_cut_mid_stream_or_garbage_fails_the_call_then_a_new_connection_serves() {
    let (one, view) = view();
    let good = answer(5.0);
    let cases = [
        (
            Behaviour::AnswerAndClose(good[..good.len() - 4].to_vec()),
            FailureKind::Connection,
            "closed the connection",
        ),
        (
            Behaviour::Answer(b"%1\r\n:1\r\n:2\r\n".to_vec()),
            FailureKind::Protocol,
            "not a RESP2 reply",
        ),
        (
            Behaviour::Answer(format!("${}\r\n", 1 << 30).into_bytes()),
            FailureKind::Protocol,
            "declared length",
        ),
    ];
    for (broken, kind, said) in cases {
        let fake = fake_redis(vec![broken, Behaviour::Answer(good.clone())]).await;
        let store = store(format!("redis://127.0.0.1:{}/0", fake.port), TIMEOUT);
        assert_eq!(ages(&store, &one, &view, &[1]).await, [-1.0]);
        let stats = store.stats();
        let failure = stats.last_failure.clone().unwrap();
        assert_eq!((failure.kind, stats.unavailable), (kind, 1), "{stats:?}");
        assert!(failure.message.contains(said), "{}", failure.message);
        assert_eq!(until_found(&store, &one, &view, &[1]).await, [5.0]);
        assert_eq!(fake.accepted.load(Ordering::SeqCst), 2);
    }
}

#[tokio::test]
async fn a_silent_peer_is_dropped_and_replaced() {
    let (one, view) = view();
    let fake = fake_redis(vec![Behaviour::Silent, Behaviour::Answer(answer(7.0))]).await;
    // Timeout 50 ms: the connection is dropped after 1 s unanswered (10 timeouts, at least 1 s).
    let timeout = Duration::from_millis(50);
    let store = store(format!("redis://127.0.0.1:{}/0", fake.port), timeout);
    let started = Instant::now();
    assert_eq!(ages(&store, &one, &view, &[1]).await, [-1.0]);
    assert_eq!(store.stats().timeouts, 1);
    while fake.closed_by_client.load(Ordering::SeqCst) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "the silent connection was kept"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dropped_after = started.elapsed();
    assert!(dropped_after >= Duration::from_secs(1), "{dropped_after:?}");
    assert_eq!(until_found(&store, &one, &view, &[1]).await, [7.0]);
    assert_eq!(fake.accepted.load(Ordering::SeqCst), 2);
}
