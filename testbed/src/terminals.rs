//! Changing a built world's terminals afterwards, as the network's operator would:
//!
//! - [`revoke_terminal`] (`testbed revoke-terminal`) puts a terminal's current client
//!   certificate on the network CA's CRL (`network-ca/crl.pem`), which a service with
//!   `[tls] client_crl` re-reads within about a second, refusing that certificate from the next
//!   handshake on;
//! - [`reissue_terminal`] (`testbed reissue-terminal`) gives a terminal a new key and a new
//!   client certificate with the same subject, so the service's store still knows it: the
//!   successor of a revoked certificate.
//!
//! Both sign with the world's network CA (`network-ca/ca.pem` and `ca.key.pem`), rebuilt from
//! its key and checked to be byte for byte the certificate on disk, so a CRL or certificate
//! this module signs names exactly that CA. Files a running service or agent may read are
//! replaced atomically. The dates come from the `now` the caller passes (the commands pass the
//! clock), not from the world's `now`; keys and serial numbers still come from the world's seed
//! (and the certificate they replace), so the same sequence of commands gives the same keys.

use std::path::{Path, PathBuf};

use time::{Duration, OffsetDateTime, UtcOffset};
use x509_parser::certificate::X509Certificate;

use crate::keys::RsaKey;
use crate::manifest::{TerminalEntry, TerminalStatus, WorldManifest};
use crate::pki::{self, Authority, LeafSpec, Revocation};
use crate::world::{add_years, write_atomically, NETWORK_CRL_FILE, NETWORK_CRL_YEARS};
use crate::TestbedError;

/// The network CA's certificate and key in a world.
pub const NETWORK_CA_FILE: &str = "network-ca/ca.pem";
pub const NETWORK_CA_KEY_FILE: &str = "network-ca/ca.key.pem";

/// How long a reissued terminal certificate is valid (as long as the builder's).
const REISSUED_YEARS: i32 = 3;

/// What [`revoke_terminal`] did.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// The terminal's name (`<医療機関コード>-<terminal id>`).
    pub terminal: String,
    /// Its certificate, relative to the world (`terminals/<dir>/client.pem`).
    pub certificate: String,
    /// The certificate's serial number, lowercase hex.
    pub serial: String,
    /// The certificate was on the CRL already: nothing was written.
    pub already: bool,
    /// When it was revoked (now, or earlier if `already`).
    pub revoked_at: OffsetDateTime,
    /// The CRL number of the CRL in force afterwards.
    pub crl_number: u64,
    /// How many certificates the CRL lists.
    pub entries: usize,
    /// The CRL file.
    pub crl: PathBuf,
    /// Whether the world's `service.toml` names that file as `[tls] client_crl` (if not, a
    /// service started with it does not see the revocation).
    pub service_reads_it: bool,
}

/// What [`reissue_terminal`] did.
#[derive(Debug, Clone)]
pub struct Reissued {
    pub terminal: String,
    /// The terminal's folder, relative to the world.
    pub dir: String,
    /// Serial numbers, lowercase hex.
    pub old_serial: String,
    pub new_serial: String,
    pub not_after: OffsetDateTime,
    /// Whether the old certificate is on the network CA's CRL (if not, it stays valid).
    pub old_revoked: bool,
}

fn error(text: impl Into<String>) -> TestbedError {
    TestbedError::World(text.into())
}

/// The manifest of the world in `dir`, with errors that say what is wrong.
fn load_world(dir: &Path) -> Result<WorldManifest, TestbedError> {
    if !dir.is_dir() {
        return Err(error(format!(
            "{} is not a world: no such directory (build one with `testbed build --out DIR`)",
            dir.display()
        )));
    }
    WorldManifest::load(dir).map_err(|e| {
        error(format!(
            "{} is not a world ({e}); build one with `testbed build --out DIR`",
            dir.display()
        ))
    })
}

/// The folder name of a terminal (`rogue`, `1340123452-T01`).
fn folder_name(t: &TerminalEntry) -> &str {
    t.dir.rsplit('/').next().unwrap_or(&t.dir)
}

