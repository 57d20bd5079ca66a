//! The admin route table over both listeners of the real daemon: every admin route asked
//! for over TCP is refused (403, or 404) and changes nothing; the same route reaches its
//! handler on the control socket.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use bootd::http::ADMIN_ROUTES;
use common::daemon::Daemon;

const MAC: &str = "52:54:00:00:0a:01";

const NODE: &str = r#"
[[nodes]]
mac = "52:54:00:00:0a:01"
hostname = "first"
"#;

/// A body each admin route could act on if it were let through.
fn body_for(label: &str) -> &'static str {
    match label {
        "node_add" => r#"{"mac": "52:54:00:00:0a:02", "hostname": "added"}"#,
        "node_set" => r#"{"hostname": "changed"}"#,
        "reprovision" => r#"{"macs": ["52:54:00:00:0a:01"]}"#,
        "relay_retry" | "relay_drop" => r#"{"all_dead": true}"#,
        _ => "{}",
    }
}

fn request_args<'a>(method: &'a str, body: &'a str) -> Vec<&'a str> {
    vec![
        "-X",
        method,
        "-H",
        "Content-Type: application/json",
        "--data-raw",
        body,
    ]
}

#[test]
fn admin_routes_answer_only_on_the_control_socket() {
    let d = Daemon::start(NODE);
    let (status, nodes_before) = d.curl(&[], "/api/v1/nodes");
    assert_eq!(status, 200, "{nodes_before}");
    assert!(nodes_before.contains(MAC), "{nodes_before}");
    assert!(!ADMIN_ROUTES.is_empty());

    for route in ADMIN_ROUTES {
        let path = route.pattern.replace("{mac}", MAC);
        let body = body_for(route.label());
        let (status, answer) = d.curl(&request_args(route.method, body), &path);
        assert!(
            status == 403 || status == 404,
            "{} {path} over TCP answered {status}: {answer}",
            route.method
        );
        if status == 403 {
            assert!(
                answer.contains("\"error\"")
                    && answer.contains("only available on the control socket"),
                "{} {path}: {answer}",
                route.method
            );
        }
        let (_, nodes_now) = d.curl(&[], "/api/v1/nodes");
        assert_eq!(
            nodes_now, nodes_before,
            "{} {path} over TCP changed the node list",
            route.method
        );
    }
    let (status, _) = d.curl(&[], "/metrics");
    assert_eq!(status, 200);

    // The same routes on the control socket reach their handlers (whatever those answer
    // to these bodies, it is not a refusal or an unknown route).
    for route in ADMIN_ROUTES {
        let path = route.pattern.replace("{mac}", MAC);
        let body = body_for(route.label());
        let (status, answer) = d.curl_control(&request_args(route.method, body), &path);
        assert_ne!(
            status, 403,
            "{} {path} on the control socket: {answer}",
            route.method
        );
        assert!(
            !answer.contains("no such route or method") && status != 0,
            "{} {path} on the control socket: {status} {answer}",
            route.method
        );
    }
    let (_, nodes_after) = d.curl(&[], "/api/v1/nodes");
    assert!(
        nodes_after.contains("52:54:00:00:0a:02"),
        "node_add over the control socket took effect: {nodes_after}"
    );
}
