//! `GET /ui/events`: every committed change as a Server-Sent Event, so open pages update
//! without reloading.
//!
//! The stream carries only what changed (`{"kind","name","op"}` as `event: change`); each page
//! decides whether the change concerns it and fetches its own fresh HTML, so there is one way
//! to render a page whether it is loaded or updated. A receiver that fell behind the broadcast
//! channel has missed changes it cannot know: it gets `event: refresh`, telling the page to
//! refetch everything. Comments every 15 s keep proxies from closing an idle stream. The
//! stream ends when the server is told to stop, so an open tab never holds up a shutdown.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::api::AppState;
use crate::store::{Change, ChangeOp};

/// A change as the browser receives it.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct ChangeEvent<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub op: &'static str,
}

/// The event for one change.
pub fn change_event(c: &Change) -> Event {
    let op = match c.op {
        ChangeOp::Created => "Created",
        ChangeOp::Updated => "Updated",
        ChangeOp::Deleted => "Deleted",
    };
    let data = serde_json::to_string(&ChangeEvent {
        kind: &c.kind,
        name: &c.name,
        op,
    })
    .expect("three strings always serialize");
    Event::default().event("change").data(data)
}

/// Turns a broadcast receiver into the event stream: changes as they come, `refresh` after a
/// lag, and the end when the channel closes.
pub fn change_stream(rx: broadcast::Receiver<Change>) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(change) => change_event(&change),
            Err(RecvError::Lagged(missed)) => Event::default()
                .event("refresh")
                .data(format!("{{\"missed\":{missed}}}")),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    })
}

pub async fn events_stream(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribe before answering, so nothing committed after the page's fetch is missed.
    let rx = state.backend.subscribe();
    // Counted while the stream lives: axum drops it when the client goes.
    let client = crate::metrics::SseClient::connect();
    let hello = stream::once(async { Ok(Event::default().event("hello").data("{}")) });
    let stream = hello
        .chain(change_stream(rx))
        .take_until(crate::signals::terminated())
        .map(move |event| {
            let _counted = &client;
            event
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(name: &str) -> Change {
        Change {
            kind: "TestRun".into(),
            name: name.into(),
            op: ChangeOp::Updated,
        }
    }

    async fn render(events: Vec<Result<Event, Infallible>>) -> String {
        // An Event's wire form is what axum writes; render through a real SSE body.
        use axum::response::IntoResponse;
        let body = Sse::new(stream::iter(events)).into_response().into_body();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn each_change_becomes_one_change_event_and_a_closed_channel_ends_the_stream() {
        let (tx, rx) = broadcast::channel(8);
        tx.send(change("demo-a")).unwrap();
        tx.send(change("demo-b")).unwrap();
        drop(tx);
        let events: Vec<_> = change_stream(rx).collect().await;
        let wire = render(events).await;
        assert_eq!(
            wire,
            "event: change\ndata: {\"kind\":\"TestRun\",\"name\":\"demo-a\",\"op\":\"Updated\"}\n\n\
             event: change\ndata: {\"kind\":\"TestRun\",\"name\":\"demo-b\",\"op\":\"Updated\"}\n\n"
        );
    }

    #[tokio::test]
    async fn a_receiver_that_fell_behind_is_told_to_refresh() {
        let (tx, rx) = broadcast::channel(2);
        for i in 0..5 {
            tx.send(change(&format!("demo-{i}"))).unwrap();
        }
        drop(tx);
        let events: Vec<_> = change_stream(rx).collect().await;
        let wire = render(events).await;
        assert!(
            wire.starts_with("event: refresh\ndata: {\"missed\":3}\n\n"),
            "{wire}"
        );
        assert!(wire.contains("demo-3") && wire.contains("demo-4") && !wire.contains("demo-2"));
    }
}
