//! The school's partnerplan client: its own copy of every shared document
//! in a SQLite file, edits that never wait for the network, and a
//! background sync through the partnership's relay.

pub mod app;
pub mod cli;
pub mod comments;
pub mod demo;
pub mod documents;
pub mod error;
pub mod plan;
pub mod school;
pub mod signatures;
pub mod status;
pub mod sync;
pub mod tls;

pub use error::ClientError;
pub use school::School;
