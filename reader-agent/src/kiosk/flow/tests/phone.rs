//! The smartphone path (issue 20 item 3, docs/kiosk.md): a phone held to the general-purpose
//! reader instead of a card; the PIN pad (Android) or the wait screen (iPhone); the card's
//! consent, confirmation and result stages.

use super::*;

fn with_phone() -> Settings {
    Settings {
        phone: true,
        ..settings()
    }
}

fn presented(platform: Platform, tries_left: Option<u8>) -> Event {
    Event::PhoneRead(Ok(Presented {
        platform,
        certificate: certificate(),
        tries_left,
    }))
}

/// 「スマートフォンで受付」 and the phone's answer: at the consent screens.
fn phone(platform: Platform) -> Kiosk {
    let mut k = Kiosk::new(with_phone());
    assert!(k.view().phone, "the start screen offers the phone");
    k.feed(Event::PhoneHeld {
        session_id: Ok(SESSION.into()),
    });
    assert!(matches!(&k.effects[..], [Effect::ReadPhone]));
    assert_eq!(
        k.screen(),
        Screen::Working {
            task: Task::ReadingPhone
        }
    );
    let tries = (platform == Platform::Android).then_some(3);
    k.feed(presented(platform, tries));
    assert!(matches!(k.screen(), Screen::Consent { index: 1, .. }));
    k
}

fn phone_sign(k: &Kiosk) -> (&[u8], Option<&Pin>) {
    k.effects
        .iter()
        .find_map(|e| match e {
            Effect::PhoneSign { binding, pin } => Some((binding.as_slice(), pin.as_ref())),
            _ => None,
        })
        .expect("the phone is asked to sign")
}

fn sent_kind(k: &Kiosk) -> i32 {
    k.effects
        .iter()
        .find_map(|e| match e {
            Effect::ConfirmByCard(r) => Some(r.credential_kind),
            _ => None,
        })
        .expect("a confirmation is sent")
}

#[test]
fn an_android_phone_asks_its_pin_after_the_consents_and_counts_a_wrong_one() {
    let mut k = phone(Platform::Android);
    k.all_consents();
    assert!(matches!(
        &k.effects[..],
        [Effect::IssueChallenge(pb::Purpose::SmartphoneAndroid)]
    ));
    k.challenge();
    assert_eq!(
        k.screen(),
        Screen::Pin {
            purpose: PinPadPurpose::Phone,
            tries_left: 3,
            wrong_pin: false
        }
    );
    k.pin("1111");
    let (binding, pin) = phone_sign(&k);
    assert_eq!(binding[8], 50, "the Android purpose");
    assert!(pin.is_some(), "the PIN goes to the phone");
    assert!(
        !format!("{:?}", k.state()).contains("1111"),
        "no stage keeps the PIN"
    );
    k.feed(Event::PhoneSigned(Signed::WrongPin(2)));
    assert_eq!(
        k.screen(),
        Screen::Pin {
            purpose: PinPadPurpose::Phone,
            tries_left: 2,
            wrong_pin: true
        }
    );
    // The same challenge is signed after the next PIN: no new one is asked for.
    k.pin("1234");
    assert!(k
        .effects
        .iter()
        .all(|e| !matches!(e, Effect::IssueChallenge(_))));
    phone_sign(&k);
    k.feed(Event::PhoneSigned(Signed::Signature(vec![1; 256])));
    assert_eq!(sent_kind(&k), pb::CredentialKind::SmartphoneAndroid as i32);
    k.feed(confirmed("c-android"));
    assert!(matches!(
        k.screen(),
        Screen::Done {
            method: Method::SmartphoneAndroid,
            ..
        }
    ));
    assert_eq!(k.records()[0].method, "smartphone-android");
}

#[test]
fn a_locked_android_phone_ends_on_the_phone_lock() {
    // Locked as it signs (the third wrong PIN).
    let mut k = phone(Platform::Android);
    k.all_consents().challenge().pin("1111");
    k.feed(Event::PhoneSigned(Signed::Refused(
        crate::phone::phone_refusal(pb::ResultCode::PhonePinLocked, "locked", Some(0)),
    )));
    assert_eq!(
        k.failed(),
        (
            FailReason::Refused,
            Some("RESULT_CODE_PHONE_PIN_LOCKED".into())
        )
    );
    assert_eq!(k.records()[0].method, "smartphone-android");
    // Locked before: no consent screens, no challenge.
    let mut k = Kiosk::new(with_phone());
    k.feed(Event::PhoneHeld {
        session_id: Ok(SESSION.into()),
    })
    .feed(presented(Platform::Android, Some(0)));
    assert_eq!(
        k.failed().1.as_deref(),
        Some("RESULT_CODE_PHONE_PIN_LOCKED")
    );
}

