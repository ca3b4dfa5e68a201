//! The fixed material the population is drawn from: places with their postcodes and municipal
//! codes, names with their half-width katakana readings, insurers, pharmacies and clinics, and
//! drugs. [`Catalog`] turns the tables into validated insurer numbers and institution codes once,
//! so generating a person never computes a check digit.

use onshi_confirm_service::eligibility::{InstitutionCode, InsurerNumber};

use crate::TestbedError;

/// A town people live in.
#[derive(Debug)]
pub struct Place {
    pub pref_code: &'static str,
    pub pref_name: &'static str,
    /// The prefecture without 都/府/県, as the branches of national insurers are named.
    pub pref_short: &'static str,
    pub municipality: &'static str,
    /// The municipality's 3 digits in the prefecture (its local government code without the
    /// prefecture and check digit): 国保 insurer numbers are prefecture + these + check digit,
    /// 後期高齢者医療 ones `39` + prefecture + these + check digit.
    pub muni_code: &'static str,
    pub town: &'static str,
    pub postcode: &'static str,
    /// Relative share of the population.
    pub weight: u32,
}

const fn place(
    pref: (&'static str, &'static str, &'static str),
    municipality: &'static str,
    muni_code: &'static str,
    town: &'static str,
    postcode: &'static str,
    weight: u32,
) -> Place {
    Place {
        pref_code: pref.0,
        pref_name: pref.1,
        pref_short: pref.2,
        municipality,
        muni_code,
        town,
        postcode,
        weight,
    }
}

const TOKYO: (&str, &str, &str) = ("13", "東京都", "東京");
const KANAGAWA: (&str, &str, &str) = ("14", "神奈川県", "神奈川");
const OSAKA: (&str, &str, &str) = ("27", "大阪府", "大阪");

/// Thirty towns in twenty-five prefectures, weighted roughly by population. Postcodes and
/// municipal codes are the real ones of those towns; block numbers are invented.
pub const PLACES: [Place; 30] = [
    place(TOKYO, "千代田区", "101", "千代田区丸の内", "100-0005", 2),
    place(TOKYO, "新宿区", "104", "新宿区西新宿", "160-0023", 5),
    place(TOKYO, "世田谷区", "112", "世田谷区太子堂", "154-0004", 8),
    place(TOKYO, "八王子市", "201", "八王子市旭町", "192-0083", 5),
    place(
        TOKYO,
        "武蔵野市",
        "203",
        "武蔵野市吉祥寺本町",
        "180-0004",
        3,
    ),
    place(
        KANAGAWA,
        "横浜市",
        "100",
        "横浜市西区みなとみらい",
        "220-0012",
        10,
    ),
    place(KANAGAWA, "川崎市", "130", "川崎市幸区堀川町", "212-0013", 6),
    place(
        KANAGAWA,
        "相模原市",
        "150",
        "相模原市中央区相模原",
        "252-0231",
        3,
    ),
    place(OSAKA, "大阪市", "100", "大阪市北区梅田", "530-0001", 9),
    place(OSAKA, "堺市", "140", "堺市堺区戎島町", "590-0985", 4),
    place(
        ("23", "愛知県", "愛知"),
        "名古屋市",
        "100",
        "名古屋市中村区名駅",
        "450-0002",
        8,
    ),
    place(
        ("11", "埼玉県", "埼玉"),
        "さいたま市",
        "100",
        "さいたま市浦和区高砂",
        "330-0063",
        6,
    ),
    place(
        ("12", "千葉県", "千葉"),
        "千葉市",
        "100",
        "千葉市中央区中央",
        "260-0013",
        5,
    ),
    place(
        ("01", "北海道", "北海道"),
        "札幌市",
        "100",
        "札幌市中央区北一条西",
        "060-0001",
        7,
    ),
    place(
        ("04", "宮城県", "宮城"),
        "仙台市",
        "100",
        "仙台市青葉区中央",
        "980-0021",
        4,
    ),
    place(
        ("40", "福岡県", "福岡"),
        "福岡市",
        "130",
        "福岡市博多区博多駅前",
        "812-0011",
        6,
    ),
    place(
        ("26", "京都府", "京都"),
        "京都市",
        "100",
        "京都市下京区烏丸通",
        "600-8216",
        5,
    ),
    place(
        ("28", "兵庫県", "兵庫"),
        "神戸市",
        "100",
        "神戸市中央区加納町",
        "650-0001",
        6,
    ),
    place(
        ("34", "広島県", "広島"),
        "広島市",
        "100",
        "広島市中区基町",
        "730-0011",
        4,
    ),
    place(
        ("22", "静岡県", "静岡"),
        "静岡市",
        "100",
        "静岡市葵区追手町",
        "420-0853",
        3,
    ),
    place(
        ("15", "新潟県", "新潟"),
        "新潟市",
        "100",
        "新潟市中央区万代",
        "950-0088",
        3,
    ),
    place(
        ("43", "熊本県", "熊本"),
        "熊本市",
        "100",
        "熊本市中央区花畑町",
        "860-0806",
        3,
    ),
    place(
        ("47", "沖縄県", "沖縄"),
        "那覇市",
        "201",
        "那覇市おもろまち",
        "900-0006",
        2,
    ),
    place(
        ("33", "岡山県", "岡山"),
        "岡山市",
        "100",
        "岡山市北区駅元町",
        "700-0024",
        3,
    ),
    place(
        ("37", "香川県", "香川"),
        "高松市",
        "201",
        "高松市サンポート",
        "760-0019",
        2,
    ),
    place(
        ("46", "鹿児島県", "鹿児島"),
        "鹿児島市",
        "201",
        "鹿児島市中央町",
        "890-0053",
        2,
    ),
    place(
        ("17", "石川県", "石川"),
        "金沢市",
        "201",
        "金沢市本町",
        "920-0853",
        2,
    ),
    place(
        ("08", "茨城県", "茨城"),
        "水戸市",
        "201",
        "水戸市宮町",
        "310-0015",
        2,
    ),
    place(
        ("09", "栃木県", "栃木"),
        "宇都宮市",
        "201",
        "宇都宮市馬場通り",
        "320-0026",
        2,
    ),
    place(
        ("10", "群馬県", "群馬"),
        "高崎市",
        "202",
        "高崎市栄町",
        "370-0841",
        2,
    ),
];

/// Family names with their half-width katakana readings.
pub const FAMILY_NAMES: [(&str, &str); 56] = [
    ("佐藤", "ｻﾄｳ"),
    ("鈴木", "ｽｽﾞｷ"),
    ("高橋", "ﾀｶﾊｼ"),
    ("田中", "ﾀﾅｶ"),
    ("伊藤", "ｲﾄｳ"),
    ("渡辺", "ﾜﾀﾅﾍﾞ"),
    ("山本", "ﾔﾏﾓﾄ"),
    ("中村", "ﾅｶﾑﾗ"),
    ("小林", "ｺﾊﾞﾔｼ"),
    ("加藤", "ｶﾄｳ"),
    ("吉田", "ﾖｼﾀﾞ"),
    ("山田", "ﾔﾏﾀﾞ"),
    ("佐々木", "ｻｻｷ"),
    ("山口", "ﾔﾏｸﾞﾁ"),
    ("松本", "ﾏﾂﾓﾄ"),
    ("井上", "ｲﾉｳｴ"),
    ("木村", "ｷﾑﾗ"),
    ("林", "ﾊﾔｼ"),
    ("斎藤", "ｻｲﾄｳ"),
    ("清水", "ｼﾐｽﾞ"),
    ("山崎", "ﾔﾏｻﾞｷ"),
    ("森", "ﾓﾘ"),
    ("池田", "ｲｹﾀﾞ"),
    ("橋本", "ﾊｼﾓﾄ"),
    ("阿部", "ｱﾍﾞ"),
    ("石川", "ｲｼｶﾜ"),
    ("山下", "ﾔﾏｼﾀ"),
    ("中島", "ﾅｶｼﾞﾏ"),
    ("石井", "ｲｼｲ"),
    ("小川", "ｵｶﾞﾜ"),
    ("前田", "ﾏｴﾀﾞ"),
    ("岡田", "ｵｶﾀﾞ"),
    ("長谷川", "ﾊｾｶﾞﾜ"),
    ("藤田", "ﾌｼﾞﾀ"),
    ("後藤", "ｺﾞﾄｳ"),
    ("近藤", "ｺﾝﾄﾞｳ"),
    ("村上", "ﾑﾗｶﾐ"),
    ("遠藤", "ｴﾝﾄﾞｳ"),
    ("青木", "ｱｵｷ"),
    ("坂本", "ｻｶﾓﾄ"),
    ("福田", "ﾌｸﾀﾞ"),
    ("太田", "ｵｵﾀ"),
    ("西村", "ﾆｼﾑﾗ"),
    ("藤井", "ﾌｼﾞｲ"),
    ("金子", "ｶﾈｺ"),
    ("岡本", "ｵｶﾓﾄ"),
    ("藤原", "ﾌｼﾞﾜﾗ"),
    ("中野", "ﾅｶﾉ"),
    ("三浦", "ﾐｳﾗ"),
    ("原田", "ﾊﾗﾀﾞ"),
    ("松田", "ﾏﾂﾀﾞ"),
    ("竹内", "ﾀｹｳﾁ"),
    ("上田", "ｳｴﾀﾞ"),
    ("小野", "ｵﾉ"),
    ("比嘉", "ﾋｶﾞ"),
    ("大野", "ｵｵﾉ"),
];

/// Given names by sex and by the generation they are common in: born before 1955, 1955–1984,
/// from 1985.
pub const MALE_NAMES: [[(&str, &str); 10]; 3] = [
    [
        ("茂", "ｼｹﾞﾙ"),
        ("清", "ｷﾖｼ"),
        ("博", "ﾋﾛｼ"),
        ("実", "ﾐﾉﾙ"),
        ("勇", "ｲｻﾑ"),
        ("進", "ｽｽﾑ"),
        ("正", "ﾀﾀﾞｼ"),
        ("勝", "ﾏｻﾙ"),
        ("一郎", "ｲﾁﾛｳ"),
        ("武", "ﾀｹｼ"),
    ],
    [
        ("誠", "ﾏｺﾄ"),
        ("浩", "ﾋﾛｼ"),
        ("隆", "ﾀｶｼ"),
        ("修", "ｵｻﾑ"),
        ("大輔", "ﾀﾞｲｽｹ"),
        ("健一", "ｹﾝｲﾁ"),
        ("直樹", "ﾅｵｷ"),
        ("哲也", "ﾃﾂﾔ"),
        ("和也", "ｶｽﾞﾔ"),
        ("太郎", "ﾀﾛｳ"),
    ],
    [
        ("翔太", "ｼｮｳﾀ"),
        ("蓮", "ﾚﾝ"),
        ("悠真", "ﾕｳﾏ"),
        ("陽翔", "ﾊﾙﾄ"),
        ("大翔", "ﾋﾛﾄ"),
        ("湊", "ﾐﾅﾄ"),
        ("樹", "ｲﾂｷ"),
        ("悠斗", "ﾕｳﾄ"),
        ("颯太", "ｿｳﾀ"),
        ("拓海", "ﾀｸﾐ"),
    ],
];

pub const FEMALE_NAMES: [[(&str, &str); 10]; 3] = [
    [
        ("和子", "ｶｽﾞｺ"),
        ("幸子", "ｻﾁｺ"),
        ("節子", "ｾﾂｺ"),
        ("洋子", "ﾖｳｺ"),
        ("恵子", "ｹｲｺ"),
        ("京子", "ｷｮｳｺ"),
        ("久子", "ﾋｻｺ"),
        ("美代子", "ﾐﾖｺ"),
        ("文子", "ﾌﾐｺ"),
        ("静子", "ｼｽﾞｺ"),
    ],
    [
        ("陽子", "ﾖｳｺ"),
        ("裕子", "ﾕｳｺ"),
        ("由美", "ﾕﾐ"),
        ("直美", "ﾅｵﾐ"),
        ("恵美", "ｴﾐ"),
        ("久美子", "ｸﾐｺ"),
        ("智子", "ﾄﾓｺ"),
        ("真由美", "ﾏﾕﾐ"),
        ("花子", "ﾊﾅｺ"),
        ("美穂", "ﾐﾎ"),
    ],
    [
        ("美咲", "ﾐｻｷ"),
        ("結衣", "ﾕｲ"),
        ("陽菜", "ﾋﾅ"),
        ("さくら", "ｻｸﾗ"),
        ("芽依", "ﾒｲ"),
        ("葵", "ｱｵｲ"),
        ("凛", "ﾘﾝ"),
        ("結愛", "ﾕｱ"),
        ("紬", "ﾂﾑｷﾞ"),
        ("杏", "ｱﾝ"),
    ],
];

/// 健康保険組合 (法別 06): insurer-number bodies and names. Invented companies.
const KUMIAI: [(&str, &str); 12] = [
    ("0613101", "みらい電機健康保険組合"),
    ("0613205", "さくら商事健康保険組合"),
    ("0627310", "なにわ製薬健康保険組合"),
    ("0623412", "あおば運輸健康保険組合"),
    ("0613318", "ひかり通信健康保険組合"),
    ("0614107", "みなと造船健康保険組合"),
    ("0613422", "つばさ航空健康保険組合"),
    ("0628103", "ろっこう食品健康保険組合"),
    ("0640115", "はかた銀行健康保険組合"),
    ("0601106", "ほっかい乳業健康保険組合"),
    ("0613530", "ともしび百貨店健康保険組合"),
    ("0626208", "みやこ織物健康保険組合"),
];

/// 国家公務員共済組合 (法別 31): one per ministry, numbered in Tokyo.
const KOKKA_KYOSAI: [(&str, &str); 4] = [
    ("3113011", "財務省共済組合"),
    ("3113037", "文部科学省共済組合"),
    ("3113045", "厚生労働省共済組合"),
    ("3113060", "防衛省共済組合"),
];

/// 船員保険 (法別 02).
const SENIN: (&str, &str) = ("0213001", "全国健康保険協会 船員保険部");

/// Pharmacy names; each town has one of each, `<name> <municipality>店`.
const PHARMACY_NAMES: [&str; 4] = ["さくら薬局", "あおば調剤薬局", "ひまわり薬局", "みどり薬局"];
/// Clinic names (in-house dispensing, 院内処方).
const CLINIC_NAMES: [&str; 2] = ["内科クリニック", "こどもクリニック"];

/// An insurer with its validated number.
#[derive(Debug, Clone)]
pub struct Insurer {
    pub number: InsurerNumber,
    pub name: String,
}

fn insurer(body: &str, name: impl Into<String>) -> Result<Insurer, TestbedError> {
    Ok(Insurer {
        number: InsurerNumber::with_check_digit(body)?,
        name: name.into(),
    })
}

/// An institution that dispenses drugs.
#[derive(Debug, Clone)]
pub struct Dispenser {
    pub code: InstitutionCode,
    pub name: String,
}

/// The insurers and dispensers of one place.
#[derive(Debug, Clone)]
pub struct LocalInsurers {
    /// 協会けんぽ, the prefecture's branch (法別 01).
    pub kyokai: Insurer,
    /// The municipality's 国民健康保険 (6 digits).
    pub kokuho: Insurer,
    /// The prefecture's 後期高齢者医療広域連合, the municipality's number (法別 39).
    pub koki: Insurer,
    /// 地方職員共済組合 (32), 警察共済組合 (33), 公立学校共済組合 (34) of the prefecture.
    pub kyosai: Vec<Insurer>,
    pub pharmacies: Vec<Dispenser>,
    pub clinics: Vec<Dispenser>,
}

/// Every insurer and dispenser of the world, validated once.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// In [`PLACES`] order.
    pub local: Vec<LocalInsurers>,
    pub kumiai: Vec<Insurer>,
    /// 国家公務員共済組合 (31) and 日本私立学校振興・共済事業団 (34).
    pub national_kyosai: Vec<Insurer>,
    pub senin: Insurer,
    /// Sum of the places' weights.
    pub place_weight_total: u32,
}

