//! One outbox read for many identical subscriptions.
//!
//! Subscriptions whose event statement is the same (same tenant, entity, ops, `where` and read
//! scope: the statement's text and bind values) share a feed. When the hub announces events
//! for their tenant and entity, the feed reads them once and hands the same chunk to every
//! member, so 10,000 subscribers to one list cost one query per change, not 10,000.
//!
//! Chunks are contiguous: each covers `(after, upto]` of the outbox and holds every event of
//! the statement in it. A member that sees a chunk start past its own position (it joined with
//! an older `after`, or fell behind and the channel dropped chunks for it) reads the gap from
//! the outbox itself, so sharing never loses or repeats an event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};

use crate::live::hub::Hub;
use crate::live::subscribe::{Change, Reader};

/// Chunks kept for members that have not taken them yet; one that falls further behind
/// reads from the outbox instead.
const CHANNEL: usize = 256;
/// How often an idle feed checks whether it still has members.
const IDLE_CHECK: Duration = Duration::from_secs(10);

/// The feeds of one instance by statement fingerprint.
pub type Feeds = Arc<Mutex<HashMap<String, Arc<Feed>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock left plain data behind: still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The events of one statement in `(after, upto]`, with their sequence numbers.
pub struct Chunk {
    pub after: i64,
    pub upto: i64,
    pub changes: Vec<(i64, Change)>,
}

pub struct Feed {
    pub reader: Reader,
    /// `upto` of the last chunk sent; the next one starts here.
    sent: Mutex<i64>,
    tx: broadcast::Sender<Arc<Chunk>>,
}

/// A receiver of a feed's chunks.
pub type Chunks = broadcast::Receiver<Arc<Chunk>>;

/// A member's place in a feed.
pub struct Joined {
    pub feed: Arc<Feed>,
    pub chunks: Chunks,
    /// Where the first chunk received will start.
    pub from: i64,
}

/// Joins (or starts) the feed of `reader`'s statement.
pub fn join(hub: &Hub, reader: Reader) -> Joined {
    let key = reader.fingerprint();
    let mut feeds = lock(&hub.feeds);
    let existing = feeds.get(&key).cloned();
    let feed = match existing {
        Some(feed) => feed,
        None => {
            let start = hub.cursor();
            let (tx, _) = broadcast::channel(CHANNEL);
            let feed = Arc::new(Feed {
                reader,
                sent: Mutex::new(start),
                tx,
            });
            feeds.insert(key.clone(), feed.clone());
            tokio::spawn(run(feed.clone(), hub.clone(), key, start));
            feed
        }
    };
    let sent = lock(&feed.sent);
    let chunks = feed.tx.subscribe();
    let from = *sent;
    drop(sent);
    Joined { feed, chunks, from }
}

/// Reads the feed's events whenever the hub announces some for its tenant and entity, until
/// the last member has left.
async fn run(feed: Arc<Feed>, hub: Hub, key: String, start: i64) {
    let mut batches = hub.batches();
    // Read up to here; ahead of `sent` when announced events were none of ours.
    let mut read = start;
    let mut pending = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        if pending {
            let upto = hub.cursor();
            match feed.reader.read(read, upto).await {
                Ok((changes, covered)) => {
                    read = covered;
                    pending = covered < upto;
                    backoff = Duration::from_millis(100);
                    if !changes.is_empty() {
                        let mut sent = lock(&feed.sent);
                        let chunk = Chunk {
                            after: *sent,
                            upto: covered,
                            changes,
                        };
                        *sent = covered;
                        // No receiver is not an error: the exit check below handles it.
                        let _ = feed.tx.send(Arc::new(chunk));
                    }
                }
                Err(e) => {
                    // Members wait; the events stay in the outbox for the next attempt, which
                    // comes within a second of the database's return.
                    if crate::logs::admit(
                        crate::logs::Level::Warn,
                        "live.feed",
                        &format!("{}: {}", feed.reader.entity(), e.code()),
                    ) {
                        tracing::warn!(
                            "subscription feed {} cannot read: {e:?}",
                            feed.reader.entity()
                        );
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        } else {
            tokio::select! {
                batch = batches.recv() => match batch {
                    Ok(b) if b.upto > read => {
                        if b.after <= read && !b.touches(feed.reader.tenant(), feed.reader.entity()) {
                            read = b.upto;
                        } else {
                            pending = true;
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => pending = true,
                    Err(RecvError::Closed) => return,
                },
                _ = tokio::time::sleep(IDLE_CHECK) => {}
            }
        }
        if feed.tx.receiver_count() == 0 {
            // Under the registry lock, so no member can be joining this very feed.
            let mut feeds = lock(&hub.feeds);
            if feed.tx.receiver_count() == 0 {
                feeds.remove(&key);
                return;
            }
        }
    }
}
