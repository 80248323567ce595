//! A throwaway PostgreSQL cluster for a test: `initdb` into a temporary directory, `postgres`
//! on a free port of 127.0.0.1 with its socket inside that directory, a fresh database per
//! [`PgCluster::database`] call. Nothing depends on (or collides with) a cluster the machine
//! may run itself on 5432.
//!
//! The server is this process's child with SIGQUIT (PostgreSQL's immediate shutdown) as its
//! parent-death signal, so it stops with the test even when the test is killed; `Drop` stops
//! it too and removes the directory. `initdb` and `postgres` refuse to run as root: as root
//! (this machine's tests and CI), both run as the `postgres` system user, which Debian's
//! `postgresql` package creates, with the directory given to it.
//!
//! The binaries are looked up on `PATH`, then in `/usr/lib/postgresql/<newest>/bin` (Debian's
//! place, off `PATH`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The superuser `initdb` creates (trust authentication: no password).
pub const USER: &str = "tomato";

/// A running throwaway cluster.
pub struct PgCluster {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

/// Where `name` (initdb, postgres) is: `PATH`, else Debian's newest versioned directory.
pub fn binary(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .filter_map(|e| {
                let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                Some((v, e.path().join("bin").join(name)))
            })
            .filter(|(_, f)| f.is_file())
            .collect();
        versions.sort();
        versions.pop().map(|(_, f)| f)
    })
}

/// `(uid, gid)` of the `postgres` system user, when this process runs as root.
fn run_as() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> u32 {
        let out = Command::new("id").args(args).output().expect("run `id`");
        assert!(out.status.success(), "`id {}` failed", args.join(" "));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("`id` prints a number")
    };
    if id(&["-u"]) != 0 {
        return None;
    }
    let of_postgres = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("run `id`");
        assert!(
            out.status.success(),
            "running as root, the tests start PostgreSQL as the `postgres` user, and there is none \
             (install Debian's postgresql package: apt-get install -y postgresql)"
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("`id` prints a number")
    };
    Some((of_postgres("-u"), of_postgres("-g")))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("its address")
        .port()
}

impl PgCluster {
    /// Initialises and starts a cluster; panics with PostgreSQL's own output when it cannot.
    pub fn start() -> PgCluster {
        PgCluster::start_with(&[])
    }

    /// [`PgCluster::start`] with more server settings (`["shared_buffers=1GB"]`), each passed
    /// as `-c`.
    pub fn start_with(settings: &[&str]) -> PgCluster {
        let initdb = binary("initdb").expect(
            "initdb is missing: install PostgreSQL (Debian: apt-get install -y postgresql; .ci/run does)",
        );
        let postgres = binary("postgres").expect("postgres is missing beside initdb");
        let dir = tempfile::Builder::new()
            .prefix("tomato-pg-")
            .tempdir()
            .expect("a temporary directory");
        let user = run_as();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("give the directory to postgres");
        }
        let data = dir.path().join("data");
        let as_user = |cmd: &mut Command| {
            if let Some((uid, gid)) = user {
                cmd.uid(uid).gid(gid);
            }
        };

        let mut init = Command::new(&initdb);
        init.arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8", "--locale=C"])
            .current_dir(dir.path())
            .env("LC_ALL", "C");
        as_user(&mut init);
        let out = init.output().expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        let port = free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).expect("the server log");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path().join("postgres.log"), Some(uid), Some(gid))
                .expect("chown the log");
        }
        let mut cmd = Command::new(&postgres);
        cmd.arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args(settings.iter().flat_map(|s| ["-c", s]))
            .current_dir(dir.path())
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a second handle on the log"))
            .stderr(log);
        as_user(&mut cmd);
        // SAFETY: only an async-signal-safe system call (prctl) runs between fork and exec
        // (after the uid change, which would clear the signal).
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGQUIT)
                    .map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().expect("start postgres");
        let mut cluster = PgCluster { port, child, dir };
        cluster.wait_ready(Duration::from_secs(60));
        cluster
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("postgres exited ({status}):\n{}", self.log());
            }
            // The server writes this once it accepts connections.
            if self.log().contains("ready to accept connections") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start in time:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// The directory (data, socket, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A URL of database `db` (which may not exist yet).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}?sslmode=disable", self.port)
    }

    /// A fresh database's results store, migrated, with a pool of `pool_size`.
    pub async fn store(&self, pool_size: u32) -> std::sync::Arc<dyn tomato::store::ResultsStore> {
        let url = tomato::store::database_url::DatabaseUrl::parse(&self.database().await).unwrap();
        std::sync::Arc::new(
            tomato::store::PgStore::connect(&url, pool_size, Default::default())
                .await
                .unwrap(),
        )
    }

    /// Creates a fresh database and answers its URL.
    pub async fn database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap_or_else(|e| panic!("connect to the test cluster: {e}\n{}", self.log()));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create a database");
        conn.close().await.ok();
        self.url(&name)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown (what `pg_ctl stop -m immediate` sends).
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
