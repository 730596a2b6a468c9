//! Text cut and cased for people: ids as their first characters, long
//! values as their first line, amounts of money as pounds. The one place
//! these rules live, so the terminal, the exports, the diffs, the pages
//! and the error sentences all agree.

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

/// "£2,978,326": whole pounds, as the local authority's papers write them.
pub fn pounds(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if amount < 0 { "-" } else { "" };
    format!("{sign}£{grouped}")
}

/// Whole pounds from what a person writes: "£51,000", "51000", "51,000.00"
/// or "£51k". `Err` says what to write instead.
pub fn parse_pounds(input: &str) -> Result<i64, String> {
    let trimmed = input.trim();
    let cleaned: String = trimmed
        .trim_start_matches('£')
        .trim()
        .chars()
        .filter(|c| *c != ',' && !c.is_whitespace())
        .collect();
    let lower = cleaned.to_lowercase();
    let (number, scale) = match lower.strip_suffix('k') {
        Some(n) => (n, 1_000.0),
        None => (lower.as_str(), 1.0),
    };
    let bad =
        || format!("“{trimmed}” is not an amount of money; write it in pounds, such as £51,000");
    let value: f64 = number.parse().map_err(|_| bad())?;
    if !value.is_finite() || value < 0.0 {
        return Err(bad());
    }
    let pounds = value * scale;
    if pounds.fract() != 0.0 {
        return Err(format!(
            "“{trimmed}” has pence; amounts here are whole pounds, so write £{}",
            pounds.round() as i64
        ));
    }
    if pounds > 1e12 {
        return Err(bad());
    }
    Ok(pounds as i64)
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

    #[test]
    fn pounds_as_the_papers_write_them() {
        assert_eq!(pounds(2_978_326), "£2,978,326");
        assert_eq!(pounds(0), "£0");
        assert_eq!(pounds(999), "£999");
        assert_eq!(pounds(1000), "£1,000");
        for (given, expected) in [
            ("£2,978,326", 2_978_326),
            ("51000", 51_000),
            (" £51,000.00 ", 51_000),
            ("£51k", 51_000),
            ("£ 12 500", 12_500),
        ] {
            assert_eq!(parse_pounds(given), Ok(expected), "{given}");
        }
        assert!(
            parse_pounds("fifty")
                .unwrap_err()
                .contains("write it in pounds")
        );
        assert!(parse_pounds("£10.50").unwrap_err().contains("whole pounds"));
        assert!(parse_pounds("-5").is_err());
    }
}
