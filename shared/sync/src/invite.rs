//! The invite line a lead school gives each school: everything the school
//! needs, in one line it can paste (or scan as a QR code):
//!
//! `wss://relay.example/?partnership=ID&school=Bank%20Road&token=pp_…`
//!
//! the relay's address, the partnership its new documents belong to, the
//! school's own name on the relay, and its secret token, last. It is also
//! a URL the JavaScript automerge-repo client connects to as it is (the
//! relay ignores `school`). The relay writes it ([`line`]) and the client
//! reads it ([`parse`]), here, once.

/// An invite, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The address to connect to, with every parameter but the token and
    /// the school's name (so it still names the partnership).
    pub relay_url: String,
    pub token: String,
    /// The school's name as the relay knows it, when the invite says.
    pub school: Option<String>,
}

/// Writes an invite line. `partnership` is `None` for a school whose
/// token was renewed while it is in no partnership.
pub fn line(relay_url: &str, partnership: Option<&str>, school: &str, token: &str) -> String {
    let base = relay_url.trim_end_matches('/');
    let partnership = partnership
        .map(|p| format!("partnership={}&", percent_encode(p)))
        .unwrap_or_default();
    format!(
        "{base}/?{partnership}school={}&token={token}",
        percent_encode(school)
    )
}

/// Reads an invite line; `Err` says what is wrong with it, as a sentence
/// to finish "The invite is not right: ".
pub fn parse(invite: &str) -> Result<Invite, String> {
    let invite = invite.trim();
    if !(invite.starts_with("ws://") || invite.starts_with("wss://")) {
        return Err(
            "it should start with ws:// or wss://; copy the whole line your lead school gave you"
                .into(),
        );
    }
    let (base, query) = invite.split_once('?').unwrap_or((invite, ""));
    let mut token = None;
    let mut school = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        if let Some(value) = pair.strip_prefix("token=") {
            token = Some(value.to_string());
        } else if let Some(value) = pair.strip_prefix("school=") {
            school = percent_decode(value).filter(|s| !s.trim().is_empty());
        } else {
            kept.push(pair);
        }
    }
    let token = token.filter(|t| !t.is_empty()).ok_or_else(|| {
        "it has no token: it should end in &token=pp_…; copy the whole line your lead school gave you"
            .to_string()
    })?;
    let relay_url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(Invite {
        relay_url,
        token,
        school,
    })
}

/// `Bank Road & Co` as `Bank%20Road%20%26%20Co`: everything but
/// unreserved characters escaped.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The reverse of [`percent_encode`] (and `+` as a space, as forms send
/// it); `None` for a broken escape or text that is not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invite_carries_the_relay_the_partnership_the_school_and_the_token() {
        let written = line(
            "wss://relay.example/",
            Some("abc"),
            "St Mary's & St John's C of E",
            "pp_123",
        );
        assert_eq!(
            written,
            "wss://relay.example/?partnership=abc&school=St%20Mary%27s%20%26%20St%20John%27s%20C%20of%20E&token=pp_123"
        );
        let read = parse(&written).unwrap();
        assert_eq!(read.relay_url, "wss://relay.example/?partnership=abc");
        assert_eq!(read.token, "pp_123");
        assert_eq!(read.school.as_deref(), Some("St Mary's & St John's C of E"));
        // Older invites, without the school's name, still read.
        let old = parse("ws://relay/?partnership=abc&token=pp_9").unwrap();
        assert_eq!(old.relay_url, "ws://relay/?partnership=abc");
        assert_eq!(old.school, None);
        assert!(parse("ws://relay/?partnership=abc").is_err());
        assert!(parse("relay/?token=x").is_err());
        let none = line("ws://relay", None, "Hilltop", "pp_1");
        assert_eq!(parse(&none).unwrap().relay_url, "ws://relay/");
    }

    #[test]
    fn percent_escapes_round_trip() {
        for text in ["plain", "two words", "ünïcode – dash", "a&b=c%d+e"] {
            assert_eq!(percent_decode(&percent_encode(text)).as_deref(), Some(text));
        }
        assert_eq!(percent_decode("a+b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%e2%82"), None);
    }
}
