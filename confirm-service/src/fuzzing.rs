//! The bodies of the fuzz targets (fuzz/), here so that the committed fuzz corpus is replayed
//! on stable by an ordinary test (tests/fuzz_corpus.rs) through exactly the same code.
//! Each function takes arbitrary bytes and must neither panic nor take unbounded time.

use std::sync::OnceLock;

use prost::Message;
use time::OffsetDateTime;

use crate::cert_cache::CertCache;
use crate::validation::{EndEntityPolicy, TrustStore};

const CA_G1: &[u8] = include_bytes!("../../cert-corpus/corpus/ca/ca-g1.der");
const CA_G2: &[u8] = include_bytes!("../../cert-corpus/corpus/ca/ca-g2.der");
const ROOT: &[u8] = include_bytes!("../../cert-corpus/corpus/ca/root.der");
const SUB: &[u8] = include_bytes!("../../cert-corpus/corpus/ca/sub.der");
const CRL_G1: &[u8] = include_bytes!("../../cert-corpus/corpus/crl/ca-g1.der");
const CRL_G2: &[u8] = include_bytes!("../../cert-corpus/corpus/crl/ca-g2.der");
const CRL_ROOT: &[u8] = include_bytes!("../../cert-corpus/corpus/crl/root.der");
const CRL_SUB: &[u8] = include_bytes!("../../cert-corpus/corpus/crl/sub.der");

/// 2026-04-01T00:00:00Z, the corpus's check time.
fn at() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_775_001_600).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn policy() -> EndEntityPolicy {
    EndEntityPolicy {
        policy_oids: vec!["1.2.392.200149.8.5.1.0.30".into()],
        ..EndEntityPolicy::default()
    }
}

/// The corpus's CAs (two generations, a root and an intermediate) and their CRLs.
pub fn store() -> &'static TrustStore {
    static STORE: OnceLock<TrustStore> = OnceLock::new();
    STORE.get_or_init(|| {
        TrustStore::from_der(
            &[CA_G1.to_vec(), CA_G2.to_vec(), ROOT.to_vec()],
            &[SUB.to_vec()],
            &[
                CRL_G1.to_vec(),
                CRL_G2.to_vec(),
                CRL_ROOT.to_vec(),
                CRL_SUB.to_vec(),
            ],
            policy(),
        )
        .unwrap_or_default()
    })
}

/// Certificate validation, cold and through the cache (a second call is a cache hit for an
/// accepted certificate): both must agree.
pub fn certificate(data: &[u8]) -> Option<&'static str> {
    let store = store();
    let cold = store.validate(data, at());
    let cache = CertCache::new(4);
    let first = cache.validate(store, data, at());
    let hit = cache.validate(store, data, at());
    assert_eq!(cold, first, "cache miss disagrees with cold validation");
    assert_eq!(cold, hit, "cache hit disagrees with cold validation");
    cold.err().map(|e| e.reason())
}

/// CRL parsing and verification at load time, issued by any of the corpus's CAs.
pub fn crl(data: &[u8]) -> bool {
    TrustStore::from_der(
        &[CA_G1.to_vec(), ROOT.to_vec()],
        &[SUB.to_vec()],
        &[data.to_vec()],
        policy(),
    )
    .is_ok()
}

/// A ConfirmByCardRequest as it arrives: protobuf decoding, the handler's input checks, then
/// certificate validation. `Err` names the stage that refused the request before
/// validation; `Ok` is the certificate verdict (`None` accepted, or the reason).
pub fn request(data: &[u8]) -> Result<Option<&'static str>, &'static str> {
    let req = onshi_proto::v1::ConfirmByCardRequest::decode(data).map_err(|_| "decode")?;
    crate::service::check_request_bounds(&req).map_err(|_| "bounds")?;
    Ok(certificate(&req.certificate))
}
