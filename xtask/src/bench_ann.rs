//! `cargo xtask bench ann`: recall@1 and recall@10 against queries per second for each
//! approximate index over a parameter sweep, on CIFAR-10 (all 50,000 training images and
//! 10,000 queries by default), beside hnswlib, faiss IVF-Flat and FLANN (OpenCV) run by
//! `xtask/peers/ann.py` on the same batches in the same run; build time, index memory and
//! 1-NN accuracy against exact search; a markdown table on stdout and an SVG plot.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use imgclass_core::{Dataset, Subset};
use imgclass_knn::ann::{AnnIndex, Metric, recall_at};

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Index settings to measure, repeatable: `KIND[:key=value,...]` where the search
    /// parameter may list a sweep with `/` and `pca=P` projects first, e.g.
    /// `hnsw:m=16,efc=100,pca=128,ef=10/20/40`, `kdforest:trees=4,pca=64,checks=64/256`,
    /// `kmeans:branching=32,iterations=5,checks=128`, `kdtree:leaf=8,pca=32,eps=2/1/0.5`,
    /// `exact`. Default: a sweep of every kind.
    #[arg(long = "index")]
    pub index: Vec<String>,
    /// Number of test images used as queries (the first N, in file order).
    #[arg(long, default_value_t = 10_000)]
    pub n_test: usize,
    /// Number of training images indexed (the first N, in batch order).
    #[arg(long, default_value_t = 50_000)]
    pub n_train: usize,
    /// Writes, per query in test order, the training index (counting training images in batch
    /// order from 0) of the nearest neighbour found by the last setting of the first
    /// `--index` spec (exact search when no spec is given), one per line.
    #[arg(long)]
    pub neighbors: Option<PathBuf>,
    /// Data directory holding `cifar-10/cifar-10-batches-bin/` (default: `IMGCLASS_DATA_DIR`,
    /// else `<workspace>/datasets`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Skip the Python peers.
    #[arg(long)]
    pub no_peers: bool,
    /// Python interpreter for the peers.
    #[arg(long, default_value = ".venv/bin/python")]
    pub python: PathBuf,
    /// Peers to skip, comma-separated (`hnswlib`, `faiss`, `flann`).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub skip_peers: Vec<Peer>,
    /// Where to write the recall/qps SVG plot.
    #[arg(long, default_value = "docs/bench/ann.svg")]
    pub svg: PathBuf,
    /// Where to write every measured row as JSON (optional).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also run autotune for this target recall@1 (PCA 64, a 10,000-image sample of the
    /// training set, 200 tuning and 200 held-out queries drawn from the rest) and print what
    /// it tried and chose.
    #[arg(long)]
    pub autotune: Option<f64>,
    /// Build seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// One parsed `--index` spec: the index (first sweep value), PCA, and the sweep.
#[derive(Debug, Clone)]
struct Spec {
    text: String,
    base: AnnIndex,
    pca: Option<usize>,
    rerank: Option<usize>,
    sweep: Vec<AnnIndex>,
}

fn parse_spec(text: &str) -> anyhow::Result<Spec> {
    let (name, rest) = text.split_once(':').unwrap_or((text, ""));
    let mut pca = None;
    let mut rerank = None;
    let mut fixed = Vec::new();
    let mut sweep_key: Option<(String, Vec<String>)> = None;
    for kv in rest.split(',').filter(|s| !s.trim().is_empty()) {
        let (k, v) = kv.split_once('=').with_context(|| format!("expected key=value in {kv:?}"))?;
        if k == "pca" {
            pca = Some(v.parse::<usize>().with_context(|| format!("bad pca {v:?}"))?);
        } else if k == "rerank" {
            rerank = Some(v.parse::<usize>().with_context(|| format!("bad rerank {v:?}"))?);
        } else if v.contains('/') {
            if sweep_key.is_some() {
                bail!("only one swept key per spec: {text:?}");
            }
            sweep_key = Some((k.to_string(), v.split('/').map(str::to_string).collect()));
        } else {
            fixed.push(format!("{k}={v}"));
        }
    }
    let mk = |extra: Option<String>| -> anyhow::Result<AnnIndex> {
        let mut kvs = fixed.clone();
        kvs.extend(extra);
        Ok(AnnIndex::parse(&format!("{name}:{}", kvs.join(",")))?)
    };
    let sweep = match &sweep_key {
        None => vec![mk(None)?],
        Some((k, vs)) => {
            vs.iter().map(|v| mk(Some(format!("{k}={v}")))).collect::<Result<_, _>>()?
        }
    };
    Ok(Spec { text: text.to_string(), base: sweep[0], pca, rerank, sweep })
}

