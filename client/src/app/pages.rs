//! The app's pages, rendered on the server from the model's views (maud
//! escapes every value). Pages speak the schools' language: names and
//! dates, never ids, hashes or paths; every control has a label.

use automerge::ChangeHash;
use maud::{DOCTYPE, Markup, html};
use partnerplan_model::records::{Review, Signature};
use partnerplan_model::render;
use partnerplan_model::schema::{Field, FieldType, Table};
use partnerplan_model::signing::{KnownKeys, Verification, verify};
use partnerplan_model::values::{SIGNATORY_ROLE, STATUS};
use partnerplan_model::when::when_text;
use partnerplan_model::{DocView, FieldView, Kind, PARTNERSHIP_KINDS, RowView, TableView};

use std::collections::{HashMap, HashSet};

use super::library::Summary;
use super::sync_state::SyncState;
use super::versions::SinceSigned;

/// What every page carries: who is using the app, and the secret that
/// proves a change came from one of its own pages.
pub struct Chrome<'a> {
    pub school: &'a str,
    pub person: Option<&'a str>,
    pub csrf: &'a str,
    pub sync: &'a SyncState,
}

pub fn layout(title: &str, chrome: Option<&Chrome<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(c) = chrome { meta name="csrf" content=(c.csrf); }
                title { (title) " – partnerplan" }
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to the content" }
                header class="top" {
                    a class="brand" href="/" { "partnerplan" }
                    @if let Some(c) = chrome {
                        span class="who" {
                            (c.school)
                            @if let Some(p) = c.person { " · " (p) }
                        }
                        (sync_indicator(c.sync))
                    }
                }
                main id="main" tabindex="-1" { (body) }
            }
        }
    }
}

/// "Offline: 3 changes on this computer only", "Sharing…", "Shared
/// with partners at 14:02": always in the header, updated live.
pub fn sync_indicator(state: &SyncState) -> Markup {
    let (class, text, at) = state.describe();
    html! {
        p id="sync" class={"sync " (class)} role="status" aria-live="polite" {
            (text)
            @if let Some(at) = at { " " (if state.today(at) { time_of_day(at) } else { time(at) }) }
        }
    }
}

pub struct JoinForm<'a> {
    pub invite: &'a str,
    pub school: &'a str,
    pub person: &'a str,
    pub role: &'a str,
}

pub fn join(csrf: &str, error: Option<&str>, form: &JoinForm<'_>) -> Markup {
    let body = html! {
        h1 { "Join your partnership" }
        p { "Your lead school gave you an invite: a line that starts with " code { "ws://" } " or " code { "wss://" } ". Paste it here, and every document your partnership shares will arrive on this computer by itself." }
        @if let Some(error) = error {
            div class="error-summary" role="alert" tabindex="-1" id="error-summary" {
                h2 { "There is a problem" }
                p { (error) }
            }
        }
        form method="post" action="/join" class="stack" {
            input type="hidden" name="csrf" value=(csrf);
            label for="invite" { "Invite from your lead school" }
            textarea id="invite" name="invite" rows="3" required autocomplete="off" spellcheck="false" { (form.invite) }
            label for="school" { "Your school's name" }
            input id="school" name="school" type="text" required value=(form.school) autocomplete="organization";
            label for="person" { "Your name" }
            input id="person" name="person" type="text" required value=(form.person) autocomplete="name";
            label for="role" { "Your role" }
            p class="hint" id="role-hint" { "For example headteacher, deputy head, English lead, SENCO, office manager or chair of governors." }
            input id="role" name="role" type="text" aria-describedby="role-hint" value=(form.role);
            button type="submit" { "Join the partnership" }
        }
    };
    layout("Join your partnership", None, body)
}

pub fn login(csrf: &str, error: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Log in to your school's partnerplan" }
        @if let Some(error) = error {
            div class="error-summary" role="alert" { h2 { "There is a problem" } p { (error) } }
        }
        form method="post" action="/login" class="stack narrow" {
            input type="hidden" name="csrf" value=(csrf);
            label for="password" { "The app's password" }
            input id="password" name="password" type="password" required autocomplete="current-password";
            button type="submit" { "Log in" }
        }
    };
    layout("Log in", None, body)
}

