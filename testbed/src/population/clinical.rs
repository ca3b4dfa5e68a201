//! Mock clinical data for a share of the population: dispensed drugs (薬剤情報) and specific
//! health checkup results (特定健診等情報), both following one per-person health profile so a
//! treated hypertensive has both amlodipine refills and a raised blood pressure.
//!
//! Shares: chronic conditions grow with age (hypertension from about 10% in the forties to
//! 55% from 70); about 85% of those are treated, with the last one to three refills on record.
//! Short courses (a cold, an infection, hay fever, back pain) for 45% of children, 22% of
//! adults and 15% of the elderly over the last year. Checkups for 55% of those aged 40–74
//! (特定健診), 25% from 75 and 10% of 18–39, one to three yearly results.

use onshi_confirm_service::clinical::{Checkup, Medication};

use super::gen::{add_days, Gen};
use super::tables::{
    self, Dispenser, Drug, ADULT_EPISODES, AMLODIPINE, ATORVASTATIN, CHILD_EPISODES, LANSOPRAZOLE,
    MAGNESIUM_OXIDE, METFORMIN, OLMESARTAN, ROSUVASTATIN, SITAGLIPTIN, TAMSULOSIN, ZOLPIDEM,
};
use super::Generated;
use crate::TestbedError;

/// Chronic conditions of one person.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    pub hypertension: bool,
    pub diabetes: bool,
    pub dyslipidemia: bool,
    pub reflux: bool,
    pub insomnia: bool,
    pub constipation: bool,
    pub prostate: bool,
}

impl Health {
    pub fn any(&self) -> bool {
        self.hypertension
            || self.diabetes
            || self.dyslipidemia
            || self.reflux
            || self.insomnia
            || self.constipation
            || self.prostate
    }
}

/// What one person is given: the drawn health profile, and whether they have a checkup
/// history (decided by age, or forced for a card holder).
#[derive(Debug, Clone, Copy, Default)]
pub struct Plan {
    pub health: Health,
    pub medications: Option<bool>,
    pub checkups: Option<bool>,
}

