//! Identifiers of the My Number card (jpki-card.md §1–3): application AIDs, EF file ids,
//! instruction bytes, DigestInfo prefixes and retry limits.

/// 公的個人認証 (JPKI) application.
pub const JPKI_AID: [u8; 10] = [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01];
/// 券面事項入力補助 (Kenhojo) application: My Number and the basic four facts.
pub const KENHOJO_AID: [u8; 10] = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08];
/// 券面事項確認 (Kenkaku) application: the card-face images.
pub const KENKAKU_AID: [u8; 10] = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x02];

// EFs of the JPKI application (jpki-card.md §2).
/// Signature certificate (署名用電子証明書); reading needs the signature password.
pub const EF_SIGN_CERT: u16 = 0x0001;
/// Signature CA certificate.
pub const EF_SIGN_CA_CERT: u16 = 0x0002;
/// Token info, 160 bytes, starting with a space-padded label.
pub const EF_TOKEN_INFO: u16 = 0x0006;
/// Which certificates are present.
pub const EF_CERT_PRESENCE: u16 = 0x0008;
/// User-authentication certificate (利用者証明用電子証明書), DER.
pub const EF_USER_AUTH_CERT: u16 = 0x000A;
/// User-authentication CA certificate, DER.
pub const EF_USER_AUTH_CA_CERT: u16 = 0x000B;
/// User-authentication private key: usable by COMPUTE DIGITAL SIGNATURE only.
pub const EF_USER_AUTH_KEY: u16 = 0x0017;
/// User-authentication PIN: 4 ASCII digits, 3 tries.
pub const EF_USER_AUTH_PIN: u16 = 0x0018;
/// Signature private key.
pub const EF_SIGN_KEY: u16 = 0x001A;
/// Signature password: 6–16 of `A–Z0–9`, 5 tries.
pub const EF_SIGN_PASSWORD: u16 = 0x001B;

/// The short file identifier of an EF: the low five bits of its file id (`000A` → `0A`).
pub const fn sfi(fid: u16) -> u8 {
    (fid & 0x1F) as u8
}

/// P1 of READ BINARY (and P2 of VERIFY / COMPUTE DIGITAL SIGNATURE) naming a file by SFI.
pub const SFI_FLAG: u8 = 0x80;

// Classes and instructions (jpki-card.md §3).
pub const CLA_ISO: u8 = 0x00;
/// COMPUTE DIGITAL SIGNATURE is proprietary-class on this card.
pub const CLA_PROPRIETARY: u8 = 0x80;
pub const INS_SELECT: u8 = 0xA4;
pub const INS_READ_BINARY: u8 = 0xB0;
pub const INS_VERIFY: u8 = 0x20;
pub const INS_CHANGE_REFERENCE_DATA: u8 = 0x24;
pub const INS_COMPUTE_DIGITAL_SIGNATURE: u8 = 0x2A;

/// SELECT P1: by DF name (AID).
pub const SELECT_BY_DF_NAME: u8 = 0x04;
/// SELECT P1: EF under the current DF, by file id.
pub const SELECT_EF_UNDER_DF: u8 = 0x02;
/// SELECT P2: return no FCI.
pub const SELECT_NO_RESPONSE_DATA: u8 = 0x0C;
/// SELECT P2: return FCI (the card accepts it for applications, with Le = 00).
pub const SELECT_FCI: u8 = 0x00;
/// VERIFY / COMPUTE DIGITAL SIGNATURE P2: the currently selected PIN or key EF.
pub const P2_CURRENT_EF: u8 = 0x80;

/// DER DigestInfo prefix for SHA-256; followed by the 32-byte hash.
pub const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];
/// Length of a SHA-256 DigestInfo: prefix and hash.
pub const SHA256_DIGEST_INFO_LEN: usize = SHA256_DIGEST_INFO_PREFIX.len() + 32;
/// DER DigestInfo prefix for SHA-1; followed by the 20-byte hash.
pub const SHA1_DIGEST_INFO_PREFIX: [u8; 15] = [
    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A, 0x05, 0x00, 0x04, 0x14,
];
/// Length of a SHA-1 DigestInfo: prefix and hash.
pub const SHA1_DIGEST_INFO_LEN: usize = SHA1_DIGEST_INFO_PREFIX.len() + 20;

/// The SHA-256 DigestInfo of an already computed hash (this crate does no hashing).
pub fn sha256_digest_info(hash: &[u8; 32]) -> [u8; SHA256_DIGEST_INFO_LEN] {
    let mut out = [0u8; SHA256_DIGEST_INFO_LEN];
    out[..SHA256_DIGEST_INFO_PREFIX.len()].copy_from_slice(&SHA256_DIGEST_INFO_PREFIX);
    out[SHA256_DIGEST_INFO_PREFIX.len()..].copy_from_slice(hash);
    out
}

/// True when `bytes` is a SHA-256 DigestInfo (prefix and a 32-byte hash).
pub fn is_sha256_digest_info(bytes: &[u8]) -> bool {
    bytes.len() == SHA256_DIGEST_INFO_LEN && bytes.starts_with(&SHA256_DIGEST_INFO_PREFIX)
}

/// Consecutive wrong user-authentication PINs before the PIN blocks.
pub const USER_AUTH_PIN_MAX_TRIES: u8 = 3;
/// Consecutive wrong signature passwords before the password blocks.
pub const SIGN_PASSWORD_MAX_TRIES: u8 = 5;

/// The user-authentication key is RSA-2048: signatures are 256 bytes.
pub const USER_AUTH_SIGNATURE_LEN: usize = 256;
/// Longest input PKCS#1 v1.5 type-1 padding leaves room for in a 2048-bit block.
pub const MAX_SIGNATURE_INPUT_LEN: usize = USER_AUTH_SIGNATURE_LEN - 11;

/// Largest certificate the host flows accept: a real one is 1.2–1.6 KB, and a bound keeps a
/// hostile card from making the host read forever.
pub const MAX_CERTIFICATE_LEN: usize = 8 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sfis_are_low_five_bits() {
        assert_eq!(sfi(EF_USER_AUTH_CERT), 0x0A);
        assert_eq!(sfi(EF_USER_AUTH_PIN), 0x18);
        assert_eq!(SFI_FLAG | sfi(EF_USER_AUTH_PIN), 0x98);
    }

    #[test]
    fn digest_info_shapes() {
        let di = sha256_digest_info(&[0xAB; 32]);
        assert_eq!(di.len(), 51);
        assert!(is_sha256_digest_info(&di));
        assert!(!is_sha256_digest_info(&di[..50]));
        assert_eq!(SHA1_DIGEST_INFO_LEN, 35);
    }
}
