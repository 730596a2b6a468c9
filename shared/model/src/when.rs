//! When something happens or is reviewed: a calendar date ("25 April
//! 2017", "2017-04-25", "Tuesday 23 January 2018"), a month ("July 2017",
//! as the seed plan dates its impact column) or a school term ("Autumn
//! 2017", "Spring 1", "Summer 2 2018").
//!
//! Documents store the canonical text (`When::to_string`): ISO for dates,
//! so they sort and other programs read them; words for months and terms.

use std::fmt;
use std::str::FromStr;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

const EXAMPLES: &str = "a date such as 25 April 2017 or 2017-04-25, or a term such as Autumn 2017, Spring 1 or Summer 2 2018";

/// The three terms of the English school year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Season {
    Autumn,
    Spring,
    Summer,
}

impl Season {
    pub fn name(self) -> &'static str {
        match self {
            Season::Autumn => "Autumn",
            Season::Spring => "Spring",
            Season::Summer => "Summer",
        }
    }
}

/// A date, a month or a school term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum When {
    Date {
        year: i32,
        month: u8,
        day: u8,
    },
    Month {
        year: i32,
        month: u8,
    },
    /// `half` is 1 or 2 for a half term; `year` is the calendar year the
    /// term falls in (Autumn 2017 is September to December 2017).
    Term {
        season: Season,
        half: Option<u8>,
        year: Option<i32>,
    },
}

/// What was wrong with a date or term, as a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WhenError(pub String);

