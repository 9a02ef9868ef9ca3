//! The DR exercise's claims, checked against what the `lose-etcd-data` fault recorded.
//!
//! - `restored-from-backup`: etcdutl restored every member from the snapshot; every object
//!   the snapshot held (the inventory) is back with the same content; every Deployment
//!   Ready at the snapshot is Ready again; every write accepted after the snapshot is gone
//!   (a write that survived proves the data did not come from the snapshot). States the
//!   RTO (data lost → API healthy and workloads Ready) and the RPO (writes after the
//!   snapshot lost, by kind), with object counts per kind before and after.
//! - `backup-refused`: etcdutl refused the corrupt backup with one of its integrity errors
//!   (any other failure — a timeout, a bad flag, a missing file — is not the backup being
//!   refused), and no member was restored from it: the data moved aside is back, every
//!   write after the snapshot and every object of the snapshot present.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use super::{Context, SETTLE};
use crate::fault::Undo;
use crate::fault::etcddata::{self, Inventory, Key, Record, Restore, Write, content, kind_of, read_json};
use crate::wait::Deadline;

/// What the fault left in its directory.
struct Recorded {
    cluster: String,
    dir: PathBuf,
    backup: etcddata::Backup,
    record: Record,
    restore: Restore,
    inventory: Inventory,
    writes: Vec<Write>,
}

fn recorded(cx: &Context<'_>, claim: &str) -> Result<Recorded, String> {
    let (cluster, dir, backup) = cx
        .undos
        .iter()
        .find_map(|u| match u {
            Undo::RestoreEtcdData { cluster, dir, backup } => Some((cluster.clone(), dir.clone(), *backup)),
            _ => None,
        })
        .ok_or_else(|| format!("claim `{claim}` needs a `lose-etcd-data` fault in the scenario"))?;
    let need = |what: &str| format!("{}: missing; the fault recorded no {what}", dir.display());
    let record: Record = read_json(&dir.join("record.json"))?.ok_or_else(|| need("record"))?;
    let restore = record.restore.clone().ok_or_else(|| need("restore"))?;
    let inventory: Inventory = read_json(&dir.join("inventory.json"))?.ok_or_else(|| need("inventory"))?;
    let writes: Vec<Write> = read_json(&dir.join("writes.json"))?.ok_or_else(|| need("writes"))?;
    Ok(Recorded { cluster, dir, backup, record, restore, inventory, writes })
}

