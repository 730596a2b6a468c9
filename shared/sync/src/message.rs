//! The automerge-repo WebSocket protocol, version "1": one CBOR map per
//! binary frame. This module turns frames into [`Message`]s and back; it
//! does no IO.
//!
//! Decoding is tolerant the way the JavaScript peers need it to be:
//! unknown fields are skipped, integers sent as floats are accepted and
//! `undefined` or `null` count as absent. It is also bounded: a frame over
//! the configured limit is refused before it is parsed.

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};

use crate::access::Role;
use crate::document_id::DocumentId;

/// The only protocol version automerge-repo speaks today.
pub const PROTOCOL_VERSION: &str = "1";

/// The largest frame a peer accepts unless configured otherwise: 16 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// A peer's id on the wire. automerge-repo peers pick these at random.
pub type PeerId = String;

/// The longest id a message may carry (`senderId`, `targetId`,
/// `sessionId`, `storageId`, `documentId`, a protocol version), in bytes.
/// Real peers send a few dozen; a peer's ids are kept while it is
/// connected (and peer ids for a day after), so a longer one is refused
/// rather than stored.
pub const MAX_ID_BYTES: usize = 256;

/// The most protocol versions a `join` may offer; there is one today.
pub const MAX_PROTOCOL_VERSIONS: usize = 16;

/// What a peer says about itself in `join` and `peer`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerMetadata {
    /// Identifies the peer's storage, so the other side may keep the sync
    /// state it shares with it across connections.
    pub storage_id: Option<String>,
    /// An ephemeral peer keeps nothing, so nothing is kept about it.
    pub is_ephemeral: bool,
    /// `partnerplanListing`: in a client's `join`, "send me the listing
    /// of the documents I may see" ([`Message::Listing`]); in a relay's
    /// `peer`, "it follows". JS peers never set it, and ignore it.
    pub listing: bool,
    /// `partnerplanSigningKey`: in our client's `join`, the school's
    /// public Ed25519 key, which the relay keeps for the school the
    /// connection authenticated as and publishes to its partnerships.
    pub signing_key: Option<PublicKey>,
    /// `partnerplanClient`: in our client's `join`, which program and
    /// version it is ("partnerplan 0.1.0"), for the relay's admin pages.
    /// Written only when set; JS peers never set it, and ignore it.
    pub client: Option<String>,
    /// `partnerplanCompact`: the version of the compact sync format
    /// ([`Message::Compact`], `compact.rs`) this peer offers (in `join`)
    /// or accepts (in `peer`); 0 for none. Only when both sides say
    /// [`COMPACT_VERSION`] do they send each other compact frames, so JS
    /// and samod peers, which never set it, keep the standard protocol.
    pub compact: u64,
}

/// A school's public Ed25519 signing key.
pub type PublicKey = [u8; 32];

/// The longest `partnerplanClient` kept; a longer one is cut.
pub const MAX_CLIENT_CHARS: usize = 64;

/// The compact sync format this build speaks. Bump it whenever
/// `compact.rs` changes what it writes, or an automerge upgrade changes
/// its bundle format: peers then fall back to the standard protocol
/// rather than misread each other.
pub const COMPACT_VERSION: u64 = 1;

/// The wire name of [`Message::Compact`]: short, since it is on every
/// frame between our own peers.
pub const COMPACT_TYPE: &str = "pp-sync";

/// The wire name of [`Message::Listing`]. Only our relay sends it, and
/// only to a client that asked in its `join`: automerge-repo peers drop
/// message types they do not know, but they never even see this one.
pub const LISTING_TYPE: &str = "partnerplan-documents";

/// The most document ids one [`Message::Listing`] carries; a longer
/// listing is split over several messages (1,000 ids are some 30 KB).
pub const MAX_LISTED_PER_MESSAGE: usize = 1000;

/// partnerplan's own message type naming the schools of Automerge actors
/// ([`Message::Actors`]), sent only to a client that asked for listings.
pub const ACTORS_TYPE: &str = "partnerplan-actors";

/// The wire name of [`Message::Claim`]. Only our client sends it, and
/// only to our relay, before the first sync of a document it made for a
/// partnership other than its home one.
pub const CLAIM_TYPE: &str = "partnerplan-claim";

/// The longest partnership id a [`Message::Claim`] may name (ours are 32
/// hex digits; names are at most a few dozen characters).
pub const MAX_CLAIMED_PARTNERSHIP_BYTES: usize = 256;

/// The most actors one [`Message::Actors`] names (1,000 are some 40 KB).
pub const MAX_ACTORS_PER_MESSAGE: usize = 1000;

/// An Automerge actor and the school the relay bound it to (the school's
/// name in the relay's register).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedActor {
    pub actor: Vec<u8>,
    pub school: String,
}

/// One partnership in a [`Message::Listing`]: its name, the school's role
/// in it, and (some of) its documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPartnership {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The partnership documents this connection creates belong to.
    pub home: bool,
    pub documents: Vec<DocumentId>,
    /// The bytes the relay stores for each of `documents`, in order, so a
    /// school joining knows how much is coming ("1.2 of 5 MB"); empty
    /// when not said.
    pub sizes: Vec<u64>,
    /// Those of `documents` that one school alone writes: a viewer's own
    /// (a local authority's comments), shared with this partnership to
    /// read. Its members may not change them.
    pub shared: Vec<DocumentId>,
    /// The partnership's schools, each with the public keys its
    /// signatures are checked against.
    pub schools: Vec<ListedSchool>,
}

/// A school of a listed partnership: its name on the register and its
/// public signing keys (one per computer it signed from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSchool {
    pub name: String,
    pub keys: Vec<PublicKey>,
}