impl Gen<'_> {
    pub fn health(&mut self, age: u32, sex: u8) -> Health {
        let by_age = |g: &mut Self, table: [u32; 4]| {
            let p = match age {
                0..=39 => table[0],
                40..=54 => table[1],
                55..=69 => table[2],
                _ => table[3],
            };
            g.percent(p)
        };
        Health {
            hypertension: by_age(self, [2, 12, 35, 55]),
            diabetes: by_age(self, [1, 5, 12, 17]),
            dyslipidemia: by_age(self, [2, 12, 28, 30]),
            reflux: by_age(self, [2, 5, 7, 10]),
            insomnia: by_age(self, [2, 4, 6, 10]),
            constipation: age >= 70 && self.percent(15),
            prostate: sex == 1 && age >= 60 && self.percent(15),
        }
    }

    fn dispenser<'c>(&mut self, place: &'c tables::LocalInsurers, child: bool) -> &'c Dispenser {
        if self.percent(15) {
            // In-house dispensing at a clinic (こどもクリニック for children).
            let i = if child { 1 } else { 0 };
            &place.clinics[i.min(place.clinics.len() - 1)]
        } else {
            &place.pharmacies[self.below(place.pharmacies.len())]
        }
    }

    fn chronic_drugs(&mut self, h: &Health) -> Vec<Drug> {
        let mut out = Vec::new();
        if h.hypertension {
            out.push(if self.percent(60) {
                AMLODIPINE
            } else {
                OLMESARTAN
            });
        }
        if h.diabetes {
            out.push(METFORMIN);
            if self.percent(40) {
                out.push(SITAGLIPTIN);
            }
        }
        if h.dyslipidemia {
            out.push(if self.percent(50) {
                ATORVASTATIN
            } else {
                ROSUVASTATIN
            });
        }
        if h.reflux {
            out.push(LANSOPRAZOLE);
        }
        if h.insomnia {
            out.push(ZOLPIDEM);
        }
        if h.constipation {
            out.push(MAGNESIUM_OXIDE);
        }
        if h.prostate {
            out.push(TAMSULOSIN);
        }
        out
    }

    /// Dispensed drugs, or nothing.
    pub fn medications(
        &mut self,
        g: &Generated,
        age: u32,
        plan: &Plan,
        place: &tables::LocalInsurers,
    ) -> Result<Vec<Medication>, TestbedError> {
        let today = self.today;
        let mut out = Vec::new();
        let line = |on, d: &Dispenser, drug: &Drug, days| Medication {
            person_id: g.person.id.clone(),
            dispensed_on: on,
            institution_code: d.code.as_str().to_owned(),
            institution_name: d.name.clone(),
            drug_code: drug.code.to_owned(),
            drug_name: drug.name.to_owned(),
            usage: drug.usage.to_owned(),
            daily_quantity: drug.daily_quantity.to_owned(),
            days,
        };
        let forced = plan.medications == Some(true);
        let chronic = self.chronic_drugs(&plan.health);
        if !chronic.is_empty() && (forced || self.percent(85)) {
            // Refills at one pharmacy, the latest within one supply of today.
            let pharmacy = &place.pharmacies[self.below(place.pharmacies.len())];
            let days = [28u32, 30, 56, 84][self.below(4)];
            let refills = self.between(1, 3);
            let mut on = add_days(today, -i64::from(self.between(0, days - 1)))?;
            for _ in 0..refills {
                for drug in &chronic {
                    out.push(line(on, pharmacy, drug, days));
                }
                on = add_days(on, -i64::from(days + self.between(0, 7)))?;
            }
        }
        let child = age < 15;
        let episode_percent = match age {
            0..=14 => 45,
            15..=64 => 22,
            _ => 15,
        };
        let episodes = if self.percent(episode_percent) || (forced && out.is_empty()) {
            if self.percent(20) {
                2
            } else {
                1
            }
        } else {
            0
        };
        for _ in 0..episodes {
            let set: &[Drug] = if child {
                CHILD_EPISODES[self.below(CHILD_EPISODES.len())]
            } else {
                ADULT_EPISODES[self.below(ADULT_EPISODES.len())]
            };
            let on = add_days(today, -i64::from(self.between(1, 365)))?;
            let dispenser = self.dispenser(place, child);
            let days = if set.len() == 1 {
                14
            } else {
                self.between(3, 7)
            };
            for drug in set {
                out.push(line(on, dispenser, drug, days));
            }
        }
        // Nobody is dispensed drugs before being born.
        out.retain(|m| m.dispensed_on >= g.person.birth_date);
        Ok(out)
    }

    /// Checkup results, or nothing.
    pub fn checkups(
        &mut self,
        g: &Generated,
        age: u32,
        plan: &Plan,
    ) -> Result<Vec<Checkup>, TestbedError> {
        let share = match age {
            0..=17 => 0,
            18..=39 => 10,
            40..=74 => 55,
            _ => 25,
        };
        let take = match plan.checkups {
            Some(forced) => forced,
            None => self.percent(share),
        };
        if !take {
            return Ok(Vec::new());
        }
        let person = &g.person;
        let h = plan.health;
        let male = person.sex == 1;
        let years = self.between(1, 3);
        let mut on = add_days(self.today, -i64::from(self.between(1, 330)))?;
        // The person's own build, kept from year to year.
        let aging = f64::from(age.saturating_sub(40)) * 0.12;
        let height = if male { 171.0 } else { 158.0 } - aging + self.normal() * 5.5;
        let mut bmi = if male { 23.8 } else { 22.0 } + self.normal() * 3.0;
        if h.diabetes || h.hypertension {
            bmi += 1.5;
        }
        let mut out = Vec::with_capacity(years as usize);
        for _ in 0..years {
            if on <= person.birth_date {
                break;
            }
            let bmi_now = (bmi + self.normal() * 0.4).clamp(15.0, 42.0);
            let weight = bmi_now * (height / 100.0) * (height / 100.0);
            let waist = if male { 85.0 } else { 80.0 }
                + (bmi_now - if male { 23.8 } else { 22.0 }) * 2.6
                + self.normal() * 4.0;
            let mut systolic =
                104.0 + 0.42 * f64::from(age) + (bmi_now - 22.0) * 1.2 + self.normal() * 12.0;
            if h.hypertension {
                systolic += 12.0;
            }
            let systolic = systolic.clamp(85.0, 210.0);
            let diastolic = (systolic * 0.6 + self.normal() * 7.0).clamp(45.0, systolic - 20.0);
            let hba1c = if h.diabetes {
                6.9 + self.normal() * 0.7
            } else {
                5.2 + 0.006 * f64::from(age) + self.normal() * 0.25
            }
            .clamp(4.3, 12.0);
            let ldl = if h.dyslipidemia {
                140.0 + self.normal() * 30.0
            } else {
                100.0 + f64::from(age.min(60)) * 0.3 + self.normal() * 25.0
            }
            .clamp(40.0, 290.0);
            let tenths = |v: f64| (v * 10.0).round() as u32;
            let mut c = Checkup {
                person_id: person.id.clone(),
                examined_on: on,
                height_cm_x10: tenths(height.clamp(120.0, 200.0)),
                weight_kg_x10: tenths(weight),
                waist_cm_x10: tenths(waist.clamp(50.0, 150.0)),
                bmi_x10: tenths(bmi_now),
                systolic_mmhg: systolic.round() as u32,
                diastolic_mmhg: diastolic.round() as u32,
                hba1c_x10: tenths(hba1c),
                ldl_mg_dl: ldl.round() as u32,
                judgement: String::new(),
            };
            c.judgement = judgement(male, &c).to_owned();
            out.push(c);
            on = add_days(on, -i64::from(self.between(350, 380)))?;
        }
        Ok(out)
    }
}