pub struct Home<'a> {
    pub partnership: Option<&'a str>,
    pub schools: &'a [String],
    pub documents: &'a [Summary],
    /// The local authority's comments to the partnership, read only.
    pub comments: &'a [(String, DocView)],
    pub conflicts: usize,
    pub can_edit: bool,
}

pub fn home(chrome: &Chrome<'_>, home: &Home<'_>) -> Markup {
    let title = home.partnership.unwrap_or("Your partnership");
    let body = html! {
        h1 { (title) }
        @if !home.schools.is_empty() {
            h2 { "Member schools" }
            ul class="schools" { @for s in home.schools { li { (s) } } }
        }
        @if home.conflicts > 0 {
            p class="notice" { strong { (plural(home.conflicts, "field waits", "fields wait")) } " for someone to choose between values two schools gave at once. Open the document to choose." }
        }
        (super::comments::for_schools(&home.comments.iter().map(|(id, view)| (id.as_str(), view)).collect::<Vec<_>>()))
        h2 { "Documents" }
        @if home.documents.is_empty() {
            p class="no-documents" { "No documents yet. They arrive by themselves when your partners share them." }
        } @else {
            table class="documents" {
                thead { tr { th scope="col" { "Document" } th scope="col" { "Kind" } th scope="col" { "Last changed" } } }
                tbody {
                    @for d in home.documents {
                        tr {
                            td { a href={"/doc/" (d.id)} { (if d.title.is_empty() { "Untitled" } else { &d.title }) } }
                            td { (d.kind.map(Kind::label).unwrap_or("Other document")) }
                            td { @match &d.last_change { Some((who, at)) => { (who) ", " (time(*at)) }, None => { "—" } } }
                        }
                    }
                }
            }
        }
        @if home.can_edit {
            h2 { "Start a new document" }
            form method="post" action="/new" class="stack narrow" {
                input type="hidden" name="csrf" value=(chrome.csrf);
                label for="new-kind" { "Kind of document" }
                select id="new-kind" name="kind" {
                    @for k in PARTNERSHIP_KINDS { option value=(k.key()) selected[k == Kind::ActionPlan] { (k.label()) } }
                }
                label for="new-title" { "Title" }
                input id="new-title" name="title" type="text" required;
                button type="submit" { "Create it" }
            }
        }
    };
    layout(title, Some(chrome), body)
}

/// A whole document page: its body, which live updates replace.
pub fn document(chrome: &Chrome<'_>, page: &DocPage<'_>) -> Markup {
    let body = html! {
        nav class="doc-links" aria-label="This document" {
            a href="/" { "← All documents" }
            @if page.version.is_some() {
                a href={"/doc/" (page.id)} { "The document as it is now" }
            } @else {
                a href={"/doc/" (page.id) "/history"} { "History" }
                a href={"/doc/" (page.id) "/print"} { "Print" }
            }
        }
        (document_body(page))
    };
    layout(&page.view.title, Some(chrome), body)
}

pub struct DocPage<'a> {
    pub id: &'a str,
    pub view: &'a DocView,
    pub heads: &'a [ChangeHash],
    pub editable: bool,
    /// This school, and the person using the app (for signing).
    pub school: &'a str,
    pub person: Option<&'a str>,
    /// What changed since the last signature, to mark.
    pub since: Option<&'a SinceSigned>,
    /// An earlier version ("as signed on 11 July 2017"): read only.
    pub version: Option<&'a str>,
    /// When each value in conflict was set, by `actor:op`.
    pub set_at: &'a HashMap<String, i64>,
    /// The schools' keys every signature shown is checked against.
    pub keys: &'a KnownKeys,
}