impl Catalog {
    pub fn new() -> Result<Catalog, TestbedError> {
        let mut local = Vec::with_capacity(PLACES.len());
        for (i, p) in PLACES.iter().enumerate() {
            let pref = p.pref_code;
            let kyosai = vec![
                insurer(
                    &format!("32{pref}001"),
                    format!("地方職員共済組合 {}支部", p.pref_short),
                )?,
                insurer(
                    &format!("33{pref}001"),
                    format!("警察共済組合 {}支部", p.pref_short),
                )?,
                insurer(
                    &format!("34{pref}001"),
                    format!("公立学校共済組合 {}支部", p.pref_short),
                )?,
            ];
            // Institution codes: prefecture, point table, district (the place's number),
            // a 4-digit institution number.
            let district = i + 1;
            let dispenser = |table: u8, number: usize, name: String| {
                Ok::<_, TestbedError>(Dispenser {
                    code: InstitutionCode::with_check_digit(&format!(
                        "{pref}{table}{district:02}{number:04}"
                    ))?,
                    name,
                })
            };
            let pharmacies = PHARMACY_NAMES
                .iter()
                .enumerate()
                .map(|(j, n)| dispenser(4, 1001 + 37 * j, format!("{n} {}店", p.municipality)))
                .collect::<Result<Vec<_>, _>>()?;
            let clinics = CLINIC_NAMES
                .iter()
                .enumerate()
                .map(|(j, n)| dispenser(1, 2003 + 41 * j, format!("{}{n}", p.municipality)))
                .collect::<Result<Vec<_>, _>>()?;
            local.push(LocalInsurers {
                kyokai: insurer(
                    &format!("01{pref}001"),
                    format!("全国健康保険協会 {}支部", p.pref_short),
                )?,
                kokuho: insurer(&format!("{pref}{}", p.muni_code), p.municipality)?,
                koki: insurer(
                    &format!("39{pref}{}", p.muni_code),
                    format!("{}後期高齢者医療広域連合", p.pref_name),
                )?,
                kyosai,
                pharmacies,
                clinics,
            });
        }
        let kumiai = KUMIAI
            .iter()
            .map(|(b, n)| insurer(b, *n))
            .collect::<Result<Vec<_>, _>>()?;
        let mut national_kyosai = KOKKA_KYOSAI
            .iter()
            .map(|(b, n)| insurer(b, *n))
            .collect::<Result<Vec<_>, _>>()?;
        national_kyosai.push(insurer("3413002", "日本私立学校振興・共済事業団")?);
        Ok(Catalog {
            local,
            kumiai,
            national_kyosai,
            senin: insurer(SENIN.0, SENIN.1)?,
            place_weight_total: PLACES.iter().map(|p| p.weight).sum(),
        })
    }

