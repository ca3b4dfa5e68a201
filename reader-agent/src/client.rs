//! The gRPC client to the confirmation service, over mutual TLS.

use std::time::Duration;

use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_proto::v1::ResultCode;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::config::AgentConfig;

/// The service endpoint with the terminal's client certificate, from the configuration.
/// Every error here is a configuration error (unreadable or malformed key material, a bad
/// address), found before anything is sent.
pub fn endpoint(config: &AgentConfig, service_override: Option<&str>) -> Result<Endpoint, String> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    // A key others can read is a key others have: refuse it (chmod 600).
    if config.private_key.exists() {
        crate::kiosk::web::check_private(&config.private_key)
            .map_err(|e| format!("the terminal's private key: {e}"))?;
    }
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&config.ca)?))
        .identity(Identity::from_pem(
            read(&config.certificate)?,
            read(&config.private_key)?,
        ))
        .domain_name(config.server_name.clone());
    let url = service_override.unwrap_or(&config.service).to_owned();
    // The service only speaks mutual TLS: any other scheme could only fail later, obscurely.
    if !url.starts_with("https://") {
        return Err(format!(
            "bad service address {url:?}: it must be an https:// URL"
        ));
    }
    let endpoint = Endpoint::from_shared(url.clone())
        .map_err(|e| format!("bad service address {url:?}: {e}"))?
        .tls_config(tls)
        .map_err(|e| {
            format!(
                "the terminal's TLS material ({}, {}, {}) cannot be used: {}",
                config.ca.display(),
                config.certificate.display(),
                config.private_key.display(),
                describe(&e)
            )
        })?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15));
    Ok(endpoint)
}

/// Connects to the service with the terminal's client certificate.
pub async fn connect(
    config: &AgentConfig,
    service_override: Option<&str>,
) -> Result<ConfirmationClient<Channel>, String> {
    let endpoint = endpoint(config, service_override)?;
    let url = service_override.unwrap_or(&config.service);
    let channel = endpoint.connect().await.map_err(|e| {
        format!(
            "cannot reach the confirmation service at {url}: {}",
            describe(&e)
        )
    })?;
    Ok(ConfirmationClient::new(channel))
}

/// An error and its causes, each said once: several layers (tonic, hyper, rustls) repeat
/// their source's text in their own, and a wrong `server_name` used to be printed twice.
fn describe(e: &dyn std::error::Error) -> String {
    with_causes(e.to_string(), e.source())
}

fn with_causes(mut s: String, mut src: Option<&(dyn std::error::Error + 'static)>) -> String {
    while let Some(inner) = src {
        let text = inner.to_string();
        if !text.is_empty() && !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = inner.source();
    }
    s
}

/// The project's result code carried by a refusal, if any.
pub fn refusal_code(status: &tonic::Status) -> Option<ResultCode> {
    onshi_proto::status::result_code_of(status)
}

/// A readable description of a failed call, with its whole cause chain.
pub fn describe_status(status: &tonic::Status) -> String {
    let mut s = status.message().to_owned();
    if s.is_empty() {
        s = format!("{:?}", status.code());
    }
    with_causes(s, std::error::Error::source(status))
}

#[cfg(test)]
mod tests {
    #[derive(Debug)]
    struct Layer(String, Option<Box<Layer>>);
    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn a_cause_repeated_by_its_wrapper_is_said_once() {
        let name = "invalid peer certificate: certificate not valid for name \"wrong.example\"";
        let e = Layer(
            "transport error".into(),
            Some(Box::new(Layer(
                name.into(),
                Some(Box::new(Layer(name.into(), None))),
            ))),
        );
        let text = super::describe(&e);
        assert_eq!(text.matches("wrong.example").count(), 1, "{text}");
        assert!(text.starts_with("transport error: invalid peer"), "{text}");
    }

    use super::*;

    fn config(service: &str, key: &str) -> AgentConfig {
        AgentConfig {
            service: service.into(),
            server_name: "localhost".into(),
            ca: "/dev/null".into(),
            certificate: "/dev/null".into(),
            private_key: key.into(),
            terminal_name: Some("1340123452-T01".into()),
            device_key: None,
        }
    }

    #[test]
    fn configuration_errors_are_found_before_connecting() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("client.key.pem");
        std::fs::write(&key, b"").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let key = key.to_str().unwrap();
        let err = endpoint(&config("nope", key), None).unwrap_err();
        assert!(err.contains("https://"), "{err}");
        let err = endpoint(&config("https://127.0.0.1:1", key), Some("http://x")).unwrap_err();
        assert!(err.contains("https://"), "{err}");
        let err = endpoint(&config("https://127.0.0.1:1", key), None).unwrap_err();
        assert!(err.contains("private key"), "{err}");
        // A key file others can read is refused before it is used.
        std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = endpoint(&config("https://127.0.0.1:1", key), None).unwrap_err();
        assert!(err.contains("chmod 600"), "{err}");
        let err = endpoint(&config("https://127.0.0.1:1", "/nonexistent"), None).unwrap_err();
        assert!(err.contains("cannot read /nonexistent"), "{err}");
    }
}
