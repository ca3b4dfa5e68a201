//! The configuration files a world ships for the programs that run in it: `service.toml` for
//! the confirmation service and `agent.toml` for each terminal's reader agent. Paths in them are
//! relative to the file's own folder, so a world directory can be moved as a whole.
//!
//! The field names are those the service's and the agent's loaders accept (both refuse unknown
//! fields); `docs/world.md` documents them.

use serde::Serialize;

use crate::TestbedError;

/// `service.toml`.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceConfig {
    pub listen: String,
    pub store: String,
    pub challenge_ttl_seconds: u32,
    pub min_face_threshold_permille: u16,
    pub tls: ServiceTls,
    pub validation: ServiceValidation,
}

/// `[tls]` of `service.toml`.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceTls {
    pub certificate: String,
    pub private_key: String,
    pub client_ca: String,
    /// The network CA's CRL: a terminal certificate on it fails the handshake.
    pub client_crl: String,
}

/// `[validation]` of `service.toml`.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceValidation {
    pub trust_anchors: Vec<String>,
    pub intermediates: Vec<String>,
    pub crls: Vec<String>,
    pub policy_oids: Vec<String>,
    pub clock_skew_seconds: u32,
    /// `[validation.smartphone]`: the smartphone CA and its CRL (docs/smartphone.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smartphone: Option<ServiceSmartphoneTrust>,
}

/// `[validation.smartphone]` of `service.toml`.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceSmartphoneTrust {
    pub trust_anchors: Vec<String>,
    pub crls: Vec<String>,
}

/// A terminal's `agent.toml`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentConfig {
    pub service: String,
    pub server_name: String,
    pub ca: String,
    pub certificate: String,
    pub private_key: String,
    pub terminal_name: String,
    /// The reader's device key (PKCS#8 DER), for face and visual-check attestations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_key: Option<String>,
}

/// TOML text of a configuration.
pub fn to_toml(value: &impl Serialize) -> Result<String, TestbedError> {
    toml::to_string(value).map_err(|e| TestbedError::Encode {
        what: "a TOML configuration",
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_config_has_the_documented_shape() {
        let c = ServiceConfig {
            listen: "127.0.0.1:50443".into(),
            store: "store/onshi.sqlite".into(),
            challenge_ttl_seconds: 60,
            min_face_threshold_permille: 800,
            tls: ServiceTls {
                certificate: "service/server.pem".into(),
                private_key: "service/server.key.pem".into(),
                client_ca: "network-ca/ca.pem".into(),
                client_crl: "network-ca/crl.pem".into(),
            },
            validation: ServiceValidation {
                trust_anchors: vec!["issuing-ca/ca.pem".into()],
                intermediates: vec![],
                crls: vec!["issuing-ca/crl.der".into()],
                policy_oids: vec!["1.2.392.200149.8.5.1.0.30".into()],
                clock_skew_seconds: 300,
                smartphone: None,
            },
        };
        let text = to_toml(&c).unwrap();
        let expected = r#"listen = "127.0.0.1:50443"
store = "store/onshi.sqlite"
challenge_ttl_seconds = 60
min_face_threshold_permille = 800

[tls]
certificate = "service/server.pem"
private_key = "service/server.key.pem"
client_ca = "network-ca/ca.pem"
client_crl = "network-ca/crl.pem"

[validation]
trust_anchors = ["issuing-ca/ca.pem"]
intermediates = []
crls = ["issuing-ca/crl.der"]
policy_oids = ["1.2.392.200149.8.5.1.0.30"]
clock_skew_seconds = 300
"#;
        assert_eq!(text, expected);
    }
}
