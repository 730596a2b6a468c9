//! Signatures that prove which school gave them: what a signature seals,
//! sealing it with a school's Ed25519 key, and checking a seal against the
//! keys the relay published for each school.
//!
//! Each school has one signing key, made when it joins and kept beside
//! its relay token; the relay publishes every school's public keys to its
//! partnerships. A seal covers the document's id, the review (its id,
//! date, who reviewed, note and the version reviewed), the version signed,
//! the signer's name, role and school, and when the signature was made, so
//! changing any of them, or copying the signature into another document,
//! breaks it. The name and role are what the signing school says of its
//! own people: a seal proves which school gave the signature, not which
//! person held the pen.
//!
//! Pure: the key and the time come from the caller.

use std::collections::BTreeMap;

use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::Serialize;

use crate::records::{Review, Signature};
use crate::when::date_from_unix;

/// What a seal is made over: the same bytes for sealing and checking.
/// Each field is length-prefixed, so no two different signatures give
/// the same bytes; lists of heads are sorted, since heads have no order.
pub fn signed_bytes(document: &str, review: &Review, signature: &Signature) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    fn heads(out: &mut Vec<u8>, heads: &[String]) {
        let mut sorted: Vec<&String> = heads.iter().collect();
        sorted.sort();
        out.extend_from_slice(&(sorted.len() as u32).to_be_bytes());
        for h in sorted {
            field(out, h.as_bytes());
        }
    }
    fn optional(out: &mut Vec<u8>, value: Option<&str>) {
        match value {
            Some(v) => {
                out.push(1);
                field(out, v.as_bytes());
            }
            None => out.push(0),
        }
    }
    let mut out = Vec::with_capacity(512);
    field(&mut out, b"partnerplan review signature, version 1");
    field(&mut out, document.as_bytes());
    field(&mut out, review.id.as_bytes());
    field(&mut out, review.date.as_bytes());
    field(&mut out, review.by.as_bytes());
    optional(&mut out, review.note.as_deref());
    heads(&mut out, &review.heads);
    heads(&mut out, &signature.heads);
    optional(&mut out, signature.name.as_deref());
    field(&mut out, signature.role.as_bytes());
    field(&mut out, signature.school.as_bytes());
    field(&mut out, signature.date.as_bytes());
    match signature.signed_at {
        Some(at) => {
            out.push(1);
            out.extend_from_slice(&at.to_be_bytes());
        }
        None => out.push(0),
    }
    out
}

/// A school's means of signing: its private key, and the name its
/// signatures carry (its name on the relay's register, as its partners
/// know it, so they can check the one against the other).
pub struct Signer {
    key: SigningKey,
    /// The name this school's signatures carry.
    pub school: String,
    /// Other names this school goes by (the one it gave itself when it
    /// joined), accepted when a signer names their school.
    pub also_known_as: Vec<String>,
}

impl Signer {
    pub fn new(key: SigningKey, school: &str, also_known_as: Vec<String>) -> Signer {
        Signer {
            key,
            school: school.trim().to_string(),
            also_known_as,
        }
    }

    /// The public key, hex, as signatures and the relay carry it.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    /// Whether `name` is this school.
    pub fn is(&self, name: &str) -> bool {
        same_school(name, &self.school) || self.also_known_as.iter().any(|n| same_school(name, n))
    }

    /// Seals `signature` (which `seal` and `key` are set on) for the
    /// review in the document `document`.
    pub(crate) fn seal(&self, document: &str, review: &Review, signature: &mut Signature) {
        signature.key = Some(self.public_hex());
        let bytes = signed_bytes(document, review, signature);
        signature.seal = Some(hex::encode(self.key.sign(&bytes).to_bytes()));
    }
}

/// The day a signature made at `seconds` carries.
pub fn signing_date(seconds: i64) -> String {
    date_from_unix(seconds).to_string()
}

/// School names compared as people write them: case and spacing aside.
pub fn same_school(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    !a.trim().is_empty() && norm(a) == norm(b)
}

