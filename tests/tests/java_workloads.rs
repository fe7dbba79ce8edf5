//! OpenJDK workloads, zero-config: `conf-run java ...` from the application
//! directory (tests/apps/java, compiled by the test with javac), compared
//! with a native run; com.sun.net.httpserver answering clients on the host.

use std::time::Duration;

use conf_e2e::apps::{first_difference, have, http_get, http_request, noise, sha256_hex, App};
use conf_e2e::process::Output;
use conf_e2e::run_with_timeout;

const START: Duration = Duration::from_secs(60);
const REQ: Duration = Duration::from_secs(20);

fn java_missing() -> bool {
    if have("java") && have("javac") && have("jar") {
        return false;
    }
    eprintln!("skipped: java, javac or jar is not installed");
    true
}

/// A copy of tests/apps/java with the sources compiled into `classes/`
/// (and the resource copied next to them), before conf-run trusts the
/// directory.
fn compiled_app() -> App {
    let app = App::new("java");
    let sources: Vec<String> = std::fs::read_dir(app.path("src/app"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "java"))
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    let mut argv = vec!["javac", "-d", "classes"];
    argv.extend(sources.iter().map(String::as_str));
    let out = run_with_timeout(&mut app.native_cmd(&argv), Duration::from_secs(120));
    assert_eq!(out.code(), Some(0), "javac failed:\n{}", out.describe());
    std::fs::copy(
        app.path("src/app/message.txt"),
        app.path("classes/app/message.txt"),
    )
    .unwrap();
    app
}

#[track_caller]
fn assert_same(app: &App, what: &str, native: &Output, enclave: &Output, argv: &[&str]) {
    assert_eq!(
        native.code(),
        Some(0),
        "{what}: fails natively:\n{}",
        native.describe()
    );
    if enclave.code() != native.code() || enclave.stdout != native.stdout {
        panic!(
            "{what}: differs from native (native: {}, enclave: {})\n{}\n{}\n{}",
            native.how(),
            enclave.how(),
            first_difference(&native.stdout_str(), &enclave.stdout_str()),
            enclave.describe(),
            app.diagnose("debug", &[], argv, 60)
        );
    }
}

#[track_caller]
fn assert_quiet(what: &str, out: &Output) {
    assert!(
        out.stderr.is_empty(),
        "{what}: stderr is not empty (zero-config must print nothing extra):\n{}",
        out.describe()
    );
}

/// Hello with `-cp classes`.
#[test]
fn java_hello() {
    if java_missing() {
        return;
    }
    let app = compiled_app();
    let argv = ["java", "-cp", "classes", "app.Hello", "a", "b c"];
    let native = app.native(&argv);
    let enclave = app.run(&[], &argv);
    assert_same(&app, "java app.Hello", &native, &enclave, &argv);
    assert!(
        enclave.stdout_str().starts_with("Hello from Java "),
        "{}",
        enclave.describe()
    );
    assert_quiet("java app.Hello", &enclave);
}

/// `java -jar app.jar` of a jar built here (Main-Class app.Hello, with a
/// resource inside).
#[test]
fn java_jar_built_in_the_test() {
    if java_missing() {
        return;
    }
    let app = compiled_app();
    let jar = run_with_timeout(
        &mut app.native_cmd(&[
            "jar",
            "--create",
            "--file",
            "app.jar",
            "--main-class",
            "app.Hello",
            "-C",
            "classes",
            ".",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(jar.code(), Some(0), "jar failed:\n{}", jar.describe());
    // only the jar: the class files must come from it
    std::fs::remove_dir_all(app.path("classes")).unwrap();
    let argv = ["java", "-jar", "app.jar", "x", "y"];
    let native = app.native(&argv);
    let enclave = app.run(&[], &argv);
    assert_same(&app, "java -jar app.jar", &native, &enclave, &argv);
    assert!(
        enclave.stdout_str().contains("args x,y\n")
            && enclave.stdout_str().contains("resource found\n"),
        "{}",
        enclave.describe()
    );
    assert_quiet("java -jar app.jar", &enclave);
}

/// An ExecutorService on 8 threads (invokeAll, a latch, CompletableFuture),
/// a parallel stream; NullPointerExceptions from null field reads (in the
/// interpreter and in a hot, compiled loop) caught by the program;
/// StackOverflowError caught twice; ArithmeticException; files in the tmpfs
/// /tmp: the same lines as natively.
#[test]
fn java_tour_threads_npe_stackoverflow_same_as_native() {
    if java_missing() {
        return;
    }
    let app = compiled_app();
    let argv = ["java", "-cp", "classes", "app.Tour"];
    let native = app.native(&argv);
    let enclave = app.run(&[], &argv);
    assert_same(&app, "java app.Tour", &native, &enclave, &argv);
    let text = enclave.stdout_str();
    for needle in [
        "caught NPE: Cannot read field \"value\"",
        "caught StackOverflowError, depth > 1000: true",
        "primes below 800000: 63951",
        "tour done",
    ] {
        assert!(
            text.contains(needle),
            "missing {needle:?}:\n{}",
            enclave.describe()
        );
    }
    assert_quiet("java app.Tour", &enclave);
}

/// com.sun.net.httpserver answers a host client: concurrent GETs served by
/// a pool, a 1 MB POST, then GET /quit ends it with status 0.
#[test]
fn java_httpserver_answers_host_client() {
    if java_missing() {
        return;
    }
    let app = compiled_app();
    let mut server = app.spawn(&[], &["java", "-cp", "classes", "app.HttpApp"]);
    let port = server.expect_port("PORT ", START);
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
                Ok((200, b)) if b == "hello from java\n" => {}
                other => problems.push(format!("GET /hello: {other:?}")),
            }
        }
    }
    match http_get(port, "/threads", REQ) {
        Ok(r) if r.status == 200 && r.body_str() == "true true\n" => {}
        other => problems.push(format!(
            "GET /threads: {:?}",
            other.map(|r| (r.status, r.body_str()))
        )),
    }
    let body = noise(1 << 20, 21);
    let want = format!("{} {}\n", body.len(), sha256_hex(&body));
    match http_request(port, "POST", "/sha256", &body, REQ) {
        Ok(r) if r.status == 200 && r.body_str() == want => {}
        other => problems.push(format!(
            "POST /sha256 (1 MiB): expected {want:?}, got {:?}",
            other.map(|r| (r.status, r.body_str()))
        )),
    }
    let quit = http_get(port, "/quit", REQ);
    let out = server.finish(Duration::from_secs(30));
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        out.describe()
    );
    assert!(
        matches!(&quit, Ok(r) if r.status == 200),
        "GET /quit: {quit:?}\n{}",
        out.describe()
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(
        out.stdout_str(),
        format!("PORT {port}\nserved 43 requests\n"),
        "{}",
        out.describe()
    );
    assert_quiet("java app.HttpApp", &out);
}