impl When {
    /// Reads a date, month or term as a person would write it.
    pub fn parse(input: &str) -> Result<When, WhenError> {
        let cleaned: String = input
            .trim()
            .trim_end_matches(['.', ','])
            .replace(',', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if cleaned.is_empty() {
            return Err(WhenError(format!(
                "a date or term is needed: write {EXAMPLES}."
            )));
        }
        if let Some(when) = parse_numeric(&cleaned, input)? {
            return Ok(when);
        }
        let words: Vec<String> = cleaned.split(' ').map(|w| w.to_lowercase()).collect();
        if let Some(season) = season_of(&words[0]) {
            return parse_term(season, &words[1..], input);
        }
        if matches!(words[0].as_str(), "winter" | "fall" | "autumnal") {
            return Err(WhenError(format!(
                "“{}” is not a school term: use Autumn, Spring or Summer, as in {EXAMPLES}.",
                input.trim()
            )));
        }
        parse_words(&words, input)
    }

    /// The first day this covers, for ordering: a term starts when the
    /// school year's term usually does.
    pub fn starts(&self) -> Option<(i32, u8, u8)> {
        match *self {
            When::Date { year, month, day } => Some((year, month, day)),
            When::Month { year, month } => Some((year, month, 1)),
            When::Term { season, half, year } => {
                let year = year?;
                let (month, day) = match (season, half) {
                    (Season::Autumn, Some(2)) => (11, 1),
                    (Season::Autumn, _) => (9, 1),
                    (Season::Spring, Some(2)) => (2, 20),
                    (Season::Spring, _) => (1, 1),
                    (Season::Summer, Some(2)) => (6, 1),
                    (Season::Summer, _) => (4, 15),
                };
                Some((year, month, day))
            }
        }
    }

    /// The last day this covers: a term ends the day before the next one
    /// starts (as `starts` places them), a month on its last day.
    pub fn ends(&self) -> Option<(i32, u8, u8)> {
        match *self {
            When::Date { year, month, day } => Some((year, month, day)),
            When::Month { year, month } => Some((year, month, days_in_month(year, month))),
            When::Term { season, half, year } => {
                let year = year?;
                let (month, day) = match (season, half) {
                    (Season::Autumn, Some(1)) => (10, 31),
                    (Season::Autumn, _) => (12, 31),
                    (Season::Spring, Some(1)) => (2, 19),
                    (Season::Spring, _) => (4, 14),
                    (Season::Summer, Some(1)) => (5, 31),
                    (Season::Summer, _) => (8, 31),
                };
                Some((year, month, day))
            }
        }
    }

    /// The whole school term this falls in ("Spring 2013" for 14 March
    /// 2013, for March 2013 and for Spring 2 2013); `None` for a term
    /// written without its year.
    pub fn term(&self) -> Option<When> {
        let (season, year) = match *self {
            When::Term { season, year, .. } => (season, year?),
            _ => {
                let (year, month, day) = self.starts()?;
                (term_of_day(month, day), year)
            }
        };
        Some(When::Term {
            season,
            half: None,
            year: Some(year),
        })
    }

    /// How a person reads it: "Tuesday 25 April 2017", "July 2017",
    /// "Spring 1".
    pub fn human(&self) -> String {
        match *self {
            When::Date { year, month, day } => format!(
                "{} {day} {} {year}",
                WEEKDAYS[weekday(year, month, day)],
                MONTHS[month as usize - 1]
            ),
            _ => self.to_string(),
        }
    }
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            When::Date { year, month, day } => write!(f, "{year:04}-{month:02}-{day:02}"),
            When::Month { year, month } => write!(f, "{} {year}", MONTHS[month as usize - 1]),
            When::Term { season, half, year } => {
                write!(f, "{}", season.name())?;
                if let Some(half) = half {
                    write!(f, " {half}")?;
                }
                if let Some(year) = year {
                    write!(f, " {year}")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for When {
    type Err = WhenError;
    fn from_str(s: &str) -> Result<When, WhenError> {
        When::parse(s)
    }
}

/// The term a day of the year falls in, with the boundaries `starts`
/// gives: Spring from January, Summer from 15 April, Autumn from
/// September.
fn term_of_day(month: u8, day: u8) -> Season {
    match (month, day) {
        (1..=3, _) | (4, 1..=14) => Season::Spring,
        (4..=8, _) => Season::Summer,
        _ => Season::Autumn,
    }
}

fn season_of(word: &str) -> Option<Season> {
    match word {
        "autumn" | "aut" => Some(Season::Autumn),
        "spring" | "spr" => Some(Season::Spring),
        "summer" | "sum" => Some(Season::Summer),
        _ => None,
    }
}

fn month_of(word: &str) -> Option<u8> {
    let word = word.trim_end_matches('.');
    if word.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| {
            let m = m.to_lowercase();
            m == word || (word.len() >= 3 && m.starts_with(word) && word.len() <= m.len())
        })
        .map(|i| i as u8 + 1)
}

fn weekday_of(word: &str) -> Option<usize> {
    let word = word.trim_end_matches('.');
    if word.len() < 3 {
        return None;
    }
    WEEKDAYS
        .iter()
        .position(|d| d.to_lowercase().starts_with(word))
}

/// "2017-04-25" and the UK's "25/04/2017".
fn parse_numeric(cleaned: &str, input: &str) -> Result<Option<When>, WhenError> {
    let (parts, iso): (Vec<&str>, bool) = if cleaned.contains('-') && !cleaned.contains(' ') {
        (cleaned.split('-').collect(), true)
    } else if cleaned.contains('/') && !cleaned.contains(' ') {
        (cleaned.split('/').collect(), false)
    } else {
        return Ok(None);
    };
    let numbers: Option<Vec<i64>> = parts.iter().map(|p| p.parse().ok()).collect();
    let bad = || {
        WhenError(format!(
            "“{}” is not a date: write {EXAMPLES}.",
            input.trim()
        ))
    };
    let Some(numbers) = numbers else {
        return Err(bad());
    };
    if numbers.len() != 3 {
        return Err(bad());
    }
    let (year, month, day) = if iso {
        (numbers[0], numbers[1], numbers[2])
    } else {
        (numbers[2], numbers[1], numbers[0])
    };
    date(year, month, day, input).map(Some)
}

fn parse_term(season: Season, rest: &[String], input: &str) -> Result<When, WhenError> {
    let mut half = None;
    let mut year = None;
    for word in rest {
        match word.as_str() {
            "term" | "half" | "half-term" => {}
            "1" | "2" if half.is_none() && year.is_none() => {
                half = Some(word.parse::<u8>().unwrap_or(1))
            }
            w if w.len() == 4 && w.chars().all(|c| c.is_ascii_digit()) && year.is_none() => {
                year = Some(check_year(w.parse().unwrap_or(0), input)?)
            }
            w if w.chars().all(|c| c.is_ascii_digit()) && half.is_none() && year.is_none() => {
                let n: i64 = w.parse().unwrap_or(0);
                if n <= 12 {
                    return Err(WhenError(format!(
                        "“{}”: a term has two halves, so write {} 1 or {} 2.",
                        input.trim(),
                        season.name(),
                        season.name()
                    )));
                }
                return Err(WhenError(format!(
                    "“{}”: {n} is not a year; write the whole year, as in {} 2017.",
                    input.trim(),
                    season.name()
                )));
            }
            _ => {
                return Err(WhenError(format!(
                    "“{}” is not a term: write the term, then the half term (1 or 2) and the year if you know them, as in {} 2017, {} 1 or {} 2 2018.",
                    input.trim(),
                    season.name(),
                    season.name(),
                    season.name()
                )));
            }
        }
    }
    Ok(When::Term { season, half, year })
}

/// "25 April 2017", "25th April 2017", "Tuesday 23 January 2018",
/// "April 25 2017", "July 2017".
fn parse_words(words: &[String], input: &str) -> Result<When, WhenError> {
    let mut said_weekday = None;
    let mut day = None;
    let mut month = None;
    let mut year = None;
    let not_a_date = || {
        WhenError(format!(
            "“{}” is not a date or a term: write {EXAMPLES}.",
            input.trim()
        ))
    };
    for word in words {
        let digits = word.trim_end_matches(['s', 't', 'n', 'd', 'r', 'h']);
        if word == "of" || word == "the" {
            continue;
        } else if let Some(m) = month_of(word).filter(|_| month.is_none()) {
            month = Some(m);
        } else if let Some(d) = weekday_of(word).filter(|_| said_weekday.is_none() && day.is_none())
        {
            said_weekday = Some(d);
        } else if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
            let n: i64 = digits.parse().map_err(|_| not_a_date())?;
            if digits.len() == 4 && year.is_none() {
                year = Some(n);
            } else if day.is_none() && digits.len() <= 2 && digits.len() == word.len()
                || day.is_none() && is_ordinal(word)
            {
                day = Some(n);
            } else {
                return Err(not_a_date());
            }
        } else {
            return Err(not_a_date());
        }
    }
    let Some(month) = month else {
        return Err(not_a_date());
    };
    let month_name = MONTHS[month as usize - 1];
    let Some(year) = year else {
        let example = match day {
            Some(d) => format!("{d} {month_name} 2017"),
            None => format!("{month_name} 2017"),
        };
        return Err(WhenError(format!(
            "“{}” needs a year: write it in full, as in {example}.",
            input.trim()
        )));
    };
    let Some(day) = day else {
        if said_weekday.is_some() {
            return Err(WhenError(format!(
                "“{}” names a weekday but no day of the month: write it as in Tuesday 23 January 2018.",
                input.trim()
            )));
        }
        let year = check_year(year, input)?;
        return Ok(When::Month { year, month });
    };
    let when = date(year, month as i64, day, input)?;
    if let (Some(said), When::Date { year, month, day }) = (said_weekday, when) {
        let actual = weekday(year, month, day);
        if said != actual {
            return Err(WhenError(format!(
                "“{}”: {day} {month_name} {year} is a {}, not a {}. Check the date.",
                input.trim(),
                WEEKDAYS[actual],
                WEEKDAYS[said]
            )));
        }
    }
    Ok(when)
}

fn is_ordinal(word: &str) -> bool {
    ["st", "nd", "rd", "th"].iter().any(|suffix| {
        word.strip_suffix(suffix)
            .is_some_and(|d| !d.is_empty() && d.len() <= 2 && d.chars().all(|c| c.is_ascii_digit()))
    })
}

fn check_year(year: i64, input: &str) -> Result<i32, WhenError> {
    if !(1900..=2200).contains(&year) {
        return Err(WhenError(format!(
            "“{}”: {year} is not a year a school plan would use; write the whole year, such as 2017.",
            input.trim()
        )));
    }
    Ok(year as i32)
}

fn date(year: i64, month: i64, day: i64, input: &str) -> Result<When, WhenError> {
    let year = check_year(year, input)?;
    if !(1..=12).contains(&month) {
        return Err(WhenError(format!(
            "“{}”: there is no month {month}; months run from 1 to 12.",
            input.trim()
        )));
    }
    let month = month as u8;
    let length = days_in_month(year, month);
    if day < 1 || day > length as i64 {
        return Err(WhenError(format!(
            "“{}”: {} {year} has {length} days, so day {day} is not a date.",
            input.trim(),
            MONTHS[month as usize - 1]
        )));
    }
    Ok(When::Date {
        year,
        month,
        day: day as u8,
    })
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let y = if month <= 2 { year - 1 } else { year } as i64;
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// 0 is Monday.
fn weekday(year: i32, month: u8, day: u8) -> usize {
    // 1970-01-01 was a Thursday.
    (days_from_civil(year, month, day) + 3).rem_euclid(7) as usize
}

/// Seconds since 1970 at the start (00:00 UTC) of a day.
pub fn unix_from_date(year: i32, month: u8, day: u8) -> i64 {
    days_from_civil(year, month, day) * 86_400
}

/// Today's date from seconds since 1970, for signatures given today.
pub fn date_from_unix(seconds: i64) -> When {
    let days = seconds.div_euclid(86_400);
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + if month <= 2 { 1 } else { 0 }) as i32;
    When::Date { year, month, day }
}

/// "2026-11-22 14:05 UTC" from seconds since 1970: the one conversion
/// from a clock to a civil date and time, for history and `status`.
pub fn format_utc(seconds: i64) -> String {
    let minutes = seconds.rem_euclid(86_400) / 60;
    format!(
        "{} {:02}:{:02} UTC",
        date_from_unix(seconds),
        minutes / 60,
        minutes % 60
    )
}

/// When a change was made, for history: `format_utc`, or a note where
/// the editing school's clock recorded no time.
pub fn format_time(seconds: i64) -> String {
    if seconds <= 0 {
        return "(no time recorded)".into();
    }
    format_utc(seconds)
}

/// A stored date or term as a person reads it ("Tuesday 11 July 2017"),
/// or the stored text itself where it is not one.
pub fn when_text(s: &str) -> String {
    When::parse(s)
        .map(|w| w.human())
        .unwrap_or_else(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        When::parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .to_string()
    }

    fn err(s: &str) -> String {
        When::parse(s).expect_err(s).to_string()
    }

    #[test]
    fn dates_in_the_ways_schools_write_them() {
        assert_eq!(ok("2017-04-25"), "2017-04-25");
        assert_eq!(ok("25 April 2017"), "2017-04-25");
        assert_eq!(ok("25th April 2017"), "2017-04-25");
        assert_eq!(ok("11TH July 2017"), "2017-07-11");
        assert_eq!(ok("Tuesday 23 January 2018"), "2018-01-23");
        assert_eq!(ok("5 Dec 2017"), "2017-12-05");
        assert_eq!(ok("25/04/2017"), "2017-04-25");
        assert_eq!(ok("April 25, 2017"), "2017-04-25");
        assert_eq!(ok("29 February 2020"), "2020-02-29");
        assert_eq!(
            When::parse("2017-04-25").unwrap().human(),
            "Tuesday 25 April 2017"
        );
    }

    #[test]
    fn months_and_terms() {
        assert_eq!(ok("July 2017"), "July 2017");
        assert_eq!(ok("november 2017"), "November 2017");
        assert_eq!(ok("Autumn 2017"), "Autumn 2017");
        assert_eq!(ok("autumn term 2017"), "Autumn 2017");
        assert_eq!(ok("Spring 1"), "Spring 1");
        assert_eq!(ok("Summer 2 2018"), "Summer 2 2018");
        assert_eq!(ok("Spring"), "Spring");
        for s in [
            "Autumn 2017",
            "Spring 1",
            "Summer 2 2018",
            "July 2017",
            "2017-04-25",
        ] {
            assert_eq!(ok(&ok(s)), ok(s), "canonical text reads back");
        }
    }

    #[test]
    fn terms_of_dates_months_and_half_terms() {
        let term = |s: &str| When::parse(s).unwrap().term().map(|t| t.to_string());
        assert_eq!(term("14 March 2013").as_deref(), Some("Spring 2013"));
        assert_eq!(term("31 March 2013").as_deref(), Some("Spring 2013"));
        assert_eq!(term("15 April 2013").as_deref(), Some("Summer 2013"));
        assert_eq!(term("August 2013").as_deref(), Some("Summer 2013"));
        assert_eq!(term("2013-09-01").as_deref(), Some("Autumn 2013"));
        assert_eq!(term("Spring 2 2013").as_deref(), Some("Spring 2013"));
        assert_eq!(term("Spring 1"), None, "no year: no term to compare");
        let ends = |s: &str| When::parse(s).unwrap().ends();
        assert_eq!(ends("Autumn 2017"), Some((2017, 12, 31)));
        assert_eq!(ends("Autumn 1 2017"), Some((2017, 10, 31)));
        assert_eq!(ends("Spring 2018"), Some((2018, 4, 14)));
        assert_eq!(ends("February 2020"), Some((2020, 2, 29)));
        assert_eq!(ends("2017-07-11"), Some((2017, 7, 11)));
        assert_eq!(ends("Summer"), None);
        // Each term ends the day before the next begins.
        for (this, next) in [
            ("Autumn 1 2017", "Autumn 2 2017"),
            ("Spring 1 2018", "Spring 2 2018"),
            ("Spring 2018", "Summer 2018"),
            ("Summer 1 2018", "Summer 2 2018"),
        ] {
            let (y, m, d) = ends(this).unwrap();
            let (ny, nm, nd) = When::parse(next).unwrap().starts().unwrap();
            assert_eq!(
                days_from_civil(y, m, d) + 1,
                days_from_civil(ny, nm, nd),
                "{this} then {next}"
            );
        }
    }

    #[test]
    fn bad_ones_say_what_was_wrong() {
        assert!(err("31 February 2018").contains("February 2018 has 28 days"));
        assert!(err("2018-13-01").contains("no month 13"));
        assert!(
            err("Spring 3").contains("two halves"),
            "{}",
            err("Spring 3")
        );
        assert!(err("Winter 2017").contains("not a school term"));
        assert!(err("4 December").contains("needs a year"));
        assert!(err("Monday 23 January 2018").contains("is a Tuesday, not a Monday"));
        assert!(err("next week").contains("not a date or a term"));
        assert!(err("").contains("a date or term is needed"));
        assert!(err("Autumn 17").contains("not a year"));
        assert!(
            err("25 April 17").contains("needs a year") || err("25 April 17").contains("not a")
        );
    }

    #[test]
    fn unix_days_round_trip() {
        assert_eq!(
            date_from_unix(days_from_civil(2017, 7, 11) * 86_400 + 3600),
            When::Date {
                year: 2017,
                month: 7,
                day: 11
            }
        );
        assert_eq!(weekday(2018, 1, 23), 1);
    }

    #[test]
    fn clock_times_as_civil_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(1_795_365_900), "2026-11-22 16:45 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_utc(-1), "1969-12-31 23:59 UTC");
        assert_eq!(format_time(0), "(no time recorded)");
        assert_eq!(format_time(1_499_780_123), "2017-07-11 13:35 UTC");
        assert_eq!(when_text("2017-07-11"), "Tuesday 11 July 2017");
        assert_eq!(when_text("Spring 1"), "Spring 1");
        assert_eq!(when_text("next week"), "next week");
    }
}