/// One protocol message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Join {
        sender_id: PeerId,
        supported_protocol_versions: Vec<String>,
        metadata: PeerMetadata,
    },
    Peer {
        sender_id: PeerId,
        target_id: PeerId,
        selected_protocol_version: String,
        metadata: PeerMetadata,
    },
    Leave {
        sender_id: PeerId,
    },
    Error {
        sender_id: Option<PeerId>,
        target_id: Option<PeerId>,
        message: String,
        /// Ours: the document this error stopped syncing on the
        /// connection (its changes were refused), as `documentId`. Peers
        /// that do not know it read only the sentence.
        document_id: Option<DocumentId>,
        /// Ours, with `document_id`: the refusal passes (the relay was
        /// busy, or the school's daily allowance ran out), and the
        /// document's changes may be sent again on the same connection
        /// after this many ms, as `retryAfterMs`.
        retry_after_ms: Option<u64>,
    },
    /// A sync message from a peer that does not have the document yet.
    Request(SyncFrame),
    Sync(SyncFrame),
    /// partnerplan's own `sync` (and `request`), between peers that both
    /// said [`COMPACT_VERSION`] in `join` and `peer`: no peer ids (the
    /// connection says who sent it), the document id as 16 bytes, and the
    /// sync message in the compact form of `compact.rs`.
    Compact(CompactFrame),
    DocUnavailable {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
    },
    Ephemeral {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
        session_id: String,
        count: u64,
        data: Vec<u8>,
    },
    /// Remote-heads gossip (`remote-heads-changed`,
    /// `remote-subscription-change`): part of the protocol, which this
    /// implementation reads and ignores.
    Gossip {
        sender_id: PeerId,
        kind: String,
    },
    /// partnerplan's own (`partnerplan-documents`): documents the
    /// connection's school may see, by partnership. Every partnership the
    /// school is in is named in each message; the documents are spread
    /// over the messages of one listing, `more` saying another follows.
    /// Later, a message naming one new document.
    Listing {
        sender_id: PeerId,
        target_id: PeerId,
        partnerships: Vec<ListedPartnership>,
        more: bool,
    },
    /// partnerplan's own (`partnerplan-actors`): which school each of
    /// these Automerge actors belongs to, as the relay bound them, for the
    /// actors of the schools that share a partnership with the
    /// connection's school: all of them after the listing, then each as
    /// it is bound. History names schools by it, not by what documents say.
    Actors {
        sender_id: PeerId,
        target_id: PeerId,
        actors: Vec<NamedActor>,
    },
    /// partnerplan's own (`partnerplan-claim`), from a client to its
    /// relay: the document it is about to send for the first time is
    /// for this partnership (by id), not for the connection's home one.
    /// The relay's policy judges it; a document already owned ignores it.
    Claim {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
        partnership: String,
    },
}

/// The fields `request` and `sync` share.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncFrame {
    pub sender_id: PeerId,
    pub target_id: PeerId,
    pub document_id: DocumentId,
    /// An encoded `automerge::sync::Message`.
    pub data: Vec<u8>,
}

/// The fields of a [`Message::Compact`].
#[derive(Debug, Clone, PartialEq)]
pub struct CompactFrame {
    pub document_id: DocumentId,
    /// Sent by a peer that does not have the document yet (as `request`).
    pub request: bool,
    /// A sync message as `compact::encode` writes it.
    pub data: Vec<u8>,
}

/// Why a frame could not be read. Each says what was wrong in a sentence
/// that is sent back to the peer in an `error` message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the message is {size} bytes, over this relay's limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("the message is not valid CBOR: {0}")]
    Cbor(String),
    #[error("the message is not a CBOR map")]
    NotAMap,
    #[error("the message has no “type” field")]
    MissingType,
    #[error("the message type “{0}” is not part of the automerge-repo protocol")]
    UnknownType(String),
    #[error("the “{kind}” message has no “{field}” field")]
    MissingField {
        kind: &'static str,
        field: &'static str,
    },
    #[error("the “{field}” field has the wrong type: expected {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    #[error("the document id is not valid: {0}")]
    DocumentId(#[from] crate::document_id::DocumentIdError),
    #[error(
        "the “{field}” field is {size} bytes long, over the limit of {limit} bytes for an id; pick a short random id"
    )]
    IdTooLong {
        field: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("the “{field}” field lists more than {limit} entries")]
    TooMany { field: &'static str, limit: usize },
}

impl From<minicbor::decode::Error> for DecodeError {
    fn from(error: minicbor::decode::Error) -> Self {
        DecodeError::Cbor(error.to_string())
    }
}

impl Message {
    /// The message's `type` field.
    pub fn kind(&self) -> &str {
        match self {
            Message::Join { .. } => "join",
            Message::Peer { .. } => "peer",
            Message::Leave { .. } => "leave",
            Message::Error { .. } => "error",
            Message::Request(_) => "request",
            Message::Sync(_) => "sync",
            Message::Compact(_) => COMPACT_TYPE,
            Message::DocUnavailable { .. } => "doc-unavailable",
            Message::Ephemeral { .. } => "ephemeral",
            Message::Gossip { kind, .. } => kind,
            Message::Listing { .. } => LISTING_TYPE,
            Message::Actors { .. } => ACTORS_TYPE,
            Message::Claim { .. } => CLAIM_TYPE,
        }
    }

    /// The peer that says it sent this message.
    pub fn sender_id(&self) -> Option<&str> {
        match self {
            Message::Join { sender_id, .. }
            | Message::Peer { sender_id, .. }
            | Message::Leave { sender_id }
            | Message::DocUnavailable { sender_id, .. }
            | Message::Ephemeral { sender_id, .. }
            | Message::Gossip { sender_id, .. }
            | Message::Listing { sender_id, .. }
            | Message::Actors { sender_id, .. }
            | Message::Claim { sender_id, .. } => Some(sender_id),
            Message::Request(frame) | Message::Sync(frame) => Some(&frame.sender_id),
            Message::Error { sender_id, .. } => sender_id.as_deref(),
            // Only the connection says who sent it.
            Message::Compact(_) => None,
        }
    }

    /// The document this message is about, if any.
    pub fn document_id(&self) -> Option<DocumentId> {
        match self {
            Message::Request(frame) | Message::Sync(frame) => Some(frame.document_id),
            Message::Compact(frame) => Some(frame.document_id),
            Message::DocUnavailable { document_id, .. }
            | Message::Ephemeral { document_id, .. } => Some(*document_id),
            _ => None,
        }
    }