/// The terminal called `name` (its name in world.json, or its folder under `terminals/`).
/// The rogue shares the pharmacy T01's name; its certificate is not the network CA's, so it is
/// never the one meant (and asked for by its folder name, it is refused).
pub fn find_terminal<'m>(
    manifest: &'m WorldManifest,
    name: &str,
) -> Result<&'m TerminalEntry, TestbedError> {
    let matching: Vec<&TerminalEntry> = manifest
        .terminals
        .iter()
        .filter(|t| t.name == name || folder_name(t) == name)
        .collect();
    let ours: Vec<&TerminalEntry> = matching
        .iter()
        .copied()
        .filter(|t| t.status != TerminalStatus::Untrusted)
        .collect();
    match (ours.as_slice(), matching.first()) {
        ([one], _) => Ok(*one),
        ([], Some(rogue)) => Err(error(format!(
            "{name} ({}) has a certificate from the rogue CA, not the network CA: the network \
             CA can neither revoke nor reissue it",
            rogue.dir
        ))),
        ([], None) => {
            let known: Vec<&str> = manifest
                .terminals
                .iter()
                .filter(|t| t.status != TerminalStatus::Untrusted)
                .map(|t| t.name.as_str())
                .collect();
            Err(error(format!(
                "the world has no terminal {name:?}; its terminals are {}",
                known.join(", ")
            )))
        }
        (many, _) => Err(error(format!(
            "{name:?} names {} terminals ({}); use the folder name",
            many.len(),
            many.iter()
                .map(|t| t.dir.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TestbedError> {
    std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            error(format!("{} is missing", path.display()))
        } else {
            TestbedError::Io {
                action: "read",
                path: path.to_owned(),
                source: e,
            }
        }
    })
}

/// The DER inside a PEM file of the given tag, or the file itself if it is not PEM.
fn pem_or_der(path: &Path, tag: &str) -> Result<Vec<u8>, TestbedError> {
    let bytes = read(path)?;
    if !bytes.starts_with(b"-----") {
        return Ok(bytes);
    }
    let parsed = pem::parse(&bytes)
        .map_err(|e| error(format!("{}: not a PEM file ({e})", path.display())))?;
    if parsed.tag() != tag {
        return Err(error(format!(
            "{}: holds a {:?}, not a {tag:?}",
            path.display(),
            parsed.tag()
        )));
    }
    Ok(parsed.into_contents())
}

fn parse_certificate<'a>(der: &'a [u8], path: &Path) -> Result<X509Certificate<'a>, TestbedError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| {
            error(format!(
                "{}: not an X.509 certificate ({e})",
                path.display()
            ))
        })
}

/// The world's network CA, able to sign: its key, and its certificate rebuilt from the key,
/// serial and dates of `network-ca/ca.pem` and compared with it byte for byte.
struct NetworkCa {
    authority: Authority,
}

impl NetworkCa {
    fn load(world: &Path) -> Result<Self, TestbedError> {
        let key_path = world.join(NETWORK_CA_KEY_FILE);
        if !key_path.exists() {
            return Err(error(format!(
                "{} is missing: without the network CA's private key nothing can be signed \
                 for this world's terminals (build a new world)",
                key_path.display()
            )));
        }
        let ca_path = world.join(NETWORK_CA_FILE);
        let der = pem_or_der(&ca_path, "CERTIFICATE")?;
        let cert = parse_certificate(&der, &ca_path)?;
        let key_text = String::from_utf8(read(&key_path)?)
            .map_err(|_| error(format!("{}: not a PEM file", key_path.display())))?;
        let key = RsaKey::from_pkcs8_pem(&key_text, &key_path.display().to_string())?;
        let validity = cert.validity();
        let authority = pki::network_ca(
            &key,
            pki::NETWORK_CA_COMMON_NAME,
            &[],
            cert.raw_serial().to_vec(),
            validity.not_before.to_datetime(),
            validity.not_after.to_datetime(),
        )?;
        if authority.der() != der.as_slice() {
            return Err(error(format!(
                "{} is not the network CA of {} as this testbed makes it (another key, or a \
                 world of another testbed version): build a new world",
                ca_path.display(),
                key_path.display()
            )));
        }
        Ok(NetworkCa { authority })
    }

