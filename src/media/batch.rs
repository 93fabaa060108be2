//! Many videos at once: a pool of named decoding threads, one per core, returning results over a
//! bounded channel so that a long list never turns into a long queue of decoded frames in memory. A bad
//! file fails alone; the summary lists it with its reason and the rest goes on.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;

use super::error::MediaError;
use super::sample::{
    DecodeStats, FrameRequest, SampleOptions, SampledFrames, VideoDecoder, sample_video,
};
use crate::jobs::{CancelToken, ProgressSender};

/// One video of a batch and the frames wanted from it.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItem {
    pub path: PathBuf,
    pub request: FrameRequest,
}

/// Sent after each video of a batch finishes, in the order they finish.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchProgress {
    /// Videos finished so far (including this one), out of `total`.
    pub done: usize,
    pub total: usize,
    /// The index of the finished video in the batch, and its path.
    pub index: usize,
    pub path: PathBuf,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// A video the batch could not use.
#[derive(Debug)]
pub struct BatchFailure {
    pub index: usize,
    pub path: PathBuf,
    pub error: MediaError,
}

/// How a batch went.
#[derive(Debug, Default)]
pub struct BatchSummary {
    pub total: usize,
    pub succeeded: usize,
    /// Bad files (and any other failures), in batch order, with their reasons.
    pub failed: Vec<BatchFailure>,
    /// Videos not done because the batch was cancelled.
    pub not_done: usize,
    pub cancelled: bool,
    /// Decoding cost over the videos that succeeded.
    pub stats: DecodeStats,
}

impl BatchSummary {
    /// One line for the batch, then one per failed file with its reason.
    pub fn report(&self) -> String {
        let mut out = format!(
            "{} of {} videos done, {} failed{}",
            self.succeeded,
            self.total,
            self.failed.len(),
            if self.cancelled {
                format!(", cancelled with {} not done", self.not_done)
            } else {
                String::new()
            }
        );
        for failure in &self.failed {
            out.push_str(&format!("\n  {}", failure.error));
        }
        out
    }
}

/// The number of decoding threads that keeps every core busy.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Samples every item with `workers` threads (0: one per core) and hands each video's frames to
/// `on_frames` on the calling thread as it finishes (in finishing order, with its batch index).
pub fn sample_batch<F>(
    items: &[BatchItem],
    options: &SampleOptions,
    workers: usize,
    cancel: &CancelToken,
    progress: Option<&ProgressSender<BatchProgress>>,
    mut on_frames: F,
) -> BatchSummary
where
    F: FnMut(usize, SampledFrames),
{
    let mut stats = DecodeStats::default();
    let mut summary = run_batch(
        items,
        |item| &item.path,
        workers,
        cancel,
        progress,
        |item| sample_video(&item.path, &item.request, options, cancel),
        |index, frames: SampledFrames| {
            stats.add(&frames.stats);
            on_frames(index, frames);
        },
    );
    summary.stats = stats;
    summary
}

/// Opens each of `paths` (with `options.decoder_threads`) on the pool and runs `work` on it
/// there, handing each result to `on_done` on the calling thread as it finishes. For callers
/// that use frames as they are decoded: ingest encodes clip by clip, so that a long video's
/// frames are never all held at once, only its features.
pub fn decode_batch<R, W, D>(
    paths: &[PathBuf],
    options: &SampleOptions,
    workers: usize,
    cancel: &CancelToken,
    progress: Option<&ProgressSender<BatchProgress>>,
    work: W,
    mut on_done: D,
) -> BatchSummary
where
    R: Send,
    W: Fn(usize, &mut VideoDecoder) -> Result<R, MediaError> + Sync,
    D: FnMut(usize, R),
{
    let indexed: Vec<(usize, &PathBuf)> = paths.iter().enumerate().collect();
    let mut stats = DecodeStats::default();
    let mut summary = run_batch(
        &indexed,
        |(_, path)| path.as_path(),
        workers,
        cancel,
        progress,
        |&(index, path)| {
            let mut decoder = VideoDecoder::open(path, options.decoder_threads)?;
            let result = work(index, &mut decoder)?;
            Ok((result, decoder.stats()))
        },
        |index, (result, decoded): (R, DecodeStats)| {
            stats.add(&decoded);
            on_done(index, result);
        },
    );
    summary.stats = stats;
    summary
}

