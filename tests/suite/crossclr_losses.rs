//! Gradients, the baselines, signed features and error messages of the loss module.

use candle_core::{DType, Device, Tensor, Var};
use crossclr::crossclr::{
    ContrastiveLoss, CrossClr, CrossClrConfig, CrossClrQueue, InfoNce, LossError, MaxMargin, Mode,
    MultiPositive, PairBatch, QueueInit, XmlNet,
};

const B: usize = 12;

/// `sin(a·i·k + b) + c·cos(i/2 + k)` with i, k from 1: the same grid the pinned NumPy values used.
fn grid(rows: usize, cols: usize, a: f64, b: f64, c: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows * cols);
    for i in 1..=rows {
        for k in 1..=cols {
            let (i, k) = (i as f64, k as f64);
            out.push((a * i * k + b).sin() + c * (0.5 * i + k).cos());
        }
    }
    out
}

fn tensor(data: Vec<f64>, cols: usize) -> Tensor {
    let rows = data.len() / cols;
    Tensor::from_vec(data, (rows, cols), &Device::Cpu).unwrap()
}

fn batch() -> PairBatch {
    let v = grid(B, 8, 0.37, 0.1, 0.3);
    let noise = grid(B, 8, 0.23, 0.7, 0.2);
    let t: Vec<f64> = v.iter().zip(&noise).map(|(a, b)| 0.5 * a + b).collect();
    let xv: Vec<f64> = grid(B, 6, 0.41, 0.3, 0.1).iter().map(|x| x.abs()).collect();
    let xt: Vec<f64> = grid(B, 5, 0.19, 1.1, 0.4).iter().map(|x| x.abs()).collect();
    PairBatch::new(tensor(v, 8), tensor(t, 8), tensor(xv, 6), tensor(xt, 5)).unwrap()
}

fn value(loss: &mut dyn ContrastiveLoss, batch: &PairBatch) -> f64 {
    loss.forward(batch).unwrap().value().unwrap()
}

fn close(got: f64, expected: f64, tolerance: f64) {
    assert!(
        ((got - expected) / expected).abs() < tolerance,
        "got {got}, expected {expected}"
    );
}

#[test]
fn baselines_match_pinned_numpy_values() {
    let batch = batch();
    // Values from ../shared/reference/crossclr_ref.py (info_nce_symmetric, coot_max_margin,
    // crossclr_paper) and an independent NumPy X-MLNet, on the same grid inputs.
    close(
        value(&mut InfoNce::new(0.07).unwrap(), &batch),
        3.771956683599597,
        1e-12,
    );
    close(
        value(&mut MaxMargin::new(0.2).unwrap(), &batch),
        0.1622943680734083,
        1e-12,
    );
    close(
        value(&mut XmlNet::with_tau(0.07).unwrap(), &batch),
        2.7617726733910364,
        1e-12,
    );
    let paper = CrossClrConfig::default();
    close(
        value(&mut CrossClr::new(paper).unwrap(), &batch),
        2.184411965173969,
        1e-12,
    );
}

