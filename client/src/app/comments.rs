//! The local authority's comments to a partnership it views: the form it
//! writes one with (from the overview), and how the partnership's schools
//! read them beside their documents. A local authority writes nothing
//! into a partnership's documents: each comment goes into its own
//! comments document for that partnership, which the relay lets only it
//! write and only that partnership read (`Library::comment`).

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{Markup, html};
use partnerplan_model::when::date_from_unix;
use partnerplan_model::{DocView, Kind};
use partnerplan_web::guard::constant_time_eq;
use serde::Deserialize;

use super::county::la_nav;
use super::pages::{self, Chrome};
use super::web::{Shared, author, chrome, failure, who};
use crate::error::ClientError;
use crate::sync::KnownPartnership;

use crate::comments::THE_PARTNERSHIP;

/// The longest comment taken: far more than a page of comments.
const MAX_COMMENT_CHARS: usize = 20_000;

/// The partnership this school views with this id.
fn viewed(state: &Shared, id: &str) -> Option<KnownPartnership> {
    state
        .library
        .partnerships()
        .into_iter()
        .find(|p| p.id == id && p.viewer())
}

#[derive(Deserialize, Default)]
pub struct Saved {
    #[serde(default)]
    saved: String,
}

#[derive(Deserialize, Default)]
pub struct CommentInput {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    officer: String,
    #[serde(default)]
    concerning: String,
    #[serde(default)]
    text: String,
}

/// A field the form sends back with what is wrong with it.
struct Problem {
    field: &'static str,
    sentence: String,
}

pub async fn form(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(saved): Query<Saved>,
) -> Response {
    let Some(partnership) = viewed(&state, &id) else {
        return not_viewed();
    };
    let person = who(&state)
        .ok()
        .and_then(|w| w.person().map(str::to_string));
    let input = CommentInput {
        date: date_from_unix(crate::status::now_unix()).human(),
        officer: person.unwrap_or_default(),
        concerning: THE_PARTNERSHIP.into(),
        ..Default::default()
    };
    tokio::task::block_in_place(|| {
        render(
            &state,
            &partnership,
            &input,
            &[],
            !saved.saved.is_empty(),
            StatusCode::OK,
        )
    })
}

