//! The running operations of one `graphql-transport-ws` socket, polled by the socket's own
//! task (with the waker `wakes` gives them).
//!
//! Why not `futures::stream::SelectAll`: its `FuturesUnordered` wakes its own task again
//! whenever it has polled all its streams and found them pending, which with one subscription
//! per socket is after every delivery. 10,000 subscribers of a change then cost 20,000 extra
//! turns of their sockets' loops. Here each operation has a flag its stream's wakes set, and a
//! poll looks only at flagged operations; nothing wakes the task but a stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::stream::BoxStream;
use futures::StreamExt;

use crate::graphql::subscription::Delivery;

/// Set when an operation's stream may have something; wakes the socket's task (through the
/// waker the socket gave its operations).
struct Flag {
    woken: AtomicBool,
    task: Waker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

struct Operation {
    id: Arc<str>,
    /// Whether it has produced a result yet: an error before the first is an `error` message.
    started: bool,
    flag: Arc<Flag>,
    waker: Waker,
    stream: BoxStream<'static, Delivery>,
}

/// A socket's operations by the client's id.
pub struct Operations {
    running: Vec<Operation>,
    /// Woken by every operation's stream: a waker that stays the same for the socket's life,
    /// so that no wake has to be registered anew.
    task: Waker,
    /// Where the next poll starts looking, so that a busy operation cannot starve the others.
    turn: usize,
}

impl Operations {
    pub fn new(task: Waker) -> Operations {
        Operations {
            running: Vec::new(),
            task,
            turn: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.running.iter().any(|o| &*o.id == id)
    }

    pub fn push(&mut self, id: Arc<str>, stream: BoxStream<'static, Delivery>) {
        let flag = Arc::new(Flag {
            // Polled at the next turn of the socket's loop.
            woken: AtomicBool::new(true),
            task: self.task.clone(),
        });
        let waker = Waker::from(flag.clone());
        self.running.push(Operation {
            id,
            started: false,
            flag,
            waker,
            stream,
        });
    }

    /// Ends an operation: its stream is dropped (and its feed forgets it).
    pub fn remove(&mut self, id: &str) -> bool {
        let before = self.running.len();
        self.running.retain(|o| &*o.id != id);
        self.running.len() != before
    }

    /// Marks `id` started; whether it already was.
    pub fn start(&mut self, id: &str) -> bool {
        self.running
            .iter_mut()
            .find(|o| &*o.id == id)
            .is_some_and(|o| std::mem::replace(&mut o.started, true))
    }

    /// The next result of any operation; `None` ends the operation (it is removed). The
    /// operations wake the waker given to `new`, not the caller's.
    pub fn poll_next(&mut self) -> Poll<(Arc<str>, Option<Delivery>)> {
        let n = self.running.len();
        for k in 0..n {
            let i = (self.turn + k) % n;
            let op = &mut self.running[i];
            if !op.flag.woken.swap(false, Ordering::AcqRel) {
                continue;
            }
            let mut own = Context::from_waker(&op.waker);
            match op.stream.poll_next_unpin(&mut own) {
                Poll::Ready(Some(delivery)) => {
                    // It may hold more: looked at again at the next poll.
                    op.flag.woken.store(true, Ordering::Release);
                    self.turn = i + 1;
                    return Poll::Ready((op.id.clone(), Some(delivery)));
                }
                Poll::Ready(None) => {
                    let op = self.running.swap_remove(i);
                    return Poll::Ready((op.id, None));
                }
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }
}