    /// Every insurer number in the catalog, for tests.
    pub fn all_insurers(&self) -> impl Iterator<Item = &Insurer> {
        self.local
            .iter()
            .flat_map(|l| {
                [&l.kyokai, &l.kokuho, &l.koki]
                    .into_iter()
                    .chain(l.kyosai.iter())
            })
            .chain(self.kumiai.iter())
            .chain(self.national_kyosai.iter())
            .chain(std::iter::once(&self.senin))
    }
}

/// How a drug is taken; decides the quantity wording and the typical supply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Course {
    /// Taken every day for a chronic condition: 28–90 days a time.
    Chronic,
    /// A short course: 3–14 days.
    Acute,
}

/// A drug as a dispensing line shows it.
#[derive(Debug, Clone, Copy)]
pub struct Drug {
    /// 12 characters in the shape of a 薬価基準収載医薬品コード: the 4-digit 薬効分類 of the drug's
    /// class, 3 digits, the dosage-form letter, 4 digits. Plausible, not the official codes.
    pub code: &'static str,
    pub name: &'static str,
    pub usage: &'static str,
    pub daily_quantity: &'static str,
    pub course: Course,
}

const fn drug(
    code: &'static str,
    name: &'static str,
    usage: &'static str,
    daily_quantity: &'static str,
    course: Course,
) -> Drug {
    Drug {
        code,
        name,
        usage,
        daily_quantity,
        course,
    }
}

