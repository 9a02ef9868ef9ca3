//! Probes: one per operation family, each really performing the operation.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::Dur;

/// How an operation is performed; the `kind` picks the probe.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ProbeSpec {
    /// The browser login: authorization request, dex's login form, credentials posted,
    /// redirects followed to the client callback, code exchanged for tokens.
    OidcLogin { user: String },
    /// A `refresh_token` grant with the refresh token of a login made before the fault.
    TokenRefresh { user: String },
    /// A SelfSubjectReview on the cluster's API server with an id_token obtained before
    /// the fault: the API server's cached signing keys at work.
    CachedKeyAuth { user: String, cluster: String },
    /// Start a fresh kube-apiserver on the cluster's etcd and check that it
    /// authenticates an id_token within `timeout`.
    ApiserverColdStart { user: String, cluster: String, timeout: Dur },
    /// A signing key not seen before is published at `/keys` within `window`.
    KeyRotation { window: Dur },
    /// The client-certificate admin kubeconfig (break-glass) reads the API.
    BreakGlass { cluster: String },
    /// Discovery document and `/keys` fetched through the load balancer.
    IssuerEndpoints,
}

impl ProbeSpec {
    /// Users the probe logs in as (checked against the suite's components when it loads).
    pub fn users(&self) -> Vec<&str> {
        match self {
            ProbeSpec::OidcLogin { user }
            | ProbeSpec::TokenRefresh { user }
            | ProbeSpec::CachedKeyAuth { user, .. }
            | ProbeSpec::ApiserverColdStart { user, .. } => vec![user],
            ProbeSpec::KeyRotation { .. } | ProbeSpec::BreakGlass { .. } | ProbeSpec::IssuerEndpoints => vec![],
        }
    }

    /// Clusters the probe talks to (checked against the topology when a suite loads).
    pub fn clusters(&self) -> Vec<&str> {
        match self {
            ProbeSpec::CachedKeyAuth { cluster, .. }
            | ProbeSpec::ApiserverColdStart { cluster, .. }
            | ProbeSpec::BreakGlass { cluster } => vec![cluster],
            ProbeSpec::OidcLogin { .. }
            | ProbeSpec::TokenRefresh { .. }
            | ProbeSpec::KeyRotation { .. }
            | ProbeSpec::IssuerEndpoints => vec![],
        }
    }
}

/// An error and its causes on one line (reqwest's Display names only the outermost).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}
