//! The world's two PKIs, built with rcgen from the deterministic keys of [`crate::keys`]:
//!
//! - the mock issuing authority (JPKI-TEST): a self-signed CA, the users' authentication
//!   certificates of the profile in jpki-card.md §6, and its CRL;
//! - the project's network: a CA, the service's TLS server certificate and the terminals'
//!   client certificates, plus a rogue CA that nobody trusts.
//!
//! Every certificate has an explicit serial and explicit validity dates, and RSA PKCS#1 v1.5
//! signatures are deterministic, so the same inputs always give the same bytes.

use rcgen::string::PrintableString;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateRevocationList,
    CertificateRevocationListParams, CustomExtension, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::der;
use crate::keys::{derive_seed, RsaKey};
use crate::TestbedError;

/// The certificate policy of test user-authentication certificates (jpki-card.md §6).
pub const JPKI_TEST_POLICY_OID: &str = "1.2.392.200149.8.5.1.0.30";
const JPKI_TEST_POLICY: [u64; 9] = [1, 2, 392, 200149, 8, 5, 1, 0, 30];

const OID_COUNTRY: [u64; 4] = [2, 5, 4, 6];
const OID_ORGANIZATION: [u64; 4] = [2, 5, 4, 10];
const OID_ORG_UNIT: [u64; 4] = [2, 5, 4, 11];
const OID_COMMON_NAME: [u64; 4] = [2, 5, 4, 3];
const OID_SUBJECT_KEY_IDENTIFIER: [u64; 4] = [2, 5, 29, 14];
const OID_CERTIFICATE_POLICIES: [u64; 4] = [2, 5, 29, 32];
const OID_CRL_DISTRIBUTION_POINTS: [u64; 4] = [2, 5, 29, 31];

/// Organization of the mock issuing authority.
pub const ISSUER_ORGANIZATION: &str = "JPKI-TEST";
/// The two OUs of the issuing CA's name, in order.
pub const ISSUER_UNITS: [&str; 2] = [
    "JPKI for user authentication",
    "Japan Agency for Local Authority Information Systems",
];
/// Organization of the project's network PKI.
pub const NETWORK_ORGANIZATION: &str = "onshi test network";

/// The directory name the cards' CRL distribution point carries.
pub const CRL_DISTRIBUTION_POINT_NAME: [(&[u64], &str); 5] = [
    (&OID_COUNTRY, "JP"),
    (&OID_ORGANIZATION, ISSUER_ORGANIZATION),
    (&OID_ORG_UNIT, ISSUER_UNITS[0]),
    (&OID_ORG_UNIT, "CRL Distribution Points"),
    (&OID_COMMON_NAME, "JPKI-TEST CRL"),
];

/// The two OUs of the smartphone issuing CA's name: the smartphone user-authentication
/// certificates (スマホ用電子証明書) come from a CA generation of their own, separate from the
/// cards' (docs/smartphone.md). The name is the mock's, not the real authority's.
pub const SMARTPHONE_ISSUER_UNITS: [&str; 2] = [
    "JPKI for smartphone user authentication",
    "Japan Agency for Local Authority Information Systems",
];

/// The directory name the phones' CRL distribution point carries.
const SMARTPHONE_CRL_DISTRIBUTION_POINT_NAME: [(&[u64], &str); 5] = [
    (&OID_COUNTRY, "JP"),
    (&OID_ORGANIZATION, ISSUER_ORGANIZATION),
    (&OID_ORG_UNIT, SMARTPHONE_ISSUER_UNITS[0]),
    (&OID_ORG_UNIT, "CRL Distribution Points"),
    (&OID_COMMON_NAME, "JPKI-TEST smartphone CRL"),
];

/// A CA: its certificate and what is needed to sign with it.
pub struct Authority {
    pub certificate: Certificate,
    issuer: Issuer<'static, KeyPair>,
    key_pem: String,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.certificate.pem()
    }

    /// The CA's private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> &[u8] {
        self.certificate.der()
    }
}

/// A deterministic, positive 16-byte serial number for `purpose`: the first byte is in
/// 0x40..=0x7F, so DER needs no leading zero and the number never shrinks.
pub fn serial_for(world_seed: u64, purpose: &str) -> Vec<u8> {
    let mut bytes = derive_seed(world_seed, &format!("serial/{purpose}"))[..16].to_vec();
    bytes[0] = (bytes[0] & 0x3f) | 0x40;
    bytes
}

fn printable(s: &str) -> Result<DnValue, TestbedError> {
    PrintableString::try_from(s)
        .map(DnValue::PrintableString)
        .map_err(|e| TestbedError::Encode {
            what: "a distinguished name",
            reason: format!("{s:?}: {e}"),
        })
}

