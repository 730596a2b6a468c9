//! The local authority's reading across the partnerships it views, as
//! the seed papers have it: every partnership at a glance; the county
//! table of what each partnership's progress report says (`001`);
//! outcomes of schools in and not in a partnership, pupils-weighted
//! (`002`); and the funding each partnership has, with the total (`003`).
//!
//! Pure: the caller passes the documents each partnership holds, as the
//! relay listed them (never as documents say they belong), and today's
//! date. Everything here reads; nothing writes.

use std::collections::{BTreeMap, HashSet};

use crate::render::{csv_field, md_escape};
use crate::schema::Kind;
use crate::text::pounds;
use crate::values::{KEY_STAGE, Status};
use crate::view::{DocView, RowView};
use crate::when::When;

/// One partnership the school can see: its name on the relay, and the
/// documents the relay listed for it that this computer holds.
pub struct Partnership<'a> {
    pub name: String,
    pub documents: Vec<&'a DocView>,
}

fn text<'v>(view: &'v DocView, key: &str) -> &'v str {
    view.field(key).map(|f| f.text.trim()).unwrap_or("")
}

fn row_text<'v>(row: &'v RowView, key: &str) -> &'v str {
    row.field(key).map(|f| f.text.trim()).unwrap_or("")
}

/// A field's stored value, for choices and dates (whose text is for
/// people: "Tuesday 11 July 2017").
fn row_value(row: &RowView, key: &str) -> String {
    match row.field(key).map(|f| &f.value) {
        Some(serde_json::Value::String(s)) => s.trim().to_string(),
        _ => String::new(),
    }
}

fn doc_value(view: &DocView, key: &str) -> String {
    match view.field(key).map(|f| &f.value) {
        Some(serde_json::Value::String(s)) => s.trim().to_string(),
        _ => String::new(),
    }
}

fn starts(when: &When) -> (i32, u8, u8) {
    when.starts().unwrap_or((i32::MIN, 1, 1))
}

impl<'a> Partnership<'a> {
    fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &'a DocView> + '_ {
        self.documents
            .iter()
            .copied()
            .filter(move |d| d.kind == kind)
    }

    /// Its partnership document: the one titled as the relay names the
    /// partnership, or else the first.
    pub fn partnership_document(&self) -> Option<&'a DocView> {
        self.of_kind(Kind::Partnership)
            .find(|d| d.title.trim().eq_ignore_ascii_case(self.name.trim()))
            .or_else(|| self.of_kind(Kind::Partnership).next())
    }

    /// Its current action plan: the one whose period ("2017-2018") comes
    /// last, then by title.
    pub fn plan(&self) -> Option<&'a DocView> {
        self.of_kind(Kind::ActionPlan).max_by(|a, b| {
            text(a, "period")
                .cmp(text(b, "period"))
                .then_with(|| a.title.cmp(&b.title))
        })
    }

    /// Its progress reports with the period each is for, newest first
    /// (reports whose period is not a date or term come last).
    pub fn reports(&self) -> Vec<(&'a DocView, Option<When>)> {
        let mut reports: Vec<(&'a DocView, Option<When>)> = self
            .of_kind(Kind::ProgressReport)
            .map(|d| (d, When::parse(&doc_value(d, "period")).ok()))
            .collect();
        reports.sort_by(|(a, wa), (b, wb)| {
            let key = |w: &Option<When>| w.as_ref().map(starts);
            key(wb).cmp(&key(wa)).then_with(|| a.title.cmp(&b.title))
        });
        reports
    }

    /// The report for `term` (whole term, as `When::term` gives), or the
    /// latest report when no term is given.
    pub fn report(&self, term: Option<&When>) -> Option<(&'a DocView, Option<When>)> {
        let reports = self.reports();
        match term {
            None => reports.into_iter().next(),
            Some(term) => reports
                .into_iter()
                .find(|(_, w)| w.and_then(|w| w.term()).as_ref() == Some(term)),
        }
    }

    /// The name people know it by: its partnership document's title, or
    /// the relay's name for it.
    pub fn display_name(&self) -> String {
        self.partnership_document()
            .map(|d| d.title.trim().to_string())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| self.name.clone())
    }
}

/// Actions of a plan by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActionCounts {
    pub red: usize,
    pub amber: usize,
    pub green: usize,
    pub done: usize,
    /// No status given yet.
    pub none: usize,
}

impl ActionCounts {
    pub fn of(&self, status: Option<Status>) -> usize {
        match status {
            Some(Status::Red) => self.red,
            Some(Status::Amber) => self.amber,
            Some(Status::Green) => self.green,
            Some(Status::Done) => self.done,
            None => self.none,
        }
    }

    pub fn total(&self) -> usize {
        self.red + self.amber + self.green + self.done + self.none
    }

    fn add(&mut self, status: Option<Status>) {
        match status {
            Some(Status::Red) => self.red += 1,
            Some(Status::Amber) => self.amber += 1,
            Some(Status::Green) => self.green += 1,
            Some(Status::Done) => self.done += 1,
            None => self.none += 1,
        }
    }
}

