//! One outbox read for many identical subscriptions.
//!
//! Subscriptions whose event statement is the same (same tenant, entity, ops, `where` and read
//! scope: the statement's text and bind values) share a feed. When the hub announces events
//! for their tenant and entity, the feed reads them once and hands the same chunk to every
//! member, so 10,000 subscribers to one list cost one query per change, not 10,000.
//!
//! Chunks are contiguous: each covers `(after, upto]` of the outbox and holds every event of
//! the statement in it. A member that sees a chunk start past its own position (it joined with
//! an older `after`, or fell behind and the feed no longer keeps the chunks it missed) reads
//! the gap from the outbox itself, so sharing never loses or repeats an event.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::task::Poll;
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::sync::broadcast::error::RecvError;

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
    fanout: Arc<Fanout>,
}

/// A feed's chunks to its members.
///
/// Not tokio's broadcast channel: each of its receivers, having taken a value, waits for the
/// next by adding itself to the channel's one waiter list, under the lock the sender holds
/// while it wakes them. 10,000 members re-registering while the sender was still waking the
/// rest made the two worker threads take turns on that lock, one core idle, for a third of
/// the fan-outs (each then half again as long). Here a member waits on a waker of its own;
/// only the feed and members joining take the list's lock.
struct Fanout {
    /// The last `CHANNEL` chunks and the number of the first of them.
    recent: RwLock<(u64, VecDeque<Arc<Chunk>>)>,
    /// Chunks sent so far; a member's next is the one it has not taken yet.
    count: AtomicU64,
    members: Mutex<Vec<Weak<AtomicWaker>>>,
    live: AtomicUsize,
}

impl Fanout {
    fn new() -> Fanout {
        Fanout {
            recent: RwLock::new((0, VecDeque::with_capacity(CHANNEL))),
            count: AtomicU64::new(0),
            members: Mutex::new(Vec::new()),
            live: AtomicUsize::new(0),
        }
    }

    fn subscribe(self: &Arc<Self>) -> Chunks {
        let waker = Arc::new(AtomicWaker::new());
        let mut members = lock(&self.members);
        // Members that left are swept at each send; a quiet feed with members coming and
        // going sweeps here too, before its list doubles, so it never grows past its members.
        if members.len() >= 2 * self.live.load(Ordering::Relaxed) + 64 {
            members.retain(|m| m.strong_count() > 0);
        }
        members.push(Arc::downgrade(&waker));
        drop(members);
        self.live.fetch_add(1, Ordering::Relaxed);
        Chunks {
            fanout: self.clone(),
            next: self.count.load(Ordering::Acquire),
            waker,
        }
    }

    fn send(&self, chunk: Arc<Chunk>) {
        {
            let mut recent = self.recent.write().unwrap_or_else(|e| e.into_inner());
            let (first, chunks) = &mut *recent;
            if chunks.len() == CHANNEL {
                chunks.pop_front();
                *first += 1;
            }
            chunks.push_back(chunk);
            self.count
                .store(*first + chunks.len() as u64, Ordering::Release);
        }
        // Members that have left are swept here.
        lock(&self.members).retain(|member| match member.upgrade() {
            Some(waker) => {
                waker.wake();
                true
            }
            None => false,
        });
    }