/// The overall 判定 of a checkup from its measurements, after the 特定健診 thresholds:
/// `D` 要医療 well above the 受診勧奨 level (160/100 mmHg, HbA1c 7.0%, LDL 180), `C`
/// 要経過観察 at the 受診勧奨 level (140/90, 6.5%, 140), `B` 軽度異常 at the 保健指導 level
/// (130/85, 5.6%, 120, BMI 25, waist 85 cm men / 90 cm women), `A` 異常なし otherwise.
pub fn judgement(male: bool, c: &Checkup) -> &'static str {
    let (sbp, dbp, a1c, ldl, bmi) = (
        c.systolic_mmhg,
        c.diastolic_mmhg,
        c.hba1c_x10,
        c.ldl_mg_dl,
        c.bmi_x10,
    );
    let waist_limit = if male { 850 } else { 900 };
    if sbp >= 160 || dbp >= 100 || a1c >= 70 || ldl >= 180 {
        "D"
    } else if sbp >= 140 || dbp >= 90 || a1c >= 65 || ldl >= 140 {
        "C"
    } else if sbp >= 130
        || dbp >= 85
        || a1c >= 56
        || ldl >= 120
        || bmi >= 250
        || c.waist_cm_x10 >= waist_limit
    {
        "B"
    } else {
        "A"
    }
}

/// Draws and attaches the clinical data of one generated person.
pub(super) fn attach(
    gen: &mut Gen<'_>,
    g: &mut Generated,
    age: u32,
    place_index: usize,
) -> Result<(), TestbedError> {
    let plan = Plan {
        health: gen.health(age, g.person.sex),
        ..Plan::default()
    };
    attach_with(gen, g, age, place_index, &plan)
}

/// [`attach`] with a given plan.
pub(super) fn attach_with(
    gen: &mut Gen<'_>,
    g: &mut Generated,
    age: u32,
    place_index: usize,
    plan: &Plan,
) -> Result<(), TestbedError> {
    let catalog = gen.catalog;
    let place = &catalog.local[place_index.min(catalog.local.len().saturating_sub(1))];
    g.medications = if plan.medications == Some(false) {
        Vec::new()
    } else {
        gen.medications(g, age, plan, place)?
    };
    g.checkups = gen.checkups(g, age, plan)?;
    Ok(())
}