#[test]
fn xmlnet_reports_the_excluded_samples_and_reduces_to_infonce_without_exclusion() {
    let batch = batch();
    let report = XmlNet::with_tau(0.07).unwrap().forward(&batch).unwrap();
    let excluded = |mask: &[bool]| mask.iter().map(|&b| usize::from(b)).collect::<Vec<_>>();
    assert_eq!(
        excluded(&report.video.influential),
        [0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        excluded(&report.text.influential),
        [0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    );
    assert!(report.pruned_fraction() > 0.0);
    let never = value(&mut XmlNet::new(0.07, 2.0, 2.0).unwrap(), &batch);
    close(
        never,
        value(&mut InfoNce::new(0.07).unwrap(), &batch),
        1e-12,
    );
}

/// Central finite differences of the loss against the gradient from backprop, for every entry of
/// both embedding matrices from row `first_row` on, in f64.
fn gradient_check(
    make: &dyn Fn() -> Box<dyn ContrastiveLoss>,
    warmup: &[PairBatch],
    first_row: usize,
) {
    let base = batch();
    let video = Var::from_tensor(&base.video_emb).unwrap();
    let text = Var::from_tensor(&base.text_emb).unwrap();
    let prepared = || {
        let mut loss = make();
        for step in warmup {
            loss.forward(step).unwrap();
        }
        loss
    };
    let with = |v: Tensor, t: Tensor| {
        PairBatch::new(v, t, base.video_in.clone(), base.text_in.clone()).unwrap()
    };
    let report = prepared()
        .forward(&with(video.as_tensor().clone(), text.as_tensor().clone()))
        .unwrap();
    let grads = report.loss.backward().unwrap();
    let h = 1e-6;
    let mut worst: f64 = 0.0;
    for (var, is_video) in [(&video, true), (&text, false)] {
        let analytic: Vec<f64> = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let values: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        for (index, &g) in analytic.iter().enumerate().skip(first_row * 8) {
            let shifted = |delta: f64| {
                let mut data = values.clone();
                data[index] += delta;
                let moved = tensor(data, 8);
                let batch = if is_video {
                    with(moved, base.text_emb.clone())
                } else {
                    with(base.video_emb.clone(), moved)
                };
                prepared().forward(&batch).unwrap().value().unwrap()
            };
            let numeric = (shifted(h) - shifted(-h)) / (2.0 * h);
            let error = (numeric - g).abs() / g.abs().max(1e-3);
            worst = worst.max(error);
        }
    }
    assert!(worst < 1e-5, "worst relative gradient error {worst:e}");
}

#[test]
fn paper_mode_gradient_matches_finite_differences() {
    gradient_check(
        &|| Box::new(CrossClr::new(CrossClrConfig::default()).unwrap()),
        &[],
        0,
    );
}

#[test]
fn paper_mode_with_multiple_positives_gradient_matches_finite_differences() {
    let config = CrossClrConfig {
        gamma: 0.7,
        multi_positive: Some(MultiPositive { k: 2, beta: 0.15 }),
        ..Default::default()
    };
    gradient_check(&|| Box::new(CrossClr::new(config).unwrap()), &[], 0);
}

#[test]
fn paper_mode_queue_gradient_matches_finite_differences() {
    // Queued copies are constants (stop-gradient), but finite differences would move them too. So
    // earlier batches of 12, 12 and 5 rows leave the pointer at slot 29 of 30: the checked batch
    // enqueues only its row 0, and rows 1.. are compared exactly, against 29 older slots.
    let earlier = |rows: usize, scale: f64| {
        let b = batch();
        let take = |x: &Tensor| x.narrow(0, 0, rows).unwrap();
        PairBatch::new(
            (take(&b.video_emb) * scale).unwrap(),
            take(&b.text_emb),
            (take(&b.video_in) * 0.9).unwrap(),
            take(&b.text_in),
        )
        .unwrap()
    };
    let warmup = [earlier(12, -0.5), earlier(12, 0.7), earlier(5, 1.3)];
    let config = CrossClrConfig {
        gamma: 0.8,
        ..Default::default()
    };
    gradient_check(
        &|| Box::new(CrossClrQueue::new(config, 30, QueueInit::Empty).unwrap()),
        &warmup,
        1,
    );
}

#[test]
fn baseline_gradients_match_finite_differences() {
    gradient_check(&|| Box::new(InfoNce::new(0.07).unwrap()), &[], 0);
    gradient_check(&|| Box::new(XmlNet::with_tau(0.07).unwrap()), &[], 0);
}

#[test]
fn signed_input_features_give_a_finite_loss_in_paper_mode() {
    let b = batch();
    // Alternating signs make every connectivity negative: nothing influential, uniform weights.
    let signs: Vec<f64> = (0..B)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let signs = Tensor::from_vec(signs, (B, 1), &Device::Cpu).unwrap();
    let flip = |x: &Tensor| x.broadcast_mul(&signs).unwrap().affine(1.0, 0.0).unwrap();
    let signed = PairBatch::new(
        b.video_emb.clone(),
        b.text_emb.clone(),
        flip(&b.video_in),
        flip(&b.text_in).neg().unwrap(),
    )
    .unwrap();
    for dtype in [DType::F32, DType::F64] {
        let cast = |x: &Tensor| x.to_dtype(dtype).unwrap();
        let batch = PairBatch::new(
            cast(&signed.video_emb),
            cast(&signed.text_emb),
            cast(&signed.video_in),
            cast(&signed.text_in),
        )
        .unwrap();
        let report = CrossClr::new(CrossClrConfig::default())
            .unwrap()
            .forward(&batch)
            .unwrap();
        assert!(report.value().unwrap().is_finite());
        assert!(report.video.weights.iter().all(|w| w.is_finite()));
        let mut queue =
            CrossClrQueue::new(CrossClrConfig::default(), 16, QueueInit::Empty).unwrap();
        for _ in 0..3 {
            assert!(queue.forward(&batch).unwrap().value().unwrap().is_finite());
        }
    }
}

#[test]
fn queue_pointer_wraps_as_the_released_code_does() {
    let batch = batch();
    let mut queue = CrossClrQueue::new(CrossClrConfig::default(), 30, QueueInit::Empty).unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        queue.forward(&batch).unwrap();
        seen.push((queue.pointer(), queue.filled()));
    }
    // B = 12, K = 30: the third batch writes 6 rows and drops 6; the pointer moves by 12 anyway.
    assert_eq!(seen, [(12, 12), (24, 24), (6, 30), (18, 30)]);
}

#[test]
fn a_restored_queue_continues_exactly_where_the_saved_one_was() {
    let batch = batch();
    let config = CrossClrConfig::default();
    let mut original = CrossClrQueue::new(config, 30, QueueInit::Empty).unwrap();
    original.forward(&batch).unwrap();
    original.forward(&batch).unwrap();
    let mut restored = CrossClrQueue::new(config, 30, QueueInit::Empty).unwrap();
    restored.restore(original.state().unwrap()).unwrap();
    let a = original.forward(&batch).unwrap().value().unwrap();
    let b = restored.forward(&batch).unwrap().value().unwrap();
    assert_eq!(a, b);
    assert_eq!(
        (original.pointer(), original.filled()),
        (restored.pointer(), restored.filled())
    );
    let mut short = CrossClrQueue::new(config, 20, QueueInit::Empty).unwrap();
    let err = short
        .restore(original.state().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("20 rows"), "{err}");
}

#[test]
fn shape_errors_name_the_tensor_and_shapes() {
    let b = batch();
    let short = b.text_emb.narrow(0, 0, B - 1).unwrap();
    let err = PairBatch::new(
        b.video_emb.clone(),
        short,
        b.video_in.clone(),
        b.text_in.clone(),
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, LossError::BatchMismatch { .. }));
    assert!(
        message.contains("text_emb") && message.contains("[11, 8]") && message.contains("[12, 8]"),
        "{message}"
    );

    let cube = b.video_in.unsqueeze(0).unwrap();
    let err = PairBatch::new(
        b.video_emb.clone(),
        b.text_emb.clone(),
        cube,
        b.text_in.clone(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("video_in") && err.contains("[1, 12, 6]"),
        "{err}"
    );

    let mut queue = CrossClrQueue::new(CrossClrConfig::default(), 30, QueueInit::Empty).unwrap();
    queue.forward(&b).unwrap();
    let wider = PairBatch::new(
        b.video_emb.clone(),
        b.text_emb.clone(),
        Tensor::cat(&[&b.video_in, &b.video_in], 1).unwrap(),
        b.text_in.clone(),
    )
    .unwrap();
    let err = queue.forward(&wider).unwrap_err().to_string();
    assert!(
        err.contains("video_in") && err.contains("6 columns"),
        "{err}"
    );

    let mut nan = b.video_in.to_vec2::<f64>().unwrap();
    nan[3][2] = f64::NAN;
    let nan = Tensor::new(nan, &Device::Cpu).unwrap();
    let bad = PairBatch::new(
        b.video_emb.clone(),
        b.text_emb.clone(),
        nan,
        b.text_in.clone(),
    )
    .unwrap();
    let err = CrossClr::new(CrossClrConfig::default())
        .unwrap()
        .forward(&bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("video_in") && err.contains("row 3, column 2"),
        "{err}"
    );
}

/// CrossCLR, plain or with a queue of 30, in `mode` on a batch of `v`, `t` (8 wide) and inputs
/// `xv`, `xt` (6 wide).
fn crossclr_on(
    mode: Mode,
    queue: bool,
    rows: [&[f64]; 4],
) -> Result<crossclr::crossclr::LossReport, LossError> {
    let [v, t, xv, xt] = rows.map(<[f64]>::to_vec);
    let batch = PairBatch::new(tensor(v, 8), tensor(t, 8), tensor(xv, 6), tensor(xt, 6))?;
    let config = CrossClrConfig {
        mode,
        ..CrossClrConfig::default()
    };
    if queue {
        CrossClrQueue::new(config, 30, QueueInit::for_mode(mode, 7))?.forward(&batch)
    } else {
        CrossClr::new(config)?.forward(&batch)
    }
}

#[test]
fn degenerate_batches_have_defined_results() {
    let v = grid(B, 8, 0.37, 0.1, 0.3);
    let t = grid(B, 8, 0.23, 0.7, 0.2);
    let input = |a| -> Vec<f64> { grid(B, 6, a, 0.3, 0.1).iter().map(|x| x.abs()).collect() };
    let (xv, xt) = (input(0.41), input(0.19));
    let uniform = vec![1.0 / B as f64; B];
    for queue in [false, true] {
        let paper = |rows| crossclr_on(Mode::Paper, queue, rows).unwrap();
        // Zero inputs: every connectivity is 0 (its maximum too): no ranking, so nothing is
        // influential or pruned and the weights are uniform.
        let zeros = vec![0.0; B * 6];
        let report = paper([&v, &t, &zeros, &zeros]);
        let loss = report.value().unwrap();
        assert!(loss.is_finite() && loss > 0.0, "{loss}");
        assert_eq!(report.video.weights, uniform);
        assert!(!report.video.influential.iter().any(|&i| i));
        assert_eq!(report.pruned_fraction(), 0.0);

        // Constant inputs, and duplicated samples: equal connectivities, each its maximum, so
        // every sample is influential and every negative pruned; the positive alone is left.
        let constant = vec![0.5; B * 6];
        let dup = |rows: &[f64], width: usize| rows[..width].repeat(B);
        let (dv, dt, dxv, dxt) = (dup(&v, 8), dup(&t, 8), dup(&xv, 6), dup(&xt, 6));
        for rows in [
            [&v[..], &t, &constant, &constant],
            [&dv[..], &dt, &dxv, &dxt],
        ] {
            let report = paper(rows);
            assert!(report.video.influential.iter().all(|&i| i));
            assert_eq!(report.pruned_fraction(), 1.0);
            assert!(
                report.value().unwrap().abs() < 1e-9,
                "{}",
                report.value().unwrap()
            );
            assert_eq!(report.video.weights, uniform);
        }

        // B = 1: no other sample, connectivity 0, weight 1, nothing to contrast: loss 0.
        let report = paper([&v[..8], &t[..8], &xv[..6], &xt[..6]]);
        assert_eq!(report.video.weights, [1.0]);
        assert!(report.value().unwrap().abs() < 1e-9);

        // Zero embeddings normalise to zero (x / max(‖x‖, 1e-12)): every score 0, a finite loss.
        let flat = vec![0.0; B * 8];
        assert!(paper([&flat, &flat, &xv, &xt]).value().unwrap().is_finite());

        // A row of NaN, in an embedding or an input, in either mode: an error naming it.
        for mode in [Mode::Paper, Mode::Official] {
            let mut nan_v = v.clone();
            nan_v[3 * 8..4 * 8].fill(f64::NAN);
            let mut nan_x = xv.clone();
            nan_x[5 * 6..6 * 6].fill(f64::NAN);
            for (rows, name, row) in [
                ([&nan_v[..], &t, &xv, &xt], "video_emb", 3),
                ([&v[..], &nan_v, &xv, &xt], "text_emb", 3),
                ([&v[..], &t, &nan_x, &xt], "video_in", 5),
            ] {
                let error = crossclr_on(mode, queue, rows).unwrap_err();
                let message = error.to_string();
                assert!(matches!(error, LossError::NonFinite { .. }), "{message}");
                assert!(
                    message.contains(&format!("`{name}` holds NaN at row {row}, column 0")),
                    "{message}"
                );
            }
        }
    }
    // A queue that refused a NaN batch kept nothing of it: the next batch is as on a fresh one.
    let config = CrossClrConfig::default();
    let good = PairBatch::new(
        tensor(v.clone(), 8),
        tensor(t.clone(), 8),
        tensor(xv.clone(), 6),
        tensor(xt.clone(), 6),
    )
    .unwrap();
    let mut nan_v = v.clone();
    nan_v[0] = f64::INFINITY;
    let bad = PairBatch::new(
        tensor(nan_v, 8),
        tensor(t.clone(), 8),
        tensor(xv.clone(), 6),
        tensor(xt.clone(), 6),
    )
    .unwrap();
    let mut refused = CrossClrQueue::new(config, 30, QueueInit::Empty).unwrap();
    assert!(refused.forward(&bad).is_err());
    let mut fresh = CrossClrQueue::new(config, 30, QueueInit::Empty).unwrap();
    assert_eq!(value(&mut refused, &good), value(&mut fresh, &good));
    // The baselines refuse it too.
    for loss in [
        &mut InfoNce::new(0.07).unwrap() as &mut dyn ContrastiveLoss,
        &mut MaxMargin::new(0.2).unwrap(),
        &mut XmlNet::with_tau(0.07).unwrap(),
    ] {
        let message = loss.forward(&bad).unwrap_err().to_string();
        assert!(
            message.contains("`video_emb` holds inf at row 0, column 0"),
            "{message}"
        );
    }

    // Official mode computes the weights as the released code writes them: with Σc = 0 (zero
    // inputs, or B = 1) they are 0/0 = NaN, and so is the loss; `crossclr loss` says why.
    let zeros = vec![0.0; B * 6];
    for rows in [
        [&v[..], &t, &zeros, &zeros],
        [&v[..8], &t[..8], &xv[..6], &xt[..6]],
    ] {
        let report = crossclr_on(Mode::Official, false, rows).unwrap();
        assert!(report.video.weights.iter().all(|w| w.is_nan()));
        assert!(report.value().unwrap().is_nan());
    }
    // Constant inputs and duplicates are finite there.
    let constant = vec![0.5; B * 6];
    let report = crossclr_on(Mode::Official, false, [&v, &t, &constant, &constant]).unwrap();
    assert!(report.value().unwrap().is_finite());
}