/// The pool under every batch: runs `work` on each item on `workers` named threads, passes
/// successes to `on_done` on the calling thread and records failures in the summary.
pub(crate) fn run_batch<T, R, P, W, D>(
    items: &[T],
    path_of: P,
    workers: usize,
    cancel: &CancelToken,
    progress: Option<&ProgressSender<BatchProgress>>,
    work: W,
    mut on_done: D,
) -> BatchSummary
where
    T: Sync,
    R: Send,
    P: Fn(&T) -> &Path,
    W: Fn(&T) -> Result<R, MediaError> + Sync,
    D: FnMut(usize, R),
{
    let total = items.len();
    let mut summary = BatchSummary {
        total,
        ..BatchSummary::default()
    };
    let mut done = 0;
    let mut record = |index: usize, result: Result<R, MediaError>| {
        let error = match result {
            Ok(value) => {
                on_done(index, value);
                summary.succeeded += 1;
                None
            }
            Err(MediaError::Cancelled) => {
                summary.cancelled = true;
                return;
            }
            Err(error) => {
                let reason = error.to_string();
                summary.failed.push(BatchFailure {
                    index,
                    path: path_of(&items[index]).to_path_buf(),
                    error,
                });
                Some(reason)
            }
        };
        done += 1;
        if let Some(progress) = progress {
            progress.send(BatchProgress {
                done,
                total,
                index,
                path: path_of(&items[index]).to_path_buf(),
                error,
            });
        }
    };
    let workers = if workers == 0 {
        default_workers()
    } else {
        workers
    }
    .clamp(1, total.max(1));
    // Workers take the next index from a shared counter; finished videos come back over a
    // bounded channel, so workers wait (holding at most one result each) when the consumer is slow.
    let next = AtomicUsize::new(0);
    let take = || {
        let index = next.fetch_add(1, Ordering::Relaxed);
        (index < total && !cancel.is_cancelled()).then_some(index)
    };
    std::thread::scope(|scope| {
        let (result_sender, result_receiver) =
            sync_channel::<(usize, Result<R, MediaError>)>(workers);
        let mut spawned = 0;
        for n in 0..workers {
            let (result_sender, work, take) = (result_sender.clone(), &work, &take);
            let worker = std::thread::Builder::new()
                .name(format!("media-decode-{n}"))
                .spawn_scoped(scope, move || {
                    while let Some(index) = take() {
                        if result_sender.send((index, work(&items[index]))).is_err() {
                            break;
                        }
                    }
                });
            spawned += usize::from(worker.is_ok());
        }
        drop(result_sender);
        if spawned == 0 {
            // No thread could be started: do the work here rather than not at all.
            while let Some(index) = take() {
                record(index, work(&items[index]));
            }
            return;
        }
        for (index, result) in result_receiver {
            record(index, result);
        }
    });
    summary.not_done = total - summary.succeeded - summary.failed.len();
    if cancel.is_cancelled() && summary.not_done > 0 {
        summary.cancelled = true;
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::progress_channel;

    fn fake_items(n: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| PathBuf::from(format!("video{i}.mp4")))
            .collect()
    }

    #[test]
    fn failures_are_listed_and_the_rest_succeed() {
        let items = fake_items(7);
        let (sender, receiver) = progress_channel(16);
        let mut done = Vec::new();
        let summary = run_batch(
            &items,
            |p| p.as_path(),
            3,
            &CancelToken::new(),
            Some(&sender),
            |path| {
                let name = path.to_string_lossy();
                if name.contains('3') || name.contains('5') {
                    Err(MediaError::Empty { path: path.clone() })
                } else {
                    Ok(name.len())
                }
            },
            |index, _| done.push(index),
        );
        done.sort();
        assert_eq!(done, vec![0, 1, 2, 4, 6]);
        assert_eq!(
            (summary.total, summary.succeeded, summary.not_done),
            (7, 5, 0)
        );
        let mut failed: Vec<usize> = summary.failed.iter().map(|f| f.index).collect();
        failed.sort();
        assert_eq!(failed, vec![3, 5]);
        assert!(
            summary.report().contains("video3.mp4: the file is empty"),
            "{}",
            summary.report()
        );
        let updates: Vec<BatchProgress> = receiver.try_iter().collect();
        assert_eq!(updates.len(), 7);
        assert_eq!(updates.last().unwrap().done, 7);
        assert_eq!(updates.iter().filter(|u| u.error.is_some()).count(), 2);
    }

    #[test]
    fn work_runs_on_named_threads_in_parallel() {
        let items = fake_items(4);
        let barrier = std::sync::Barrier::new(2);
        let mut names = Vec::new();
        let summary = run_batch(
            &items,
            |p| p.as_path(),
            2,
            &CancelToken::new(),
            None,
            |_| {
                // Two items meet here: this only returns if two workers run at once.
                barrier.wait();
                Ok(std::thread::current().name().unwrap_or("").to_string())
            },
            |_, name| names.push(name),
        );
        assert_eq!(summary.succeeded, 4);
        assert!(
            names.iter().all(|n| n.starts_with("media-decode-")),
            "{names:?}"
        );
    }

    #[test]
    fn cancelling_stops_the_batch() {
        let items = fake_items(50);
        let cancel = CancelToken::new();
        let summary = run_batch(
            &items,
            |p| p.as_path(),
            2,
            &cancel,
            None,
            |_| {
                cancel.cancel();
                Ok(())
            },
            |_, _| {},
        );
        assert!(summary.cancelled);
        assert!(summary.succeeded < 50, "{}", summary.succeeded);
        assert_eq!(summary.succeeded + summary.not_done, 50);
        assert!(summary.failed.is_empty());
    }
}
