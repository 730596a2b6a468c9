//! Text cut and cased for people: ids as their first characters, long
//! values as their first line. The one place these rules live, so the
//! terminal, the exports, the diffs and the error sentences all agree.

/// The first eight characters of an id or a version, as people see them.
/// Cut on a character boundary: ids come from partners and may be any
/// text.
pub fn short(id: &str) -> &str {
    match id.char_indices().nth(8) {
        Some((end, _)) => &id[..end],
        None => id,
    }
}

/// The first line of `text`, at most `max` characters, ending in "…"
/// where anything was left out (the rest of the line, or more lines).
pub fn shorten(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() <= max && !text.trim().contains('\n') {
        line.to_string()
    } else {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{}…", cut.trim_end())
    }
}

/// "Headteacher" from "headteacher", for print.
pub fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_values_are_cut_on_character_boundaries() {
        assert_eq!(short("7410decd-aaaa"), "7410decd");
        assert_eq!(short("ééééééééé"), "éééééééé");
        assert_eq!(short("abc"), "abc");
        assert_eq!(shorten("one line", 20), "one line");
        assert_eq!(shorten("first\nsecond", 20), "first…");
        assert_eq!(shorten("a longer line of words", 10), "a longer…");
        assert_eq!(capitalise("chair of governors"), "Chair of governors");
    }
}
