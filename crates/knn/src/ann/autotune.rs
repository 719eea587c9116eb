//! Automatic choice of index kind and parameters for a target recall@1 (FLANN's idea):
//! build candidate structures on a sample of the training rows, sweep each one's search
//! parameter until the target is met on tuning queries, and pick the cheapest by
//!
//! ```text
//! cost = (t_search + w_build · t_build) / min over qualifying trials (t_search + w_build · t_build)
//!        + w_memory · memory / sample_bytes
//! ```
//!
//! among the trials that reach the target (or the most accurate one when none does). The
//! chosen setting is then measured on held-out queries that played no part in the choice.

use std::time::Instant;

use imgclass_core::Subset;
use imgclass_core::rng::SplitMix64;

use super::{AnnError, AnnIndex, BuiltIndex, Metric, recall_at};

/// Autotuning settings; [`Autotune::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Autotune {
    /// Recall@1 to reach (default 0.9).
    pub target_recall: f64,
    /// Weight of build time against search time (default 0.01: a build is paid once).
    pub build_weight: f64,
    /// Weight of index memory relative to the sample's bytes (default 0).
    pub memory_weight: f64,
    /// Training rows the candidates are built on (default 5,000).
    pub sample: usize,
    /// Tuning queries, and again as many held-out queries (default 200).
    pub queries: usize,
    /// PCA components ahead of the indices (default none).
    pub pca: Option<usize>,
    /// Metric (default L2).
    pub metric: Metric,
    /// Seed for the sample split and every build (default 0).
    pub seed: u64,
    /// Candidate structures, each with its search parameter swept upward (default
    /// [`Autotune::default_candidates`]).
    pub candidates: Vec<(AnnIndex, Vec<usize>)>,
}

/// One (structure, search parameter) setting that autotune measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// Index and parameters.
    pub index: AnnIndex,
    /// Build seconds of the structure on the sample.
    pub build_secs: f64,
    /// Search seconds per tuning query.
    pub search_secs_per_query: f64,
    /// Bytes held by the index.
    pub memory_bytes: usize,
    /// Recall@1 on the tuning queries.
    pub recall_at_1: f64,
    /// Cost by the formula above (infinite for trials below the target).
    pub cost: f64,
}

/// What autotune tried and chose.
#[derive(Debug, Clone, PartialEq)]
pub struct AutotuneReport {
    /// Every setting measured, in the order tried.
    pub trials: Vec<Trial>,
    /// The chosen setting.
    pub chosen: AnnIndex,
    /// Whether the chosen setting reached the target on the tuning queries.
    pub met_target: bool,
    /// Recall@1 of the chosen setting on held-out queries.
    pub held_out_recall_at_1: f64,
}

impl Default for Autotune {
    fn default() -> Self {
        Self::new(0.9)
    }
}

impl Autotune {
    /// Defaults (see the fields) with the given target recall@1.
    pub fn new(target_recall: f64) -> Self {
        Self {
            target_recall,
            build_weight: 0.01,
            memory_weight: 0.0,
            sample: 5_000,
            queries: 200,
            pca: None,
            metric: Metric::L2,
            seed: 0,
            candidates: Self::default_candidates(),
        }
    }

    /// The default candidates: kd-tree (eps 4, 2, 1, 0.5, 0 as 400..0 hundredths), kd-forest of
    /// 4 and 8 trees, k-means trees of branching 16 and 32 (checks 16..4096), HNSW with m 8
    /// and 16 (ef 8..512).
    pub fn default_candidates() -> Vec<(AnnIndex, Vec<usize>)> {
        let checks = vec![16, 32, 64, 128, 256, 512, 1024, 2048, 4096];
        let efs = vec![8, 16, 32, 64, 128, 256, 512];
        vec![
            (AnnIndex::KdTree { leaf_size: 8, eps: 0.0 }, vec![400, 200, 100, 50, 0]),
            (AnnIndex::KdForest { trees: 4, checks: 0 }, checks.clone()),
            (AnnIndex::KdForest { trees: 8, checks: 0 }, checks.clone()),
            (AnnIndex::KMeansTree { branching: 16, iterations: 5, checks: 0 }, checks.clone()),
            (AnnIndex::KMeansTree { branching: 32, iterations: 5, checks: 0 }, checks),
            (AnnIndex::Hnsw { m: 8, ef_construction: 100, ef_search: 0 }, efs.clone()),
            (AnnIndex::Hnsw { m: 16, ef_construction: 100, ef_search: 0 }, efs),
        ]
    }

