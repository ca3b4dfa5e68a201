//! The gRPC client to the confirmation service, over mutual TLS.

use std::time::Duration;

use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_proto::v1::ResultCode;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_types::StatusExt;

use crate::config::AgentConfig;

/// Connects to the service with the terminal's client certificate.
pub async fn connect(
    config: &AgentConfig,
    service_override: Option<&str>,
) -> Result<ConfirmationClient<Channel>, String> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&config.ca)?))
        .identity(Identity::from_pem(
            read(&config.certificate)?,
            read(&config.private_key)?,
        ))
        .domain_name(config.server_name.clone());
    let url = service_override.unwrap_or(&config.service).to_owned();
    let endpoint = Endpoint::from_shared(url.clone())
        .map_err(|e| format!("bad service address {url:?}: {e}"))?
        .tls_config(tls)
        .map_err(|e| format!("TLS configuration: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15));
    let channel = endpoint.connect().await.map_err(|e| {
        format!(
            "cannot reach the confirmation service at {url}: {}",
            describe(&e)
        )
    })?;
    Ok(ConfirmationClient::new(channel))
}

fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// The project's result code carried by a refusal, if any.
pub fn refusal_code(status: &tonic::Status) -> Option<ResultCode> {
    let details = status.get_error_details();
    let info = details.error_info()?;
    if info.domain != onshi_proto::ERROR_DOMAIN {
        return None;
    }
    ResultCode::from_str_name(&info.reason)
}

/// A readable description of a failed call, with its whole cause chain.
pub fn describe_status(status: &tonic::Status) -> String {
    let mut s = status.message().to_owned();
    if s.is_empty() {
        s = format!("{:?}", status.code());
    }
    if let Some(src) = std::error::Error::source(status) {
        s.push_str(": ");
        s.push_str(&describe(src));
    }
    s
}
