//! `cargo xtask`: the commands a user and a developer run (`fetch-data`, `bench ...`,
//! `experiment`). This is the only code in the workspace that touches the network.

mod bench_ann;
mod bench_cv;
mod bench_data;
mod bench_features;
mod bench_knn;
mod bench_linear;
mod bench_net;
mod bench_solver;
mod cleanup;
mod experiment;
mod fetch;
mod knn_cv;
mod knn_ref;
mod logs;
mod paths;
mod predict;
mod procstat;

use clap::{Parser, Subcommand};

/// imgclass tasks: download data, run benchmarks and experiments.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    /// More logging (-v debug: per-fold and per-setting details, -vv trace); RUST_LOG overrides.
    /// Colour only on a terminal, never with NO_COLOR set.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Download (or import offline) a dataset into the data directory and verify it.
    FetchData(fetch::Args),
    /// The whole pipeline end to end: k-NN CV, linear SVM/softmax, approximate search, report.
    Experiment(experiment::Args),
    /// Benchmarks on real data.
    #[command(subcommand)]
    Bench(Bench),
    /// Classify PNG/JPEG images with a saved model (top classes: probabilities, SVM scores or
    /// k-NN vote shares).
    Predict(predict::Args),
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Load speed of the dataset readers and the image-folder import.
    Data(bench_data::Args),
    /// Exact k-NN over the full test set.
    Knn(bench_knn::Args),
    /// k-fold cross-validation of k-NN over a grid of k.
    Cv(bench_cv::Args),
    /// Linear SVM / softmax trained by minibatch SGD.
    Linear(bench_linear::Args),
    /// Approximate nearest-neighbour indices: recall against speed.
    Ann(bench_ann::Args),
    /// The two-layer network on CIFAR-10 raw pixels.
    Net(bench_net::Args),
    /// The full-batch L-BFGS solver against scikit-learn (peer: xtask/peers/solver.py).
    Solver(bench_solver::Args),
    /// The Coates k-means feature pipeline against numpy/scipy (peer: xtask/peers/coates.py).
    Features(bench_features::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logs::init(cli.verbose);
    cleanup::install_handler();
    let result = match cli.command {
        Command::FetchData(args) => fetch::run(args),
        Command::Experiment(args) => experiment::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Bench(Bench::Data(args)) => bench_data::run(args),
        Command::Bench(Bench::Knn(args)) => bench_knn::run(args),
        Command::Bench(Bench::Cv(args)) => bench_cv::run(args),
        Command::Bench(Bench::Linear(args)) => bench_linear::run(args),
        Command::Bench(Bench::Ann(args)) => bench_ann::run(args),
        Command::Bench(Bench::Net(args)) => bench_net::run(args),
        Command::Bench(Bench::Solver(args)) => bench_solver::run(args),
        Command::Bench(Bench::Features(args)) => bench_features::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, `outer: cause: root`, each cause once: a library error
/// that already shows its source in its own message (`{path}: {source}`) and also returns it
/// as `source()` made `{e:#}` print the root cause twice.
pub(crate) fn error_chain(e: &anyhow::Error) -> String {
    let mut shown: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !shown.iter().any(|s| s.contains(&text)) {
            shown.push(text);
        }
    }
    shown.join(": ")
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    /// Issue 17 item 11: a cause already in its parent's message is not repeated; distinct
    /// causes are all kept, in order.
    #[test]
    fn error_chain_prints_each_cause_once() {
        let io = || std::io::Error::from(std::io::ErrorKind::NotFound);
        #[derive(Debug, thiserror::Error)]
        #[error("{path}: {source}")]
        struct Shows {
            path: String,
            source: std::io::Error,
        }
        let e = anyhow::Error::new(Shows { path: "/x/m.json".into(), source: io() })
            .context("cannot load model /x/m.json");
        let root = io().to_string();
        let text = error_chain(&e);
        assert_eq!(text, format!("cannot load model /x/m.json: /x/m.json: {root}"));
        assert_eq!(text.matches(&root).count(), 1, "{text}");
        let plain = anyhow::Error::new(io()).context("reading the batch").context("verifying");
        assert_eq!(error_chain(&plain), format!("verifying: reading the batch: {root}"));
    }
}