/// The cluster's objects once every Deployment Ready at the snapshot is Ready again (or
/// the settle deadline passed: then what was still not Ready), with the time it was seen.
async fn after(cx: &Context<'_>, r: &Recorded) -> Result<(BTreeMap<Key, (u64, Value)>, Vec<String>), String> {
    let client = cx.env.cluster(&r.cluster).map_err(|e| e.to_string())?.client.clone();
    let deadline = Deadline::after(SETTLE);
    loop {
        match etcddata::list_all(&client).await {
            Ok(all) => {
                let not_ready: Vec<String> = r
                    .inventory
                    .ready_deployments
                    .iter()
                    .filter(|k| {
                        let v = all.get(*k).map(|(_, v)| v);
                        let want = v.and_then(|v| v.pointer("/spec/replicas")).and_then(Value::as_i64).unwrap_or(1);
                        v.and_then(|v| v.pointer("/status/readyReplicas")).and_then(Value::as_i64).unwrap_or(0) < want
                    })
                    .cloned()
                    .collect();
                if not_ready.is_empty() || deadline.passed() {
                    return Ok((all, not_ready));
                }
            }
            Err(e) if deadline.passed() => return Err(format!("the API after the restore: {e}")),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `Kind n, Kind m` of a set of keys.
fn per_kind<'a>(keys: impl IntoIterator<Item = &'a Key>) -> String {
    let mut n: BTreeMap<&str, usize> = BTreeMap::new();
    for k in keys {
        *n.entry(kind_of(k)).or_default() += 1;
    }
    if n.is_empty() {
        return "none".into();
    }
    n.iter().map(|(k, c)| format!("{k} {c}")).collect::<Vec<_>>().join(", ")
}

/// `Kind ns/a, ns/b; Kind …`: keys listed by kind.
fn listed<'a>(keys: impl IntoIterator<Item = &'a Key>) -> String {
    let mut by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for k in keys {
        by.entry(kind_of(k)).or_default().push(k.split_once(' ').map(|(_, n)| n).unwrap_or(k));
    }
    by.iter().map(|(k, names)| format!("{k} {}", names.join(" "))).collect::<Vec<_>>().join("; ")
}

/// The comparison of the inventory with the cluster after the restore.
struct Diff {
    missing: Vec<Key>,
    /// Content differs, and nothing wrote the object since the restore.
    different: Vec<Key>,
    /// Written by the cluster's clients since the restore (its revision is above the
    /// restore's bump): not compared.
    rewritten: Vec<Key>,
    extra: Vec<Key>,
    /// Accepted writes after the snapshot present after the restore.
    survived: Vec<Key>,
    lost: Vec<Key>,
}

fn diff(r: &Recorded, after: &BTreeMap<Key, (u64, Value)>) -> Diff {
    let mut d = Diff { missing: vec![], different: vec![], rewritten: vec![], extra: vec![], survived: vec![], lost: vec![] };
    for (k, want) in &r.inventory.objects {
        match after.get(k) {
            None => d.missing.push(k.clone()),
            Some((_, v)) if content(v.clone()) == *want => {}
            Some((rv, _)) if *rv as i64 > r.record.revision => d.rewritten.push(k.clone()),
            Some(_) => d.different.push(k.clone()),
        }
    }
    let writes: BTreeSet<&Key> = r.writes.iter().filter(|w| w.accepted).map(|w| &w.key).collect();
    for w in &writes {
        if after.contains_key(*w) { d.survived.push((*w).clone()) } else { d.lost.push((*w).clone()) }
    }
    d.extra = after.keys().filter(|k| !r.inventory.objects.contains_key(*k) && !writes.contains(k)).cloned().collect();
    d
}

/// RTO: from the loss to every operation of the scenario working again for good (the API
/// read and written, etcd healthy, the workloads served), with its parts.
fn rto(cx: &Context<'_>, r: &Recorded, ready: &str) -> String {
    let lost = r.record.destroyed_at.unwrap_or(r.restore.started_at);
    let Some(recovered) = cx.recovered_at.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs_f64()) else {
        return "RTO not measured: an operation never worked again".into();
    };
    format!(
        "RTO {:.1} s from the loss to every operation working again (outage held {:.1} s; restore {:.1} s: etcdutl {:.1} s, etcd healthy {:.1} s after it began, API servers started {:.1} s after; then {:.1} s); {ready}",
        recovered - lost,
        r.restore.started_at - lost,
        r.restore.apiservers_started_at - r.restore.started_at,
        r.restore.restore_secs,
        r.restore.etcd_healthy_at - r.restore.started_at,
        r.restore.apiservers_started_at - r.restore.etcd_healthy_at,
        recovered - r.restore.apiservers_started_at,
    )
}

