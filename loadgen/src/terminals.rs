//! Virtual terminals: reuse the world's terminal certificates, or mint extra ones from the
//! world's network CA and register them in the service's store.
//!
//! Minted terminals get ECDSA P-256 keys (generated in microseconds, unlike RSA) and a
//! certificate from the network CA with the subject the service reads its identity from:
//! `C=JP, O=onshi test network, OU=<医療機関コード>, CN=LG<nnnnn>`.

use onshi_confirm_service::store::{self, LoadBatch, Terminal, TerminalStatus};
use rcgen::string::PrintableString;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::world::{read, TerminalIdentity, World};
use crate::LoadgenError;

/// Most terminals one run mints.
pub const MAX_MINTED: usize = 20_000;

const OID_CN: &[u64] = &[2, 5, 4, 3];
const OID_C: &[u64] = &[2, 5, 4, 6];
const OID_O: &[u64] = &[2, 5, 4, 10];
const OID_OU: &[u64] = &[2, 5, 4, 11];

fn mint_err(e: impl std::fmt::Display) -> LoadgenError {
    LoadgenError::Mint(e.to_string())
}

/// The terminal id of the `i`-th minted terminal.
pub fn minted_terminal_id(i: usize) -> String {
    format!("LG{i:05}")
}

/// Rebuilds a Name in rcgen terms, attribute by attribute and string type by string type, so
/// that a certificate it issues names its issuer with exactly the CA's subject bytes.
fn distinguished_name_of(cert: &X509Certificate<'_>) -> Result<DistinguishedName, LoadgenError> {
    let mut dn = DistinguishedName::new();
    let mut seen: Vec<Vec<u64>> = Vec::new();
    for rdn in cert.subject().iter() {
        for atv in rdn.iter() {
            let oid: Vec<u64> = atv
                .attr_type()
                .iter()
                .ok_or_else(|| mint_err("an attribute OID of the network CA's name is too large"))?
                .collect();
            let text = atv
                .as_str()
                .map_err(|e| mint_err(format!("network CA name attribute: {e}")))?;
            let value = if atv.attr_value().tag() == Tag::PrintableString {
                DnValue::PrintableString(PrintableString::try_from(text).map_err(mint_err)?)
            } else {
                DnValue::Utf8String(text.to_owned())
            };
            let ty = if seen.contains(&oid) {
                DnType::CustomDnType(oid.clone())
            } else {
                match oid.as_slice() {
                    OID_CN => DnType::CommonName,
                    OID_C => DnType::CountryName,
                    OID_O => DnType::OrganizationName,
                    OID_OU => DnType::OrganizationalUnitName,
                    other => DnType::CustomDnType(other.to_vec()),
                }
            };
            seen.push(oid);
            dn.push(ty, value);
        }
    }
    Ok(dn)
}

fn printable(s: &str) -> Result<DnValue, LoadgenError> {
    Ok(DnValue::PrintableString(
        PrintableString::try_from(s).map_err(mint_err)?,
    ))
}

/// Mints `count` terminal identities of institution `institution_code` from the world's
/// network CA (`network-ca/ca.pem`, `network-ca/ca.key.pem`).
pub fn mint(
    world: &World,
    institution_code: &str,
    count: usize,
) -> Result<Vec<TerminalIdentity>, LoadgenError> {
    if count > MAX_MINTED {
        return Err(LoadgenError::Usage(format!(
            "at most {MAX_MINTED} minted terminals, asked for {count}"
        )));
    }
    let ca_pem = pem::parse(&world.network_ca_pem).map_err(mint_err)?;
    let (_, ca_cert) = X509Certificate::from_der(ca_pem.contents()).map_err(mint_err)?;
    let ca_subject = ca_cert.subject().as_raw().to_vec();
    let key_path = world.dir.join("network-ca/ca.key.pem");
    let key_pem = String::from_utf8(read(&key_path)?).map_err(mint_err)?;
    let ca_key = KeyPair::from_pkcs8_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| mint_err(format!("{}: {e}", key_path.display())))?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = distinguished_name_of(&ca_cert)?;
    ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca_params.key_identifier_method = KeyIdMethod::Sha256;
    let issuer = Issuer::new(ca_params, ca_key);

    let now = OffsetDateTime::now_utc();
    let rng = ring::rand::SystemRandom::new();
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let terminal_id = minted_terminal_id(i);
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(mint_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, printable("JP")?);
        dn.push(
            DnType::OrganizationName,
            printable(onshi_testbed::pki::NETWORK_ORGANIZATION)?,
        );
        dn.push(DnType::OrganizationalUnitName, printable(institution_code)?);
        dn.push(DnType::CommonName, printable(&terminal_id)?);
        params.distinguished_name = dn;
        let mut serial = [0u8; 16];
        ring::rand::SecureRandom::fill(&rng, &mut serial).map_err(mint_err)?;
        serial[0] = (serial[0] & 0x3f) | 0x40;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(30);
        params.is_ca = IsCa::NoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer).map_err(mint_err)?;
        if i == 0 {
            // The TLS verifier matches the issuer Name byte for byte: check once.
            let (_, parsed) = X509Certificate::from_der(cert.der()).map_err(mint_err)?;
            if parsed.issuer().as_raw() != ca_subject.as_slice() {
                return Err(mint_err(
                    "a minted certificate's issuer name differs from the network CA's subject",
                ));
            }
        }
        out.push(TerminalIdentity {
            name: format!("{institution_code}-{terminal_id}"),
            certificate_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes(),
        });
    }
    Ok(out)
}

/// Registers minted terminals (in operation) in the store at `location` (a SQLite file or a
/// PostgreSQL URL), in one transaction.
pub fn register(location: &str, terminals: &[TerminalIdentity]) -> Result<(), LoadgenError> {
    let store = store::open(location).map_err(|e| LoadgenError::Store(e.to_string()))?;
    let batch = LoadBatch {
        terminals: terminals
            .iter()
            .map(|t| {
                let (code, id) = t.name.split_once('-').unwrap_or((t.name.as_str(), ""));
                Terminal {
                    institution_code: code.to_owned(),
                    terminal_id: id.to_owned(),
                    status: TerminalStatus::InOperation,
                    // The load harness drives PIN-mode confirmations only.
                    device_public_key: None,
                }
            })
            .collect(),
        ..LoadBatch::default()
    };
    store
        .load(&batch)
        .map_err(|e| LoadgenError::Store(e.to_string()))
}