    /// Reads one frame, refusing frames over `max_bytes`.
    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Message, DecodeError> {
        if bytes.len() > max_bytes {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                limit: max_bytes,
            });
        }
        let fields = Fields::read(bytes)?;
        let kind = fields.kind.clone().ok_or(DecodeError::MissingType)?;
        let message = match kind.as_str() {
            "join" => Message::Join {
                sender_id: fields.required("join", "senderId", &fields.sender_id)?,
                supported_protocol_versions: fields.supported_protocol_versions.clone(),
                metadata: fields.metadata.clone(),
            },
            "peer" => Message::Peer {
                sender_id: fields.required("peer", "senderId", &fields.sender_id)?,
                target_id: fields.required("peer", "targetId", &fields.target_id)?,
                selected_protocol_version: fields
                    .selected_protocol_version
                    .clone()
                    .unwrap_or_else(|| PROTOCOL_VERSION.to_string()),
                metadata: fields.metadata.clone(),
            },
            "leave" => Message::Leave {
                sender_id: fields.required("leave", "senderId", &fields.sender_id)?,
            },
            "error" => Message::Error {
                sender_id: fields.sender_id.clone(),
                target_id: fields.target_id.clone(),
                message: fields.message.clone().unwrap_or_default(),
                // A document id that cannot be read names no document.
                document_id: fields
                    .document_id
                    .as_deref()
                    .and_then(|text| DocumentId::parse_url_or_id(text).ok()),
                retry_after_ms: fields.retry_after_ms,
            },
            "request" | "sync" => {
                let kind_name = if kind == "request" { "request" } else { "sync" };
                let frame = SyncFrame {
                    sender_id: fields.required(kind_name, "senderId", &fields.sender_id)?,
                    target_id: fields.required(kind_name, "targetId", &fields.target_id)?,
                    document_id: fields.document_id(kind_name)?,
                    data: fields.required(kind_name, "data", &fields.data)?,
                };
                if kind == "request" {
                    Message::Request(frame)
                } else {
                    Message::Sync(frame)
                }
            }
            "doc-unavailable" => Message::DocUnavailable {
                sender_id: fields.required("doc-unavailable", "senderId", &fields.sender_id)?,
                target_id: fields.required("doc-unavailable", "targetId", &fields.target_id)?,
                document_id: fields.document_id("doc-unavailable")?,
            },
            "ephemeral" => Message::Ephemeral {
                sender_id: fields.required("ephemeral", "senderId", &fields.sender_id)?,
                target_id: fields.required("ephemeral", "targetId", &fields.target_id)?,
                document_id: fields.document_id("ephemeral")?,
                session_id: fields.required("ephemeral", "sessionId", &fields.session_id)?,
                count: fields.required("ephemeral", "count", &fields.count)?,
                data: fields.required("ephemeral", "data", &fields.data)?,
            },
            "remote-heads-changed" | "remote-subscription-change" => Message::Gossip {
                sender_id: fields.required("gossip", "senderId", &fields.sender_id)?,
                kind,
            },
            COMPACT_TYPE => Message::Compact(CompactFrame {
                document_id: fields.document_bytes()?,
                request: fields.request.unwrap_or(false),
                data: fields.required(COMPACT_TYPE, "m", &fields.body)?,
            }),
            LISTING_TYPE => Message::Listing {
                sender_id: fields.required(LISTING_TYPE, "senderId", &fields.sender_id)?,
                target_id: fields.required(LISTING_TYPE, "targetId", &fields.target_id)?,
                partnerships: fields.partnerships.clone(),
                more: fields.more.unwrap_or(false),
            },
            ACTORS_TYPE => Message::Actors {
                sender_id: fields.required(ACTORS_TYPE, "senderId", &fields.sender_id)?,
                target_id: fields.required(ACTORS_TYPE, "targetId", &fields.target_id)?,
                actors: fields.actors.clone(),
            },
            CLAIM_TYPE => {
                let partnership: String =
                    fields.required(CLAIM_TYPE, "partnership", &fields.partnership)?;
                if partnership.len() > MAX_CLAIMED_PARTNERSHIP_BYTES {
                    return Err(DecodeError::WrongType {
                        field: "partnership".into(),
                        expected: "a partnership id of at most 256 bytes",
                    });
                }
                Message::Claim {
                    sender_id: fields.required(CLAIM_TYPE, "senderId", &fields.sender_id)?,
                    target_id: fields.required(CLAIM_TYPE, "targetId", &fields.target_id)?,
                    document_id: fields.document_id(CLAIM_TYPE)?,
                    partnership,
                }
            }
            _ => return Err(DecodeError::UnknownType(shorten(&kind))),
        };
        Ok(message)
    }

    /// Writes the message as one CBOR map, the way automerge-repo does.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        // Writing to a Vec cannot fail.
        self.write(&mut e).expect("encoding to memory cannot fail");
        e.into_writer()
    }

    fn write(
        &self,
        e: &mut Encoder<Vec<u8>>,
    ) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
        match self {
            Message::Join {
                sender_id,
                supported_protocol_versions,
                metadata,
            } => {
                e.map(4)?.str("type")?.str("join")?;
                e.str("senderId")?.str(sender_id)?;
                e.str("supportedProtocolVersions")?
                    .array(supported_protocol_versions.len() as u64)?;
                for version in supported_protocol_versions {
                    e.str(version)?;
                }
                write_metadata(e, metadata)?;
            }
            Message::Peer {
                sender_id,
                target_id,
                selected_protocol_version,
                metadata,
            } => {
                e.map(5)?.str("type")?.str("peer")?;
                e.str("senderId")?.str(sender_id)?;
                e.str("targetId")?.str(target_id)?;
                e.str("selectedProtocolVersion")?
                    .str(selected_protocol_version)?;
                write_metadata(e, metadata)?;
            }
            Message::Leave { sender_id } => {
                e.map(2)?.str("type")?.str("leave")?;
                e.str("senderId")?.str(sender_id)?;
            }
            Message::Error {
                sender_id,
                target_id,
                message,
                document_id,
                retry_after_ms,
            } => {
                let len = 2
                    + sender_id.is_some() as u64
                    + target_id.is_some() as u64
                    + document_id.is_some() as u64
                    + retry_after_ms.is_some() as u64;
                e.map(len)?.str("type")?.str("error")?;
                if let Some(sender_id) = sender_id {
                    e.str("senderId")?.str(sender_id)?;
                }
                if let Some(target_id) = target_id {
                    e.str("targetId")?.str(target_id)?;
                }
                e.str("message")?.str(message)?;
                if let Some(document_id) = document_id {
                    e.str("documentId")?.str(&document_id.to_string())?;
                }
                if let Some(ms) = retry_after_ms {
                    e.str("retryAfterMs")?.u64(*ms)?;
                }
            }
            Message::Request(frame) | Message::Sync(frame) => {
                e.map(5)?.str("type")?.str(self.kind())?;
                e.str("senderId")?.str(&frame.sender_id)?;
                e.str("targetId")?.str(&frame.target_id)?;
                e.str("documentId")?.str(&frame.document_id.to_string())?;
                e.str("data")?.bytes(&frame.data)?;
            }
            Message::Compact(frame) => {
                e.map(3 + frame.request as u64)?
                    .str("type")?
                    .str(COMPACT_TYPE)?;
                e.str("d")?.bytes(frame.document_id.as_bytes())?;
                if frame.request {
                    e.str("r")?.bool(true)?;
                }
                e.str("m")?.bytes(&frame.data)?;
            }
            Message::DocUnavailable {
                sender_id,
                target_id,
                document_id,
            } => {
                e.map(4)?.str("type")?.str("doc-unavailable")?;
                e.str("senderId")?.str(sender_id)?;
                e.str("targetId")?.str(target_id)?;
                e.str("documentId")?.str(&document_id.to_string())?;
            }
            Message::Ephemeral {
                sender_id,
                target_id,
                document_id,
                session_id,
                count,
                data,
            } => {
                e.map(7)?.str("type")?.str("ephemeral")?;
                e.str("senderId")?.str(sender_id)?;
                e.str("targetId")?.str(target_id)?;
                e.str("documentId")?.str(&document_id.to_string())?;
                e.str("sessionId")?.str(session_id)?;
                e.str("count")?.u64(*count)?;
                e.str("data")?.bytes(data)?;
            }
            Message::Gossip { sender_id, kind } => {
                e.map(2)?.str("type")?.str(kind)?;
                e.str("senderId")?.str(sender_id)?;
            }
            Message::Listing {
                sender_id,
                target_id,
                partnerships,
                more,
            } => {
                e.map(5)?.str("type")?.str(LISTING_TYPE)?;
                e.str("senderId")?.str(sender_id)?;
                e.str("targetId")?.str(target_id)?;
                e.str("partnerships")?.array(partnerships.len() as u64)?;
                for partnership in partnerships {
                    e.map(
                        6 + !partnership.sizes.is_empty() as u64
                            + !partnership.shared.is_empty() as u64,
                    )?;
                    e.str("id")?.str(&partnership.id)?;
                    e.str("name")?.str(&partnership.name)?;
                    e.str("role")?.str(partnership.role.as_str())?;
                    e.str("home")?.bool(partnership.home)?;
                    e.str("documents")?
                        .array(partnership.documents.len() as u64)?;
                    for document_id in &partnership.documents {
                        e.str(&document_id.to_string())?;
                    }
                    if !partnership.sizes.is_empty() {
                        e.str("sizes")?.array(partnership.sizes.len() as u64)?;
                        for size in &partnership.sizes {
                            e.u64(*size)?;
                        }
                    }
                    if !partnership.shared.is_empty() {
                        e.str("shared")?.array(partnership.shared.len() as u64)?;
                        for document_id in &partnership.shared {
                            e.str(&document_id.to_string())?;
                        }
                    }
                    e.str("schools")?.array(partnership.schools.len() as u64)?;
                    for school in &partnership.schools {
                        e.map(2)?.str("name")?.str(&school.name)?;
                        e.str("keys")?.array(school.keys.len() as u64)?;
                        for key in &school.keys {
                            e.bytes(key)?;
                        }
                    }
                }
                e.str("more")?.bool(*more)?;
            }
            Message::Actors {
                sender_id,
                target_id,
                actors,
            } => {
                e.map(4)?.str("type")?.str(ACTORS_TYPE)?;
                e.str("senderId")?.str(sender_id)?;
                e.str("targetId")?.str(target_id)?;
                e.str("actors")?.array(actors.len() as u64)?;
                for named in actors {
                    e.map(2)?;
                    e.str("actor")?.bytes(&named.actor)?;
                    e.str("school")?.str(&named.school)?;
                }
            }
            Message::Claim {
                sender_id,
                target_id,
                document_id,
                partnership,
            } => {
                e.map(5)?.str("type")?.str(CLAIM_TYPE)?;
                e.str("senderId")?.str(sender_id)?;
                e.str("targetId")?.str(target_id)?;
                e.str("documentId")?.str(&document_id.to_string())?;
                e.str("partnership")?.str(partnership)?;
            }
        }
        Ok(())
    }
}

