//! The request mix: which kinds of request a run sends, in which proportions, and what each
//! must answer.
//!
//! The card kinds are variants of `ConfirmByCard` (PIN mode); `cardless` and `bad-numbers` are
//! `ConfirmByNumbers` with the insurance-card numbers of real persons of the world's store, and
//! `batch` is one `SubmitBatch` (一括照会) of `--batch-size` such queries. Adding a kind is a new
//! [`RequestKind`] variant, its preparation in `prepare.rs` and its send in `drive.rs`.

use std::fmt;
use std::str::FromStr;

use onshi_proto::v1::ResultCode;

/// One kind of request in a mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestKind {
    /// A PIN-mode confirmation of a valid card (`valid`, `lost` and `multiple` cards of the
    /// world): answered OK.
    Pin,
    /// A revoked card, properly signed: `CERTIFICATE_REVOKED`.
    Revoked,
    /// An expired card, properly signed: `CERTIFICATE_EXPIRED`.
    Expired,
    /// A valid card whose holder has not registered it: `CARD_NOT_REGISTERED`.
    Unregistered,
    /// A valid card with one bit of the signature flipped: `SIGNATURE_INVALID`.
    BadSignature,
    /// A challenge already used during preparation, sent again: `CHALLENGE_REUSED`.
    Replay,
    /// A card-less confirmation (`ConfirmByNumbers`) with the numbers and birth date of a real
    /// qualification: carried out (OK, NO_QUALIFICATION or MULTIPLE_QUALIFICATIONS, per person).
    Cardless,
    /// A card-less confirmation whose insurer number has a wrong check digit:
    /// `INVALID_INSURER_NUMBER`.
    BadNumbers,
    /// One `SubmitBatch` of `--batch-size` card-less queries: accepted with a 16-digit reception
    /// number. One request = one submission; the queries are answered in the background.
    Batch,
}

impl RequestKind {
    pub const ALL: [RequestKind; 9] = [
        RequestKind::Pin,
        RequestKind::Revoked,
        RequestKind::Expired,
        RequestKind::Unregistered,
        RequestKind::BadSignature,
        RequestKind::Replay,
        RequestKind::Cardless,
        RequestKind::BadNumbers,
        RequestKind::Batch,
    ];

    /// Sent with `ConfirmByCard` (the only RPC the reference server implements).
    pub fn is_card(self) -> bool {
        !matches!(
            self,
            RequestKind::Cardless | RequestKind::BadNumbers | RequestKind::Batch
        )
    }

    /// The name in `--mix`.
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Pin => "pin",
            RequestKind::Revoked => "revoked",
            RequestKind::Expired => "expired",
            RequestKind::Unregistered => "unregistered",
            RequestKind::BadSignature => "bad-signature",
            RequestKind::Replay => "replay",
            RequestKind::Cardless => "cardless",
            RequestKind::BadNumbers => "bad-numbers",
            RequestKind::Batch => "batch",
        }
    }

    /// What `target` must answer to this request. The reference server implements only
    /// `ConfirmByCard`, so a run refuses to send it the card-less kinds (see
    /// [`Mix::card_only`]); their expectation here is the service's.
    pub fn expected(self, target: Target) -> Expected {
        match (target, self) {
            (_, RequestKind::Pin) => Expected::Confirmed,
            (_, RequestKind::Cardless) => Expected::CarriedOut,
            (_, RequestKind::BadNumbers) => Expected::Refused(ResultCode::InvalidInsurerNumber),
            (_, RequestKind::Batch) => Expected::BatchAccepted,
            (_, RequestKind::BadSignature) => Expected::Refused(ResultCode::SignatureInvalid),
            // The reference checks only the signature: everything else it confirms.
            (Target::Reference, _) => Expected::Confirmed,
            (Target::Service, RequestKind::Revoked) => {
                Expected::Refused(ResultCode::CertificateRevoked)
            }
            (Target::Service, RequestKind::Expired) => {
                Expected::Refused(ResultCode::CertificateExpired)
            }
            (Target::Service, RequestKind::Unregistered) => {
                Expected::Refused(ResultCode::CardNotRegistered)
            }
            (Target::Service, RequestKind::Replay) => {
                Expected::Refused(ResultCode::ChallengeReused)
            }
        }
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a server under load is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// The confirmation service.
    Service,
    /// The bare reference server (`loadgen reference-server`).
    Reference,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Service => "service",
            Target::Reference => "reference",
        }
    }
}

/// The answer a request must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// gRPC OK with a `ConfirmationResult` whose result code is OK, NO_QUALIFICATION or
    /// MULTIPLE_QUALIFICATIONS (a card's holder may have lost every qualification).
    Confirmed,
    /// A card-less confirmation carried out: gRPC OK with result code OK, NO_QUALIFICATION or
    /// MULTIPLE_QUALIFICATIONS, whichever the person's records give.
    CarriedOut,
    /// A batch submission accepted: gRPC OK with a 16-digit reception number and a non-zero
    /// total.
    BatchAccepted,
    /// A refusal carrying this result code.
    Refused(ResultCode),
}

/// Weights of request kinds, e.g. `pin=95,revoked=2,bad-signature=2,replay=1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    weights: Vec<(RequestKind, u32)>,
}

/// Why a `--mix` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MixError {
    #[error("{0:?} is not KIND=WEIGHT")]
    Syntax(String),
    #[error("unknown request kind {0:?} (known: pin, revoked, expired, unregistered, bad-signature, replay, cardless, bad-numbers, batch)")]
    UnknownKind(String),
    #[error("weight of {0} is not a whole number up to 1000000")]
    Weight(String),
    #[error("{0} appears twice")]
    Duplicate(String),
    #[error("the mix has no request with a positive weight")]
    Empty,
}