use Course::{Acute, Chronic};

// Chronic conditions.
pub const AMLODIPINE: Drug = drug(
    "2171022F2027",
    "アムロジピン錠５ｍｇ",
    "1日1回朝食後",
    "1錠",
    Chronic,
);
pub const OLMESARTAN: Drug = drug(
    "2149044F2020",
    "オルメサルタン錠２０ｍｇ",
    "1日1回朝食後",
    "1錠",
    Chronic,
);
pub const METFORMIN: Drug = drug(
    "3962002F1030",
    "メトホルミン塩酸塩錠２５０ｍｇ",
    "1日2回朝夕食後",
    "2錠",
    Chronic,
);
pub const SITAGLIPTIN: Drug = drug(
    "3969010F1020",
    "シタグリプチン錠５０ｍｇ",
    "1日1回朝食後",
    "1錠",
    Chronic,
);
pub const ATORVASTATIN: Drug = drug(
    "2189015F1020",
    "アトルバスタチン錠１０ｍｇ",
    "1日1回夕食後",
    "1錠",
    Chronic,
);
pub const ROSUVASTATIN: Drug = drug(
    "2189017F1024",
    "ロスバスタチン錠２．５ｍｇ",
    "1日1回夕食後",
    "1錠",
    Chronic,
);
pub const LANSOPRAZOLE: Drug = drug(
    "2329023F2020",
    "ランソプラゾールＯＤ錠１５ｍｇ",
    "1日1回朝食後",
    "1錠",
    Chronic,
);
pub const ZOLPIDEM: Drug = drug(
    "1129009F1025",
    "ゾルピデム酒石酸塩錠５ｍｇ",
    "1日1回就寝前",
    "1錠",
    Chronic,
);
pub const MAGNESIUM_OXIDE: Drug = drug(
    "2344009F1020",
    "酸化マグネシウム錠３３０ｍｇ",
    "1日3回毎食後",
    "3錠",
    Chronic,
);
pub const TAMSULOSIN: Drug = drug(
    "2590008F2020",
    "タムスロシン塩酸塩ＯＤ錠０．２ｍｇ",
    "1日1回朝食後",
    "1錠",
    Chronic,
);