    /// The CA's subject, DER: the issuer of everything it signs.
    fn subject(&self) -> Result<Vec<u8>, TestbedError> {
        let (_, cert) = x509_parser::parse_x509_certificate(self.authority.der())
            .map_err(|e| error(format!("the network CA certificate: {e}")))?;
        Ok(cert.subject().as_raw().to_vec())
    }
}

/// A terminal's current client certificate, checked to be the network CA's.
struct ClientCertificate {
    rel: String,
    serial: Vec<u8>,
    subject: Vec<u8>,
}

fn client_certificate(
    world: &Path,
    terminal: &TerminalEntry,
    ca_subject: &[u8],
) -> Result<ClientCertificate, TestbedError> {
    let rel = format!("{}/client.pem", terminal.dir);
    let path = world.join(&rel);
    let der = pem_or_der(&path, "CERTIFICATE")?;
    let cert = parse_certificate(&der, &path)?;
    if cert.issuer().as_raw() != ca_subject {
        return Err(error(format!(
            "{} was not issued by the network CA ({})",
            path.display(),
            cert.issuer()
        )));
    }
    Ok(ClientCertificate {
        rel,
        serial: cert.raw_serial().to_vec(),
        subject: cert.subject().as_raw().to_vec(),
    })
}

/// The network CA's CRL as it stands: its number and entries. `None` if the world has none (a
/// world built before the builder wrote one).
struct NetworkCrl {
    number: u64,
    revoked: Vec<Revocation>,
}

fn read_crl(world: &Path, ca_subject: &[u8]) -> Result<Option<NetworkCrl>, TestbedError> {
    let path = world.join(NETWORK_CRL_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let der = pem_or_der(&path, "X509 CRL")?;
    // A CRL that cannot be read is never replaced: its revocations would be lost.
    let refuse = |why: String| {
        error(format!(
            "{}: {why}; refusing to replace it (its revocations would be lost)",
            path.display()
        ))
    };
    let (_, crl) =
        x509_parser::parse_x509_crl(&der).map_err(|e| refuse(format!("not a CRL ({e})")))?;
    if crl.issuer().as_raw() != ca_subject {
        return Err(refuse(format!(
            "issued by {}, not the network CA",
            crl.issuer()
        )));
    }
    let number = match crl.crl_number() {
        Some(n) => {
            let bytes = n.to_bytes_be();
            if bytes.len() > 8 {
                return Err(refuse("its CRL number does not fit 64 bits".into()));
            }
            bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        }
        None => 0,
    };
    let revoked = crl
        .iter_revoked_certificates()
        .map(|r| Revocation {
            serial: r.raw_serial().to_vec(),
            revoked_at: r.revocation_date.to_datetime(),
        })
        .collect();
    Ok(Some(NetworkCrl { number, revoked }))
}

/// Whether `service.toml` in the world names the network CRL as `[tls] client_crl`.
fn service_reads_crl(world: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(world.join("service.toml")) else {
        return false;
    };
    let Ok(table) = toml::from_str::<toml::Table>(&text) else {
        return false;
    };
    let Some(named) = table
        .get("tls")
        .and_then(|t| t.get("client_crl"))
        .and_then(toml::Value::as_str)
    else {
        return false;
    };
    let resolve = |p: PathBuf| p.canonicalize().ok();
    let named = Path::new(named);
    let named = if named.is_absolute() {
        named.to_owned()
    } else {
        world.join(named)
    };
    resolve(named).is_some_and(|n| Some(n) == resolve(world.join(NETWORK_CRL_FILE)))
}

/// `now` in UTC with whole seconds (what certificates and CRLs carry).
fn whole_seconds(now: OffsetDateTime) -> Result<OffsetDateTime, TestbedError> {
    now.to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|e| TestbedError::Date(e.to_string()))
}

