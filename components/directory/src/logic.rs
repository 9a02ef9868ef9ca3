//! The directory's decisions, as pure functions: which policies select a cluster, what a
//! cluster's configuration is, what mirroring must create, update and delete, and which
//! objects are invalid (skipped, never fatal).

use std::collections::{BTreeMap, BTreeSet};

use crate::{ClusterConfigSpec, ClusterPolicySpec, NamespaceReport, NamespacedConfig, PolicyBinding, PolicyRole};

/// Label selection as Kubernetes does it: every `key: value` of the selector must be on
/// the object; an empty selector selects everything.
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && b.len() <= 63 && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-') && b[0] != b'-' && b[b.len() - 1] != b'-'
}

fn quantity(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit() || c == '.') && ["", "m", "k", "M", "G", "Ki", "Mi", "Gi"].contains(&unit)
}

/// Why a policy cannot be applied, if it cannot.
pub fn validate_policy(p: &ClusterPolicySpec) -> Result<(), String> {
    for ns in &p.namespaces {
        if !dns_label(ns) {
            return Err(format!("namespace name `{ns}` is not a DNS label"));
        }
    }
    for r in &p.cluster_roles {
        if r.name.is_empty() || r.name.contains('/') {
            return Err(format!("cluster role name `{}` is invalid", r.name));
        }
        if r.rules.iter().any(|rule| rule.verbs.is_empty() || rule.resources.is_empty()) {
            return Err(format!("cluster role `{}` has a rule without verbs or resources", r.name));
        }
    }
    for b in &p.role_bindings {
        if b.cluster_role.is_empty() || b.group.is_empty() {
            return Err("a role binding needs a clusterRole and a group".into());
        }
    }
    if let Some(l) = &p.limits
        && (!quantity(&l.default_cpu) || !quantity(&l.default_memory))
    {
        return Err(format!("limits `{}`/`{}` are not quantities", l.default_cpu, l.default_memory));
    }
    if (!p.role_bindings.is_empty() || p.limits.is_some()) && p.namespace_selector.is_empty() {
        return Err("namespace-targeted parts (roleBindings, limits) need a namespaceSelector".into());
    }
    Ok(())
}

/// The configuration of one cluster: the global parts of every policy selecting it, and
/// the namespace-targeted parts for each namespace it reported. Invalid policies are
/// skipped and named in the second value.
pub fn render(
    cluster: &str,
    labels: &BTreeMap<String, String>,
    namespaces: &[NamespaceReport],
    policies: &[(String, ClusterPolicySpec)],
) -> (ClusterConfigSpec, Vec<String>) {
    let mut skipped = Vec::new();
    let mut sorted: Vec<&(String, ClusterPolicySpec)> = policies.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut selected = Vec::new();
    for (name, p) in sorted {
        match validate_policy(p) {
            Err(why) => skipped.push(format!("ClusterPolicy {name}: {why}")),
            Ok(()) if selects(&p.cluster_selector, labels) => selected.push((name, p)),
            Ok(()) => {}
        }
    }
    let mut out = ClusterConfigSpec { cluster: cluster.to_string(), ..Default::default() };
    let mut ns_set = BTreeSet::new();
    let mut roles: BTreeMap<String, PolicyRole> = BTreeMap::new();
    for (name, p) in &selected {
        out.policies.push((*name).clone());
        ns_set.extend(p.namespaces.iter().cloned());
        for r in &p.cluster_roles {
            roles.entry(r.name.clone()).or_insert_with(|| r.clone());
        }
    }
    out.namespaces = ns_set.into_iter().collect();
    out.cluster_roles = roles.into_values().collect();
    let mut reports: Vec<&NamespaceReport> = namespaces.iter().collect();
    reports.sort();
    for ns in reports {
        let mut bindings: BTreeSet<PolicyBinding> = BTreeSet::new();
        let mut limits = None;
        for (_, p) in &selected {
            if p.namespace_selector.is_empty() || !selects(&p.namespace_selector, &ns.labels) {
                continue;
            }
            bindings.extend(p.role_bindings.iter().cloned());
            if limits.is_none() {
                limits = p.limits.clone();
            }
        }
        if !bindings.is_empty() || limits.is_some() {
            out.namespaced.push(NamespacedConfig { namespace: ns.name.clone(), role_bindings: bindings.into_iter().collect(), limits });
        }
    }
    (out, skipped)
}