/// One partnership at a glance: the overview's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub name: String,
    pub district: String,
    pub leads: String,
    pub budget_holder: String,
    pub schools: Vec<String>,
    pub funding: Option<i64>,
    pub has_plan: bool,
    pub actions: ActionCounts,
    /// Actions not done whose review date has passed.
    pub overdue: usize,
    /// The date of the latest review of the plan that has a signature.
    pub last_signed: Option<When>,
    /// The period of the latest progress report.
    pub latest_report: Option<When>,
    /// Whether a progress report for the term asked about is in.
    pub report_in: bool,
}

/// `today` is a date; `term` the whole term whose report is asked for.
pub fn summarise(p: &Partnership<'_>, today: &When, term: &When) -> Summary {
    let today = starts(today);
    let doc = p.partnership_document();
    let field = |key: &str| doc.map(|d| text(d, key).to_string()).unwrap_or_default();
    let schools = doc
        .map(|d| {
            d.live("schools")
                .iter()
                .map(|r| row_text(r, "name").to_string())
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let funding = doc
        .and_then(|d| d.field("funding"))
        .filter(|f| f.conflict.is_empty())
        .and_then(|f| f.value.as_i64());
    let plan = p.plan();
    let mut actions = ActionCounts::default();
    let mut overdue = 0;
    if let Some(plan) = plan {
        for area in plan.live("areas") {
            for action in area.live("actions") {
                let status = Status::parse(&row_value(action, "status")).ok();
                actions.add(status);
                let ends = When::parse(&row_value(action, "reviewDate"))
                    .ok()
                    .and_then(|w| w.ends());
                if status != Some(Status::Done) && ends.is_some_and(|end| end < today) {
                    overdue += 1;
                }
            }
        }
    }
    let last_signed = plan.and_then(|plan| {
        plan.reviews
            .iter()
            .filter(|r| !r.signatures.is_empty())
            .filter_map(|r| When::parse(&r.date).ok())
            .max_by_key(starts)
    });
    Summary {
        name: p.display_name(),
        district: field("district"),
        leads: field("leadSchools"),
        budget_holder: field("budgetHolder"),
        schools,
        funding,
        has_plan: plan.is_some(),
        actions,
        overdue,
        last_signed,
        latest_report: p.report(None).and_then(|(_, w)| w),
        report_in: p.report(Some(term)).is_some(),
    }
}

/// How the overview is sorted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    #[default]
    Name,
    District,
    /// Most red actions first.
    Red,
    /// Most overdue actions first.
    Overdue,
    /// Missing reports first.
    Report,
}

impl Sort {
    pub const ALL: [(Sort, &'static str, &'static str); 5] = [
        (Sort::Name, "name", "Name"),
        (Sort::District, "district", "District"),
        (Sort::Red, "red", "Most red actions"),
        (Sort::Overdue, "overdue", "Most actions overdue"),
        (Sort::Report, "report", "This term's report missing first"),
    ];

    pub fn parse(key: &str) -> Sort {
        Sort::ALL
            .iter()
            .find(|(_, k, _)| *k == key)
            .map(|(s, _, _)| *s)
            .unwrap_or_default()
    }

    pub fn key(self) -> &'static str {
        Sort::ALL
            .iter()
            .find(|(s, _, _)| *s == self)
            .map(|(_, k, _)| *k)
            .unwrap_or("name")
    }
}

/// What the overview shows: all by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this district.
    pub district: Option<String>,
    /// Only partnerships with at least one action of this status
    /// (`Some(None)`: an action with no status yet).
    pub status: Option<Option<Status>>,
    /// Only partnerships whose report for the term is missing.
    pub missing: bool,
    pub sort: Sort,
}

/// The summaries the filter keeps, in its order.
pub fn overview(mut summaries: Vec<Summary>, filter: &Filter) -> Vec<Summary> {
    summaries.retain(|s| {
        filter
            .district
            .as_ref()
            .is_none_or(|d| s.district.eq_ignore_ascii_case(d))
            && filter.status.is_none_or(|status| s.actions.of(status) > 0)
            && (!filter.missing || !s.report_in)
    });
    let by_name = |a: &Summary, b: &Summary| a.name.to_lowercase().cmp(&b.name.to_lowercase());
    summaries.sort_by(|a, b| match filter.sort {
        Sort::Name => by_name(a, b),
        Sort::District => district_order(&a.district, &b.district).then_with(|| by_name(a, b)),
        Sort::Red => b
            .actions
            .red
            .cmp(&a.actions.red)
            .then_with(|| by_name(a, b)),
        Sort::Overdue => b.overdue.cmp(&a.overdue).then_with(|| by_name(a, b)),
        Sort::Report => a.report_in.cmp(&b.report_in).then_with(|| by_name(a, b)),
    });
    summaries
}

/// By district, those with none given last.
fn district_order(a: &str, b: &str) -> std::cmp::Ordering {
    (a.is_empty(), a.to_lowercase()).cmp(&(b.is_empty(), b.to_lowercase()))
}

