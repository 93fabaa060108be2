use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::*;
use crate::analysis::quality::{knn_label_accuracy, neighbour_preservation};

/// `n` points in `clusters` Gaussian clusters of unit spread around centres spread 5 apart
/// per axis, and each point's cluster.
fn clusters(n: usize, dims: usize, clusters: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0f32, 1.0).unwrap();
    let centres: Vec<f32> = (0..clusters * dims)
        .map(|_| normal.sample(&mut rng) * 5.0)
        .collect();
    let labels: Vec<u32> = (0..n).map(|i| (i % clusters) as u32).collect();
    let values = labels
        .iter()
        .flat_map(|&c| {
            let centre = &centres[c as usize * dims..(c as usize + 1) * dims];
            centre
                .iter()
                .map(|m| m + normal.sample(&mut rng))
                .collect::<Vec<_>>()
        })
        .collect();
    (values, labels)
}

fn config(method: Method, iterations: usize) -> TsneConfig {
    TsneConfig {
        method,
        iterations,
        early_iterations: iterations.min(250) / 2,
        perplexity: 20.0,
        seed: 7,
        ..TsneConfig::default()
    }
}

fn layout(values: &[f32], dims: usize, config: TsneConfig) -> Snapshot {
    let data = Matrix::new(values, values.len() / dims, dims).unwrap();
    let mut tsne = Tsne::new(data, config).unwrap();
    let iterations = tsne.config().iterations;
    tsne.step(iterations)
}

