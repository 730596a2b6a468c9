//! The local authority's pages: every partnership it views at a glance,
//! the county table of what their progress reports say, outcomes in and
//! not in a partnership, and funding, each printable and exported as CSV
//! and Markdown. Which documents are a partnership's comes from the
//! relay's listing (`KnownPartnership`), never from what documents say;
//! what they mean comes from `partnerplan_model::county`. Everything here
//! reads: the local authority writes nothing into a partnership's
//! documents.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use partnerplan_model::county::{
    self, CountyRow, Filter, Funding, OutcomesTable, Partnership, Question, Sort, Summary,
};
use partnerplan_model::text::{capitalise, pounds};
use partnerplan_model::values::STATUS;
use partnerplan_model::when::date_from_unix;
use partnerplan_model::{DocView, Kind, Status, When};
use partnerplan_sync::DocumentId;
use serde::Deserialize;

use super::library::Library;
use super::pages::{self, Chrome, plural};
use super::web::{Refusal, Shared, chrome, failure, who};
use crate::error::ClientError;
use crate::sync::KnownPartnership;

/// What each page reads of each partnership: the overview its
/// partnership document, plans and reports; the county table no plan;
/// the funding no report. Other kinds are not read beyond their kind.
const OVERVIEW: &[Kind] = &[Kind::Partnership, Kind::ActionPlan, Kind::ProgressReport];
const COUNTY: &[Kind] = &[Kind::Partnership, Kind::ProgressReport];
const FUNDING: &[Kind] = &[Kind::Partnership, Kind::ActionPlan];

/// The partnerships this school views, and the documents of each it
/// holds, read once for a page.
pub struct Gathered {
    views: Vec<(DocumentId, DocView)>,
    /// Each viewed partnership's name and the indexes of its documents.
    partnerships: Vec<(String, Vec<usize>)>,
    /// Each viewed partnership's id, by name (names are unique on a
    /// relay), for the link to comment to it.
    ids: Vec<(String, String)>,
}

impl Gathered {
    /// The documents of `kinds` of every partnership the school views.
    pub fn read(library: &Library, kinds: &[Kind]) -> Result<Gathered, ClientError> {
        let partnerships = viewed(&library.partnerships());
        let ids: Vec<DocumentId> = partnerships
            .iter()
            .flat_map(|p| p.document_ids().collect::<Vec<_>>())
            .collect();
        let views = library.read_kinds(&ids, kinds)?;
        let partnership_ids = partnerships
            .iter()
            .map(|p| (p.name.clone(), p.id.clone()))
            .collect();
        let partnerships = partnerships
            .iter()
            .map(|p| {
                let mine: Vec<DocumentId> = p.document_ids().collect();
                let indexes = views
                    .iter()
                    .enumerate()
                    .filter(|(_, (id, _))| mine.contains(id))
                    .map(|(i, _)| i)
                    .collect();
                (p.name.clone(), indexes)
            })
            .collect();
        Ok(Gathered {
            views,
            partnerships,
            ids: partnership_ids,
        })
    }

    pub fn partnerships(&self) -> Vec<Partnership<'_>> {
        self.partnerships
            .iter()
            .map(|(name, indexes)| Partnership {
                name: name.clone(),
                documents: indexes.iter().map(|i| &self.views[*i].1).collect(),
            })
            .collect()
    }

    /// The id of a document read here, for a link to it.
    fn id_of(&self, view: &DocView) -> Option<DocumentId> {
        self.views
            .iter()
            .find(|(_, v)| std::ptr::eq(v, view))
            .map(|(id, _)| *id)
    }
}

/// The partnerships the school only reads: the ones it views.
pub fn viewed(partnerships: &[KnownPartnership]) -> Vec<KnownPartnership> {
    partnerships
        .iter()
        .filter(|p| p.viewer())
        .cloned()
        .collect()
}

/// Whether the home page is the overview: a school that views more than
/// one partnership (a local authority) starts there.
pub fn overview_is_home(library: &Library) -> bool {
    viewed(&library.partnerships()).len() > 1
}

fn today() -> When {
    date_from_unix(crate::status::now_unix())
}