fn write_metadata(
    e: &mut Encoder<Vec<u8>>,
    metadata: &PeerMetadata,
) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
    e.str("peerMetadata")?.map(
        1 + metadata.storage_id.is_some() as u64
            + metadata.listing as u64
            + (metadata.compact > 0) as u64
            + metadata.signing_key.is_some() as u64
            + metadata.client.is_some() as u64,
    )?;
    if let Some(storage_id) = &metadata.storage_id {
        e.str("storageId")?.str(storage_id)?;
    }
    e.str("isEphemeral")?.bool(metadata.is_ephemeral)?;
    // Written only when set, so what JS peers receive is unchanged.
    if metadata.listing {
        e.str("partnerplanListing")?.bool(true)?;
    }
    if metadata.compact > 0 {
        e.str("partnerplanCompact")?.u64(metadata.compact)?;
    }
    if let Some(key) = &metadata.signing_key {
        e.str("partnerplanSigningKey")?.bytes(key)?;
    }
    if let Some(client) = &metadata.client {
        e.str("partnerplanClient")?.str(client)?;
    }
    Ok(())
}

/// Every field any message may carry, read in one pass over the map.
#[derive(Default)]
struct Fields {
    kind: Option<String>,
    sender_id: Option<String>,
    target_id: Option<String>,
    document_id: Option<String>,
    data: Option<Vec<u8>>,
    message: Option<String>,
    session_id: Option<String>,
    count: Option<u64>,
    retry_after_ms: Option<u64>,
    supported_protocol_versions: Vec<String>,
    selected_protocol_version: Option<String>,
    metadata: PeerMetadata,
    partnerships: Vec<ListedPartnership>,
    more: Option<bool>,
    /// [`Message::Compact`]'s short fields.
    document_bytes: Option<Vec<u8>>,
    request: Option<bool>,
    body: Option<Vec<u8>>,
    actors: Vec<NamedActor>,
    partnership: Option<String>,
}

impl Fields {
    fn read(bytes: &[u8]) -> Result<Fields, DecodeError> {
        let mut d = Decoder::new(bytes);
        skip_tags(&mut d)?;
        if !matches!(d.datatype()?, Type::Map | Type::MapIndef) {
            return Err(DecodeError::NotAMap);
        }
        let mut fields = Fields::default();
        for_each_entry(&mut d, |d, key| {
            match key {
                "type" => fields.kind = opt_id(d, "type")?,
                "senderId" => fields.sender_id = opt_id(d, "senderId")?,
                "targetId" => fields.target_id = opt_id(d, "targetId")?,
                "documentId" => fields.document_id = opt_id(d, "documentId")?,
                "data" => fields.data = opt_bytes(d, "data")?,
                "message" => fields.message = opt_string(d, "message")?,
                "sessionId" => fields.session_id = opt_id(d, "sessionId")?,
                "count" => fields.count = opt_count(d, "count")?,
                "retryAfterMs" => fields.retry_after_ms = opt_count(d, "retryAfterMs")?,
                "selectedProtocolVersion" => {
                    fields.selected_protocol_version = opt_id(d, "selectedProtocolVersion")?
                }
                "supportedProtocolVersions" => fields.supported_protocol_versions = string_list(d)?,
                "peerMetadata" => fields.metadata = metadata(d)?,
                "partnerships" => fields.partnerships = partnership_list(d)?,
                "more" => fields.more = opt_bool(d)?,
                "d" => fields.document_bytes = opt_bytes(d, "d")?,
                "r" => fields.request = opt_bool(d)?,
                "m" => fields.body = opt_bytes(d, "m")?,
                "actors" => fields.actors = actor_list(d)?,
                "partnership" => fields.partnership = opt_string(d, "partnership")?,
                _ => d.skip()?,
            }
            Ok(())
        })?;
        Ok(fields)
    }

