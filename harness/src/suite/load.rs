//! Parse → check → [`Suite`]. Every failure is a [`SuiteError::Invalid`] with the file,
//! the 1-based line and column, the field, and what was expected.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_saphyr::{Location, Spanned};

use super::{RECOVERY, Suite, SuiteSpec};
use crate::component::Component;
use crate::error::SuiteError;
use crate::names::is_name;
use crate::topology::Topology;

/// Larger than any real suite by two orders of magnitude; refuses pathological input early.
const MAX_SUITE_BYTES: usize = 1 << 20;

/// Load every `*.yaml` in `dir`, sorted by name. All files are checked; every invalid one
/// is reported. Finding none is an error.
pub fn load_dir(dir: &Path, fixtures: &Path) -> Result<Vec<Suite>, SuiteError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SuiteError::Read { path: dir.to_path_buf(), source })?;
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "yaml")).collect();
    files.sort();
    if files.is_empty() {
        return Err(SuiteError::NoSuites(dir.to_path_buf()));
    }
    let mut suites = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match load_file(&f, fixtures) {
            Ok(s) => suites.push(s),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(suites),
        1 => Err(errors.remove(0)),
        n => Err(SuiteError::Several { count: n, list: errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n") }),
    }
}

/// Load one suite file.
pub fn load_file(path: &Path, fixtures: &Path) -> Result<Suite, SuiteError> {
    let bytes = std::fs::read(path).map_err(|source| SuiteError::Read { path: path.to_path_buf(), source })?;
    load_bytes(path, &bytes, fixtures)
}

/// Load a suite from text, as if read from `path` (used by tests and the fuzz target).
pub fn load_str(path: &Path, text: &str, fixtures: &Path) -> Result<Suite, SuiteError> {
    load_bytes(path, text.as_bytes(), fixtures)
}

/// Load a suite from bytes, as if read from `path` (the fuzz target feeds arbitrary bytes).
pub fn load_bytes(path: &Path, bytes: &[u8], fixtures: &Path) -> Result<Suite, SuiteError> {
    let invalid = |line: u64, column: u64, message: String| SuiteError::Invalid { path: path.to_path_buf(), line, column, message };
    if bytes.len() > MAX_SUITE_BYTES {
        return Err(invalid(1, 1, format!("file is {} bytes; a suite file may be at most {MAX_SUITE_BYTES}", bytes.len())));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_col(&bytes[..e.valid_up_to()]);
        invalid(line, column, "invalid UTF-8; suite files are UTF-8 text".into())
    })?;
    let spec = parse(text).map_err(|(loc, message)| invalid(loc.0, loc.1, message))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
    check(&spec, &stem, fixtures).map_err(|(loc, message)| invalid(loc.line(), loc.column(), message))?;
    Ok(Suite { file: path.to_path_buf(), spec })
}

fn line_col(prefix: &[u8]) -> (u64, u64) {
    let line = prefix.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let col_bytes = prefix.iter().rev().take_while(|b| **b != b'\n').count();
    let column = String::from_utf8_lossy(&prefix[prefix.len() - col_bytes..]).chars().count() as u64 + 1;
    (line, column)
}

pub use crate::error::yaml_message as error_message;

type Loc = (u64, u64);

fn parse(text: &str) -> Result<SuiteSpec, (Loc, String)> {
    let path = RefCell::new(String::new());
    let result = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            *path.borrow_mut() = e.path().to_string();
            e.into_inner()
        })
    });
    result.map_err(|e| {
        let loc = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
        // serde_path_to_error writes `?` for a mapping key it cannot name.
        let field = path.into_inner();
        let field = field.trim_end_matches(".?").trim_end_matches('?').to_string();
        let message = error_message(&e);
        // The path names the field unless the error is about the document as a whole.
        if field.is_empty() || field == "." || message.contains(&format!("`{field}`")) { (loc, message) } else { (loc, format!("`{field}`: {message}")) }
    })
}

type Check = Result<(), (Location, String)>;

/// The fixture names in `dir`: `*.yaml` stems when `files`, else sub-directories.
fn fixture_names(dir: &Path, files: bool) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            if files {
                (p.extension().is_some_and(|e| e == "yaml")).then(|| p.file_stem()?.to_str().map(String::from)).flatten()
            } else {
                p.is_dir().then(|| p.file_name()?.to_str().map(String::from)).flatten()
            }
        })
        .collect();
    names.sort();
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

