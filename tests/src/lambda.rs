//! Functions on the real Lambda runtime: `cargo lambda watch --only-lambda-apis` serves the
//! Runtime API, the Invoke API and Function URLs on a loopback port, and the tests start the
//! already built function binaries against it with the variables Lambda sets. One emulator
//! serves any number of functions, each polling its own `/.rt/<function>` path.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::free_port;

/// The cargo-lambda to run (`PAIL_CARGO_LAMBDA`, set by `tests/run.sh` to the one in `.venv`);
/// `None` skips the test, unless `PAIL_REQUIRE_LAMBDA=1`.
pub fn cargo_lambda() -> Option<String> {
    match std::env::var("PAIL_CARGO_LAMBDA") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var("PAIL_REQUIRE_LAMBDA").as_deref() == Ok("1") => panic!(
            "PAIL_REQUIRE_LAMBDA=1 but PAIL_CARGO_LAMBDA is not set: tests/run.sh installs \
             cargo-lambda into .venv and sets it"
        ),
        _ => {
            eprintln!("skipping: PAIL_CARGO_LAMBDA is not set (tests/run.sh sets it)");
            None
        }
    }
}

/// Kills the process when the test ends, passed or not; on a failure, prints the end of its
/// log (kept in the test's temporary folder, outside the workspace).
pub struct Killed(Child, PathBuf);

impl Killed {
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Killed {
        let file = std::fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        Killed(cmd.spawn().unwrap(), log)
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.1).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- end of {}:", self.1.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

async fn wait_for_port(addr: &str) {
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {addr}");
}

/// The emulator on a free loopback port, its log in `work`; its address.
pub async fn start_emulator(cargo_lambda: &str, work: &Path, function: &str) -> (String, Killed) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let mut emulator = Command::new(cargo_lambda);
    emulator
        .args(["lambda", "watch", "--only-lambda-apis"])
        .args([
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
        ])
        .args(["--bin", function, "--manifest-path", manifest])
        .current_dir(work);
    let emulator = Killed::spawn(emulator, work.join(format!("{function}-emulator.log")));
    wait_for_port(&addr).await;
    (addr, emulator)
}

/// The built binary `bin` running as `function` under the emulator at `addr`, with `env`.
pub fn start_function(
    addr: &str,
    work: &Path,
    function: &str,
    bin: PathBuf,
    env: &[(&str, &str)],
) -> Killed {
    let mut cmd = Command::new(bin);
    cmd.env(
        "AWS_LAMBDA_RUNTIME_API",
        format!("http://{addr}/.rt/{function}"),
    )
    .env("AWS_LAMBDA_FUNCTION_NAME", function)
    .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
    .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
    .env_remove("PAIL_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Killed::spawn(cmd, work.join(format!("{function}.log")))
}

/// The emulator serving `function`'s Runtime API on a free loopback port, and the built
/// binary `bin` running as that function on `store` with `env`; both die with the guards.
pub async fn under_emulator(
    cargo_lambda: &str,
    work: &Path,
    function: &str,
    bin: PathBuf,
    env: &[(&str, &str)],
) -> (String, Killed, Killed) {
    let (addr, emulator) = start_emulator(cargo_lambda, work, function).await;
    let running = start_function(&addr, work, function, bin, env);
    (addr, emulator, running)
}
