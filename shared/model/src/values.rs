//! The closed sets of values the documents use: an action's status, a
//! school's phase, the kind of partnership, who signs a review. Each reads
//! what people write ("Amber", "head teacher", "MAT") and says what to
//! write instead when it cannot.

use std::fmt;

/// One closed set of choices: canonical names (as stored) with the other
/// ways people write them.
#[derive(Debug)]
pub struct Choices {
    /// What the set is called in an error: "status".
    pub what: &'static str,
    /// (stored name, other spellings)
    pub options: &'static [(&'static str, &'static [&'static str])],
}

impl Choices {
    /// The stored name for what a person wrote.
    pub fn parse(&self, input: &str) -> Result<&'static str, String> {
        let wanted = normalise(input);
        for (name, aliases) in self.options {
            if normalise(name) == wanted || aliases.iter().any(|a| normalise(a) == wanted) {
                return Ok(name);
            }
        }
        Err(format!(
            "“{}” is not a {}: use {}",
            input.trim(),
            self.what,
            self.list()
        ))
    }

    /// "red, amber, green or done".
    pub fn list(&self) -> String {
        let names: Vec<&str> = self.options.iter().map(|(n, _)| *n).collect();
        match names.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, init)) => format!("{} or {last}", init.join(", ")),
            None => String::new(),
        }
    }
}

fn normalise(s: &str) -> String {
    s.trim()
        .to_lowercase()
        .replace(['-', '_'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

pub static STATUS: Choices = Choices {
    what: "status",
    options: &[
        ("red", &["r"]),
        ("amber", &["a", "orange", "yellow"]),
        ("green", &["g"]),
        ("done", &["complete", "completed", "finished"]),
    ],
};

pub static PHASE: Choices = Choices {
    what: "school phase",
    options: &[
        ("nursery", &[]),
        ("infant", &["infants", "infant and nursery"]),
        ("junior", &["juniors"]),
        ("primary", &[]),
        ("secondary", &["high", "grammar"]),
        ("special", &["send"]),
    ],
};

pub static PARTNERSHIP_KIND: Choices = Choices {
    what: "kind of partnership",
    options: &[
        (
            "collaborative",
            &["collaboration", "collaborative partnership"],
        ),
        ("cluster", &[]),
        ("alliance", &[]),
        ("hub", &[]),
        ("soft federation", &["federation"]),
        ("hard federation", &[]),
        ("teaching school alliance", &["tsa"]),
        ("umbrella trust", &[]),
        ("multi-academy trust", &["mat", "multi academy trust"]),
    ],
};

pub static SIGNATORY_ROLE: Choices = Choices {
    what: "role for a signature",
    options: &[
        (
            "headteacher",
            &["head teacher", "head", "ht", "executive headteacher"],
        ),
        (
            "chair of governors",
            &[
                "chair",
                "chair of governing board",
                "chair of the governing board",
                "chair of gb",
                "chair of the governors",
            ],
        ),
    ],
};

pub static KEY_STAGE: Choices = Choices {
    what: "key stage",
    options: &[
        ("EYFS", &["early years", "foundation stage"]),
        ("KS1", &["key stage 1", "ks 1"]),
        ("KS2", &["key stage 2", "ks 2"]),
        ("KS3", &["key stage 3"]),
        ("KS4", &["key stage 4"]),
    ],
};

pub static IN_PARTNERSHIP: Choices = Choices {
    what: "answer to “in a partnership?”",
    options: &[
        ("in", &["yes", "y", "true", "in a partnership"]),
        (
            "not in",
            &["no", "n", "false", "out", "not in a partnership"],
        ),
        ("all", &["both", "all schools"]),
    ],
};

/// An action's status: the usual red / amber / green, plus done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Red,
    Amber,
    Green,
    Done,
}

impl Status {
    pub fn parse(input: &str) -> Result<Status, String> {
        Ok(match STATUS.parse(input)? {
            "red" => Status::Red,
            "amber" => Status::Amber,
            "green" => Status::Green,
            _ => Status::Done,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Red => "red",
            Status::Amber => "amber",
            Status::Green => "green",
            Status::Done => "done",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_read_what_people_write() {
        assert_eq!(STATUS.parse(" Amber ").unwrap(), "amber");
        assert_eq!(STATUS.parse("completed").unwrap(), "done");
        assert_eq!(SIGNATORY_ROLE.parse("Head Teacher").unwrap(), "headteacher");
        assert_eq!(
            SIGNATORY_ROLE.parse("Chair of Governing Board").unwrap(),
            "chair of governors"
        );
        assert_eq!(
            PARTNERSHIP_KIND.parse("MAT").unwrap(),
            "multi-academy trust"
        );
        assert_eq!(
            STATUS.parse("blue").unwrap_err(),
            "“blue” is not a status: use red, amber, green or done"
        );
        assert_eq!(Status::parse("g").unwrap(), Status::Green);
    }
}
