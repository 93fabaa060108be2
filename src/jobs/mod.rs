//! Background work: cancellation shared between a job and whoever started it, and progress that
//! flows back over bounded channels, so that neither a terminal nor the app ever blocks on a job.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

/// A flag a job polls between units of work; cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The sending half of a progress channel. Routine updates never block the job: when the channel
/// is full they are dropped. Updates sent with [`ProgressSender::send_important`] wait for room.
#[derive(Debug)]
pub struct ProgressSender<T> {
    sender: SyncSender<T>,
}

impl<T> Clone for ProgressSender<T> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
        }
    }
}

impl<T> ProgressSender<T> {
    /// Sends a routine update; dropped if the channel is full or the receiver is gone.
    pub fn send(&self, update: T) {
        match self.sender.try_send(update) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Sends an update that must arrive (an epoch's metrics, the end of the job); waits for room.
    /// Returns false when the receiver is gone.
    pub fn send_important(&self, update: T) -> bool {
        self.sender.send(update).is_ok()
    }
}

/// A bounded progress channel of `capacity` updates.
pub fn progress_channel<T>(capacity: usize) -> (ProgressSender<T>, Receiver<T>) {
    let (sender, receiver) = sync_channel(capacity.max(1));
    (ProgressSender { sender }, receiver)
}

/// Starts `work` on a named thread.
pub fn spawn_named<F, R>(name: &str, work: F) -> std::io::Result<std::thread::JoinHandle<R>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(work)
}

/// Runs `work` on this thread with a progress channel of its own, whose updates a named thread
/// passes on to `events` through `map`: a job that reports one kind of update can be a step of a
/// larger job that reports another. Routine updates the job sends are still dropped when its
/// channel is full; what reaches the relay waits for room in `events`.
pub fn relay<T, U, R>(
    name: &str,
    events: &ProgressSender<U>,
    map: impl Fn(T) -> U + Send,
    work: impl FnOnce(&ProgressSender<T>) -> R,
) -> R
where
    T: Send,
    U: Send,
{
    let (sender, receiver) = progress_channel::<T>(64);
    std::thread::scope(|scope| {
        let relayed = std::thread::Builder::new()
            .name(name.to_string())
            .spawn_scoped(scope, move || {
                for update in receiver {
                    if !events.send_important(map(update)) {
                        break;
                    }
                }
            });
        let result = work(&sender);
        drop(sender);
        if let Ok(relayed) = relayed {
            let _ = relayed.join();
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routine_updates_never_block_and_important_ones_arrive() {
        let (sender, receiver) = progress_channel(2);
        for i in 0..10 {
            sender.send(i);
        }
        assert_eq!(receiver.try_iter().collect::<Vec<_>>(), vec![0, 1]);
        let worker = spawn_named("test-job", move || sender.send_important(99)).unwrap();
        assert_eq!(receiver.recv().unwrap(), 99);
        assert!(worker.join().unwrap());
    }

    #[test]
    fn a_relayed_job_reports_through_the_outer_channel() {
        let (outer, receiver) = progress_channel::<String>(256);
        let result = relay(
            "test-relay",
            &outer,
            |n: usize| format!("step {n}"),
            |inner| {
                for n in 0..3 {
                    inner.send_important(n);
                }
                42
            },
        );
        assert_eq!(result, 42);
        assert_eq!(
            receiver.try_iter().collect::<Vec<_>>(),
            ["step 0", "step 1", "step 2"]
        );
    }

    #[test]
    fn cancellation_is_shared_between_clones() {
        let token = CancelToken::new();
        let job = token.clone();
        assert!(!job.is_cancelled());
        token.cancel();
        assert!(job.is_cancelled());
    }
}
