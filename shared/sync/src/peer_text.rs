//! Text a peer supplied (ids, messages), cut to a length fit for an error
//! or a log line, on one line, so a hostile peer cannot make our logs and
//! errors arbitrarily long or break them across lines.

pub fn peer_text(text: &str, max: usize) -> String {
    let mut short: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > max {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_or_multi_line_text_is_cut_to_one_short_line() {
        assert_eq!(peer_text("abc", 5), "abc");
        assert_eq!(peer_text("abcdef", 3), "abc…");
        assert_eq!(peer_text("a\nb", 5), "a b");
        assert_eq!(peer_text("ééé", 2), "éé…");
    }
}
