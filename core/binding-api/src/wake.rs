//! Results handed from the core runtime to a host's event loop in batches (Unix).
//!
//! Entering a host from a runtime thread costs the host a thread switch per result: Python takes
//! the GIL and wakes its loop with `call_soon_threadsafe`, Go enters through a cgo callback from
//! a foreign thread that must get an M and a P. A [`WakeQueue`] instead keeps the results and
//! writes one byte to a socket the host's loop watches (`add_reader`, Go's netpoller) when the
//! first one arrives; the loop then takes every queued result at once, on its own thread. Under
//! load many results share one wake-up.
//!
//! At most one wake-up byte is outstanding: a push writes one only when the queue was not
//! already signalled, and a take clears the signal before it takes, so a push that races with
//! a take either lands in it or signals again (a wake-up may then find the queue empty).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// A queue of results for one host event loop, with the socket that wakes it.
pub struct WakeQueue<T> {
    queued: Mutex<VecDeque<T>>,
    /// Whether a wake-up byte is outstanding (or about to be written).
    signalled: AtomicBool,
    /// Written by [`WakeQueue::push`].
    wake: UnixStream,
    /// Watched by the host ([`WakeQueue::fd`]).
    woken: UnixStream,
}

impl<T> WakeQueue<T> {
    /// An empty queue; both ends of its socket pair are non-blocking.
    pub fn new() -> std::io::Result<WakeQueue<T>> {
        let (wake, woken) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        woken.set_nonblocking(true)?;
        Ok(WakeQueue {
            queued: Mutex::new(VecDeque::new()),
            signalled: AtomicBool::new(false),
            wake,
            woken,
        })
    }

    /// The descriptor the host's loop watches: readable when results wait. It belongs to the
    /// queue (closed with it): the host reads and discards its bytes, or calls
    /// [`WakeQueue::clear_wake_ups`], then [`WakeQueue::take`]s.
    pub fn fd(&self) -> RawFd {
        self.woken.as_raw_fd()
    }

    /// Queue a result (from any thread); wake the loop unless a wake-up is already on its way.
    pub fn push(&self, item: T) {
        self.queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(item);
        if !self.signalled.swap(true, Ordering::AcqRel) {
            // At most one byte is outstanding, so the socket never fills and this never blocks.
            let _ = (&self.wake).write(&[1]);
        }
    }

    /// Up to `max` queued results, oldest first. Results left past `max` raise no new wake-up:
    /// take again while it returns `max`.
    pub fn take(&self, max: usize) -> Vec<T> {
        // Cleared before taking: a push from now on writes a new wake-up byte.
        self.signalled.store(false, Ordering::Release);
        let mut queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
        let count = max.min(queued.len());
        queued.drain(..count).collect()
    }

    /// Read and discard the wake-up bytes (for hosts that only watch [`WakeQueue::fd`]).
    pub fn clear_wake_ups(&self) {
        let mut bytes = [0u8; 64];
        loop {
            match (&self.woken).read(&mut bytes) {
                Ok(n) if n > 0 => continue,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                _ => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wake-up bytes waiting, read (so: discarded).
    fn wake_ups(queue: &WakeQueue<u32>) -> usize {
        let mut bytes = [0u8; 64];
        match (&queue.woken).read(&mut bytes) {
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::WouldBlock => 0,
            Err(err) => panic!("{err}"),
        }
    }

    #[test]
    fn one_wake_up_per_batch_and_every_result_taken_once_in_order() {
        let queue = WakeQueue::new().unwrap();
        assert_eq!(wake_ups(&queue), 0);
        for n in 0..5 {
            queue.push(n);
        }
        assert_eq!(wake_ups(&queue), 1, "five pushes wrote one byte");
        assert_eq!(queue.take(3), vec![0, 1, 2]);
        assert_eq!(queue.take(3), vec![3, 4]);
        assert!(queue.take(3).is_empty());
        queue.push(5);
        queue.push(6);
        assert_eq!(wake_ups(&queue), 1, "a push after a take wakes again");
        queue.push(7);
        queue.clear_wake_ups();
        assert_eq!(wake_ups(&queue), 0);
        assert_eq!(queue.take(usize::MAX), vec![5, 6, 7]);
    }

    #[test]
    fn pushes_from_many_threads_all_arrive() {
        let queue = std::sync::Arc::new(WakeQueue::new().unwrap());
        let pushers: Vec<_> = (0..4)
            .map(|thread| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    for n in 0..1000 {
                        queue.push(thread * 1000 + n);
                    }
                })
            })
            .collect();
        let mut taken = Vec::new();
        while taken.len() < 4000 {
            queue.clear_wake_ups();
            taken.extend(queue.take(100));
        }
        pushers.into_iter().for_each(|p| p.join().unwrap());
        taken.sort_unstable();
        assert_eq!(taken, (0..4000).collect::<Vec<_>>());
    }
}
