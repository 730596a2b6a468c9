//! Document identifiers as automerge-repo writes them: 16 random bytes,
//! shown as bs58check text, and as URLs of the form `automerge:<id>`.

use std::fmt;
use std::str::FromStr;

/// The id of one shared document.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentId([u8; 16]);

/// Why a document id or URL could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentIdError {
    #[error("“{0}” is not a document id: it is not valid base58check text")]
    NotBase58(String),
    #[error("“{text}” is not a document id: it holds {len} bytes where a document id holds 16")]
    WrongLength { text: String, len: usize },
}

impl DocumentId {
    /// A new random id.
    pub fn random() -> Self {
        DocumentId(*uuid::Uuid::new_v4().as_bytes())
    }

    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        DocumentId(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The `automerge:` URL that automerge-repo clients open.
    pub fn url(&self) -> String {
        format!("automerge:{self}")
    }

    /// Reads an id from either bare bs58check text or an `automerge:` URL
    /// (a `#heads` suffix, which names a version, is ignored).
    pub fn parse_url_or_id(text: &str) -> Result<Self, DocumentIdError> {
        let text = text.trim();
        let bare = text.strip_prefix("automerge:").unwrap_or(text);
        let bare = bare.split('#').next().unwrap_or(bare);
        bare.parse()
    }
}

impl FromStr for DocumentId {
    type Err = DocumentIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // A real id is about 28 characters. Decoding base58 costs the square
        // of the length, so a long one is refused before it is read.
        if text.len() > 64 {
            return Err(DocumentIdError::NotBase58(shorten(text)));
        }
        let bytes = bs58::decode(text)
            .with_check(None)
            .into_vec()
            .map_err(|_| DocumentIdError::NotBase58(shorten(text)))?;
        let array: [u8; 16] =
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| DocumentIdError::WrongLength {
                    text: shorten(text),
                    len: bytes.len(),
                })?;
        Ok(DocumentId(array))
    }
}

/// Ids in error messages are cut short so that a hostile peer cannot make
/// our logs and errors arbitrarily long.
fn shorten(text: &str) -> String {
    crate::peer_text::peer_text(text, 64)
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(&self.0).with_check().into_string())
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text_and_url() {
        let id = DocumentId::random();
        assert_eq!(id.to_string().parse::<DocumentId>().unwrap(), id);
        assert_eq!(DocumentId::parse_url_or_id(&id.url()).unwrap(), id);
        assert_eq!(
            DocumentId::parse_url_or_id(&format!("{}#abc", id.url())).unwrap(),
            id
        );
    }

    #[test]
    fn reads_an_id_written_by_automerge_repo() {
        // bs58check of the 16 bytes 0..16, as the JS bs58check package writes it.
        let bytes: [u8; 16] = core::array::from_fn(|i| i as u8);
        let text = bs58::encode(bytes).with_check().into_string();
        let id: DocumentId = text.parse().unwrap();
        assert_eq!(id.as_bytes(), &bytes);
    }

    #[test]
    fn a_very_long_id_is_refused_at_once() {
        let long = "2".repeat(1_000_000);
        let start = std::time::Instant::now();
        assert!(matches!(
            long.parse::<DocumentId>(),
            Err(DocumentIdError::NotBase58(_))
        ));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn rejects_wrong_length_and_bad_checksum() {
        let short = bs58::encode([1u8; 8]).with_check().into_string();
        assert!(matches!(
            short.parse::<DocumentId>(),
            Err(DocumentIdError::WrongLength { len: 8, .. })
        ));
        let mut text = DocumentId::random().to_string();
        let last = text.pop().unwrap();
        text.push(if last == '2' { '3' } else { '2' });
        assert!(matches!(
            text.parse::<DocumentId>(),
            Err(DocumentIdError::NotBase58(_))
        ));
    }
}
