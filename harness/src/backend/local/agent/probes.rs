//! Container probes (readiness, liveness, startup) as the kubelet runs them: HTTP GET and
//! TCP socket against the pod's address, with the probe's period, timeout and thresholds.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, ContainerPort, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The running state of one probe of one container.
#[derive(Debug)]
pub struct ProbeState {
    pub probe: Probe,
    pub successes: i32,
    pub failures: i32,
    /// The verdict so far: `None` until the thresholds decide.
    pub passing: Option<bool>,
    pub next: Instant,
    pub last_error: Option<String>,
}

impl ProbeState {
    pub fn new(probe: &Probe, started: Instant) -> ProbeState {
        let delay = Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
        ProbeState { probe: probe.clone(), successes: 0, failures: 0, passing: None, next: started + delay, last_error: None }
    }

    pub fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// Record one result; returns true when the verdict changed.
    pub fn record(&mut self, ok: Result<(), String>, now: Instant) -> bool {
        let period = Duration::from_secs(self.probe.period_seconds.unwrap_or(10).max(1) as u64);
        self.next = now + period;
        let before = self.passing;
        match ok {
            Ok(()) => {
                self.successes += 1;
                self.failures = 0;
                self.last_error = None;
                if self.successes >= self.probe.success_threshold.unwrap_or(1).max(1) {
                    self.passing = Some(true);
                }
            }
            Err(e) => {
                self.failures += 1;
                self.successes = 0;
                self.last_error = Some(e);
                if self.failures >= self.probe.failure_threshold.unwrap_or(3).max(1) {
                    self.passing = Some(false);
                }
            }
        }
        before != self.passing
    }
}

fn port_number(port: &IntOrString, ports: &[ContainerPort]) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("port {n} out of range")),
        IntOrString::String(name) => ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("no container port named {name}")),
    }
}

/// Run a probe once against `ip`. `http` is a client that does not verify certificates
/// (the kubelet does not either).
pub async fn run(probe: &Probe, container: &Container, ip: Ipv4Addr, http: &reqwest::Client) -> Result<(), String> {
    let ports = container.ports.clone().unwrap_or_default();
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(h) = &probe.http_get {
        let port = port_number(&h.port, &ports)?;
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        let path = h.path.as_deref().unwrap_or("/");
        let url = format!("{scheme}://{ip}:{port}{path}");
        let mut req = http.get(&url).timeout(timeout);
        for hdr in h.http_headers.iter().flatten() {
            req = req.header(&hdr.name, &hdr.value);
        }
        let resp = req.send().await.map_err(|e| format!("GET {url}: {}", crate::error::chain(&e)))?;
        let status = resp.status().as_u16();
        // The kubelet counts 200–399 as success.
        return if (200..400).contains(&status) { Ok(()) } else { Err(format!("GET {url}: HTTP {status}")) };
    }
    if let Some(t) = &probe.tcp_socket {
        let port = port_number(&t.port, &ports)?;
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((ip, port))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("connect {ip}:{port}: {e}")),
            Err(_) => Err(format!("connect {ip}:{port}: timed out")),
        };
    }
    if probe.exec.is_some() {
        return Err("exec probes are not supported by the local backend".into());
    }
    if probe.grpc.is_some() {
        return Err("gRPC probes are not supported by the local backend".into());
    }
    Err("probe has no handler".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_decide_the_verdict() {
        let probe = Probe { failure_threshold: Some(2), success_threshold: Some(1), period_seconds: Some(1), ..Default::default() };
        let t0 = Instant::now();
        let mut s = ProbeState::new(&probe, t0);
        assert_eq!(s.passing, None);
        assert!(s.record(Ok(()), t0));
        assert_eq!(s.passing, Some(true));
        assert!(!s.record(Err("x".into()), t0), "one failure is below the threshold");
        assert!(s.record(Err("x".into()), t0));
        assert_eq!(s.passing, Some(false));
        assert!(s.next >= t0 + Duration::from_secs(1));
    }

    #[test]
    fn named_ports_resolve() {
        let ports = vec![ContainerPort { name: Some("http".into()), container_port: 5556, ..Default::default() }];
        assert_eq!(port_number(&IntOrString::String("http".into()), &ports), Ok(5556));
        assert!(port_number(&IntOrString::String("nope".into()), &ports).is_err());
        assert_eq!(port_number(&IntOrString::Int(80), &ports), Ok(80));
    }
}