fn bytes(positions: &[f32]) -> Vec<u8> {
    positions.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn with_threads<T: Send>(threads: usize, work: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(work)
}

#[test]
fn the_same_input_and_seed_give_the_same_bytes() {
    let (values, _) = clusters(400, 10, 4, 1);
    let a = layout(&values, 10, config(Method::Fft, 120));
    let b = layout(&values, 10, config(Method::Fft, 120));
    assert_eq!(bytes(&a.positions), bytes(&b.positions));
    assert_eq!(a.kl_divergence, b.kl_divergence);
    let other_seed = layout(
        &values,
        10,
        TsneConfig {
            seed: 8,
            ..config(Method::Fft, 120)
        },
    );
    assert_ne!(bytes(&a.positions), bytes(&other_seed.positions));
}

#[test]
fn one_and_two_threads_give_the_same_bytes_for_every_method() {
    let (values, _) = clusters(600, 12, 5, 2);
    for method in [Method::Fft, Method::BarnesHut, Method::Exact] {
        // The approximate kNN search has parallel parts of its own; use it here although N is
        // small enough for the exact one.
        let config = TsneConfig {
            knn: KnnMethod::Approximate,
            ..config(method, 60)
        };
        let one = with_threads(1, || layout(&values, 12, config.clone()));
        let two = with_threads(2, || layout(&values, 12, config.clone()));
        assert_eq!(bytes(&one.positions), bytes(&two.positions), "{method:?}");
        assert_eq!(one.kl_divergence, two.kl_divergence, "{method:?}");
    }
}

#[test]
fn the_interpolated_repulsion_agrees_with_the_exact_one_and_converges_with_the_grid() {
    // Layouts at two scales: the start (tiny spread: the minimum grid is fine for it) and a
    // spread-out one like a converged map, where the default grid (one box per unit, as
    // openTSNE's and FIt-SNE's) is off by a few percent and a finer one converges as h³.
    let n = 500;
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    for (spread, boxes_per_unit, z_tolerance, tolerance) in [
        (1e-4, 1.0, 1e-6, 1e-5),
        (8.0, 1.0, 1e-2, 5e-2),
        (8.0, 2.0, 1e-3, 5e-3),
        (8.0, 4.0, 1e-4, 1e-3),
    ] {
        let y: Vec<f64> = init::random(n, 3)
            .iter()
            .map(|v| v / INITIAL_STD * spread)
            .collect();
        let mut exact = vec![0.0; 2 * n];
        let z_exact = gradient::exact_repulsion(&y, &mut exact);
        let mut fft = fft::FftRepulsion::new();
        fft.boxes_per_unit = boxes_per_unit;
        let mut interpolated = vec![0.0; 2 * n];
        let z_fft = fft.repulsion(&y, &mut interpolated);
        let diff: Vec<f64> = interpolated
            .iter()
            .zip(&exact)
            .map(|(a, b)| a - b)
            .collect();
        let error = norm(&diff) / norm(&exact);
        let case = format!("spread {spread}, {boxes_per_unit} boxes per unit");
        assert!(
            (z_fft - z_exact).abs() < z_tolerance * z_exact,
            "{case}: Z {z_fft} vs {z_exact}"
        );
        assert!(error < tolerance, "{case}: forces off by {error}");
    }
}

#[test]
fn barnes_hut_repulsion_agrees_with_the_exact_one() {
    let n = 500;
    let y: Vec<f64> = init::random(n, 4)
        .iter()
        .map(|v| v / INITIAL_STD * 8.0)
        .collect();
    let mut exact = vec![0.0; 2 * n];
    let z_exact = gradient::exact_repulsion(&y, &mut exact);
    let mut barnes_hut = vec![0.0; 2 * n];
    let z_bh = bh::repulsion(&y, &mut barnes_hut, 0.5);
    let diff: f64 = barnes_hut
        .iter()
        .zip(&exact)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>();
    let size: f64 = exact.iter().map(|a| a * a).sum::<f64>();
    assert!(
        (z_bh - z_exact).abs() < 1e-2 * z_exact,
        "Z {z_bh} vs {z_exact}"
    );
    assert!(
        (diff / size).sqrt() < 3e-2,
        "forces off by {}",
        (diff / size).sqrt()
    );
}

#[test]
fn the_full_gradients_of_the_fft_and_exact_methods_agree() {
    let (values, _) = clusters(300, 8, 3, 4);
    let data = Matrix::new(&values, 300, 8).unwrap();
    let mut fft = Tsne::new(data, config(Method::Fft, 100)).unwrap();
    fft.step(100);
    let mut exact = Tsne::from_parts(
        config(Method::Exact, 100),
        fft.affinities().clone(),
        fft.y.clone(),
    );
    exact.iteration = 100;
    // A finer grid than the default, so that the comparison is tight (the default grid's error
    // is bounded in the test above).
    fft.fft.boxes_per_unit = 4.0;
    let z_fft = fft.repulsion();
    let kl_fft = gradient::combine(&fft.p, &fft.y, &fft.rep, z_fft, 1.0, &mut fft.grad, true);
    let z_exact = exact.repulsion();
    let kl_exact = gradient::combine(
        &exact.p,
        &exact.y,
        &exact.rep,
        z_exact,
        1.0,
        &mut exact.grad,
        true,
    );
    let diff: f64 = fft
        .grad
        .iter()
        .zip(&exact.grad)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt();
    let size: f64 = exact.grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    assert!(diff < 2e-3 * size, "gradient differs by {diff} of {size}");
    let (kl_fft, kl_exact) = (kl_fft.unwrap(), kl_exact.unwrap());
    assert!(
        (kl_fft - kl_exact).abs() < 1e-3 * kl_exact,
        "KL {kl_fft} vs {kl_exact}"
    );
}

#[test]
fn clusters_stay_together_in_the_layout() {
    let (values, labels) = clusters(600, 20, 6, 5);
    for method in [Method::Fft, Method::BarnesHut] {
        let snapshot = layout(
            &values,
            20,
            TsneConfig {
                seed: 3,
                ..config(method, 300)
            },
        );
        assert!(snapshot.positions.iter().all(|v| v.is_finite()));
        let accuracy = knn_label_accuracy(&snapshot.positions, &labels, 10);
        assert!(
            accuracy > 0.97,
            "{method:?}: 10-NN label accuracy {accuracy}"
        );
    }
}

#[test]
fn the_kl_divergence_falls_as_the_layout_converges() {
    let (values, _) = clusters(300, 10, 5, 6);
    let data = Matrix::new(&values, 300, 10).unwrap();
    let mut tsne = Tsne::new(data, config(Method::Fft, 300)).unwrap();
    assert_eq!(tsne.snapshot().kl_divergence, None);
    let early = tsne.step(130);
    assert_eq!(early.iteration, 130);
    let late = tsne.step(170);
    assert!(tsne.is_done());
    assert!(
        late.kl_divergence.unwrap() < early.kl_divergence.unwrap(),
        "{:?} then {:?}",
        early.kl_divergence,
        late.kl_divergence
    );
}

#[test]
fn a_warm_start_from_a_finished_layout_barely_moves_it() {
    let (values, _) = clusters(300, 10, 5, 7);
    let finished = layout(&values, 10, config(Method::Fft, 300));
    let keys: Vec<String> = (0..300).map(|i| format!("clip{i}")).collect();
    // The earlier map lacks the last ten clips: they are placed at their nearest neighbours.
    let data = Matrix::new(&values, 300, 10).unwrap();
    let start = warm_start(&keys, data, &keys[..290], &finished.positions[..580]).unwrap();
    assert_eq!((start.matched, start.placed), (290, 10));
    let mut tsne = Tsne::new(data, config(Method::Fft, 50).warm(start.positions.clone())).unwrap();
    let after = tsne.step(50);
    let spread = finished
        .positions
        .iter()
        .map(|v| v.abs())
        .fold(0f32, f32::max);
    let moved = after
        .positions
        .chunks(2)
        .zip(start.positions.chunks(2))
        .map(|(a, b)| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt())
        .sum::<f32>()
        / 300.0;
    assert!(
        moved < 0.05 * spread,
        "mean move {moved} in a layout of radius {spread}"
    );
}

#[test]
fn too_few_points_are_refused() {
    let values = [0f32, 1., 2.];
    let error = Tsne::new(Matrix::new(&values, 3, 1).unwrap(), TsneConfig::default()).unwrap_err();
    assert!(matches!(error, TsneError::TooFewPoints { n: 3 }), "{error}");
}

#[test]
fn a_perplexity_too_large_for_the_points_is_refused_with_the_largest_allowed() {
    let (values, _) = clusters(50, 3, 2, 8);
    let data = Matrix::new(&values, 50, 3).unwrap();
    let error = Tsne::new(data, TsneConfig::default()).unwrap_err();
    match error {
        TsneError::PerplexityTooLarge { n: 50, max, .. } => {
            assert!((max - 49.0 / 3.0).abs() < 1e-12)
        }
        other => panic!("{other}"),
    }
    let fits = TsneConfig {
        perplexity: 49.0 / 3.0,
        iterations: 20,
        ..TsneConfig::default()
    };
    assert!(Tsne::new(data, fits).is_ok());
}

#[test]
fn a_non_finite_value_is_refused_naming_its_row() {
    let (mut values, _) = clusters(100, 4, 2, 9);
    values[37 * 4 + 2] = f32::NAN;
    let data = Matrix::new(&values, 100, 4).unwrap();
    let error = Tsne::new(data, config(Method::Fft, 10)).unwrap_err();
    assert!(
        matches!(
            error,
            TsneError::NonFinite {
                row: 37,
                column: 2,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("row 37"), "{error}");
    values[37 * 4 + 2] = 0.0;
    values[5] = f32::NEG_INFINITY;
    let data = Matrix::new(&values, 100, 4).unwrap();
    let error = run(
        data,
        config(Method::Linfa, 10),
        5,
        None,
        &CancelToken::new(),
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            TsneError::NonFinite {
                row: 1,
                column: 1,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn all_identical_points_are_refused() {
    let values = vec![0.25f32; 60 * 3];
    let error = Tsne::new(
        Matrix::new(&values, 60, 3).unwrap(),
        config(Method::Fft, 10),
    )
    .unwrap_err();
    assert!(
        matches!(error, TsneError::AllIdentical { n: 60 }),
        "{error}"
    );
}

#[test]
fn duplicate_points_are_laid_out_next_to_each_other() {
    let (mut values, _) = clusters(300, 6, 3, 10);
    // Rows 0..30 are copies of row 100 (cluster 1): same affinities, finite layout, together.
    let copy: Vec<f32> = values[100 * 6..101 * 6].to_vec();
    for i in 0..30 {
        values[i * 6..(i + 1) * 6].copy_from_slice(&copy);
    }
    for method in [Method::Fft, Method::BarnesHut, Method::Exact] {
        let snapshot = layout(&values, 6, config(method, 200));
        assert!(
            snapshot.positions.iter().all(|v| v.is_finite()),
            "{method:?}"
        );
        assert!(snapshot.kl_divergence.unwrap().is_finite(), "{method:?}");
        // Together: each copy's ten nearest points in the layout are copies too.
        let planar = crate::analysis::knn::planar(&snapshot.positions, 10);
        let copies: Vec<usize> = (0..30).chain([100]).collect();
        for &i in &copies {
            let near = planar.neighbours(i);
            let of_copies = near
                .iter()
                .filter(|&&j| copies.contains(&(j as usize)))
                .count();
            assert_eq!(
                of_copies, 10,
                "{method:?}: copy {i} has neighbours {near:?}"
            );
        }
    }
}

#[test]
fn an_initial_layout_of_the_wrong_size_is_refused() {
    let (values, _) = clusters(40, 3, 2, 11);
    let data = Matrix::new(&values, 40, 3).unwrap();
    let config = TsneConfig {
        perplexity: 5.0,
        ..TsneConfig::default()
    }
    .warm(vec![0.0; 78]);
    let error = Tsne::new(data, config).unwrap_err();
    assert!(
        matches!(
            error,
            TsneError::InitShape {
                expected: 40,
                got: 39
            }
        ),
        "{error}"
    );
}

#[test]
fn bad_settings_are_refused_before_any_work() {
    let (values, _) = clusters(40, 3, 2, 12);
    let data = Matrix::new(&values, 40, 3).unwrap();
    for config in [
        TsneConfig {
            perplexity: f64::NAN,
            ..TsneConfig::default()
        },
        TsneConfig {
            perplexity: 5.0,
            learning_rate: LearningRate::Fixed(-1.0),
            ..TsneConfig::default()
        },
        TsneConfig {
            perplexity: 5.0,
            final_momentum: 1.0,
            ..TsneConfig::default()
        },
    ] {
        assert!(Tsne::new(data, config).is_err());
    }
}

#[test]
fn the_job_sends_snapshots_and_stops_when_cancelled() {
    let (values, _) = clusters(400, 8, 4, 13);
    let job = TsneJob::spawn(values.clone(), 400, 8, config(Method::Fft, 300), 10).unwrap();
    let first = job.progress.recv().unwrap();
    assert!(first.iteration >= 10 && first.iteration.is_multiple_of(10));
    job.cancel.cancel();
    let outcome = job.join().unwrap();
    let TsneOutcome::Cancelled(last) = outcome else {
        panic!("the job ran to the end despite the cancel");
    };
    assert!(last.iteration < 300);

    let finished = TsneJob::spawn(values, 400, 8, config(Method::Fft, 40), 10)
        .unwrap()
        .join()
        .unwrap();
    assert!(matches!(finished, TsneOutcome::Finished(ref s) if s.iteration == 40));
}

#[test]
fn linfa_tsne_agrees_on_a_small_clustered_set() {
    let (values, labels) = clusters(200, 10, 3, 14);
    let data = Matrix::new(&values, 200, 10).unwrap();
    let config = TsneConfig {
        perplexity: 20.0,
        iterations: 500,
        ..TsneConfig::default()
    };
    let linfa = linfa_layout(data, &config).unwrap();
    let ours = layout(&values, 10, config);
    let input = knn::exact(data, 10);
    let (ours_kept, linfa_kept) = (
        neighbour_preservation(&input, &ours.positions, 10),
        neighbour_preservation(&input, &linfa, 10),
    );
    assert!(knn_label_accuracy(&linfa, &labels, 10) > 0.95);
    assert!(knn_label_accuracy(&ours.positions, &labels, 10) > 0.95);
    assert!(
        ours_kept > linfa_kept - 0.05,
        "10-NN preservation: ours {ours_kept}, linfa {linfa_kept}"
    );
}
