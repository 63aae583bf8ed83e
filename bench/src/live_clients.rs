//! The subscribers once live: one thread reads all their sockets through mio, a look every
//! tick, without a task per socket.
//!
//! The 10,000 clients share the two cores with the gateway they measure. As tokio tasks
//! their CPU was 40 % of the gateway's while the changes were delivered: for each message the
//! reactor's event, a wake, the task's turn, its read. Here a message is the event and the
//! read, and the clients' CPU fell to 28 % of the gateway's.
//!
//! The thread sleeps between looks (`BENCH_CLIENT_TICK_US`, 250 µs; 0: waits on the
//! sockets instead). Asleep in `epoll_wait`, it was woken by nearly every arrival from inside
//! the gateway's `sendto` (loopback runs the receiving half there), and the woken thread then
//! preempted the worker that woke it. Remote clients wake up on their own machines. Each
//! delivery's time still counts the tick.

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::raw_ws::{frame_at, masked_frame};

/// A live subscriber's socket, and the bytes it had read but not taken.
pub struct Handover {
    pub index: usize,
    pub tcp: std::net::TcpStream,
    pub rest: Vec<u8>,
}

/// What the loop does with a text message of subscriber `index` read at the given time: an
/// answer to send back, or an error that ends the subscriber.
pub type Handler = dyn FnMut(usize, &str, Instant) -> Result<Option<&'static str>, String> + Send;

pub struct LiveClients {
    handover: mpsc::Sender<Handover>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LiveClients {
    /// Starts the thread; subscribers whose socket fails are counted in `failed`.
    pub fn start(failed: Arc<AtomicUsize>, handler: Box<Handler>) -> Result<LiveClients, String> {
        let (handover, handed) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let tick = crate::env_num("BENCH_CLIENT_TICK_US", 250);
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("subscribers".into())
            .spawn(move || {
                if let Err(e) = run(handed, &stopping, tick, &failed, handler) {
                    eprintln!("subscribers' loop: {e}");
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(LiveClients {
            handover,
            stop,
            thread: Some(thread),
        })
    }

    /// Where a subscriber hands its socket over once live.
    pub fn handover(&self) -> mpsc::Sender<Handover> {
        self.handover.clone()
    }
}

impl Drop for LiveClients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Live {
    tcp: TcpStream,
    index: usize,
    /// The start of a frame not yet whole.
    pending: Vec<u8>,
}

fn run(
    handed: mpsc::Receiver<Handover>,
    stop: &AtomicBool,
    tick: u64,
    failed: &AtomicUsize,
    mut handler: Box<Handler>,
) -> Result<(), String> {
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut events = Events::with_capacity(4096);
    let mut sockets: Vec<Option<Live>> = Vec::new();
    // One read buffer for every socket: nothing per socket is zeroed or kept but a partial
    // frame.
    let mut scratch = vec![0u8; 64 * 1024];
    let end = |live: &mut Live, e: String, poll: &Poll| {
        eprintln!("subscriber: {e}");
        failed.fetch_add(1, Ordering::Relaxed);
        let _ = poll.registry().deregister(&mut live.tcp);
    };
    while !stop.load(Ordering::Relaxed) {
        while let Ok(h) = handed.try_recv() {
            let token = Token(sockets.len());
            let mut live = Live {
                tcp: TcpStream::from_std(h.tcp),
                index: h.index,
                pending: Vec::new(),
            };
            // Registered with bytes already waiting, the socket is reported at once.
            if let Err(e) = poll
                .registry()
                .register(&mut live.tcp, token, Interest::READABLE)
            {
                end(&mut live, e.to_string(), &poll);
                sockets.push(None);
                continue;
            }
            live.pending = h.rest;
            match take(&mut live, &mut *handler, Instant::now()) {
                Ok(()) => sockets.push(Some(live)),
                Err(e) => {
                    end(&mut live, e, &poll);
                    sockets.push(None);
                }
            }
        }
        let wait = if tick > 0 {
            std::thread::sleep(Duration::from_micros(tick));
            Duration::ZERO
        } else {
            Duration::from_millis(10)
        };
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        }
        for event in events.iter() {
            let i = event.token().0;
            let Some(live) = sockets.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            if let Err(e) = read(live, &mut scratch, &mut *handler) {
                end(live, e, &poll);
                sockets[i] = None;
            }
        }
    }
    Ok(())
}

/// Reads what has arrived and takes its whole frames.
fn read(live: &mut Live, scratch: &mut [u8], handler: &mut Handler) -> Result<(), String> {
    loop {
        let n = match live.tcp.read(scratch) {
            Ok(0) => return Err("the gateway closed the socket".into()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        };
        let now = Instant::now();
        if live.pending.is_empty() {
            let used = frames(&scratch[..n], &mut live.tcp, live.index, handler, now)?;
            live.pending.extend_from_slice(&scratch[used..n]);
        } else {
            live.pending.extend_from_slice(&scratch[..n]);
            take(live, handler, now)?;
        }
        // A short read emptied the socket: what arrives later is a new edge, reported by the
        // next poll, so no read is spent on learning that nothing is left.
        if n < scratch.len() {
            return Ok(());
        }
    }
}

/// Takes the whole frames of the socket's pending bytes.
fn take(live: &mut Live, handler: &mut Handler, now: Instant) -> Result<(), String> {
    let used = frames(&live.pending, &mut live.tcp, live.index, handler, now)?;
    live.pending.drain(..used);
    Ok(())
}

/// Handles the whole frames at the start of `bytes`; how many bytes they took.
fn frames(
    bytes: &[u8],
    tcp: &mut TcpStream,
    index: usize,
    handler: &mut Handler,
    now: Instant,
) -> Result<usize, String> {
    let mut at = 0;
    while let Some((opcode, range, used)) = frame_at(&bytes[at..])? {
        let payload = &bytes[at + range.start..at + range.end];
        match opcode {
            0x1 => {
                let text = std::str::from_utf8(payload).map_err(|e| e.to_string())?;
                if let Some(answer) = handler(index, text, now)? {
                    write_all(tcp, &masked_frame(0x1, answer.as_bytes()))?;
                }
            }
            0x8 => return Err("the gateway closed the socket".into()),
            0x9 => write_all(tcp, &masked_frame(0xA, &payload[..payload.len().min(125)]))?,
            0xA => {}
            other => return Err(format!("unexpected frame opcode {other}")),
        }
        at += used;
    }
    Ok(at)
}

/// Writes a small frame on the non-blocking socket (a full send buffer is waited out).
fn write_all(tcp: &mut TcpStream, mut frame: &[u8]) -> Result<(), String> {
    let mut waits = 0;
    while !frame.is_empty() {
        match tcp.write(frame) {
            Ok(n) => frame = &frame[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock && waits < 1000 => {
                waits += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("send: {e}")),
        }
    }
    Ok(())
}