pub async fn restored_from_backup(cx: &Context<'_>) -> Result<(bool, String), String> {
    let r = recorded(cx, "restored-from-backup")?;
    if r.restore.outcome != "restored" {
        return Ok((false, format!("no restore from {}: {} {}", r.backup.words(), r.restore.outcome, r.restore.message)));
    }
    let (after, not_ready) = after(cx, &r).await?;
    let d = diff(&r, &after);
    let mut wrong = Vec::new();
    if d.lost.is_empty() && d.survived.is_empty() {
        wrong.push("no write after the snapshot was accepted, so nothing shows where the data came from".to_string());
    }
    if !d.missing.is_empty() {
        wrong.push(format!("{} object(s) of the snapshot missing: {}", d.missing.len(), listed(&d.missing)));
    }
    if !d.different.is_empty() {
        wrong.push(format!("{} object(s) back with other content: {}", d.different.len(), listed(&d.different)));
    }
    if !d.survived.is_empty() {
        wrong.push(format!("{} write(s) after the snapshot still there, so the data is not the snapshot's: {}", d.survived.len(), listed(&d.survived)));
    }
    if !not_ready.is_empty() {
        wrong.push(format!("not Ready {} s after the restore: {}", SETTLE.as_secs(), listed(&not_ready)));
    }
    let ready = ready_words(&r, &not_ready);
    let back = r.inventory.objects.len() - d.missing.len() - d.different.len() - d.rewritten.len();
    let detail = format!(
        "restored from the snapshot at revision {}; objects at the snapshot {} ({}), after the restore {} ({}): {back} back unchanged, {} missing, {} different, {} rewritten since the restore by the cluster's clients (not compared{}), {} not in the snapshot ({}); RPO: {} accepted write(s) after the snapshot, {} lost ({}): {}{}; {}",
        r.record.revision,
        r.inventory.objects.len(),
        per_kind(r.inventory.objects.keys()),
        after.len(),
        per_kind(after.keys()),
        d.missing.len(),
        d.different.len(),
        d.rewritten.len(),
        if d.rewritten.is_empty() { String::new() } else { format!(": {}", listed(&d.rewritten)) },
        d.extra.len(),
        per_kind(&d.extra),
        d.lost.len() + d.survived.len(),
        d.lost.len(),
        per_kind(&d.lost),
        listed(&d.lost),
        if r.inventory.after_snapshot.is_empty() {
            String::new()
        } else {
            format!(
                "; the cluster's own clients changed {} object(s) after the snapshot too ({}), whose later versions are not in it",
                r.inventory.after_snapshot.len(),
                per_kind(&r.inventory.after_snapshot)
            )
        },
        rto(cx, &r, &ready),
    );
    Ok(if wrong.is_empty() { (true, detail) } else { (false, format!("{}; {detail}", wrong.join("; "))) })
}

fn ready_words(r: &Recorded, not_ready: &[String]) -> String {
    let n = r.inventory.ready_deployments.len();
    format!("{} of the {n} Deployment(s) Ready at the snapshot Ready again when checked", n - not_ready.len())
}

/// The integrity checks of `etcdutl snapshot restore` (etcdutl/snapshot/v3_snapshot.go of
/// the pinned etcd): the snapshot's length leaves no room for its sha256 (a truncated
/// copy), the sha256 does not match the content (a corrupted one), bbolt's consistency
/// check of the database failed.
const INTEGRITY_ERRORS: [&str; 3] = ["snapshot missing hash but --skip-hash-check=false", "expected sha256 ", "snapshot file integrity check failed"];

/// Whether `message` carries one of etcdutl's integrity errors.
fn is_integrity_error(message: &str) -> bool {
    INTEGRITY_ERRORS.iter().any(|e| message.contains(e))
}