/// `C=JP, O=JPKI-TEST, OU=<units[0]>, OU=<units[1]>`: the user-authentication CA's name
/// with [`ISSUER_UNITS`], the smartphone CA's with [`SMARTPHONE_ISSUER_UNITS`].
fn issuing_authority_name(units: &[&str; 2]) -> Result<DistinguishedName, TestbedError> {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, printable("JP")?);
    dn.push(DnType::OrganizationName, printable(ISSUER_ORGANIZATION)?);
    dn.push(DnType::OrganizationalUnitName, printable(units[0])?);
    // rcgen keeps one value per attribute type; the same OID spelled as a custom type is a
    // second entry, which is how a Name with two OUs is written.
    dn.push(
        DnType::CustomDnType(OID_ORG_UNIT.to_vec()),
        printable(units[1])?,
    );
    Ok(dn)
}

fn network_name(units: &[&str], common_name: &str) -> Result<DistinguishedName, TestbedError> {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, printable("JP")?);
    dn.push(DnType::OrganizationName, printable(NETWORK_ORGANIZATION)?);
    for (i, unit) in units.iter().enumerate() {
        let ty = if i == 0 {
            DnType::OrganizationalUnitName
        } else {
            DnType::CustomDnType(OID_ORG_UNIT.to_vec())
        };
        dn.push(ty, printable(unit)?);
    }
    dn.push(DnType::CommonName, printable(common_name)?);
    Ok(dn)
}