    fn required<T: Clone>(
        &self,
        kind: &'static str,
        field: &'static str,
        value: &Option<T>,
    ) -> Result<T, DecodeError> {
        value
            .clone()
            .ok_or(DecodeError::MissingField { kind, field })
    }

    /// The document id of a [`Message::Compact`]: its 16 bytes.
    fn document_bytes(&self) -> Result<DocumentId, DecodeError> {
        let bytes = self.required(COMPACT_TYPE, "d", &self.document_bytes)?;
        let array: [u8; 16] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| DecodeError::WrongType {
                field: "d".into(),
                expected: "a document id of 16 bytes",
            })?;
        Ok(DocumentId::from_bytes(array))
    }

    fn document_id(&self, kind: &'static str) -> Result<DocumentId, DecodeError> {
        let text = self.required(kind, "documentId", &self.document_id)?;
        Ok(DocumentId::parse_url_or_id(&text)?)
    }
}

/// Calls `f` with each key of the map at the decoder's position; `f` must
/// consume the value.
fn for_each_entry(
    d: &mut Decoder<'_>,
    mut f: impl FnMut(&mut Decoder<'_>, &str) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    match d.map()? {
        Some(len) => {
            for _ in 0..len {
                entry(d, &mut f)?;
            }
        }
        None => {
            while d.datatype()? != Type::Break {
                entry(d, &mut f)?;
            }
            d.skip()?;
        }
    }
    Ok(())
}

fn entry(
    d: &mut Decoder<'_>,
    f: &mut impl FnMut(&mut Decoder<'_>, &str) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    if d.datatype()? == Type::String {
        let key = d.str()?.to_owned();
        f(d, &key)
    } else {
        // A key we cannot name is a field we do not know: skip both.
        d.skip()?;
        d.skip()?;
        Ok(())
    }
}

fn skip_tags(d: &mut Decoder<'_>) -> Result<(), DecodeError> {
    while d.datatype()? == Type::Tag {
        d.tag()?;
    }
    Ok(())
}

