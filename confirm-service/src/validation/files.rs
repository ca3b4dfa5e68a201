//! Loading the trust configuration from files: anchors, intermediates and CRLs, PEM or DER.

use super::*;

impl TrustStore {
    /// [`load`](Self::load) with [`from_der_diagnostic`](Self::from_der_diagnostic)'s
    /// treatment of CRLs that fail verification.
    pub fn load_diagnostic(
        anchors: &[PathBuf],
        intermediates: &[PathBuf],
        crls: &[PathBuf],
        policy: EndEntityPolicy,
    ) -> Result<(Self, Vec<String>), TrustLoadError> {
        Self::load_with(anchors, intermediates, crls, policy, true)
    }

    /// Loads anchors, intermediates (PEM or DER, several per PEM file) and CRLs (PEM or DER).
    pub fn load(
        anchors: &[PathBuf],
        intermediates: &[PathBuf],
        crls: &[PathBuf],
        policy: EndEntityPolicy,
    ) -> Result<Self, TrustLoadError> {
        Self::load_with(anchors, intermediates, crls, policy, false).map(|(store, _)| store)
    }

    pub(super) fn load_with(
        anchors: &[PathBuf],
        intermediates: &[PathBuf],
        crls: &[PathBuf],
        policy: EndEntityPolicy,
        skip_unverified: bool,
    ) -> Result<(Self, Vec<String>), TrustLoadError> {
        // The file each DER blob came from (a PEM file may hold several), so an error names
        // the file at fault.
        let mut origins: Vec<&Path> = Vec::new();
        let a = read_all(anchors, "CERTIFICATE", &mut origins)?;
        let i = read_all(intermediates, "CERTIFICATE", &mut origins)?;
        let c = read_all(crls, "X509 CRL", &mut origins)?;
        Self::build(&a, &i, &c, policy, skip_unverified).map_err(|(input, reason)| {
            TrustLoadError::Invalid {
                path: origins
                    .get(input)
                    .map(|p| p.to_path_buf())
                    .unwrap_or_default(),
                reason,
            }
        })
    }
}

/// Reads every file (PEM or DER), noting for each blob the file it came from.
pub(super) fn read_all<'p>(
    paths: &'p [PathBuf],
    tag: &str,
    origins: &mut Vec<&'p Path>,
) -> Result<Vec<Vec<u8>>, TrustLoadError> {
    let mut out = Vec::new();
    for path in paths {
        let blobs = read_der_or_pem(path, tag)?;
        origins.extend(std::iter::repeat_n(path.as_path(), blobs.len()));
        out.extend(blobs);
    }
    Ok(out)
}

/// Reads a file holding one DER object or one or more PEM blocks with the given tag.
pub fn read_der_or_pem(path: &Path, tag: &str) -> Result<Vec<Vec<u8>>, TrustLoadError> {
    let bytes = std::fs::read(path).map_err(|source| TrustLoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    decode_der_or_pem(&bytes, tag).map_err(|reason| TrustLoadError::Invalid {
        path: path.to_owned(),
        reason,
    })
}

/// Decodes DER (returned as is) or PEM blocks with the given tag.
pub fn decode_der_or_pem(bytes: &[u8], tag: &str) -> Result<Vec<Vec<u8>>, String> {
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes.to_vec()]);
    }
    let blocks = pem::parse_many(bytes).map_err(|e| format!("not DER and not PEM: {e}"))?;
    let out: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == tag)
        .map(|b| b.into_contents())
        .collect();
    if out.is_empty() {
        return Err(format!("no PEM block of type {tag}"));
    }
    Ok(out)
}
