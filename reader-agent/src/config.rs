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
    /// The reader's own device key (PKCS#8 DER, ECDSA P-256), registered to this terminal at
    /// the service: it attests face and visual-check confirmations. Absent on a terminal that
    /// only confirms by PIN.
    #[serde(default)]
    pub device_key: Option<PathBuf>,
}

fn default_server_name() -> String {
    "localhost".into()
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut c: AgentConfig = toml::from_str(&text).map_err(|e| {
            format!(
                "{} is invalid: {}",
                path.display(),
                toml_error_line(&e, &text)
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut c.ca, &mut c.certificate, &mut c.private_key]
            .into_iter()
            .chain(c.device_key.as_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(c)
    }
}

/// A TOML error on one line, "line L, column C: what": the toml crate's `Display` spans
/// several lines, quoting the source with a caret.
fn toml_error_line(e: &toml::de::Error, text: &str) -> String {
    let what = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {what}")
        }
        None => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_is_reported_on_one_line() {
        let path =
            std::env::temp_dir().join(format!("onshi-agent-config-{}.toml", std::process::id()));
        std::fs::write(&path, "service = \"x\"\ngarbage = \n").unwrap();
        let err = AgentConfig::load(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains("line 2, column 11"), "{err}");
    }
}
