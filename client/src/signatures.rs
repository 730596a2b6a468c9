//! This school's side of signatures: its signer (its key, and the name
//! its partners know it by), and the keys it checks every signature
//! against: each partner school's public keys as the relay listed them
//! (kept in `meta`, every key ever learned, so a signature once checked
//! stays checkable), and its own.

use std::collections::BTreeMap;
use std::path::Path;

use partnerplan_model::signing::{KnownKeys, Signer};
use partnerplan_sync::message::ListedPartnership;
use partnerplan_sync::{Store, StoreError};

use crate::error::ClientError;

/// `meta` key: every school's public signing key the relay has listed,
/// as a JSON object from key (hex) to the school's name on the register.
pub const META_SIGNING_KEYS: &str = "signing_keys";

/// The keys learned so far, from key (hex) to school.
fn learned(store: &Store) -> Result<BTreeMap<String, String>, StoreError> {
    Ok(store
        .meta(META_SIGNING_KEYS)?
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default())
}

/// The keys learned before (`before`, as kept in `meta`) with those the
/// relay listed now; `None` when nothing is new.
pub fn with_listed(before: Option<&str>, partnerships: &[ListedPartnership]) -> Option<String> {
    let mut keys: BTreeMap<String, String> = before
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let mut changed = false;
    for school in partnerships.iter().flat_map(|p| &p.schools) {
        for key in &school.keys {
            let hex = hex::encode(key);
            if keys.get(&hex) != Some(&school.name) {
                keys.insert(hex, school.name.clone());
                changed = true;
            }
        }
    }
    changed.then(|| serde_json::to_string(&keys).expect("a map of strings is JSON"))
}

/// How this school signs: its key from `dir`, under its name on the
/// relay's register once the relay has listed its key, else the name it
/// gave itself.
pub fn signer(store: &Store, dir: &Path) -> Result<Signer, ClientError> {
    let key = crate::school::signing_key(dir)?;
    let own = hex::encode(key.verifying_key().as_bytes());
    let local = store.meta("school_name")?.unwrap_or_default();
    let listed = learned(store)?.remove(&own);
    let name = listed.clone().unwrap_or_else(|| local.clone());
    Ok(Signer::new(key, &name, vec![local]))
}

/// The keys every signature is checked against: partners' as the relay
/// listed them, and this school's own.
pub fn known_keys(store: &Store, dir: &Path) -> Result<KnownKeys, ClientError> {
    let mut keys = KnownKeys::default();
    for (key, school) in learned(store)? {
        keys.insert(&key, &school);
    }
    let signer = signer(store, dir)?;
    keys.insert(&signer.public_hex(), &signer.school);
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use partnerplan_sync::access::Role;
    use partnerplan_sync::message::ListedSchool;

    use super::*;

    fn listing(schools: Vec<(&str, Vec<[u8; 32]>)>) -> Vec<ListedPartnership> {
        vec![ListedPartnership {
            id: "p".into(),
            name: "Tenterden".into(),
            role: Role::Member,
            home: true,
            documents: Vec::new(),
            sizes: Vec::new(),
            shared: Vec::new(),
            schools: schools
                .into_iter()
                .map(|(name, keys)| ListedSchool {
                    name: name.into(),
                    keys,
                })
                .collect(),
        }]
    }

    #[test]
    fn keys_learned_are_kept_when_a_later_listing_leaves_them_out() {
        let first = with_listed(None, &listing(vec![("Hilltop", vec![[1; 32]])])).unwrap();
        assert_eq!(with_listed(Some(&first), &listing(vec![])), None);
        let second = with_listed(Some(&first), &listing(vec![("Valley", vec![[2; 32]])])).unwrap();
        let keys: BTreeMap<String, String> = serde_json::from_str(&second).unwrap();
        assert_eq!(keys.get(&hex::encode([1; 32])).unwrap(), "Hilltop");
        assert_eq!(keys.get(&hex::encode([2; 32])).unwrap(), "Valley");
    }
}
