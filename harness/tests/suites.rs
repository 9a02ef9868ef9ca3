//! The suite files of the repository, their snapshots, and the malformed-suite corpus.

use std::path::Path;

use firedrill::fixtures::Paths;
use firedrill::model::table;

fn paths() -> Paths {
    Paths::at(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
}

#[test]
fn every_suite_in_the_repository_loads() {
    let p = paths();
    let suites = firedrill::suite::load_dir(&p.suites, &p.fixtures).unwrap();
    assert!(suites.iter().any(|s| s.id() == "identity"));
}

/// The snapshots are the documents' tables (with recorded deviations in their cells):
/// a snapshot that does not follow from its suite file was accepted from observation.
#[test]
fn snapshots_are_the_documented_tables() {
    let p = paths();
    let suites = firedrill::suite::load_dir(&p.suites, &p.fixtures).unwrap();
    let mut problems = Vec::new();
    let mut expected_files = std::collections::BTreeSet::new();
    for suite in &suites {
        for sc in &suite.spec.scenarios {
            let want = table::expected(suite, sc).render();
            let want = want.trim_end_matches('\n');
            expected_files.insert(firedrill::snapshot::file(&p.snapshots, suite.id(), &sc.id.value));
            match firedrill::snapshot::read(&p.snapshots, suite.id(), &sc.id.value) {
                None => problems.push(format!("{}::{}: no snapshot; write it from the document", suite.id(), sc.id.value)),
                Some(got) if got != want => problems.push(format!(
                    "{}::{}: snapshot differs from the suite's documented table\n--- snapshot\n{got}\n--- documented\n{want}",
                    suite.id(),
                    sc.id.value
                )),
                Some(_) => {}
            }
        }
    }
    for entry in std::fs::read_dir(&p.snapshots).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "snap") && !expected_files.contains(&path) {
            problems.push(format!("{}: no scenario of any suite has this snapshot", path.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// Every malformed or hostile suite gives a clear error with file:line:column.
#[test]
fn malformed_suites_give_located_errors() {
    let p = paths();
    insta::glob!("data/bad-suites/*.yaml", |path| {
        let err = firedrill::suite::load_file(path, &p.fixtures).expect_err("a malformed suite must not load");
        let text = err.to_string();
        let name = path.file_name().unwrap().to_string_lossy();
        let text = text.replace(&path.display().to_string(), &format!("bad-suites/{name}"));
        assert!(
            text.starts_with(&format!("bad-suites/{name}:")) && text.split(':').nth(1).is_some_and(|l| l.parse::<u64>().is_ok()),
            "error does not start with file:line:column: {text}"
        );
        insta::assert_snapshot!(text);
    });
}
