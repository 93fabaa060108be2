//! crossclr: train, evaluate and explore CrossCLR joint video–text embeddings.
//!
//! Data flows one way (DESIGN.md §3): media → features → model → embeddings → analysis → views.

pub mod analysis;
#[cfg(feature = "explorer")]
pub mod app;
pub mod cli;
pub mod crossclr;
pub mod demo;
pub mod encode;
pub mod eval;
pub mod hash;
pub mod ingest;
pub mod jobs;
pub mod media;
pub mod model;
pub mod process;
pub mod project;
#[cfg(feature = "explorer")]
pub mod render;
pub mod synth;
pub mod train;

#[cfg(test)]
mod architecture {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    fn backticked(text: &str) -> BTreeSet<String> {
        text.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    /// Each module's row of ARCHITECTURE.md, resolved to the modules it may use: the modules
    /// named, or for "every module above but …" every module of an earlier row but those named.
    fn allowed() -> BTreeMap<String, BTreeSet<String>> {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
                .expect("ARCHITECTURE.md beside Cargo.toml");
        let mut rows = BTreeMap::new();
        let mut above = BTreeSet::new();
        for line in text.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let module = cells[0].trim_matches('`').to_string();
            let uses = cells[cells.len() - 1];
            let may = if uses.starts_with("every module above") {
                above.difference(&backticked(uses)).cloned().collect()
            } else {
                backticked(uses)
            };
            above.insert(module.clone());
            rows.insert(module, may);
        }
        rows
    }

    /// The modules each module's code names as `crate::<module>`.
    fn used() -> BTreeMap<String, BTreeSet<String>> {
        fn sources(path: &Path, out: &mut Vec<String>) {
            if path.is_dir() {
                for entry in std::fs::read_dir(path).unwrap() {
                    sources(&entry.unwrap().path(), out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(std::fs::read_to_string(path).unwrap());
            }
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut modules = BTreeMap::new();
        for entry in std::fs::read_dir(&src).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if name == "lib" || name == "main" {
                continue;
            }
            let mut texts = Vec::new();
            sources(&path, &mut texts);
            let mut uses = BTreeSet::new();
            for text in &texts {
                for (at, _) in text.match_indices("crate::") {
                    let rest = &text[at + "crate::".len()..];
                    let end = rest
                        .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                        .unwrap_or(rest.len());
                    let used = &rest[..end];
                    if !used.is_empty() && used != name {
                        uses.insert(used.to_string());
                    }
                }
            }
            modules.insert(name, uses);
        }
        modules
    }

    #[test]
    fn architecture_is_what_the_code_uses() {
        let allowed = allowed();
        let used = used();
        let mut problems = Vec::new();
        for (module, uses) in &used {
            match allowed.get(module) {
                None => problems.push(format!("`{module}` has no row in ARCHITECTURE.md")),
                Some(may) => {
                    for other in uses.difference(may) {
                        problems.push(format!(
                            "`{module}` uses `{other}`, which its row does not allow"
                        ));
                    }
                }
            }
        }
        for module in allowed.keys().filter(|m| !used.contains_key(*m)) {
            problems.push(format!(
                "ARCHITECTURE.md has a row for `{module}`, which does not exist"
            ));
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
