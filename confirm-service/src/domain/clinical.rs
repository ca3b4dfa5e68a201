//! Mock clinical data that a patient may share with an institution by consent
//! (eligibility.md §1 step 4): past medication (薬剤情報) and specific health checkup results
//! (特定健診等情報). Only the institution that holds a valid consent may read them; the rules are
//! in [`crate::consent`].
//!
//! The values are synthetic (the testbed's population generator); the shape follows what a
//! pharmacy's reception software shows: one line per dispensed drug, one record per checkup.

use time::Date;

/// One dispensed drug (a line of 薬剤情報).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Medication {
    pub person_id: String,
    /// 調剤日 (or 処方日 for in-house dispensing).
    pub dispensed_on: Date,
    /// The dispensing institution's 医療機関コード.
    pub institution_code: String,
    /// The dispensing institution's name.
    pub institution_name: String,
    /// 薬価基準収載医薬品コード (12 characters).
    pub drug_code: String,
    /// Drug name with strength, e.g. `アムロジピン錠５ｍｇ`.
    pub drug_name: String,
    /// 用法, e.g. `1日1回朝食後`.
    pub usage: String,
    /// Quantity per day with its unit, e.g. `1錠`.
    pub daily_quantity: String,
    /// 日数 (days supplied).
    pub days: u32,
}

/// One specific health checkup (特定健診) result. Measurements in tenths keep the values exact
/// in every store (171.3 cm is `1713`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkup {
    pub person_id: String,
    pub examined_on: Date,
    pub height_cm_x10: u32,
    pub weight_kg_x10: u32,
    pub waist_cm_x10: u32,
    /// BMI × 10.
    pub bmi_x10: u32,
    pub systolic_mmhg: u32,
    pub diastolic_mmhg: u32,
    /// HbA1c (NGSP) % × 10.
    pub hba1c_x10: u32,
    pub ldl_mg_dl: u32,
    /// 判定: `"A"` 異常なし … `"D"` 要医療.
    pub judgement: String,
}