fn ca_params(
    name: DistinguishedName,
    serial: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    constraints: BasicConstraints,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.not_before = not_before;
    params.not_after = not_after;
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

fn self_signed_authority(
    params: CertificateParams,
    key: &RsaKey,
    what: &str,
) -> Result<Authority, TestbedError> {
    let key_pair = key.key_pair()?;
    let certificate = params
        .self_signed(&key_pair)
        .map_err(TestbedError::cert(what))?;
    Ok(Authority {
        certificate,
        issuer: Issuer::new(params, key_pair),
        key_pem: key.pkcs8_pem().to_owned(),
    })
}

/// The mock issuing authority's self-signed CA (jpki-card.md §6): RSA-2048,
/// basicConstraints CA critical, keyUsage critical keyCertSign + cRLSign, SKI.
pub fn issuing_ca(
    key: &RsaKey,
    serial: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Authority, TestbedError> {
    user_auth_ca(
        &ISSUER_UNITS,
        key,
        serial,
        (not_before, not_after),
        "issuing CA",
    )
}

/// A self-signed user-authentication CA named with `units`.
fn user_auth_ca(
    units: &[&str; 2],
    key: &RsaKey,
    serial: Vec<u8>,
    (not_before, not_after): (OffsetDateTime, OffsetDateTime),
    what: &str,
) -> Result<Authority, TestbedError> {
    let params = ca_params(
        issuing_authority_name(units)?,
        serial,
        not_before,
        not_after,
        BasicConstraints::Unconstrained,
    );
    self_signed_authority(params, key, what)
}

/// The mock authority's smartphone issuing CA: the same profile as [`issuing_ca`], its own
/// name ([`SMARTPHONE_ISSUER_UNITS`]), key and CRL.
pub fn smartphone_ca(
    key: &RsaKey,
    serial: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Authority, TestbedError> {
    user_auth_ca(
        &SMARTPHONE_ISSUER_UNITS,
        key,
        serial,
        (not_before, not_after),
        "smartphone CA",
    )
}

/// What distinguishes one card's certificate.
#[derive(Debug, Clone)]
pub struct CardCertificateSpec {
    /// The 23-character subject common name.
    pub common_name: String,
    pub serial: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

fn subject_key_identifier(params: &CertificateParams, key: &KeyPair) -> CustomExtension {
    // rcgen writes SKI only for CA certificates; end entities get it as a custom extension
    // computed the same way (truncated SHA-256 of the SubjectPublicKeyInfo).
    CustomExtension::from_oid_content(
        &OID_SUBJECT_KEY_IDENTIFIER,
        der::octet_string(&params.key_identifier(key)),
    )
}

/// A user-authentication certificate (利用者証明用電子証明書) of the profile in jpki-card.md §6:
/// subject `C=JP, CN=<id>`, keyUsage critical digitalSignature, extendedKeyUsage clientAuth,
/// certificatePolicies critical with the JPKI test policy, a CRL distribution point given as a
/// directory name, AKI and SKI.
pub fn card_certificate(
    ca: &Authority,
    card_key: &KeyPair,
    spec: &CardCertificateSpec,
) -> Result<Certificate, TestbedError> {
    user_auth_certificate(ca, card_key, spec, &CRL_DISTRIBUTION_POINT_NAME)
}

/// A smartphone user-authentication certificate (スマホ用電子証明書) under
/// [`smartphone_ca`]: the card profile (the validation of docs/validation.md applies
/// unchanged), with the smartphone CA's CRL distribution point. The real certificate's
/// profile is not public in this detail; docs/smartphone.md.
pub fn phone_certificate(
    ca: &Authority,
    phone_key: &KeyPair,
    spec: &CardCertificateSpec,
) -> Result<Certificate, TestbedError> {
    user_auth_certificate(ca, phone_key, spec, &SMARTPHONE_CRL_DISTRIBUTION_POINT_NAME)
}

fn user_auth_certificate(
    ca: &Authority,
    card_key: &KeyPair,
    spec: &CardCertificateSpec,
    crl_point: &[(&[u64], &str)],
) -> Result<Certificate, TestbedError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, printable("JP")?);
    dn.push(DnType::CommonName, printable(&spec.common_name)?);
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from_slice(&spec.serial));
    params.not_before = spec.not_before;
    params.not_after = spec.not_after;
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::Sha256;

    let crl_dp_name = der::name(crl_point).ok_or(TestbedError::Encode {
        what: "the CRL distribution point name",
        reason: "not a PrintableString".into(),
    })?;
    let crl_dp = CustomExtension::from_oid_content(
        &OID_CRL_DISTRIBUTION_POINTS,
        der::crl_distribution_point_directory_name(&crl_dp_name),
    );
    let mut policies = CustomExtension::from_oid_content(
        &OID_CERTIFICATE_POLICIES,
        der::certificate_policies(&JPKI_TEST_POLICY),
    );
    policies.set_criticality(true);
    let ski = subject_key_identifier(&params, card_key);
    params.custom_extensions = vec![crl_dp, policies, ski];

    params
        .signed_by(card_key, &ca.issuer)
        .map_err(TestbedError::cert(format!(
            "card certificate {}",
            spec.common_name
        )))
}

/// The two OUs of the signature CA's name (署名用): a separate CA from the user-authentication
/// one, as at the real authority.
pub const SIGNATURE_ISSUER_UNITS: [&str; 2] = [
    "JPKI for digital signature",
    "Japan Agency for Local Authority Information Systems",
];

/// The JPKI test policy of signature certificates (an inference by analogy with the
/// user-authentication test policy `…8.5.1.0.30`): `1.2.392.200149.8.5.1.0.1`.
const JPKI_TEST_SIGNATURE_POLICY: [u64; 9] = [1, 2, 392, 200_149, 8, 5, 1, 0, 1];

fn signature_authority_name() -> Result<DistinguishedName, TestbedError> {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, printable("JP")?);
    dn.push(DnType::OrganizationName, printable(ISSUER_ORGANIZATION)?);
    dn.push(
        DnType::OrganizationalUnitName,
        printable(SIGNATURE_ISSUER_UNITS[0])?,
    );
    dn.push(
        DnType::CustomDnType(OID_ORG_UNIT.to_vec()),
        printable(SIGNATURE_ISSUER_UNITS[1])?,
    );
    Ok(dn)
}

/// The mock authority's signature CA (issues the cards' EF `0001` certificates).
pub fn signature_ca(
    key: &RsaKey,
    serial: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Authority, TestbedError> {
    let params = ca_params(
        signature_authority_name()?,
        serial,
        not_before,
        not_after,
        BasicConstraints::Unconstrained,
    );
    self_signed_authority(params, key, "signature CA")
}

/// A signature certificate (署名用電子証明書, EF `0001`). A real one names the holder (name,
/// address, birth date, sex in the subject and a subjectAltName); the mock keeps the same
/// non-personal `C=JP, CN=<id>` subject as the user-authentication certificate, with
/// keyUsage critical digitalSignature + nonRepudiation and a critical test policy.
pub fn signature_certificate(
    ca: &Authority,
    key: &KeyPair,
    spec: &CardCertificateSpec,
) -> Result<Certificate, TestbedError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, printable("JP")?);
    dn.push(DnType::CommonName, printable(&spec.common_name)?);
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from_slice(&spec.serial));
    params.not_before = spec.not_before;
    params.not_after = spec.not_after;
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::Sha256;
    let mut policies = CustomExtension::from_oid_content(
        &OID_CERTIFICATE_POLICIES,
        der::certificate_policies(&JPKI_TEST_SIGNATURE_POLICY),
    );
    policies.set_criticality(true);
    let ski = subject_key_identifier(&params, key);
    params.custom_extensions = vec![policies, ski];
    params
        .signed_by(key, &ca.issuer)
        .map_err(TestbedError::cert(format!(
            "signature certificate {}",
            spec.common_name
        )))
}

