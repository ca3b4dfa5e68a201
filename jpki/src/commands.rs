//! Constructors for the card commands of jpki-card.md §3, byte for byte.
//!
//! Commands with fixed or bounded arguments are infallible; those taking caller-chosen sizes
//! return an [`ApduError`] instead of building a command the card would misread.

use crate::apdu::{ApduError, CommandApdu, MAX_SHORT_DATA, MAX_SHORT_LE};
use crate::constants::{
    CLA_ISO, CLA_PROPRIETARY, INS_CHANGE_REFERENCE_DATA, INS_COMPUTE_DIGITAL_SIGNATURE,
    INS_READ_BINARY, INS_SELECT, INS_VERIFY, JPKI_AID, P2_CURRENT_EF, SELECT_BY_DF_NAME,
    SELECT_EF_UNDER_DF, SELECT_NO_RESPONSE_DATA, SFI_FLAG,
};
use crate::pin::Pin;

/// Highest offset READ BINARY can address with P1 bit 8 clear.
pub const MAX_READ_OFFSET: u16 = 0x7FFF;

/// `00 A4 04 0C Lc AID`: select an application by AID (5 to 16 bytes).
pub fn select_application(aid: &[u8]) -> Result<CommandApdu, ApduError> {
    if !(5..=16).contains(&aid.len()) {
        return Err(ApduError::InvalidAid { len: aid.len() });
    }
    Ok(CommandApdu::assemble(
        CLA_ISO,
        INS_SELECT,
        SELECT_BY_DF_NAME,
        SELECT_NO_RESPONSE_DATA,
        aid.to_vec(),
        None,
    ))
}

/// `00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01`: select the JPKI application.
pub fn select_jpki() -> CommandApdu {
    CommandApdu::assemble(
        CLA_ISO,
        INS_SELECT,
        SELECT_BY_DF_NAME,
        SELECT_NO_RESPONSE_DATA,
        JPKI_AID.to_vec(),
        None,
    )
}

/// `00 A4 02 0C 02 FID`: select an EF of the current application.
pub fn select_ef(fid: u16) -> CommandApdu {
    CommandApdu::assemble(
        CLA_ISO,
        INS_SELECT,
        SELECT_EF_UNDER_DF,
        SELECT_NO_RESPONSE_DATA,
        fid.to_be_bytes().to_vec(),
        None,
    )
}

/// `00 B0 OFFhi OFFlo Le`: read the current EF. `offset` ≤ 0x7FFF, `le` 1..=256.
pub fn read_binary(offset: u16, le: u16) -> Result<CommandApdu, ApduError> {
    if offset > MAX_READ_OFFSET {
        return Err(ApduError::OffsetOutOfRange { offset });
    }
    check_le(le)?;
    let [p1, p2] = offset.to_be_bytes();
    Ok(CommandApdu::assemble(
        CLA_ISO,
        INS_READ_BINARY,
        p1,
        p2,
        Vec::new(),
        Some(le),
    ))
}

/// `80 B0 OFFhi OFFlo Le`: **simulator only** (docs/virtual-card.md): the project's virtual
/// card answers this proprietary READ BINARY in the Kenkaku application with the raw face
/// photo, no PIN needed. No real card knows it (they answer `6E00`).
pub fn read_simulator_face_photo(offset: u16, le: u16) -> Result<CommandApdu, ApduError> {
    if offset > MAX_READ_OFFSET {
        return Err(ApduError::OffsetOutOfRange { offset });
    }
    check_le(le)?;
    let [p1, p2] = offset.to_be_bytes();
    Ok(CommandApdu::assemble(
        CLA_PROPRIETARY,
        INS_READ_BINARY,
        p1,
        p2,
        Vec::new(),
        Some(le),
    ))
}

/// `00 B0 80|SFI OFF Le`: read an EF by short file id (1..=30) without selecting it; the card
/// makes it the current EF. The offset is one byte here.
pub fn read_binary_sfi(sfi: u8, offset: u8, le: u16) -> Result<CommandApdu, ApduError> {
    if !(1..=30).contains(&sfi) {
        return Err(ApduError::InvalidSfi { sfi });
    }
    check_le(le)?;
    Ok(CommandApdu::assemble(
        CLA_ISO,
        INS_READ_BINARY,
        SFI_FLAG | sfi,
        offset,
        Vec::new(),
        Some(le),
    ))
}

/// `00 20 00 80 04 <PIN>`: verify the PIN of the selected PIN EF. The command is sensitive:
/// redacted when shown, wiped when dropped.
pub fn verify(pin: &Pin) -> CommandApdu {
    CommandApdu::assemble(
        CLA_ISO,
        INS_VERIFY,
        0x00,
        P2_CURRENT_EF,
        pin.digits().to_vec(),
        None,
    )
}

