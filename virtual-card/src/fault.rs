//! Scripted faults: the failures a real card and reader produce, on demand, so reception
//! software can rehearse them (docs/virtual-card.md lists them with what the reader agent
//! reports).
//!
//! A fault is written `NAME` or `NAME=VALUE`, the same in a profile's `faults` list, on the
//! command line (`virtual-card attach --fault ...`) and on the control socket:
//!
//! | fault | effect |
//! |---|---|
//! | `remove-after-apdus=N` | pull the card out instead of answering the N-th command APDU |
//! | `remove-at-read=N` | pull the card out instead of answering the N-th READ BINARY |
//! | `remove-before-sign` | pull the card out instead of answering COMPUTE DIGITAL SIGNATURE |
//! | `latency=MS` | wait MS milliseconds (at most 60000) before every response |
//! | `mute-at-apdu=N` | from the N-th command APDU on, never answer (the card stays in) |
//! | `short-read=N` | the N-th READ BINARY answer lacks its last data byte |
//! | `long-read=N` | the N-th READ BINARY answer carries one byte more than asked |
//! | `bad-sw=XXXX` | every READ BINARY answers status word XXXX and no data |
//! | `cert-not-der` | EF `000A` holds a `30 82 HH LL` header followed by bytes that are not DER |
//! | `atr=HEX` | answer to reset with HEX instead of the profile's ATR |
//! | `pin-blocked` | the user-authentication PIN starts blocked (saved in the state file) |
//!
//! Counting (N) starts at 1 and runs over the whole life of the attached card, across
//! power cycles. The transport-level faults live in [`FaultInjector`], which the vpcd loop
//! consults; the content-level ones are applied once to the card by [`FaultPlan::apply`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use onshi_jpki::apdu::StatusWord;
use onshi_jpki::constants::{
    CLA_ISO, CLA_PROPRIETARY, INS_COMPUTE_DIGITAL_SIGNATURE, INS_READ_BINARY,
};

use crate::card::VirtualCard;

/// Longest scripted latency.
pub const MAX_LATENCY: Duration = Duration::from_secs(60);

/// One scripted fault (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    RemoveAfterApdus(u64),
    RemoveAtRead(u64),
    RemoveBeforeSign,
    Latency(Duration),
    MuteAtApdu(u64),
    ShortRead(u64),
    LongRead(u64),
    BadSw(StatusWord),
    CertNotDer,
    Atr(Vec<u8>),
    PinBlocked,
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let (name, value) = match spec.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (spec.trim(), None),
        };
        let count = || -> Result<u64, String> {
            let v = value.ok_or_else(|| format!("fault {name} needs =N"))?;
            match v.parse::<u64>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(format!("fault {name}: {v:?} is not a count of 1 or more")),
            }
        };
        let no_value = |f: Fault| match value {
            None => Ok(f),
            Some(_) => Err(format!("fault {name} takes no value")),
        };
        match name {
            "remove-after-apdus" => Ok(Fault::RemoveAfterApdus(count()?)),
            "remove-at-read" => Ok(Fault::RemoveAtRead(count()?)),
            "remove-before-sign" => no_value(Fault::RemoveBeforeSign),
            "latency" => {
                let v = value.ok_or("fault latency needs =MS")?;
                let ms: u64 = v
                    .parse()
                    .map_err(|_| format!("fault latency: {v:?} is not milliseconds"))?;
                let d = Duration::from_millis(ms);
                if d > MAX_LATENCY {
                    return Err(format!(
                        "fault latency: at most {} ms",
                        MAX_LATENCY.as_millis()
                    ));
                }
                Ok(Fault::Latency(d))
            }
            "mute-at-apdu" => Ok(Fault::MuteAtApdu(count()?)),
            "short-read" => Ok(Fault::ShortRead(count()?)),
            "long-read" => Ok(Fault::LongRead(count()?)),
            "bad-sw" => {
                let v = value.ok_or("fault bad-sw needs =XXXX")?;
                match hex::decode(v).as_deref() {
                    Ok(&[sw1, sw2]) => Ok(Fault::BadSw(StatusWord::from_bytes(sw1, sw2))),
                    _ => Err(format!("fault bad-sw: {v:?} is not 4 hex digits")),
                }
            }
            "cert-not-der" => no_value(Fault::CertNotDer),
            "atr" => {
                let v = value.ok_or("fault atr needs =HEX")?;
                match hex::decode(v.replace([' ', ':'], "")) {
                    Ok(atr) if (2..=33).contains(&atr.len()) => Ok(Fault::Atr(atr)),
                    _ => Err(format!("fault atr: {v:?} is not 2 to 33 bytes of hex")),
                }
            }
            "pin-blocked" => no_value(Fault::PinBlocked),
            other => Err(format!(
                "unknown fault {other:?} (known: remove-after-apdus=N, remove-at-read=N, \
                 remove-before-sign, latency=MS, mute-at-apdu=N, short-read=N, long-read=N, \
                 bad-sw=XXXX, cert-not-der, atr=HEX, pin-blocked)"
            )),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::RemoveAfterApdus(n) => write!(f, "remove-after-apdus={n}"),
            Fault::RemoveAtRead(n) => write!(f, "remove-at-read={n}"),
            Fault::RemoveBeforeSign => f.write_str("remove-before-sign"),
            Fault::Latency(d) => write!(f, "latency={}", d.as_millis()),
            Fault::MuteAtApdu(n) => write!(f, "mute-at-apdu={n}"),
            Fault::ShortRead(n) => write!(f, "short-read={n}"),
            Fault::LongRead(n) => write!(f, "long-read={n}"),
            Fault::BadSw(sw) => write!(f, "bad-sw={:02X}{:02X}", sw.sw1(), sw.sw2()),
            Fault::CertNotDer => f.write_str("cert-not-der"),
            Fault::Atr(atr) => write!(f, "atr={}", hex::encode_upper(atr)),
            Fault::PinBlocked => f.write_str("pin-blocked"),
        }
    }
}

