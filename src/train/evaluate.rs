//! Embedding a whole split with a head, and COOT's retrieval evaluation at both levels.

use candle_core::{D, DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};

use super::data::{BatchLimits, CorpusView, make_batch};
use crate::eval::{RetrievalMetrics, TiePolicy, block_ranks, metrics_from_ranks};
use crate::model::{EmbeddingHead, Mode};

/// Every embedding of a split, on the CPU, rows in corpus order.
#[derive(Debug, Clone)]
pub struct SplitEmbeddings {
    pub clip: Tensor,
    pub sentence: Tensor,
    pub video: Tensor,
    pub paragraph: Tensor,
}

/// Embeds every clip and video of `corpus` in eval mode, `videos_per_batch` videos at a time.
pub fn embed_corpus(
    head: &EmbeddingHead,
    corpus: &CorpusView<'_>,
    limits: BatchLimits,
    videos_per_batch: usize,
    device: &Device,
) -> Result<SplitEmbeddings> {
    let mut parts: [Vec<Tensor>; 4] = Default::default();
    let videos: Vec<usize> = (0..corpus.num_videos()).collect();
    for chunk in videos.chunks(videos_per_batch.max(1)) {
        let batch = make_batch(corpus, chunk, limits, device)?;
        let out = head.forward(&batch.input, Mode::Eval)?;
        for (part, tensor) in
            parts
                .iter_mut()
                .zip([out.clip, out.sentence, out.video, out.paragraph])
        {
            // Detached: the head's variables track gradients, and a kept output would keep its
            // batch's whole forward graph alive (2 GB for 300 videos of the large synthetic set).
            part.push(
                tensor
                    .detach()
                    .to_device(&Device::Cpu)?
                    .to_dtype(DType::F32)?,
            );
        }
    }
    let [clip, sentence, video, paragraph] = parts.map(|p| Tensor::cat(&p, 0));
    Ok(SplitEmbeddings {
        clip: clip?,
        sentence: sentence?,
        video: video?,
        paragraph: paragraph?,
    })
}

/// Retrieval in the four directions COOT reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetrievalReport {
    pub clip_to_sentence: RetrievalMetrics,
    pub sentence_to_clip: RetrievalMetrics,
    pub video_to_paragraph: RetrievalMetrics,
    pub paragraph_to_video: RetrievalMetrics,
}

impl RetrievalReport {
    /// The model-selection score: mean of R@1, R@5 and R@10 over the four directions.
    pub fn score(&self) -> f64 {
        let directions = [
            self.clip_to_sentence,
            self.sentence_to_clip,
            self.video_to_paragraph,
            self.paragraph_to_video,
        ];
        directions.iter().map(|m| m.r1 + m.r5 + m.r10).sum::<f64>() / 12.0
    }

    pub fn directions(&self) -> [(&'static str, RetrievalMetrics); 4] {
        [
            ("clip → sentence", self.clip_to_sentence),
            ("sentence → clip", self.sentence_to_clip),
            ("video → paragraph", self.video_to_paragraph),
            ("paragraph → video", self.paragraph_to_video),
        ]
    }
}

fn unit(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.maximum(1e-24)?.sqrt()?;
    x.broadcast_div(&norm)
}

/// Rows of queries block by block against all candidates, so memory stays at `BLOCK × N`.
fn direction(queries: &Tensor, candidates: &Tensor) -> Result<RetrievalMetrics> {
    const BLOCK: usize = 1024;
    let queries = unit(queries)?;
    let candidates_t = unit(candidates)?.t()?.contiguous()?;
    let (n, cols) = (queries.dim(0)?, candidates.dim(0)?);
    let mut ranks = Vec::with_capacity(n);
    for start in (0..n).step_by(BLOCK) {
        let rows = BLOCK.min(n - start);
        let scores: Vec<f32> = queries
            .narrow(0, start, rows)?
            .matmul(&candidates_t)?
            .flatten_all()?
            .to_vec1()?;
        let block = block_ranks(&scores, rows, cols, start, TiePolicy::Pessimistic)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        ranks.extend(block);
    }
    Ok(metrics_from_ranks(&ranks))
}

pub fn retrieval(embeddings: &SplitEmbeddings) -> Result<RetrievalReport> {
    let e = embeddings;
    Ok(RetrievalReport {
        clip_to_sentence: direction(&e.clip, &e.sentence)?,
        sentence_to_clip: direction(&e.sentence, &e.clip)?,
        video_to_paragraph: direction(&e.video, &e.paragraph)?,
        paragraph_to_video: direction(&e.paragraph, &e.video)?,
    })
}