pub async fn backup_refused(cx: &Context<'_>) -> Result<(bool, String), String> {
    let r = recorded(cx, "backup-refused")?;
    if r.restore.outcome != "refused" || r.restore.message.trim().is_empty() {
        return Ok((false, format!("{} was not refused: the restore's outcome is `{}` {}", r.backup.words(), r.restore.outcome, r.restore.message)));
    }
    if !is_integrity_error(&r.restore.message) {
        return Ok((
            false,
            format!(
                "etcdutl failed on {}, but not with an integrity error of the backup (one of: {}): {}",
                r.backup.words(),
                INTEGRITY_ERRORS.map(|e| format!("`{}`", e.trim())).join(", "),
                r.restore.message
            ),
        ));
    }
    let (after, not_ready) = after(cx, &r).await?;
    let d = diff(&r, &after);
    let staging = r.dir.join("staging");
    let mut wrong = Vec::new();
    if d.lost.is_empty() && d.survived.is_empty() {
        wrong.push("no write after the snapshot was accepted, so nothing shows where the data came from".to_string());
    }
    if !d.lost.is_empty() {
        wrong.push(format!("{} write(s) after the snapshot gone, so a member holds restored data: {}", d.lost.len(), listed(&d.lost)));
    }
    if !d.missing.is_empty() {
        wrong.push(format!("{} object(s) of the snapshot missing: {}", d.missing.len(), listed(&d.missing)));
    }
    if staging.exists() {
        wrong.push(format!("a half-restored member's data is left at {}", staging.display()));
    }
    if !not_ready.is_empty() {
        wrong.push(format!("not Ready {} s after the data was put back: {}", SETTLE.as_secs(), listed(&not_ready)));
    }
    let ready = ready_words(&r, &not_ready);
    let detail = format!(
        "etcdutl refused {}: {}; no member was restored from it: the data moved aside is back ({} of {} write(s) after the snapshot present, {} of {} objects of the snapshot); {}",
        r.backup.words(),
        r.restore.message,
        d.survived.len(),
        d.survived.len() + d.lost.len(),
        r.inventory.objects.len() - d.missing.len(),
        r.inventory.objects.len(),
        rto(cx, &r, &ready),
    );
    Ok(if wrong.is_empty() { (true, detail) } else { (false, format!("{}; {detail}", wrong.join("; "))) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(objects: &[(&str, Value)], writes: &[&str]) -> Recorded {
        Recorded {
            cluster: "main".into(),
            dir: "/nonexistent".into(),
            backup: etcddata::Backup::Intact,
            record: Record { revision: 100, ..Default::default() },
            restore: Restore {
                started_at: 0.0,
                outcome: "restored".into(),
                message: String::new(),
                restore_secs: 0.0,
                etcd_healthy_at: 0.0,
                apiservers_started_at: 0.0,
            },
            inventory: Inventory { objects: objects.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(), ..Default::default() },
            writes: writes.iter().map(|k| Write { key: k.to_string(), accepted: true }).collect(),
        }
    }

    /// Before, any failure of etcdutl counted as the backup refused.
    #[test]
    fn only_an_integrity_error_is_a_refusal_of_the_backup() {
        let truncated = "member control-plane-1: etcdutl snapshot restore failed (exit status: 1): Error: snapshot missing hash but --skip-hash-check=false";
        let garbled = "member control-plane-1: etcdutl snapshot restore failed (exit status: 1): Error: expected sha256 [173 231], got [10 26]";
        let bolt = "Error: snapshot file integrity check failed. 2 errors found.\npage 7: unreachable unfreed";
        for m in [truncated, garbled, bolt] {
            assert!(is_integrity_error(m), "{m}");
        }
        for m in [
            "member control-plane-1: etcdutl timed out after 60 s",
            "Error: unknown flag: --bump-revisionx",
            "Error: open /x/backup.db: no such file or directory",
            "",
        ] {
            assert!(!is_integrity_error(m), "{m}");
        }
    }

    /// The checker's rules, on made-up listings (a unit test of pure logic): a restored
    /// object equal but for its resource version is back; one with other content and an
    /// old revision is different; one rewritten since (revision above the snapshot's) is
    /// not compared; absent ones are missing; writes after the snapshot are lost or, when
    /// present, survived.
    #[test]
    fn diff_sorts_every_object() {
        let obj = |data: &str, rv: &str| serde_json::json!({"metadata": {"name": "x", "resourceVersion": rv}, "data": {"k": data}});
        let r = recorded(
            &[
                ("ConfigMap a/same", content(obj("1", "5"))),
                ("ConfigMap a/changed", content(obj("1", "6"))),
                ("ConfigMap a/rewritten", content(obj("1", "7"))),
                ("Secret a/gone", content(obj("1", "8"))),
            ],
            &["ConfigMap dr/after-0", "Secret dr/after-1"],
        );
        let after: BTreeMap<Key, (u64, Value)> = [
            ("ConfigMap a/same", 5, obj("1", "5")),
            ("ConfigMap a/changed", 6, obj("2", "6")),
            ("ConfigMap a/rewritten", 1_000_000_200, obj("2", "1000000200")),
            ("Secret dr/after-1", 101, obj("1", "101")),
            ("Namespace new", 1_000_000_300, obj("1", "1000000300")),
        ]
        .into_iter()
        .map(|(k, rv, v)| (k.to_string(), (rv, v)))
        .collect();
        let d = diff(&r, &after);
        assert_eq!(d.missing, vec!["Secret a/gone"]);
        assert_eq!(d.different, vec!["ConfigMap a/changed"]);
        assert_eq!(d.rewritten, vec!["ConfigMap a/rewritten"]);
        assert_eq!(d.extra, vec!["Namespace new"]);
        assert_eq!(d.lost, vec!["ConfigMap dr/after-0"]);
        assert_eq!(d.survived, vec!["Secret dr/after-1"]);
        assert_eq!(per_kind(&d.lost), "ConfigMap 1");
        assert_eq!(listed(&["ConfigMap a/x".to_string(), "ConfigMap a/y".to_string(), "Secret b/z".to_string()]), "ConfigMap a/x a/y; Secret b/z");
    }
}