fn default_specs() -> Vec<&'static str> {
    vec![
        "hnsw:m=16,efc=200,pca=64,ef=16/24/32/48/64/96",
        "kdforest:trees=4,pca=64,checks=256/512/1024/2048",
        "kmeans:branching=32,iterations=5,pca=64,checks=256/512/1024/2048",
        "kdtree:leaf=8,pca=32,eps=2/1/0.5",
    ]
}

/// One measured setting (ours or a peer's).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Row {
    peer: String,
    params: String,
    build_secs: f64,
    search_secs: f64,
    recall1: f64,
    recall10: f64,
    acc1: f64,
    memory_bytes: u64,
}

#[derive(Debug, serde::Deserialize)]
struct PeerOut {
    settings: Vec<Row>,
}

use crate::paths::{data_dir, workspace_root};

fn first_n(ds: &Dataset, n: usize) -> anyhow::Result<Subset> {
    let n = n.min(ds.len());
    Ok(ds.subset((0..n).collect::<Vec<_>>())?)
}

fn acc1(found: &[u32], k: usize, train: &Subset, test: &Subset) -> f64 {
    let hits =
        (0..test.len()).filter(|&q| train.label(found[q * k] as usize) == test.label(q)).count();
    hits as f64 / test.len().max(1) as f64
}

fn firsts(idx: &[u32], k: usize) -> Vec<u32> {
    idx.chunks(k).map(|c| c[0]).collect()
}

/// A Python peer of the ANN benchmark (`xtask/peers/ann.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    /// hnswlib's HNSW.
    Hnswlib,
    /// faiss's exact and IVF-flat indices.
    Faiss,
    /// FLANN (through OpenCV's `cv2.flann_Index`): kd-forest and k-means tree.
    Flann,
}