#[test]
fn an_iphone_verifies_behind_the_wait_screen_without_a_pin_pad() {
    let mut k = phone(Platform::Iphone);
    k.all_consents();
    assert!(matches!(
        &k.effects[..],
        [Effect::IssueChallenge(pb::Purpose::SmartphoneIphone)]
    ));
    k.challenge();
    let (binding, pin) = phone_sign(&k);
    assert_eq!(binding[8], 51, "the iPhone purpose");
    assert!(pin.is_none());
    assert_eq!(
        k.screen(),
        Screen::Working {
            task: Task::PhoneVerification
        }
    );
    k.feed(Event::PhoneSigned(Signed::Signature(vec![1; 256])));
    assert_eq!(sent_kind(&k), pb::CredentialKind::SmartphoneIphone as i32);
    k.feed(confirmed("c-iphone"));
    assert!(matches!(
        k.screen(),
        Screen::Done {
            method: Method::SmartphoneIphone,
            ..
        }
    ));
}

#[test]
fn an_iphone_refusal_is_shown_and_recorded() {
    let mut k = phone(Platform::Iphone);
    k.all_consents().challenge();
    k.feed(Event::PhoneSigned(Signed::Refused(
        crate::phone::phone_refusal(pb::ResultCode::PhoneVerificationRefused, "refused", None),
    )));
    assert_eq!(
        k.failed().1.as_deref(),
        Some("RESULT_CODE_PHONE_VERIFICATION_REFUSED")
    );
    assert_eq!(k.records()[0].method, "smartphone-iphone");
}

#[test]
fn a_phone_whose_card_is_not_registered_is_refused_without_the_offer_to_register() {
    let mut k = phone(Platform::Iphone);
    k.all_consents().challenge();
    k.feed(Event::PhoneSigned(Signed::Signature(vec![1; 256])))
        .feed(Event::Answered(Err(refused(
            pb::ResultCode::CardNotRegistered,
        ))));
    assert_eq!(
        k.failed().1.as_deref(),
        Some("RESULT_CODE_CARD_NOT_REGISTERED")
    );
}

#[test]
fn a_phone_session_is_refused_without_a_channel_or_during_a_session() {
    let mut k = Kiosk::new(settings());
    assert!(!k.view().phone);
    k.feed(Event::PhoneHeld {
        session_id: Ok(SESSION.into()),
    });
    assert_eq!(k.refusal().map(|r| r.0), Some(ActionRefused::NotOffered));
    assert_eq!(k.screen(), Screen::InsertCard);

    let mut k = Kiosk::card(with_phone(), PinStatus::TriesLeft(3), 0);
    k.feed(Event::PhoneHeld {
        session_id: Ok("ffeeddccbbaa99887766554433221100".into()),
    });
    assert_eq!(k.refusal().map(|r| r.0), Some(ActionRefused::WrongScreen));
    assert_eq!(k.view().session.as_deref(), Some(SESSION));

    // A card placed during a phone's session waits, too.
    let mut k = phone(Platform::Iphone);
    k.feed(Event::CardInserted {
        reader: READER.into(),
        session_id: Ok("ffeeddccbbaa99887766554433221100".into()),
    });
    assert!(k.effects.is_empty());
    assert!(matches!(k.screen(), Screen::Consent { .. }));
}

#[test]
fn a_finished_phone_session_gives_way_to_the_next_patient_or_the_idle_timeout() {
    let finished = || {
        let mut k = phone(Platform::Iphone);
        k.all_consents()
            .challenge()
            .feed(Event::PhoneSigned(Signed::Signature(vec![1; 256])))
            .feed(confirmed("c"));
        assert!(k.state().stage.phone_finished());
        k
    };
    let mut k = finished();
    k.feed(Event::IdleTimeout);
    assert_eq!(k.screen(), Screen::InsertCard);
    assert!(k.drops_card());

    let mut k = finished();
    k.feed(Event::CardInserted {
        reader: READER.into(),
        session_id: Ok("ffeeddccbbaa99887766554433221100".into()),
    });
    assert!(matches!(&k.effects[..], [Effect::ReadCard { .. }]));

    let mut k = finished();
    k.feed(Event::PhoneHeld {
        session_id: Ok("ffeeddccbbaa99887766554433221100".into()),
    });
    assert!(matches!(&k.effects[..], [Effect::ReadPhone]));
    // A card's finished session still waits for the card to be pulled.
    let mut k = Kiosk::ready();
    k.pin_verified_and_consented()
        .challenge()
        .feed(Event::Signed(Ok(vec![1; 256])))
        .feed(confirmed("c"));
    assert!(!k.state().stage.phone_finished());
}

#[test]
fn a_phone_the_reader_cannot_use_ends_before_a_session() {
    let mut k = Kiosk::new(with_phone());
    k.feed(Event::PhoneHeld {
        session_id: Ok(SESSION.into()),
    })
    .feed(Event::PhoneRead(Err(crate::phone::phone_refusal(
        pb::ResultCode::PhoneUnavailable,
        "no phone",
        None,
    ))));
    assert_eq!(
        k.failed().1.as_deref(),
        Some("RESULT_CODE_PHONE_UNAVAILABLE")
    );
    assert!(k.state().stage.card().is_none());
}
