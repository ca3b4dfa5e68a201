//! The `face/` file written after each confirmation completed at the reader (card, PIN, face
//! or visual check): `OQSsiquc01res_face_<id>_<YYYYMMDDHHmmss>.xml`, ReferenceClassification 1,
//! the same content as an `OQSsiquc01res` answer. The name is the pattern public reception
//! tools match (an assumption: the real terminal's is not public).

use std::path::{Path, PathBuf};

use onshi_proto::v1 as pb;

use super::codec::{self, Charset};
use super::folders::Folders;
use super::message::{self as msg, AnswerContext};

/// Where and how the kiosk writes its face files.
#[derive(Debug, Clone)]
pub struct FaceFiles {
    pub dir: PathBuf,
    pub charset: Charset,
    pub medical_institution_code: String,
}

impl FaceFiles {
    /// `root/face/`, created if missing.
    pub fn under(
        root: &Path,
        charset: Charset,
        medical_institution_code: &str,
    ) -> std::io::Result<Self> {
        let dir = root.join("face");
        std::fs::create_dir_all(&dir)?;
        Ok(FaceFiles {
            dir,
            charset,
            medical_institution_code: medical_institution_code.to_owned(),
        })
    }

    /// The file's name for a confirmation.
    pub fn file_name(confirmation_id: &str, unix: i64) -> String {
        let id: String = confirmation_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let id = if id.is_empty() { "0".to_owned() } else { id };
        format!("OQSsiquc01res_face_{id}_{}.xml", msg::jst_timestamp(unix))
    }

    /// Writes the file for a completed confirmation (atomically); returns its name.
    pub fn write(&self, result: &pb::ConfirmationResult) -> std::io::Result<String> {
        let unix = result
            .confirmed_at
            .as_ref()
            .map_or_else(now_unix, |t| t.seconds);
        let ctx = AnswerContext {
            executed_at: msg::jst_timestamp(unix),
            confirmation_date: msg::jst_date(unix),
            medical_institution_code: self.medical_institution_code.clone(),
            arbitrary_file_identifier: String::new(),
            reference_classification: "1",
            charset: self.charset,
        };
        // At the reader the limit information needs no consent (since October 2024).
        let element = msg::confirmation_answer(&ctx, result, None, Some(&ctx.executed_at));
        let encoded = codec::write(&element, self.charset);
        let name = Self::file_name(&result.confirmation_id, unix);
        Folders::write_atomic(&self.dir, &name, &encoded.bytes)?;
        Ok(name)
    }
}

impl FaceFiles {
    /// [`write`](Self::write), logging the outcome: a full disk must not stop the kiosk.
    pub fn write_logged(&self, result: &pb::ConfirmationResult) {
        match self.write(result) {
            Ok(name) => tracing::info!("face/{name} written"),
            Err(e) => tracing::warn!(
                "cannot write the face file of {}: {e}",
                result.confirmation_id
            ),
        }
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_face_file_is_named_as_public_tools_match_it() {
        let n = FaceFiles::file_name("C-12/../x", 1_735_689_600);
        assert_eq!(n, "OQSsiquc01res_face_C-12x_20250101090000.xml");
    }
}