/// The districts among the summaries, for the filter's choices.
pub fn districts(summaries: &[Summary]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for s in summaries {
        if !s.district.is_empty() && !seen.iter().any(|d| d.eq_ignore_ascii_case(&s.district)) {
            seen.push(s.district.clone());
        }
    }
    seen.sort_by_key(|d| d.to_lowercase());
    seen
}

// ---------------------------------------------------------------------
// The county table (seed 001)

/// The five questions a progress report answers (seed 003, 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    Activity,
    Progress,
    Strengths,
    Development,
    Comments,
}

impl Question {
    pub const ALL: [Question; 5] = [
        Question::Development,
        Question::Strengths,
        Question::Progress,
        Question::Activity,
        Question::Comments,
    ];

    /// The progress report's field that answers it.
    pub fn key(self) -> &'static str {
        match self {
            Question::Activity => "activity",
            Question::Progress => "progress",
            Question::Strengths => "strengths",
            Question::Development => "development",
            Question::Comments => "comments",
        }
    }

    /// The column's heading, as the county table words it.
    pub fn heading(self) -> &'static str {
        match self {
            Question::Activity => "Activity undertaken to date",
            Question::Progress => "Progress against priorities",
            Question::Strengths => "Strengths so far as a collaborative",
            Question::Development => "Areas for further development as a collaborative",
            Question::Comments => "Additional comments",
        }
    }

    pub fn parse(key: &str) -> Question {
        Question::ALL
            .into_iter()
            .find(|q| q.key() == key)
            .unwrap_or(Question::Development)
    }
}

/// One line of the county table.
#[derive(Debug, Clone, PartialEq)]
pub struct CountyRow {
    pub district: String,
    pub collaborative: String,
    pub leads: String,
    /// The period of the report the answer comes from; `None`: no report.
    pub period: Option<When>,
    pub answer: Option<String>,
}