    /// Runs the search on `train` (sample, tuning and held-out queries are disjoint seeded
    /// draws from its rows). Errors when `train` has fewer than `sample + 2 * queries` rows.
    pub fn run(&self, train: &Subset) -> Result<AutotuneReport, AnnError> {
        let need = self.sample + 2 * self.queries;
        if self.sample == 0 || self.queries == 0 || train.len() < need {
            return Err(AnnError::InvalidParam {
                name: "sample",
                reason: format!(
                    "need {} sample and 2 x {} query rows, the training set has {}",
                    self.sample,
                    self.queries,
                    train.len()
                ),
            });
        }
        let mut order: Vec<usize> = (0..train.len()).collect();
        SplitMix64::new(self.seed).shuffle(&mut order);
        let pick = |r: std::ops::Range<usize>| train.select(&order[r]);
        let sample = pick(0..self.sample).map_err(|_| AnnError::EmptyTrain)?;
        let tune_q =
            pick(self.sample..self.sample + self.queries).map_err(|_| AnnError::EmptyTrain)?;
        let held_q = pick(self.sample + self.queries..need).map_err(|_| AnnError::EmptyTrain)?;
        let exact = AnnIndex::Exact.build(&sample, self.metric, None, self.seed)?;
        let truth = exact.search(&tune_q, 1)?.indices;
        let sample_bytes = (sample.len() * sample.dim()).max(1) as f64;

        let mut trials = Vec::new();
        let mut built: Vec<BuiltIndex> = Vec::new();
        for (base, params) in &self.candidates {
            let t = Instant::now();
            let mut ix = base_with(*base, params.first().copied().unwrap_or(1)).build(
                &sample,
                self.metric,
                self.pca,
                self.seed,
            )?;
            let build_secs = t.elapsed().as_secs_f64();
            for &p in params {
                ix.retune(base_with(*base, p))?;
                let t = Instant::now();
                let found = ix.search(&tune_q, 1)?.indices;
                let secs = t.elapsed().as_secs_f64() / tune_q.len() as f64;
                let recall = recall_at(&found, &truth, 1);
                trials.push(Trial {
                    index: ix.kind(),
                    build_secs,
                    search_secs_per_query: secs,
                    memory_bytes: ix.memory_bytes(),
                    recall_at_1: recall,
                    cost: f64::INFINITY,
                });
                if recall >= self.target_recall {
                    break; // larger search parameters only cost more
                }
            }
            built.push(ix);
        }
        let time = |t: &Trial| t.search_secs_per_query + self.build_weight * t.build_secs;
        let best_time = trials
            .iter()
            .filter(|t| t.recall_at_1 >= self.target_recall)
            .map(time)
            .fold(f64::INFINITY, f64::min);
        for t in trials.iter_mut().filter(|t| t.recall_at_1 >= self.target_recall) {
            t.cost = time(t) / best_time.max(1e-12)
                + self.memory_weight * t.memory_bytes as f64 / sample_bytes;
        }
        let met = best_time.is_finite();
        let chosen_pos = if met {
            (0..trials.len()).min_by(|&a, &b| trials[a].cost.total_cmp(&trials[b].cost))
        } else {
            (0..trials.len()).max_by(|&a, &b| {
                trials[a].recall_at_1.total_cmp(&trials[b].recall_at_1).then(b.cmp(&a))
            })
        };
        let chosen_pos = chosen_pos.ok_or(AnnError::InvalidParam {
            name: "candidates",
            reason: "no candidates to try".into(),
        })?;
        let chosen = trials[chosen_pos].index;
        let mut ix = built.into_iter().find(|b| b.kind().same_structure(&chosen)).ok_or(
            AnnError::InvalidParam { name: "candidates", reason: "lost the chosen".into() },
        )?;
        ix.retune(chosen)?;
        let truth_h = exact.search(&held_q, 1)?.indices;
        let found_h = ix.search(&held_q, 1)?.indices;
        let held = recall_at(&found_h, &truth_h, 1);
        tracing::debug!(chosen = %chosen.spec(), held_out_recall = held, "autotune chose");
        Ok(AutotuneReport { trials, chosen, met_target: met, held_out_recall_at_1: held })
    }
}

/// `base` with its search parameter set to `p` (kd-tree: eps = p / 100).
fn base_with(base: AnnIndex, p: usize) -> AnnIndex {
    match base {
        AnnIndex::Exact => AnnIndex::Exact,
        AnnIndex::KdTree { leaf_size, .. } => AnnIndex::KdTree { leaf_size, eps: p as f32 / 100.0 },
        AnnIndex::KdForest { trees, .. } => AnnIndex::KdForest { trees, checks: p.max(1) },
        AnnIndex::KMeansTree { branching, iterations, .. } => {
            AnnIndex::KMeansTree { branching, iterations, checks: p.max(1) }
        }
        AnnIndex::Hnsw { m, ef_construction, .. } => {
            AnnIndex::Hnsw { m, ef_construction, ef_search: p.max(1) }
        }
    }
}
