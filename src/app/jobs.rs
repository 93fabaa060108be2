//! The explorer's background work: each job runs on a named thread, reports over a bounded
//! channel that the UI thread drains without waiting, and stops on its cancel token. The status
//! bar lists them.

use std::sync::mpsc::{Receiver, TryRecvError};

use crate::jobs::{CancelToken, ProgressSender, progress_channel, spawn_named};

/// What a job reports.
#[derive(Debug)]
pub enum Update<T> {
    /// Done so far, out of a total (when known), and what it is doing.
    Progress {
        done: usize,
        total: Option<usize>,
        text: String,
    },
    /// A partial result (a t-SNE snapshot, a batch of thumbnails) that the UI shows at once.
    Partial(T),
    Finished(Result<T, String>),
}

/// One running job, as the UI sees it.
#[derive(Debug)]
pub struct Job<T> {
    pub name: String,
    pub cancel: CancelToken,
    receiver: Receiver<Update<T>>,
    pub done: usize,
    pub total: Option<usize>,
    pub text: String,
    finished: bool,
}

/// What draining a job's channel brought.
#[derive(Debug)]
pub enum Polled<T> {
    Nothing,
    Partial(Vec<T>),
    Finished(Vec<T>, Result<T, String>),
}

impl<T: Send + 'static> Job<T> {
    /// Starts `work` on a thread named `crossclr-<name>`; `repaint` wakes the UI on each update.
    pub fn start(
        name: &str,
        repaint: impl Fn() + Send + Sync + 'static,
        work: impl FnOnce(&Reporter<T>, &CancelToken) -> Result<T, String> + Send + 'static,
    ) -> Self {
        let (sender, receiver) = progress_channel(64);
        let cancel = CancelToken::new();
        let job_cancel = cancel.clone();
        let reporter = Reporter {
            sender,
            repaint: Box::new(repaint),
        };
        let thread_name = format!("crossclr-{}", name.replace(' ', "-"));
        let started = spawn_named(&thread_name, move || {
            let result = work(&reporter, &job_cancel);
            reporter.sender.send_important(Update::Finished(result));
            (reporter.repaint)();
        });
        let mut job = Self {
            name: name.to_string(),
            cancel,
            receiver,
            done: 0,
            total: None,
            text: String::new(),
            finished: false,
        };
        if let Err(error) = started {
            job.text = format!("could not start: {error}");
            job.finished = true;
        }
        job
    }

    /// Takes what arrived since the last frame; never waits.
    pub fn poll(&mut self) -> Polled<T> {
        let mut partial = Vec::new();
        loop {
            match self.receiver.try_recv() {
                Ok(Update::Progress { done, total, text }) => {
                    self.done = done;
                    self.total = total;
                    self.text = text;
                }
                Ok(Update::Partial(value)) => partial.push(value),
                Ok(Update::Finished(result)) => {
                    self.finished = true;
                    return Polled::Finished(partial, result);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if !self.finished {
                        self.finished = true;
                        return Polled::Finished(
                            partial,
                            Err(format!("{} stopped without a result", self.name)),
                        );
                    }
                    break;
                }
            }
        }
        if partial.is_empty() {
            Polled::Nothing
        } else {
            Polled::Partial(partial)
        }
    }

    pub fn fraction(&self) -> Option<f32> {
        self.total
            .filter(|&t| t > 0)
            .map(|t| (self.done as f32 / t as f32).clamp(0.0, 1.0))
    }
}

/// The job's side of the channel.
pub struct Reporter<T> {
    sender: ProgressSender<Update<T>>,
    repaint: Box<dyn Fn() + Send + Sync>,
}

impl<T> std::fmt::Debug for Reporter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter").finish_non_exhaustive()
    }
}

impl<T> Reporter<T> {
    /// A routine update: dropped when the UI is behind.
    pub fn progress(&self, done: usize, total: Option<usize>, text: impl Into<String>) {
        self.sender.send(Update::Progress {
            done,
            total,
            text: text.into(),
        });
        (self.repaint)();
    }

    /// A partial result: waits for room, so none is lost.
    pub fn partial(&self, value: T) {
        self.sender.send_important(Update::Partial(value));
        (self.repaint)();
    }

    /// The sender of a library job's own progress type, relayed as progress lines.
    pub fn sender(&self) -> &ProgressSender<Update<T>> {
        &self.sender
    }
}