pub async fn write(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Form(input): Form<CommentInput>,
) -> Response {
    if !constant_time_eq(&input.csrf, &state.csrf) {
        return (
            StatusCode::FORBIDDEN,
            Html(pages::message("The comment was not saved", None, "The form did not come from one of this app's pages, so nothing was saved. Go back, reload the page and write the comment again.").into_string()),
        )
            .into_response();
    }
    let who = match who(&state) {
        Ok(who) => who,
        Err(redirect) => return redirect.into_response(),
    };
    let Some(partnership) = viewed(&state, &id) else {
        return not_viewed();
    };
    let mut problems = Vec::new();
    if input.officer.trim().is_empty() {
        problems.push(Problem {
            field: "comment-officer",
            sentence: "Enter the name of the officer writing the comment".into(),
        });
    }
    if input.text.trim().is_empty() {
        problems.push(Problem {
            field: "comment-text",
            sentence: "Enter the comment".into(),
        });
    } else if input.text.chars().count() > MAX_COMMENT_CHARS {
        problems.push(Problem {
            field: "comment-text",
            sentence: format!("The comment is longer than {MAX_COMMENT_CHARS} characters: split it into two comments"),
        });
    }
    if let Err(error) = partnerplan_model::When::parse(input.date.trim()) {
        problems.push(Problem {
            field: "comment-date",
            sentence: format!(
                "The date could not be read ({error}): enter a date such as 14 March 2025"
            ),
        });
    }
    if !problems.is_empty() {
        return tokio::task::block_in_place(|| {
            render(
                &state,
                &partnership,
                &input,
                &problems,
                false,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        });
    }
    let concerning = if input.concerning.trim().is_empty() {
        THE_PARTNERSHIP
    } else {
        input.concerning.trim()
    };
    let values: Vec<(String, String)> = [
        ("date", input.date.trim()),
        ("officer", input.officer.trim()),
        ("concerning", concerning),
        ("text", input.text.trim()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let author = author(&who);
    let written = tokio::task::block_in_place(|| {
        state
            .library
            .comment(&partnership, who.actor(), &author, &values)
    });
    match written {
        // The library's change notice wakes the sync.
        Ok(_) => Redirect::to(&format!("/partnerships/{}/comment?saved=1", partnership.id))
            .into_response(),
        Err(ClientError::Model(error)) => tokio::task::block_in_place(|| {
            render(
                &state,
                &partnership,
                &input,
                &[Problem {
                    field: "comment-text",
                    sentence: error.to_string(),
                }],
                false,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }),
        Err(error) => failure(&error.to_string()),
    }
}

fn not_viewed() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(pages::message("No such partnership", None, "Your school does not view that partnership, so it cannot comment to it. Go back to the partnerships you view.").into_string()),
    )
        .into_response()
}

/// The form, with what was typed and what is wrong, and the comments
/// already written to this partnership.
fn render(
    state: &Shared,
    partnership: &KnownPartnership,
    input: &CommentInput,
    problems: &[Problem],
    saved: bool,
    status: StatusCode,
) -> Response {
    let who = match who(state) {
        Ok(who) => who,
        Err(refused) => return refused.into_response(),
    };
    let library = &state.library;
    // What a comment may be about: the partnership's documents this
    // computer holds, by title and kind.
    let ids: Vec<_> = partnership.document_ids().collect();
    let mut concerning: Vec<String> = library
        .read_kinds(
            &ids,
            &[
                Kind::ActionPlan,
                Kind::ProgressReport,
                Kind::Partnership,
                Kind::Memorandum,
                Kind::Outcomes,
            ],
        )
        .unwrap_or_default()
        .iter()
        .map(|(_, view)| format!("{} ({})", view.title, view.kind.label().to_lowercase()))
        .collect();
    concerning.sort();
    concerning.insert(0, THE_PARTNERSHIP.to_string());
    if !concerning.contains(&input.concerning) && !input.concerning.is_empty() {
        concerning.push(input.concerning.clone());
    }
    let written = library
        .comments_to(&partnership.id)
        .ok()
        .flatten()
        .and_then(|id| library.read(&id).ok().flatten())
        .map(|(view, _)| view);
    let error_for = |field: &str| problems.iter().find(|p| p.field == field);
    let field_error = |field: &str| {
        html! {
            @if let Some(problem) = error_for(field) {
                p class="field-error" id={(field) "-error"} { span class="visually-hidden" { "Error: " } (problem.sentence) }
            }
        }
    };
    let described = |field: &str, hint: Option<&str>| -> Option<String> {
        let mut ids = Vec::new();
        if let Some(hint) = hint {
            ids.push(hint.to_string());
        }
        if error_for(field).is_some() {
            ids.push(format!("{field}-error"));
        }
        (!ids.is_empty()).then(|| ids.join(" "))
    };
    let title = format!("Write a comment to {}", partnership.name);
    let body = html! {
        (la_nav(""))
        @if !problems.is_empty() {
            div class="error-summary" role="alert" aria-labelledby="error-summary-title" tabindex="-1" {
                h2 id="error-summary-title" { "There is a problem" }
                ul {
                    @for problem in problems {
                        li { a href={"#" (problem.field)} { (problem.sentence) } }
                    }
                }
            }
        }
        @if saved {
            div class="notice saved" role="status" {
                p { "Your comment was saved. " (partnership.name) "'s schools receive it when this computer next syncs with your relay; no other partnership sees it." }
            }
        }
        h1 { (title) }
        p { "Your comments go to " (partnership.name) "'s schools only, who can read them but not change them. Nothing is written into the partnership's own documents." }
        form method="post" action={"/partnerships/" (partnership.id) "/comment"} class="stack narrow" novalidate {
            input type="hidden" name="csrf" value=(state.csrf);
            label for="comment-date" { "Date" }
            span class="hint" id="comment-date-hint" { "For example, 14 March 2025" }
            (field_error("comment-date"))
            input id="comment-date" name="date" type="text" value=(input.date) aria-describedby=[described("comment-date", Some("comment-date-hint"))] aria-invalid=[error_for("comment-date").map(|_| "true")];
            label for="comment-officer" { "Officer" }
            (field_error("comment-officer"))
            input id="comment-officer" name="officer" type="text" autocomplete="name" value=(input.officer) aria-describedby=[described("comment-officer", None)] aria-invalid=[error_for("comment-officer").map(|_| "true")];
            label for="comment-concerning" { "Concerning" }
            select id="comment-concerning" name="concerning" {
                @for option in &concerning {
                    option value=(option) selected[*option == input.concerning] { (option) }
                }
            }
            label for="comment-text" { "Comment" }
            (field_error("comment-text"))
            textarea id="comment-text" name="text" rows="8" aria-describedby=[described("comment-text", None)] aria-invalid=[error_for("comment-text").map(|_| "true")] { (input.text) }
            button type="submit" { "Send the comment" }
        }
        section aria-labelledby="written-heading" {
            h2 id="written-heading" { "Comments you have written to " (partnership.name) }
            @match &written {
                Some(view) if !view.live("comments").is_empty() => { (entries(view)) }
                _ => { p { "None yet." } }
            }
        }
    };
    let sync = state.sync.borrow().clone();
    let chrome: Chrome<'_> = chrome(state, &who, &sync);
    (
        status,
        Html(pages::layout(&title, Some(&chrome), body).into_string()),
    )
        .into_response()
}

/// A comments document's entries, newest first: date, officer and local
/// authority, what each concerns, and the comment.
pub fn entries(view: &DocView) -> Markup {
    let authority = view
        .field("localAuthority")
        .map(|f| f.text.clone())
        .filter(|t| !t.is_empty());
    let text = |row: &partnerplan_model::RowView, key: &str| {
        row.field(key).map(|f| f.text.clone()).unwrap_or_default()
    };
    html! {
        ol class="comments plain" reversed {
            @for row in view.live("comments").into_iter().rev() {
                li class="comment" {
                    p class="comment-by" {
                        strong { (text(row, "officer")) }
                        @if let Some(authority) = &authority { ", " (authority) }
                        ", " (text(row, "date"))
                    }
                    @let about = text(row, "concerning");
                    @if !about.is_empty() { p class="hint" { "Concerning: " (about) } }
                    div class="comment-text" {
                        @for line in text(row, "text").lines() { p { (line) } }
                    }
                }
            }
        }
    }
}

/// The local authority's comments to the school's partnership, for its
/// home page: each comments document the relay listed as another
/// school's alone, read only.
pub fn for_schools(views: &[(&str, &DocView)]) -> Markup {
    html! {
        @if !views.is_empty() {
            section class="la-comments" aria-labelledby="la-comments-heading" {
                h2 id="la-comments-heading" { "Comments from the local authority" }
                p class="hint" { "The local authority writes these to your partnership. You can read them; only the local authority changes them." }
                @for (id, view) in views {
                    h3 { a href={"/doc/" (id)} { (view.title) } }
                    (entries(view))
                }
            }
        }
    }
}
