//! Terminal identity: who is asking, taken from the TLS client certificate the handshake
//! already verified against the network CA, never from a request field.
//!
//! A terminal certificate's subject carries the institution's 医療機関コード in the
//! organizational unit and the terminal id in the common name; the terminal's name, used in the
//! challenge binding and the audit log, is `<医療機関コード>-<terminal id>`.

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::eligibility::InstitutionCode;

/// An identified terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalIdentity {
    pub institution_code: String,
    pub terminal_id: String,
}

impl TerminalIdentity {
    /// `<医療機関コード>-<terminal id>`.
    pub fn name(&self) -> String {
        format!("{}-{}", self.institution_code, self.terminal_id)
    }

    /// Reads the identity from a verified client certificate.
    pub fn from_certificate(der: &[u8]) -> Result<Self, String> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("client certificate does not parse: {e}"))?;
        let single = |values: Vec<String>, what: &str| -> Result<String, String> {
            match values.as_slice() {
                [one] => Ok(one.clone()),
                [] => Err(format!("client certificate has no {what}")),
                _ => Err(format!("client certificate has several {what} values")),
            }
        };
        let ou = single(
            cert.subject()
                .iter_organizational_unit()
                .map(|a| a.as_str().map(str::to_owned).unwrap_or_default())
                .collect(),
            "organizational unit (医療機関コード)",
        )?;
        let cn = single(
            cert.subject()
                .iter_common_name()
                .map(|a| a.as_str().map(str::to_owned).unwrap_or_default())
                .collect(),
            "common name (terminal id)",
        )?;
        let code = InstitutionCode::parse(&ou)
            .map_err(|e| format!("client certificate's 医療機関コード {ou:?}: {e}"))?;
        if cn.is_empty()
            || cn.len() > 32
            || !cn
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            return Err(format!(
                "client certificate's terminal id {cn:?} must be 1-32 ASCII letters, digits, '_' or '.'"
            ));
        }
        Ok(Self {
            institution_code: code.as_str().to_owned(),
            terminal_id: cn,
        })
    }
}