/// Puts the current client certificate of the terminal `name` (see [`find_terminal`]) of the
/// world in `world` on the network CA's CRL, re-signed with a CRL number above the previous
/// one, `thisUpdate` = `now` and `nextUpdate` a year later, and replaces `network-ca/crl.pem`
/// atomically. A certificate already on the CRL leaves the file untouched.
pub fn revoke_terminal(
    world: &Path,
    name: &str,
    now: OffsetDateTime,
) -> Result<Revoked, TestbedError> {
    let now = whole_seconds(now)?;
    let manifest = load_world(world)?;
    let terminal = find_terminal(&manifest, name)?;
    let ca = NetworkCa::load(world)?;
    let ca_subject = ca.subject()?;
    let cert = client_certificate(world, terminal, &ca_subject)?;
    let existing = read_crl(world, &ca_subject)?;
    let crl_path = world.join(NETWORK_CRL_FILE);
    let service_reads_it = service_reads_crl(world);
    let outcome = |already, revoked_at, crl_number, entries| Revoked {
        terminal: terminal.name.clone(),
        certificate: cert.rel.clone(),
        serial: hex::encode(&cert.serial),
        already,
        revoked_at,
        crl_number,
        entries,
        crl: crl_path.clone(),
        service_reads_it,
    };
    let (previous_number, mut revoked) = match existing {
        Some(crl) => {
            if let Some(entry) = crl.revoked.iter().find(|r| r.serial == cert.serial) {
                return Ok(outcome(
                    true,
                    entry.revoked_at,
                    crl.number,
                    crl.revoked.len(),
                ));
            }
            (crl.number, crl.revoked)
        }
        None => (0, Vec::new()),
    };
    revoked.push(Revocation {
        serial: cert.serial.clone(),
        revoked_at: now,
    });
    let clock_number = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    let number = previous_number
        .checked_add(1)
        .ok_or_else(|| {
            error(format!(
                "{}: the CRL number is exhausted",
                crl_path.display()
            ))
        })?
        .max(clock_number);
    let crl = pki::crl_numbered(
        &ca.authority,
        &revoked,
        now,
        add_years(now, NETWORK_CRL_YEARS)?,
        number,
    )?;
    write_atomically(&crl_path, pki::crl_pem(&crl)?.as_bytes(), false)?;
    Ok(outcome(false, now, number, revoked.len()))
}

