//! Node.js workloads, zero-config: `conf-run node ...` from the
//! application directory (tests/apps/node), compared with a native run; an
//! http server answering clients on the host; SIGTERM sent to conf-run
//! reaching the program's handler.

use std::time::Duration;

use conf_e2e::apps::{first_difference, have, http_get, http_request, noise, sha256_hex, App};
use conf_e2e::process::Output;

const START: Duration = Duration::from_secs(30);
const REQ: Duration = Duration::from_secs(20);

fn node_missing() -> bool {
    if have("node") {
        return false;
    }
    eprintln!("skipped: node is not installed");
    true
}

#[track_caller]
fn assert_quiet(what: &str, out: &Output) {
    assert!(
        out.stderr.is_empty(),
        "{what}: stderr is not empty (zero-config must print nothing extra):\n{}",
        out.describe()
    );
}

/// fs/promises (in the app directory and in the tmpfs /tmp), crypto
/// (hashes, HMAC, randomBytes, randomUUID, pbkdf2, scrypt, AES-GCM,
/// ECDSA), worker_threads (four workers, a SharedArrayBuffer with
/// Atomics), setTimeout/setInterval/setImmediate/nextTick ordering: the
/// same lines as natively.
#[test]
fn node_tour_same_as_native() {
    if node_missing() {
        return;
    }
    let app = App::new("node");
    let argv = ["node", "tour.js"];
    let native = app.native(&argv);
    assert_eq!(
        native.code(),
        Some(0),
        "the tour fails natively:\n{}",
        native.describe()
    );
    let enclave = app.run(&[], &argv);
    if enclave.code() != Some(0) || enclave.stdout != native.stdout {
        panic!(
            "node tour.js differs from native (native: {}, enclave: {})\n{}\n{}\n{}",
            native.how(),
            enclave.how(),
            first_difference(&native.stdout_str(), &enclave.stdout_str()),
            enclave.describe(),
            app.diagnose("debug", &[], &argv, 60)
        );
    }
    assert!(enclave.stdout_str().ends_with("tour done\n"));
    assert_quiet("node tour.js", &enclave);
}

/// Start server.js in the enclave and wait for its port.
fn start_server(app: &App) -> (conf_e2e::apps::Running, u16) {
    let mut server = app.spawn(&[], &["node", "server.js"]);
    let port = server.expect_port("PORT ", START);
    (server, port)
}

/// Send SIGTERM and wait for the end: the handler closes the server and
/// the program ends with status 3 once its event loop is empty.
fn terminate(server: conf_e2e::apps::Running) -> Output {
    // give the last responses time to leave before the signal
    std::thread::sleep(Duration::from_millis(100));
    server.signal("TERM");
    server.finish(Duration::from_secs(20))
}

/// The http server answers a host client: concurrent GETs, a file read
/// with fs/promises, crypto hashes and random bytes, a computation in a
/// worker thread, a 1 MB POST echoed back; SIGTERM then ends it through
/// its handler.
#[test]
fn node_http_server_answers_host_client() {
    if node_missing() {
        return;
    }
    let app = App::new("node");
    let (server, port) = start_server(&app);
    let mut problems = Vec::new();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                (0..5)
                    .map(|_| http_get(port, "/hello", REQ).map(|r| (r.status, r.body_str())))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for c in clients {
        for r in c.join().unwrap() {
            match r {
                Ok((200, b)) if b == "hello from node\n" => {}
                other => problems.push(format!("GET /hello: {other:?}")),
            }
        }
    }
    let notes = std::fs::read(app.path("data/notes.txt")).unwrap();
    match http_get(port, "/file", REQ) {
        Ok(r) if r.status == 200 && r.body == notes => {}
        other => problems.push(format!(
            "GET /file: {:?}",
            other.map(|r| (r.status, r.body_str()))
        )),
    }
    match http_get(port, "/hash?s=abc", REQ) {
        Ok(r) if r.status == 200 && r.body_str() == sha256_hex(b"abc") => {}
        other => problems.push(format!(
            "GET /hash?s=abc: {:?}",
            other.map(|r| (r.status, r.body_str()))
        )),
    }
    let r1 = http_get(port, "/random?n=16", REQ).map(|r| r.body_str());
    let r2 = http_get(port, "/random?n=16", REQ).map(|r| r.body_str());
    match (&r1, &r2) {
        (Ok(a), Ok(b))
            if a.len() == 32
                && b.len() == 32
                && a != b
                && a.chars().all(|c| c.is_ascii_hexdigit()) => {}
        _ => problems.push(format!("GET /random?n=16 twice: {r1:?} {r2:?}")),
    }
    match http_get(port, "/worker?n=1000000", REQ) {
        Ok(r) if r.status == 200 && r.body_str() == "500000500000" => {}
        other => problems.push(format!(
            "GET /worker?n=1000000: {:?}",
            other.map(|r| (r.status, r.body_str()))
        )),
    }
    let body = noise(1 << 20, 11);
    match http_request(port, "POST", "/echo", &body, REQ) {
        Ok(r)
            if r.status == 200
                && r.body == body
                && r.header("x-sha256") == Some(sha256_hex(&body).as_str()) => {}
        other => problems.push(format!(
            "POST /echo (1 MiB): {:?}",
            other.map(|r| (
                r.status,
                r.body.len(),
                r.header("x-sha256").map(String::from)
            ))
        )),
    }
    match http_get(port, "/nope", REQ) {
        Ok(r) if r.status == 404 => {}
        other => problems.push(format!("GET /nope: {other:?}")),
    }
    let out = terminate(server);
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        out.describe()
    );
    assert_eq!(
        out.code(),
        Some(3),
        "after SIGTERM the handler sets exit code 3:\n{}",
        out.describe()
    );
    assert_eq!(
        out.stdout_str(),
        format!("PORT {port}\nSIGTERM: served 47 requests\n"),
        "{}",
        out.describe()
    );
    assert_quiet("node server.js", &out);
}

/// SIGTERM sent to conf-run reaches process.on('SIGTERM'): the handler
/// runs (it prints), closes the server, and the program ends with the
/// status it chose (3), not 143.
#[test]
fn node_sigterm_handler_runs() {
    if node_missing() {
        return;
    }
    let app = App::new("node");
    let (server, port) = start_server(&app);
    let out = terminate(server);
    assert!(
        !out.timed_out,
        "conf-run did not end within 20 s of SIGTERM:\n{}",
        out.describe()
    );
    assert!(
        out.stdout_str().contains("SIGTERM: served 0 requests"),
        "the SIGTERM handler did not run:\n{}",
        out.describe()
    );
    assert_eq!(out.code(), Some(3), "{}", out.describe());
    assert_eq!(
        out.stdout_str(),
        format!("PORT {port}\nSIGTERM: served 0 requests\n")
    );
}