/// The county table: for each partnership, the answer its report for
/// `term` (or its latest report) gives to `question`, by district and
/// then by name, as the county's own table is laid out. The report names
/// its collaborative and lead school as it was submitted; where it does
/// not, the partnership document does.
pub fn county_rows(
    partnerships: &[Partnership<'_>],
    question: Question,
    term: Option<&When>,
) -> Vec<CountyRow> {
    let mut rows: Vec<CountyRow> = partnerships
        .iter()
        .map(|p| {
            let doc = p.partnership_document();
            let report = p.report(term);
            let from_report = |key: &str| {
                report
                    .map(|(r, _)| text(r, key).to_string())
                    .filter(|t| !t.is_empty())
            };
            CountyRow {
                district: doc
                    .map(|d| text(d, "district").to_string())
                    .unwrap_or_default(),
                collaborative: from_report("collaborative").unwrap_or_else(|| p.display_name()),
                leads: from_report("leadSchool").unwrap_or_else(|| {
                    doc.map(|d| text(d, "leadSchools").to_string())
                        .unwrap_or_default()
                }),
                period: report.and_then(|(_, w)| w),
                answer: report.map(|(r, _)| text(r, question.key()).to_string()),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        district_order(&a.district, &b.district).then_with(|| {
            a.collaborative
                .to_lowercase()
                .cmp(&b.collaborative.to_lowercase())
        })
    });
    rows
}

/// A table for export: CSV for a spreadsheet, Markdown for a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Sheet {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Sheet {
    /// One header line, then a line per row; cells a spreadsheet would
    /// run as formulas are kept as text (`render`'s rule).
    pub fn csv(&self) -> String {
        let line = |cells: &[String]| {
            cells
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut out = line(&self.columns);
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }

    /// A heading and a table; lines inside a cell as `<br>`.
    pub fn markdown(&self) -> String {
        let mut out = format!("## {}\n\n", md_escape(&self.title).replace("<br>", " "));
        out.push_str(&self.markdown_table());
        out
    }

    fn markdown_table(&self) -> String {
        let line = |cells: &[String]| {
            format!(
                "| {} |\n",
                cells
                    .iter()
                    .map(|c| md_escape(c))
                    .collect::<Vec<_>>()
                    .join(" | ")
            )
        };
        let mut out = line(&self.columns);
        out.push_str(&format!(
            "|{}|\n",
            vec![" --- "; self.columns.len()].join("|")
        ));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

/// A period as the tables print it: "Spring 2013".
pub fn period_text(when: &Option<When>) -> String {
    when.map(|w| w.human()).unwrap_or_default()
}

pub fn county_sheet(rows: &[CountyRow], question: Question, term: Option<&When>) -> Sheet {
    let title = match term {
        Some(term) => format!("{}: reports for {term}", question.heading()),
        None => format!("{}: latest reports", question.heading()),
    };
    Sheet {
        title,
        columns: vec![
            "District".into(),
            "Collaborative".into(),
            "Lead school(s)".into(),
            question.heading().into(),
            "Report".into(),
        ],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.district.clone(),
                    r.collaborative.clone(),
                    r.leads.clone(),
                    r.answer.clone().unwrap_or_default(),
                    match (&r.answer, &r.period) {
                        (None, _) => "No report".into(),
                        (Some(_), period) => period_text(period),
                    },
                ]
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------
// Outcomes in and not in a partnership (seed 002)

/// Which schools a line of an outcomes table counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    In,
    NotIn,
    All,
}

impl Group {
    pub fn label(self) -> &'static str {
        match self {
            Group::In => "In a partnership",
            Group::NotIn => "Not in a partnership",
            Group::All => "All schools",
        }
    }
}

/// One line: how many schools and pupils, and each measure's share,
/// weighted by pupils.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomesLine {
    pub group: Group,
    pub schools: i64,
    pub pupils: i64,
    /// In the order of the table's measures; `None` where no school of
    /// the group reported that measure.
    pub percents: Vec<Option<f64>>,
}

/// One key stage of one year.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomesTable {
    pub year: Option<i64>,
    pub key_stage: String,
    pub measures: Vec<String>,
    /// In a partnership, not in one, and all schools, in that order.
    pub lines: Vec<OutcomesLine>,
}

/// One school's (or one group's) results for a key stage and year.
struct Entry {
    group: Group,
    schools: i64,
    pupils: i64,
    percents: BTreeMap<String, f64>,
}

/// The outcomes tables of every outcomes document given: results grouped
/// by year and key stage, then by whether the school is in a partnership
/// (a row that does not say counts as in one: a partnership's own
/// results), each measure's percentage weighted by the pupils of the
/// schools that reported it. "All schools" counts every school of the
/// two groups and those whose results were given only as all schools. A
/// school given by two documents (in two partnerships) counts once.
pub fn outcomes(documents: &[&DocView]) -> Vec<OutcomesTable> {
    type Stage = (Option<i64>, String);
    let mut measures: BTreeMap<Stage, Vec<String>> = BTreeMap::new();
    let mut entries: BTreeMap<Stage, Vec<(String, Entry)>> = BTreeMap::new();
    let mut seen: HashSet<(String, Option<i64>, String, String)> = HashSet::new();
    for doc in documents.iter().filter(|d| d.kind == Kind::Outcomes) {
        for row in doc.live("results") {
            let school = row_text(row, "school").to_string();
            let year = row.field("year").and_then(|f| f.value.as_i64());
            let stage = row_value(row, "keyStage");
            let measure = row_text(row, "measure").to_string();
            let pupils = row.field("pupils").and_then(|f| f.value.as_i64());
            let percent = row.field("percent").and_then(|f| f.value.as_f64());
            let (Some(pupils), Some(percent)) = (pupils, percent) else {
                continue;
            };
            if school.is_empty() || measure.is_empty() || pupils <= 0 {
                continue;
            }
            let name = school.to_lowercase();
            if !seen.insert((name.clone(), year, stage.clone(), measure.to_lowercase())) {
                continue;
            }
            let group = match row_value(row, "inPartnership").as_str() {
                "not in" => Group::NotIn,
                "all" => Group::All,
                _ => Group::In,
            };
            let key = (year, stage);
            let known = measures.entry(key.clone()).or_default();
            if !known.contains(&measure) {
                known.push(measure.clone());
            }
            let list = entries.entry(key).or_default();
            let schools = row
                .field("schools")
                .and_then(|f| f.value.as_i64())
                .filter(|n| *n > 0)
                .unwrap_or(1);
            match list
                .iter_mut()
                .find(|(n, e)| *n == name && e.group == group)
            {
                Some((_, entry)) => {
                    entry.percents.insert(measure, percent);
                }
                None => list.push((
                    name,
                    Entry {
                        group,
                        schools,
                        pupils,
                        percents: BTreeMap::from([(measure, percent)]),
                    },
                )),
            }
        }
    }
    let stage_order = |stage: &str| {
        KEY_STAGE
            .options
            .iter()
            .position(|(name, _)| *name == stage)
            .unwrap_or(usize::MAX)
    };
    let mut tables: Vec<OutcomesTable> = entries
        .into_iter()
        .map(|(key, list)| {
            let measures = measures.remove(&key).unwrap_or_default();
            let line = |wanted: &[Group], group: Group| {
                let members: Vec<&Entry> = list
                    .iter()
                    .map(|(_, e)| e)
                    .filter(|e| wanted.contains(&e.group))
                    .collect();
                OutcomesLine {
                    group,
                    schools: members.iter().map(|e| e.schools).sum(),
                    pupils: members.iter().map(|e| e.pupils).sum(),
                    percents: measures
                        .iter()
                        .map(|m| {
                            let (weighted, pupils) = members
                                .iter()
                                .filter_map(|e| {
                                    e.percents.get(m).map(|p| (p * e.pupils as f64, e.pupils))
                                })
                                .fold((0.0, 0i64), |(w, n), (x, p)| (w + x, n + p));
                            (pupils > 0).then(|| weighted / pupils as f64)
                        })
                        .collect(),
                }
            };
            OutcomesTable {
                year: key.0,
                key_stage: key.1.clone(),
                lines: vec![
                    line(&[Group::In], Group::In),
                    line(&[Group::NotIn], Group::NotIn),
                    line(&[Group::In, Group::NotIn, Group::All], Group::All),
                ],
                measures,
            }
        })
        .collect();
    tables.sort_by(|a, b| {
        b.year
            .cmp(&a.year)
            .then_with(|| stage_order(&a.key_stage).cmp(&stage_order(&b.key_stage)))
    });
    tables
}

/// "85.4%": one decimal place, as the papers give them.
pub fn percent_text(percent: Option<f64>) -> String {
    percent.map(|p| format!("{p:.1}%")).unwrap_or_default()
}

/// "1,990": pupils and schools as the papers count them.
pub fn count_text(n: i64) -> String {
    pounds(n).replacen('£', "", 1)
}

impl OutcomesTable {
    /// "Key stage 2, 2014".
    pub fn heading(&self) -> String {
        let stage = match self.key_stage.strip_prefix("KS") {
            Some(n) => format!("Key stage {n}"),
            None if self.key_stage.is_empty() => "Key stage not given".into(),
            None => self.key_stage.clone(),
        };
        match self.year {
            Some(year) => format!("{stage}, {year}"),
            None => stage,
        }
    }

    pub fn sheet(&self) -> Sheet {
        let mut columns = vec!["".to_string(), "Schools".into(), "Pupils".into()];
        columns.extend(self.measures.iter().map(|m| format!("% {m}")));
        Sheet {
            title: self.heading(),
            columns,
            rows: self
                .lines
                .iter()
                .map(|line| {
                    let mut cells = vec![
                        line.group.label().to_string(),
                        count_text(line.schools),
                        count_text(line.pupils),
                    ];
                    cells.extend(line.percents.iter().map(|p| percent_text(*p)));
                    cells
                })
                .collect(),
        }
    }
}

/// Every table as one rectangular sheet, a line per group and measure.
pub fn outcomes_sheet(tables: &[OutcomesTable]) -> Sheet {
    let mut rows = Vec::new();
    for table in tables {
        for line in &table.lines {
            for (measure, percent) in table.measures.iter().zip(&line.percents) {
                rows.push(vec![
                    table.year.map(|y| y.to_string()).unwrap_or_default(),
                    table.key_stage.clone(),
                    line.group.label().to_string(),
                    line.schools.to_string(),
                    line.pupils.to_string(),
                    measure.clone(),
                    percent.map(|p| format!("{p:.1}")).unwrap_or_default(),
                ]);
            }
        }
    }
    Sheet {
        title: "Outcomes in and not in a partnership".into(),
        columns: [
            "Year",
            "Key stage",
            "Group",
            "Schools",
            "Pupils",
            "Measure",
            "%",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    }
}

/// Every table as Markdown, a heading and table per key stage.
pub fn outcomes_markdown(tables: &[OutcomesTable]) -> String {
    let mut out = String::from("# Outcomes in and not in a partnership\n\n");
    for table in tables {
        out.push_str(&table.sheet().markdown());
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------
// Funding (seed 003)

/// What each partnership is funded, as its partnership document records.
#[derive(Debug, Clone, PartialEq)]
pub struct Funding {
    pub rows: Vec<FundingRow>,
    pub total: i64,
    /// Partnerships with an amount recorded, and their schools.
    pub funded: usize,
    pub funded_schools: usize,
    pub schools: usize,
    /// Partnerships with an action plan, and their schools (seed 003:
    /// "58 action plans have been received, which reflects 436 schools").
    pub planned: usize,
    pub planned_schools: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FundingRow {
    pub name: String,
    pub district: String,
    pub schools: usize,
    pub has_plan: bool,
    pub amount: Option<i64>,
}

pub fn funding(summaries: &[Summary]) -> Funding {
    let mut rows: Vec<FundingRow> = summaries
        .iter()
        .map(|s| FundingRow {
            name: s.name.clone(),
            district: s.district.clone(),
            schools: s.schools.len(),
            has_plan: s.has_plan,
            amount: s.funding,
        })
        .collect();
    rows.sort_by(|a, b| {
        district_order(&a.district, &b.district)
            .then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
    });
    let funded: Vec<&FundingRow> = rows.iter().filter(|r| r.amount.is_some()).collect();
    let planned: Vec<&FundingRow> = rows.iter().filter(|r| r.has_plan).collect();
    Funding {
        planned: planned.len(),
        planned_schools: planned.iter().map(|r| r.schools).sum(),
        total: funded.iter().filter_map(|r| r.amount).sum(),
        funded: funded.len(),
        funded_schools: funded.iter().map(|r| r.schools).sum(),
        schools: rows.iter().map(|r| r.schools).sum(),
        rows,
    }
}

impl Funding {
    pub fn sheet(&self) -> Sheet {
        let mut rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.district.clone(),
                    r.name.clone(),
                    r.schools.to_string(),
                    r.amount
                        .map(pounds)
                        .unwrap_or_else(|| "Not recorded".into()),
                ]
            })
            .collect();
        rows.push(vec![
            String::new(),
            format!("Total ({} partnerships)", self.funded),
            self.funded_schools.to_string(),
            pounds(self.total),
        ]);
        Sheet {
            title: "Funding from the local authority".into(),
            columns: ["District", "Partnership", "Schools", "Funding"]
                .map(String::from)
                .to_vec(),
            rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::author::Author;
    use crate::documents_file::{DocumentsFile, write_document};
    use crate::read;
    use automerge::AutoCommit;

    fn docs(json: &str) -> Vec<DocView> {
        let file = DocumentsFile::from_json(&format!(
            r#"{{"format": "partnerplan-documents", "version": 1, "documents": [{json}]}}"#
        ))
        .unwrap();
        let who = Author {
            school: "Test".into(),
            person: None,
            time: 0,
        };
        file.documents
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let mut doc = AutoCommit::new();
                write_document(&mut doc, i, entry, None, &who).unwrap();
                read::read(&doc).unwrap()
            })
            .collect()
    }

    fn date(s: &str) -> When {
        When::parse(s).unwrap()
    }

    #[test]
    fn a_partnership_at_a_glance() {
        let views = docs(
            r#"{"kind": "partnership", "title": "EAS Hub", "fields": {"district": "Ashford", "leadSchools": "Downs View Infant", "funding": 40000},
                "tables": {"schools": [{"name": "Downs View Infant"}, {"name": "Great Chart Primary"}]}},
               {"kind": "action-plan", "title": "Plan 2012-2013", "fields": {"period": "2012-2013"},
                "tables": {"areas": [{"name": "Writing", "actions": [
                   {"what": "Moderate writing", "status": "red", "reviewDate": "Spring 2013"},
                   {"what": "Learning walks", "status": "done", "reviewDate": "1 February 2013"},
                   {"what": "Train TAs", "status": "amber", "reviewDate": "Summer 2013"},
                   {"what": "Share plans"}]}]}},
               {"kind": "action-plan", "title": "Plan 2011-2012", "fields": {"period": "2011-2012"},
                "tables": {"areas": [{"name": "Old", "actions": [{"what": "x", "status": "green"}]}]}},
               {"kind": "progress-report", "title": "Autumn", "fields": {"period": "Autumn 2012"}},
               {"kind": "progress-report", "title": "Spring", "fields": {"period": "14 March 2013"}}"#,
        );
        let p = Partnership {
            name: "EAS Hub".into(),
            documents: views.iter().collect(),
        };
        let today = date("20 April 2013");
        let s = summarise(&p, &today, &date("Spring 2013"));
        assert_eq!(s.name, "EAS Hub");
        assert_eq!(s.district, "Ashford");
        assert_eq!(s.schools.len(), 2);
        assert_eq!(s.funding, Some(40_000));
        assert_eq!(
            s.actions,
            ActionCounts {
                red: 1,
                amber: 1,
                green: 0,
                done: 1,
                none: 1
            },
            "the current plan's actions only"
        );
        assert_eq!(
            s.overdue, 1,
            "Spring 2013 has ended; done and Summer are not overdue"
        );
        assert_eq!(s.latest_report, Some(date("2013-03-14")));
        assert!(s.report_in);
        let summer = summarise(&p, &today, &date("Summer 2013"));
        assert!(!summer.report_in, "no report for the summer yet");
        assert_eq!(summer.last_signed, None, "no signed review");
    }

    #[test]
    fn the_overview_filters_and_sorts() {
        let summary = |name: &str, district: &str, red: usize, report_in: bool| Summary {
            name: name.into(),
            district: district.into(),
            leads: String::new(),
            budget_holder: String::new(),
            schools: Vec::new(),
            funding: None,
            has_plan: true,
            actions: ActionCounts {
                red,
                ..Default::default()
            },
            overdue: 0,
            last_signed: None,
            latest_report: None,
            report_in,
        };
        let all = vec![
            summary("RAiD", "Dover", 0, true),
            summary("ACE", "Ashford", 2, false),
            summary("Coastal Alliance", "Canterbury", 1, true),
        ];
        let names = |filter: &Filter| -> Vec<String> {
            overview(all.clone(), filter)
                .into_iter()
                .map(|s| s.name)
                .collect()
        };
        assert_eq!(
            names(&Filter::default()),
            ["ACE", "Coastal Alliance", "RAiD"]
        );
        let only = |f: Filter| names(&f);
        assert_eq!(
            only(Filter {
                district: Some("dover".into()),
                ..Default::default()
            }),
            ["RAiD"]
        );
        assert_eq!(
            only(Filter {
                missing: true,
                ..Default::default()
            }),
            ["ACE"]
        );
        assert_eq!(
            only(Filter {
                status: Some(Some(Status::Red)),
                sort: Sort::Red,
                ..Default::default()
            }),
            ["ACE", "Coastal Alliance"]
        );
        assert_eq!(
            only(Filter {
                sort: Sort::District,
                ..Default::default()
            }),
            ["ACE", "Coastal Alliance", "RAiD"]
        );
        assert_eq!(districts(&all), ["Ashford", "Canterbury", "Dover"]);
    }

    #[test]
    fn the_county_table_takes_the_report_for_the_term() {
        let a = docs(
            r#"{"kind": "partnership", "title": "RAiD", "fields": {"district": "Dover", "leadSchools": "Priory Fields"}},
               {"kind": "progress-report", "title": "R", "fields": {"period": "Spring 2013", "development": "Opportunity for procurement"}}"#,
        );
        let b = docs(
            r#"{"kind": "partnership", "title": "ACE", "fields": {"district": "Ashford"}},
               {"kind": "progress-report", "title": "R", "fields": {"period": "Autumn 2012", "collaborative": "ACE", "leadSchool": "Hamstreet Primary", "development": "SPAG"}}"#,
        );
        let partnerships = [
            Partnership {
                name: "RAiD".into(),
                documents: a.iter().collect(),
            },
            Partnership {
                name: "ACE".into(),
                documents: b.iter().collect(),
            },
        ];
        let latest = county_rows(&partnerships, Question::Development, None);
        assert_eq!(latest[0].district, "Ashford", "by district");
        assert_eq!(
            latest[0].leads, "Hamstreet Primary",
            "as the report gives it"
        );
        assert_eq!(
            latest[1].answer.as_deref(),
            Some("Opportunity for procurement")
        );
        let spring = county_rows(
            &partnerships,
            Question::Development,
            Some(&date("Spring 2013")),
        );
        assert_eq!(spring[0].answer, None, "ACE has no report for Spring 2013");
        let sheet = county_sheet(&spring, Question::Development, Some(&date("Spring 2013")));
        assert_eq!(
            sheet.csv().lines().next().unwrap(),
            "District,Collaborative,Lead school(s),Areas for further development as a collaborative,Report"
        );
        assert!(sheet.csv().contains("Ashford,ACE,,,No report"));
        assert!(sheet.markdown().contains(
            "| Dover | RAiD | Priory Fields | Opportunity for procurement | Spring 2013 |"
        ));
    }

    /// Seed 002's key stage 1 lines, and the line for all schools that
    /// the paper gives, which the two groups weighted by pupils make.
    #[test]
    fn outcomes_weighted_by_pupils() {
        let views = docs(
            r#"{"kind": "outcomes", "title": "2014", "tables": {"results": [
                {"school": "In a collaboration", "year": 2014, "keyStage": "KS1", "inPartnership": "in", "schools": 132, "pupils": 2174, "measure": "Level 2+ R, W & M", "percent": 85.4},
                {"school": "In a collaboration", "year": 2014, "keyStage": "KS1", "inPartnership": "in", "schools": 132, "pupils": 2174, "measure": "Level 3+ R, W & M", "percent": 12.3},
                {"school": "Not in a collaboration", "year": 2014, "keyStage": "KS1", "inPartnership": "not in", "schools": 132, "pupils": 5250, "measure": "Level 2+ R, W & M", "percent": 83.4},
                {"school": "Not in a collaboration", "year": 2014, "keyStage": "KS1", "inPartnership": "not in", "schools": 132, "pupils": 5250, "measure": "Level 3+ R, W & M", "percent": 11.6}]}}"#,
        );
        let tables = outcomes(&views.iter().collect::<Vec<_>>());
        assert_eq!(tables.len(), 1);
        let t = &tables[0];
        assert_eq!(t.heading(), "Key stage 1, 2014");
        let all = &t.lines[2];
        assert_eq!((all.schools, all.pupils), (264, 7424));
        assert_eq!(percent_text(all.percents[0]), "84.0%");
        assert_eq!(percent_text(all.percents[1]), "11.8%");
        assert_eq!(percent_text(t.lines[0].percents[0]), "85.4%");
        assert_eq!(count_text(all.pupils), "7,424");
        let sheet = t.sheet();
        assert_eq!(
            sheet.rows[2],
            ["All schools", "264", "7,424", "84.0%", "11.8%"]
        );
        // The same document twice (listed in two partnerships) counts once.
        let twice = outcomes(&[&views[0], &views[0]]);
        assert_eq!(twice[0].lines[2].pupils, 7424);
        assert!(
            outcomes_sheet(&tables)
                .csv()
                .contains("2014,KS1,All schools,264,7424,\"Level 2+ R, W & M\",84.0")
        );
    }

    fn fixture_views(text: &str) -> Vec<DocView> {
        let file = DocumentsFile::from_json(text).unwrap();
        let who = Author {
            school: "Test".into(),
            person: None,
            time: 0,
        };
        file.documents
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let mut doc = AutoCommit::new();
                write_document(&mut doc, i, entry, None, &who).unwrap();
                read::read(&doc).unwrap()
            })
            .collect()
    }

    /// The transcription of seed 002 gives the two groups; the paper's
    /// own line for all schools is what weighting them by pupils gives.
    #[test]
    fn the_seed_002_fixture_gives_the_papers_figures() {
        let views = fixture_views(include_str!(
            "../../../tests/fixtures/county/lincolnshire-2014-outcomes.json"
        ));
        let tables = outcomes(&views.iter().collect::<Vec<_>>());
        let rows: Vec<Vec<Vec<String>>> = tables.iter().map(|t| t.sheet().rows).collect();
        let line = |cells: &[&str]| cells.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        assert_eq!(tables[0].heading(), "Key stage 1, 2014");
        assert_eq!(
            rows[0],
            [
                line(&[
                    "In a partnership",
                    "132",
                    "2,174",
                    "85.4%",
                    "68.1%",
                    "12.3%"
                ]),
                line(&[
                    "Not in a partnership",
                    "132",
                    "5,250",
                    "83.4%",
                    "63.6%",
                    "11.6%"
                ]),
                line(&["All schools", "264", "7,424", "84.0%", "64.9%", "11.8%"]),
            ]
        );
        assert_eq!(tables[1].heading(), "Key stage 2, 2014");
        assert_eq!(
            rows[1],
            [
                line(&[
                    "In a partnership",
                    "130",
                    "1,990",
                    "78.3%",
                    "66.9%",
                    "23.3%",
                    "0.1%"
                ]),
                line(&[
                    "Not in a partnership",
                    "130",
                    "5,064",
                    "78.2%",
                    "66.7%",
                    "22.1%",
                    "0.1%"
                ]),
                line(&[
                    "All schools",
                    "260",
                    "7,054",
                    "78.2%",
                    "66.8%",
                    "22.4%",
                    "0.1%"
                ]),
            ]
        );
    }

    #[test]
    fn the_seed_001_fixtures_read_as_the_county_table() {
        let files = [
            include_str!("../../../tests/fixtures/county/kent-2013-cats.json"),
            include_str!("../../../tests/fixtures/county/kent-2013-ace.json"),
            include_str!("../../../tests/fixtures/county/kent-2013-eas-hub.json"),
            include_str!("../../../tests/fixtures/county/kent-2013-tenterden.json"),
            include_str!("../../../tests/fixtures/county/kent-2013-coastal-alliance.json"),
            include_str!("../../../tests/fixtures/county/kent-2013-wickhambreaux.json"),
            include_str!("../../../tests/fixtures/county/kent-2013-raid.json"),
            include_str!("../../../tests/fixtures/county/kent-2013-dover-collaboration.json"),
            include_str!("../../../tests/fixtures/county/kent-2013-samphire-hub.json"),
            include_str!("../../../tests/fixtures/county/kent-2013-sandwich-consortium.json"),
            include_str!("../../../tests/fixtures/county/kent-2013-faversham.json"),
        ];
        let views: Vec<Vec<DocView>> = files.iter().map(|f| fixture_views(f)).collect();
        let partnerships: Vec<Partnership> = views
            .iter()
            .map(|v| Partnership {
                name: v[0].title.clone(),
                documents: v.iter().collect(),
            })
            .collect();
        let spring = date("Spring 2013");
        let rows = county_rows(&partnerships, Question::Development, Some(&spring));
        assert_eq!(rows.len(), 11);
        assert!(
            rows.iter()
                .all(|r| r.answer.as_ref().is_some_and(|a| !a.is_empty()))
        );
        let districts: Vec<&str> = rows.iter().map(|r| r.district.as_str()).collect();
        assert_eq!(
            districts,
            [
                "Ashford",
                "Ashford",
                "Ashford",
                "Ashford",
                "Canterbury",
                "Canterbury",
                "Dover",
                "Dover",
                "Dover",
                "Dover",
                "Swale"
            ]
        );
        let tenterden = rows
            .iter()
            .find(|r| r.collaborative == "Tenterden Rural Alliance")
            .unwrap();
        assert_eq!(tenterden.leads, "Tenterden Junior (budget holder)");
        assert!(
            tenterden
                .answer
                .as_ref()
                .unwrap()
                .ends_with("join the TRA in September 2013.")
        );
        let today = date("1 June 2013");
        let s = summarise(&partnerships[3], &today, &spring);
        assert_eq!(
            (s.leads.as_str(), s.budget_holder.as_str()),
            ("Tenterden Junior", "Tenterden Junior")
        );
        assert!(s.report_in);
    }

    #[test]
    fn funding_adds_up_what_is_recorded() {
        let summary = |name: &str, schools: usize, funding: Option<i64>| Summary {
            name: name.into(),
            district: "Dover".into(),
            leads: String::new(),
            budget_holder: String::new(),
            schools: vec!["x".into(); schools],
            funding,
            has_plan: true,
            actions: ActionCounts::default(),
            overdue: 0,
            last_signed: None,
            latest_report: None,
            report_in: false,
        };
        let f = funding(&[
            summary("RAiD", 5, Some(60_000)),
            summary("Samphire Hub", 7, Some(2_918_326)),
            summary("Sandwich Consortium", 4, None),
        ]);
        assert_eq!(f.total, 2_978_326);
        assert_eq!((f.funded, f.funded_schools, f.schools), (2, 12, 16));
        assert_eq!((f.planned, f.planned_schools), (3, 16));
        let sheet = f.sheet();
        assert_eq!(sheet.rows.last().unwrap()[3], "£2,978,326");
        assert!(
            sheet
                .csv()
                .contains("Dover,Sandwich Consortium,4,Not recorded")
        );
    }
}
