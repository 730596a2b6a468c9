//! What the fuzz targets share: a relay's database with one partnership,
//! a member school and a viewer school, and the input format of the
//! `relay_core` target (so the corpus generator writes what it reads).

use std::sync::Arc;

use partnerplan_relay::directory::{Directory, hash_token};
use partnerplan_relay::{DATABASE_FILE, RelayConfig};
use partnerplan_sync::Store;
use partnerplan_sync::access::{Grant, Register, Role};

/// The peer id the member's connection joins as (its `join` is sent for
/// it, so most inputs reach an open connection).
pub const MEMBER_PEER: &str = "fuzz-member";

/// A relay's data: its store, its config, and the grants its two schools'
/// connections open with.
pub struct Relay {
    pub store: Store,
    pub config: RelayConfig,
    pub member: Grant,
    pub viewer: Grant,
    pub register: Arc<Register>,
    _dir: tempfile::TempDir,
}

impl Relay {
    pub fn new() -> Relay {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut directory = Directory::open(dir.path()).expect("the register opens");
        let partnership = directory.create_partnership("Fuzz").unwrap();
        let mut token = |name: &str, role: Role| {
            directory
                .add_school(&partnership.id, name, role, "ws://127.0.0.1:1")
                .unwrap()
                .0
                .expect("a new school gets a token")
                .token
        };
        let member_token = token("Member School", Role::Member);
        let viewer_token = token("Viewer School", Role::Viewer);
        let register = Arc::new(directory.register().unwrap());
        drop(directory);
        let grant = |token: &str| {
            register
                .authenticate(&hash_token(token), Some(&partnership.id))
                .expect("the token is good")
        };
        Relay {
            store: Store::open(dir.path().join(DATABASE_FILE)).expect("the store opens"),
            config: RelayConfig::new("127.0.0.1:0".parse().unwrap(), dir.path()),
            member: grant(&member_token),
            viewer: grant(&viewer_token),
            register,
            _dir: dir,
        }
    }
}

impl Default for Relay {
    fn default() -> Self {
        Relay::new()
    }
}

/// One step of a `relay_core` input.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<'a> {
    /// A frame arrives on the member's (conn 1) or the viewer's (conn 2)
    /// connection.
    Frame { viewer: bool, bytes: &'a [u8] },
    /// A minute passes (idle documents leave memory).
    Tick,
    /// The viewer's connection drops and opens again.
    Reconnect,
}

/// Reads an input: records of a tag byte, then for a frame a two-byte
/// little-endian length and that many bytes (fewer at the end).
pub fn steps(mut data: &[u8]) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    while let Some((&tag, rest)) = data.split_first() {
        data = rest;
        match tag % 4 {
            0 | 1 => {
                let len = match data {
                    [a, b, ..] => u16::from_le_bytes([*a, *b]) as usize,
                    _ => break,
                };
                let bytes = &data[2..(2 + len).min(data.len())];
                data = &data[2 + bytes.len()..];
                out.push(Step::Frame {
                    viewer: tag % 4 == 1,
                    bytes,
                });
            }
            2 => out.push(Step::Tick),
            _ => out.push(Step::Reconnect),
        }
    }
    out
}

/// Writes steps in the format [`steps`] reads.
pub fn write(steps: &[Step<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::Frame { viewer, bytes } => {
                out.push(u8::from(*viewer));
                out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
                out.extend_from_slice(bytes);
            }
            Step::Tick => out.push(2),
            Step::Reconnect => out.push(3),
        }
    }
    out
}
