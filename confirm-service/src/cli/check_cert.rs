//! `confirm-service check-cert`: why is this card refused? The same validation as the service,
//! in the manner of `openssl verify`. Exit codes: 0 accepted, 1 rejected, 2 usage or I/O error.

use std::path::PathBuf;

use serde::Serialize;
use time::OffsetDateTime;

use std::process::ExitCode;

use crate::clock::{Clock, FixedClock, SystemClock};
use crate::config::Config;
use crate::validation::{
    decode_der_or_pem, CertError, EndEntityPolicy, StaleCrlPolicy, TrustStore,
};

/// The outcome of one check.
#[derive(Debug, Serialize)]
pub struct Verdict {
    pub file: String,
    /// `accepted` or `rejected`.
    pub verdict: &'static str,
    /// The stable reason name when rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    pub checked_at: String,
}

impl Verdict {
    pub fn accepted(&self) -> bool {
        self.verdict == "accepted"
    }

    /// The `openssl verify`-style line.
    pub fn line(&self) -> String {
        match (&self.reason, &self.detail) {
            (Some(reason), Some(detail)) => {
                format!("{}: rejected: {reason}: {detail}", self.file)
            }
            _ => format!(
                "{}: OK (subject {}, serial {}, valid until {})",
                self.file,
                self.subject.as_deref().unwrap_or("?"),
                self.serial.as_deref().unwrap_or("?"),
                self.not_after.as_deref().unwrap_or("?")
            ),
        }
    }
}

/// What to check against.
#[derive(Debug)]
pub struct CheckOptions {
    pub trust: Vec<PathBuf>,
    pub intermediates: Vec<PathBuf>,
    pub crls: Vec<PathBuf>,
    pub policy: EndEntityPolicy,
    pub at: OffsetDateTime,
}

/// Checks the certificate file; `Err` is a usage or I/O problem (exit 2), not a verdict.
pub fn check(cert_path: &std::path::Path, opts: &CheckOptions) -> Result<Verdict, String> {
    let (trust, warnings) = TrustStore::load_diagnostic(
        &opts.trust,
        &opts.intermediates,
        &opts.crls,
        opts.policy.clone(),
    )
    .map_err(|e| e.to_string())?;
    for w in warnings {
        eprintln!("check-cert: warning: {w}");
    }
    let bytes = std::fs::read(cert_path)
        .map_err(|e| format!("cannot read {}: {e}", cert_path.display()))?;
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let file = cert_path.display().to_string();
    let checked_at = opts.at.format(rfc3339).unwrap_or_default();
    // A file that is neither DER nor PEM is not a certificate at all: a usage error (exit 2),
    // like a missing file. A DER certificate that does not parse is a verdict (malformed).
    let der = match decode_der_or_pem(&bytes, "CERTIFICATE") {
        Ok(mut blobs) => blobs.swap_remove(0),
        Err(detail) => {
            return Err(format!(
                "{file} is not a certificate (neither DER nor PEM): {detail}"
            ))
        }
    };
    Ok(match trust.validate(&der, opts.at) {
        Ok(v) => Verdict {
            file,
            verdict: "accepted",
            reason: None,
            detail: None,
            subject: Some(v.subject),
            serial: Some(v.serial_hex),
            not_after: v.not_after.format(rfc3339).ok(),
            checked_at,
        },
        Err(e) => rejected(file, &e, checked_at),
    })
}

fn rejected(file: String, e: &CertError, checked_at: String) -> Verdict {
    Verdict {
        file,
        verdict: "rejected",
        reason: Some(e.reason()),
        detail: Some(e.to_string()),
        subject: None,
        serial: None,
        not_after: None,
        checked_at,
    }
}

#[allow(clippy::too_many_arguments)]
/// `check-cert`: its options as parsed; prints the verdict and returns the exit code.
pub fn run(
    config: Option<PathBuf>,
    mut trust: Vec<PathBuf>,
    mut intermediates: Vec<PathBuf>,
    mut crls: Vec<PathBuf>,
    mut policy_oids: Vec<String>,
    at: Option<String>,
    (clock_skew, stale_crl): (Option<u32>, Option<String>),
    json: bool,
    smartphone: bool,
    cert: PathBuf,
) -> ExitCode {
    let mut policy = EndEntityPolicy::default();
    if let Some(path) = &config {
        match Config::load(path) {
            Ok(c) => {
                // The card's trust files, or with --smartphone the smartphone CA's.
                let files = if smartphone {
                    match c.validation.smartphone_files() {
                        Some(f) => f,
                        None => {
                            eprintln!(
                                "check-cert: {} has no [validation.smartphone]",
                                path.display()
                            );
                            return ExitCode::from(2);
                        }
                    }
                } else {
                    c.validation.card_files()
                };
                if trust.is_empty() {
                    trust = files.anchors;
                    intermediates.extend(files.intermediates);
                }
                if crls.is_empty() {
                    crls = files.crls;
                }
                if policy_oids.is_empty() {
                    policy_oids = files.policy.policy_oids.clone();
                }
                policy = files.policy;
            }
            Err(e) => {
                eprintln!("check-cert: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if trust.is_empty() {
        eprintln!("check-cert: no trust anchor: give --trust CA or --config FILE");
        return ExitCode::from(2);
    }
    if crls.is_empty() {
        // Without a CRL every certificate would be refused as crl-missing: say so up front.
        eprintln!(
            "check-cert: no CRL: give --crl CRL or --config FILE (revocation is always checked)"
        );
        return ExitCode::from(2);
    }
    policy.policy_oids = policy_oids;
    if let Some(seconds) = clock_skew {
        policy.clock_skew = time::Duration::seconds(i64::from(seconds));
    }
    match stale_crl.as_deref() {
        Some("accept") => policy.stale_crl = StaleCrlPolicy::Accept,
        Some(_) => policy.stale_crl = StaleCrlPolicy::Reject,
        None => {}
    }
    // `--at` sets the clock the check reads, as tests set the service's.
    let clock: Box<dyn Clock> = match at {
        None => Box::new(SystemClock),
        Some(s) => {
            match OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339) {
                Ok(t) => Box::new(FixedClock(t)),
                Err(e) => {
                    eprintln!("check-cert: --at {s:?} is not an RFC 3339 time: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let at = clock.now();
    let opts = CheckOptions {
        trust,
        intermediates,
        crls,
        policy,
        at,
    };
    match check(&cert, &opts) {
        Ok(verdict) => {
            if json {
                match serde_json::to_string_pretty(&verdict) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("check-cert: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                println!("{}", verdict.line());
            }
            if verdict.accepted() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("check-cert: {e}");
            ExitCode::from(2)
        }
    }
}