/// The faults of one attached card.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan {
    pub faults: Vec<Fault>,
}

impl FaultPlan {
    /// Parses a list of fault specs (a profile's `faults`, repeated `--fault`).
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Self, String> {
        let faults = specs
            .iter()
            .map(|s| s.as_ref().parse())
            .collect::<Result<Vec<Fault>, String>>()?;
        Ok(Self { faults })
    }

    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// Applies the content-level faults (ATR, certificate, blocked PIN) to a card.
    pub fn apply(&self, card: &mut VirtualCard) -> Result<(), String> {
        for fault in &self.faults {
            match fault {
                Fault::Atr(atr) => card.set_atr(atr.clone()),
                Fault::CertNotDer => card
                    .set_user_auth_certificate_ef(&not_der_certificate(1200))
                    .map_err(|e| e.to_string())?,
                Fault::PinBlocked => card
                    .force_user_auth_tries(0)
                    .map_err(|e| format!("cannot save the blocked PIN: {e}"))?,
                _ => {}
            }
        }
        Ok(())
    }

    /// The per-APDU latency (the largest if several are given).
    pub fn latency(&self) -> Duration {
        self.faults
            .iter()
            .filter_map(|f| match f {
                Fault::Latency(d) => Some(*d),
                _ => None,
            })
            .max()
            .unwrap_or_default()
    }
}

impl fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.faults.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// `30 82 HH LL` and `content_len` bytes that start no DER element a certificate could hold
/// (`FF` is a reserved tag form): readable by the header-driven clients, unparseable after.
pub fn not_der_certificate(content_len: u16) -> Vec<u8> {
    let mut der = vec![0x30, 0x82];
    der.extend_from_slice(&content_len.to_be_bytes());
    der.extend((0..content_len).map(|i| if i % 2 == 0 { 0xFF } else { 0x5A }));
    der
}

/// What to do with one command APDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Let the card answer (then [`FaultInjector::corrupt`] the answer).
    Answer,
    /// Pull the card out instead of answering.
    Remove,
    /// Never answer.
    Mute,
}

/// Counts commands and decides, per command APDU, what the transport does.
#[derive(Debug, Clone, Default)]
pub struct FaultInjector {
    plan: FaultPlan,
    apdus: u64,
    reads: u64,
    muted: bool,
}

impl FaultInjector {
    pub fn new(plan: FaultPlan) -> Self {
        Self {
            plan,
            ..Self::default()
        }
    }

    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// Whether a fault can be armed on a card already in the reader: the transport faults can,
    /// the content ones (`atr`, `cert-not-der`, `pin-blocked`) apply at insertion only.
    pub fn can_arm_live(fault: &Fault) -> bool {
        !matches!(fault, Fault::Atr(_) | Fault::CertNotDer | Fault::PinBlocked)
    }

    /// Arms a transport fault while the card runs. Its count starts now: `remove-at-read=1`
    /// armed after ten reads pulls the card at the next one.
    pub fn arm(&mut self, fault: Fault) {
        let shifted = match fault {
            Fault::RemoveAfterApdus(n) => Fault::RemoveAfterApdus(n + self.apdus),
            Fault::MuteAtApdu(n) => Fault::MuteAtApdu(n + self.apdus),
            Fault::RemoveAtRead(n) => Fault::RemoveAtRead(n + self.reads),
            Fault::ShortRead(n) => Fault::ShortRead(n + self.reads),
            Fault::LongRead(n) => Fault::LongRead(n + self.reads),
            other => other,
        };
        self.plan.faults.push(shifted);
    }

    /// Called for every command APDU before the card sees it.
    pub fn before(&mut self, apdu: &[u8]) -> Action {
        self.apdus += 1;
        let is_read = matches!(apdu, [CLA_ISO, INS_READ_BINARY, ..]);
        if is_read {
            self.reads += 1;
        }
        let is_sign = matches!(apdu, [CLA_PROPRIETARY, INS_COMPUTE_DIGITAL_SIGNATURE, ..]);
        if self.muted {
            return Action::Mute;
        }
        for fault in &self.plan.faults {
            match *fault {
                Fault::RemoveAfterApdus(n) if n == self.apdus => return Action::Remove,
                Fault::RemoveAtRead(n) if is_read && n == self.reads => return Action::Remove,
                Fault::RemoveBeforeSign if is_sign => return Action::Remove,
                Fault::MuteAtApdu(n) if self.apdus >= n => {
                    self.muted = true;
                    return Action::Mute;
                }
                _ => {}
            }
        }
        Action::Answer
    }

