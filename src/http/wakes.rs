//! Which of a socket task's sources woke it.
//!
//! A `graphql-transport-ws` socket waits on four things: its operations, the client's next
//! message, its timer and the shutdown watch. `tokio::select!` polls every branch at every
//! turn, and a delivery is two turns (the one that writes it, the one that finds nothing
//! more): 10,000 subscribers of one change polled 80,000 sources to find 10,000 deliveries,
//! each a cold cache line of a socket's read state, timer entry or watch. Here each source is
//! polled with a waker of its own that sets its bit; a turn polls only the sources whose bits
//! are set (and one that answered, which has registered nothing).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

use futures::task::AtomicWaker;

pub const OPS: u8 = 1;
pub const READ: u8 = 2;
pub const TIMER: u8 = 4;
pub const DRAIN: u8 = 8;

pub struct Wakes {
    bits: AtomicU8,
    task: AtomicWaker,
}

struct Source {
    wakes: Arc<Wakes>,
    bit: u8,
}

impl Wake for Source {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.mark(self.bit);
        self.wakes.task.wake();
    }
}

impl Wakes {
    /// Every source due for a first poll.
    pub fn new() -> Arc<Wakes> {
        Arc::new(Wakes {
            bits: AtomicU8::new(OPS | READ | TIMER | DRAIN),
            task: AtomicWaker::new(),
        })
    }

    /// The waker to poll source `bit` with.
    pub fn waker(self: &Arc<Self>, bit: u8) -> Waker {
        Waker::from(Arc::new(Source {
            wakes: self.clone(),
            bit,
        }))
    }

    /// The sources woken since the last look, cleared; the task is woken by the next.
    pub fn take(&self, cx: &Context<'_>) -> u8 {
        // Registered before the bits are read: a wake in between finds the task's waker.
        self.task.register(cx.waker());
        self.bits.swap(0, Ordering::AcqRel)
    }

    /// Marks sources to be polled at the next look (one that answered, or was not reached).
    pub fn mark(&self, bits: u8) {
        self.bits.fetch_or(bits, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_sets_its_bit_and_wakes_the_task() {
        let wakes = Wakes::new();
        let task = Arc::new(Counter::default());
        let task_waker = Waker::from(task.clone());
        let cx = Context::from_waker(&task_waker);
        assert_eq!(wakes.take(&cx), OPS | READ | TIMER | DRAIN);
        assert_eq!(wakes.take(&cx), 0);
        let (read, timer) = (wakes.waker(READ), wakes.waker(TIMER));
        read.wake_by_ref();
        assert_eq!(task.0.load(Ordering::Relaxed), 1);
        // Woken once until it looks again; the bits gather meanwhile.
        timer.wake_by_ref();
        assert_eq!(task.0.load(Ordering::Relaxed), 1);
        assert_eq!(wakes.take(&cx), READ | TIMER);
        timer.wake();
        assert_eq!(task.0.load(Ordering::Relaxed), 2);
        // Marking only notes a source for the next look.
        wakes.mark(OPS);
        assert_eq!(task.0.load(Ordering::Relaxed), 2);
        assert_eq!(wakes.take(&cx), TIMER | OPS);
    }

    #[derive(Default)]
    struct Counter(std::sync::atomic::AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}