fn at<T>(s: &Spanned<T>, message: String) -> (Location, String) {
    (s.referenced, message)
}

fn check(spec: &SuiteSpec, stem: &str, fixtures: &Path) -> Check {
    if spec.suite.value != stem {
        return Err(at(&spec.suite, format!("`suite`: `{}` must equal the file name `{stem}`", spec.suite.value)));
    }
    if !is_name(&spec.suite.value) {
        return Err(at(&spec.suite, "`suite`: expected lowercase letters, digits and dashes".into()));
    }

    // Fixtures: plain names only, so nothing can point outside fixtures/.
    let topo_name = &spec.topology;
    if !is_name(&topo_name.value) {
        return Err(at(topo_name, format!("`topology`: `{}` is not a topology name (lowercase letters, digits, dashes)", topo_name.value)));
    }
    if !fixtures.join("topologies").join(format!("{}.yaml", topo_name.value)).is_file() {
        return Err(at(
            topo_name,
            format!("`topology`: no topology `{}` in fixtures/topologies/ (there are: {})", topo_name.value, fixture_names(&fixtures.join("topologies"), true)),
        ));
    }
    let topology = Topology::load(fixtures, &topo_name.value).map_err(|e| at(topo_name, format!("`topology`: {e}")))?;
    let mut hosts = BTreeSet::new();
    let mut users = BTreeSet::new();
    for c in &spec.components {
        if !is_name(&c.value) {
            return Err(at(c, format!("`components`: `{}` is not a component name (lowercase letters, digits, dashes)", c.value)));
        }
        if !fixtures.join("components").join(&c.value).join("component.yaml").is_file() {
            return Err(at(
                c,
                format!("`components`: no component `{}` in fixtures/components/ (there are: {})", c.value, fixture_names(&fixtures.join("components"), false)),
            ));
        }
        let comp = Component::load(fixtures, &c.value).map_err(|e| at(c, format!("`components`: {e}")))?;
        hosts.extend(comp.hosts.iter().map(|h| h.name.clone()));
        users.extend(comp.users.iter().cloned());
    }
    let clusters = topology.cluster_names();
    let check_cluster = |loc: Location, what: &str, cluster: &str| -> Check {
        if clusters.contains(&cluster) {
            Ok(())
        } else {
            Err((loc, format!("{what} names cluster `{cluster}`, which topology `{}` does not have (it has: {})", topology.topology, clusters.join(", "))))
        }
    };

    if spec.timing.fault.0.is_zero() {
        return Err(at(&spec.suite, "`timing.fault` must be longer than 0s".into()));
    }

    // Operations.
    if spec.operations.is_empty() {
        return Err(at(&spec.suite, "`operations`: a suite needs at least one operation".into()));
    }
    let mut ops = Vec::new();
    for op in &spec.operations {
        let id = &op.id.value;
        if !is_name(id) {
            return Err(at(&op.id, format!("`operations`: id `{id}` must be lowercase letters, digits and dashes")));
        }
        if id == RECOVERY {
            return Err(at(&op.id, format!("`operations`: `{RECOVERY}` is reserved for the recovery line")));
        }
        if ops.contains(&id.as_str()) {
            return Err(at(&op.id, format!("`operations`: operation `{id}` is defined twice")));
        }
        ops.push(id.as_str());
        if op.interval.0.is_zero() {
            return Err(at(&op.id, format!("operation `{id}`: `interval` must be longer than 0s")));
        }
        if op.attempt_timeout.0.is_zero() {
            return Err(at(&op.id, format!("operation `{id}`: `attempt-timeout` must be longer than 0s")));
        }
        if op.concurrency == 0 || op.concurrency > 8 {
            return Err(at(&op.id, format!("operation `{id}`: `concurrency` must be between 1 and 8")));
        }
        if op.min_samples == 0 {
            return Err(at(&op.id, format!("operation `{id}`: `min-samples` must be at least 1")));
        }
        let longest = spec.timing.fault.0 + super::MAX_HOLD_BEYOND_FAULT;
        if op.settle.0 >= longest {
            return Err(at(
                &op.id,
                format!(
                    "operation `{id}`: `settle` ({}) leaves nothing of the longest fault window ({}s: `timing.fault` {} and at most {}s held for rows short of attempts)",
                    op.settle,
                    longest.as_secs(),
                    spec.timing.fault,
                    super::MAX_HOLD_BEYOND_FAULT.as_secs()
                ),
            ));
        }
        for cluster in op.probe.clusters() {
            check_cluster(op.id.referenced, &format!("operation `{id}`"), cluster)?;
        }
        for user in op.probe.users() {
            if !users.contains(user) {
                return Err(at(&op.id, format!("operation `{id}` names user `{user}`, which no component of the suite defines")));
            }
        }
    }

    if let Some(p) = &spec.placement {
        for c in &p.clusters.value {
            check_cluster(p.clusters.referenced, "`placement.clusters`", c)?;
        }
        for row in &p.rows {
            if let Some(rc) = &row.clusters {
                if rc.value.is_empty() {
                    return Err(at(
                        rc,
                        format!("`placement.rows`: `clusters` of `{}` is empty; leave it out for every cluster of the table", row.component.value),
                    ));
                }
                for c in &rc.value {
                    check_cluster(rc.referenced, &format!("`placement.rows`: `clusters` of `{}`", row.component.value), c)?;
                }
                if let Some(c) = rc.value.iter().find(|c| !p.clusters.value.contains(c)) {
                    return Err(at(
                        rc,
                        format!(
                            "`placement.rows`: `clusters` of `{}` names `{c}`, which is not in `placement.clusters` ({})",
                            row.component.value,
                            p.clusters.value.join(", ")
                        ),
                    ));
                }
            }
        }
        check_placement(p)?;
    }

    // Scenarios.
    if spec.scenarios.is_empty() {
        return Err(at(&spec.suite, "`scenarios`: a suite needs at least one scenario".into()));
    }
    let mut scenario_ids = BTreeSet::new();
    for sc in &spec.scenarios {
        let id = &sc.id.value;
        if !is_name(id) {
            return Err(at(&sc.id, format!("`scenarios`: id `{id}` must be lowercase letters, digits and dashes")));
        }
        if !scenario_ids.insert(id.as_str()) {
            return Err(at(&sc.id, format!("`scenarios`: scenario `{id}` is defined twice")));
        }
        if sc.faults.is_empty() {
            return Err(at(&sc.id, format!("scenario `{id}`: `faults` is empty; a scenario injects at least one fault")));
        }
        if let Some(w) = &sc.window {
            if w.at_least <= spec.timing.fault {
                return Err(at(
                    &sc.id,
                    format!(
                        "scenario `{id}`: `window.at-least` ({}) must be longer than the suite's `timing.fault` ({}), which every window lasts",
                        w.at_least, spec.timing.fault
                    ),
                ));
            }
            if w.contains.trim().is_empty() {
                return Err(at(&sc.id, format!("scenario `{id}`: `window.contains` must say what the window must contain that makes it {} long", w.at_least)));
            }
        }
        for f in &sc.faults {
            for cluster in f.clusters() {
                check_cluster(sc.id.referenced, &format!("scenario `{id}`: fault `{}`", f.kind()), cluster)?;
            }
            if let crate::fault::FaultSpec::DrainNode { cluster, nodes } = f {
                if nodes.is_empty() {
                    return Err(at(&sc.id, format!("scenario `{id}`: fault `drain-node`: `nodes` is empty")));
                }
                for n in nodes {
                    if !topology.clusters.iter().any(|tc| &tc.name == cluster && tc.nodes.iter().any(|tn| &tn.name == n)) {
                        return Err(at(&sc.id, format!("scenario `{id}`: fault `drain-node` names node `{n}`, which cluster `{cluster}` does not have")));
                    }
                }
            }
            if let crate::fault::FaultSpec::Partition { between } = f {
                if between.len() != 2 || between[0] == between[1] {
                    return Err(at(&sc.id, format!("scenario `{id}`: fault `partition`: `between` must name two different sides")));
                }
                for side in between {
                    let known = match side.split_once('/') {
                        Some((c, n)) => topology.clusters.iter().any(|tc| tc.name == c && tc.nodes.iter().any(|tn| tn.name == n)),
                        None => clusters.contains(&side.as_str()) || hosts.contains(side),
                    };
                    if !known {
                        return Err(at(
                            &sc.id,
                            format!("scenario `{id}`: fault `partition`: side `{side}` is not a cluster, a node (`cluster/node`) or a host of this suite"),
                        ));
                    }
                }
            }
            if let Some(message) = check_fault_options(f, &topology) {
                return Err(at(&sc.id, format!("scenario `{id}`: fault `{}`: {message}", f.kind())));
            }
            for host in f.hosts() {
                if !hosts.contains(host) {
                    let known: Vec<_> = hosts.iter().map(String::as_str).collect();
                    return Err(at(
                        &sc.id,
                        format!(
                            "scenario `{id}`: fault `{}` names host `{host}`, which no component of the suite defines (hosts: {})",
                            f.kind(),
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ),
                    ));
                }
            }
        }

        // Documented impact: exactly the suite's operations.
        let mut covered = BTreeSet::new();
        for (op, _) in sc.documented.impact.iter() {
            if !ops.contains(&op.value.as_str()) {
                return Err(at(
                    op,
                    format!(
                        "scenario `{id}`: documented impact names operation `{}`, which the suite does not define (operations: {})",
                        op.value,
                        ops.join(", ")
                    ),
                ));
            }
            covered.insert(op.value.as_str());
        }
        if let Some(missing) = ops.iter().find(|o| !covered.contains(*o)) {
            return Err(at(
                &sc.id,
                format!("scenario `{id}`: `documented.impact` has no entry for operation `{missing}`; every operation needs its documented glyph"),
            ));
        }
        let recovery = &sc.documented.recovery;
        if let Some(m) = &recovery.mttr {
            let room = m.value.0 + crate::model::table::RECOVERY_GRACE + spec.timing.stable.0;
            if room >= spec.timing.recovery.0 {
                return Err(at(
                    m,
                    format!(
                        "scenario `{id}`: `mttr` {} plus the 2 s allowance and `timing.stable` ({}) must be shorter than `timing.recovery` ({}), or recovery over the bound could never be seen",
                        m.value, spec.timing.stable, spec.timing.recovery
                    ),
                ));
            }
        }
        for (op, reason) in recovery.mttr_excludes.iter() {
            if !ops.contains(&op.value.as_str()) {
                return Err(at(op, format!("scenario `{id}`: `mttr-excludes` names operation `{}`, which the suite does not define", op.value)));
            }
            if recovery.mttr.is_none() {
                return Err(at(op, format!("scenario `{id}`: `mttr-excludes` without `mttr`: there is no bound to exclude `{}` from", op.value)));
            }
            if reason.trim().is_empty() {
                return Err(at(op, format!("scenario `{id}`: `mttr-excludes` needs a reason for `{}`", op.value)));
            }
        }
        for (claim, reason) in recovery.derived.iter() {
            if !recovery.claims.iter().any(|c| c.id() == claim.value) {
                let claims: Vec<String> = recovery.claims.iter().map(|c| c.id()).collect();
                return Err(at(
                    claim,
                    format!(
                        "scenario `{id}`: `recovery.derived` names claim `{}`, which the scenario does not make (its claims: {})",
                        claim.value,
                        if claims.is_empty() { "none".into() } else { claims.join(", ") }
                    ),
                ));
            }
            if reason.trim().is_empty() {
                return Err(at(claim, format!("scenario `{id}`: `recovery.derived` needs a reason for `{}`", claim.value)));
            }
            if sc.derived.is_some() {
                return Err(at(claim, format!("scenario `{id}`: the whole scenario is `derived`; its claims need no `recovery.derived`")));
            }
        }
        for (op, bound) in recovery.failover.iter() {
            if !ops.contains(&op.value.as_str()) {
                return Err(at(op, format!("scenario `{id}`: `failover` names operation `{}`, which the suite does not define", op.value)));
            }
            if sc.expected_impact(&op.value) == Some(crate::model::Impact::Lost) {
                return Err(at(
                    op,
                    format!("scenario `{id}`: `failover` of `{}`, whose cell is ❌: an operation that fails over works again during the fault", op.value),
                ));
            }
            if bound.0 >= sc.fault_floor(&spec.timing).0 {
                return Err(at(
                    op,
                    format!("scenario `{id}`: `failover` of `{}` ({bound}) is not shorter than the fault ({})", op.value, sc.fault_floor(&spec.timing)),
                ));
            }
        }
        if let Some(message) = check_restore_claims(sc).or_else(|| check_separation_claims(spec, sc)) {
            return Err(at(&sc.id, format!("scenario `{id}`: {message}")));
        }
        if recovery.mttr.is_some() && ops.iter().all(|o| !recovery.judges(o)) {
            return Err(at(&sc.id, format!("scenario `{id}`: `mttr-excludes` excludes every operation; leave `mttr` out instead")));
        }
        for (op, _) in sc.documented.notes.iter() {
            if !ops.contains(&op.value.as_str()) {
                return Err(at(op, format!("scenario `{id}`: `documented.notes` names operation `{}`, which the suite does not define", op.value)));
            }
        }
        if sc.derived.as_ref().is_some_and(|r| r.trim().is_empty()) {
            return Err(at(&sc.id, format!("scenario `{id}`: `derived` needs the reason the table is derived")));
        }
        for (op, reason) in sc.documented.derived.iter() {
            if !ops.contains(&op.value.as_str()) {
                return Err(at(op, format!("scenario `{id}`: `documented.derived` names operation `{}`, which the suite does not define", op.value)));
            }
            if reason.trim().is_empty() {
                return Err(at(op, format!("scenario `{id}`: `documented.derived` needs a reason for `{}`", op.value)));
            }
            if sc.derived.is_some() {
                return Err(at(op, format!("scenario `{id}`: the whole scenario is `derived`; its cells need no `documented.derived`")));
            }
        }

        // Deviations: each names a real cell, agrees with the document, and carries evidence.
        let mut deviated = BTreeSet::new();
        for d in &sc.deviations {
            let op = &d.operation;
            if !deviated.insert(op.value.as_str()) {
                return Err(at(op, format!("scenario `{id}`: deviation for `{}` is recorded twice", op.value)));
            }
            if d.reason.trim().is_empty() || d.evidence.is_empty() || d.evidence.iter().any(|e| e.trim().is_empty()) {
                return Err(at(op, format!("scenario `{id}`: deviation for `{}` needs a `reason` and non-empty `evidence`", op.value)));
            }
            if op.value == RECOVERY {
                if d.documented.is_some() || d.observed.is_some() || d.onset.is_some() {
                    return Err(at(op, format!("scenario `{id}`: a `{RECOVERY}` deviation has no `documented`/`observed` glyphs and no `onset`")));
                }
                continue;
            }
            if !ops.contains(&op.value.as_str()) {
                return Err(at(op, format!("scenario `{id}`: deviation names operation `{}`, which the suite does not define", op.value)));
            }
            let documented = sc.documented.impact.iter().find(|(k, _)| k.value == op.value).map(|(_, v)| *v);
            match (d.documented, d.observed, d.onset) {
                (Some(doc), Some(obs), None) => {
                    if Some(doc) != documented {
                        return Err(at(
                            op,
                            format!(
                                "scenario `{id}`: deviation for `{}` says the document has {doc}, but `documented.impact` has {}",
                                op.value,
                                documented.map(|i| i.glyph()).unwrap_or("nothing")
                            ),
                        ));
                    }
                    if doc == obs {
                        return Err(at(
                            op,
                            format!("scenario `{id}`: deviation for `{}` observes the documented glyph {doc}; that is not a deviation", op.value),
                        ));
                    }
                }
                (None, None, Some(onset)) => {
                    if d.kind != super::DeviationKind::System {
                        return Err(at(op, format!("scenario `{id}`: an onset deviation for `{}` is the system's behaviour (`kind: system`)", op.value)));
                    }
                    if documented == Some(crate::model::Impact::Unaffected) {
                        return Err(at(
                            op,
                            format!("scenario `{id}`: deviation for `{}`: an onset needs an impact to take effect; the document has ✅", op.value),
                        ));
                    }
                    let settle = spec.operations.iter().find(|o| o.id.value == op.value).map(|o| o.settle).unwrap_or_default();
                    let floor = sc.fault_floor(&spec.timing);
                    if onset <= settle || onset >= floor {
                        return Err(at(
                            op,
                            format!(
                                "scenario `{id}`: deviation for `{}`: `onset` ({onset}) must be longer than the operation's `settle` ({settle}) and shorter than the fault ({floor}: {})",
                                op.value,
                                if sc.window.is_some() { "the scenario's `window.at-least`" } else { "`timing.fault`" }
                            ),
                        ));
                    }
                }
                _ => {
                    return Err(at(
                        op,
                        format!("scenario `{id}`: deviation for `{}` needs either both `documented` and `observed`, or `onset` alone", op.value),
                    ));
                }
            }
        }

        // Causes: every ⚠️ and ❌ cell says what its failures are expected to be; a ✅ cell has none.
        for (op, patterns) in sc.documented.causes.iter() {
            if !ops.contains(&op.value.as_str()) {
                return Err(at(op, format!("scenario `{id}`: `documented.causes` names operation `{}`, which the suite does not define", op.value)));
            }
            if sc.expected_impact(&op.value) == Some(crate::model::Impact::Unaffected) {
                return Err(at(op, format!("scenario `{id}`: `documented.causes` for `{}`, a ✅ cell; only ⚠️ and ❌ cells have failure causes", op.value)));
            }
            if patterns.is_empty() {
                return Err(at(op, format!("scenario `{id}`: `documented.causes` for `{}` is empty", op.value)));
            }
            for p in patterns {
                if let Err(e) = regex::Regex::new(p) {
                    let why = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
                    return Err(at(op, format!("scenario `{id}`: cause `{p}` of `{}` is not a regular expression: {why}", op.value)));
                }
            }
        }
        if let Some(op) = ops.iter().find(|o| sc.expected_impact(o) != Some(crate::model::Impact::Unaffected) && sc.causes(o).is_empty()) {
            return Err(at(
                &sc.id,
                format!(
                    "scenario `{id}`: the {} cell of `{op}` needs `documented.causes`: the failure causes that explain it (a ⚠️ or ❌ reached for another reason is not the documented one)",
                    sc.expected_impact(op).map(|i| i.glyph()).unwrap_or("?")
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars_not_bytes() {
        assert_eq!(line_col(b""), (1, 1));
        assert_eq!(line_col(b"ab\ncd"), (2, 3));
        assert_eq!(line_col("é".as_bytes()), (1, 2));
    }

    #[test]
    fn message_prefix_is_stripped() {
        let e = serde_saphyr::from_str::<u32>("x").unwrap_err();
        let m = error_message(&e);
        assert!(!m.starts_with("error:"), "{m}");
        assert!(!m.contains("line 1 column"), "{m}");
    }
}

/// What is wrong with a fault's own settings, if anything: a signal its kind cannot send,
/// a leader of a component that elects none, more instances than the topology runs.
fn check_fault_options(f: &crate::fault::FaultSpec, topology: &crate::topology::Topology) -> Option<String> {
    use crate::fault::controlplane::{Component, Pick};
    use crate::fault::{FaultSpec, Signal};
    match f {
        FaultSpec::StopHost { signal: Signal::Stop, .. } | FaultSpec::StopStorage { signal: Signal::Stop, .. } => {
            Some("`signal: stop` (pause) is only for `stop-control-plane`; expected `term` or `kill`".into())
        }
        FaultSpec::StopControlPlane { cluster, component, pick, count, .. } => {
            let c = topology.cluster(cluster)?;
            let instances = if *component == Component::Etcd { c.etcd } else { c.apiservers };
            match pick {
                Pick::Leader if !component.has_leader() => Some(format!("`pick: leader`: {} elects no leader; expected `pick: first`", component.name())),
                Pick::Leader if *count != 1 => Some(format!("`pick: leader` stops one instance; `count` is {count}, expected 1")),
                Pick::First if *count == 0 || *count > instances => {
                    Some(format!("`count` is {count}, expected 1 to {instances} (cluster {cluster} runs {instances} {})", component.name()))
                }
                _ => None,
            }
        }
        FaultSpec::LoseEtcdData { cluster, writes, .. } => {
            let c = topology.cluster(cluster)?;
            if c.etcd == 0 {
                Some(format!("cluster {cluster} runs no etcd member of its own"))
            } else if *writes == 0 || *writes > 1000 {
                Some(format!(
                    "`writes` is {writes}, expected 1 to 1000: the writes after the snapshot are what the RPO counts, and what proves a refused backup restored nothing"
                ))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A DR scenario states what its restore must show, and only a DR scenario states it: an
/// intact backup `restored-from-backup`, a corrupt one `backup-refused`.
/// The scheduling table: each component once, every cell readable, every `pods` row with
/// a namespace and at least one label, at most one row for "all other" pods.
fn check_placement(p: &super::placement::PlacementSpec) -> Check {
    use super::placement::{Instances, replicas};
    if p.clusters.value.is_empty() {
        return Err(at(&p.clusters, "`placement.clusters`: name at least one cluster".into()));
    }
    if p.rows.is_empty() {
        return Err(at(&p.clusters, "`placement.rows`: the table needs at least one row".into()));
    }
    let mut seen = BTreeSet::new();
    let mut others = 0;
    for row in &p.rows {
        let c = &row.component;
        if c.value.trim().is_empty() || !seen.insert(c.value.as_str()) {
            return Err(at(c, format!("`placement.rows`: component `{}` is empty or listed twice", c.value)));
        }
        if replicas(&row.replicas.value).is_none() {
            return Err(at(
                &row.replicas,
                format!("`placement.rows`: `replicas` of `{}` is `{}`; expected a number, `n` or `?` (an optional trailing `*`)", c.value, row.replicas.value),
            ));
        }
        match &row.instances {
            Instances::Pods { namespace, labels } if namespace.is_empty() || labels.is_empty() => {
                return Err(at(c, format!("`placement.rows`: `instances` of `{}` needs a `namespace` and at least one label", c.value)));
            }
            Instances::AllOtherPods => others += 1,
            Instances::NotPods { reason } if reason.trim().is_empty() => {
                return Err(at(c, format!("`placement.rows`: `instances` of `{}` is `not-pods` without a `reason`", c.value)));
            }
            _ => {}
        }
        if others > 1 {
            return Err(at(c, "`placement.rows`: only one row may take `all-other-pods`".into()));
        }
    }
    Ok(())
}

/// `placement-conforms` needs the table; the drain claims need a `drain-node` fault.
fn check_separation_claims(spec: &SuiteSpec, sc: &super::ScenarioSpec) -> Option<String> {
    use super::Claim;
    let claims = &sc.documented.recovery.claims;
    if claims.contains(&Claim::PlacementConforms) && spec.placement.is_none() {
        return Some("claim `placement-conforms` needs the suite's `placement` table".into());
    }
    let drains = sc.faults.iter().any(|f| matches!(f, crate::fault::FaultSpec::DrainNode { .. }));
    let (completed, refused) = (claims.contains(&Claim::DrainCompleted), claims.contains(&Claim::DrainRefusedByPdb));
    if (completed || refused) && !drains {
        return Some("claims `drain-completed` and `drain-refused-by-pdb` need a `drain-node` fault in the scenario".into());
    }
    if claims.contains(&Claim::ReplacedElsewhere) && !sc.faults.iter().any(|f| matches!(f, crate::fault::FaultSpec::LoseNode { .. })) {
        return Some("claim `replaced-elsewhere` needs a `lose-node` fault in the scenario".into());
    }
    if completed && refused {
        return Some("claims `drain-completed` and `drain-refused-by-pdb` contradict each other: a drain with a refused eviction is not complete".into());
    }
    None
}

fn check_restore_claims(sc: &super::ScenarioSpec) -> Option<String> {
    use super::Claim;
    use crate::fault::FaultSpec;
    use crate::fault::etcddata::Backup;
    let backup = sc.faults.iter().find_map(|f| match f {
        FaultSpec::LoseEtcdData { backup, .. } => Some(*backup),
        _ => None,
    });
    let claims = &sc.documented.recovery.claims;
    let (restored, refused) = (claims.contains(&Claim::RestoredFromBackup), claims.contains(&Claim::BackupRefused));
    match backup {
        None if restored || refused => Some("claims `restored-from-backup` and `backup-refused` need a `lose-etcd-data` fault in the scenario".into()),
        Some(Backup::Intact) if !restored || refused => {
            Some("fault `lose-etcd-data` restores an intact backup: expected the claim `restored-from-backup` (and not `backup-refused`)".into())
        }
        Some(b) if b != Backup::Intact && (!refused || restored) => {
            Some(format!("fault `lose-etcd-data` restores {}: expected the claim `backup-refused` (and not `restored-from-backup`)", b.words()))
        }
        _ => None,
    }
}
