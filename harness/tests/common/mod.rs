//! Shared by the integration tests that bring up local runs.

use std::path::PathBuf;

/// Tears a local run down when dropped, through `firedrill down RUN_DIR`: a test that
/// panics half-way still leaves nothing behind (a second `down` of a run already torn
/// down does nothing, so the happy path may tear down itself first).
pub struct DownOnDrop(pub PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        if !self.0.exists() {
            return;
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_firedrill")).arg("down").arg(&self.0).output();
        if let Ok(o) = out
            && !o.status.success()
        {
            eprintln!("tearing down {} after a failed test: {}", self.0.display(), String::from_utf8_lossy(&o.stderr));
        }
    }
}