    /// Called with the card's answer to the command [`before`](Self::before) last saw.
    pub fn corrupt(&self, apdu: &[u8], mut response: Vec<u8>) -> Vec<u8> {
        if !matches!(apdu, [CLA_ISO, INS_READ_BINARY, ..]) {
            return response;
        }
        for fault in &self.plan.faults {
            match *fault {
                Fault::ShortRead(n) if n == self.reads && response.len() > 2 => {
                    let at = response.len() - 3;
                    response.remove(at);
                }
                Fault::LongRead(n) if n == self.reads && response.len() >= 2 => {
                    let at = response.len() - 2;
                    response.insert(at, 0x00);
                }
                Fault::BadSw(sw) => return sw.to_bytes().to_vec(),
                _ => {}
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_and_errors_are_clear() {
        for spec in [
            "remove-after-apdus=4",
            "remove-at-read=2",
            "remove-before-sign",
            "latency=150",
            "mute-at-apdu=3",
            "short-read=1",
            "long-read=2",
            "bad-sw=6F00",
            "cert-not-der",
            "atr=3B021450",
            "pin-blocked",
        ] {
            let f: Fault = spec.parse().unwrap();
            assert_eq!(f.to_string(), spec);
        }
        assert!("latency=70000"
            .parse::<Fault>()
            .unwrap_err()
            .contains("at most"));
        assert!("remove-at-read=0".parse::<Fault>().is_err());
        assert!("bad-sw=6F".parse::<Fault>().is_err());
        assert!("pin-blocked=1".parse::<Fault>().is_err());
        assert!("melt"
            .parse::<Fault>()
            .unwrap_err()
            .contains("unknown fault"));
    }

    #[test]
    fn injector_counts_reads_and_signs() {
        let plan = FaultPlan::parse(&["remove-at-read=2", "short-read=1"]).unwrap();
        let mut inj = FaultInjector::new(plan);
        let select = [0x00, 0xA4, 0x04, 0x0C, 0x01, 0xD3];
        let read = [0x00, 0xB0, 0x00, 0x00, 0x04];
        assert_eq!(inj.before(&select), Action::Answer);
        assert_eq!(inj.before(&read), Action::Answer);
        assert_eq!(
            inj.corrupt(&read, vec![0x30, 0x82, 0x04, 0xCE, 0x90, 0x00]),
            vec![0x30, 0x82, 0x04, 0x90, 0x00]
        );
        assert_eq!(inj.before(&read), Action::Remove);

        let mut inj = FaultInjector::new(FaultPlan::parse(&["remove-before-sign"]).unwrap());
        assert_eq!(inj.before(&read), Action::Answer);
        assert_eq!(
            inj.before(&[0x80, 0x2A, 0x00, 0x80, 0x01, 0x00]),
            Action::Remove
        );

        let mut inj =
            FaultInjector::new(FaultPlan::parse(&["mute-at-apdu=2", "bad-sw=6F00"]).unwrap());
        assert_eq!(inj.before(&read), Action::Answer);
        assert_eq!(inj.corrupt(&read, vec![0x01, 0x90, 0x00]), vec![0x6F, 0x00]);
        assert_eq!(inj.before(&select), Action::Mute);
        assert_eq!(inj.before(&select), Action::Mute);

        // Armed while running: counted from then on.
        let mut live = FaultInjector::new(FaultPlan::default());
        for _ in 0..5 {
            assert_eq!(live.before(&read), Action::Answer);
        }
        live.arm(Fault::RemoveAtRead(1));
        assert_eq!(live.before(&read), Action::Remove);
        assert!(!FaultInjector::can_arm_live(&Fault::PinBlocked));
        assert!(FaultInjector::can_arm_live(&Fault::Latency(
            Duration::from_millis(1)
        )));

        let inj = FaultInjector::new(FaultPlan::parse(&["long-read=1"]).unwrap());
        let mut inj2 = inj.clone();
        inj2.before(&read);
        assert_eq!(
            inj2.corrupt(&read, vec![0x01, 0x90, 0x00]),
            vec![0x01, 0x00, 0x90, 0x00]
        );
        assert_eq!(
            FaultPlan::parse(&["latency=5", "latency=20"])
                .unwrap()
                .latency(),
            Duration::from_millis(20)
        );
    }

    #[test]
    fn not_der_certificate_has_a_header_and_does_not_parse() {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let der = not_der_certificate(1200);
        assert_eq!(&der[..4], &[0x30, 0x82, 0x04, 0xB0]);
        assert_eq!(der.len(), 1204);
        assert!(X509Certificate::from_der(&der).is_err());
    }
}
