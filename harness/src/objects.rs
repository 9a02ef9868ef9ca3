//! Small readings of Kubernetes objects that faults, probes and claims share.

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The owner reference that controls the object (its ReplicaSet, DaemonSet, …), if any.
pub fn controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_ref()?.iter().find(|o| o.controller == Some(true))
}

/// The name of the controller of `kind` that owns the object.
pub fn controlled_by<'a>(meta: &'a ObjectMeta, kind: &str) -> Option<&'a str> {
    controller(meta).filter(|o| o.kind == kind).map(|o| o.name.as_str())
}

/// The pod's Ready condition when it is True.
pub fn ready_condition(p: &Pod) -> Option<&PodCondition> {
    p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready" && c.status == "True")
}

/// Ready and not terminating: an instance that serves and is not on its way out.
pub fn available(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none() && ready_condition(p).is_some()
}