/// Short courses for adults: each episode is one of these sets.
pub const ADULT_EPISODES: [&[Drug]; 4] = [
    // A cold.
    &[
        drug(
            "1141007F1063",
            "アセトアミノフェン錠２００ｍｇ",
            "1日3回毎食後",
            "3錠",
            Acute,
        ),
        drug(
            "2233002F1038",
            "カルボシステイン錠５００ｍｇ",
            "1日3回毎食後",
            "3錠",
            Acute,
        ),
        drug(
            "2223001F1067",
            "デキストロメトルファン臭化水素酸塩錠１５ｍｇ",
            "1日3回毎食後",
            "3錠",
            Acute,
        ),
    ],
    // A bacterial infection.
    &[
        drug(
            "6132016F1029",
            "セフカペンピボキシル塩酸塩錠１００ｍｇ",
            "1日3回毎食後",
            "3錠",
            Acute,
        ),
        drug(
            "1141007F1063",
            "アセトアミノフェン錠２００ｍｇ",
            "疼痛時・発熱時",
            "2錠",
            Acute,
        ),
    ],
    // Hay fever.
    &[drug(
        "4490023F1027",
        "フェキソフェナジン塩酸塩錠６０ｍｇ",
        "1日2回朝夕食後",
        "2錠",
        Acute,
    )],
    // Back pain.
    &[
        drug(
            "1149019F1560",
            "ロキソプロフェンナトリウム錠６０ｍｇ",
            "1日3回毎食後",
            "3錠",
            Acute,
        ),
        drug(
            "2329021F1021",
            "レバミピド錠１００ｍｇ",
            "1日3回毎食後",
            "3錠",
            Acute,
        ),
        drug(
            "2649843S2027",
            "ロキソプロフェンナトリウムテープ１００ｍｇ",
            "1日1回貼付",
            "1枚",
            Acute,
        ),
    ],
];