/// What mirroring must do to make `actual` equal `desired` (both by name).
#[derive(Debug, PartialEq)]
pub struct MirrorPlan<T> {
    pub create: Vec<T>,
    pub update: Vec<T>,
    pub delete: Vec<String>,
}

pub fn mirror_plan<T: Clone>(desired: &[(String, T)], actual: &[(String, T)], same: impl Fn(&T, &T) -> bool) -> MirrorPlan<T> {
    let have: BTreeMap<&String, &T> = actual.iter().map(|(n, t)| (n, t)).collect();
    let want: BTreeSet<&String> = desired.iter().map(|(n, _)| n).collect();
    let mut plan = MirrorPlan { create: vec![], update: vec![], delete: vec![] };
    for (name, t) in desired {
        match have.get(name) {
            None => plan.create.push(t.clone()),
            Some(cur) if !same(cur, t) => plan.update.push(t.clone()),
            Some(_) => {}
        }
    }
    plan.delete = actual.iter().map(|(n, _)| n).filter(|n| !want.contains(n)).cloned().collect();
    plan
}

/// The JSON merge patch for a change of a Cluster's labels and/or annotations. A field
/// the change does not name is left out, never sent as `null`: in a merge patch `null`
/// deletes, and a change of annotations must not wipe the labels policies select on.
pub fn metadata_merge_patch(labels: Option<&BTreeMap<String, String>>, annotations: Option<&BTreeMap<String, String>>) -> serde_json::Value {
    let mut meta = serde_json::Map::new();
    if let Some(l) = labels {
        meta.insert("labels".into(), serde_json::json!(l));
    }
    if let Some(a) = annotations {
        meta.insert("annotations".into(), serde_json::json!(a));
    }
    serde_json::json!({ "metadata": meta })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_merge_patch_leaves_out_what_the_change_does_not_name() {
        let a: std::collections::BTreeMap<String, String> = [("k".to_string(), "v".to_string())].into();
        assert_eq!(super::metadata_merge_patch(None, Some(&a)), serde_json::json!({ "metadata": { "annotations": { "k": "v" } } }));
        assert_eq!(super::metadata_merge_patch(Some(&a), None), serde_json::json!({ "metadata": { "labels": { "k": "v" } } }));
        assert_eq!(super::metadata_merge_patch(None, None), serde_json::json!({ "metadata": {} }));
    }

    use super::*;
    use crate::{Limits, Rule};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn policy() -> ClusterPolicySpec {
        ClusterPolicySpec {
            cluster_selector: labels(&[("role", "replica")]),
            namespaces: vec!["platform".into()],
            cluster_roles: vec![PolicyRole {
                name: "reader".into(),
                rules: vec![Rule { api_groups: vec!["".into()], resources: vec!["pods".into()], verbs: vec!["get".into()] }],
            }],
            namespace_selector: labels(&[("team", "drill")]),
            role_bindings: vec![PolicyBinding { cluster_role: "reader".into(), group: "drillers".into() }],
            limits: Some(Limits { default_cpu: "250m".into(), default_memory: "128Mi".into() }),
        }
    }

    #[test]
    fn selection_is_kubernetes_label_matching() {
        assert!(selects(&labels(&[]), &labels(&[("a", "b")])));
        assert!(selects(&labels(&[("a", "b")]), &labels(&[("a", "b"), ("c", "d")])));
        assert!(!selects(&labels(&[("a", "b")]), &labels(&[("a", "x")])));
        assert!(!selects(&labels(&[("a", "b")]), &labels(&[])));
    }

    #[test]
    fn renders_global_parts_and_only_reported_matching_namespaces() {
        let ns = vec![
            NamespaceReport { name: "team-a".into(), labels: labels(&[("team", "drill")]) },
            NamespaceReport { name: "kube-system".into(), labels: labels(&[]) },
        ];
        let (cfg, skipped) = render("east", &labels(&[("role", "replica")]), &ns, &[("base".into(), policy())]);
        assert!(skipped.is_empty());
        assert_eq!(cfg.policies, vec!["base".to_string()]);
        assert_eq!(cfg.namespaces, vec!["platform".to_string()]);
        assert_eq!(cfg.cluster_roles.len(), 1);
        assert_eq!(cfg.namespaced.len(), 1);
        assert_eq!(cfg.namespaced[0].namespace, "team-a");
        assert_eq!(cfg.namespaced[0].limits.as_ref().unwrap().default_cpu, "250m");
        // A namespace not reported yet gets nothing namespace-targeted: the partial config
        // of a cluster whose report did not reach the hub.
        let (cfg, _) = render("east", &labels(&[("role", "replica")]), &[], &[("base".into(), policy())]);
        assert!(cfg.namespaced.is_empty());
        assert_eq!(cfg.namespaces, vec!["platform".to_string()]);
    }

    #[test]
    fn a_cluster_the_selector_does_not_pick_gets_nothing() {
        let (cfg, _) = render("dir", &labels(&[("role", "directory")]), &[], &[("base".into(), policy())]);
        assert!(cfg.policies.is_empty() && cfg.namespaces.is_empty() && cfg.cluster_roles.is_empty());
    }

    #[test]
    fn invalid_policies_are_skipped_with_the_reason_and_the_rest_applies() {
        let mut bad = policy();
        bad.namespaces = vec!["Not_A_Name".into()];
        let mut no_selector = policy();
        no_selector.namespace_selector.clear();
        let mut bad_limits = policy();
        bad_limits.limits = Some(Limits { default_cpu: "lots".into(), default_memory: "1Gi".into() });
        let (cfg, skipped) = render(
            "east",
            &labels(&[("role", "replica")]),
            &[],
            &[("a-bad".into(), bad), ("b-good".into(), policy()), ("c-none".into(), no_selector), ("d-limits".into(), bad_limits)],
        );
        assert_eq!(cfg.policies, vec!["b-good".to_string()]);
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(skipped[0].starts_with("ClusterPolicy a-bad: namespace name"));
    }

    #[test]
    fn rendering_is_deterministic_whatever_the_input_order() {
        let mut other = policy();
        other.namespaces = vec!["apps".into()];
        let a = render("east", &labels(&[("role", "replica")]), &[], &[("x".into(), policy()), ("y".into(), other.clone())]).0;
        let b = render("east", &labels(&[("role", "replica")]), &[], &[("y".into(), other), ("x".into(), policy())]).0;
        assert_eq!(a, b);
        assert_eq!(a.namespaces, vec!["apps".to_string(), "platform".to_string()]);
    }

    #[test]
    fn mirror_plan_creates_updates_and_deletes() {
        let desired = vec![("a".to_string(), 1), ("b".to_string(), 2), ("c".to_string(), 3)];
        let actual = vec![("b".to_string(), 2), ("c".to_string(), 9), ("d".to_string(), 4)];
        let plan = mirror_plan(&desired, &actual, |x, y| x == y);
        assert_eq!(plan, MirrorPlan { create: vec![1], update: vec![3], delete: vec!["d".to_string()] });
        let same = mirror_plan(&desired, &desired, |x, y| x == y);
        assert!(same.create.is_empty() && same.update.is_empty() && same.delete.is_empty());
    }
}
