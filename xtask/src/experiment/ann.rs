//! The approximate-search phase: recall@k and speed of each configured index setting against
//! the exact search of `imgclass-linalg`, on a stratified sample of the training images
//! (indexed) and evenly spaced test images (queries; only their neighbours are measured, no
//! label is read, so this is no use of the test set for model choice).
//!
//! ```text
//! recall@k = |found_k ∩ exact_k| / k   (averaged over queries)
//! speedup  = exact search seconds / index search seconds
//! ```

use std::time::Instant;

use imgclass_core::Subset;
use imgclass_knn::ann::{self, AnnIndex};
use serde::Serialize;

use super::config::AnnConfig;
use super::knn::{kneighbors, metric_label};
use super::progress::Progress;

/// One index setting's measurement.
#[derive(Debug, Clone, Serialize)]
pub struct AnnPoint {
    /// The setting (`hnsw:m=16,efc=200,ef=64`).
    pub spec: String,
    /// The index kind (`hnsw`, ...).
    pub kind: String,
    /// PCA components ahead of it (`null` = raw pixels).
    pub pca: Option<usize>,
    /// Mean recall@k against exact search (`null` on failure).
    pub recall: Option<f64>,
    /// Why it failed to build or search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Build seconds.
    pub build_seconds: f64,
    /// Search seconds for all queries.
    pub search_seconds: f64,
    /// Queries per second.
    pub queries_per_second: f64,
    /// Exact search seconds / search seconds.
    pub speedup_seconds_ratio: f64,
}

/// What the phase measured.
#[derive(Debug, Serialize)]
pub struct AnnResult {
    /// Indexed training rows.
    pub n_train: usize,
    /// Queries.
    pub n_queries: usize,
    /// Neighbours per query.
    pub k: usize,
    /// Distance.
    pub metric: String,
    /// Exact search seconds for all queries (the baseline).
    pub exact_seconds: f64,
    /// Exact queries per second.
    pub exact_queries_per_second: f64,
    /// One entry per setting, in config order.
    pub points: Vec<AnnPoint>,
}

/// Number of progress steps of [`run`].
pub fn steps(cfg: &AnnConfig) -> u64 {
    cfg.indices.len() as u64 + 1
}

/// Runs the phase.
pub fn run(
    train: &Subset,
    test: &Subset,
    cfg: &AnnConfig,
    seed: u64,
    progress: &mut Progress,
) -> anyhow::Result<AnnResult> {
    let metric = cfg.metric;
    anyhow::ensure!(
        metric != imgclass_linalg::Metric::Cosine,
        "ann.metric = \"cosine\" needs f32 features, and the [ann] phase indexes raw pixels: use l1 or l2"
    );
    let n = cfg.n_train.min(train.len());
    let positions = if n < train.len() {
        imgclass_data::split::subsample(&train.labels(), train.n_classes(), n, seed)?
    } else {
        (0..train.len()).collect()
    };
    let base = train.select(&positions)?;
    let nq = cfg.n_queries.min(test.len());
    let queries = test.select(&(0..nq).map(|i| i * test.len() / nq).collect::<Vec<_>>())?;
    let k = cfg.k.min(base.len());
    let t = Instant::now();
    let exact = kneighbors(&base, &queries, k, metric)?;
    let exact_seconds = t.elapsed().as_secs_f64();
    progress.step(&format!("exact {} search", metric_label(metric)));
    let pca = (cfg.pca > 0 && cfg.pca < base.dim()).then_some(cfg.pca);
    let mut points = Vec::new();
    for spec in &cfg.indices {
        let index = AnnIndex::parse(spec)?;
        let pca = if index == AnnIndex::Exact { None } else { pca };
        let t = Instant::now();
        let built = index.build(&base, metric, pca, seed);
        let build_seconds = t.elapsed().as_secs_f64();
        let (recall, failure, search_seconds) = match built {
            Ok(b) => {
                let t = Instant::now();
                match b.search(&queries, k) {
                    Ok(found) => {
                        let s = t.elapsed().as_secs_f64();
                        (Some(ann::recall_at(&found.indices, &exact.indices, k)), None, s)
                    }
                    Err(e) => (None, Some(e.to_string()), 0.0),
                }
            }
            Err(e) => (None, Some(e.to_string()), 0.0),
        };
        progress.step(&format!(
            "{spec}: recall {}",
            recall.map_or("failed".into(), |r| format!("{r:.3}"))
        ));
        let qps = if search_seconds > 0.0 { nq as f64 / search_seconds } else { 0.0 };
        points.push(AnnPoint {
            spec: index.spec(),
            kind: index.name().into(),
            pca,
            recall,
            failure,
            build_seconds,
            search_seconds,
            queries_per_second: qps,
            speedup_seconds_ratio: if search_seconds > 0.0 {
                exact_seconds / search_seconds
            } else {
                0.0
            },
        });
    }
    Ok(AnnResult {
        n_train: base.len(),
        n_queries: nq,
        k,
        metric: metric_label(metric).into(),
        exact_seconds,
        exact_queries_per_second: nq as f64 / exact_seconds.max(1e-9),
        points,
    })
}