impl FromStr for Mix {
    type Err = MixError;

    fn from_str(s: &str) -> Result<Mix, MixError> {
        let mut weights = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| MixError::Syntax(part.to_owned()))?;
            let name = name.trim();
            let kind = match name {
                "card-less" => RequestKind::Cardless,
                _ => RequestKind::ALL
                    .into_iter()
                    .find(|k| k.name() == name)
                    .ok_or_else(|| MixError::UnknownKind(name.to_owned()))?,
            };
            let weight: u32 = weight
                .trim()
                .parse()
                .ok()
                .filter(|w| *w <= 1_000_000)
                .ok_or_else(|| MixError::Weight(name.to_owned()))?;
            if weights.iter().any(|(k, _)| *k == kind) {
                return Err(MixError::Duplicate(name.to_owned()));
            }
            if weight > 0 {
                weights.push((kind, weight));
            }
        }
        if weights.is_empty() {
            return Err(MixError::Empty);
        }
        Ok(Mix { weights })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .weights
            .iter()
            .map(|(k, w)| format!("{}={w}", k.name()))
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl Default for Mix {
    fn default() -> Mix {
        Mix {
            weights: vec![(RequestKind::Pin, 1)],
        }
    }
}

impl Mix {
    /// The kinds with a positive weight.
    pub fn kinds(&self) -> impl Iterator<Item = RequestKind> + '_ {
        self.weights.iter().map(|(k, _)| *k)
    }

    /// Every kind is sent with `ConfirmByCard`.
    pub fn card_only(&self) -> bool {
        self.kinds().all(RequestKind::is_card)
    }

    /// Some kind needs the card-less numbers of the world's persons.
    pub fn needs_numbers(&self) -> bool {
        !self.card_only()
    }

    /// `n` kinds in the mix's exact proportions, evenly interleaved (smooth weighted
    /// round-robin), so any window of the sequence has close to the configured shares.
    pub fn sequence(&self, n: usize) -> Vec<RequestKind> {
        let total: i64 = self.weights.iter().map(|(_, w)| i64::from(*w)).sum();
        let mut current: Vec<i64> = vec![0; self.weights.len()];
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let mut best = 0;
            for (i, (_, w)) in self.weights.iter().enumerate() {
                current[i] += i64::from(*w);
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            out.push(self.weights[best].0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_keeps_exact_shares() {
        let mix: Mix = "pin=95,revoked=2,bad-signature=2,replay=1"
            .parse()
            .unwrap_or_default();
        assert_eq!(mix.to_string(), "pin=95,revoked=2,bad-signature=2,replay=1");
        let seq = mix.sequence(200);
        let count = |k| seq.iter().filter(|x| **x == k).count();
        assert_eq!(count(RequestKind::Pin), 190);
        assert_eq!(count(RequestKind::Revoked), 4);
        assert_eq!(count(RequestKind::BadSignature), 4);
        assert_eq!(count(RequestKind::Replay), 2);
        // Interleaved, not clumped: the first 50 already hold an invalid request.
        assert!(seq[..50].iter().any(|k| *k != RequestKind::Pin));
    }

    #[test]
    fn refuses_bad_mixes_with_a_reason() {
        assert_eq!("pin".parse::<Mix>(), Err(MixError::Syntax("pin".into())));
        assert!(matches!(
            "nope=1".parse::<Mix>(),
            Err(MixError::UnknownKind(_))
        ));
        assert!(matches!("pin=-1".parse::<Mix>(), Err(MixError::Weight(_))));
        assert!(matches!(
            "pin=1,pin=2".parse::<Mix>(),
            Err(MixError::Duplicate(_))
        ));
        assert_eq!("pin=0".parse::<Mix>(), Err(MixError::Empty));
        assert_eq!("".parse::<Mix>(), Err(MixError::Empty));
    }

    #[test]
    fn parses_the_card_less_kinds() {
        let mix: Mix = "cardless=5,bad-numbers=1,batch=1"
            .parse()
            .unwrap_or_default();
        assert_eq!(mix.to_string(), "cardless=5,bad-numbers=1,batch=1");
        assert!(mix.needs_numbers() && !mix.card_only());
        let alias: Mix = "card-less=1".parse().unwrap_or_default();
        assert_eq!(alias.to_string(), "cardless=1");
        assert!(Mix::default().card_only());
        assert_eq!(
            RequestKind::Cardless.expected(Target::Service),
            Expected::CarriedOut
        );
        assert_eq!(
            RequestKind::BadNumbers.expected(Target::Service),
            Expected::Refused(ResultCode::InvalidInsurerNumber)
        );
        assert_eq!(
            RequestKind::Batch.expected(Target::Service),
            Expected::BatchAccepted
        );
    }

    #[test]
    fn the_reference_refuses_only_bad_signatures() {
        for kind in RequestKind::ALL.into_iter().filter(|k| k.is_card()) {
            let want = if kind == RequestKind::BadSignature {
                Expected::Refused(ResultCode::SignatureInvalid)
            } else {
                Expected::Confirmed
            };
            assert_eq!(kind.expected(Target::Reference), want, "{kind}");
        }
        assert_eq!(
            RequestKind::Replay.expected(Target::Service),
            Expected::Refused(ResultCode::ChallengeReused)
        );
    }
}
