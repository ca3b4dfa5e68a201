//! The outage path's stages (issue 23): the declaration, its record, and the service's return.

use super::*;

fn declaration() -> Declaration {
    Declaration {
        insurer_number: "01130012".into(),
        symbol: "76825719".into(),
        number: "10000000".into(),
        branch: "00".into(),
        birth_date: "19710605".into(),
    }
}

/// A card placed while the service is known to be down.
fn in_outage() -> Kiosk {
    let mut k = Kiosk::new(settings());
    k.feed(Event::ServiceReachable(false));
    assert!(k.view().outage);
    k.feed(Event::CardInserted {
        reader: READER.into(),
        session_id: Ok(SESSION.into()),
    })
    .feed(Event::CardRead(Ok((
        CardReading {
            certificate: certificate(),
            pin_status: PinStatus::TriesLeft(3),
        },
        0,
    ))));
    k
}

#[test]
fn during_an_outage_a_card_goes_straight_to_the_declaration_without_a_pin() {
    let mut k = in_outage();
    assert_eq!(k.screen(), Screen::OutageDeclare { error: None });
    assert!(k.effects.is_empty(), "{:?}", k.effects);
    // The PIN pad does not belong to this screen.
    k.pin("1234");
    assert_eq!(k.refusal().map(|r| r.0), Some(ActionRefused::WrongScreen));
    assert!(!k.effects.iter().any(|e| matches!(e, Effect::VerifyPin(_))));

    k.act(Action::Declare(declaration()));
    assert_eq!(
        k.screen(),
        Screen::Working {
            task: Task::RecordingOutage
        }
    );
    match &k.effects[..] {
        [Effect::RecordOutage {
            declaration: d,
            certificate_sha256: Some(hash),
        }] => {
            assert_eq!(d, &declaration());
            assert_eq!(hash, &card_key(&certificate()));
        }
        other => panic!("{other:?}"),
    }
    k.feed(Event::OutageRecorded(Ok(3)));
    assert_eq!(k.screen(), Screen::OutageRecorded { waiting: 3 });
    assert!(k.effects.is_empty());
    // Recorded is an outcome: pulling the card now is no interruption.
    k.feed(Event::CardRemoved {
        reader: READER.into(),
    });
    assert_eq!(k.screen(), Screen::InsertCard);
    assert_eq!(k.view().notice, None);
    assert!(k.drops_card());
}

#[test]
fn a_declaration_with_a_fault_is_shown_again_and_not_recorded() {
    let mut k = in_outage();
    k.act(Action::Declare(Declaration {
        birth_date: "1971065".into(),
        ..declaration()
    }));
    match k.screen() {
        Screen::OutageDeclare { error: Some(e) } => assert!(e.contains("birth date"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(k.effects.is_empty());
}

#[test]
fn a_full_outage_store_is_a_clear_failure() {
    let mut k = in_outage();
    k.act(Action::Declare(declaration()))
        .feed(Event::OutageRecorded(
            Err("the outage store is full".into()),
        ));
    match k.screen() {
        Screen::Failed {
            reason: FailReason::OutageNotRecorded,
            message,
            ..
        } => assert!(message.contains("full"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_declaration_waits_for_the_patient_and_can_be_cancelled() {
    let mut k = in_outage();
    k.feed(Event::IdleTimeout);
    assert_eq!(k.failed().0, FailReason::TimedOut);
    let mut k = in_outage();
    k.act(Action::Cancel);
    assert_eq!(k.failed().0, FailReason::Cancelled);
    // Another session's declaration is refused as stale.
    let mut k = in_outage();
    k.act_as(
        "ffeeddccbbaa99887766554433221100",
        Action::Declare(declaration()),
    );
    assert_eq!(k.refusal().map(|r| r.0), Some(ActionRefused::StaleSession));
    assert_eq!(k.screen(), Screen::OutageDeclare { error: None });
}

#[test]
fn the_service_back_ends_the_outage_path_for_the_next_card() {
    let mut k = in_outage();
    k.feed(Event::ServiceReachable(true));
    assert!(!k.view().outage);
    // The card in the reader keeps its screen; the next one gets the method choice.
    assert_eq!(k.screen(), Screen::OutageDeclare { error: None });
    k.feed(Event::CardRemoved {
        reader: READER.into(),
    })
    .feed(Event::CardInserted {
        reader: READER.into(),
        session_id: Ok(SESSION.into()),
    })
    .feed(Event::CardRead(Ok((
        CardReading {
            certificate: certificate(),
            pin_status: PinStatus::TriesLeft(3),
        },
        0,
    ))));
    assert!(matches!(k.screen(), Screen::ChooseMethod { .. }));
}

#[test]
fn a_challenge_that_times_out_turns_the_outage_path_on() {
    let mut k = Kiosk::ready();
    k.pin_verified_and_consented()
        .feed(Event::Challenge(Err(refused(
            pb::ResultCode::ServiceUnavailable,
        ))));
    assert_eq!(k.screen(), Screen::OutageDeclare { error: None });
    assert!(k.view().outage);
    // A refusal that is an answer is not an outage.
    let mut k = Kiosk::ready();
    k.pin_verified_and_consented()
        .feed(Event::Challenge(Err(refused(pb::ResultCode::RateLimited))));
    assert_eq!(
        k.failed(),
        (FailReason::Refused, code(pb::ResultCode::RateLimited))
    );
    assert!(!k.view().outage);
}