impl Peer {
    /// The name the peer script takes.
    fn name(self) -> &'static str {
        match self {
            Self::Hnswlib => "hnswlib",
            Self::Faiss => "faiss",
            Self::Flann => "flann",
        }
    }
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let root = workspace_root();
    let dir = data_dir(args.data_dir.as_deref());
    let cifar = crate::paths::cifar10_dir(&dir);
    let t = Instant::now();
    let tt = imgclass_data::cifar::read_cifar10(&cifar)
        .with_context(|| format!("reading {}", cifar.display()))?;
    let train = first_n(&tt.train, args.n_train)?;
    let test = first_n(&tt.test, args.n_test)?;
    eprintln!(
        "loaded {} train / {} test images in {:.1}s; {} rayon threads",
        train.len(),
        test.len(),
        t.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    let k = 10;
    let specs: Vec<Spec> = if args.index.is_empty() {
        default_specs().into_iter().map(parse_spec).collect::<Result<_, _>>()?
    } else {
        args.index.iter().map(|s| parse_spec(s)).collect::<Result<_, _>>()?
    };

    // the oracle: imgclass's exact search (also the speed baseline)
    let t = Instant::now();
    let exact = AnnIndex::Exact.build(&train, Metric::L2, None, args.seed)?;
    let build = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let truth = exact.search(&test, k)?.indices;
    let exact_secs = t.elapsed().as_secs_f64();
    let mut rows = vec![Row {
        peer: "imgclass".into(),
        params: "exact".into(),
        build_secs: build,
        search_secs: exact_secs,
        recall1: 1.0,
        recall10: 1.0,
        acc1: acc1(&truth, k, &train, &test),
        memory_bytes: 0,
    }];
    eprintln!("imgclass exact: {exact_secs:.2}s for {} queries", test.len());
    let truth1 = firsts(&truth, k);
    let mut neighbours: Option<Vec<u32>> = None;
    let mut pcas: std::collections::HashMap<usize, (imgclass_knn::ann::Pca, f64)> =
        std::collections::HashMap::new();

    for (si, spec) in specs.iter().enumerate() {
        if spec.base == AnnIndex::Exact {
            if si == 0 {
                neighbours = Some(truth1.clone());
            }
            continue;
        }
        // one PCA fit per dimension, shared by the specs; its time counts in every build
        let mut pca_secs = 0.0;
        let pca = match spec.pca {
            None => None,
            Some(p) => {
                if let std::collections::hash_map::Entry::Vacant(slot) = pcas.entry(p) {
                    let t = Instant::now();
                    let fit = imgclass_knn::ann::Pca::fit(&train, p, args.seed)?;
                    slot.insert((fit, t.elapsed().as_secs_f64()));
                }
                let (fit, secs) = &pcas[&p];
                pca_secs = *secs;
                Some(fit.clone())
            }
        };
        let t = Instant::now();
        let mut ix = match pca {
            None => spec.base.build(&train, Metric::L2, None, args.seed)?,
            Some(fit) => spec.base.build_with_pca(&train, Metric::L2, fit, args.seed)?,
        };
        let build = t.elapsed().as_secs_f64() + pca_secs;
        if let Some(r) = spec.rerank {
            ix.set_rerank(r);
        }
        eprintln!(
            "{}: built in {build:.1}s (PCA fit {pca_secs:.1}s), {} MB",
            spec.text,
            ix.memory_bytes() / 1_000_000
        );
        for setting in &spec.sweep {
            ix.retune(*setting)?;
            let t = Instant::now();
            let found = ix.search(&test, k)?.indices;
            let secs = t.elapsed().as_secs_f64();
            let mut pca = spec.pca.map(|p| format!(",pca={p}")).unwrap_or_default();
            if let Some(r) = spec.rerank {
                pca.push_str(&format!(",rerank={r}"));
            }
            let row = Row {
                peer: "imgclass".into(),
                params: format!("{}{pca}", setting.spec()),
                build_secs: build,
                search_secs: secs,
                recall1: recall_at(&firsts(&found, k), &truth1, 1),
                recall10: recall_at(&found, &truth, k),
                acc1: acc1(&found, k, &train, &test),
                memory_bytes: ix.memory_bytes() as u64,
            };
            eprintln!(
                "  {}: {secs:.2}s, recall@1 {:.3}, recall@10 {:.3}",
                row.params, row.recall1, row.recall10
            );
            rows.push(row);
            if si == 0 {
                neighbours = Some(firsts(&found, k));
            }
        }
    }
    if let Some(path) = &args.neighbors {
        let nb = neighbours.unwrap_or_else(|| truth1.clone());
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        for i in nb {
            writeln!(f, "{i}")?;
        }
        f.flush()?;
    }

    if !args.no_peers {
        let truth_file = tempfile::NamedTempFile::new()?;
        let bytes: Vec<u8> = truth.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(truth_file.path(), bytes)?;
        let py =
            if args.python.is_relative() { root.join(&args.python) } else { args.python.clone() };
        let script = root.join("xtask/peers/ann.py");
        let skipped: Vec<&str> = args.skip_peers.iter().map(|p| p.name()).collect();
        let skipped = skipped.join(",");
        eprintln!("running peers: {} {}", py.display(), script.display());
        let out = std::process::Command::new(&py)
            .arg(&script)
            .arg("--data-dir")
            .arg(&dir)
            .args(["--n-train", &train.len().to_string(), "--n-test", &test.len().to_string()])
            .arg("--truth")
            .arg(truth_file.path())
            .args(["--threads", &rayon::current_num_threads().to_string()])
            .args(["--skip", &skipped])
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", py.display()))?;
        if !out.status.success() {
            bail!("peer script failed with {}", out.status);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().last().unwrap_or("");
        let peers: PeerOut = serde_json::from_str(last).context("parsing the peers' JSON")?;
        rows.extend(peers.settings);
    }

    if let Some(target) = args.autotune {
        let mut tune = imgclass_knn::ann::Autotune::new(target);
        tune.sample = 10_000.min(train.len().saturating_sub(400));
        tune.queries = 200;
        tune.pca = Some(64);
        tune.seed = args.seed;
        let t = Instant::now();
        let report = tune.run(&train)?;
        println!("autotune (target recall@1 {target}, {:.0}s):", t.elapsed().as_secs_f64());
        println!("| tried | build s | search ms/query | memory MB | recall@1 | cost |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: |");
        for tr in &report.trials {
            println!(
                "| {} | {:.2} | {:.3} | {:.1} | {:.3} | {:.2} |",
                tr.index.spec(),
                tr.build_secs,
                tr.search_secs_per_query * 1e3,
                tr.memory_bytes as f64 / 1e6,
                tr.recall_at_1,
                tr.cost
            );
        }
        println!(
            "chosen: {} (met target: {}), held-out recall@1 {:.3}",
            report.chosen.spec(),
            report.met_target,
            report.held_out_recall_at_1
        );
    }
    print_table(&rows, test.len());
    write_svg(&args.svg, &rows, &root, test.len())?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}

fn print_table(rows: &[Row], n_queries: usize) {
    let exact_qps = rows
        .iter()
        .find(|r| r.peer == "imgclass" && r.params == "exact")
        .map(|r| n_queries as f64 / r.search_secs)
        .unwrap_or(f64::NAN);
    println!(
        "| library | setting | build s | memory MB | search s | queries/s | x imgclass exact | recall@1 | recall@10 | 1-NN acc |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let qps = n_queries as f64 / r.search_secs;
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.2} | {:.0} | {:.1} | {:.3} | {:.3} | {:.4} |",
            r.peer,
            r.params,
            r.build_secs,
            r.memory_bytes as f64 / 1e6,
            r.search_secs,
            qps,
            qps / exact_qps,
            r.recall1,
            r.recall10,
            r.acc1
        );
    }
}