/// One revoked certificate for the CRL.
#[derive(Debug, Clone)]
pub struct Revocation {
    pub serial: Vec<u8>,
    pub revoked_at: OffsetDateTime,
}

/// A CA's CRL (the issuing authority's, or the network CA's for terminals): v2, AKI and CRL
/// number extensions, each entry with reason keyCompromise. The CRL number is `this_update` as
/// Unix seconds, so successive worlds' CRLs number upwards.
pub fn crl(
    ca: &Authority,
    revoked: &[Revocation],
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<CertificateRevocationList, TestbedError> {
    let number = u64::try_from(this_update.unix_timestamp())
        .unwrap_or(1)
        .max(1);
    crl_numbered(ca, revoked, this_update, next_update, number)
}

/// [`crl`] with an explicit CRL number: a CRL re-issued later (a revoked terminal) must number
/// above the one it replaces, even when both are dated within the same second.
pub fn crl_numbered(
    ca: &Authority,
    revoked: &[Revocation],
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    number: u64,
) -> Result<CertificateRevocationList, TestbedError> {
    let number_bytes = number.max(1).to_be_bytes();
    let skip = number_bytes.iter().take_while(|&&b| b == 0).count();
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from_slice(&number_bytes[skip..]),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|r| RevokedCertParams {
                serial_number: SerialNumber::from_slice(&r.serial),
                revocation_time: r.revoked_at,
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params
        .signed_by(&ca.issuer)
        .map_err(TestbedError::cert("CRL"))
}

/// The common name of the world's network CA (the rogue CA has another).
pub const NETWORK_CA_COMMON_NAME: &str = "onshi test network CA";

/// The project's network CA (`C=JP, O=onshi test network, CN=<common name>`), path length 0:
/// it issues only the service's and the terminals' certificates.
pub fn network_ca(
    key: &RsaKey,
    common_name: &str,
    organization_units: &[&str],
    serial: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Authority, TestbedError> {
    let params = ca_params(
        network_name(organization_units, common_name)?,
        serial,
        not_before,
        not_after,
        BasicConstraints::Constrained(0),
    );
    self_signed_authority(params, key, common_name)
}

/// Validity and serial of a network leaf certificate.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    pub serial: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

fn leaf_params(spec: &LeafSpec, name: DistinguishedName) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name;
    params.serial_number = Some(SerialNumber::from_slice(&spec.serial));
    params.not_before = spec.not_before;
    params.not_after = spec.not_after;
    params.is_ca = IsCa::NoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

/// The service's TLS server certificate: SANs `localhost`, `127.0.0.1`, `::1`; serverAuth.
pub fn server_certificate(
    ca: &Authority,
    key: &KeyPair,
    spec: &LeafSpec,
) -> Result<Certificate, TestbedError> {
    let mut params = leaf_params(spec, network_name(&[], "localhost")?);
    let dns = "localhost"
        .to_owned()
        .try_into()
        .map_err(TestbedError::cert("server SAN"))?;
    params.subject_alt_names = vec![
        SanType::DnsName(dns),
        SanType::IpAddress(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)),
    ];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.custom_extensions = vec![subject_key_identifier(&params, key)];
    params
        .signed_by(key, &ca.issuer)
        .map_err(TestbedError::cert("server certificate"))
}

/// A terminal's TLS client certificate: `C=JP, O=onshi test network, OU=<医療機関コード>,
/// CN=<terminal id>`, clientAuth. The service takes the terminal's identity from this subject.
pub fn terminal_certificate(
    ca: &Authority,
    key: &KeyPair,
    institution_code: &str,
    terminal_id: &str,
    spec: &LeafSpec,
) -> Result<Certificate, TestbedError> {
    let mut params = leaf_params(spec, network_name(&[institution_code], terminal_id)?);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.custom_extensions = vec![subject_key_identifier(&params, key)];
    params
        .signed_by(key, &ca.issuer)
        .map_err(TestbedError::cert(format!(
            "terminal certificate {institution_code}-{terminal_id}"
        )))
}

/// The CRL as PEM.
pub fn crl_pem(crl: &CertificateRevocationList) -> Result<String, TestbedError> {
    crl.pem().map_err(TestbedError::cert("CRL PEM"))
}