/// The term asked for, or this term.
fn term_or_now(asked: Option<&str>) -> When {
    asked
        .and_then(|t| When::parse(t).ok())
        .and_then(|w| w.term())
        .or_else(|| today().term())
        .expect("a date has a term")
}

/// The terms to choose from: this one, and every term a report is for,
/// newest first.
fn terms(partnerships: &[Partnership<'_>]) -> Vec<When> {
    let mut terms: Vec<When> = partnerships
        .iter()
        .flat_map(|p| p.reports())
        .filter_map(|(_, w)| w.and_then(|w| w.term()))
        .collect();
    terms.extend(today().term());
    terms.sort_by_key(|t| std::cmp::Reverse(t.starts()));
    terms.dedup();
    terms
}

/// The links every local authority page carries.
pub(super) fn la_nav(here: &str) -> Markup {
    let link = |href: &str, text: &str| {
        html! {
            @if href == here { a href=(href) aria-current="page" { (text) } }
            @else { a href=(href) { (text) } }
        }
    };
    html! {
        nav class="la-nav" aria-label="The partnerships you view" {
            (link("/partnerships", "Partnerships"))
            (link("/county", "County table"))
            (link("/outcomes", "Outcomes"))
            (link("/funding", "Funding"))
            (link("/documents", "All documents"))
        }
    }
}

fn page(state: &Shared, title: &str, here: &str, body: Markup) -> Response {
    let who = match who(state) {
        Ok(who) => who,
        Err(refused) => return refused.into_response(),
    };
    let sync = state.sync.borrow().clone();
    let chrome: Chrome<'_> = chrome(state, &who, &sync);
    let body = html! {
        (la_nav(here))
        div id="la-page" data-live-page="" { (body) }
    };
    Html(pages::layout(title, Some(&chrome), body).into_string()).into_response()
}

/// Runs `f` on the gathered documents on this worker thread.
fn gathered<T>(
    state: &Shared,
    kinds: &[Kind],
    f: impl FnOnce(&Gathered) -> T,
) -> Result<T, Refusal> {
    tokio::task::block_in_place(|| Gathered::read(&state.library, kinds))
        .map(|g| f(&g))
        .map_err(|e| Refusal(Box::new(failure(&e.to_string()))))
}

fn download(kind: &'static str, name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn exports(path: &str, query: &str, what: &str) -> Markup {
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    html! {
        p class="exports" {
            a href={(path) ".csv" (query)} download { "Download " (what) " as CSV" }
            a href={(path) ".md" (query)} download { "Download " (what) " as Markdown" }
            button type="button" data-print="" { "Print" }
        }
    }
}

fn query_string(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------
// The overview

#[derive(Deserialize, Default)]
pub struct OverviewQuery {
    #[serde(default)]
    district: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    missing: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    term: String,
}

impl OverviewQuery {
    fn filter(&self) -> Filter {
        Filter {
            district: Some(self.district.clone()).filter(|d| !d.is_empty()),
            status: match self.status.as_str() {
                "" => None,
                "none" => Some(None),
                other => Status::parse(other).ok().map(Some),
            },
            missing: !self.missing.is_empty(),
            sort: Sort::parse(&self.sort),
        }
    }
}

pub async fn overview(State(state): State<Shared>, Query(query): Query<OverviewQuery>) -> Response {
    overview_page(&state, &query)
}

/// The overview page (also the home page of a local authority).
pub fn overview_page(state: &Shared, query: &OverviewQuery) -> Response {
    let term = term_or_now(
        Some(&query.term)
            .filter(|t| !t.is_empty())
            .map(|t| t.as_str()),
    );
    let today = today();
    let body = gathered(state, OVERVIEW, |g| {
        let partnerships = g.partnerships();
        let rows: Vec<(Summary, Links)> = partnerships
            .iter()
            .map(|p| (county::summarise(p, &today, &term), Links::of(g, p)))
            .collect();
        let all: Vec<Summary> = rows.iter().map(|(s, _)| s.clone()).collect();
        let shown = county::overview(all.clone(), &query.filter());
        let terms = terms(&partnerships);
        overview_body(query, &term, &all, &shown, &rows, &terms)
    });
    match body {
        Ok(body) => page(state, "Partnerships you view", "/partnerships", body),
        Err(refused) => refused.into_response(),
    }
}

/// Where a summary's names and dates lead.
struct Links {
    /// The partnership's id on the relay, to comment to it.
    id: Option<String>,
    partnership: Option<DocumentId>,
    plan: Option<DocumentId>,
    latest_report: Option<DocumentId>,
}

impl Links {
    fn of(g: &Gathered, p: &Partnership<'_>) -> Links {
        Links {
            id: g
                .ids
                .iter()
                .find(|(name, _)| *name == p.name)
                .map(|(_, id)| id.clone()),
            partnership: p.partnership_document().and_then(|d| g.id_of(d)),
            plan: p.plan().and_then(|d| g.id_of(d)),
            latest_report: p.report(None).and_then(|(d, _)| g.id_of(d)),
        }
    }
}

fn overview_body(
    query: &OverviewQuery,
    term: &When,
    all: &[Summary],
    shown: &[Summary],
    rows: &[(Summary, Links)],
    terms: &[When],
) -> Markup {
    let schools: usize = all.iter().map(|s| s.schools.len()).sum();
    let missing = all.iter().filter(|s| !s.report_in).count();
    let districts = county::districts(all);
    let filter = query.filter();
    let links_of = |s: &Summary| rows.iter().find(|(r, _)| r == s).map(|(_, l)| l);
    html! {
        h1 { "Partnerships you view" }
        p class="lede" {
            (plural(all.len(), "partnership", "partnerships")) " with " (plural(schools, "member school", "member schools")) " listed. "
            "Progress reports for " (term) ": " strong { (all.len() - missing) " in" } ", " strong { (missing) " missing" } "."
        }
        form method="get" action="/partnerships" class="filters" aria-label="Choose which partnerships to show" {
            div class="control" { label for="filter-district" { "District" }
                select id="filter-district" name="district" {
                    option value="" { "All districts" }
                    @for d in &districts { option value=(d) selected[filter.district.as_deref().is_some_and(|f| f.eq_ignore_ascii_case(d))] { (d) } }
                }
            }
            div class="control" { label for="filter-status" { "With actions that are" }
                select id="filter-status" name="status" {
                    option value="" { "Any status" }
                    @for (name, _) in STATUS.options { option value=(name) selected[query.status == *name] { (capitalise(name)) } }
                    option value="none" selected[query.status == "none"] { "Not given a status" }
                }
            }
            div class="control" { label for="filter-term" { "Term of the progress report" }
                select id="filter-term" name="term" {
                    @for t in terms { option value=(t.to_string()) selected[t == term] { (t) } }
                }
            }
            label class="check" {
                input type="checkbox" name="missing" value="1" checked[filter.missing];
                span { "Only those whose report is missing" }
            }
            div class="control" { label for="filter-sort" { "Sort by" }
                select id="filter-sort" name="sort" {
                    @for (sort, key, text) in Sort::ALL { option value=(key) selected[sort == filter.sort] { (text) } }
                }
            }
            button type="submit" { "Show" }
        }
        @if all.is_empty() {
            p { "No partnership's documents have arrived yet. They arrive by themselves once your lead school has added you to a partnership." }
        } @else if shown.is_empty() {
            p { "No partnership matches what you chose. " a href="/partnerships" { "Show them all" } }
        } @else {
            p class="shown" role="status" { "Showing " (plural(shown.len(), "partnership", "partnerships")) "." }
            table class="overview" {
                caption class="visually-hidden" { "The partnerships you view, with their actions and progress reports" }
                thead { tr {
                    th scope="col" { "Partnership" }
                    th scope="col" { "District" }
                    th scope="col" { "Lead school(s) and budget holder" }
                    th scope="col" { "Member schools" }
                    th scope="col" { "Actions by status" }
                    th scope="col" class="narrow" { "Past review date" }
                    th scope="col" { "Last signed review" }
                    th scope="col" { "Latest progress report" }
                    th scope="col" { "Report for " (term) }
                    th scope="col" { "Comments" }
                } }
                tbody {
                    @for s in shown {
                        @let links = links_of(s);
                        tr {
                            th scope="row" {
                                @match links.and_then(|l| l.partnership) {
                                    Some(id) => { a href={"/doc/" (id)} { (s.name) } }
                                    None => { (s.name) }
                                }
                            }
                            td { (or_dash(&s.district)) }
                            td {
                                (or_dash(&s.leads))
                                @if !s.budget_holder.is_empty() { br; span class="hint" { "Budget holder: " (s.budget_holder) } }
                            }
                            td {
                                @if s.schools.is_empty() { span class="empty" { "None listed" } }
                                @else {
                                    details {
                                        summary { (plural(s.schools.len(), "school", "schools")) }
                                        ul class="plain" { @for school in &s.schools { li { (school) } } }
                                    }
                                }
                            }
                            td { (actions(s, links.and_then(|l| l.plan))) }
                            td class="number" { @if s.has_plan { (s.overdue) } @else { span class="empty" { "—" } } }
                            td { @match &s.last_signed { Some(w) => { (w.human()) }, None => { span class="empty" { "None" } } } }
                            td {
                                @match (&s.latest_report, links.and_then(|l| l.latest_report)) {
                                    (Some(w), Some(id)) => { a href={"/doc/" (id)} { (w.human()) } }
                                    (Some(w), None) => { (w.human()) }
                                    (None, Some(id)) => { a href={"/doc/" (id)} { "Period not given" } }
                                    (None, None) => { span class="empty" { "None" } }
                                }
                            }
                            td {
                                @if s.report_in { span class="chip report-in" { "In" } }
                                @else { span class="chip report-missing" { "Missing" } }
                            }
                            td {
                                @if let Some(id) = links.and_then(|l| l.id.as_ref()) {
                                    a href={"/partnerships/" (id) "/comment"} { "Write a comment" span class="visually-hidden" { " to " (s.name) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn actions(s: &Summary, plan: Option<DocumentId>) -> Markup {
    if !s.has_plan {
        return html! { span class="empty" { "No action plan" } };
    }
    let counts = [
        (Some(Status::Red), "red"),
        (Some(Status::Amber), "amber"),
        (Some(Status::Green), "green"),
        (Some(Status::Done), "done"),
        (None, "no status"),
    ];
    html! {
        ul class="counts" {
            @for (status, name) in counts {
                @let n = s.actions.of(status);
                @if n > 0 {
                    li { span class={"chip " (status.map(|s| format!("status-{}", s.name())).unwrap_or_else(|| "status-none".into()))} { (n) " " (name) } }
                }
            }
            @if s.actions.total() == 0 { li { span class="empty" { "No actions yet" } } }
        }
        @if let Some(id) = plan { a class="small" href={"/doc/" (id)} { "The action plan" } }
    }
}

// ---------------------------------------------------------------------
// The county table

#[derive(Deserialize, Default)]
pub struct CountyQuery {
    #[serde(default)]
    question: String,
    /// A term, or empty for each partnership's latest report.
    #[serde(default)]
    term: String,
}

impl CountyQuery {
    fn question(&self) -> Question {
        Question::parse(&self.question)
    }

    fn term(&self) -> Option<When> {
        When::parse(&self.term).ok().and_then(|w| w.term())
    }

    fn query_string(&self) -> String {
        query_string(&[
            ("question", self.question.clone()),
            (
                "term",
                self.term().map(|t| t.to_string()).unwrap_or_default(),
            ),
        ])
    }
}

fn county_rows(
    state: &Shared,
    query: &CountyQuery,
) -> Result<(Vec<CountyRow>, Vec<When>), Refusal> {
    gathered(state, COUNTY, |g| {
        let partnerships = g.partnerships();
        (
            county::county_rows(&partnerships, query.question(), query.term().as_ref()),
            terms(&partnerships),
        )
    })
}

pub async fn county_table(
    State(state): State<Shared>,
    Query(query): Query<CountyQuery>,
) -> Response {
    let (rows, terms) = match county_rows(&state, &query) {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    let question = query.question();
    let term = query.term();
    let missing = rows.iter().filter(|r| r.answer.is_none()).count();
    let body = html! {
        h1 { "County table" }
        p class="lede" {
            "What each partnership's progress report says, one table for the county. "
            @match &term {
                Some(t) => { "Reports for " (t) "." }
                None => { "Each partnership's latest report." }
            }
            @if missing > 0 { " " strong { (plural(missing, "partnership has", "partnerships have")) " no report" } @if term.is_some() { " for this term" } "." }
        }
        form method="get" action="/county" class="filters" aria-label="Choose the question and the term" {
            div class="control" { label for="filter-question" { "Question" }
                select id="filter-question" name="question" {
                    @for q in Question::ALL { option value=(q.key()) selected[q == question] { (q.heading()) } }
                }
            }
            div class="control" { label for="filter-term" { "Reports" }
                select id="filter-term" name="term" {
                    option value="" selected[term.is_none()] { "Each partnership's latest" }
                    @for t in &terms { option value=(t.to_string()) selected[Some(*t) == term] { "For " (t) } }
                }
            }
            button type="submit" { "Show" }
        }
        (exports("/county", &query.query_string(), "this table"))
        table class="county" {
            caption { (question.heading()) @if let Some(t) = &term { ", " (t) } }
            thead { tr {
                th scope="col" { "District" }
                th scope="col" { "Collaborative" }
                th scope="col" { "Lead school(s)" }
                th scope="col" class="wide" { (question.heading()) }
                th scope="col" { "Report" }
            } }
            tbody {
                @for r in &rows {
                    tr class=[r.answer.is_none().then_some("no-report")] {
                        td { (r.district) }
                        th scope="row" { (r.collaborative) }
                        td { (r.leads) }
                        td class="answer" {
                            @match &r.answer {
                                Some(a) if !a.is_empty() => { (a) }
                                Some(_) => { span class="empty" { "Not answered" } }
                                None => { span class="empty" { "No report" } }
                            }
                        }
                        td { @if r.answer.is_some() { (county::period_text(&r.period)) } @else { "—" } }
                    }
                }
            }
        }
    };
    page(&state, "County table", "/county", body)
}

pub async fn county_csv(State(state): State<Shared>, Query(query): Query<CountyQuery>) -> Response {
    match county_rows(&state, &query) {
        Ok((rows, _)) => download(
            "text/csv; charset=utf-8",
            "county-table.csv",
            county::county_sheet(&rows, query.question(), query.term().as_ref()).csv(),
        ),
        Err(refused) => refused.into_response(),
    }
}

pub async fn county_markdown(
    State(state): State<Shared>,
    Query(query): Query<CountyQuery>,
) -> Response {
    match county_rows(&state, &query) {
        Ok((rows, _)) => download(
            "text/markdown; charset=utf-8",
            "county-table.md",
            county::county_sheet(&rows, query.question(), query.term().as_ref()).markdown(),
        ),
        Err(refused) => refused.into_response(),
    }
}

// ---------------------------------------------------------------------
// Outcomes

/// Every outcomes document this computer holds: the partnerships', and
/// the local authority's own (schools not in a partnership).
fn outcome_tables(state: &Shared) -> Result<Vec<OutcomesTable>, Refusal> {
    tokio::task::block_in_place(|| {
        let library = &state.library;
        let ids = library.document_ids()?;
        let views = library.read_kinds(&ids, &[Kind::Outcomes])?;
        let refs: Vec<&DocView> = views.iter().map(|(_, v)| v).collect();
        Ok::<_, ClientError>(county::outcomes(&refs))
    })
    .map_err(|e| Refusal(Box::new(failure(&e.to_string()))))
}

pub async fn outcomes(State(state): State<Shared>) -> Response {
    let tables = match outcome_tables(&state) {
        Ok(tables) => tables,
        Err(refused) => return refused.into_response(),
    };
    let body = html! {
        h1 { "Outcomes in and not in a partnership" }
        p class="lede" { "From every outcomes document on this computer: each measure's percentage is weighted by the pupils of the schools that gave it, and all schools are both groups together." }
        @if tables.is_empty() {
            p { "No outcomes document has arrived yet." }
        } @else {
            (exports("/outcomes", "", "these tables"))
            @for t in &tables {
                @let sheet = t.sheet();
                table class="outcomes" {
                    caption { (t.heading()) }
                    thead { tr {
                        th scope="col" { span class="visually-hidden" { "Schools" } }
                        @for c in &sheet.columns[1..] { th scope="col" class="number" { (c) } }
                    } }
                    tbody {
                        @for row in &sheet.rows {
                            tr {
                                th scope="row" { (row[0]) }
                                @for c in &row[1..] { td class="number" { (c) } }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&state, "Outcomes", "/outcomes", body)
}

pub async fn outcomes_csv(State(state): State<Shared>) -> Response {
    match outcome_tables(&state) {
        Ok(tables) => download(
            "text/csv; charset=utf-8",
            "outcomes.csv",
            county::outcomes_sheet(&tables).csv(),
        ),
        Err(refused) => refused.into_response(),
    }
}

pub async fn outcomes_markdown(State(state): State<Shared>) -> Response {
    match outcome_tables(&state) {
        Ok(tables) => download(
            "text/markdown; charset=utf-8",
            "outcomes.md",
            county::outcomes_markdown(&tables),
        ),
        Err(refused) => refused.into_response(),
    }
}

// ---------------------------------------------------------------------
// Funding

fn funding_of(state: &Shared) -> Result<Funding, Refusal> {
    let today = today();
    let term = term_or_now(None);
    gathered(state, FUNDING, |g| {
        let summaries: Vec<Summary> = g
            .partnerships()
            .iter()
            .map(|p| county::summarise(p, &today, &term))
            .collect();
        county::funding(&summaries)
    })
}

pub async fn funding(State(state): State<Shared>) -> Response {
    let funding = match funding_of(&state) {
        Ok(funding) => funding,
        Err(refused) => return refused.into_response(),
    };
    let unrecorded = funding.rows.len() - funding.funded;
    let body = html! {
        h1 { "Funding" }
        p class="lede" {
            strong { (pounds(funding.total)) } " to "
            (plural(funding.funded, "partnership", "partnerships")) " of "
            (plural(funding.funded_schools, "school", "schools")) "."
            @if unrecorded > 0 { " " (plural(unrecorded, "partnership has", "partnerships have")) " no amount recorded." }
        }
        p {
            (plural(funding.planned, "action plan has", "action plans have")) " been received, from partnerships of "
            (plural(funding.planned_schools, "school", "schools")) ", of the " (plural(funding.rows.len(), "partnership", "partnerships")) " you view."
        }
        p class="hint" { "Each partnership records the funding it receives in its partnership document." }
        (exports("/funding", "", "this table"))
        table class="funding" {
            caption class="visually-hidden" { "Funding from the local authority, by partnership" }
            thead { tr {
                th scope="col" { "District" }
                th scope="col" { "Partnership" }
                th scope="col" class="number" { "Schools" }
                th scope="col" class="number" { "Funding" }
            } }
            tbody {
                @for r in &funding.rows {
                    tr {
                        td { (or_dash(&r.district)) }
                        th scope="row" { (r.name) }
                        td class="number" { (r.schools) }
                        td class="number" { @match r.amount { Some(a) => { (pounds(a)) }, None => { span class="empty" { "Not recorded" } } } }
                    }
                }
            }
            tfoot { tr {
                td {}
                th scope="row" { "Total" }
                td class="number" { (funding.funded_schools) }
                td class="number" { strong { (pounds(funding.total)) } }
            } }
        }
    };
    page(&state, "Funding", "/funding", body)
}

pub async fn funding_csv(State(state): State<Shared>) -> Response {
    match funding_of(&state) {
        Ok(f) => download("text/csv; charset=utf-8", "funding.csv", f.sheet().csv()),
        Err(refused) => refused.into_response(),
    }
}

pub async fn funding_markdown(State(state): State<Shared>) -> Response {
    match funding_of(&state) {
        Ok(f) => download(
            "text/markdown; charset=utf-8",
            "funding.md",
            f.sheet().markdown(),
        ),
        Err(refused) => refused.into_response(),
    }
}

fn or_dash(s: &str) -> Markup {
    if s.is_empty() {
        html! { span class="empty" { "—" } }
    } else {
        html! { (s) }
    }
}
