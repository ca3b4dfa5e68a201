//! 導入医療機関リスト: the institutions where the card works, i.e. those with at least one
//! terminal in operation, as the public looks them up (code, name, prefecture, since when).
//! The registry of institutions comes from the world (the testbed) like the terminals; this
//! module checks an entry, names the prefectures and renders the list (gRPC, CSV, JSON). No
//! store, no clock.

use std::io::Write;

use onshi_proto::v1 as pb;
use time::Date;

use crate::eligibility::{DomainError, InstitutionCode};

/// The 47 prefectures in JIS X 0401 order: code `01` is the first.
pub const PREFECTURES: [&str; 47] = [
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
];

/// Longest institution name the registry accepts.
pub const MAX_NAME_CHARS: usize = 100;

/// The name of prefecture `code` ("01".."47"), or `None`.
pub fn prefecture_name(code: &str) -> Option<&'static str> {
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: usize = code.parse().ok()?;
    PREFECTURES.get(n.checked_sub(1)?).copied()
}

/// An institution of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Institution {
    /// 医療機関コード, 10 digits with its check digit.
    pub institution_code: String,
    pub name: String,
    /// When its first terminal went into operation (オンライン資格確認の運用開始日).
    pub started_on: Date,
}

impl Institution {
    /// The prefecture: a 医療機関コード begins with its JIS X 0401 code.
    pub fn prefecture(&self) -> &str {
        self.institution_code.get(..2).unwrap_or("")
    }

    /// Whether the entry may be stored: a valid institution code whose first two digits are a
    /// prefecture, and a name of 1 to [`MAX_NAME_CHARS`] characters without control characters.
    pub fn check(&self) -> Result<(), DomainError> {
        InstitutionCode::parse(&self.institution_code)?;
        let chars = self.name.chars().count();
        if chars == 0 {
            return Err(DomainError::Empty {
                what: "institution name",
            });
        }
        if chars > MAX_NAME_CHARS {
            return Err(DomainError::TooLong {
                what: "institution name",
                max: MAX_NAME_CHARS,
                actual: chars,
            });
        }
        if let Some(position) = self.name.chars().position(char::is_control) {
            return Err(DomainError::BadCharacter {
                what: "institution name",
                position,
            });
        }
        if prefecture_name(self.prefecture()).is_none() {
            return Err(DomainError::Contradictory {
                what: "an institution code begins with its prefecture, 01 to 47",
            });
        }
        Ok(())
    }
}

/// One line of the list: the institution and how many of its terminals are in operation
/// (at least one, or it is not listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedInstitution {
    pub institution: Institution,
    pub terminals_in_operation: u32,
}

fn yyyymmdd(d: Date) -> String {
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The gRPC form.
pub fn to_proto(l: &ListedInstitution) -> pb::Institution {
    let i = &l.institution;
    pb::Institution {
        institution_code: i.institution_code.clone(),
        name: i.name.clone(),
        prefecture: i.prefecture().to_owned(),
        prefecture_name: prefecture_name(i.prefecture()).unwrap_or("").to_owned(),
        started_on: yyyymmdd(i.started_on),
        terminals_in_operation: l.terminals_in_operation,
    }
}

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 6] = [
    "institution_code",
    "name",
    "prefecture",
    "prefecture_name",
    "started_on",
    "terminals_in_operation",
];

/// Writes the list as CSV (UTF-8, a header line, one line per institution).
pub fn write_csv(list: &[pb::Institution], out: impl Write) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER)?;
    for i in list {
        w.write_record([
            i.institution_code.as_str(),
            &i.name,
            &i.prefecture,
            &i.prefecture_name,
            &i.started_on,
            &i.terminals_in_operation.to_string(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// The list as JSON: an array of objects with the CSV's columns as keys.
pub fn to_json(list: &[pb::Institution]) -> serde_json::Value {
    serde_json::Value::Array(
        list.iter()
            .map(|i| {
                serde_json::json!({
                    "institution_code": i.institution_code,
                    "name": i.name,
                    "prefecture": i.prefecture,
                    "prefecture_name": i.prefecture_name,
                    "started_on": i.started_on,
                    "terminals_in_operation": i.terminals_in_operation,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use time::macros::date;

    fn clinic() -> Institution {
        Institution {
            institution_code: "1340123452".into(),
            name: "みなと薬局".into(),
            started_on: date!(2023 - 04 - 01),
        }
    }

    #[test]
    fn prefectures_run_from_01_to_47() {
        assert_eq!(prefecture_name("01"), Some("北海道"));
        assert_eq!(prefecture_name("13"), Some("東京都"));
        assert_eq!(prefecture_name("47"), Some("沖縄県"));
        for bad in ["00", "48", "1", "013", "+1", "", "１３"] {
            assert_eq!(prefecture_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_entry_is_checked_field_by_field() {
        assert_eq!(clinic().check(), Ok(()));
        let bad_code = Institution {
            institution_code: "1340123453".into(),
            ..clinic()
        };
        assert!(matches!(
            bad_code.check(),
            Err(DomainError::BadCheckDigit { .. })
        ));
        let empty = Institution {
            name: String::new(),
            ..clinic()
        };
        assert!(matches!(empty.check(), Err(DomainError::Empty { .. })));
        let long = Institution {
            name: "あ".repeat(MAX_NAME_CHARS + 1),
            ..clinic()
        };
        assert!(matches!(long.check(), Err(DomainError::TooLong { .. })));
        let longest = Institution {
            name: "あ".repeat(MAX_NAME_CHARS),
            ..clinic()
        };
        assert_eq!(longest.check(), Ok(()));
        let control = Institution {
            name: "みなと\n薬局".into(),
            ..clinic()
        };
        assert!(matches!(
            control.check(),
            Err(DomainError::BadCharacter { position: 3, .. })
        ));
        // 48 is no prefecture, though the check digit is right.
        let nowhere = Institution {
            institution_code: InstitutionCode::with_check_digit("484012345")
                .unwrap()
                .as_str()
                .to_owned(),
            ..clinic()
        };
        assert!(matches!(
            nowhere.check(),
            Err(DomainError::Contradictory { .. })
        ));
        assert_eq!(clinic().prefecture(), "13");
    }

    #[test]
    fn csv_and_json_carry_every_column() {
        let listed = to_proto(&ListedInstitution {
            institution: Institution {
                name: "港, \"みなと\" 薬局".into(),
                ..clinic()
            },
            terminals_in_operation: 2,
        });
        assert_eq!(listed.prefecture_name, "東京都");
        assert_eq!(listed.started_on, "20230401");
        let mut out = Vec::new();
        write_csv(std::slice::from_ref(&listed), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "institution_code,name,prefecture,prefecture_name,started_on,terminals_in_operation\n\
             1340123452,\"港, \"\"みなと\"\" 薬局\",13,東京都,20230401,2\n"
        );
        // Read back by an ordinary CSV reader, the name is whole.
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[1], "港, \"みなと\" 薬局");
        let json = to_json(&[listed]);
        assert_eq!(json[0]["name"], "港, \"みなと\" 薬局");
        assert_eq!(json[0]["terminals_in_operation"], 2);
        assert_eq!(json[0]["started_on"], "20230401");
    }
}
