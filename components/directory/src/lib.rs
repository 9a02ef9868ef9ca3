//! The multi-cluster directory of the management drills.
//!
//! A *directory cluster* holds [`Cluster`] objects (the registry) and [`ClusterPolicy`]
//! objects (namespaces, RBAC and resource limits for the clusters their selector picks).
//! Three programs run around it:
//!
//! - `directory-api` (in the directory cluster): the management API people and GitOps use
//!   to register and de-register clusters and to change policies; it writes the objects.
//! - `directory-hub` (in the directory cluster): evaluates every policy against every
//!   cluster and the namespaces that cluster reported, and renders one [`ClusterConfig`]
//!   per cluster: the central control plane.
//! - `directory-sync` (in each replica cluster): pulls, with a service-account kubeconfig
//!   from a Secret, the Clusters and ClusterPolicies (mirrored locally) and its own
//!   ClusterConfig (applied locally), and reports its namespaces; while the directory is
//!   unreachable it keeps the last state and says so on its [`DirectorySync`] status.
//!
//! The decisions are pure functions here, unit-tested; the programs only move objects.

pub mod crd;
pub mod logic;

pub use crd::*;

/// The namespace of the directory's programs, in every cluster.
pub const NAMESPACE: &str = "multicluster-system";
/// Label on objects directory-sync mirrors or applies, so it only ever prunes its own.
pub const MANAGED_BY: &str = "multicluster.coreos.com/managed-by";
pub const MANAGER: &str = "directory-sync";
/// Annotation marking the directory cluster's own Cluster object (seed: only there).
pub const DIRECTORY_ANNOTATION: &str = "multicluster.coreos.com/directory";

/// Logging for the programs (stderr, `RUST_LOG`, default info).
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_target(false).try_init();
    let _ = rustls::crypto::ring::default_provider().install_default();
}
