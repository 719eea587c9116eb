//! Tidy checks that keep the workspace's shape true: dependency arrows point one way
//! (docs/ARCHITECTURE.md's layers), the codemap names every crate, every source file opens
//! with a `//!` line, and no library crate reaches for the network or `anyhow`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Layer of each workspace crate: a crate may depend (in `[dependencies]`) only on crates in
/// strictly lower layers, plus the exceptions listed in [`ALLOWED_SIDEWAYS`].
fn layers() -> BTreeMap<&'static str, u32> {
    BTreeMap::from([
        ("imgclass-linalg", 0),
        ("imgclass-core", 1),
        ("imgclass-loss", 1),
        ("imgclass-data", 2),
        ("imgclass-features", 2),
        ("imgclass-knn", 2),
        ("imgclass-net", 2),
        ("imgclass-linear", 2),
        ("imgclass-eval", 3),
        ("imgclass-model", 3),
        ("imgclass-report", 4),
        ("imgclass-testkit", 5),
        ("xtask", 6),
    ])
}

/// Same-layer or otherwise notable edges that are allowed, with the reason in ARCHITECTURE.md.
const ALLOWED_SIDEWAYS: &[(&str, &str)] = &[
    // the ANN indices' PCA projection is the PCA feature step (one type)
    ("imgclass-knn", "imgclass-features"),
];

/// Edges that must never exist (besides the layer rule): knn and linear never know each other.
const FORBIDDEN: &[(&str, &str)] = &[
    ("imgclass-knn", "imgclass-linear"),
    ("imgclass-linear", "imgclass-knn"),
    ("imgclass-eval", "imgclass-knn"),
    ("imgclass-eval", "imgclass-linear"),
];

fn manifests() -> Vec<(String, toml::Table)> {
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .expect("crates/ exists")
        .map(|e| e.expect("readable dir entry").path())
        .collect();
    dirs.push(root().join("xtask"));
    dirs.sort();
    for dir in dirs {
        let path = dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&path).expect("crate has a Cargo.toml");
        let table: toml::Table = text.parse().expect("Cargo.toml parses");
        let name = table["package"]["name"].as_str().expect("package.name").to_string();
        out.push((name, table));
    }
    out
}

fn deps(table: &toml::Table, section: &str) -> Vec<String> {
    table
        .get(section)
        .and_then(|d| d.as_table())
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn dependency_arrows_point_down() {
    let layers = layers();
    let mut errors = Vec::new();
    for (name, table) in manifests() {
        let Some(&mine) = layers.get(name.as_str()) else {
            errors.push(format!("{name} has no layer in tidy.rs: add it and to ARCHITECTURE.md"));
            continue;
        };
        for dep in deps(&table, "dependencies") {
            let Some(&theirs) = layers.get(dep.as_str()) else { continue };
            let sideways = ALLOWED_SIDEWAYS.contains(&(name.as_str(), dep.as_str()));
            if theirs >= mine && !sideways {
                errors.push(format!("{name} (layer {mine}) depends on {dep} (layer {theirs})"));
            }
            if FORBIDDEN.contains(&(name.as_str(), dep.as_str())) {
                errors.push(format!("{name} must not depend on {dep}"));
            }
            if dep == "imgclass-testkit" {
                errors.push(format!("{name} uses testkit outside [dev-dependencies]"));
            }
        }
        let is_lib = name != "xtask" && name != "imgclass-testkit";
        if is_lib {
            for banned in ["anyhow", "ureq", "reqwest", "bincode"] {
                if deps(&table, "dependencies").iter().any(|d| d == banned) {
                    errors.push(format!("library crate {name} depends on {banned}"));
                }
            }
        }
        if deps(&table, "dependencies").iter().any(|d| d == "bincode") {
            errors.push(format!("{name} depends on bincode (RUSTSEC-2025-0141)"));
        }
    }
    assert!(errors.is_empty(), "dependency rules broken:\n{}", errors.join("\n"));
}

#[test]
fn architecture_names_every_crate() {
    let arch = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md"))
        .expect("docs/ARCHITECTURE.md exists");
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md exists");
    for (name, _) in manifests() {
        assert!(arch.contains(&format!("`{name}`")), "ARCHITECTURE.md does not name `{name}`");
        if name != "xtask" {
            assert!(readme.contains(&format!("`{name}`")), "README.md does not name `{name}`");
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target" || n == "fuzz") {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_source_file_says_what_it_is_for() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    rust_files(&root().join("xtask"), &mut files);
    let missing: Vec<_> = files
        .iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a leading //! line:\n{}", missing.join("\n"));
}

#[test]
fn library_crates_do_not_touch_the_network() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    let offenders: Vec<_> = files
        .iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "testkit"))
        .filter(|p| !p.components().any(|c| c.as_os_str() == "tests"))
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            text.contains("TcpStream") || text.contains("std::net")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "network use in library code:\n{}", offenders.join("\n"));
}

/// The fenced block of `lang` (its first word) in the README's section `heading`.
fn readme_block(readme: &str, heading: &str, lang: &str) -> String {
    let section = readme.split("\n## ").find(|s| s.starts_with(heading)).expect("section");
    let mut lines = section
        .lines()
        .skip_while(|l| !(l.starts_with("```") && l[3..].split(',').next() == Some(lang)));
    assert!(lines.next().is_some(), "no ```{lang} block under ## {heading}");
    lines.take_while(|l| !l.starts_with("```")).collect::<Vec<_>>().join("\n")
}

/// The README's "Use one crate" program is compiled as a doc test of imgclass-testkit; this
/// checks the part a doc test cannot: that its `toml` block lists every crate the program
/// uses, with a path to that crate in the checkout, and that the program is a whole `main`.
#[test]
fn readme_snippet_lists_every_crate_it_uses() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md exists");
    let toml_text = readme_block(&readme, "Use one crate", "toml");
    let rust = readme_block(&readme, "Use one crate", "rust");
    let manifest: toml::Table = toml_text.parse().expect("the README's toml parses");
    let listed = manifest["dependencies"].as_table().expect("[dependencies]");
    assert!(rust.contains("fn main() -> Result<"), "a whole program:\n{rust}");
    assert!(!rust.lines().any(|l| l.trim_start().starts_with("# ")), "no hidden lines:\n{rust}");
    let mut used: Vec<String> = rust
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("imgclass_"))
        .map(|w| w.replace('_', "-"))
        .collect();
    used.sort();
    used.dedup();
    assert!(used.len() >= 3, "{used:?}");
    for name in &used {
        let dep = listed.get(name).unwrap_or_else(|| panic!("the README's toml lacks {name}"));
        let path = dep["path"].as_str().expect("a path dependency");
        let dir = path.rsplit_once("crates/").map(|(_, d)| d).expect("a path into crates/");
        let manifest = root().join("crates").join(dir).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).expect("the crate exists");
        assert!(text.contains(&format!("name = \"{name}\"")), "{path} is not {name}");
    }
    // the doc test that compiles it exists
    let testkit = std::fs::read_to_string(root().join("crates/testkit/src/lib.rs")).expect("lib");
    assert!(testkit.contains("include_str!(\"../../../README.md\")"));
    let dev = std::fs::read_to_string(root().join("crates/testkit/Cargo.toml")).expect("toml");
    for name in used.iter().filter(|n| *n != "imgclass-core") {
        assert!(dev.contains(&format!("{name}.workspace")), "testkit must dev-depend on {name}");
    }
}
