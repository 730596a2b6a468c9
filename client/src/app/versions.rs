//! Earlier versions of a document, as pages show them: as signed at a
//! review, as it stood at the end of a day, and which cells changed since
//! the last signature. Reads only, through the model.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use automerge::{Automerge, ChangeHash, ReadDoc};
use partnerplan_model::diff::{Difference, diff};
use partnerplan_model::read::read_at;
use partnerplan_model::records::Review;
use partnerplan_model::when::when_text;
use partnerplan_model::{DocView, ModelError};

/// The cells and rows that differ from the last signed version.
#[derive(Debug, Clone, Default)]
pub struct SinceSigned {
    /// "Tuesday 11 July 2017": when the version was signed.
    pub signed_on: String,
    pub review: String,
    /// Control ids (`f-<row or doc>-<field>`) and row ids (`row-<id>`).
    pub marks: HashSet<String>,
    pub changes: usize,
}

/// The latest review with a signature (and not withdrawn), and the
/// version its latest signature signed.
pub fn last_signed(view: &DocView) -> Option<(&Review, Vec<ChangeHash>, String)> {
    view.reviews
        .iter()
        .rev()
        .find(|r| !r.signatures.is_empty() && r.withdrawn.is_none())
        .and_then(|review| {
            let signature = review.signatures.last()?;
            let heads = signature
                .heads
                .iter()
                .map(|h| h.parse().ok())
                .collect::<Option<Vec<ChangeHash>>>()?;
            Some((review, heads, when_text(&signature.date)))
        })
}

/// Signed versions already read: a signed version never changes, and
/// reading one (`read_at`) costs far more than comparing it, so each is
/// read once. Bounded in bytes (the text each view holds, roughly).
#[derive(Default)]
pub struct SignedViews {
    /// Least recently used first.
    views: Mutex<Vec<SignedView>>,
}

/// One signed version: its heads, the view, and its rough size in bytes.
type SignedView = (Vec<ChangeHash>, Arc<DocView>, usize);

/// The most bytes of signed versions kept.
const SIGNED_VIEW_BYTES: usize = 16 * 1024 * 1024;

impl SignedViews {
    fn get_or_read(&self, doc: &Automerge, heads: &[ChangeHash]) -> Option<Arc<DocView>> {
        let mut views = self.views.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = views.iter().position(|(h, _, _)| h == heads) {
            // Most recently used last.
            let entry = views.remove(at);
            let view = entry.1.clone();
            views.push(entry);
            return Some(view);
        }
        let view = Arc::new(read_at(doc, heads).ok()?);
        let bytes = approximate_bytes(&view);
        views.push((heads.to_vec(), view.clone(), bytes));
        let mut total: usize = views.iter().map(|(_, _, b)| b).sum();
        while total > SIGNED_VIEW_BYTES && views.len() > 1 {
            total -= views.remove(0).2;
        }
        Some(view)
    }
}

fn approximate_bytes(view: &DocView) -> usize {
    fn table(t: &partnerplan_model::TableView) -> usize {
        t.rows
            .iter()
            .map(|r| {
                r.fields.iter().map(|f| f.text.len() + 64).sum::<usize>()
                    + r.tables.iter().map(table).sum::<usize>()
            })
            .sum()
    }
    view.fields.iter().map(|f| f.text.len() + 64).sum::<usize>()
        + view.tables.iter().map(table).sum::<usize>()
        + 1024
}

/// What changed since the last signed version, if the document was ever signed.
pub fn since_signed(doc: &Automerge, view: &DocView, signed: &SignedViews) -> Option<SinceSigned> {
    let (review, heads, signed_on) = last_signed(view)?;
    if heads.iter().any(|h| doc.get_change_by_hash(h).is_none()) {
        return None;
    }
    let signed = signed.get_or_read(doc, &heads)?;
    let differences = diff(&signed, view);
    let mut marks = HashSet::new();
    for difference in &differences {
        match difference {
            Difference::Changed { row, field, .. } => {
                marks.insert(format!("f-{}-{field}", row.as_deref().unwrap_or("doc")));
            }
            Difference::Added { row, .. } => {
                marks.insert(format!("row-{row}"));
            }
            Difference::Removed { .. } => {}
        }
    }
    Some(SinceSigned {
        signed_on,
        review: review.id.clone(),
        marks,
        changes: differences.len(),
    })
}

/// The document as the review `id`'s latest signature (or the review
/// itself) signed it, with the words that name that version.
pub fn as_signed(
    doc: &Automerge,
    view: &DocView,
    id: &str,
) -> Result<(DocView, String), ModelError> {
    let review = view
        .reviews
        .iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ModelError::NoSuchReview { id: id.into() })?;
    let (heads, name) = match review.signatures.last() {
        Some(signature) => (
            signature
                .heads
                .iter()
                .filter_map(|h| h.parse().ok())
                .collect::<Vec<ChangeHash>>(),
            format!("as signed on {}", when_text(&signature.date)),
        ),
        None => (
            review.heads()?,
            format!("as reviewed on {}", when_text(&review.date)),
        ),
    };
    if heads.is_empty() || heads.iter().any(|h| doc.get_change_by_hash(h).is_none()) {
        return Err(ModelError::UnreadableVersion {
            date: when_text(&review.date),
            detail: "this computer does not hold that version".into(),
        });
    }
    Ok((read_at(doc, &heads)?, name))
}

/// The version that stood at the end of `until` (seconds since 1970):
/// every change made by then, as the schools' clocks recorded them, and
/// everything those changes were made on.
pub fn as_of(doc: &Automerge, until: i64) -> Option<Vec<ChangeHash>> {
    let changes = doc.get_changes(&[]);
    let mut kept: HashSet<ChangeHash> = HashSet::new();
    // Causal order: a change is kept if it was made by then and every
    // change it was made on is kept.
    for change in &changes {
        if change.timestamp() <= until && change.deps().iter().all(|d| kept.contains(d)) {
            kept.insert(change.hash());
        }
    }
    if kept.is_empty() {
        return None;
    }
    let mut heads: HashSet<ChangeHash> = kept.clone();
    for change in &changes {
        if kept.contains(&change.hash()) {
            for dep in change.deps() {
                heads.remove(dep);
            }
        }
    }
    let mut heads: Vec<ChangeHash> = heads.into_iter().collect();
    heads.sort();
    Some(heads)
}