    fn receivers(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// Chunks were dropped before a member took them: this many. Its next chunk starts past its
/// position, and the gap is its to read.
#[derive(Debug)]
pub struct Lagged(pub u64);

/// A member's place in its feed's chunks.
pub struct Chunks {
    fanout: Arc<Fanout>,
    next: u64,
    waker: Arc<AtomicWaker>,
}

impl Chunks {
    #[cfg(test)]
    async fn recv(&mut self) -> Result<Arc<Chunk>, Lagged> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next chunk, or how many were dropped before this member took them.
    pub fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Result<Arc<Chunk>, Lagged>> {
        if let Some(taken) = self.take() {
            return Poll::Ready(taken);
        }
        self.waker.register(cx.waker());
        // A chunk sent between the look and the registration has woken nobody.
        match self.take() {
            Some(taken) => Poll::Ready(taken),
            None => Poll::Pending,
        }
    }

    fn take(&mut self) -> Option<Result<Arc<Chunk>, Lagged>> {
        if self.next >= self.fanout.count.load(Ordering::Acquire) {
            return None;
        }
        let recent = self.fanout.recent.read().unwrap_or_else(|e| e.into_inner());
        let (first, chunks) = &*recent;
        if self.next < *first {
            let missed = *first - self.next;
            self.next = *first;
            return Some(Err(Lagged(missed)));
        }
        let chunk = chunks.get((self.next - first) as usize)?.clone();
        self.next += 1;
        Some(Ok(chunk))
    }
}

impl Drop for Chunks {
    fn drop(&mut self) {
        self.fanout.live.fetch_sub(1, Ordering::Relaxed);
    }
}

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
            // Listening before reading where to start: a batch announced in between is
            // received (and skipped if the start already covers it), never missed until the
            // next change of the tenant's entity.
            let batches = hub.batches();
            let start = hub.cursor();
            let feed = Arc::new(Feed {
                reader,
                sent: Mutex::new(start),
                fanout: Arc::new(Fanout::new()),
            });
            feeds.insert(key.clone(), feed.clone());
            tokio::spawn(run(feed.clone(), hub.clone(), batches, key, start));
            feed
        }
    };
    let sent = lock(&feed.sent);
    let chunks = feed.fanout.subscribe();
    let from = *sent;
    drop(sent);
    Joined { feed, chunks, from }
}

/// Reads the feed's events whenever the hub announces some for its tenant and entity, until
/// the last member has left.
async fn run(
    feed: Arc<Feed>,
    hub: Hub,
    mut batches: tokio::sync::broadcast::Receiver<Arc<crate::live::hub::Batch>>,
    key: String,
    start: i64,
) {
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
                        // No member is not an error: the exit check below handles it.
                        feed.fanout.send(Arc::new(chunk));
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
        if feed.fanout.receivers() == 0 {
            // Under the registry lock, so no member can be joining this very feed.
            let mut feeds = lock(&hub.feeds);
            if feed.fanout.receivers() == 0 {
                feeds.remove(&key);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(upto: i64) -> Arc<Chunk> {
        Arc::new(Chunk {
            after: upto - 1,
            upto,
            changes: Vec::new(),
        })
    }

    fn upto(r: Result<Arc<Chunk>, Lagged>) -> i64 {
        match r {
            Ok(c) => c.upto,
            Err(Lagged(n)) => -(n as i64),
        }
    }

    #[tokio::test]
    async fn members_take_every_chunk_in_order_or_learn_how_many_they_missed() {
        let fanout = Arc::new(Fanout::new());
        fanout.send(chunk(1));
        // A member starts with the chunks sent after it joined.
        let mut a = fanout.subscribe();
        let mut b = fanout.subscribe();
        assert_eq!(fanout.receivers(), 2);
        fanout.send(chunk(2));
        fanout.send(chunk(3));
        assert_eq!(upto(a.recv().await), 2);
        assert_eq!(upto(a.recv().await), 3);

        // A waiting member is woken by the next chunk.
        let waiting = tokio::spawn(async move { upto(a.recv().await) });
        tokio::task::yield_now().await;
        fanout.send(chunk(4));
        assert_eq!(waiting.await.ok(), Some(4));
        assert_eq!(fanout.receivers(), 1);

        // `b` took nothing while CHANNEL more were sent: the first three are gone.
        for n in 5..(5 + CHANNEL as i64 - 1) {
            fanout.send(chunk(n));
        }
        assert_eq!(upto(b.recv().await), -2);
        assert_eq!(upto(b.recv().await), 4);
        drop(b);
        assert_eq!(fanout.receivers(), 0);
        // Members that left are swept at the next send.
        fanout.send(chunk(1_000));
        assert!(lock(&fanout.members).is_empty());

        // And on a quiet feed, as members come and go.
        let _stays = fanout.subscribe();
        for _ in 0..10_000 {
            drop(fanout.subscribe());
        }
        assert!(lock(&fanout.members).len() <= 2 + 64 + 1);
    }
}
