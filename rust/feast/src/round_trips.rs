//! The store's round-trip task (`client` module doc: coalescing, round trips in flight): it
//! takes the lookups that fetches queue, sends them as one pipeline of HMGETs on the store's
//! connection, and hands each lookup the round trip's answers (shared) with the indices of its
//! own commands, or the round trip's failure.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::coalesce::{LookupKeys, RoundTripPlan};
use crate::connection::Connection;
use crate::resp::{Answers, HmgetFields, Reply, encode_hmget};
use crate::stats::{CallEnd, FailureKind, StoreStats};

/// Most commands in one coalesced round trip; more queued lookups wait for the next one. Bounds
/// the size of one pipeline (a 33-field HMGET answer is about 0.5 KiB) and the time Redis
/// spends on one read (~17 µs per such HMGET on the 2-core VM: about 4 ms for 256).
const MAX_COMMANDS_PER_ROUND_TRIP: usize = 256;
/// Round trips in flight at once on the store's connection (see the `client` module doc).
const MAX_ROUND_TRIPS_IN_FLIGHT: usize = 4;
/// Error replies that say Redis cannot serve this connection's reads now (not logged in, no
/// permission, loading its data, busy with a script, a replica cut off from its primary), as
/// opposed to a key of the wrong type: the call's rows are unavailable, not bad.
const UNAVAILABLE_ERRORS: [&[u8]; 7] = [
    b"NOAUTH",
    b"WRONGPASS",
    b"NOPERM",
    b"LOADING",
    b"BUSY",
    b"MASTERDOWN",
    b"TRYAGAIN",
];

/// One fetch's keys, queued for the round-trip task.
#[derive(Debug)]
pub(crate) struct Lookup {
    /// The view's HMGET fields (shared by its fetches; their address identifies the view).
    pub(crate) fields: Arc<HmgetFields>,
    /// The Redis keys to ask for, in the fetch's order (keys that cannot exist left out).
    pub(crate) keys: Vec<Vec<u8>>,
    /// Where the answers go, or how the round trip failed.
    pub(crate) reply: oneshot::Sender<Result<LookupAnswers, CallEnd>>,
}

/// One fetch's answers: the round trip's, and which of them answer its keys.
#[derive(Debug, Default)]
pub(crate) struct LookupAnswers {
    /// Every reply of the round trip (shared by its lookups).
    pub(crate) answers: Arc<Answers>,
    /// Per key asked, in order: the index of its command's reply.
    pub(crate) commands: Vec<usize>,
}

/// The store's round-trip task: once a round trip may start (fewer than
/// `MAX_ROUND_TRIPS_IN_FLIGHT` in flight), takes the lookups queued by then (up to
/// `MAX_COMMANDS_PER_ROUND_TRIP` commands), sends them as one pipeline over `connection` on a
/// task of its own, and answers each lookup with its own answers or the round trip's failure.
/// Ends when the store (the queue's sender) is dropped.
pub(crate) async fn send_round_trips(
    connection: Arc<Connection>,
    mut queue: mpsc::UnboundedReceiver<Lookup>,
    stats: Arc<StoreStats>,
) {
    let in_flight = Arc::new(Semaphore::new(MAX_ROUND_TRIPS_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        // Never closed: the semaphore lives as long as this task.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let mut commands = first.keys.len();
        let mut batch = vec![first];
        while commands < MAX_COMMANDS_PER_ROUND_TRIP {
            let Ok(lookup) = queue.try_recv() else {
                break;
            };
            commands += lookup.keys.len();
            batch.push(lookup);
        }
        // A fetch that timed out while queued has its answer counted already.
        batch.retain(|lookup| !lookup.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let connection = Arc::clone(&connection);
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            // No timeout here: the fetches time out on their own, and the round trip keeps
            // its permit until its replies are read (module doc).
            let answers = round_trip(&connection, &batch).await;
            stats.record_round_trip();
            match answers {
                Ok(answers) => {
                    for (lookup, answers) in batch.into_iter().zip(answers) {
                        let _ = lookup.reply.send(Ok(answers));
                    }
                }
                Err(end) => {
                    for lookup in batch {
                        let _ = lookup.reply.send(Err(end.clone()));
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Sends `batch`'s keys as one pipeline (a key shared by lookups of one view asked once) and
/// returns each lookup's answers.
async fn round_trip(
    connection: &Connection,
    batch: &[Lookup],
) -> Result<Vec<LookupAnswers>, CallEnd> {
    let lookups: Vec<LookupKeys<'_>> = batch
        .iter()
        .map(|lookup| LookupKeys {
            fields: Arc::as_ptr(&lookup.fields) as usize,
            keys: &lookup.keys,
        })
        .collect();
    let plan = RoundTripPlan::new(&lookups);
    let mut commands = Vec::new();
    for &(lookup, key) in &plan.commands {
        encode_hmget(
            &batch[lookup].keys[key],
            &batch[lookup].fields,
            &mut commands,
        );
    }
    let answers = connection
        .round_trip(&commands, plan.commands.len())
        .await
        .map_err(|failure| CallEnd::Failed(failure.kind, failure.message))?;
    if let Some(message) = unavailable_error(&answers) {
        return Err(CallEnd::Failed(FailureKind::Connection, message));
    }
    let answers = Arc::new(answers);
    Ok(plan
        .into_slots()
        .into_iter()
        .map(|commands| LookupAnswers {
            answers: Arc::clone(&answers),
            commands,
        })
        .collect())
}

/// The first error reply among `answers` that says Redis cannot serve reads now
/// (`UNAVAILABLE_ERRORS`), as Redis worded it.
fn unavailable_error(answers: &Answers) -> Option<String> {
    (0..answers.len()).find_map(|index| match answers.reply(index)? {
        Reply::Error(span) => {
            let text = answers.text(span)?;
            let code = text.split(|&byte| byte == b' ').next()?;
            UNAVAILABLE_ERRORS
                .contains(&code)
                .then(|| format!("Redis refused the read: {}", String::from_utf8_lossy(text)))
        }
        _ => None,
    })
}