/// The part of a document page that changes when the document does.
pub fn document_body(page: &DocPage<'_>) -> Markup {
    let view = page.view;
    let heads: Vec<String> = page.heads.iter().map(|h| h.to_string()).collect();
    let conflicts = view.conflicts().len();
    let ctx = Ctx {
        editable: page.editable && page.version.is_none(),
        objectives: objective_numbers(view),
        marks: page.since.map(|s| s.marks.clone()).unwrap_or_default(),
        set_at: page.set_at.clone(),
    };
    html! {
        div id="doc" data-doc=(page.id) data-heads=(heads.join(",")) data-version=[page.version] {
            p class="kind" { (view.kind.label()) }
            h1 { (view.title) }
            @if let Some(version) = page.version {
                p class="notice version" { "This is the document " strong { (version) } ". It cannot be changed here." }
            }
            @if let Some(since) = page.since.filter(|s| s.changes > 0) {
                p class="notice" {
                    (plural(since.changes, "change", "changes")) " since it was signed on " (since.signed_on) " "
                    (if since.changes == 1 { "is" } else { "are" }) " marked "
                    span class="marked sample" { "like this" } ". "
                    a href={"/doc/" (page.id) "/signed/" (since.review)} { "See it as signed" }
                }
            }
            @if conflicts > 0 {
                p class="notice" role="note" { strong { (plural(conflicts, "field holds", "fields hold")) } " values two schools gave at once: each is shown where it is, with who gave it. Choose the one to keep." }
            }
            @if !page.editable && view.kind == Kind::Comments {
                p class="notice" { "These are the local authority's comments to your partnership. You can read them; only the local authority changes them." }
            } @else if !page.editable {
                p class="notice" { "You can read this document. Changes are made by the partnership's member schools." }
            }
            (contents(&ctx, view))
            @if page.version.is_none() {
                (reviews(&ctx, page))
            }
        }
    }
}

/// Reviews, their signatures (each checked: verified, transcribed from
/// paper, or not verified and why), and the forms to record, sign and
/// withdraw one.
fn reviews(ctx: &Ctx, page: &DocPage<'_>) -> Markup {
    let view = page.view;
    html! {
        section class="reviews" aria-labelledby="reviews-heading" {
            h2 id="reviews-heading" { "Reviews and signatures" }
            @if view.reviews.is_empty() {
                p { "No review has been recorded yet." }
            }
            @for review in view.reviews.iter().rev() {
                article class={"review" @if review.withdrawn.is_some() { " withdrawn" }} id={"review-" (review.id)} aria-labelledby={"review-h-" (review.id)} {
                    h3 id={"review-h-" (review.id)} {
                        "Reviewed on " (when_text(&review.date))
                        @if review.withdrawn.is_some() { " (withdrawn)" }
                    }
                    @if let Some(withdrawn) = render::withdrawal(review) {
                        p class="notice" { (withdrawn) " It can no longer be signed." }
                    }
                    @if !review.by.is_empty() { p { "By " (review.by) "." } }
                    @if let Some(note) = &review.note { p { (note) } }
                    @if review.signatures.is_empty() {
                        p { "Not signed yet." }
                    } @else {
                        ul class="signatures" {
                            @for s in &review.signatures {
                                (signature(page, review, s))
                            }
                        }
                        p { a href={"/doc/" (page.id) "/signed/" (review.id)} { "See the document as signed on " (when_text(&review.signatures.last().map(|s| s.date.clone()).unwrap_or_default())) } }
                    }
                    @if ctx.editable && review.withdrawn.is_none() {
                        form class="sign inline" data-post={"/doc/" (page.id) "/sign"} {
                            input type="hidden" name="review" value=(review.id);
                            label { span { "Your name" } input type="text" name="name" required value=(page.person.unwrap_or("")); }
                            label { span { "Signing as" }
                                select name="role" {
                                    @for (name, _) in SIGNATORY_ROLE.options { option value=(name) { (capitalise(name)) } }
                                }
                            }
                            button type="submit" { "Sign for " (page.school) }
                        }
                        details class="withdraw" {
                            summary { "Withdraw this review" }
                            form class="withdraw inline" data-post={"/doc/" (page.id) "/withdraw"} {
                                input type="hidden" name="review" value=(review.id);
                                label { span { "Why (optional)" } input type="text" name="reason"; }
                                button type="submit" { "Withdraw the review of " (when_text(&review.date)) }
                            }
                            p class="hint" { "A withdrawn review stays in the document and its history, marked with who withdrew it and when." }
                        }
                    }
                }
            }
            @if ctx.editable {
                form class="record stack narrow" data-post={"/doc/" (page.id) "/review"} {
                    h3 { "Record a review" }
                    label for="review-date" { "Date of the review" }
                    p class="hint" id="review-date-hint" { "When the review took place, such as 11 July 2017. Each signature carries the time it is given." }
                    input id="review-date" name="date" type="text" required aria-describedby="review-date-hint" value=(today_text());
                    label for="review-by" { "Reviewed by" }
                    input id="review-by" name="by" type="text" placeholder="The headteachers and members of the JCC";
                    label for="review-note" { "Note (optional)" }
                    textarea id="review-note" name="note" rows="2" {}
                    button type="submit" { "Record the review" }
                }
            }
        }
    }
}

