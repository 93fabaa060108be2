//! CrossCLR without a queue: the intra-modal negatives of an anchor are the other samples of its
//! own modality in the batch.

use super::assemble::{Banks, SideInputs, crossclr_report, l2_normalise};
use super::connectivity::{batch_connectivity, nearest_by_input};
use super::{
    ContrastiveLoss, CrossClrConfig, HostMatrix, IntraSource, LossError, LossReport, PairBatch,
};

/// CrossCLR on one batch (`CrossCLR_noq` in the released code).
#[derive(Debug, Clone)]
pub struct CrossClr {
    pub config: CrossClrConfig,
}

impl CrossClr {
    pub fn new(config: CrossClrConfig) -> Result<Self, LossError> {
        config.validate()?;
        Ok(Self { config })
    }
}

pub(crate) fn extra_positives(
    config: &CrossClrConfig,
    features: &HostMatrix,
) -> Option<Vec<Vec<usize>>> {
    config
        .multi_positive
        .map(|multi| nearest_by_input(features, multi.k, config.mode))
}

impl ContrastiveLoss for CrossClr {
    fn name(&self) -> String {
        format!("crossclr-{}", self.config.mode)
    }

    fn forward(&mut self, batch: &PairBatch) -> Result<LossReport, LossError> {
        batch.validate()?;
        batch.check_embeddings()?;
        let video_in = HostMatrix::from_tensor(&batch.video_in, "video_in")?;
        let text_in = HostMatrix::from_tensor(&batch.text_in, "text_in")?;
        let video = l2_normalise(&batch.video_emb)?;
        let text = l2_normalise(&batch.text_emb)?;
        let side = |features: &HostMatrix| {
            let connectivity = batch_connectivity(features);
            SideInputs {
                intra_connectivity: connectivity.clone(),
                connectivity,
                own_intra: (0..features.rows()).map(Some).collect(),
                intra_source: IntraSource::Batch,
                extra_positives: extra_positives(&self.config, features),
            }
        };
        crossclr_report(
            &self.config,
            &video,
            &text,
            Banks::Batch,
            side(&video_in),
            side(&text_in),
        )
    }
}