/// `undefined` and `null` stand for an absent field.
fn is_absent(d: &mut Decoder<'_>) -> Result<bool, DecodeError> {
    match d.datatype()? {
        Type::Undefined => {
            d.undefined()?;
            Ok(true)
        }
        Type::Null => {
            d.null()?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

fn opt_string(d: &mut Decoder<'_>, field: &str) -> Result<Option<String>, DecodeError> {
    skip_tags(d)?;
    if is_absent(d)? {
        return Ok(None);
    }
    match d.datatype()? {
        Type::String => Ok(Some(d.str()?.to_owned())),
        Type::StringIndef => {
            let mut text = String::new();
            for part in d.str_iter()? {
                text.push_str(part?);
            }
            Ok(Some(text))
        }
        _ => Err(DecodeError::WrongType {
            field: field.to_string(),
            expected: "text",
        }),
    }
}

/// Text that names something (an id, a version): at most
/// [`MAX_ID_BYTES`], checked before it is copied.
fn opt_id(d: &mut Decoder<'_>, field: &'static str) -> Result<Option<String>, DecodeError> {
    skip_tags(d)?;
    let too_long = |size| DecodeError::IdTooLong {
        field,
        size,
        limit: MAX_ID_BYTES,
    };
    if d.datatype()? == Type::String {
        let text = d.str()?;
        if text.len() > MAX_ID_BYTES {
            return Err(too_long(text.len()));
        }
        return Ok(Some(text.to_owned()));
    }
    let text = opt_string(d, field)?;
    match text {
        Some(text) if text.len() > MAX_ID_BYTES => Err(too_long(text.len())),
        text => Ok(text),
    }
}

fn opt_bytes(d: &mut Decoder<'_>, field: &str) -> Result<Option<Vec<u8>>, DecodeError> {
    // cbor-x may wrap a Uint8Array in a typed-array tag (64).
    skip_tags(d)?;
    if is_absent(d)? {
        return Ok(None);
    }
    match d.datatype()? {
        Type::Bytes => Ok(Some(d.bytes()?.to_vec())),
        Type::BytesIndef => {
            let mut bytes = Vec::new();
            for part in d.bytes_iter()? {
                bytes.extend_from_slice(part?);
            }
            Ok(Some(bytes))
        }
        _ => Err(DecodeError::WrongType {
            field: field.to_string(),
            expected: "bytes",
        }),
    }
}

/// A count sent as any CBOR number: JavaScript numbers may arrive as floats.
fn opt_count(d: &mut Decoder<'_>, field: &str) -> Result<Option<u64>, DecodeError> {
    skip_tags(d)?;
    if is_absent(d)? {
        return Ok(None);
    }
    let wrong = || DecodeError::WrongType {
        field: field.to_string(),
        expected: "a whole number",
    };
    match d.datatype()? {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => Ok(Some(d.u64()?)),
        Type::F32 | Type::F64 => {
            let value = match d.datatype()? {
                Type::F32 => d.f32()? as f64,
                _ => d.f64()?,
            };
            if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value < 2f64.powi(64) {
                Ok(Some(value as u64))
            } else {
                Err(wrong())
            }
        }
        _ => Err(wrong()),
    }
}

fn opt_bool(d: &mut Decoder<'_>) -> Result<Option<bool>, DecodeError> {
    if is_absent(d)? {
        return Ok(None);
    }
    if d.datatype()? == Type::Bool {
        Ok(Some(d.bool()?))
    } else {
        d.skip()?;
        Ok(None)
    }
}

fn string_list(d: &mut Decoder<'_>) -> Result<Vec<String>, DecodeError> {
    skip_tags(d)?;
    if is_absent(d)? {
        return Ok(Vec::new());
    }
    if !matches!(d.datatype()?, Type::Array | Type::ArrayIndef) {
        return Err(DecodeError::WrongType {
            field: "supportedProtocolVersions".into(),
            expected: "a list of text",
        });
    }
    let mut list = Vec::new();
    let mut push = |d: &mut Decoder<'_>| {
        if let Some(s) = opt_id(d, "supportedProtocolVersions")? {
            if list.len() == MAX_PROTOCOL_VERSIONS {
                return Err(DecodeError::TooMany {
                    field: "supportedProtocolVersions",
                    limit: MAX_PROTOCOL_VERSIONS,
                });
            }
            list.push(s);
        }
        Ok(())
    };
    match d.array()? {
        Some(len) => {
            for _ in 0..len {
                push(d)?;
            }
        }
        None => {
            while d.datatype()? != Type::Break {
                push(d)?;
            }
            d.skip()?;
        }
    }
    Ok(list)
}

fn metadata(d: &mut Decoder<'_>) -> Result<PeerMetadata, DecodeError> {
    skip_tags(d)?;
    let mut metadata = PeerMetadata::default();
    if is_absent(d)? {
        return Ok(metadata);
    }
    if !matches!(d.datatype()?, Type::Map | Type::MapIndef) {
        d.skip()?;
        return Ok(metadata);
    }
    for_each_entry(d, |d, key| {
        match key {
            "storageId" => metadata.storage_id = opt_id(d, "storageId")?,
            "isEphemeral" => metadata.is_ephemeral = opt_bool(d)?.unwrap_or(false),
            "partnerplanListing" => metadata.listing = opt_bool(d)?.unwrap_or(false),
            "partnerplanCompact" => {
                metadata.compact = opt_count(d, "partnerplanCompact")?.unwrap_or(0)
            }
            "partnerplanSigningKey" => {
                metadata.signing_key = opt_bytes(d, "partnerplanSigningKey")?
                    .map(|bytes| public_key(&bytes, "partnerplanSigningKey"))
                    .transpose()?
            }
            "partnerplanClient" => {
                metadata.client = opt_string(d, "partnerplanClient")?
                    .map(|c| c.chars().take(MAX_CLIENT_CHARS).collect())
            }
            _ => d.skip()?,
        }
        Ok(())
    })?;
    Ok(metadata)
}

/// Calls `f` with the decoder at each item of the array at its position;
/// `f` must consume the item. `undefined` or `null` is an empty array.
fn for_each_item(
    d: &mut Decoder<'_>,
    field: &str,
    mut f: impl FnMut(&mut Decoder<'_>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    skip_tags(d)?;
    if is_absent(d)? {
        return Ok(());
    }
    if !matches!(d.datatype()?, Type::Array | Type::ArrayIndef) {
        return Err(DecodeError::WrongType {
            field: field.to_string(),
            expected: "a list",
        });
    }
    match d.array()? {
        Some(len) => {
            for _ in 0..len {
                f(d)?;
            }
        }
        None => {
            while d.datatype()? != Type::Break {
                f(d)?;
            }
            d.skip()?;
        }
    }
    Ok(())
}

fn partnership_list(d: &mut Decoder<'_>) -> Result<Vec<ListedPartnership>, DecodeError> {
    let mut list = Vec::new();
    for_each_item(d, "partnerships", |d| {
        skip_tags(d)?;
        if !matches!(d.datatype()?, Type::Map | Type::MapIndef) {
            return Err(DecodeError::WrongType {
                field: "partnerships".into(),
                expected: "a list of maps",
            });
        }
        let (mut id, mut name, mut role, mut home) = (None, None, None, false);
        let mut documents = Vec::new();
        let mut sizes = Vec::new();
        let mut shared = Vec::new();
        let mut schools = Vec::new();
        for_each_entry(d, |d, key| {
            match key {
                "id" => id = opt_string(d, "id")?,
                "name" => name = opt_string(d, "name")?,
                "role" => role = opt_string(d, "role")?,
                "home" => home = opt_bool(d)?.unwrap_or(false),
                "documents" => for_each_item(d, "documents", |d| {
                    if let Some(text) = opt_string(d, "documents")? {
                        documents.push(DocumentId::parse_url_or_id(&text)?);
                    }
                    Ok(())
                })?,
                "sizes" => for_each_item(d, "sizes", |d| {
                    sizes.push(opt_count(d, "sizes")?.unwrap_or(0));
                    Ok(())
                })?,
                "shared" => for_each_item(d, "shared", |d| {
                    if let Some(text) = opt_string(d, "shared")? {
                        shared.push(DocumentId::parse_url_or_id(&text)?);
                    }
                    Ok(())
                })?,
                "schools" => schools = school_list(d)?,
                _ => d.skip()?,
            }
            Ok(())
        })?;
        // Sizes that do not match the documents one for one say nothing.
        if sizes.len() != documents.len() {
            sizes.clear();
        }
        let id = id.ok_or(DecodeError::MissingField {
            kind: LISTING_TYPE,
            field: "id",
        })?;
        list.push(ListedPartnership {
            name: name.unwrap_or_else(|| id.clone()),
            id,
            // A role this client does not know may not write.
            role: match role.as_deref() {
                Some("member") => Role::Member,
                _ => Role::Viewer,
            },
            home,
            documents,
            sizes,
            shared,
            schools,
        });
        Ok(())
    })?;
    Ok(list)
}

fn actor_list(d: &mut Decoder<'_>) -> Result<Vec<NamedActor>, DecodeError> {
    let mut list = Vec::new();
    for_each_item(d, "actors", |d| {
        skip_tags(d)?;
        if !matches!(d.datatype()?, Type::Map | Type::MapIndef) {
            return Err(DecodeError::WrongType {
                field: "actors".into(),
                expected: "a list of maps",
            });
        }
        let (mut actor, mut school) = (None, None);
        for_each_entry(d, |d, key| {
            match key {
                "actor" => actor = opt_bytes(d, "actor")?,
                "school" => school = opt_string(d, "school")?,
                _ => d.skip()?,
            }
            Ok(())
        })?;
        // An entry missing either names nothing.
        if let (Some(actor), Some(school)) = (actor, school) {
            list.push(NamedActor { actor, school });
        }
        Ok(())
    })?;
    Ok(list)
}

/// A partnership's schools in a listing: each a map of `name` and
/// `keys` (a list of 32-byte keys).
fn school_list(d: &mut Decoder<'_>) -> Result<Vec<ListedSchool>, DecodeError> {
    let mut list = Vec::new();
    for_each_item(d, "schools", |d| {
        skip_tags(d)?;
        if !matches!(d.datatype()?, Type::Map | Type::MapIndef) {
            return Err(DecodeError::WrongType {
                field: "schools".into(),
                expected: "a list of maps",
            });
        }
        let mut school = ListedSchool {
            name: String::new(),
            keys: Vec::new(),
        };
        for_each_entry(d, |d, key| {
            match key {
                "name" => school.name = opt_string(d, "name")?.unwrap_or_default(),
                "keys" => for_each_item(d, "keys", |d| {
                    if let Some(bytes) = opt_bytes(d, "keys")? {
                        school.keys.push(public_key(&bytes, "keys")?);
                    }
                    Ok(())
                })?,
                _ => d.skip()?,
            }
            Ok(())
        })?;
        list.push(school);
        Ok(())
    })?;
    Ok(list)
}

fn public_key(bytes: &[u8], field: &str) -> Result<PublicKey, DecodeError> {
    PublicKey::try_from(bytes).map_err(|_| DecodeError::WrongType {
        field: field.to_string(),
        expected: "a 32-byte public key",
    })
}

fn shorten(text: &str) -> String {
    crate::peer_text::peer_text(text, 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_messages() -> Vec<Message> {
        let doc = DocumentId::random();
        vec![
            Message::Join {
                sender_id: "a".into(),
                supported_protocol_versions: vec!["1".into()],
                metadata: PeerMetadata {
                    storage_id: Some("s".into()),
                    is_ephemeral: false,
                    listing: true,
                    compact: COMPACT_VERSION,
                    signing_key: Some([3; 32]),
                    client: Some("partnerplan 0.1.0".into()),
                },
            },
            Message::Peer {
                sender_id: "r".into(),
                target_id: "a".into(),
                selected_protocol_version: "1".into(),
                metadata: PeerMetadata::default(),
            },
            Message::Error {
                sender_id: Some("r".into()),
                target_id: None,
                message: "no".into(),
                document_id: None,
                retry_after_ms: None,
            },
            Message::Error {
                sender_id: Some("r".into()),
                target_id: Some("a".into()),
                message: "not yours".into(),
                document_id: Some(doc),
                retry_after_ms: None,
            },
            Message::Error {
                sender_id: Some("r".into()),
                target_id: Some("a".into()),
                message: "busy".into(),
                document_id: Some(doc),
                retry_after_ms: Some(30_000),
            },
            Message::Request(SyncFrame {
                sender_id: "a".into(),
                target_id: "r".into(),
                document_id: doc,
                data: vec![1, 2, 3],
            }),
            Message::Sync(SyncFrame {
                sender_id: "a".into(),
                target_id: "r".into(),
                document_id: doc,
                data: vec![],
            }),
            Message::DocUnavailable {
                sender_id: "r".into(),
                target_id: "a".into(),
                document_id: doc,
            },
            Message::Compact(CompactFrame {
                document_id: doc,
                request: true,
                data: vec![4, 5],
            }),
            Message::Compact(CompactFrame {
                document_id: doc,
                request: false,
                data: vec![],
            }),
            Message::Ephemeral {
                sender_id: "a".into(),
                target_id: "r".into(),
                document_id: doc,
                session_id: "x".into(),
                count: 7,
                data: vec![9],
            },
            Message::Leave {
                sender_id: "a".into(),
            },
            Message::Listing {
                sender_id: "r".into(),
                target_id: "a".into(),
                partnerships: vec![
                    ListedPartnership {
                        id: "p1".into(),
                        name: "Tenterden Rural Alliance".into(),
                        role: Role::Member,
                        home: true,
                        documents: vec![doc, DocumentId::random()],
                        sizes: vec![1_200_000, 7],
                        shared: vec![doc],
                        schools: vec![
                            ListedSchool {
                                name: "Hilltop Primary".into(),
                                keys: vec![[7; 32], [8; 32]],
                            },
                            ListedSchool {
                                name: "Valley Infants".into(),
                                keys: vec![],
                            },
                        ],
                    },
                    ListedPartnership {
                        id: "p2".into(),
                        name: "Kent Governors".into(),
                        role: Role::Viewer,
                        home: false,
                        documents: vec![],
                        sizes: vec![],
                        shared: vec![],
                        schools: vec![],
                    },
                ],
                more: true,
            },
            Message::Actors {
                sender_id: "r".into(),
                target_id: "a".into(),
                actors: vec![
                    NamedActor {
                        actor: vec![0xab; 16],
                        school: "Hilltop Primary".into(),
                    },
                    NamedActor {
                        actor: b"person".to_vec(),
                        school: "Valley Infants".into(),
                    },
                ],
            },
            Message::Claim {
                sender_id: "a".into(),
                target_id: "r".into(),
                document_id: doc,
                partnership: "p2".into(),
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for message in sample_messages() {
            let bytes = message.encode();
            assert_eq!(
                Message::decode(&bytes, DEFAULT_MAX_FRAME_BYTES).unwrap(),
                message
            );
        }
    }

    /// A map written the way cbor-x writes a JS object with extra fields,
    /// a float count and an undefined value.
    #[test]
    fn reads_javascript_quirks() {
        let doc = DocumentId::random();
        let mut e = Encoder::new(Vec::new());
        e.map(9).unwrap();
        e.str("type").unwrap().str("ephemeral").unwrap();
        e.str("senderId").unwrap().str("js").unwrap();
        e.str("targetId").unwrap().str("relay").unwrap();
        e.str("documentId").unwrap().str(&doc.to_string()).unwrap();
        e.str("sessionId").unwrap().str("s1").unwrap();
        e.str("count").unwrap().f64(3.0).unwrap();
        e.str("data")
            .unwrap()
            .tag(minicbor::data::Tag::new(64))
            .unwrap();
        e.bytes(&[1, 2]).unwrap();
        e.str("somethingNew").unwrap().array(2).unwrap();
        e.u8(1).unwrap().str("x").unwrap();
        e.str("extra").unwrap().undefined().unwrap();
        let message = Message::decode(&e.into_writer(), 1024).unwrap();
        assert_eq!(
            message,
            Message::Ephemeral {
                sender_id: "js".into(),
                target_id: "relay".into(),
                document_id: doc,
                session_id: "s1".into(),
                count: 3,
                data: vec![1, 2],
            }
        );
    }

    #[test]
    fn says_what_is_wrong_with_bad_frames() {
        assert!(matches!(
            Message::decode(&[0xff, 0x00], 1024),
            Err(DecodeError::Cbor(_) | DecodeError::NotAMap)
        ));
        let mut e = Encoder::new(Vec::new());
        e.array(1).unwrap().u8(1).unwrap();
        assert_eq!(
            Message::decode(&e.into_writer(), 1024),
            Err(DecodeError::NotAMap)
        );
        let mut e = Encoder::new(Vec::new());
        e.map(1).unwrap().str("type").unwrap().str("hello").unwrap();
        assert_eq!(
            Message::decode(&e.into_writer(), 1024),
            Err(DecodeError::UnknownType("hello".into()))
        );
        let big = vec![0u8; 2048];
        assert_eq!(
            Message::decode(&big, 1024),
            Err(DecodeError::TooLarge {
                size: 2048,
                limit: 1024
            })
        );
        let mut e = Encoder::new(Vec::new());
        e.map(4).unwrap();
        e.str("type").unwrap().str("sync").unwrap();
        e.str("senderId").unwrap().str("a").unwrap();
        e.str("targetId").unwrap().str("b").unwrap();
        e.str("documentId").unwrap().str("2short").unwrap();
        let error = Message::decode(&e.into_writer(), 1024).unwrap_err();
        assert!(
            error.to_string().contains("documentId") || error.to_string().contains("document id")
        );
    }

    /// What JS peers receive is unchanged unless they ask: no listing
    /// field in `peer`, and a `join` without it reads as not asking.
    #[test]
    fn the_listing_flag_is_written_only_when_set() {
        let plain = PeerMetadata {
            storage_id: Some("s".into()),
            is_ephemeral: false,
            listing: false,
            compact: 0,
            signing_key: None,
            client: None,
        };
        let peer = Message::Peer {
            sender_id: "r".into(),
            target_id: "a".into(),
            selected_protocol_version: "1".into(),
            metadata: plain.clone(),
        };
        let bytes = peer.encode();
        assert!(!bytes.windows(18).any(|w| w == b"partnerplanListing"));
        assert!(!bytes.windows(18).any(|w| w == b"partnerplanCompact"));
        assert!(!bytes.windows(21).any(|w| w == b"partnerplanSigningKey"));
        assert!(!bytes.windows(17).any(|w| w == b"partnerplanClient"));
        let Message::Peer { metadata, .. } = Message::decode(&bytes, 1024).unwrap() else {
            panic!("a peer message");
        };
        assert_eq!(metadata, plain);
    }

    #[test]
    fn a_listing_with_a_role_this_client_does_not_know_reads_as_viewer() {
        let doc = DocumentId::random();
        let mut e = Encoder::new(Vec::new());
        e.map(5).unwrap();
        e.str("type").unwrap().str(LISTING_TYPE).unwrap();
        e.str("senderId").unwrap().str("r").unwrap();
        e.str("targetId").unwrap().str("a").unwrap();
        e.str("partnerships").unwrap().array(1).unwrap();
        e.map(4).unwrap();
        e.str("id").unwrap().str("p").unwrap();
        e.str("role").unwrap().str("auditor").unwrap();
        e.str("documents").unwrap().array(1).unwrap();
        e.str(&doc.to_string()).unwrap();
        e.str("somethingNew").unwrap().u8(1).unwrap();
        e.str("extra").unwrap().undefined().unwrap();
        let message = Message::decode(&e.into_writer(), 1024).unwrap();
        let Message::Listing {
            partnerships, more, ..
        } = message
        else {
            panic!("a listing");
        };
        assert!(!more);
        assert_eq!(partnerships[0].role, Role::Viewer);
        assert_eq!(partnerships[0].name, "p");
        assert_eq!(partnerships[0].documents, vec![doc]);
    }

    /// What a compact frame costs beyond its sync message: the envelope
    /// of a `sync` names both peers and spells the document id out.
    #[test]
    fn a_compact_frame_costs_a_few_dozen_bytes_beyond_its_data() {
        let doc = DocumentId::random();
        let data = vec![7u8; 40];
        let compact = Message::Compact(CompactFrame {
            document_id: doc,
            request: false,
            data: data.clone(),
        })
        .encode();
        let standard = Message::Sync(SyncFrame {
            sender_id: "school-0123456789abcdef".into(),
            target_id: "relay-0123456789abcdef".into(),
            document_id: doc,
            data,
        })
        .encode();
        assert!(compact.len() - 40 <= 40, "{} bytes", compact.len());
        assert!(standard.len() > compact.len() + 60);
    }

    /// Ids are kept while a peer is connected: a long one is refused
    /// before it is copied, whichever field carries it.
    #[test]
    fn ids_longer_than_the_limit_are_refused_with_their_field_named() {
        let long = "x".repeat(MAX_ID_BYTES + 1);
        let doc = DocumentId::random();
        let ephemeral = |sender: &str, session: &str| Message::Ephemeral {
            sender_id: sender.into(),
            target_id: "r".into(),
            document_id: doc,
            session_id: session.into(),
            count: 1,
            data: vec![],
        };
        let join = |sender: &str, storage: &str, versions: Vec<String>| Message::Join {
            sender_id: sender.into(),
            supported_protocol_versions: versions,
            metadata: PeerMetadata {
                storage_id: Some(storage.into()),
                ..PeerMetadata::default()
            },
        };
        let cases = [
            (ephemeral("a", &long), "sessionId"),
            (ephemeral(&long, "s"), "senderId"),
            (join("a", &long, vec!["1".into()]), "storageId"),
            (join(&long, "s", vec!["1".into()]), "senderId"),
            (
                join("a", "s", vec![long.clone()]),
                "supportedProtocolVersions",
            ),
        ];
        for (message, field) in cases {
            let error = Message::decode(&message.encode(), DEFAULT_MAX_FRAME_BYTES).unwrap_err();
            assert_eq!(
                error,
                DecodeError::IdTooLong {
                    field,
                    size: MAX_ID_BYTES + 1,
                    limit: MAX_ID_BYTES
                }
            );
        }
        let many = join("a", "s", vec!["1".into(); MAX_PROTOCOL_VERSIONS + 1]);
        let error = Message::decode(&many.encode(), DEFAULT_MAX_FRAME_BYTES).unwrap_err();
        assert!(error.to_string().contains("more than 16"), "{error}");
        let fits = ephemeral(&"x".repeat(MAX_ID_BYTES), &"y".repeat(MAX_ID_BYTES));
        assert_eq!(
            Message::decode(&fits.encode(), DEFAULT_MAX_FRAME_BYTES).unwrap(),
            fits
        );
    }

    #[test]
    fn truncated_frames_are_errors_not_panics() {
        for message in sample_messages() {
            let bytes = message.encode();
            for cut in 0..bytes.len() {
                let _ = Message::decode(&bytes[..cut], 1024);
            }
        }
    }
}