/// One signature, with what checking it found.
fn signature(page: &DocPage<'_>, review: &Review, s: &Signature) -> Markup {
    let verification = verify(page.id, review, s, page.keys);
    let class = match &verification {
        Verification::Verified => "verified",
        Verification::Transcribed => "transcribed",
        Verification::NotVerified { .. } => "not-verified",
    };
    html! {
        li class={"signature " (class)} {
            "Signed by " (s.name.as_deref().unwrap_or("")) @if s.name.is_some() { ", " } (s.role) ", " (s.school) ", "
            @if s.signed_at.is_some() { "at " } @else { "on " }
            (render::signed_when(s)) ". "
            strong class="verification" { (verification.label()) ":" } " "
            (verification.explanation(s))
        }
    }
}

fn today_text() -> String {
    partnerplan_model::when::date_from_unix(crate::status::now_unix()).human()
}

/// A document's fields and tables: the action plan's areas as the
/// paper's grid, every other table from its schema.
fn contents(ctx: &Ctx, view: &DocView) -> Markup {
    html! {
        (fields(ctx, None, view.kind.schema().fields, &view.fields))
        @for table in &view.tables {
            @if view.kind == Kind::ActionPlan && table.key == "areas" {
                (plan_grid(ctx, table))
            } @else {
                (generic_table(ctx, None, table))
            }
        }
    }
}

struct Ctx {
    editable: bool,
    objectives: Vec<i64>,
    /// Cells and rows changed since the last signature.
    marks: HashSet<String>,
    /// When each value in conflict was set, by `actor:op`.
    set_at: HashMap<String, i64>,
}

fn objective_numbers(view: &DocView) -> Vec<i64> {
    view.live("objectives")
        .iter()
        .filter_map(|r| r.field("number").and_then(|f| f.value.as_i64()))
        .collect()
}

fn fields(ctx: &Ctx, row: Option<&str>, schema: &[Field], values: &[FieldView]) -> Markup {
    html! {
        @if !schema.is_empty() {
            dl class="fields" {
                @for f in schema {
                    @if let Some(v) = values.iter().find(|v| v.key == f.key) {
                        div class="field" {
                            dt { label for=(control_id(row, f.key)) { (f.label) } }
                            dd { (control(ctx, row, f, v, None)) }
                        }
                    }
                }
            }
        }
    }
}

fn control_id(row: Option<&str>, key: &str) -> String {
    format!("f-{}-{key}", row.unwrap_or("doc"))
}