/// Gives the terminal `name` of the world in `world` a new RSA-2048 key and a new client
/// certificate signed by the network CA: the same subject (so the same terminal to the service
/// and its store), a new serial number, valid from an hour before `now` for three years. The
/// key (mode 0600) and then the certificate replace the old ones atomically. The key and serial
/// derive from the world's seed and the serial of the certificate replaced.
pub fn reissue_terminal(
    world: &Path,
    name: &str,
    now: OffsetDateTime,
) -> Result<Reissued, TestbedError> {
    let now = whole_seconds(now)?;
    let manifest = load_world(world)?;
    let terminal = find_terminal(&manifest, name)?;
    let ca = NetworkCa::load(world)?;
    let ca_subject = ca.subject()?;
    let old = client_certificate(world, terminal, &ca_subject)?;
    let old_revoked = read_crl(world, &ca_subject)?
        .is_some_and(|crl| crl.revoked.iter().any(|r| r.serial == old.serial));

    let purpose = format!(
        "terminal/{}/reissue/{}",
        terminal.dir,
        hex::encode(&old.serial)
    );
    let key = RsaKey::generate(manifest.seed, &purpose)?;
    let serial = pki::serial_for(manifest.seed, &purpose);
    let not_after = add_years(now, REISSUED_YEARS)?;
    let spec = LeafSpec {
        serial: serial.clone(),
        not_before: now
            .checked_sub(Duration::hours(1))
            .ok_or_else(|| TestbedError::Date("an hour before now".into()))?,
        not_after,
    };
    let cert = pki::terminal_certificate(
        &ca.authority,
        &key.key_pair()?,
        &terminal.institution_code,
        &terminal.terminal_id,
        &spec,
    )?;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.der())
        .map_err(|e| error(format!("the new certificate: {e}")))?;
    if parsed.subject().as_raw() != old.subject.as_slice() {
        return Err(error(format!(
            "the new certificate's subject ({}) differs from {}'s: world.json and the \
             certificate disagree on who the terminal is",
            parsed.subject(),
            old.rel
        )));
    }
    let dir = world.join(&terminal.dir);
    write_atomically(
        &dir.join("client.key.pem"),
        key.pkcs8_pem().as_bytes(),
        true,
    )?;
    write_atomically(&dir.join("client.pem"), cert.pem().as_bytes(), false)?;
    Ok(Reissued {
        terminal: terminal.name.clone(),
        dir: terminal.dir.clone(),
        old_serial: hex::encode(&old.serial),
        new_serial: hex::encode(&serial),
        not_after,
        old_revoked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{build_world, WorldOptions};
    use ring::signature;
    use time::macros::datetime;
    use x509_parser::parse_x509_crl;

    const NOW: OffsetDateTime = datetime!(2025-11-24 00:00:00 UTC);

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "onshi-testbed-terminals-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn pem_file(path: &Path) -> Vec<u8> {
        pem::parse(std::fs::read(path).unwrap())
            .unwrap()
            .into_contents()
    }

    /// The CRL's signature verifies with the network CA's key; returns (number, serials,
    /// thisUpdate, nextUpdate).
    fn crl_of(world: &Path) -> (u64, Vec<Vec<u8>>, OffsetDateTime, OffsetDateTime) {
        let ca_der = pem_file(&world.join(NETWORK_CA_FILE));
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        let der = pem_file(&world.join(NETWORK_CRL_FILE));
        let (rest, crl) = parse_x509_crl(&der).unwrap();
        assert!(rest.is_empty());
        assert_eq!(crl.issuer().as_raw(), ca.subject().as_raw());
        signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            &ca.public_key().subject_public_key.data,
        )
        .verify(crl.tbs_cert_list.as_ref(), &crl.signature_value.data)
        .expect("the CRL is signed by the network CA");
        let number = crl
            .crl_number()
            .unwrap()
            .to_bytes_be()
            .iter()
            .fold(0u64, |a, &b| (a << 8) | u64::from(b));
        let serials = crl
            .iter_revoked_certificates()
            .map(|r| r.raw_serial().to_vec())
            .collect();
        (
            number,
            serials,
            crl.last_update().to_datetime(),
            crl.next_update().unwrap().to_datetime(),
        )
    }

    fn serial_of(world: &Path, dir: &str) -> Vec<u8> {
        let der = pem_file(&world.join(dir).join("client.pem"));
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        cert.raw_serial().to_vec()
    }

    #[test]
    fn revoke_then_reissue() {
        let world = temp_dir("cycle");
        let mut options = WorldOptions::new(&world, NOW);
        options.cards = 6;
        options.persons = 10;
        let manifest = build_world(&options).unwrap();

        // The world's CRL: empty, dated an hour back, good for a year; service.toml names it.
        let (number, serials, this_update, next_update) = crl_of(&world);
        assert!(serials.is_empty());
        assert_eq!(this_update, NOW - Duration::hours(1));
        assert_eq!(next_update, datetime!(2026-11-24 00:00:00 UTC));
        assert_eq!(number, (NOW - Duration::hours(1)).unix_timestamp() as u64);
        assert!(service_reads_crl(&world));

        let t01 = manifest.terminal(TerminalStatus::InOperation, 0).unwrap();
        let old_serial = serial_of(&world, &t01.dir);
        let later = NOW + Duration::days(3);
        let revoked = revoke_terminal(&world, &t01.name, later).unwrap();
        assert!(!revoked.already && revoked.service_reads_it);
        assert_eq!(revoked.serial, hex::encode(&old_serial));
        let (number2, serials, this_update, next_update) = crl_of(&world);
        assert_eq!(serials, vec![old_serial.clone()]);
        assert_eq!(this_update, later);
        assert_eq!(next_update, later + Duration::days(365));
        assert!(number2 > number);
        assert_eq!(revoked.crl_number, number2);

        // Twice: one entry, the file untouched.
        let before = std::fs::read(world.join(NETWORK_CRL_FILE)).unwrap();
        let again = revoke_terminal(&world, &t01.name, later + Duration::hours(1)).unwrap();
        assert!(again.already);
        assert_eq!(again.entries, 1);
        assert_eq!(again.revoked_at, later);
        assert_eq!(std::fs::read(world.join(NETWORK_CRL_FILE)).unwrap(), before);

        // Reissue: a new key and serial, the same subject, the key 0600; the old serial stays
        // revoked and the new one is not.
        let old_key = std::fs::read(world.join(&t01.dir).join("client.key.pem")).unwrap();
        let old_cert_der = pem_file(&world.join(&t01.dir).join("client.pem"));
        let reissued = reissue_terminal(&world, &t01.name, later).unwrap();
        assert!(reissued.old_revoked);
        assert_eq!(reissued.old_serial, hex::encode(&old_serial));
        let new_serial = serial_of(&world, &t01.dir);
        assert_ne!(new_serial, old_serial);
        assert_eq!(reissued.new_serial, hex::encode(&new_serial));
        let new_key = std::fs::read(world.join(&t01.dir).join("client.key.pem")).unwrap();
        assert_ne!(new_key, old_key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(world.join(&t01.dir).join("client.key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let new_der = pem_file(&world.join(&t01.dir).join("client.pem"));
        let (_, new_cert) = x509_parser::parse_x509_certificate(&new_der).unwrap();
        let (_, old_cert) = x509_parser::parse_x509_certificate(&old_cert_der).unwrap();
        assert_eq!(new_cert.subject().as_raw(), old_cert.subject().as_raw());
        assert_eq!(new_cert.issuer().as_raw(), old_cert.issuer().as_raw());
        let ca_der = pem_file(&world.join(NETWORK_CA_FILE));
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            &ca.public_key().subject_public_key.data,
        )
        .verify(
            new_cert.tbs_certificate.as_ref(),
            &new_cert.signature_value.data,
        )
        .expect("the new certificate is signed by the network CA");
        // The new key is the certificate's.
        let new_pair = RsaKey::from_pkcs8_pem(std::str::from_utf8(&new_key).unwrap(), "k")
            .unwrap()
            .key_pair()
            .unwrap();
        assert_eq!(
            new_pair.public_key_raw(),
            &*new_cert.public_key().subject_public_key.data
        );
        let (_, serials, _, _) = crl_of(&world);
        assert_eq!(serials, vec![old_serial.clone()]);

        // Revoking the successor adds it; a second terminal's certificate is untouched.
        let revoked = revoke_terminal(&world, &t01.name, later).unwrap();
        assert!(!revoked.already);
        assert_eq!(revoked.entries, 2);
        let (number3, serials, _, _) = crl_of(&world);
        assert!(
            number3 > number2,
            "a new number even within the same second"
        );
        assert_eq!(serials, vec![old_serial, new_serial]);
        std::fs::remove_dir_all(&world).unwrap();
    }

    #[test]
    fn clear_errors() {
        let missing = temp_dir("missing");
        let e = revoke_terminal(&missing, "1340123452-T01", NOW).unwrap_err();
        assert!(e.to_string().contains("not a world"), "{e}");

        let world = temp_dir("errors");
        let mut options = WorldOptions::new(&world, NOW);
        options.cards = 6;
        options.persons = 10;
        build_world(&options).unwrap();
        let e = revoke_terminal(&world, "1340123452-T77", NOW).unwrap_err();
        assert!(
            e.to_string().contains("no terminal") && e.to_string().contains("1340123452-T01"),
            "{e}"
        );
        let e = reissue_terminal(&world, "rogue", NOW).unwrap_err();
        assert!(e.to_string().contains("rogue CA"), "{e}");
        // The rogue shares T01's name; the name means T01.
        let manifest = WorldManifest::load(&world).unwrap();
        let t01 = find_terminal(&manifest, "1340123452-T01").unwrap();
        assert_eq!(t01.status, TerminalStatus::InOperation);
        assert_eq!(
            find_terminal(&manifest, "1340123452-T02").unwrap().dir,
            "terminals/1340123452-T02"
        );

        // An unreadable CRL is never replaced.
        let crl = world.join(NETWORK_CRL_FILE);
        std::fs::write(
            &crl,
            b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
        )
        .unwrap();
        let e = revoke_terminal(&world, "1340123452-T01", NOW).unwrap_err();
        assert!(e.to_string().contains("refusing to replace"), "{e}");

        // Without the CA's key nothing is signed.
        std::fs::remove_file(world.join(NETWORK_CA_KEY_FILE)).unwrap();
        for e in [
            revoke_terminal(&world, "1340123452-T01", NOW).unwrap_err(),
            reissue_terminal(&world, "1340123452-T01", NOW).unwrap_err(),
        ] {
            assert!(e.to_string().contains("ca.key.pem is missing"), "{e}");
        }
        std::fs::remove_dir_all(&world).unwrap();
    }
}