/// `00 24 01 80 04 <new PIN>`: CHANGE REFERENCE DATA of the selected PIN EF after a
/// successful VERIFY (P1=`01`: the data is the new value only). Sensitive like VERIFY.
pub fn change_reference_data(new_pin: &Pin) -> CommandApdu {
    CommandApdu::assemble(
        CLA_ISO,
        INS_CHANGE_REFERENCE_DATA,
        0x01,
        P2_CURRENT_EF,
        new_pin.digits().to_vec(),
        None,
    )
}

/// `00 20 00 80`: the empty VERIFY that asks for the retry counter of the selected PIN EF.
pub fn retry_counter() -> CommandApdu {
    CommandApdu::assemble(CLA_ISO, INS_VERIFY, 0x00, P2_CURRENT_EF, Vec::new(), None)
}

/// `80 2A 00 80 Lc <DigestInfo> 00`: sign with the selected key EF. The card pads the data
/// exactly as given (PKCS#1 v1.5 type 1), so pass a DER DigestInfo, not a bare hash.
pub fn compute_signature(digest_info: &[u8]) -> Result<CommandApdu, ApduError> {
    if digest_info.is_empty() || digest_info.len() > MAX_SHORT_DATA {
        return Err(ApduError::DataTooLong {
            len: digest_info.len(),
        });
    }
    Ok(CommandApdu::assemble(
        CLA_PROPRIETARY,
        INS_COMPUTE_DIGITAL_SIGNATURE,
        0x00,
        P2_CURRENT_EF,
        digest_info.to_vec(),
        Some(MAX_SHORT_LE),
    ))
}

fn check_le(le: u16) -> Result<(), ApduError> {
    if le == 0 || le > MAX_SHORT_LE {
        Err(ApduError::LeOutOfRange { le })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constants::{sha256_digest_info, EF_USER_AUTH_CERT, EF_USER_AUTH_PIN};

    fn hex(c: &CommandApdu) -> String {
        hex::encode_upper(&*c.to_bytes())
    }

    #[test]
    fn exact_bytes() {
        assert_eq!(hex(&select_jpki()), "00A4040C0AD392F000260100000001");
        assert_eq!(
            hex(&select_application(&JPKI_AID).unwrap()),
            "00A4040C0AD392F000260100000001"
        );
        assert_eq!(hex(&select_ef(EF_USER_AUTH_CERT)), "00A4020C02000A");
        assert_eq!(hex(&read_binary(0, 4).unwrap()), "00B0000004");
        assert_eq!(hex(&read_binary(0x0104, 256).unwrap()), "00B0010400");
        assert_eq!(hex(&read_binary_sfi(0x0A, 0, 4).unwrap()), "00B08A0004");
        assert_eq!(hex(&retry_counter()), "00200080");
        let pin = Pin::new("4729").unwrap();
        let v = verify(&pin);
        assert_eq!(hex(&v), "002000800434373239");
        assert!(v.is_sensitive());
        assert_eq!(v.to_string(), "00 20 00 80 04 <redacted 4 bytes>");
        let di = sha256_digest_info(&[0x11; 32]);
        let sig = compute_signature(&di).unwrap();
        let bytes = sig.to_bytes();
        assert_eq!(&bytes[..5], &[0x80, 0x2A, 0x00, 0x80, 0x33]);
        assert_eq!(&bytes[5..56], &di[..]);
        assert_eq!(bytes[56], 0x00);
        assert_eq!(bytes.len(), 57);
        let _ = EF_USER_AUTH_PIN;
    }

    #[test]
    fn rejects_out_of_range_arguments() {
        assert_eq!(
            read_binary(0x8000, 4),
            Err(ApduError::OffsetOutOfRange { offset: 0x8000 })
        );
        assert_eq!(read_binary(0, 0), Err(ApduError::LeOutOfRange { le: 0 }));
        assert_eq!(
            read_binary(0, 257),
            Err(ApduError::LeOutOfRange { le: 257 })
        );
        assert_eq!(
            read_binary_sfi(0, 0, 4),
            Err(ApduError::InvalidSfi { sfi: 0 })
        );
        assert_eq!(
            read_binary_sfi(31, 0, 4),
            Err(ApduError::InvalidSfi { sfi: 31 })
        );
        assert!(select_application(&[0xD3; 4]).is_err());
        assert!(select_application(&[0xD3; 17]).is_err());
        assert!(compute_signature(&[]).is_err());
        assert!(compute_signature(&[0; 256]).is_err());
    }
}