/// One field as a control (or as text, read-only), with its conflict.
fn control(ctx: &Ctx, row: Option<&str>, f: &Field, v: &FieldView, label: Option<&str>) -> Markup {
    let id = control_id(row, f.key);
    let row_attr = row.unwrap_or("");
    let aria = label.unwrap_or(f.label);
    // A cell changed since the last signature is marked on the control
    // itself, so marking never rebuilds the cell someone is typing in.
    let marked = ctx.marks.contains(&id);
    let mark = if marked { " marked" } else { "" };
    let title = marked.then_some("Changed since it was signed");
    if !v.conflict.is_empty() {
        return conflict(ctx, row, f, v);
    }
    // A partnership lists its documents by address: a link by name
    // instead, never the address itself.
    if f.key == "url" {
        let target = v.text.trim_start_matches("automerge:");
        return html! {
            @if target.is_empty() { span class="empty" id=(id) { "—" } }
            @else { a id=(id) href={"/doc/" (target)} { "Open it" } }
        };
    }
    if !ctx.editable {
        return html! { div class={"value " (value_class(f, v)) (mark)} id=(id) title=[title] { (display(f, v)) } };
    }
    match f.ty {
        FieldType::Prose => html! {
            textarea id=(id) class={"prose" (mark)} title=[title] data-text="" data-row=(row_attr) data-key=(f.key) aria-label=[label.map(|_| aria)] rows=(rows_for(&v.text)) { (v.text) }
        },
        FieldType::Choice(choices) => html! {
            select id=(id) class={"choice " (value_class(f, v)) (mark)} title=[title] data-field="" data-row=(row_attr) data-key=(f.key) aria-label=[label.map(|_| aria)] {
                option value="" selected[v.text.is_empty()] { "Not set" }
                @for (name, _) in choices.options {
                    option value=(name) selected[v.text == *name] { (capitalise(name)) }
                }
            }
        },
        FieldType::Links => {
            let chosen: Vec<i64> = v
                .value
                .as_array()
                .map(|a| a.iter().filter_map(|n| n.as_i64()).collect())
                .unwrap_or_default();
            html! {
                fieldset class={"links" (mark)} title=[title] id=(id) data-links="" data-row=(row_attr) data-key=(f.key) {
                    legend { (aria) }
                    @if ctx.objectives.is_empty() { span class="hint" { "Add the plan's objectives first." } }
                    @for n in &ctx.objectives {
                        label class="link" {
                            input type="checkbox" value=(n) checked[chosen.contains(n)];
                            span class="visually-hidden" { "Objective " } (n)
                        }
                    }
                }
            }
        }
        FieldType::Responsibility => {
            let part = |p: &str| {
                v.value
                    .get(p)
                    .and_then(|x| x.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            html! {
                fieldset class={"responsibility" (mark)} title=[title] id=(id) data-responsibility="" data-row=(row_attr) data-key=(f.key) {
                    legend { (aria) }
                    label { span { "Person" } input type="text" data-part="person" value=(part("person")); }
                    label { span { "Role" } input type="text" data-part="role" value=(part("role")); }
                    label { span { "School" } input type="text" data-part="school" value=(part("school")); }
                }
            }
        }
        FieldType::When => html! {
            input id=(id) type="text" class={"when" (mark)} title=[title] data-field="" data-row=(row_attr) data-key=(f.key) value=(v.text) placeholder="A date or a term" aria-label=[label.map(|_| aria)];
        },
        FieldType::Integer | FieldType::Percent | FieldType::Money => html! {
            input id=(id) type="text" inputmode="numeric" class={"number" (mark)} title=[title] data-field="" data-row=(row_attr) data-key=(f.key) value=(v.text) aria-label=[label.map(|_| aria)];
        },
        FieldType::Line => html! {
            input id=(id) type="text" class=[marked.then_some("marked")] title=[title] data-field="" data-row=(row_attr) data-key=(f.key) value=(v.text) aria-label=[label.map(|_| aria)];
        },
    }
}

fn conflict(ctx: &Ctx, row: Option<&str>, f: &Field, v: &FieldView) -> Markup {
    html! {
        div class="conflict" id=(control_id(row, f.key)) role="group" aria-label={(f.label) ": values given at once"} {
            p { strong { "Two values were given at once." } " Choose the one to keep:" }
            ul {
                @for c in &v.conflict {
                    li {
                        span class={"value " (choice_class(f, &c.text))} { (if c.text.is_empty() { "(empty)" } else { &c.text }) }
                        " — set by " (c.who())
                        @if let Some(at) = ctx.set_at.get(&format!("{}:{}", c.actor, c.op)) { " on " (time(*at)) }
                        @if ctx.editable {
                            " "
                            button type="button" data-resolve="" data-row=(row.unwrap_or("")) data-key=(f.key) data-choice=(c.text) { "Keep “" (short_text(&c.text)) "”" }
                        }
                    }
                }
            }
        }
    }
}

fn display(f: &Field, v: &FieldView) -> Markup {
    match f.ty {
        FieldType::Links if !v.text.is_empty() => html! { "Links: objectives " (v.text) },
        FieldType::Choice(_) if !v.text.is_empty() => html! { (capitalise(&v.text)) },
        _ if v.text.is_empty() => html! { span class="empty" { "—" } },
        _ => html! { (v.text) },
    }
}

fn value_class(f: &Field, v: &FieldView) -> String {
    choice_class(f, &v.text)
}

fn choice_class(f: &Field, text: &str) -> String {
    match f.ty {
        FieldType::Choice(c) if std::ptr::eq(c, &STATUS) && !text.is_empty() => {
            format!("chip status-{text}")
        }
        _ => String::new(),
    }
}

fn column_class(f: &Field) -> &'static str {
    match f.ty {
        FieldType::Integer | FieldType::Percent | FieldType::Money => "narrow",
        FieldType::Prose => "wide",
        _ => "",
    }
}

fn rows_for(text: &str) -> usize {
    let lines: usize = text.lines().map(|l| 1 + l.chars().count() / 40).sum();
    lines.clamp(2, 12)
}

/// The action plan as the paper has it: one band per area, with its
/// objective links, key objectives, actions and timeline, intended
/// outcome and impact to date.
fn plan_grid(ctx: &Ctx, areas: &TableView) -> Markup {
    let schema = areas.table;
    let f = |key: &str| schema.field(key).expect("the plan's area fields");
    let actions = schema
        .tables
        .iter()
        .find(|t| t.key == "actions")
        .expect("actions");
    let impact = schema
        .tables
        .iter()
        .find(|t| t.key == "impact")
        .expect("impact");
    html! {
        section class="plan" aria-labelledby="areas-heading" {
            h2 id="areas-heading" { "Areas of the plan" }
            table class="plan-grid" {
                thead {
                    tr {
                        th scope="col" { "Area and objective links" }
                        th scope="col" { "Key objective(s)" }
                        th scope="col" { "Specific actions and timeline" }
                        th scope="col" { "Intended outcome / impact" }
                        th scope="col" { "Impact to date" }
                    }
                }
                tbody {
                    @for area in &areas.rows {
                        @if let Some(removal) = &area.removed {
                            (removed_row(ctx, area, removal, 5))
                        } @else {
                            @let id = area.id.as_str();
                            @let name = area.field("name").map(|v| v.text.clone()).unwrap_or_default();
                            tr id={"row-" (id)} class={"area" @if ctx.marks.contains(&format!("row-{id}")) { " marked" }} {
                                td {
                                    (cell(ctx, area, f("name"), "Area"))
                                    (cell(ctx, area, f("links"), "Objective links"))
                                    (row_tools(ctx, area, "area", &name))
                                }
                                td { (cell(ctx, area, f("keyObjectives"), &format!("Key objective(s) for {name}"))) }
                                td {
                                    ol class="actions" {
                                        @for action in area.table("actions").map(|t| t.rows.as_slice()).unwrap_or(&[]) {
                                            (action_item(ctx, action, actions))
                                        }
                                    }
                                    @if ctx.editable {
                                        button type="button" class="add" data-add="actions" data-parent=(id) { "Add an action to " (name) }
                                    }
                                    div class="timeline" {
                                        span class="label" aria-hidden="true" { "Timeline" }
                                        (cell(ctx, area, f("timeline"), &format!("Timeline for {name}")))
                                    }
                                }
                                td { (cell(ctx, area, f("outcome"), &format!("Intended outcome for {name}"))) }
                                td {
                                    ul class="impact" {
                                        @for entry in area.table("impact").map(|t| t.rows.as_slice()).unwrap_or(&[]) {
                                            @if let Some(removal) = &entry.removed {
                                                (removed_item(ctx, entry, removal))
                                            } @else {
                                                li id={"row-" (entry.id)} {
                                                    (cell(ctx, entry, impact.field("date").expect("date"), "Date of this impact"))
                                                    (cell(ctx, entry, impact.field("text").expect("text"), "Impact"))
                                                    (row_tools(ctx, entry, "impact entry", "this impact entry"))
                                                }
                                            }
                                        }
                                    }
                                    @if ctx.editable {
                                        button type="button" class="add" data-add="impact" data-parent=(id) { "Add impact to date for " (name) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if ctx.editable {
                button type="button" class="add" data-add="areas" { "Add an area" }
            }
        }
    }
}

fn action_item(ctx: &Ctx, action: &RowView, table: &Table) -> Markup {
    let f = |key: &str| table.field(key).expect("the plan's action fields");
    let what = action
        .field("what")
        .map(|v| short_text(&v.text))
        .unwrap_or_default();
    html! {
        @if let Some(removal) = &action.removed {
            (removed_item(ctx, action, removal))
        } @else {
            li id={"row-" (action.id)} class={"action" @if ctx.marks.contains(&format!("row-{}", action.id)) { " marked" }} {
                (cell(ctx, action, f("what"), "Action"))
                (cell(ctx, action, f("responsibility"), "Named responsibility"))
                div class="action-details" {
                    div { span class="label" aria-hidden="true" { "Review date" } (cell(ctx, action, f("reviewDate"), "Review date")) }
                    div { span class="label" aria-hidden="true" { "Status" } (cell(ctx, action, f("status"), "Status")) }
                }
                div class="notes" { span class="label" aria-hidden="true" { "Notes" } (cell(ctx, action, f("notes"), "Notes")) }
                (row_tools(ctx, action, "action", &what))
            }
        }
    }
}

fn cell(ctx: &Ctx, row: &RowView, f: &Field, label: &str) -> Markup {
    match row.field(f.key) {
        Some(v) => control(ctx, Some(&row.id), f, v, Some(label)),
        None => html! {},
    }
}

fn row_tools(ctx: &Ctx, row: &RowView, what: &str, name: &str) -> Markup {
    html! {
        @if ctx.editable {
            div class="row-tools" {
                button type="button" data-move="up" data-row=(row.id) aria-label={"Move " (what) " " (name) " up"} { "↑" }
                button type="button" data-move="down" data-row=(row.id) aria-label={"Move " (what) " " (name) " down"} { "↓" }
                button type="button" data-remove=(what) data-row=(row.id) aria-label={"Remove " (what) " " (name)} { "Remove" }
            }
        }
    }
}

fn removed_row(
    ctx: &Ctx,
    row: &RowView,
    removal: &partnerplan_model::view::Removal,
    span: usize,
) -> Markup {
    html! {
        tr id={"row-" (row.id)} class="removed" {
            td colspan=(span) { (removed_text(ctx, row, removal)) }
        }
    }
}

fn removed_item(ctx: &Ctx, row: &RowView, removal: &partnerplan_model::view::Removal) -> Markup {
    html! { li id={"row-" (row.id)} class="removed" { (removed_text(ctx, row, removal)) } }
}

fn removed_text(ctx: &Ctx, row: &RowView, removal: &partnerplan_model::view::Removal) -> Markup {
    html! {
        "“" (row.label()) "” was removed by " (removal.by) " on " (time(removal.at / 1000)) "."
        @if row.edited_after_removal { " Another school changed it at the same time, so their change is kept here." }
        @if ctx.editable {
            " " button type="button" data-restore="" data-row=(row.id) { "Bring it back" }
        }
    }
}

/// Any other table: a row per row, a column per field.
fn generic_table(ctx: &Ctx, parent: Option<&str>, table: &TableView) -> Markup {
    let schema = table.table;
    html! {
        section class="table" aria-label=(table.label) {
            h2 { (table.label) }
            table class="rows" {
                thead { tr {
                    @for f in schema.fields { th scope="col" class=(column_class(f)) { (f.label) } }
                    @if ctx.editable { th scope="col" class="tools" { span class="visually-hidden" { "Changes" } } }
                } }
                tbody {
                    @for row in &table.rows {
                        @if let Some(removal) = &row.removed {
                            (removed_row(ctx, row, removal, schema.fields.len() + 1))
                        } @else {
                            tr id={"row-" (row.id)} class=[ctx.marks.contains(&format!("row-{}", row.id)).then_some("marked")] {
                                @for f in schema.fields {
                                    td { (cell(ctx, row, f, &format!("{} of {} “{}”", f.label, table.row, row.label()))) }
                                }
                                @if ctx.editable { td { (row_tools(ctx, row, table.row, &row.label())) } }
                            }
                        }
                    }
                }
            }
            @if ctx.editable {
                button type="button" class="add" data-add=(table.key) data-parent=[parent] { "Add " (a_or_an(table.row)) " " (table.row) }
            }
        }
    }
}

pub fn message(title: &str, chrome: Option<&Chrome<'_>>, text: &str) -> Markup {
    layout(
        title,
        chrome,
        html! { h1 { (title) } p { (text) } p { a href="/" { "Back to your documents" } } },
    )
}

fn a_or_an(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

pub fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn short_text(s: &str) -> String {
    partnerplan_model::text::shorten(s, 40)
}

/// A moment, readable without the script ("29 November 2026, 14:02
/// UTC"); the page's script shows it in the reader's own time zone.
pub fn time(seconds: i64) -> Markup {
    let (date, clock) = utc_parts(seconds);
    let human = partnerplan_model::when::date_from_unix(seconds).human();
    html! { time datetime={(date) "T" (clock) ":00Z"} { (human) ", " (clock) " UTC" } }
}

/// Only the time of day ("14:02"), for today's moments.
pub fn time_of_day(seconds: i64) -> Markup {
    let (date, clock) = utc_parts(seconds);
    html! { time datetime={(date) "T" (clock) ":00Z"} data-style="time" { (clock) " UTC" } }
}

fn utc_parts(seconds: i64) -> (String, String) {
    let text = partnerplan_model::when::format_utc(seconds);
    let mut parts = text.split(' ');
    let date = parts.next().unwrap_or_default().to_string();
    let clock = parts.next().unwrap_or_default().to_string();
    (date, clock)
}

/// One change in a document's history, as a person reads it.
pub struct Change {
    pub time: i64,
    pub who: String,
    pub what: String,
}

pub fn history(chrome: &Chrome<'_>, id: &str, title: &str, changes: &[Change]) -> Markup {
    let body = html! {
        nav class="doc-links" aria-label="This document" {
            a href={"/doc/" (id)} { "← Back to the document" }
        }
        p class="kind" { "History" }
        h1 { (title) }
        form class="inline" method="get" action={"/doc/" (id) "/as-of"} {
            label for="as-of" { "See the document as it stood at the end of" }
            input id="as-of" name="date" type="date" required;
            button type="submit" { "Show it" }
        }
        h2 { "Who changed what, newest first" }
        @if changes.is_empty() { p { "No changes yet." } }
        table class="history" {
            thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } } }
            tbody {
                @for c in changes {
                    tr { td { (time(c.time)) } td { (c.who) } td { (c.what) } }
                }
            }
        }
    };
    layout(&format!("History of {title}"), Some(chrome), body)
}

/// A document as it prints: the paper's layout, every value in full, no
/// controls, the date it was printed, and a line for each school to sign.
pub fn print(view: &DocView, schools: &[String], printed: i64) -> Markup {
    let ctx = Ctx {
        editable: false,
        objectives: objective_numbers(view),
        marks: HashSet::new(),
        set_at: HashMap::new(),
    };
    let body = html! {
        div id="doc" class="print" {
            p class="kind" { (view.kind.label()) }
            h1 { (view.title) }
            (contents(&ctx, view))
            @if !view.reviews.is_empty() {
                h2 { "Reviews" }
                @for review in &view.reviews {
                    p {
                        "Monitored and reviewed"
                        @if !review.by.is_empty() { " by " (review.by) }
                        " on " (when_text(&review.date)) "."
                        @for s in &review.signatures {
                            br; "Signed by " (s.name.as_deref().unwrap_or("")) @if s.name.is_some() { ", " } (s.role) ", " (s.school) ", on " (when_text(&s.date)) "."
                        }
                    }
                }
            }
            section class="signature-lines" {
                h2 { "Signatures" }
                @for school in schools {
                    @for role in ["Headteacher", "Chair of governors"] {
                        div class="signature-line" {
                            span { (school) ", " (role) }
                            span class="line" { "Signed" }
                            span class="line" { "Name" }
                            span class="line short" { "Date" }
                        }
                    }
                }
            }
            p class="printed" { "Printed on " (partnerplan_model::when::date_from_unix(printed).human()) "." }
        }
        p class="print-tools" { button type="button" data-print="" { "Print" } }
    };
    layout(&view.title, None, body)
}