fn write_svg(path: &Path, rows: &[Row], root: &Path, n_queries: usize) -> anyhow::Result<()> {
    use imgclass_report::{LinePlot, LineSeries, line_plot_svg};
    // one series per (library, index family, pca) in first-seen order
    let mut series: Vec<LineSeries> = Vec::new();
    for r in rows.iter().filter(|r| r.params != "exact") {
        let family = format!("{} {}", r.peer, series_key(&r.params));
        let qps = n_queries as f64 / r.search_secs.max(1e-12);
        match series.iter_mut().find(|s| s.name == family) {
            Some(s) => s.points.push((r.recall1, qps)),
            None => series.push(LineSeries { name: family, points: vec![(r.recall1, qps)] }),
        }
    }
    for s in &mut series {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let plot = LinePlot {
        title: "CIFAR-10 nearest neighbour: recall@1 vs speed".into(),
        x_label: "recall@1".into(),
        y_label: "queries per second (log)".into(),
        series,
        log_y: true,
        markers: true,
        ..LinePlot::default()
    };
    let path = if path.is_relative() { root.join(path) } else { path.to_path_buf() };
    std::fs::write(&path, line_plot_svg(&plot))
        .with_context(|| format!("writing {}", path.display()))
}

/// The family of a setting: its kind and build parameters, without the swept search one.
fn series_key(params: &str) -> String {
    params
        .split([',', ':'])
        .filter(|kv| !["ef=", "checks=", "eps=", "nprobe="].iter().any(|p| kv.starts_with(p)))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    /// Skipped peers are typed where they are read: an unknown name is refused with the
    /// valid ones (it used to be passed on and match nothing, so the peer ran).
    #[test]
    fn skipped_peers_are_named_and_unknown_ones_refused() {
        let cli = Cli::try_parse_from(["ann", "--skip-peers", "faiss,flann"]).expect("parses");
        assert_eq!(cli.args.skip_peers, vec![Peer::Faiss, Peer::Flann]);
        let names: Vec<&str> = cli.args.skip_peers.iter().map(|p| p.name()).collect();
        assert_eq!(names.join(","), "faiss,flann");
        assert!(Cli::try_parse_from(["ann"]).expect("parses").args.skip_peers.is_empty());
        let e = Cli::try_parse_from(["ann", "--skip-peers", "hnsw"]).err().expect("refused");
        let e = e.to_string();
        assert!(e.contains("'hnsw'") && e.contains("hnswlib, faiss, flann"), "{e}");
    }
}
