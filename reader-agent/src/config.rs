//! The terminal's configuration (`agent.toml`, written by the testbed for each terminal).
//! Relative paths are relative to the file's folder.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The confirmation service, e.g. `https://127.0.0.1:50443`.
    pub service: String,
    /// The name the service's TLS certificate carries.
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// The network CA that issued the service's certificate.
    pub ca: PathBuf,
    /// This terminal's client certificate and key.
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    /// `<医療機関コード>-<terminal id>`, for display; the service decides from the certificate.
    #[serde(default)]
    pub terminal_name: Option<String>,
}

fn default_server_name() -> String {
    "localhost".into()
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut c: AgentConfig =
            toml::from_str(&text).map_err(|e| format!("{} is invalid: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut c.ca, &mut c.certificate, &mut c.private_key] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(c)
    }
}
