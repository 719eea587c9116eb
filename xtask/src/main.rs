//! `cargo xtask`: the commands a user and a developer run (`fetch-data`, `bench ...`,
//! `experiment`). This is the only code in the workspace that touches the network.

mod bench_ann;
mod bench_cv;
mod bench_data;
mod bench_knn;
mod bench_linear;
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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logs::init(cli.verbose);
    let result = match cli.command {
        Command::FetchData(args) => fetch::run(args),
        Command::Experiment(args) => experiment::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Bench(Bench::Data(args)) => bench_data::run(args),
        Command::Bench(Bench::Knn(args)) => bench_knn::run(args),
        Command::Bench(Bench::Cv(args)) => bench_cv::run(args),
        Command::Bench(Bench::Linear(args)) => bench_linear::run(args),
        Command::Bench(Bench::Ann(args)) => bench_ann::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