/// Short courses for children (dry syrups and fine granules).
pub const CHILD_EPISODES: [&[Drug]; 2] = [
    &[
        drug(
            "2233002R2029",
            "カルボシステインＤＳ５０％",
            "1日3回毎食後",
            "0.9g",
            Acute,
        ),
        drug(
            "1141007C1075",
            "アセトアミノフェン細粒２０％",
            "発熱時",
            "0.75g",
            Acute,
        ),
    ],
    &[
        drug(
            "6131001C1210",
            "アモキシシリン細粒１０％",
            "1日3回毎食後",
            "1.5g",
            Acute,
        ),
        drug(
            "4490025R1022",
            "フェキソフェナジン塩酸塩ＤＳ５％",
            "1日2回朝夕食後",
            "0.6g",
            Acute,
        ),
    ],
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_number_is_valid() {
        let c = Catalog::new().unwrap();
        // Several places share a prefecture's insurers; one number never names two insurers.
        let mut names = std::collections::BTreeMap::new();
        for i in c.all_insurers() {
            InsurerNumber::parse(i.number.as_str()).unwrap();
            let name = names.entry(i.number.clone()).or_insert(i.name.clone());
            assert_eq!(*name, i.name, "{} names two insurers", i.number);
        }
        assert!(names.len() > 100, "{}", names.len());
        for l in &c.local {
            assert!(l.kokuho.number.is_kokuho());
            assert!(l.koki.number.is_koki());
            for d in l.pharmacies.iter().chain(&l.clinics) {
                InstitutionCode::parse(d.code.as_str()).unwrap();
            }
            assert!(l.pharmacies.iter().all(|d| d.code.point_table()
                == onshi_confirm_service::eligibility::POINT_TABLE_PHARMACY));
        }
    }

    #[test]
    fn readings_are_half_width_katakana_and_codes_have_their_shape() {
        let kana = |s: &str| s.chars().all(|c| ('\u{FF61}'..='\u{FF9F}').contains(&c));
        let given = MALE_NAMES.iter().chain(&FEMALE_NAMES).flatten();
        for (kanji, reading) in FAMILY_NAMES.iter().chain(given) {
            assert!(!kanji.is_empty() && kana(reading), "{kanji} {reading}");
        }
        for p in &PLACES {
            let b = p.postcode.as_bytes();
            assert!(b.len() == 8 && b[3] == b'-', "{}", p.postcode);
            assert!(p.town.starts_with(p.municipality), "{}", p.town);
        }
        let drugs = ADULT_EPISODES
            .iter()
            .chain(&CHILD_EPISODES)
            .flat_map(|e| e.iter());
        let chronic = [
            AMLODIPINE,
            OLMESARTAN,
            METFORMIN,
            SITAGLIPTIN,
            ATORVASTATIN,
            ROSUVASTATIN,
            LANSOPRAZOLE,
            ZOLPIDEM,
            MAGNESIUM_OXIDE,
            TAMSULOSIN,
        ];
        for d in drugs.chain(chronic.iter()) {
            let b = d.code.as_bytes();
            assert_eq!(b.len(), 12, "{}", d.code);
            assert!(b[..7].iter().all(u8::is_ascii_digit), "{}", d.code);
            assert!(b[7].is_ascii_uppercase(), "{}", d.code);
            assert!(b[8..].iter().all(u8::is_ascii_digit), "{}", d.code);
        }
    }
}