/// Which school each public key (hex) belongs to, as the relay published
/// them (and this school's own key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownKeys {
    schools: BTreeMap<String, String>,
}

impl KnownKeys {
    pub fn insert(&mut self, key_hex: &str, school: &str) {
        self.schools
            .insert(key_hex.trim().to_lowercase(), school.to_string());
    }

    pub fn school_of(&self, key_hex: &str) -> Option<&str> {
        self.schools
            .get(&key_hex.trim().to_lowercase())
            .map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.schools.len()
    }

    pub fn is_empty(&self) -> bool {
        self.schools.is_empty()
    }
}

/// What checking a signature found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum Verification {
    /// Sealed with the key of the school it names, and unchanged since.
    Verified,
    /// Copied from paper: nothing to check.
    Transcribed,
    /// Not proved, and why, in a sentence.
    NotVerified { reason: String },
}

impl Verification {
    pub fn is_verified(&self) -> bool {
        matches!(self, Verification::Verified)
    }

    /// One word or two for a label: "Verified", "Transcribed", "Not verified".
    pub fn label(&self) -> &'static str {
        match self {
            Verification::Verified => "Verified",
            Verification::Transcribed => "Transcribed",
            Verification::NotVerified { .. } => "Not verified",
        }
    }

    /// Why, in a sentence that follows the label.
    pub fn explanation(&self, signature: &Signature) -> String {
        match self {
            Verification::Verified => format!(
                "it was made with {}'s signing key and has not changed since.",
                signature.school
            ),
            Verification::Transcribed => "partnerplan cannot tell who signed it.".into(),
            Verification::NotVerified { reason } => reason.clone(),
        }
    }

    /// The whole sentence a person reads beside the signature:
    /// "Verified: it was made with …".
    pub fn sentence(&self, signature: &Signature) -> String {
        let label = match self {
            Verification::Transcribed => "Transcribed from paper",
            other => other.label(),
        };
        format!("{label}: {}", self.explanation(signature))
    }
}

/// Checks one signature of `review` in the document `document` against
/// the keys this school knows.
pub fn verify(
    document: &str,
    review: &Review,
    signature: &Signature,
    keys: &KnownKeys,
) -> Verification {
    let not = |reason: String| Verification::NotVerified { reason };
    let (Some(key_hex), Some(seal_hex)) = (&signature.key, &signature.seal) else {
        if signature.transcribed {
            return Verification::Transcribed;
        }
        return not("it carries no digital signature (it was recorded by an older partnerplan, or written into the document by hand), so nothing shows which school gave it.".into());
    };
    let Some(owner) = keys.school_of(key_hex) else {
        return not(format!(
            "it was signed with a key that this computer does not know as {}'s. If {} joined recently, sync and look again; otherwise another school made it.",
            signature.school, signature.school
        ));
    };
    if !same_school(owner, &signature.school) {
        return not(format!(
            "it names {} but was made with {owner}'s key, and a school can sign only for itself.",
            signature.school
        ));
    }
    let key = hex::decode(key_hex)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
        .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok());
    let seal = hex::decode(seal_hex)
        .ok()
        .and_then(|bytes| <[u8; 64]>::try_from(bytes.as_slice()).ok())
        .map(|bytes| ed25519_dalek::Signature::from_bytes(&bytes));
    let (Some(key), Some(seal)) = (key, seal) else {
        return not("its digital signature is damaged, so it cannot be checked.".into());
    };
    if signature
        .signed_at
        .is_some_and(|at| signing_date(at) != signature.date)
    {
        return not(
            "the date it shows is not the day it was made, so it was changed after it was signed."
                .into(),
        );
    }
    let bytes = signed_bytes(document, review, signature);
    match key.verify(&bytes, &seal) {
        Ok(()) => Verification::Verified,
        Err(_) => not("it was changed after it was signed, or copied from another document: the document, review, version, name, role, school or time it shows is not what was signed.".into()),
    }
}
